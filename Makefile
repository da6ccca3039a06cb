# SPDX-License-Identifier: GPL-2.0
# mmu_range_tracker harness. The kernel files of this repository live at
# their kernel paths; this Makefile assembles them with patches/ onto a
# Linux 6.12 base tree in build/ and builds and tests there.
#
# KSRC=/path/to/linux-6.12.y uses your own base tree instead of Debian's
# linux-source-6.12.

export KSRC

.PHONY: help deps assemble kernelversion kunit kunit-default kunit-debug \
	selftest demo nouveau check test clean distclean

help:
	@echo 'mmu_range_tracker: targets'
	@echo '  make demo           boot QEMU and show the tracker following munmap, drawn'
	@echo '  make selftest       boot QEMU, load test_hmm_intervals.ko, run hmm_intervals_tests, unload'
	@echo '  make kunit          build UML kernels and run the KUnit suite (default and debug configs)'
	@echo '  make kunit-default  the KUnit suite with mm/.kunitconfig only'
	@echo '  make kunit-debug    the KUnit suite with lockdep, DEBUG_VM and slub_debug'
	@echo '  make nouveau        build nouveau (DRM_NOUVEAU_SVM=y) with the conversion; W=1 + sparse'
	@echo '  make check          checkpatch --strict, W=1 + sparse, Coccinelle, kernel-doc'
	@echo '  make test           everything above; ends with "N passed, N failed" (CI runs this)'
	@echo '  make assemble       base tree + new files + patches/ into build/src'
	@echo '  make kernelversion  print the version of the base tree'
	@echo '  make deps           install the Debian packages the harness needs'
	@echo '  make clean          remove build/ except the unpacked base tree'
	@echo '  make distclean      remove build/ entirely'
	@echo 'Variables: KSRC=/path/to/linux (base tree), JOBS=N (parallel jobs)'

deps:
	@mkdir -p build && harness/deps.sh

assemble: deps
	@harness/assemble.sh

kernelversion: assemble
	@$(MAKE) -s -C build/src kernelversion

kunit: assemble
	@harness/kunit.sh default debug

kunit-default: assemble
	@harness/kunit.sh default

kunit-debug: assemble
	@harness/kunit.sh debug

selftest: assemble
	@harness/qemu.sh selftest

demo: assemble
	@harness/qemu.sh demo

nouveau: assemble
	@harness/nouveau.sh

check: assemble
	@harness/check.sh

test:
	@mkdir -p build && harness/test.sh

clean:
	rm -rf build/src build/stage build/kunit-* build/qemu-* build/nouveau-* build/docs build/results \
		build/*.log build/*.out

distclean:
	rm -rf build
