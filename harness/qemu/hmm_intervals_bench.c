// SPDX-License-Identifier: GPL-2.0
/*
 * The CPU side of make bench, run by /init in QEMU (hmi.run=bench): what a
 * device mirroring the process costs munmap, mprotect and MADV_DONTNEED.
 * Each operation runs in a loop over a region of REGION_PAGES written pages,
 * timed around the system call only (the refill is not timed), median of
 * ROUNDS rounds, in these setups, each in a process of its own (an mm that
 * once had a notifier keeps the notifier machinery), all in one boot and
 * all REPEATS times over, in turn, so that a drift of the emulation shows
 * as spread rather than as a difference between setups:
 *
 *   none         no device
 *   elsewhere    a device (granule of 2 MiB) with ranges on other memory
 *   whole_mm     the same plus a notifier on the whole mm that takes the
 *                device lock and clears its page table on every
 *                invalidation (nouveau before the tracker)
 *   tracked_P    the device read the region before each operation, policy P
 *                (vma, granule_pmd, granule_4_pages): a range covers it
 *
 * For tracked_P, HMI_SYNC waits for the deferred rework after each
 * operation, untimed (it includes an RCU grace period; the KUnit case
 * mrt_bench_workload times the rework itself), and a round has fewer
 * operations. One "CPUBENCH" line per setup and operation, in ns per
 * operation; harness/bench.sh tabulates them against "none".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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

#define PAGE		4096UL
#define REGION_PAGES	16UL
#define REGION		(REGION_PAGES * PAGE)
#define ITERS		400
/* Each tracked operation waits for a grace period: fewer of them. */
#define TRACKED_ITERS	50
#define ROUNDS		5
#define REPEATS		3
#define PMD_SHIFT	21
#define PMD_SIZE	(1UL << PMD_SHIFT)
#define RESERVE		(4 * PMD_SIZE)

enum op { OP_MUNMAP, OP_MPROTECT, OP_DONTNEED, NR_OPS };
static const char *const op_names[NR_OPS] = { "munmap", "mprotect", "dontneed" };

struct setup {
	const char *name;
	/* -1: no device */
	int policy;
	int whole_mm;
	/* The device reads the region before each operation. */
	int tracked;
};

static const struct setup setups[] = {
	{ "none", -1, 0, 0 },
	{ "elsewhere", PMD_SHIFT, 0, 0 },
	{ "whole_mm", PMD_SHIFT, 1, 0 },
	{ "tracked_vma", 0, 0, 1 },
	{ "tracked_granule_pmd", PMD_SHIFT, 0, 1 },
	{ "tracked_granule_4_pages", 14, 0, 1 },
};

static void die(const char *what)
{
	printf("CPUBENCH error: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void touch(char *p)
{
	unsigned long i;

	for (i = 0; i < REGION; i += PAGE)
		p[i] = 1;
}

static void dev_read(int fd, void *addr, void *buf, unsigned long npages)
{
	struct hmi_access a = {
		.addr = (uintptr_t)addr, .ptr = (uintptr_t)buf, .npages = npages,
	};

	if (ioctl(fd, HMI_READ, &a))
		die("HMI_READ");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* One round of @op: ns per operation. */
static uint64_t round_ns(const struct setup *s, int fd, enum op op,
			 char *region, char *buf)
{
	int i, iters = s->tracked ? TRACKED_ITERS : ITERS;
	uint64_t t = 0, t0;

	for (i = 0; i < iters; i++) {
		touch(region);
		if (s->tracked)
			dev_read(fd, region, buf, REGION_PAGES);
		t0 = now_ns();
		switch (op) {
		case OP_MUNMAP:
			if (munmap(region, REGION))
				die("munmap");
			break;
		case OP_MPROTECT:
			if (mprotect(region, REGION, PROT_READ))
				die("mprotect");
			break;
		case OP_DONTNEED:
			if (madvise(region, REGION, MADV_DONTNEED))
				die("madvise");
			break;
		default:
			break;
		}
		t += now_ns() - t0;
		if (s->tracked && ioctl(fd, HMI_SYNC))
			die("HMI_SYNC");
		/* Back as it was, untimed. */
		if (op == OP_MUNMAP &&
		    mmap(region, REGION, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != region)
			die("mmap");
		if (op == OP_MPROTECT &&
		    mprotect(region, REGION, PROT_READ | PROT_WRITE))
			die("mprotect back");
	}
	return t / iters;
}

static void run_setup(const struct setup *s)
{
	uint64_t samples[ROUNDS];
	char *res, *region, *elsewhere, *buf;
	int fd = -1, r;
	enum op op;
	uint32_t policy;

	/*
	 * Inside a PROT_NONE reservation, so that nothing merges with the
	 * mappings: "elsewhere" at a PMD boundary, the region 4 MiB above it
	 * (another granule), in the middle of a mapping three times its size
	 * so that the VMA policy's range covers memory on both sides of it.
	 */
	res = mmap(NULL, RESERVE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = malloc(64 * PAGE);
	if (res == MAP_FAILED || !buf)
		die("mmap");
	elsewhere = (char *)(((uintptr_t)res + PMD_SIZE - 1) & ~(PMD_SIZE - 1));
	region = elsewhere + 2 * PMD_SIZE;
	if (mmap(elsewhere, 64 * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != elsewhere ||
	    mmap(region, 3 * REGION, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != region)
		die("mmap");
	region += REGION;
	touch(elsewhere);
	if (s->policy >= 0) {
		fd = open("/dev/hmm_intervals", O_RDWR);
		if (fd < 0)
			die("open /dev/hmm_intervals");
		policy = s->policy;
		if (ioctl(fd, HMI_SET_POLICY, &policy))
			die("HMI_SET_POLICY");
		if (s->whole_mm && ioctl(fd, HMI_WHOLE_MM))
			die("HMI_WHOLE_MM");
		/* Ranges elsewhere: the device mapped other memory. */
		dev_read(fd, elsewhere, buf, 64);
	}
	for (op = 0; op < NR_OPS; op++) {
		/* One round to warm up, not counted. */
		round_ns(s, fd, op, region, buf);
		for (r = 0; r < ROUNDS; r++)
			samples[r] = round_ns(s, fd, op, region, buf);
		qsort(samples, ROUNDS, sizeof(samples[0]), cmp_u64);
		printf("CPUBENCH setup=%s op=%s ns=%llu\n", s->name,
		       op_names[op], (unsigned long long)samples[ROUNDS / 2]);
	}
	if (fd >= 0)
		close(fd);
	munmap(res, RESERVE);
	free(buf);
}

int main(void)
{
	unsigned int i, rep;
	int status;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (rep = 0; rep < REPEATS; rep++) {
		for (i = 0; i < sizeof(setups) / sizeof(setups[0]); i++) {
			pid = fork();
			if (pid == 0) {
				run_setup(&setups[i]);
				exit(0);
			}
			if (pid < 0 || waitpid(pid, &status, 0) != pid ||
			    !WIFEXITED(status) || WEXITSTATUS(status))
				die(setups[i].name);
		}
	}
	printf("CPUBENCH done\n");
	return 0;
}
