// SPDX-License-Identifier: GPL-2.0
/*
 * Implicit On-Demand Paging on an RDMA device (rxe here), checked byte by
 * byte while the address space changes under it.
 *
 * One implicit ODP MR (ibv_reg_mr(pd, NULL, SIZE_MAX, ON_DEMAND)) covers the
 * process, and an RC QP connected to itself moves data with RDMA WRITE and
 * READ between a fixed buffer and regions of several VMAs (some straddling
 * 2 MiB boundaries), while a second thread replaces their pages: munmap and
 * mmap again, mmap(MAP_FIXED) over them, MADV_DONTNEED. Every word of a
 * region holds a pattern naming its region, offset and generation (one
 * generation per change), so a read that returns the data of a page the
 * process no longer maps there is seen:
 *
 * - locked write: no change of the region in flight. The CPU must read back
 *   every byte written (a write into a stale page would be lost).
 * - locked read: every byte must be the region's current content.
 * - racy read: changes may run during the read. Each word must be the
 *   pattern of a generation current at some time during the read, or zero
 *   where a change was in flight or the region was dropped; a word of an
 *   older generation is a stale page. Reads that overlap a change are
 *   counted: the run fails if none did (the race was never hit).
 * - prefetch (ibv_advise_mr's uverbs method, sync or async) while changes
 *   run: what it maps must not outlive the pages, which later reads check.
 * - locked atomics on a word: FETCH_AND_ADD must return the current content
 *   and leave the sum in the page the CPU maps, CMP_AND_SWP put it back,
 *   ATOMIC_WRITE (where the provider has it) store what the CPU then reads.
 *
 * First, before the changes start running in the background: a page is
 * read, its region changed, another page of the same 2 MiB granule read
 * (mapped under the range's new sequence) and the first page read again,
 * which must give the new content, for each kind of change. Then an RDMA
 * WRITE into a page after MADV_FREE must survive MADV_PAGEOUT, also when
 * the range holding it was replaced in between, and a prefetch of an MR
 * that is not ODP must fail.
 *
 * Last, a READ of an unmapped address must fail cleanly, and the MR is
 * deregistered with async prefetch work possibly still running.
 *
 * With -b it measures instead: RDMA WRITE and READ of 4 KiB and 1 MiB
 * through a pinned MR, an explicit ODP MR and the implicit ODP MR, the first
 * transfer on fresh memory and the steady state (median latency, mean
 * throughput), in rounds in which the kinds of MR take turns op by op, and
 * prints the ratios of the latencies.
 *
 * With -m, the test runs in the memory cgroup CGROUP_DIR and checks first
 * that ranges made by a peer's READs are charged to it.
 *
 * Usage: rxe_implicit_odp -d DEVICE [-g GID_INDEX] [-m CGROUP_DIR] [-n OPS]
 *        [-t SECONDS] [-b]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/ib_user_ioctl_cmds.h>
#include <rdma/rdma_user_ioctl.h>

#define KSFT_SKIP	4

#define NR_REGIONS	6
#define MAX_XFER	(16 << 10)
#define MAX_GENS	1048576

struct region {
	char *addr;
	size_t size;
	/* Held by locked operations and by every change. */
	pthread_mutex_t lock;
	/* Held for writing across munmap..mmap, when nothing is mapped. */
	pthread_rwlock_t maplock;
	/* Generations: started before a change, done after its fill. */
	atomic_uint started, done;
	/* Per generation: its content is zeros (dropped) or its pattern. */
	bool zero[MAX_GENS];
};

static struct region regions[NR_REGIONS];
static const size_t region_sizes[NR_REGIONS] = {
	64 << 10, 1 << 20, (2 << 20) + (12 << 10), 3 << 20, 4 << 20,
	(1 << 20) + (4 << 10),
};

/* Offsets into a 2 MiB block: regions start off granule boundaries. */
static const size_t region_skew[NR_REGIONS] = {
	0, 1 << 20, (2 << 20) - (8 << 10), 4 << 10, 0, (1 << 20) + (4 << 10),
};

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *cq;
static struct ibv_qp *qp;
static struct ibv_mr *mr;
/* The MR transfers go through: the implicit one, but for -b. */
static struct ibv_mr *xfer_mr;
static uint8_t *src, *dst;
static atomic_bool stop;

static unsigned long nr_ops, nr_writes, nr_reads, nr_racy, nr_races, nr_prefetch;
static unsigned long nr_atomics, nr_atomic_writes, nr_revisits;
static bool has_atomic_write;
static struct ibv_qp_ex *qpx;
static unsigned long nr_remap, nr_fixed, nr_dontneed, bytes_checked;

static uint64_t pattern(int r, unsigned int gen, size_t off)
{
	return 0xa500000000000000ULL | ((uint64_t)r << 52) |
	       ((uint64_t)(gen & 0xfffff) << 32) | (off / 8);
}

static void fill(int r, unsigned int gen)
{
	uint64_t *w = (uint64_t *)regions[r].addr;
	size_t i;

	for (i = 0; i < regions[r].size / 8; i++)
		w[i] = pattern(r, gen, i * 8);
}

/* Rewrite [off, off + len) of region @r as its current generation has it. */
static void restore(int r, size_t off, size_t len)
{
	unsigned int gen = atomic_load(&regions[r].done);
	size_t o;

	for (o = off; o < off + len; o++) {
		uint64_t w = regions[r].zero[gen] ? 0 : pattern(r, gen, o & ~7UL);

		regions[r].addr[o] = ((uint8_t *)&w)[o & 7];
	}
}

/* @p rounded up to a 2 MiB boundary: the start of a granule. */
static char *align_2m(char *p)
{
	return (char *)(((uintptr_t)p + (2 << 20) - 1) & ~((2UL << 20) - 1));
}

static unsigned int rnd(unsigned int *seed, unsigned int n)
{
	return rand_r(seed) % n;
}

/*
 * The region changes, one generation each, by munmap + mmap (@how 0), mmap
 * MAP_FIXED (1) or MADV_DONTNEED (2); the caller holds its lock.
 */
static void change(int r, int how)
{
	struct region *reg = &regions[r];
	unsigned int gen = atomic_load(&reg->started) + 1;
	void *p;

	if (gen >= MAX_GENS)
		return;
	reg->zero[gen] = how == 2;
	atomic_store(&reg->started, gen);
	switch (how) {
	case 0:
		/* Unmapped for a while: no racy reader may run then. */
		pthread_rwlock_wrlock(&reg->maplock);
		if (munmap(reg->addr, reg->size))
			abort();
		p = mmap(reg->addr, reg->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p != reg->addr)
			abort();
		fill(r, gen);
		pthread_rwlock_unlock(&reg->maplock);
		nr_remap++;
		break;
	case 1:
		/* New pages in place of the old ones, in one mmap call. */
		p = mmap(reg->addr, reg->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p != reg->addr)
			abort();
		fill(r, gen);
		nr_fixed++;
		break;
	default:
		if (madvise(reg->addr, reg->size, MADV_DONTNEED))
			abort();
		nr_dontneed++;
		break;
	}
	atomic_store(&reg->done, gen);
}

static void *mutator(void *arg)
{
	unsigned int seed = 12345;

	(void)arg;
	while (!atomic_load(&stop)) {
		int r = rnd(&seed, NR_REGIONS);

		pthread_mutex_lock(&regions[r].lock);
		change(r, rnd(&seed, 3));
		pthread_mutex_unlock(&regions[r].lock);
		usleep(rnd(&seed, 200));
	}
	return NULL;
}

static const char *op_name(enum ibv_wr_opcode op)
{
	switch (op) {
	case IBV_WR_RDMA_READ:
		return "READ";
	case IBV_WR_RDMA_WRITE:
		return "WRITE";
	case IBV_WR_ATOMIC_FETCH_AND_ADD:
		return "FETCH_AND_ADD";
	case IBV_WR_ATOMIC_CMP_AND_SWP:
		return "CMP_AND_SWP";
	default:
		return "ATOMIC_WRITE";
	}
}

/* The completion of the one work request posted. */
static int wait_wc(enum ibv_wr_opcode op, void *remote, size_t len)
{
	time_t t0 = time(NULL);
	struct ibv_wc wc;
	int n;

	while ((n = ibv_poll_cq(cq, 1, &wc)) == 0)
		if (time(NULL) - t0 > 30) {
			fprintf(stderr, "no completion in 30 s\n");
			return -1;
		}
	if (n < 0 || wc.status != IBV_WC_SUCCESS) {
		fprintf(stderr, "%s of %zu bytes at %p: %s\n", op_name(op), len,
			remote, n < 0 ? "poll failed" : ibv_wc_status_str(wc.status));
		return -1;
	}
	return 0;
}

static int xfer(enum ibv_wr_opcode op, void *local, void *remote, size_t len)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)local, .length = len, .lkey = xfer_mr->lkey,
	};
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = (uintptr_t)remote, .rkey = xfer_mr->rkey },
	}, *bad;

	if (ibv_post_send(qp, &wr, &bad)) {
		fprintf(stderr, "ibv_post_send: %s\n", strerror(errno));
		return -1;
	}
	return wait_wc(op, remote, len);
}

/* FETCH_AND_ADD or CMP_AND_SWP of the word at @remote, its old value to *@old. */
static int atomic(enum ibv_wr_opcode op, uint64_t *remote, uint64_t cmp_add,
		  uint64_t swap, uint64_t *old)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)dst, .length = 8, .lkey = xfer_mr->lkey,
	};
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.atomic = { .remote_addr = (uintptr_t)remote,
			       .compare_add = cmp_add, .swap = swap,
			       .rkey = xfer_mr->rkey },
	}, *bad;

	if (ibv_post_send(qp, &wr, &bad)) {
		fprintf(stderr, "ibv_post_send: %s\n", strerror(errno));
		return -1;
	}
	if (wait_wc(op, remote, 8))
		return -1;
	memcpy(old, dst, 8);
	return 0;
}

/* ATOMIC_WRITE of @value to the word at @remote (extended QP API). */
static int atomic_write(uint64_t *remote, uint64_t value)
{
	ibv_wr_start(qpx);
	qpx->wr_flags = IBV_SEND_SIGNALED;
	ibv_wr_atomic_write(qpx, xfer_mr->rkey, (uintptr_t)remote, &value);
	if (ibv_wr_complete(qpx)) {
		fprintf(stderr, "ibv_wr_complete: %s\n", strerror(errno));
		return -1;
	}
	return wait_wc(IBV_WR_ATOMIC_WRITE, remote, 8);
}

/*
 * Do the bytes of the word at @o that the read covers match a content the
 * word had in generations @lo..@hi: a generation's pattern, or zeros where
 * the region was dropped at @lo or a change ran during the read? While a
 * change runs, a word may also be read torn, partly zero (the fresh page)
 * and partly one generation's pattern (the fill, or a drop).
 */
static bool word_ok(int r, size_t o, const uint8_t *got, size_t a, size_t b,
		    unsigned int lo, unsigned int hi)
{
	struct region *reg = &regions[r];
	bool torn, zero_ok = hi > lo || reg->zero[lo];
	uint64_t want;
	unsigned int g;
	size_t i;

	want = 0;
	if (zero_ok && !memcmp((uint8_t *)&want + (a - o), got, b - a))
		return true;
	for (g = lo; g <= hi; g++) {
		if (reg->zero[g])
			continue;
		want = pattern(r, g, o);
		torn = hi > lo;
		for (i = a; i < b; i++) {
			uint8_t w = ((uint8_t *)&want)[i - o];

			if (got[i - a] != w && !(torn && !got[i - a]))
				break;
		}
		if (i == b)
			return true;
	}
	return false;
}

/* @buf holds what a READ of @len bytes at offset @off of region @r got. */
static int check(int r, size_t off, const uint8_t *buf, size_t len,
		 unsigned int lo, unsigned int hi, const char *what)
{
	size_t o;

	for (o = off & ~7UL; o < off + len; o += 8) {
		size_t a = o < off ? off : o;
		size_t b = o + 8 > off + len ? off + len : o + 8;

		if (!word_ok(r, o, buf + (a - off), a, b, lo, hi)) {
			fprintf(stderr,
				"%s: region %d offset %#zx: bytes %zu..%zu are no content of generations %u..%u\n",
				what, r, o, a - o, b - o - 1, lo, hi);
			return -1;
		}
	}
	bytes_checked += len;
	return 0;
}

/*
 * Prefetch [addr, addr + len) for writing, synchronously or not. Through
 * uverbs itself: ibv_advise_mr() needs the provider's support, which the
 * rxe provider of rdma-core before v55 lacks.
 */
static int advise_prefetch_mr(struct ibv_mr *pmr, void *addr, size_t len,
			      bool sync, bool quiet)
{
	struct ib_uverbs_sge sge = {
		.addr = (uintptr_t)addr, .length = len, .lkey = pmr->lkey,
	};
	struct {
		struct ib_uverbs_ioctl_hdr hdr;
		struct ib_uverbs_attr attrs[4];
	} cmd = {
		.hdr = {
			.length = sizeof(cmd),
			.object_id = UVERBS_OBJECT_MR,
			.method_id = UVERBS_METHOD_ADVISE_MR,
			.num_attrs = 4,
			.driver_id = RDMA_DRIVER_RXE,
		},
		.attrs = {
			{ .attr_id = UVERBS_ATTR_ADVISE_MR_PD_HANDLE,
			  .data = pd->handle },
			{ .attr_id = UVERBS_ATTR_ADVISE_MR_ADVICE, .len = 8,
			  .data = IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_WRITE },
			{ .attr_id = UVERBS_ATTR_ADVISE_MR_FLAGS, .len = 4,
			  .data = sync ? IB_UVERBS_ADVISE_MR_FLAG_FLUSH : 0 },
			{ .attr_id = UVERBS_ATTR_ADVISE_MR_SGE_LIST,
			  .len = sizeof(sge), .data = (uintptr_t)&sge },
		},
	};

	if (ioctl(ctx->cmd_fd, RDMA_VERBS_IOCTL, &cmd)) {
		if (!quiet)
			fprintf(stderr, "%s prefetch of %zu bytes at %p: %s\n",
				sync ? "sync" : "async", len, addr, strerror(errno));
		return -1;
	}
	return 0;
}

static int advise_prefetch(void *addr, size_t len, bool sync)
{
	return advise_prefetch_mr(mr, addr, len, sync, false);
}

/*
 * The atomics on a word of region @r, its lock held: FETCH_AND_ADD must
 * return the current content and the CPU see the sum, CMP_AND_SWP put it
 * back, ATOMIC_WRITE store a value the CPU sees.
 */
static int atomics(int r, size_t off)
{
	struct region *reg = &regions[r];
	unsigned int gen = atomic_load(&reg->done);
	uint64_t *w = (uint64_t *)(reg->addr + off);
	uint64_t want = reg->zero[gen] ? 0 : pattern(r, gen, off), old, v;

	if (atomic(IBV_WR_ATOMIC_FETCH_AND_ADD, w, 1, 0, &old))
		return -1;
	if (old != want || *w != want + 1) {
		fprintf(stderr,
			"FETCH_AND_ADD at region %d offset %#zx: got %#llx, memory %#llx, want %#llx\n",
			r, off, (unsigned long long)old,
			(unsigned long long)*w, (unsigned long long)want);
		return -1;
	}
	if (atomic(IBV_WR_ATOMIC_CMP_AND_SWP, w, want + 1, want, &old))
		return -1;
	if (old != want + 1 || *w != want) {
		fprintf(stderr,
			"CMP_AND_SWP at region %d offset %#zx: got %#llx, memory %#llx, want %#llx\n",
			r, off, (unsigned long long)old,
			(unsigned long long)*w, (unsigned long long)want);
		return -1;
	}
	nr_atomics += 2;
	bytes_checked += 16;
	if (!has_atomic_write)
		return 0;
	v = ~want;
	if (atomic_write(w, v))
		return -1;
	if (*w != v) {
		fprintf(stderr,
			"ATOMIC_WRITE at region %d offset %#zx: memory %#llx, want %#llx\n",
			r, off, (unsigned long long)*w, (unsigned long long)v);
		return -1;
	}
	*w = want;
	nr_atomic_writes++;
	bytes_checked += 8;
	return 0;
}

/*
 * A page read through the MR, its region changed, another page of the
 * same 2 MiB granule read (which maps it under the range's new sequence),
 * then the first page read again: it must be the new page. An invalidation
 * that let the first page's old mapping survive would be served from it.
 * Region 1 lies in one granule. Each kind of change, @n times.
 */
static int revisit(int n)
{
	const size_t a = 8 << 10, b = 512 << 10, len = 256;
	unsigned int gen;
	int i, how;

	for (how = 0; how < 3; how++)
		for (i = 0; i < n; i++) {
			gen = atomic_load(&regions[1].done);
			if (xfer(IBV_WR_RDMA_READ, dst, regions[1].addr + a, len) ||
			    check(1, a, dst, len, gen, gen, "READ again"))
				return -1;
			change(1, how);
			gen = atomic_load(&regions[1].done);
			if (xfer(IBV_WR_RDMA_READ, dst, regions[1].addr + b, len) ||
			    check(1, b, dst, len, gen, gen, "READ again") ||
			    xfer(IBV_WR_RDMA_READ, dst, regions[1].addr + a, len) ||
			    check(1, a, dst, len, gen, gen, "READ again"))
				return -1;
			nr_revisits++;
		}
	return 0;
}

/* Is the page at @p resident (mapped in the page table)? */
static bool resident(void *p)
{
	unsigned char vec;

	return !mincore(p, 4096, &vec) && (vec & 1);
}

/*
 * Data an RDMA WRITE put in a lazily freed page must survive reclaim: the
 * page is mapped writable but clean after MADV_FREE, the device writes it
 * behind the CPU page table's back, and reclaim discards a clean lazyfree
 * page. A range reshaped in between (@cut: another page of the granule
 * unmapped) must not lose that the page was written. A page written by the
 * CPU before MADV_FREE only shows that MADV_PAGEOUT does discard. On one
 * CPU: MADV_FREE leaves its pages in a per-CPU batch, which MADV_PAGEOUT
 * drains on its own CPU only.
 */
static int lazyfree(bool cut)
{
	const size_t sz = 64 << 10;
	cpu_set_t all, one;
	char *base, *p;
	int ret = -1;

	if (sched_getaffinity(0, sizeof(all), &all))
		return -1;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		return -1;

	base = mmap(NULL, 4 << 20, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -1;
	p = align_2m(base);
	if (mmap(p, sz, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p)
		goto out;
	memset(p, 0x11, sz);
	memset(src, 0x5a, 4096);
	if (madvise(p, sz, MADV_FREE) ||
	    xfer(IBV_WR_RDMA_WRITE, src, p, 4096))
		goto out;
	if (cut && munmap(p + (32 << 10), 4096))
		goto out;
	/* Time for the tracker's deferred work to replace the range. */
	usleep(200000);
	if (madvise(p, 8192, MADV_PAGEOUT))
		goto out;
	if (resident(p + 4096)) {
		fprintf(stderr, "MADV_FREE: MADV_PAGEOUT kept a clean page\n");
		goto out;
	}
	if (memcmp(p, src, 4096)) {
		fprintf(stderr,
			"MADV_FREE%s: the data of an RDMA WRITE was discarded (%#x)\n",
			cut ? " after a reshape" : "", (unsigned char)p[0]);
		goto out;
	}
	bytes_checked += 4096;
	ret = 0;
out:
	munmap(base, 4 << 20);
	sched_setaffinity(0, sizeof(all), &all);
	return ret;
}

/*
 * ibv_advise_mr() on an MR that is not ODP must fail, sync and async, and
 * touch nothing it should not (KASAN watches).
 */
static int prefetch_non_odp(void)
{
	struct ibv_mr *pmr;
	int ret = 0;

	pmr = ibv_reg_mr(pd, src, 4096, IBV_ACCESS_LOCAL_WRITE);
	if (!pmr)
		return -1;
	if (!advise_prefetch_mr(pmr, src, 4096, true, true) ||
	    !advise_prefetch_mr(pmr, src, 4096, false, true)) {
		fprintf(stderr, "a prefetch of a non-ODP MR succeeded\n");
		ret = -1;
	}
	ibv_dereg_mr(pmr);
	return ret;
}

/* The "slab" of @dir/memory.stat, in bytes, or -1. */
static long long cg_slab(const char *dir)
{
	char path[512], line[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/memory.stat", dir);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "slab %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/*
 * The memory of ranges is charged to the memory cgroup @dir of the MR's
 * process, also when a peer's READs make them (in rxe's kworkers): @n
 * READs of 8 bytes, 2 MiB apart, over memory never touched must grow the
 * cgroup's slab by most of @n arrays of pfns, a page each.
 */
static int memcg_charge(const char *dir, int n)
{
	size_t span = (size_t)(n + 1) << 21;
	long long before, after;
	int i, ret = -1;
	char *base, *p;

	base = mmap(NULL, span, PROT_READ,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -1;
	p = align_2m(base);
	before = cg_slab(dir);
	for (i = 0; i < n; i++)
		if (xfer(IBV_WR_RDMA_READ, dst, p + ((size_t)i << 21), 8))
			goto out;
	after = cg_slab(dir);
	if (before < 0 || after < 0) {
		fprintf(stderr, "memcg: no slab line in %s/memory.stat\n", dir);
		goto out;
	}
	printf("rxe_implicit_odp: memcg: %d READs 2 MiB apart grew the slab of %s by %lld KiB\n",
	       n, dir, (after - before) >> 10);
	if (after - before < (long long)n * 4096 * 3 / 4) {
		fprintf(stderr, "memcg: the ranges were not charged to the process's cgroup\n");
		goto out;
	}
	ret = 0;
out:
	munmap(base, span);
	return ret;
}

static int one_op(unsigned int *seed)
{
	int r = rnd(seed, NR_REGIONS), kind = rnd(seed, 5);
	struct region *reg = &regions[r];
	size_t len = 1 + rnd(seed, rnd(seed, 2) ? MAX_XFER : 64);
	size_t off;
	unsigned int lo, hi;
	int ret = 0;

	if (len > reg->size)
		len = reg->size;
	off = rnd(seed, reg->size - len + 1);

	if (kind == 0) {
		/* Locked write: the CPU must see all of it. */
		size_t i;

		for (i = 0; i < len; i++)
			src[i] = rand_r(seed);
		pthread_mutex_lock(&reg->lock);
		ret = xfer(IBV_WR_RDMA_WRITE, src, reg->addr + off, len);
		if (!ret && memcmp(reg->addr + off, src, len)) {
			fprintf(stderr,
				"WRITE of %zu bytes at region %d offset %#zx: not in the page mapped there\n",
				len, r, off);
			ret = -1;
		}
		/* Back to the content of the current generation. */
		if (!ret)
			restore(r, off, len);
		pthread_mutex_unlock(&reg->lock);
		bytes_checked += ret ? 0 : len;
		nr_writes++;
	} else if (kind == 1) {
		/* Locked read: exactly the current content. */
		pthread_mutex_lock(&reg->lock);
		lo = atomic_load(&reg->done);
		ret = xfer(IBV_WR_RDMA_READ, dst, reg->addr + off, len);
		if (!ret)
			ret = check(r, off, dst, len, lo, lo, "locked READ");
		pthread_mutex_unlock(&reg->lock);
		nr_reads++;
	} else if (kind == 4) {
		pthread_mutex_lock(&reg->lock);
		ret = atomics(r, off & ~7UL);
		pthread_mutex_unlock(&reg->lock);
	} else if (kind == 2) {
		/*
		 * Prefetch while changes run: a read later must not see what
		 * it mapped once the pages are gone.
		 */
		pthread_rwlock_rdlock(&reg->maplock);
		ret = advise_prefetch(reg->addr + off, len, rnd(seed, 2));
		pthread_rwlock_unlock(&reg->maplock);
		nr_prefetch++;
	} else {
		/* Racy read: changes may run meanwhile. */
		pthread_rwlock_rdlock(&reg->maplock);
		lo = atomic_load(&reg->done);
		ret = xfer(IBV_WR_RDMA_READ, dst, reg->addr + off, len);
		hi = atomic_load(&reg->started);
		pthread_rwlock_unlock(&reg->maplock);
		if (!ret)
			ret = check(r, off, dst, len, lo, hi, "racy READ");
		nr_racy++;
		nr_races += hi > lo;
	}
	nr_ops++;
	return ret;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static const char * const bench_mrs[] = { "pinned", "explicit", "implicit" };
static const size_t bench_sizes[] = { 4096, 1 << 20 };

/*
 * -b runs rounds; in each, the three kinds of MR take turns op by op on
 * buffers of their own, so that a drift of the emulated machine (the rxe
 * tasklets and the vCPUs share the host's CPUs with everything else) hits
 * every kind alike.
 */
#define BENCH_ROUNDS	5
#define BENCH_ITERS	300

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/*
 * One round of -b for a size and an operation: registration (none for the
 * implicit MR), the first transfer on fresh memory and @iters timed ones per
 * kind of MR, appended to @lat[kind].
 */
static int bench_round(int n, size_t size, enum ibv_wr_opcode op, int iters,
		       double reg[3], double first[3], double *lat[3])
{
	int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
		     IBV_ACCESS_REMOTE_WRITE;
	struct ibv_mr *bmr[3] = { NULL, NULL, mr };
	char *buf[3] = {};
	int i, j, k, ret = -1;
	double t0;

	for (j = 0; j < 3; j++) {
		k = (j + n) % 3;
		buf[k] = mmap(NULL, 2 * size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (buf[k] == MAP_FAILED) {
			buf[k] = NULL;
			goto out;
		}
		reg[k] = 0;
		if (k < 2) {
			t0 = now_us();
			bmr[k] = ibv_reg_mr(pd, buf[k], 2 * size,
					    access | (k ? IBV_ACCESS_ON_DEMAND : 0));
			reg[k] = now_us() - t0;
			if (!bmr[k])
				goto out;
		}
	}
	/* From the first half to the second, or back for READ. */
	for (j = 0; j < 3; j++) {
		k = (j + n) % 3;
		xfer_mr = bmr[k];
		t0 = now_us();
		if (xfer(op, buf[k], buf[k] + size, size))
			goto out;
		first[k] = now_us() - t0;
	}
	for (i = -iters / 10; i < iters; i++)
		for (j = 0; j < 3; j++) {
			k = (i + n + j + iters) % 3;
			xfer_mr = bmr[k];
			t0 = now_us();
			if (xfer(op, buf[k], buf[k] + size, size))
				goto out;
			if (i >= 0)
				*lat[k]++ = now_us() - t0;
		}
	ret = 0;
out:
	xfer_mr = mr;
	for (k = 0; k < 3; k++) {
		if (bmr[k] && bmr[k] != mr)
			ibv_dereg_mr(bmr[k]);
		if (buf[k])
			munmap(buf[k], 2 * size);
	}
	return ret;
}

/*
 * Per size, operation and kind of MR: the medians over the rounds of the
 * registration and the first transfer, the median latency of the steady
 * state and its throughput (of the mean). The ratios are of the median
 * latencies, with their range over the rounds.
 */
static int bench(void)
{
	static double lat[3][BENCH_ROUNDS * BENCH_ITERS];
	double reg[3][BENCH_ROUNDS], first[3][BENCH_ROUNDS], m[3], sum;
	double ratio[BENCH_ROUNDS], r_reg[3], r_first[3];
	int k, z, o, n, i, iters;
	double *pos[3];

	for (z = 0; z < 2; z++)
		for (o = 0; o < 2; o++) {
			iters = bench_sizes[z] > 4096 ? 30 : BENCH_ITERS;
			for (n = 0; n < BENCH_ROUNDS; n++) {
				for (k = 0; k < 3; k++)
					pos[k] = &lat[k][n * iters];
				if (bench_round(n, bench_sizes[z],
						o ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE,
						iters, r_reg, r_first, pos))
					return -1;
				for (k = 0; k < 3; k++) {
					reg[k][n] = r_reg[k];
					first[k][n] = r_first[k];
				}
				/* Sorts this round's latencies, in place. */
				ratio[n] = median(&lat[2][n * iters], iters) /
					   median(&lat[1][n * iters], iters);
			}
			for (k = 0; k < 3; k++) {
				for (sum = 0, i = 0; i < BENCH_ROUNDS * iters; i++)
					sum += lat[k][i];
				m[k] = median(lat[k], BENCH_ROUNDS * iters);
				printf("RXEBENCH mr=%-8s op=%-5s size=%7zu ",
				       bench_mrs[k], o ? "READ" : "WRITE",
				       bench_sizes[z]);
				printf("reg_us=%8.1f first_us=%8.1f steady_us=%8.1f MBps=%7.1f\n",
				       median(reg[k], BENCH_ROUNDS),
				       median(first[k], BENCH_ROUNDS), m[k],
				       bench_sizes[z] * BENCH_ROUNDS * iters / sum);
			}
			qsort(ratio, BENCH_ROUNDS, sizeof(*ratio), cmp_double);
			printf("RXEBENCH ratio op=%-5s size=%7zu ",
			       o ? "READ" : "WRITE", bench_sizes[z]);
			printf("implicit/explicit=%.2f implicit/pinned=%.2f ",
			       m[2] / m[1], m[2] / m[0]);
			printf("rounds=%d min=%.2f max=%.2f\n", BENCH_ROUNDS,
			       ratio[0], ratio[BENCH_ROUNDS - 1]);
		}
	return 0;
}

static int setup(const char *devname, int gid_index)
{
	struct ibv_device **list = ibv_get_device_list(NULL);
	struct ibv_device_attr_ex attr = {};
	struct ibv_qp_init_attr_ex init = {
		.cap = { .max_send_wr = 4, .max_recv_wr = 1, .max_send_sge = 1,
			 .max_recv_sge = 1 },
		.qp_type = IBV_QPT_RC,
		.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.send_ops_flags = IBV_QP_EX_WITH_RDMA_WRITE |
				  IBV_QP_EX_WITH_RDMA_READ |
				  IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP |
				  IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD |
				  IBV_QP_EX_WITH_ATOMIC_WRITE,
	};
	int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
		     IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC;
	struct ibv_qp_attr qa = {};
	union ibv_gid gid;
	int i;

	for (i = 0; list && list[i]; i++)
		if (!strcmp(ibv_get_device_name(list[i]), devname))
			ctx = ibv_open_device(list[i]);
	if (!ctx) {
		fprintf(stderr, "no device %s\n", devname);
		return KSFT_SKIP;
	}
	if (ibv_query_device_ex(ctx, NULL, &attr) ||
	    !(attr.odp_caps.general_caps & IBV_ODP_SUPPORT_IMPLICIT)) {
		fprintf(stderr, "%s: no implicit ODP\n", devname);
		return KSFT_SKIP;
	}
	pd = ibv_alloc_pd(ctx);
	cq = pd ? ibv_create_cq(ctx, 8, NULL, NULL, 0) : NULL;
	if (!cq)
		return -1;
	mr = ibv_reg_mr(pd, NULL, SIZE_MAX, access | IBV_ACCESS_ON_DEMAND);
	if (!mr) {
		fprintf(stderr, "implicit ODP MR: %s\n", strerror(errno));
		return -1;
	}
	xfer_mr = mr;
	init.send_cq = cq;
	init.recv_cq = cq;
	init.pd = pd;
	/* ATOMIC_WRITE needs the extended QP API; without it, the others. */
	qp = ibv_create_qp_ex(ctx, &init);
	if (qp) {
		qpx = ibv_qp_to_qp_ex(qp);
		has_atomic_write = true;
	} else {
		fprintf(stderr, "%s: no ATOMIC_WRITE (%s), not tested\n",
			devname, strerror(errno));
		qp = ibv_create_qp(pd, (struct ibv_qp_init_attr *)&init);
	}
	if (!qp || ibv_query_gid(ctx, 1, gid_index, &gid))
		return -1;

	/* An RC QP connected to itself. */
	qa.qp_state = IBV_QPS_INIT;
	qa.port_num = 1;
	qa.qp_access_flags = access;
	if (ibv_modify_qp(qp, &qa, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		return -1;
	memset(&qa, 0, sizeof(qa));
	qa.qp_state = IBV_QPS_RTR;
	qa.path_mtu = IBV_MTU_1024;
	qa.dest_qp_num = qp->qp_num;
	qa.max_dest_rd_atomic = 1;
	qa.min_rnr_timer = 12;
	qa.ah_attr.is_global = 1;
	qa.ah_attr.grh.dgid = gid;
	qa.ah_attr.grh.sgid_index = gid_index;
	qa.ah_attr.grh.hop_limit = 1;
	qa.ah_attr.port_num = 1;
	if (ibv_modify_qp(qp, &qa, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		return -1;
	memset(&qa, 0, sizeof(qa));
	qa.qp_state = IBV_QPS_RTS;
	/*
	 * About 1 s. With 67 ms (14), a READ whose first faults are slow
	 * (KASAN, TCG) was sent again; the copy, served after the test had
	 * unmapped the memory, failed and took the QP to the error state.
	 */
	qa.timeout = 18;
	qa.retry_cnt = 7;
	qa.rnr_retry = 7;
	qa.max_rd_atomic = 1;
	if (ibv_modify_qp(qp, &qa, IBV_QP_STATE | IBV_QP_TIMEOUT |
			  IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
			  IBV_QP_MAX_QP_RD_ATOMIC))
		return -1;
	ibv_free_device_list(list);
	return 0;
}

static int map_regions(void)
{
	char *base;
	int r;

	/* Reserve a span, then place each region at its skew in it. */
	base = mmap(NULL, (size_t)NR_REGIONS * (8 << 20), PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -1;
	base = align_2m(base);
	for (r = 0; r < NR_REGIONS; r++) {
		struct region *reg = &regions[r];

		reg->size = region_sizes[r];
		reg->addr = mmap(base + (size_t)r * (8 << 20) + region_skew[r],
				 reg->size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (reg->addr == MAP_FAILED)
			return -1;
		pthread_mutex_init(&reg->lock, NULL);
		pthread_rwlock_init(&reg->maplock, NULL);
		fill(r, 0);
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *dev = "rxe0", *cgroup = NULL;
	unsigned long want_ops = 400, i;
	unsigned int seed = 1, secs = 40;
	int gid_index = 1, opt, ret = 0;
	bool do_bench = false;
	pthread_t thread;
	time_t t0;

	while ((opt = getopt(argc, argv, "d:g:m:n:t:b")) != -1) {
		switch (opt) {
		case 'm':
			cgroup = optarg;
			break;
		case 'b':
			do_bench = true;
			break;
		case 'd':
			dev = optarg;
			break;
		case 'g':
			gid_index = atoi(optarg);
			break;
		case 'n':
			want_ops = strtoul(optarg, NULL, 0);
			break;
		case 't':
			secs = atoi(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: %s -d DEVICE [-g GID_INDEX] [-m CGROUP_DIR] [-n OPS] [-t SECONDS] [-b]\n",
				argv[0]);
			return 2;
		}
	}

	src = aligned_alloc(4096, MAX_XFER);
	dst = aligned_alloc(4096, MAX_XFER);
	if (!src || !dst || map_regions())
		return 1;
	ret = setup(dev, gid_index);
	if (ret) {
		fprintf(stderr, "setup failed\n");
		return ret == KSFT_SKIP ? KSFT_SKIP : 1;
	}
	if (do_bench) {
		ret = bench();
		printf("rxe_implicit_odp: bench %s\n", ret ? "FAILED" : "done");
		return ret ? 1 : 0;
	}
	if (cgroup && memcg_charge(cgroup, 512))
		return 1;
	ret = revisit(20);
	if (ret) {
		fprintf(stderr, "revisits failed\n");
		return 1;
	}
	if (lazyfree(false) || lazyfree(true) || prefetch_non_odp())
		return 1;
	printf("rxe_implicit_odp: WRITE to a MADV_FREE page kept, also across a reshape\n");
	printf("rxe_implicit_odp: prefetch of a non-ODP MR refused\n");
	if (pthread_create(&thread, NULL, mutator, NULL))
		return 1;
	printf("rxe_implicit_odp: running\n");
	fflush(stdout);
	t0 = time(NULL);
	for (i = 0; !ret && (i < want_ops || !nr_races); i++) {
		if (time(NULL) - t0 > secs)
			break;
		ret = one_op(&seed);
	}
	atomic_store(&stop, true);
	pthread_join(thread, NULL);

	printf("rxe_implicit_odp: %lu operations (%lu locked WRITE, %lu locked READ, ",
	       nr_ops, nr_writes, nr_reads);
	printf("%lu racy READ, %lu of them overlapping a change, %lu prefetch, ",
	       nr_racy, nr_races, nr_prefetch);
	printf("%lu FETCH_AND_ADD + CMP_AND_SWP, %lu ATOMIC_WRITE, %lu revisits), ",
	       nr_atomics, nr_atomic_writes, nr_revisits);
	printf("%lu invalidations (%lu munmap+mmap, %lu mmap MAP_FIXED, %lu MADV_DONTNEED), ",
	       nr_remap + nr_fixed + nr_dontneed, nr_remap, nr_fixed, nr_dontneed);
	printf("%lu bytes checked\n", bytes_checked);
	/*
	 * Last, as it leaves the QP in error: a READ of an address no VMA
	 * covers must fail cleanly.
	 */
	if (!ret) {
		char *hole = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (hole != MAP_FAILED && !munmap(hole, 4096) &&
		    !xfer(IBV_WR_RDMA_READ, dst, hole, 64)) {
			fprintf(stderr, "READ of an unmapped address succeeded\n");
			ret = 1;
		} else {
			printf("rxe_implicit_odp: a READ of an unmapped address failed cleanly\n");
		}
	}
	if (!ret && !nr_races) {
		fprintf(stderr,
			"no READ overlapped a change in %u s: the race was not hit\n",
			secs);
		ret = 1;
	}
	ibv_destroy_qp(qp);
	ibv_dereg_mr(mr);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	printf("rxe_implicit_odp: %s\n", ret ? "FAIL" : "PASS");
	return ret ? 1 : 0;
}
