/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * User interface of lib/test_hmm_intervals.c, the HMM mirror on
 * mmu_range_tracker, for tools/testing/selftests/mm/hmm_intervals_tests.c.
 */
#ifndef _LIB_TEST_HMM_INTERVALS_UAPI_H
#define _LIB_TEST_HMM_INTERVALS_UAPI_H

#include <linux/const.h>
#include <linux/ioctl.h>
#include <linux/types.h>

/* Most pages one command may cover. */
#define HMI_MAX_PAGES		65536UL

/**
 * struct hmi_access - Read or write user memory through the device
 * @addr: First user address, page aligned, of the opener's address space
 * @ptr: Buffer of @npages pages in the caller's address space
 * @npages: Number of pages, 1 to HMI_MAX_PAGES
 * @faults: Out: device faults taken (pages the device had not mapped)
 *
 * Also the argument of HMI_EXCLUSIVE and HMI_MIGRATE, which ignore @ptr and
 * report in @faults the pages made exclusive or migrated.
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
 * @mapped: Out: device pages mapped (a huge entry counts once)
 * @zapped: Out: device entries zapped
 * @retries: Out: device reads that raced with an invalidation of their
 *           range (hmm_range_fault() said -EBUSY, or read_retry said stale
 *           at commit: the range moved on or is being reshaped)
 * @huge: Out: huge (PMD-sized) device entries mapped
 * @devmem: Out: device-private pages mapped
 * @exclusive: Out: device-exclusive pages mapped
 * @migrated: Out: pages migrated to device memory
 * @entries: Out: device page table entries now (a huge entry counts once)
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
	__u64 retries;
	__u64 huge;
	__u64 devmem;
	__u64 exclusive;
	__u64 migrated;
	__u64 entries;
};

/* What HMI_SNAPSHOT reports per page, as the CPU maps it now. */
#define HMI_SNAP_VALID		_BITUL(0)
#define HMI_SNAP_WRITE		_BITUL(1)
/* A PMD mapping (a THP). */
#define HMI_SNAP_HUGE		_BITUL(2)
/* A device-private page of this driver. */
#define HMI_SNAP_DEVMEM		_BITUL(3)

/**
 * struct hmi_snapshot - The CPU's page table, read without faulting
 * @addr: First user address, page aligned
 * @ptr: Array of @npages bytes, filled with HMI_SNAP_* flags
 * @npages: Number of pages, 1 to HMI_MAX_PAGES
 */
struct hmi_snapshot {
	__u64 addr;
	__u64 ptr;
	__u64 npages;
};

/**
 * struct hmi_check - Compare the device's page table with the CPU's
 * @addr: First user address, page aligned
 * @npages: Number of pages, 1 to HMI_MAX_PAGES
 * @mapped: Out: pages the device maps in the span
 * @violations: Out: pages the device maps that the CPU does not map there
 *              (another page, no page, or read-only where the device may
 *              write)
 * @first_bad: Out: address of the first violation, if any
 * @exclusive: Out: device-exclusive pages, not compared (the CPU page table
 *             holds a device-exclusive entry for them)
 */
struct hmi_check {
	__u64 addr;
	__u64 npages;
	__u64 mapped;
	__u64 violations;
	__u64 first_bad;
	__u64 exclusive;
};

/* Before the first access: 0 for VMA ranges, or log2 of the granule size. */
#define HMI_SET_POLICY	_IOW('H', 0x40, __u32)
#define HMI_READ	_IOWR('H', 0x41, struct hmi_access)
#define HMI_WRITE	_IOWR('H', 0x42, struct hmi_access)
#define HMI_STATE	_IOWR('H', 0x43, struct hmi_state)
/* Wait for the tracker's deferred reshapes and removals. */
#define HMI_SYNC	_IO('H', 0x44)
#define HMI_SNAPSHOT	_IOW('H', 0x45, struct hmi_snapshot)
#define HMI_CHECK	_IOWR('H', 0x46, struct hmi_check)
/* Make pages device-exclusive (atomic access) and map them. */
#define HMI_EXCLUSIVE	_IOWR('H', 0x47, struct hmi_access)
/* Migrate pages to device-private memory, then map them. */
#define HMI_MIGRATE	_IOWR('H', 0x48, struct hmi_access)
/*
 * Also clear the device page table on every invalidation of the process, as
 * a driver with a notifier on the whole mm does (the CPU-side benchmark's
 * comparison; the tracker keeps working as before).
 */
#define HMI_WHOLE_MM	_IO('H', 0x49)

#endif /* _LIB_TEST_HMM_INTERVALS_UAPI_H */
