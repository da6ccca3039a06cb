/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * User interface of lib/test_hmm_intervals.c, the HMM mirror on
 * mmu_range_tracker, for tools/testing/selftests/mm/hmm_intervals_tests.c.
 */
#ifndef _LIB_TEST_HMM_INTERVALS_UAPI_H
#define _LIB_TEST_HMM_INTERVALS_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Most pages one HMI_READ or HMI_WRITE may cover. */
#define HMI_MAX_PAGES		65536UL

/**
 * struct hmi_access - Read or write user memory through the device
 * @addr: First user address, page aligned, of the opener's address space
 * @ptr: Buffer of @npages pages in the caller's address space
 * @npages: Number of pages, 1 to HMI_MAX_PAGES
 * @faults: Out: device faults taken (pages the device had not mapped)
 */
struct hmi_access {
	__u64 addr;
	__u64 ptr;
	__u64 npages;
	__u64 faults;
};

/** struct hmi_range - One tracked range, [start, end) */
struct hmi_range {
	__u64 start;
	__u64 end;
};

/**
 * struct hmi_state - The tracker's live ranges and counters
 * @ranges: In: array of @max_ranges struct hmi_range, filled in address order
 * @max_ranges: In: room in @ranges
 * @nr_ranges: Out: number of live ranges (may exceed @max_ranges)
 * @granule_shift: Out: the policy, 0 for VMA-covering ranges
 * @pad: Unused, zero
 * @created: Out: ranges created
 * @split: Out: ranges split by an unmap
 * @shrunk: Out: ranges shrunk by an unmap
 * @removed: Out: ranges removed
 * @invalidations: Out: invalidation callbacks received
 * @mapped: Out: device pages mapped
 * @zapped: Out: device pages zapped
 */
struct hmi_state {
	__u64 ranges;
	__u32 max_ranges;
	__u32 nr_ranges;
	__u32 granule_shift;
	__u32 pad;
	__u64 created;
	__u64 split;
	__u64 shrunk;
	__u64 removed;
	__u64 invalidations;
	__u64 mapped;
	__u64 zapped;
};

/* Before the first access: 0 for VMA ranges, or log2 of the granule size. */
#define HMI_SET_POLICY	_IOW('H', 0x40, __u32)
#define HMI_READ	_IOWR('H', 0x41, struct hmi_access)
#define HMI_WRITE	_IOWR('H', 0x42, struct hmi_access)
#define HMI_STATE	_IOWR('H', 0x43, struct hmi_state)
/* Wait for the tracker's deferred reshapes and removals. */
#define HMI_SYNC	_IO('H', 0x44)

#endif /* _LIB_TEST_HMM_INTERVALS_UAPI_H */
