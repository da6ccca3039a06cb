# SPDX-License-Identifier: GPL-2.0
# mmu_range_tracker harness. The kernel files of this repository live at
# their kernel paths; this Makefile assembles them with patches/$(BASE)/ onto
# a Linux base tree in build/$(BASE)/ and builds and tests there.
#
# BASE=7.3 (default: the current stable kernel, Debian's linux-source-7.3)
# or BASE=6.12 (the LTS backport, Debian's linux-source-6.12).
# KSRC=/path/to/linux uses your own tree of that base instead of Debian's.

BASE ?= 7.3
export BASE KSRC

.PHONY: help deps assemble kernelversion kunit kunit-default kunit-debug \
	selftest rdma demo nouveau check spin series series-check bench test clean distclean

help:
	@echo 'mmu_range_tracker: targets (BASE=$(BASE))'
	@echo '  make demo           boot QEMU and show the tracker following munmap, drawn'
	@echo '  make selftest       boot QEMU, load test_hmm_intervals.ko, run hmm_intervals_tests, unload'
	@echo '  make rdma           boot QEMU with soft-RoCE (rxe): ibv_devinfo, ibv_rc_pingpong'
	@echo '                      plain/ODP/implicit ODP/+prefetch, the implicit ODP test (7.3)'
	@echo '  make kunit          build UML kernels and run the KUnit suite (default and debug configs)'
	@echo '  make kunit-default  the KUnit suite with mm/tests/.kunitconfig only'
	@echo '  make kunit-debug    the KUnit suite with lockdep, DEBUG_VM and slub_debug'
	@echo '  make nouveau        build nouveau (DRM_NOUVEAU_SVM=y) with the conversion; W=1 + sparse'
	@echo '  make check          checkpatch --strict, W=1 + sparse, Coccinelle, kernel-doc, Sphinx'
	@echo '  make spin           model-check the protocol with spin (fixed: no violation;'
	@echo '                      old order: a counterexample), models/README.md'
	@echo '  make bench          the fault path against xa_load(), the 2020 driver tree and a'
	@echo '                      notifier per fault, 16 to 64k ranges, two CPUs, a 1-of-100'
	@echo '                      workload per policy (UML and x86_64 QEMU), and the CPU side'
	@echo '                      of munmap/mprotect/MADV_DONTNEED; tables and charts in'
	@echo '                      build/bench/ (not part of make test)'
	@echo '  make series         the patch series with a cover letter, into build/$$BASE/series/'
	@echo '  make series-check   git am of the series onto the pristine base, checkpatch and a'
	@echo '                      build of every patch in turn (after make kunit-default)'
	@echo '  make test           everything, on 7.3 and on the 6.12 backport; ends with'
	@echo '                      "N passed, N failed" (CI runs this)'
	@echo '  make assemble       base tree + new files + patches/$$BASE/ into build/$$BASE/src'
	@echo '  make kernelversion  print the version of the base tree'
	@echo '  make deps           install the Debian packages the harness needs'
	@echo '  make clean          remove build/ except the downloaded and unpacked bases'
	@echo '  make distclean      remove build/ entirely'
	@echo 'Variables: BASE=7.3|6.12, KSRC=/path/to/linux (your own base tree), JOBS=N'

deps:
	@mkdir -p build && harness/deps.sh

assemble: deps
	@harness/assemble.sh

kernelversion: assemble
	@$(MAKE) -s -C build/$(BASE)/src kernelversion

kunit: assemble
	@harness/kunit.sh default debug

kunit-default: assemble
	@harness/kunit.sh default

kunit-debug: assemble
	@harness/kunit.sh debug

selftest: assemble
	@harness/qemu.sh selftest

rdma: assemble
	@harness/qemu.sh rdma

demo: assemble
	@harness/qemu.sh demo

nouveau: assemble
	@harness/nouveau.sh

check: assemble
	@harness/check.sh

# The model needs spin and gcc only, not the kernel tree.
spin: deps
	@harness/spin.sh

bench: assemble
	@harness/bench.sh

series: deps
	@harness/series.sh format

series-check: assemble
	@harness/series.sh check

test:
	@mkdir -p build && harness/test.sh

clean:
	rm -rf $(foreach b,7.3 6.12,build/$(b)/src build/$(b)/stage build/$(b)/kunit-* \
		build/$(b)/qemu-* build/$(b)/nouveau-* build/$(b)/docs build/$(b)/results \
		build/$(b)/series* build/$(b)/*.log build/$(b)/*.out) build/spin build/bench

distclean:
	rm -rf build
