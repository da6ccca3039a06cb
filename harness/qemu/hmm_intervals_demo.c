// SPDX-License-Identifier: GPL-2.0
/*
 * make demo: a device mirrors this process through mmu_range_tracker.
 * Three regions are mapped and read through the device, then a middle part,
 * an edge and a whole region are unmapped; after each step the VMAs (from
 * /proc/self/maps) and the tracked ranges (from the device) are drawn side
 * by side, with the tracker's counters.
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
#include <unistd.h>

#include <lib/test_hmm_intervals_uapi.h>

#define WINDOW_PAGES	128
#define PAGES_PER_CHAR	2
#define MAX_RANGES	64

static unsigned long psz;
static char *win;
static int fd;

static void die(const char *what)
{
	printf("demo: %s: %s\n", what, strerror(errno));
	exit(1);
}

static unsigned long page_of(uint64_t addr)
{
	return (addr - (uintptr_t)win) / psz;
}

/* One strip char per PAGES_PER_CHAR pages of the window. */
static void strip(char *line, uint64_t start, uint64_t end, char c)
{
	unsigned long p, first, last;

	if (end <= (uintptr_t)win || start >= (uintptr_t)win + WINDOW_PAGES * psz)
		return;
	if (start < (uintptr_t)win)
		start = (uintptr_t)win;
	if (end > (uintptr_t)win + WINDOW_PAGES * psz)
		end = (uintptr_t)win + WINDOW_PAGES * psz;
	first = page_of(start);
	last = page_of(end - 1);
	for (p = first; p <= last; p++)
		line[p / PAGES_PER_CHAR] = c;
}

static void draw(const char *title)
{
	char vmas[WINDOW_PAGES / PAGES_PER_CHAR + 1];
	char trk[WINDOW_PAGES / PAGES_PER_CHAR + 1];
	struct hmi_range ranges[MAX_RANGES];
	struct hmi_state st = {
		.ranges = (uintptr_t)ranges, .max_ranges = MAX_RANGES,
	};
	char line[256];
	unsigned int i, nv = 0;
	uint64_t s, e;
	FILE *maps;

	if (ioctl(fd, HMI_SYNC) || ioctl(fd, HMI_STATE, &st))
		die("HMI_STATE");
	memset(vmas, '.', sizeof(vmas) - 1);
	memset(trk, '.', sizeof(trk) - 1);
	vmas[sizeof(vmas) - 1] = trk[sizeof(trk) - 1] = 0;

	printf("\n== %s\n", title);
	printf("   %-18s %-18s %8s   %-18s %-18s %8s\n", "VMA start", "end",
	       "pages", "range start", "end", "pages");
	maps = fopen("/proc/self/maps", "r");
	if (!maps)
		die("/proc/self/maps");
	while (fgets(line, sizeof(line), maps)) {
		if (sscanf(line, "%lx-%lx", &s, &e) != 2 ||
		    e <= (uintptr_t)win ||
		    s >= (uintptr_t)win + WINDOW_PAGES * psz)
			continue;
		strip(vmas, s, e, '#');
		if (nv < st.nr_ranges)
			printf("   %#-18lx %#-18lx %8lu   %#-18llx %#-18llx %8llu\n",
			       s, e, (e - s) / psz,
			       (unsigned long long)ranges[nv].start,
			       (unsigned long long)ranges[nv].end,
			       (unsigned long long)(ranges[nv].end - ranges[nv].start) / psz);
		else
			printf("   %#-18lx %#-18lx %8lu\n", s, e, (e - s) / psz);
		nv++;
	}
	fclose(maps);
	for (i = nv; i < st.nr_ranges && i < MAX_RANGES; i++)
		printf("   %-18s %-18s %8s   %#-18llx %#-18llx %8llu\n", "", "", "",
		       (unsigned long long)ranges[i].start,
		       (unsigned long long)ranges[i].end,
		       (unsigned long long)(ranges[i].end - ranges[i].start) / psz);
	for (i = 0; i < st.nr_ranges && i < MAX_RANGES; i++)
		strip(trk, ranges[i].start, ranges[i].end, 'a' + i % 26);

	printf("   one char = %d pages, from %p\n", PAGES_PER_CHAR, win);
	printf("   VMAs    |%s|\n", vmas);
	printf("   tracked |%s|\n", trk);
	printf("   ranges: %u live; created %llu, split %llu, shrunk %llu, removed %llu;"
	       " invalidations %llu; device pages mapped %llu, zapped %llu\n",
	       st.nr_ranges, (unsigned long long)st.created,
	       (unsigned long long)st.split, (unsigned long long)st.shrunk,
	       (unsigned long long)st.removed,
	       (unsigned long long)st.invalidations,
	       (unsigned long long)st.mapped, (unsigned long long)st.zapped);
}

static void map_region(unsigned long first, unsigned long n)
{
	if (mmap(win + first * psz, n * psz, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		die("mmap");
	memset(win + first * psz, 0x5a, n * psz);
}

static void device_read(unsigned long first, unsigned long n)
{
	char *buf = malloc(n * psz);
	struct hmi_access a = {
		.addr = (uintptr_t)(win + first * psz),
		.ptr = (uintptr_t)buf, .npages = n,
	};

	if (!buf || ioctl(fd, HMI_READ, &a))
		die("HMI_READ");
	if (memcmp(buf, win + first * psz, n * psz))
		die("device read returned other data than the CPU sees");
	free(buf);
}

int main(void)
{
	unsigned int policy = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	psz = sysconf(_SC_PAGESIZE);
	fd = open("/dev/hmm_intervals", O_RDWR);
	if (fd < 0 || ioctl(fd, HMI_SET_POLICY, &policy))
		die("/dev/hmm_intervals");
	/*
	 * A window with three regions A, B, C and gaps between them, between
	 * two PROT_NONE guard pages so that no other mapping (malloc's, say)
	 * merges with A or C.
	 */
	win = mmap(NULL, (WINDOW_PAGES + 2) * psz, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (win == MAP_FAILED)
		die("mmap");
	win += psz;
	munmap(win, WINDOW_PAGES * psz);
	map_region(0, 64);	/* A */
	map_region(72, 32);	/* B */
	map_region(112, 16);	/* C */
	draw("3 regions mapped (A: 64 pages, B: 32, C: 16), nothing read by the device yet");

	device_read(0, 64);
	device_read(72, 32);
	device_read(112, 16);
	draw("the device read all three: one range per VMA");

	munmap(win + 24 * psz, 16 * psz);
	draw("munmap of pages 24-39 of A: A's range is split in two");

	munmap(win + 96 * psz, 8 * psz);
	draw("munmap of the last 8 pages of B: B's range shrinks");

	munmap(win + 112 * psz, 16 * psz);
	draw("munmap of all of C: C's range is removed");

	map_region(112, 16);
	memset(win + 112 * psz, 0xa5, 16 * psz);
	device_read(112, 16);
	draw("C mapped again with new data: the device reads the new data");
	close(fd);
	printf("\ndemo: ok\n");
	return 0;
}
