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

/*
 * Pages the device maps in [addr, addr + npages) that the CPU does not map
 * there (another page, no page, or read-only where the device may write);
 * -errno if the check failed. The first one is logged.
 */
static long dev_violations(int fd, void *addr, unsigned long npages,
			   struct hmi_check *out)
{
	struct hmi_check c = {
		.addr = (uintptr_t)addr,
		.npages = npages,
	};

	if (ioctl(fd, HMI_CHECK, &c))
		return -errno;
	if (c.violations)
		fprintf(stderr, "# device maps %llu page(s) the CPU does not map, first at %#llx\n",
			(unsigned long long)c.violations,
			(unsigned long long)c.first_bad);
	if (out)
		*out = c;
	return c.violations;
}

static int dev_snapshot(int fd, void *addr, unsigned long npages, uint8_t *out)
{
	struct hmi_snapshot s = {
		.addr = (uintptr_t)addr,
		.ptr = (uintptr_t)out,
		.npages = npages,
	};

	return ioctl(fd, HMI_SNAPSHOT, &s) ? -errno : 0;
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

/*
 * HMI_WHOLE_MM, the CPU-side benchmark's stand-in for a driver with a
 * notifier on the whole mm, next to the tracker: registered once, the
 * device still reads what the CPU maps after both cleared on an
 * invalidation; the unload after the last close shows it was unregistered.
 */
TEST_F(hmi, whole_mm_notifier)
{
	unsigned long n = 16;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);
	struct hmi_state st;

	ASSERT_NE(p, NULL);
	ASSERT_NE(buf, NULL);
	ASSERT_EQ(ioctl(self->fd, HMI_WHOLE_MM), 0);
	ASSERT_EQ(ioctl(self->fd, HMI_WHOLE_MM), -1);
	ASSERT_EQ(errno, EBUSY);
	fill(p, n, 3);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 3), 0);
	ASSERT_EQ(madvise(p, n * psz, MADV_DONTNEED), 0);
	ASSERT_EQ(dev_state(self->fd, &st, NULL), 0);
	ASSERT_EQ(st.entries, 0);
	fill(p, n, 4);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 4), 0);
	ASSERT_EQ(dev_violations(self->fd, p, n, NULL), 0);
	munmap(p, n * psz);
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

/* Read twice more: the device faults each page once. */
TEST_F(hmi, anon_read_multiple)
{
	unsigned long n = 16, faults = ~0UL, round;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);

	ASSERT_NE(p, NULL);
	fill(p, n, 51);
	ASSERT_EQ(hmi_rw(self->fd, HMI_READ, p, buf, n, &faults), 0);
	ASSERT_EQ(faults, n);
	for (round = 0; round < 2; round++) {
		memset(buf, 0, n * psz);
		ASSERT_EQ(hmi_rw(self->fd, HMI_READ, p, buf, n, &faults), 0);
		ASSERT_EQ(faults, 0);
		ASSERT_EQ(check(buf, n, 51), 0);
	}
	ASSERT_EQ(dev_violations(self->fd, p, n, NULL), 0);
	munmap(p, n * psz);
	free(buf);
}

/* Two devices (two trackers) mirror the same memory; both let go of it. */
TEST_F(hmi, double_map_two_trackers)
{
	unsigned long n = 16;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);
	unsigned int shift = variant->granule_shift, nr;
	struct hmi_state st;
	int fd2;

	ASSERT_NE(p, NULL);
	fd2 = open(HMI_DEV, O_RDWR);
	ASSERT_GE(fd2, 0);
	ASSERT_EQ(ioctl(fd2, HMI_SET_POLICY, &shift), 0);
	fill(p, n, 53);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 53), 0);
	memset(buf, 0, n * psz);
	ASSERT_EQ(dev_read(fd2, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 53), 0);
	/* One device writes, the other reads it. */
	fill(buf, n, 54);
	ASSERT_EQ(dev_write(fd2, p, buf, n), 0);
	memset(buf, 0, n * psz);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 54), 0);
	ASSERT_EQ(munmap(p + 4 * psz, 4 * psz), 0);
	ASSERT_EQ(dev_violations(self->fd, p, n, NULL), 0);
	ASSERT_EQ(dev_violations(fd2, p, n, NULL), 0);
	ASSERT_EQ(dev_sync(fd2), 0);
	ASSERT_EQ(tracked_pages(fd2, p, n, &nr),
		  page_mask(0, n) & ~page_mask(4, 4));
	ASSERT_EQ(dev_state(fd2, &st, NULL), 0);
	ASSERT_GT(st.zapped, 0);
	close(fd2);
	munmap(p, n * psz);
	free(buf);
}

/*
 * A shared anonymous mapping written by a child through its own device:
 * the parent sees it through the CPU and through its device.
 */
TEST_F(hmi, anon_write_child_shared)
{
	unsigned long n = 8;
	char *p = mmap(NULL, n * psz, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *buf = malloc(n * psz);
	unsigned int shift = variant->granule_shift;
	int status;
	pid_t pid;

	ASSERT_NE(p, MAP_FAILED);
	fill(p, n, 55);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 55), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		int fd = open(HMI_DEV, O_RDWR);

		/* The parent's device mirrors the parent only. */
		if (dev_read(self->fd, p, buf, 1) != -EPERM)
			_exit(3);
		if (fd < 0 || ioctl(fd, HMI_SET_POLICY, &shift))
			_exit(2);
		fill(buf, n, 56);
		_exit(dev_write(fd, p, buf, n) ? 1 : 0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT_EQ(check(p, n, 56), 0);
	memset(buf, 0, n * psz);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 56), 0);
	ASSERT_EQ(dev_violations(self->fd, p, n, NULL), 0);
	munmap(p, n * psz);
	free(buf);
}

/* hugetlbfs memory through the device, then unmapped. */
TEST_F(hmi, hugetlbfs)
{
	unsigned long n = TWOMEG / psz;
	char *buf = malloc(n * psz);
	char *p;

	p = mmap(NULL, TWOMEG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	ASSERT_NE(p, MAP_FAILED) TH_LOG("no huge page: /init reserves them");
	fill(p, n, 57);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(check(buf, n, 57), 0);
	fill(buf, 1, 58);
	ASSERT_EQ(dev_write(self->fd, p + 7 * psz, buf, 1), 0);
	ASSERT_EQ(memcmp(p + 7 * psz, buf, psz), 0);
	ASSERT_EQ(dev_violations(self->fd, p, n, NULL), 0);
	ASSERT_EQ(munmap(p, TWOMEG), 0);
	ASSERT_EQ(dev_sync(self->fd), 0);
	ASSERT_EQ(dev_read(self->fd, p, buf, 1), -EFAULT);
	free(buf);
}

/* The CPU page table, read without faulting anything in. */
TEST_F(hmi, snapshot_no_fault)
{
	unsigned long n = 16, i;
	char *p = map_aligned(n, 64 * 1024);
	uint8_t snap[16];

	ASSERT_NE(p, NULL);
	for (i = 0; i < n; i += 2)
		p[i * psz] = 1;
	ASSERT_EQ(mprotect(p + 12 * psz, 4 * psz, PROT_READ), 0);
	ASSERT_EQ(dev_snapshot(self->fd, p, n, snap), 0);
	for (i = 0; i < n; i++) {
		if (i & 1) {
			ASSERT_EQ(snap[i], 0);
		} else {
			ASSERT_TRUE(snap[i] & HMI_SNAP_VALID);
			ASSERT_EQ(!!(snap[i] & HMI_SNAP_WRITE), i < 12);
		}
	}
	/* Nothing was faulted in by the snapshot. */
	ASSERT_EQ(dev_snapshot(self->fd, p, n, snap), 0);
	for (i = 1; i < n; i += 2)
		ASSERT_EQ(snap[i], 0);
	munmap(p, n * psz);
}

/* A process exits with its device file open; the file goes after its mm. */
TEST_F(hmi, exit_with_device_open)
{
	unsigned int shift = variant->granule_shift;
	int round, status;
	pid_t pid;

	for (round = 0; round < 5; round++) {
		pid = fork();
		ASSERT_GE(pid, 0);
		if (!pid) {
			unsigned long n = 32;
			char *p = map_aligned(n, 64 * 1024);
			char *buf = malloc(n * psz);
			int fd = open(HMI_DEV, O_RDWR);

			if (!p || !buf || fd < 0 ||
			    ioctl(fd, HMI_SET_POLICY, &shift))
				_exit(2);
			fill(p, n, 59);
			if (dev_read(fd, p, buf, n) || check(buf, n, 59))
				_exit(1);
			/* No munmap, no close: exit does both. */
			_exit(0);
		}
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
}

static void *exit_race_reader(void *data)
{
	int *fd = data;
	unsigned long n = 64;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);

	for (;;) {
		dev_read(*fd, p, buf, n);
		madvise(p, n * psz, MADV_DONTNEED);
	}
	return NULL;
}

/* The process exits while a thread is in the middle of device faults. */
TEST_F(hmi, fault_racing_exit)
{
	unsigned int shift = variant->granule_shift;
	int round, status;
	pid_t pid;

	for (round = 0; round < 20; round++) {
		pid = fork();
		ASSERT_GE(pid, 0);
		if (!pid) {
			static int fd;
			pthread_t th;

			fd = open(HMI_DEV, O_RDWR);
			if (fd < 0 || ioctl(fd, HMI_SET_POLICY, &shift) ||
			    pthread_create(&th, NULL, exit_race_reader, &fd))
				_exit(2);
			usleep(1000 + round * 500);
			/* exit_group() kills the reader, wherever it is. */
			_exit(0);
		}
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
}

/* Device-private memory: migrate, map, read; the CPU takes it back. */
TEST_F(hmi, migrate_to_device_and_back)
{
	unsigned long n = 32, faults = 0, i;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);
	struct hmi_state st;
	uint8_t snap[32];

	ASSERT_NE(p, NULL);
	fill(p, n, 61);
	ASSERT_EQ(dev_read(self->fd, p, buf, n), 0);
	ASSERT_EQ(hmi_rw(self->fd, HMI_MIGRATE, p, NULL, n, &faults), 0);
	ASSERT_EQ(faults, n);
	ASSERT_EQ(dev_snapshot(self->fd, p, n, snap), 0);
	for (i = 0; i < n; i++)
		ASSERT_TRUE(snap[i] & HMI_SNAP_DEVMEM);
	ASSERT_EQ(dev_state(self->fd, &st, NULL), 0);
	ASSERT_GE(st.devmem, n);
	ASSERT_EQ(dev_violations(self->fd, p, n, NULL), 0);
	/* Read and written through device memory. */
	memset(buf, 0, n * psz);
	ASSERT_EQ(hmi_rw(self->fd, HMI_READ, p, buf, n, &faults), 0);
	ASSERT_EQ(faults, 0);
	ASSERT_EQ(check(buf, n, 61), 0);
	fill(buf, n, 62);
	ASSERT_EQ(dev_write(self->fd, p, buf, n), 0);
	/* The CPU touches the pages: back to system memory, device zapped. */
	ASSERT_EQ(check(p, n, 62), 0);
	ASSERT_EQ(dev_snapshot(self->fd, p, n, snap), 0);
	for (i = 0; i < n; i++)
		ASSERT_FALSE(snap[i] & HMI_SNAP_DEVMEM);
	ASSERT_EQ(dev_violations(self->fd, p, n, NULL), 0);
	memset(buf, 0, n * psz);
	ASSERT_EQ(hmi_rw(self->fd, HMI_READ, p, buf, n, &faults), 0);
	ASSERT_EQ(faults, n);
	ASSERT_EQ(check(buf, n, 62), 0);
	munmap(p, n * psz);
	free(buf);
}

#define MIGRATE_ROUNDS	30
#define MIGRATE_MIN_HITS	3
#define MIGRATE_MAX_ROUNDS	600

struct migrate_race {
	char *p;
	unsigned long n;
	int stop;
	unsigned long dontneeds;
};

static void *migrate_race_dontneed(void *data)
{
	struct migrate_race *m = data;
	unsigned int seed = 7;
	unsigned long i;

	while (!__atomic_load_n(&m->stop, __ATOMIC_RELAXED)) {
		i = rand_r(&seed) % m->n;
		madvise(m->p + i * psz, psz, MADV_DONTNEED);
		m->dontneeds++;
		/* Not all the time: the migrations must also complete. */
		usleep(rand_r(&seed) % 500);
	}
	return NULL;
}

/*
 * Migrations and their map-after-migrate race MADV_DONTNEED of the same
 * pages, which frees them: the device must never map a freed page.
 */
TEST_F(hmi, migrate_races_dontneed)
{
	struct migrate_race m = { .n = 32 };
	unsigned long round, faults, bad = 0, checks = 0;
	struct hmi_state st0, st;
	bool failed = false;
	pthread_t th;
	long v;

	m.p = map_aligned(m.n, 64 * 1024);
	ASSERT_NE(m.p, NULL);
	ASSERT_EQ(dev_state(self->fd, &st0, NULL), 0);
	st = st0;
	ASSERT_EQ(pthread_create(&th, NULL, migrate_race_dontneed, &m), 0);
	/*
	 * MIGRATE_ROUNDS rounds, then on until a few reads were found stale
	 * (bounded): a race test counts only if the race was hit.
	 */
	for (round = 0; round < MIGRATE_ROUNDS ||
	     (st.retries - st0.retries < MIGRATE_MIN_HITS &&
	      round < MIGRATE_MAX_ROUNDS); round++) {
		memset(m.p, 1, m.n * psz);
		if (hmi_rw(self->fd, HMI_MIGRATE, m.p, NULL, m.n, &faults) &&
		    errno != EBUSY) {
			failed = true;
			break;
		}
		v = dev_violations(self->fd, m.p, m.n, NULL);
		if (v > 0)
			bad++;
		if (v >= 0)
			checks++;
		if (dev_state(self->fd, &st, NULL)) {
			failed = true;
			break;
		}
	}
	__atomic_store_n(&m.stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	ASSERT_FALSE(failed);
	ASSERT_EQ(bad, 0);
	ASSERT_EQ(dev_violations(self->fd, m.p, m.n, NULL), 0);
	ASSERT_EQ(dev_state(self->fd, &st, NULL), 0);
	TH_LOG("%lu migrations, %llu pages migrated, %lu MADV_DONTNEED, %lu checks",
	       round, (unsigned long long)(st.migrated - st0.migrated),
	       m.dontneeds, checks);
	TH_LOG("%llu stale reads retried (races hit)",
	       (unsigned long long)(st.retries - st0.retries));
	ASSERT_GT(st.migrated - st0.migrated, 0);
	ASSERT_GT(checks, 0);
	ASSERT_GT(st.retries - st0.retries, 0);
	munmap(m.p, m.n * psz);
}

/* Device-exclusive access; a CPU access ends it and zaps the device. */
TEST_F(hmi, exclusive_access)
{
	unsigned long n = 8, faults = 0;
	char *p = map_aligned(n, 64 * 1024);
	char *buf = malloc(n * psz);
	struct hmi_check c;
	struct hmi_state st;

	ASSERT_NE(p, NULL);
	fill(p, n, 63);
	ASSERT_EQ(hmi_rw(self->fd, HMI_EXCLUSIVE, p, NULL, n, &faults), 0);
	ASSERT_EQ(faults, n);
	ASSERT_EQ(dev_violations(self->fd, p, n, &c), 0);
	ASSERT_EQ(c.exclusive, n);
	/* The device reads and writes through its exclusive mappings. */
	ASSERT_EQ(hmi_rw(self->fd, HMI_READ, p, buf, n, &faults), 0);
	ASSERT_EQ(faults, 0);
	ASSERT_EQ(check(buf, n, 63), 0);
	fill(buf, n, 64);
	ASSERT_EQ(dev_write(self->fd, p, buf, n), 0);
	ASSERT_EQ(dev_state(self->fd, &st, NULL), 0);
	ASSERT_EQ(st.exclusive, n);
	/* The CPU reads page 0: exclusivity ends there, the device drops it. */
	ASSERT_EQ(check(p, 1, 64), 0);
	ASSERT_EQ(dev_violations(self->fd, p, n, &c), 0);
	ASSERT_EQ(c.exclusive, n - 1);
	/* And faults it back in as an ordinary mapping. */
	ASSERT_EQ(hmi_rw(self->fd, HMI_READ, p, buf, 1, &faults), 0);
	ASSERT_EQ(faults, 1);
	ASSERT_EQ(check(buf, 1, 64), 0);
	munmap(p, n * psz);
	free(buf);
}

/* --- the race test: device threads against every kind of CPU change --- */

#define RACE_PAGES	64
/* At least this long, then on until a few reads were found stale. */
#define RACE_SECONDS	5
#define RACE_MIN_HITS	3
#define RACE_MAX_SECONDS	30
#define RACE_LOG	64

enum race_op { OP_MUNMAP, OP_MREMAP, OP_MPROTECT, OP_DONTNEED, OP_FORK,
	       OP_MIGRATE, NR_RACE_OPS };

static const char *const race_op_name[] = {
	"munmap+mmap", "mremap away and back", "mprotect", "MADV_DONTNEED",
	"fork", "migrate",
};

struct race {
	int fd;
	char *base, *spare[2];
	int stop;
	unsigned long ops[NR_RACE_OPS], reads, checks, busy_checks, violations;
	/* The last CPU operations, for the report of a violation. */
	struct {
		unsigned long seq, page, npages;
		enum race_op op;
	} log[RACE_LOG];
	unsigned long seq;
	pthread_mutex_t log_lock;
	unsigned int seed, device_threads;
};

static void race_log(struct race *r, enum race_op op, unsigned long page,
		     unsigned long npages)
{
	unsigned long i;

	pthread_mutex_lock(&r->log_lock);
	i = r->seq++ % RACE_LOG;
	r->log[i].seq = r->seq;
	r->log[i].op = op;
	r->log[i].page = page;
	r->log[i].npages = npages;
	r->ops[op]++;
	pthread_mutex_unlock(&r->log_lock);
}

struct race_cpu_arg {
	struct race *r;
	int id;
};

/* Each CPU thread changes its own half of the pages, in any way. */
static void *race_cpu(void *data)
{
	struct race_cpu_arg *arg = data;
	struct race *r = arg->r;
	unsigned long half = RACE_PAGES / 2, page, n;
	unsigned int seed = r->seed * 2 + arg->id;
	char *a, *spare = r->spare[arg->id];
	pid_t pid;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		enum race_op op = rand_r(&seed) % NR_RACE_OPS;

		/* fork copies the whole process: one in four draws. */
		if (op == OP_FORK && rand_r(&seed) % 4)
			op = OP_DONTNEED;
		n = 1 + rand_r(&seed) % 8;
		page = arg->id * half + rand_r(&seed) % (half - n);
		a = r->base + page * psz;
		switch (op) {
		case OP_MUNMAP:
			munmap(a, n * psz);
			mmap(a, n * psz, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			break;
		case OP_MREMAP:
			/* Away and back; mapped afresh if the way back fails. */
			if (mremap(a, n * psz, n * psz,
				   MREMAP_MAYMOVE | MREMAP_FIXED, spare) == spare &&
			    mremap(spare, n * psz, n * psz,
				   MREMAP_MAYMOVE | MREMAP_FIXED, a) != a)
				mmap(a, n * psz, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				     -1, 0);
			break;
		case OP_MPROTECT:
			mprotect(a, n * psz, PROT_READ);
			mprotect(a, n * psz, PROT_READ | PROT_WRITE);
			break;
		case OP_DONTNEED:
			madvise(a, n * psz, MADV_DONTNEED);
			break;
		case OP_FORK:
			pid = fork();
			if (!pid)
				_exit(0);
			if (pid > 0)
				waitpid(pid, NULL, 0);
			break;
		case OP_MIGRATE:
			hmi_rw(r->fd, HMI_MIGRATE, a, NULL, n, NULL);
			break;
		default:
			break;
		}
		race_log(r, op, page, n);
		/* Write the pages so that the next faults need memory. */
		if (op != OP_MIGRATE)
			memset(a, 0x5a, n * psz);
		/* Let device accesses complete between changes. */
		usleep(rand_r(&seed) % 2000);
	}
	return NULL;
}

static void *race_device(void *data)
{
	struct race *r = data;
	unsigned int seed = r->seed * 1000 +
		__atomic_add_fetch(&r->device_threads, 1, __ATOMIC_RELAXED);
	char *buf = malloc(8 * psz);
	unsigned long page, n;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		n = 1 + rand_r(&seed) % 2;
		page = rand_r(&seed) % (RACE_PAGES - n);
		if (!hmi_rw(r->fd, rand_r(&seed) & 1 ? HMI_READ : HMI_WRITE,
			    r->base + page * psz, buf, n, NULL))
			__atomic_add_fetch(&r->reads, 1, __ATOMIC_RELAXED);
	}
	free(buf);
	return NULL;
}

static void race_report(struct race *r, struct hmi_check *c)
{
	unsigned long i, k;

	fprintf(stderr, "# violation at page %lu; the last CPU operations:\n",
		(unsigned long)((c->first_bad - (uintptr_t)r->base) / psz));
	pthread_mutex_lock(&r->log_lock);
	for (k = 0; k < RACE_LOG && k < r->seq; k++) {
		i = (r->seq - 1 - k) % RACE_LOG;
		fprintf(stderr, "#   %lu: %s of pages %lu-%lu\n", r->log[i].seq,
			race_op_name[r->log[i].op], r->log[i].page,
			r->log[i].page + r->log[i].npages - 1);
	}
	pthread_mutex_unlock(&r->log_lock);
}

/*
 * Device threads fault, read and write at random while CPU threads munmap
 * and map again, mremap, mprotect, MADV_DONTNEED, fork and migrate the
 * same pages; a checker compares the device's page table with the CPU's
 * all along. The seed is in HMI_RACE_SEED (default 1).
 */
TEST_F(hmi, race_device_vs_cpu)
{
	struct race r = { .fd = self->fd };
	const char *seed_env = getenv("HMI_RACE_SEED");
	unsigned int seed = seed_env ? atoi(seed_env) : 1;
	struct race_cpu_arg args[2];
	struct hmi_state st0, st;
	pthread_t cpu[2], dev[2];
	struct timespec t0, t;
	struct hmi_check c;
	long v;
	int i;

	pthread_mutex_init(&r.log_lock, NULL);
	r.base = map_aligned(RACE_PAGES, 64 * 1024);
	ASSERT_NE(r.base, NULL);
	for (i = 0; i < 2; i++) {
		r.spare[i] = mmap(NULL, 8 * psz, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(r.spare[i], MAP_FAILED);
	}
	r.seed = seed;
	ASSERT_EQ(dev_state(self->fd, &st0, NULL), 0);
	for (i = 0; i < 2; i++) {
		args[i].r = &r;
		args[i].id = i;
		ASSERT_EQ(pthread_create(&cpu[i], NULL, race_cpu, &args[i]), 0);
		ASSERT_EQ(pthread_create(&dev[i], NULL, race_device, &r), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		usleep(10000);
		v = dev_violations(self->fd, r.base, RACE_PAGES, &c);
		if (v == -EBUSY) {
			/* Invalidated all along: nothing could be compared. */
			r.busy_checks++;
		} else {
			r.checks++;
			if (v) {
				r.violations += v > 0 ? v : 1;
				if (v > 0)
					race_report(&r, &c);
				break;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		ASSERT_EQ(dev_state(self->fd, &st, NULL), 0);
	} while (t.tv_sec - t0.tv_sec < RACE_SECONDS ||
		 (st.retries - st0.retries < RACE_MIN_HITS &&
		  t.tv_sec - t0.tv_sec < RACE_MAX_SECONDS));
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < 2; i++) {
		pthread_join(cpu[i], NULL);
		pthread_join(dev[i], NULL);
	}
	ASSERT_EQ(r.violations, 0);
	ASSERT_EQ(dev_violations(self->fd, r.base, RACE_PAGES, NULL), 0);
	ASSERT_EQ(dev_state(self->fd, &st, NULL), 0);
	TH_LOG("seed %u, %ld s: %lu checks (%lu busy), %lu device accesses, %llu invalidations",
	       seed, (long)(t.tv_sec - t0.tv_sec), r.checks, r.busy_checks, r.reads,
	       (unsigned long long)(st.invalidations - st0.invalidations));
	TH_LOG("seed %u: %llu stale reads retried (races hit)", seed,
	       (unsigned long long)(st.retries - st0.retries));
	for (i = 0; i < NR_RACE_OPS; i++)
		TH_LOG("  %lu x %s", r.ops[i], race_op_name[i]);
	/* A race test counts only if the races happened. */
	ASSERT_GT(st.retries - st0.retries, 0);
	ASSERT_GT(r.checks, 10);
	munmap(r.base, RACE_PAGES * psz);
	munmap(r.spare[0], 8 * psz);
	munmap(r.spare[1], 8 * psz);
}

/* --- huge device mappings, for each policy --- */

FIXTURE(hmi_huge)
{
	int fd;
	unsigned int granule_shift;
};

FIXTURE_VARIANT(hmi_huge)
{
	unsigned int granule_shift;
	/* A PMD-sized device entry is possible: the ranges can hold one. */
	int huge;
};

FIXTURE_VARIANT_ADD(hmi_huge, vma)
{
	.granule_shift = 0,
	.huge = 1,
};

FIXTURE_VARIANT_ADD(hmi_huge, granule_64k)
{
	.granule_shift = 16,
	.huge = 0,
};

FIXTURE_VARIANT_ADD(hmi_huge, granule_2m)
{
	.granule_shift = 21,
	.huge = 1,
};

FIXTURE_SETUP(hmi_huge)
{
	psz = sysconf(_SC_PAGESIZE);
	self->granule_shift = variant->granule_shift;
	self->fd = open(HMI_DEV, O_RDWR);
	if (self->fd < 0)
		SKIP(return, "%s: %s (load test_hmm_intervals.ko)", HMI_DEV,
		     strerror(errno));
	ASSERT_EQ(ioctl(self->fd, HMI_SET_POLICY, &self->granule_shift), 0);
}

FIXTURE_TEARDOWN(hmi_huge)
{
	if (self->fd >= 0)
		close(self->fd);
}

/* THPs, mapped by the device as PMD entries where a range holds one. */
TEST_F(hmi_huge, thp_device_entries)
{
	unsigned long n = 2 * TWOMEG / psz, faults = 0;
	char *p = map_aligned(n, TWOMEG);
	char *buf = malloc(n * psz);
	uint8_t *snap = malloc(n);
	struct hmi_state st;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(madvise(p, n * psz, MADV_HUGEPAGE), 0);
	fill(p, n, 71);

	ASSERT_EQ(dev_snapshot(self->fd, p, n, snap), 0);
	if (!(snap[0] & HMI_SNAP_HUGE))
		SKIP(goto out, "no THP for this mapping");
	ASSERT_EQ(hmi_rw(self->fd, HMI_READ, p, buf, n, &faults), 0);
	ASSERT_EQ(check(buf, n, 71), 0);
	ASSERT_EQ(dev_state(self->fd, &st, NULL), 0);
	if (variant->huge) {
		/* One fault per THP: the rest is covered by its PMD entry. */
		ASSERT_EQ(st.huge, 2);
		ASSERT_EQ(faults, 2);
		ASSERT_EQ(st.entries, 2);
	} else {
		/* 64 KiB ranges never hold a PMD: page by page. */
		ASSERT_EQ(st.huge, 0);
		ASSERT_EQ(faults, n);
	}
	ASSERT_EQ(dev_violations(self->fd, p, n, NULL), 0);
	/* MADV_DONTNEED of one page splits the THP; the device drops it. */
	ASSERT_EQ(madvise(p + 300 * psz, psz, MADV_DONTNEED), 0);
	ASSERT_EQ(dev_violations(self->fd, p, n, NULL), 0);
	memset(buf, 0x7f, psz);
	ASSERT_EQ(dev_read(self->fd, p + 300 * psz, buf, 1), 0);
	ASSERT_EQ(buf[0], 0);
	ASSERT_EQ(dev_read(self->fd, p + 301 * psz, buf, 1), 0);
	ASSERT_EQ(memcmp(buf, p + 301 * psz, psz), 0);
	/* A partial munmap of the second one. */
	ASSERT_EQ(munmap(p + (n - 8) * psz, 8 * psz), 0);
	ASSERT_EQ(dev_violations(self->fd, p, n, NULL), 0);
	ASSERT_EQ(dev_read(self->fd, p + (n - 8) * psz, buf, 1), -EFAULT);
out:
	munmap(p, n * psz);
	free(buf);
	free(snap);
}

/*
 * A THP straddles the end of a range: the range was created while its VMA
 * was 1 MiB, then the VMA grew to 2 MiB and a THP filled it. A device entry
 * for the whole THP would reach past the range, where no notifier watches
 * (hazard 15): the device must map page by page there, so that an
 * MADV_DONTNEED beyond the range leaves it nothing stale.
 */
TEST_F(hmi_huge, thp_straddles_range)
{
	unsigned long n = TWOMEG / psz, half = n / 2;
	char *area = map_aligned(2 * n, TWOMEG);
	char *buf = malloc(psz);
	uint8_t *snap = malloc(n);
	struct hmi_state st;
	char *p;

	ASSERT_NE(area, NULL);
	/* A 1 MiB VMA at a 2 MiB boundary, tracked before it is touched. */
	ASSERT_EQ(munmap(area, 2 * n * psz), 0);
	p = mmap(area, half * psz, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_EQ(p, area);
	ASSERT_EQ(dev_snapshot(self->fd, p, 1, snap), 0);
	/* It grows to 2 MiB (the VMAs merge), and a THP fills it. */
	ASSERT_EQ(mmap(p + half * psz, half * psz, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0),
		  p + half * psz);
	ASSERT_EQ(madvise(p, n * psz, MADV_HUGEPAGE), 0);
	fill(p, n, 73);
	ASSERT_EQ(dev_snapshot(self->fd, p, n, snap), 0);
	if (!(snap[0] & HMI_SNAP_HUGE))
		SKIP(goto out, "no THP for this mapping");
	/* The device reads the first page, inside the 1 MiB range. */
	ASSERT_EQ(dev_read(self->fd, p, buf, 1), 0);
	ASSERT_EQ(check(buf, 1, 73), 0);
	/* A page past the range goes; nothing of the device may stay. */
	ASSERT_EQ(madvise(p + (half + 10) * psz, psz, MADV_DONTNEED), 0);
	ASSERT_EQ(dev_violations(self->fd, p, n, NULL), 0);
	memset(buf, 0x7f, psz);
	ASSERT_EQ(dev_read(self->fd, p + (half + 10) * psz, buf, 1), 0);
	ASSERT_EQ(buf[0], 0);
	/* Because the device mapped the first page by itself. */
	ASSERT_EQ(dev_state(self->fd, &st, NULL), 0);
	ASSERT_EQ(st.huge, 0);
out:
	munmap(p, n * psz);
	free(buf);
	free(snap);
}

TEST_HARNESS_MAIN
