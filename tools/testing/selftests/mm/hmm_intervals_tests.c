// SPDX-License-Identifier: GPL-2.0
/*
 * End-to-end tests of mmu_range_tracker through lib/test_hmm_intervals.c: a
 * device that mirrors this process and reads and writes its memory through a
 * software page table kept coherent by the tracker's interval notifiers.
 *
 * Every test runs for both policies: ranges covering the VMA, and ranges of
 * naturally aligned 64 KiB granules clipped to the VMA.
 */
#define _GNU_SOURCE
#include "../kselftest_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lib/test_hmm_intervals_uapi.h>

#define HMI_DEV		"/dev/hmm_intervals"
#define MAX_RANGES	1024
#define TWOMEG		(2UL << 20)

static unsigned long psz;

static int hmi_rw(int fd, unsigned long cmd, void *addr, void *buf,
		  unsigned long npages, unsigned long *faults)
{
	struct hmi_access a = {
		.addr = (uintptr_t)addr,
		.ptr = (uintptr_t)buf,
		.npages = npages,
	};

	if (ioctl(fd, cmd, &a))
		return -errno;
	if (faults)
		*faults = a.faults;
	return 0;
}

static int dev_read(int fd, void *addr, void *buf, unsigned long npages)
{
	return hmi_rw(fd, HMI_READ, addr, buf, npages, NULL);
}

static int dev_write(int fd, void *addr, void *buf, unsigned long npages)
{
	return hmi_rw(fd, HMI_WRITE, addr, buf, npages, NULL);
}

static int dev_state(int fd, struct hmi_state *st, struct hmi_range *ranges)
{
	memset(st, 0, sizeof(*st));
	st->ranges = (uintptr_t)ranges;
	st->max_ranges = ranges ? MAX_RANGES : 0;
	if (ioctl(fd, HMI_STATE, st))
		return -errno;
	return 0;
}

static int dev_sync(int fd)
{
	return ioctl(fd, HMI_SYNC) ? -errno : 0;
}

/* Word i of page p of a buffer filled with seed. */
static uint64_t pattern(uint64_t seed, unsigned long p, unsigned long i)
{
	return seed * 0x9e3779b97f4a7c15ULL ^ (p << 20) ^ i;
}

static void fill(void *buf, unsigned long npages, uint64_t seed)
{
	uint64_t *w = buf;
	unsigned long p, i, n = psz / sizeof(*w);

	for (p = 0; p < npages; p++)
		for (i = 0; i < n; i++)
			w[p * n + i] = pattern(seed, p, i);
}

/* Number of words of buf that differ from fill(buf, npages, seed). */
static unsigned long check(const void *buf, unsigned long npages,
			   uint64_t seed)
{
	const uint64_t *w = buf;
	unsigned long p, i, n = psz / sizeof(*w), bad = 0;

	for (p = 0; p < npages; p++)
		for (i = 0; i < n; i++)
			bad += w[p * n + i] != pattern(seed, p, i);
	return bad;
}

/*
 * An anonymous mapping of npages, aligned to align bytes, between two
 * PROT_NONE guard pages so that it never merges with a neighbouring VMA: the
 * tests count ranges, and a VMA-covering range would cover the neighbour too.
 */
static char *map_aligned(unsigned long npages, unsigned long align)
{
	unsigned long len = npages * psz, total = len + align + 2 * psz;
	char *p, *a;

	p = mmap(NULL, total, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + psz + align - 1) & ~(align - 1));
	if (a - psz > p)
		munmap(p, a - psz - p);
	if (a + len + psz < p + total)
		munmap(a + len + psz, p + total - (a + len + psz));
	if (mprotect(a - psz, psz, PROT_NONE) ||
	    mprotect(a + len, psz, PROT_NONE))
		return NULL;
	return a;
}

/*
 * Pages of [lo, hi) covered by a live range, as a bitmap of at most 64
 * pages; the ranges must not overlap each other. Returns -1 on overlap.
 */
static int64_t tracked_pages(int fd, char *lo, unsigned long npages,
			     unsigned int *nr)
{
	static struct hmi_range ranges[MAX_RANGES];
	uintptr_t l = (uintptr_t)lo, h = l + npages * psz;
	struct hmi_state st;
	uint64_t mask = 0;
	unsigned int i;
	uint64_t a;

	if (dev_state(fd, &st, ranges))
		return -1;
	*nr = 0;
	for (i = 0; i < st.nr_ranges && i < MAX_RANGES; i++) {
		if (i && ranges[i].start < ranges[i - 1].end)
			return -1;
		if (ranges[i].end <= l || ranges[i].start >= h)
			continue;
		(*nr)++;
		for (a = ranges[i].start; a < ranges[i].end; a += psz)
			if (a >= l && a < h)
				mask |= 1ULL << ((a - l) / psz);
	}
	return mask;
}

static uint64_t page_mask(unsigned long first, unsigned long n)
{
	return n >= 64 ? ~0ULL : ((1ULL << n) - 1) << first;
}

FIXTURE(hmi)
{
	int fd;
	unsigned long granule;
};

FIXTURE_VARIANT(hmi)
{
	unsigned int granule_shift;
};

FIXTURE_VARIANT_ADD(hmi, vma)
{
	.granule_shift = 0,
};

FIXTURE_VARIANT_ADD(hmi, granule_64k)
{
	.granule_shift = 16,
};

FIXTURE_SETUP(hmi)
{
	unsigned int shift = variant->granule_shift;

	psz = sysconf(_SC_PAGESIZE);
	self->fd = open(HMI_DEV, O_RDWR);
	if (self->fd < 0)
		SKIP(return, "%s: %s (load test_hmm_intervals.ko)", HMI_DEV,
		     strerror(errno));
	ASSERT_EQ(ioctl(self->fd, HMI_SET_POLICY, &shift), 0);
	self->granule = shift ? 1UL << shift : 0;
}

FIXTURE_TEARDOWN(hmi)
{
	if (self->fd >= 0)
		close(self->fd);
}

/* The range a fault creates: the VMA, or the granule clipped to it. */
TEST_F(hmi, fault_creates_range)
{
	unsigned long n = 48, align = 64 * 1024;
	char *p = map_aligned(n, align);
	char *buf = malloc(psz);
	unsigned int nr;
	int64_t mask;

	ASSERT_NE(p, NULL);
	fill(p + 20 * psz, 1, 7);
	ASSERT_EQ(dev_read(self->fd, p + 20 * psz, buf, 1), 0);
	ASSERT_EQ(check(buf, 1, 7), 0);
	mask = tracked_pages(self->fd, p, n, &nr);
	ASSERT_EQ(nr, 1);
	/* Granule: pages 16..31, the 64 KiB block of page 20. */
	ASSERT_EQ(mask, self->granule ? page_mask(16, 16) : page_mask(0, n));
	munmap(p, n * psz);
	free(buf);
}

/* Faults anywhere in a VMA reuse its range(s). */
TEST_F(hmi, faults_reuse_range)
{
	unsigned long n = 48, i, faults = ~0UL;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);
	struct hmi_state st;
	unsigned int nr;

	ASSERT_NE(p, NULL);
	fill(p, n, 1);
	for (i = 0; i < n; i++)
		ASSERT_EQ(dev_read(self->fd, p + i * psz, buf + i * psz, 1), 0);
	ASSERT_EQ(check(buf, n, 1), 0);
	ASSERT_EQ(tracked_pages(self->fd, p, n, &nr), page_mask(0, n));
	ASSERT_EQ(nr, self->granule ? 3 : 1);
	ASSERT_EQ(dev_state(self->fd, &st, NULL), 0);
	ASSERT_EQ(st.created, nr);
	/* Mapped now: a second read takes no fault at all. */
	ASSERT_EQ(hmi_rw(self->fd, HMI_READ, p, buf, n, &faults), 0);
	ASSERT_EQ(faults, 0);
	munmap(p, n * psz);
	free(buf);
}

struct cut {
	unsigned long first, n;		/* pages unmapped, of 48 */
	unsigned int vma_ranges;	/* live ranges after, VMA policy */
	unsigned long split, shrunk;	/* counters after, VMA policy */
};

static void cut_test(struct __test_metadata *_metadata, int fd,
		     const struct cut *c)
{
	unsigned long n = 48;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);
	uint64_t want = page_mask(0, n) & ~page_mask(c->first, c->n);
	unsigned int nr;

	ASSERT_NE(p, NULL);
	fill(p, n, 3);
	ASSERT_EQ(dev_read(fd, p, buf, n), 0);
	ASSERT_EQ(munmap(p + c->first * psz, c->n * psz), 0);
	ASSERT_EQ(dev_sync(fd), 0);
	/* Exactly the surviving pages are tracked. */
	ASSERT_EQ(tracked_pages(fd, p, n, &nr), want);
	if (c->vma_ranges != (unsigned int)-1)
		ASSERT_EQ(nr, c->vma_ranges);
	/* And still read right through the device. */
	if (c->first)
		ASSERT_EQ(dev_read(fd, p, buf, c->first), 0);
	if (c->first + c->n < n)
		ASSERT_EQ(dev_read(fd, p + (c->first + c->n) * psz,
				   buf + (c->first + c->n) * psz,
				   n - c->first - c->n), 0);
	ASSERT_EQ(dev_read(fd, p + c->first * psz, buf, 1), -EFAULT);
	if (c->vma_ranges != (unsigned int)-1) {
		struct hmi_state st;

		ASSERT_EQ(dev_state(fd, &st, NULL), 0);
		ASSERT_EQ(st.split, c->split);
		ASSERT_EQ(st.shrunk, c->shrunk);
	}
	munmap(p, n * psz);
	free(buf);
}

TEST_F(hmi, munmap_middle_splits)
{
	struct cut c = { 20, 5, self->granule ? -1 : 2, 1, 0 };

	cut_test(_metadata, self->fd, &c);
}

TEST_F(hmi, munmap_edge_shrinks)
{
	struct cut c = { 40, 8, self->granule ? -1 : 1, 0, 1 };

	cut_test(_metadata, self->fd, &c);
}

TEST_F(hmi, munmap_all_removes)
{
	unsigned long n = 48;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);
	struct hmi_state st;
	unsigned int nr;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(munmap(p, n * psz), 0);
	ASSERT_EQ(dev_sync(self->fd), 0);
	ASSERT_EQ(tracked_pages(self->fd, p, n, &nr), 0);
	ASSERT_EQ(nr, 0);
	ASSERT_EQ(dev_state(self->fd, &st, NULL), 0);
	ASSERT_EQ(st.removed, st.created);
	ASSERT_EQ(st.mapped, st.zapped);
	free(buf);
}

TEST_F(hmi, mremap_moves)
{
	unsigned long n = 32;
	char *p = map_aligned(n, 64 * 1024);
	char *q = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);
	unsigned int nr;

	ASSERT_NE(p, NULL);
	ASSERT_NE(q, NULL);
	fill(p, n, 5);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(mremap(p, n * psz, n * psz, MREMAP_MAYMOVE | MREMAP_FIXED, q),
		  q);
	ASSERT_EQ(dev_sync(self->fd), 0);
	ASSERT_EQ(tracked_pages(self->fd, p, n, &nr), 0);
	ASSERT_EQ(dev_read(self->fd, p, buf, 1), -EFAULT);
	memset(buf, 0, n * psz);
	ASSERT_EQ(dev_read(self->fd, q, buf, n), 0);
	ASSERT_EQ(check(buf, n, 5), 0);
	munmap(q, n * psz);
	free(buf);
}

TEST_F(hmi, mprotect_readonly_write_fails)
{
	unsigned long n = 8;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);

	ASSERT_NE(p, NULL);
	fill(buf, n, 9);
	ASSERT_EQ(dev_write(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(p, n, 9), 0);
	ASSERT_EQ(mprotect(p, n * psz, PROT_READ), 0);
	fill(buf, n, 10);
	ASSERT_EQ(dev_write(self->fd, p, buf, n), -EPERM);
	ASSERT_EQ(check(p, n, 9), 0);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 9), 0);
	munmap(p, n * psz);
	free(buf);
}

TEST_F(hmi, fork_cow)
{
	unsigned long n = 8;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);
	int status, pipefd[2];
	pid_t pid;
	char c;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(pipe(pipefd), 0);
	fill(p, n, 11);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		/* The child writes its copy once the parent wrote its own. */
		if (read(pipefd[0], &c, 1) != 1)
			_exit(2);
		fill(p, n, 13);
		_exit(check(p, n, 13) ? 1 : 0);
	}
	/* Parent: COW breaks, the device must drop the shared pages. */
	fill(p, n, 12);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 12), 0);
	ASSERT_EQ(write(pipefd[1], "x", 1), 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 12), 0);
	munmap(p, n * psz);
	free(buf);
}

TEST_F(hmi, shared_file)
{
	unsigned long n = 16, i;
	char *buf = malloc(n * psz);
	int mfd = memfd_create("hmi", 0);
	char *p, *q;

	ASSERT_GE(mfd, 0);
	ASSERT_EQ(ftruncate(mfd, n * psz), 0);
	p = mmap(NULL, n * psz, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	q = mmap(NULL, n * psz, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(p, MAP_FAILED);
	ASSERT_NE(q, MAP_FAILED);
	fill(q, n, 21);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 21), 0);
	/* Written through the device, seen through the other mapping. */
	fill(buf, n, 22);
	ASSERT_EQ(dev_write(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(q, n, 22), 0);
	/* Truncated and grown again: the device must see the new zeroes. */
	ASSERT_EQ(ftruncate(mfd, 0), 0);
	ASSERT_EQ(ftruncate(mfd, n * psz), 0);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	for (i = 0; i < n * psz; i++)
		ASSERT_EQ(buf[i], 0);
	munmap(p, n * psz);
	munmap(q, n * psz);
	close(mfd);
	free(buf);
}

TEST_F(hmi, thp)
{
	unsigned long n = TWOMEG / psz * 2;
	char *p = map_aligned(n, TWOMEG);
	char *buf = malloc(n * psz);
	unsigned int nr;

	ASSERT_NE(p, NULL);
	madvise(p, n * psz, MADV_HUGEPAGE);
	fill(p, n, 31);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 31), 0);
	/* Cut one page out of the first huge page: it is split. */
	ASSERT_EQ(munmap(p + 100 * psz, psz), 0);
	ASSERT_EQ(dev_sync(self->fd), 0);
	ASSERT_EQ(tracked_pages(self->fd, p + 96 * psz, 8, &nr),
		  page_mask(0, 8) & ~page_mask(4, 1));
	ASSERT_EQ(dev_read(self->fd, p, buf, 100), 0);
	ASSERT_EQ(check(buf, 100, 31), 0);
	ASSERT_EQ(dev_read(self->fd, p + 101 * psz, buf, 1), 0);
	ASSERT_EQ(memcmp(buf, p + 101 * psz, psz), 0);
	munmap(p, n * psz);
	free(buf);
}

/* New memory at an unmapped address: the device reads the new data. */
TEST_F(hmi, unmap_remap_no_stale)
{
	unsigned long n = 16, round;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);

	ASSERT_NE(p, NULL);
	for (round = 0; round < 20; round++) {
		fill(p, n, 100 + round);
		ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
		ASSERT_EQ(check(buf, n, 100 + round), 0);
		ASSERT_EQ(munmap(p + (round % 4) * psz, (n - round % 4) * psz), 0);
		ASSERT_EQ(mmap(p + (round % 4) * psz, (n - round % 4) * psz,
			       PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
			  p + (round % 4) * psz);
	}
	munmap(p, n * psz);
	free(buf);
}

#define STRESS_CHUNKS		4
#define STRESS_CHUNK_PAGES	16
#define STRESS_SECONDS		3

struct stress {
	int fd;
	char *base;
	int stop;		/* __atomic: read by every thread */
	unsigned long verified[STRESS_CHUNKS], reads, busy;
	unsigned long errors[STRESS_CHUNKS + 2];
};

struct stress_arg {
	struct stress *s;
	int id;
};

/* Word i of page p holds (generation << 32 | page index of the region). */
static void *stress_writer(void *data)
{
	struct stress_arg *a = data;
	struct stress *s = a->s;
	unsigned long npg = STRESS_CHUNK_PAGES, first = a->id * npg, p, i, gen;
	char *chunk = s->base + first * psz;
	uint64_t *buf = malloc(npg * psz), *w;
	unsigned long words = psz / 8;
	unsigned int seed = a->id;

	for (gen = 1; !__atomic_load_n(&s->stop, __ATOMIC_RELAXED); gen++) {
		if (munmap(chunk, npg * psz) ||
		    mmap(chunk, npg * psz, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != chunk) {
			s->errors[a->id]++;
			break;
		}
		for (p = 0; p < npg; p++) {
			w = (uint64_t *)(chunk + p * psz);
			for (i = 0; i < words; i++)
				w[i] = gen << 32 | (first + p);
		}
		/*
		 * Strict: after our own remap, exactly the new data. -EBUSY
		 * is the device giving up on a range other writers keep
		 * invalidating (one VMA-wide range covers several chunks).
		 */
		switch (dev_read(s->fd, chunk, buf, npg)) {
		case 0:
			break;
		case -EBUSY:
			s->busy++;
			continue;
		default:
			s->errors[a->id]++;
			continue;
		}
		for (p = 0; p < npg; p++)
			for (i = 0; i < words; i++)
				if (buf[p * words + i] != (gen << 32 | (first + p)))
					s->errors[a->id]++;
		s->verified[a->id]++;
		usleep(rand_r(&seed) % 2000);
	}
	free(buf);
	return NULL;
}

/* Loose: any page read is a page of this region, of one generation. */
static void *stress_reader(void *data)
{
	struct stress_arg *a = data;
	struct stress *s = a->s;
	unsigned long total = STRESS_CHUNKS * STRESS_CHUNK_PAGES, p, i;
	unsigned long words = psz / 8;
	uint64_t *buf = malloc(psz);
	unsigned int seed = a->id;

	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		p = rand_r(&seed) % total;
		if (dev_read(s->fd, s->base + p * psz, buf, 1))
			continue;	/* unmapped at that moment */
		s->reads++;
		for (i = 0; i < words; i++)
			if (buf[i] && (buf[i] & 0xffffffff) != p)
				s->errors[a->id]++;
	}
	free(buf);
	return NULL;
}

/* Threads unmap and map again while others read through the device. */
TEST_F(hmi, threads_unmap_remap_read)
{
	unsigned long total = STRESS_CHUNKS * STRESS_CHUNK_PAGES, sum = 0;
	pthread_t th[STRESS_CHUNKS + 2];
	struct stress_arg args[STRESS_CHUNKS + 2];
	struct stress s = { .fd = self->fd };
	int i;

	s.base = map_aligned(total, 64 * 1024);
	ASSERT_NE(s.base, NULL);
	for (i = 0; i < STRESS_CHUNKS + 2; i++) {
		args[i].s = &s;
		args[i].id = i;
		ASSERT_EQ(pthread_create(&th[i], NULL, i < STRESS_CHUNKS ?
					 stress_writer : stress_reader,
					 &args[i]), 0);
	}
	sleep(STRESS_SECONDS);
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < STRESS_CHUNKS + 2; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < STRESS_CHUNKS + 2; i++)
		ASSERT_EQ(s.errors[i], 0);
	for (i = 0; i < STRESS_CHUNKS; i++) {
		ASSERT_GT(s.verified[i], 0);
		sum += s.verified[i];
	}
	TH_LOG("%lu verified remaps (%lu busy), %lu concurrent reads", sum,
	       s.busy, s.reads);
	munmap(s.base, total * psz);
}

/* Close a device whose tracker still has deferred work queued. */
TEST_F(hmi, close_with_pending_work)
{
	unsigned long n = 64, i;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(psz);
	int round, fd;

	ASSERT_NE(p, NULL);
	for (round = 0; round < 10; round++) {
		fd = open(HMI_DEV, O_RDWR);
		ASSERT_GE(fd, 0);
		for (i = 0; i < n; i += 2)
			ASSERT_EQ(dev_read(fd, p + i * psz, buf, 1), 0);
		/* Every other page: each munmap queues a reshape. */
		for (i = 1; i < n; i += 4)
			munmap(p + i * psz, psz);
		close(fd);
		for (i = 1; i < n; i += 4)
			ASSERT_EQ(mmap(p + i * psz, psz, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				       -1, 0), p + i * psz);
	}
	munmap(p, n * psz);
	free(buf);
}

TEST_F(hmi, bad_ioctl_args)
{
	char *p = map_aligned(4, 64 * 1024);
	char *buf = malloc(4 * psz);
	unsigned int shift;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(dev_read(self->fd, p + 1, buf, 1), -EINVAL);
	ASSERT_EQ(dev_read(self->fd, p, buf, 0), -EINVAL);
	ASSERT_EQ(dev_read(self->fd, p, buf, HMI_MAX_PAGES + 1), -EINVAL);
	ASSERT_EQ(dev_read(self->fd, p, buf, ~0UL), -EINVAL);
	ASSERT_EQ(dev_read(self->fd, (void *)0xffff888000000000UL, buf, 1),
		  -EFAULT);
	ASSERT_EQ(dev_read(self->fd, (void *)-psz, buf, 1), -EFAULT);
	ASSERT_EQ(dev_read(self->fd, (void *)0x7ffffffff000UL, buf, 2),
		  -EFAULT);
	ASSERT_EQ(dev_read(self->fd, p + 4 * psz, buf, 1), -EFAULT);
	ASSERT_EQ(dev_read(self->fd, NULL, buf, 1), -EFAULT);
	ASSERT_EQ(dev_read(self->fd, p, NULL, 1), -EFAULT);
	ASSERT_EQ(dev_write(self->fd, p, (void *)0xffff888000000000UL, 1),
		  -EFAULT);
	ASSERT_EQ(ioctl(self->fd, HMI_READ, NULL), -1);
	ASSERT_EQ(errno, EFAULT);
	ASSERT_EQ(ioctl(self->fd, _IO('H', 0x7f)), -1);
	ASSERT_EQ(errno, ENOTTY);
	/* The policy is set before first use, to a sane value. */
	shift = 16;
	ASSERT_EQ(ioctl(self->fd, HMI_SET_POLICY, &shift), -1);
	ASSERT_EQ(errno, EBUSY);
	close(self->fd);
	self->fd = open(HMI_DEV, O_RDWR);
	ASSERT_GE(self->fd, 0);
	for (shift = 1; shift < 64; shift += 10) {
		if (shift >= 12 && shift <= 30)
			continue;
		ASSERT_EQ(ioctl(self->fd, HMI_SET_POLICY, &shift), -1);
		ASSERT_EQ(errno, EINVAL);
	}
	/* Still works after all that. */
	fill(p, 4, 41);
	ASSERT_EQ(dev_read(self->fd, p, buf, 4), 0);
	ASSERT_EQ(check(buf, 4, 41), 0);
	munmap(p, 4 * psz);
	free(buf);
}

TEST_HARNESS_MAIN
