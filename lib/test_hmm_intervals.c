// SPDX-License-Identifier: GPL-2.0
/*
 * An HMM mirror on mmu_range_tracker, for testing from user space.
 *
 * Each open file of /dev/hmm_intervals is a "device" that mirrors the mm of
 * the process that opened it through one mmu_range_tracker. Its page table is
 * software, and behaves as a GPU's does where the tracker must survive it:
 *
 * - HMI_READ and HMI_WRITE copy user memory through the device's page table,
 *   never through the CPU's mapping, so a stale device mapping shows up as
 *   stale data; HMI_CHECK compares the two page tables directly.
 * - A fault maps at the CPU mapping's order: a THP becomes one PMD-sized
 *   device entry, which the device can only clear whole. A commit stays
 *   inside the tracked range whose sequence it checked (hazard 15 of
 *   Documentation/mm/mmu_range_tracker.rst): a PMD entry is used only when
 *   the range covers all of it.
 * - HMI_MIGRATE moves pages to device-private memory (ZONE_DEVICE pages
 *   backed by system pages, as lib/test_hmm.c emulates them) and then maps
 *   them, as a GPU's bind does; a CPU access migrates them back.
 * - HMI_EXCLUSIVE takes device-exclusive access with make_device_exclusive(),
 *   named to the tracker with mmu_range_tracker_set_owner().
 * - The zap never sleeps (xarray erases), so non-blockable invalidations
 *   always succeed.
 */
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmu_range_tracker.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>

#include "test_hmm_intervals_uapi.h"

/* Largest granule a file may ask for: 1 GiB. */
#define HMI_MAX_GRANULE_SHIFT	30
/* Device faults of one page before an access gives up with -EBUSY. */
#define HMI_MAX_TRIES		64
/* Pages of device-private memory, for all files together. */
#define HMI_DEVMEM_PAGES	4096UL
/* Pages migrated by one migrate_vma_setup(). */
#define HMI_MIGRATE_BATCH	64UL
/* Pages HMI_CHECK reads at a time. */
#define HMI_CHECK_PAGES		16UL
/* Reads of HMI_CHECK's span before it gives up with -EBUSY. */
#define HMI_CHECK_RETRIES	1000
/* Looks of HMI_CHECK at a device mapping of a page it found absent. */
#define HMI_CHECK_TRIES		200

#define HMI_PMD_ORDER		(PMD_SHIFT - PAGE_SHIFT)

/* A device page table entry: xa_mk_value(pfn << HMI_PTE_SHIFT | flags). */
#define HMI_PTE_WRITE		BIT(0)
#define HMI_PTE_DEVMEM		BIT(1)
#define HMI_PTE_EXCL		BIT(2)
#define HMI_PTE_SHIFT		3

struct hmi {
	struct mmu_range_tracker tracker;
	/* The update lock: device page table updates and copies. */
	struct mutex lock;
	/* The mirrored mm (mm_count reference). */
	struct mm_struct *mm;
	/* Page index -> entry of a page mapped by itself. */
	struct xarray pt;
	/* PMD index -> entry of a PMD-sized mapping, pfn of its first page. */
	struct xarray huge;
	/* Serializes the policy and the start of the tracker. */
	struct mutex setup_lock;
	unsigned int granule_shift;
	bool started;
	/* HMI_WHOLE_MM: registered on @mm, under setup_lock. */
	struct mmu_notifier whole;
	bool whole_registered;
	atomic64_t mapped;
	atomic64_t zapped;
	atomic64_t retries;
	atomic64_t nr_huge;
	atomic64_t nr_devmem;
	atomic64_t nr_exclusive;
	atomic64_t migrated;
};

/*
 * Device-private memory: one pool for the module, owner of its pages in
 * migrate_vma and hmm_range_fault. Each page keeps its data in a system
 * page that zone_device_data points to.
 */
struct hmi_devmem {
	struct dev_pagemap pagemap;
	struct resource *res;
	/* Guards @free. */
	spinlock_t lock;
	/* Free pages, linked through zone_device_data. */
	struct page *free;
	/* Serializes the creation of the pool; @ready says it is done. */
	struct mutex init_lock;
	bool ready;
};

static struct hmi_devmem hmi_devmem = {
	.lock = __SPIN_LOCK_UNLOCKED(hmi_devmem.lock),
	.init_lock = __MUTEX_INITIALIZER(hmi_devmem.init_lock),
};

static unsigned long hmi_pte_pfn(void *entry)
{
	return xa_to_value(entry) >> HMI_PTE_SHIFT;
}

static unsigned long hmi_pte_flags(void *entry)
{
	return xa_to_value(entry) & (BIT(HMI_PTE_SHIFT) - 1);
}

/*
 * The device's entry for @addr and the pfn it maps there. Called with the
 * update lock held.
 */
static void *hmi_lookup(struct hmi *h, unsigned long addr, unsigned long *pfn)
{
	void *entry;

	lockdep_assert_held(&h->lock);
	entry = xa_load(&h->huge, addr >> PMD_SHIFT);
	if (entry) {
		*pfn = hmi_pte_pfn(entry) +
		       ((addr & ~PMD_MASK) >> PAGE_SHIFT);
		return entry;
	}
	entry = xa_load(&h->pt, addr >> PAGE_SHIFT);
	if (entry)
		*pfn = hmi_pte_pfn(entry);
	return entry;
}

/* Clear the device page table over [start, end). */
static void hmi_zap(struct hmi *h, unsigned long start, unsigned long end)
{
	unsigned long index;
	void *entry;

	lockdep_assert_held(&h->lock);
	if (start >= end)
		return;
	/*
	 * Erasing never allocates and never sleeps: fine in reclaim and for
	 * non-blockable invalidations. A PMD entry is cleared whole even when
	 * the invalidation covers part of it; it lies inside the range it was
	 * committed through (see hmi_commit()), so every invalidation of any
	 * of its pages gets here.
	 */
	xa_for_each_range(&h->pt, index, entry, start >> PAGE_SHIFT,
			  (end - 1) >> PAGE_SHIFT) {
		xa_erase(&h->pt, index);
		atomic64_inc(&h->zapped);
	}
	xa_for_each_range(&h->huge, index, entry, start >> PMD_SHIFT,
			  (end - 1) >> PMD_SHIFT) {
		xa_erase(&h->huge, index);
		atomic64_inc(&h->zapped);
	}
}

static bool hmi_invalidate(struct mmu_tracked_range *r,
			   const struct mmu_notifier_range *range)
{
	struct hmi *h = container_of(r->tracker, struct hmi, tracker);

	hmi_zap(h, max(range->start, mmu_tracked_range_start(r)),
		min(range->end, mmu_tracked_range_end(r)));
	return true;
}

/*
 * HMI_WHOLE_MM: what nouveau did before the tracker, kept for the CPU-side
 * benchmark to compare with: a notifier on the whole mm that takes the
 * update lock and clears the device page table for every invalidation in
 * the process, whether the device ever touched that memory or not.
 */
static int hmi_whole_invalidate_start(struct mmu_notifier *mn,
				      const struct mmu_notifier_range *range)
{
	struct hmi *h = container_of(mn, struct hmi, whole);

	/*
	 * Not -EAGAIN when the lock is busy in a non-blockable invalidation:
	 * the interval notifiers of the mm have already run for it, and the
	 * core does not end their invalidation when a notifier of the list
	 * fails (the caller may not call invalidate_range_end()), so
	 * interval notifier readers and removals of the mm would wait for
	 * ever. Skipping is safe here: every device entry lies inside a
	 * tracked range, whose callback zapped it in this invalidation.
	 */
	if (mmu_notifier_range_blockable(range))
		mutex_lock(&h->lock);
	else if (!mutex_trylock(&h->lock))
		return 0;
	hmi_zap(h, range->start, range->end);
	mutex_unlock(&h->lock);
	return 0;
}

static const struct mmu_notifier_ops hmi_whole_ops = {
	.invalidate_range_start = hmi_whole_invalidate_start,
};

static long hmi_whole_mm(struct hmi *h)
{
	long ret;

	mutex_lock(&h->setup_lock);
	if (h->whole_registered) {
		ret = -EBUSY;
	} else if (!mmget_not_zero(h->mm)) {
		ret = -ESRCH;
	} else {
		h->whole.ops = &hmi_whole_ops;
		ret = mmu_notifier_register(&h->whole, h->mm);
		h->whole_registered = !ret;
		mmput(h->mm);
	}
	mutex_unlock(&h->setup_lock);
	return ret;
}

static const struct mmu_range_tracker_ops hmi_tracker_ops = {
	.invalidate = hmi_invalidate,
};

static int hmi_start(struct hmi *h)
{
	int ret = 0;

	mutex_lock(&h->setup_lock);
	if (!h->started) {
		if (!mmget_not_zero(h->mm)) {
			ret = -ESRCH;
			goto out;
		}
		ret = mmu_range_tracker_init(&h->tracker, h->mm,
					     &hmi_tracker_ops, &h->lock,
					     h->granule_shift);
		mmput(h->mm);
		if (!ret)
			/* Our own exclusive accesses must not look stale. */
			mmu_range_tracker_set_owner(&h->tracker, h);
		h->started = !ret;
	}
out:
	mutex_unlock(&h->setup_lock);
	return ret;
}

static bool hmi_is_devmem(struct page *page)
{
	return is_device_private_page(page) &&
	       page_pgmap(page) == &hmi_devmem.pagemap;
}

/*
 * Store the entry for what hmm_range_fault() found at @addr, under the
 * update lock, after read_retry said it is current. Both slots were
 * reserved beforehand: no allocation here.
 */
static void hmi_commit(struct hmi *h, struct mmu_tracked_range *r,
		       unsigned long addr, unsigned long hmm_pfn)
{
	unsigned long base = addr & PMD_MASK;
	struct page *page = hmm_pfn_to_page(hmm_pfn);
	unsigned long flags = 0, index;
	void *entry;

	lockdep_assert_held(&h->lock);
	if (hmm_pfn & HMM_PFN_WRITE)
		flags |= HMI_PTE_WRITE;
	if (hmi_is_devmem(page))
		flags |= HMI_PTE_DEVMEM;

	/*
	 * The CPU maps a whole PMD: map it as one device entry, but only if
	 * the range covers it. A PMD entry reaching past the range would be
	 * watched by no notifier there (hazard 15).
	 */
	if (hmm_pfn_to_map_order(hmm_pfn) >= HMI_PMD_ORDER &&
	    base >= mmu_tracked_range_start(r) &&
	    base + PMD_SIZE <= mmu_tracked_range_end(r)) {
		entry = xa_mk_value((page_to_pfn(page) -
				     ((addr - base) >> PAGE_SHIFT)) <<
				    HMI_PTE_SHIFT | flags);
		xa_store(&h->huge, base >> PMD_SHIFT, entry, GFP_NOWAIT);
		/* The PMD entry supersedes the pages mapped one by one. */
		xa_for_each_range(&h->pt, index, entry, base >> PAGE_SHIFT,
				  ((base + PMD_SIZE) >> PAGE_SHIFT) - 1)
			xa_erase(&h->pt, index);
		atomic64_inc(&h->nr_huge);
	} else {
		entry = xa_mk_value(page_to_pfn(page) << HMI_PTE_SHIFT | flags);
		xa_store(&h->pt, addr >> PAGE_SHIFT, entry, GFP_NOWAIT);
	}
	if (flags & HMI_PTE_DEVMEM)
		atomic64_inc(&h->nr_devmem);
	atomic64_inc(&h->mapped);
}

/*
 * Map the page at @addr into the device: the tracker's range, then
 * hmm_range_fault() under the range's notifier, then a commit under the
 * update lock unless the read went stale.
 */
static int hmi_fault(struct hmi *h, unsigned long addr, bool write)
{
	unsigned long timeout = jiffies +
				msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	struct mmu_tracked_range *r;
	unsigned long hmm_pfn;
	struct hmm_range range = {
		.start = addr,
		.end = addr + PAGE_SIZE,
		.hmm_pfns = &hmm_pfn,
		.default_flags = HMM_PFN_REQ_FAULT |
				 (write ? HMM_PFN_REQ_WRITE : 0),
		.dev_private_owner = &hmi_devmem,
	};
	int ret;

	/*
	 * Reserve both slots now: no allocation under the update lock. An
	 * invalidation may erase a reservation meanwhile; the store then
	 * allocates with GFP_NOWAIT, which may fail, and we retry.
	 */
	ret = xa_reserve(&h->pt, addr >> PAGE_SHIFT, GFP_KERNEL);
	if (!ret)
		ret = xa_reserve(&h->huge, addr >> PMD_SHIFT, GFP_KERNEL);
	if (ret)
		goto out_release;
	if (!mmget_not_zero(h->mm)) {
		ret = -EFAULT;
		goto out_release;
	}
	for (;;) {
		if (time_after(jiffies, timeout)) {
			ret = -EBUSY;
			break;
		}
		mmap_read_lock(h->mm);
		r = mmu_range_tracker_fault(&h->tracker, addr);
		if (IS_ERR(r)) {
			mmap_read_unlock(h->mm);
			ret = PTR_ERR(r);
			break;
		}
		range.notifier = &r->notifier;
		range.notifier_seq = mmu_interval_read_begin(&r->notifier);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(h->mm);
		if (ret) {
			mmu_tracked_range_put(r);
			if (ret != -EBUSY)
				break;
			/* The read raced with an invalidation of the range. */
			atomic64_inc(&h->retries);
			continue;
		}

		mmu_range_tracker_lock(&h->tracker);
		if (mmu_tracked_range_read_retry(r, range.notifier_seq)) {
			mmu_range_tracker_unlock(&h->tracker);
			mmu_tracked_range_put(r);
			atomic64_inc(&h->retries);
			continue;
		}
		hmi_commit(h, r, addr, hmm_pfn);
		mmu_range_tracker_unlock(&h->tracker);
		mmu_tracked_range_put(r);
		break;
	}
	mmput(h->mm);
out_release:
	xa_release(&h->pt, addr >> PAGE_SHIFT);
	xa_release(&h->huge, addr >> PMD_SHIFT);
	return ret;
}

/* The page holding the data of device page @pfn. */
static struct page *hmi_data_page(unsigned long pfn, unsigned long flags)
{
	struct page *page = pfn_to_page(pfn);

	if (flags & HMI_PTE_DEVMEM)
		return page->zone_device_data;
	return page;
}

/* Copy one page between @buf and the page the device maps at @addr. */
static int hmi_copy_page(struct hmi *h, unsigned long addr, void *buf,
			 bool write, u64 *faults)
{
	unsigned long pfn = 0, flags;
	unsigned int tries;
	void *entry, *kaddr;
	int ret;

	for (tries = 0; tries < HMI_MAX_TRIES; tries++) {
		mutex_lock(&h->lock);
		entry = hmi_lookup(h, addr, &pfn);
		flags = entry ? hmi_pte_flags(entry) : 0;
		if (entry && (!write || (flags & HMI_PTE_WRITE))) {
			/*
			 * Mapped by the device: the page cannot be freed
			 * before an invalidation, which needs this lock.
			 */
			kaddr = kmap_local_page(hmi_data_page(pfn, flags));
			if (write)
				memcpy(kaddr, buf, PAGE_SIZE);
			else
				memcpy(buf, kaddr, PAGE_SIZE);
			kunmap_local(kaddr);
			mutex_unlock(&h->lock);
			return 0;
		}
		mutex_unlock(&h->lock);
		ret = hmi_fault(h, addr, write);
		if (ret)
			return ret;
		(*faults)++;
	}
	return -EBUSY;
}

/* Check and read the address span of a command. */
static int hmi_span(u64 addr, u64 npages)
{
	if (!npages || npages > HMI_MAX_PAGES || !PAGE_ALIGNED(addr))
		return -EINVAL;
	if (addr >= TASK_SIZE || npages > (TASK_SIZE - addr) >> PAGE_SHIFT)
		return -EFAULT;
	return 0;
}

static long hmi_access(struct hmi *h, void __user *uarg, bool write)
{
	struct hmi_access cmd;
	unsigned long addr, i;
	void *buf;
	long ret = 0;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	ret = hmi_span(cmd.addr, cmd.npages);
	if (ret)
		return ret;
	ret = hmi_start(h);
	if (ret)
		return ret;
	buf = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;

	cmd.faults = 0;
	for (i = 0; i < cmd.npages; i++) {
		void __user *ubuf = u64_to_user_ptr(cmd.ptr + i * PAGE_SIZE);

		addr = cmd.addr + i * PAGE_SIZE;
		if (write && copy_from_user(buf, ubuf, PAGE_SIZE)) {
			ret = -EFAULT;
			break;
		}
		ret = hmi_copy_page(h, addr, buf, write, &cmd.faults);
		if (ret)
			break;
		if (!write && copy_to_user(ubuf, buf, PAGE_SIZE)) {
			ret = -EFAULT;
			break;
		}
	}
	kfree(buf);
	if (!ret && copy_to_user(uarg, &cmd, sizeof(cmd)))
		ret = -EFAULT;
	return ret;
}

/* --- reading the CPU's page table without faulting --- */

/*
 * The notifier of HMI_CHECK's reads of the CPU page table. Its sequence is
 * set under the update lock, as a tracked range's is, so that the check can
 * tell under that lock whether its read is still current.
 */
struct hmi_reader {
	struct mmu_interval_notifier mni;
	struct hmi *h;
};

static bool hmi_reader_invalidate(struct mmu_interval_notifier *mni,
				  const struct mmu_notifier_range *range,
				  unsigned long cur_seq)
{
	struct hmi *h = container_of(mni, struct hmi_reader, mni)->h;

	if (mmu_notifier_range_blockable(range))
		mutex_lock(&h->lock);
	else if (!mutex_trylock(&h->lock))
		return false;
	mmu_interval_set_seq(mni, cur_seq);
	mutex_unlock(&h->lock);
	return true;
}

static const struct mmu_interval_notifier_ops hmi_reader_ops = {
	.invalidate = hmi_reader_invalidate,
};

/*
 * Read the CPU page table of [start, end), which one VMA covers, into
 * @pfns, without faulting, as of sequence @seq of @mni. The caller holds
 * mmap_read_lock(). Return: 0, or -EBUSY when an invalidation ran since
 * @seq: the caller takes a new one, with no lock an invalidation may need.
 */
static int hmi_read_cpu(struct mmu_interval_notifier *mni, unsigned long seq,
			unsigned long start, unsigned long end,
			unsigned long *pfns)
{
	struct hmm_range range = {
		.notifier = mni,
		.notifier_seq = seq,
		.start = start,
		.end = end,
		.hmm_pfns = pfns,
		.dev_private_owner = &hmi_devmem,
	};

	return hmm_range_fault(&range);
}

/*
 * The CPU page table of the span, as the device would see it before a
 * fault: through the tracked ranges (created as a fault would create them,
 * without faulting anything in) and their sequences.
 */
static long hmi_snapshot(struct hmi *h, void __user *uarg)
{
	struct mmu_tracked_range *r;
	struct hmi_snapshot cmd;
	struct vm_area_struct *vma;
	unsigned long *pfns, addr, end, next, seq, i;
	u8 *out;
	long ret;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	ret = hmi_span(cmd.addr, cmd.npages);
	if (ret)
		return ret;
	ret = hmi_start(h);
	if (ret)
		return ret;
	pfns = kvcalloc(cmd.npages, sizeof(*pfns), GFP_KERNEL);
	out = kvzalloc(cmd.npages, GFP_KERNEL);
	if (!pfns || !out) {
		ret = -ENOMEM;
		goto out_free;
	}
	if (!mmget_not_zero(h->mm)) {
		ret = -EFAULT;
		goto out_free;
	}
	end = cmd.addr + cmd.npages * PAGE_SIZE;
	mmap_read_lock(h->mm);
	for (addr = cmd.addr; addr < end && !ret; addr = next) {
		vma = find_vma(h->mm, addr);
		if (!vma || vma->vm_start >= end)
			break;
		addr = max(addr, vma->vm_start);
		r = mmu_range_tracker_fault(&h->tracker, addr);
		if (IS_ERR(r)) {
			ret = PTR_ERR(r);
			break;
		}
		next = min3(end, vma->vm_end, mmu_tracked_range_end(r));
		i = (addr - cmd.addr) >> PAGE_SHIFT;
		do {
			seq = mmu_interval_read_begin(&r->notifier);
			ret = hmi_read_cpu(&r->notifier, seq, addr, next, pfns + i);
		} while (ret == -EBUSY);
		mmu_tracked_range_put(r);
	}
	mmap_read_unlock(h->mm);
	for (i = 0; i < cmd.npages && !ret; i++) {
		if (!(pfns[i] & HMM_PFN_VALID))
			continue;
		out[i] = HMI_SNAP_VALID;
		if (pfns[i] & HMM_PFN_WRITE)
			out[i] |= HMI_SNAP_WRITE;
		if (hmm_pfn_to_map_order(pfns[i]) >= HMI_PMD_ORDER)
			out[i] |= HMI_SNAP_HUGE;
		if (hmi_is_devmem(hmm_pfn_to_page(pfns[i])))
			out[i] |= HMI_SNAP_DEVMEM;
	}
	if (!ret && copy_to_user(u64_to_user_ptr(cmd.ptr), out, cmd.npages))
		ret = -EFAULT;
	mmput(h->mm);
out_free:
	kvfree(out);
	kvfree(pfns);
	return ret;
}

/*
 * Compare the device's page table with the CPU's over a span. The CPU page
 * table is read first, with no lock but the mmap_lock (a walk may take
 * locks, hugetlb's among them, under which memory is allocated: not under
 * the update lock), then compared under the update lock if no invalidation
 * ran meanwhile: no device mapping is committed and no invalidation of
 * tracked memory completes while the lock is held. Every page the device
 * maps must be mapped by the CPU at the same address, to the same page,
 * writable if the device may write it.
 *
 * A device mapping of a page the read found absent, or found read-only
 * when the device may write it, is counted apart, in @unsure: it may be a
 * device fault that populated the CPU page table, or made the entry
 * writable, after the read and committed before the lock (neither
 * invalidates), or an address whose munmap is between its VMA removal and
 * its invalidation (hazard 5), or a stale mapping. The caller looks again;
 * only a stale mapping stays.
 */
static int hmi_check_span(struct hmi *h, struct hmi_reader *reader,
			  struct hmi_check *cmd, unsigned long *pfns,
			  unsigned long *unsure)
{
	unsigned long end = cmd->addr + cmd->npages * PAGE_SIZE;
	unsigned long addr, next, i, pfn = 0, flags, seq;
	struct mmu_interval_notifier *mni = &reader->mni;
	unsigned int tries = 0;
	struct vm_area_struct *vma;
	void *entry;
	int ret;

	ret = mmu_interval_notifier_insert(mni, h->mm, cmd->addr,
					   cmd->npages * PAGE_SIZE,
					   &hmi_reader_ops);
	if (ret)
		return ret;
	mmap_read_lock(h->mm);
again:
	/* A span invalidated all the time: the caller may try smaller. */
	if (++tries > HMI_CHECK_RETRIES) {
		ret = -EBUSY;
		goto out;
	}
	seq = mmu_interval_read_begin(mni);
	memset(pfns, 0, cmd->npages * sizeof(*pfns));
	for (addr = cmd->addr; addr < end; addr = next) {
		vma = find_vma(h->mm, addr);
		if (!vma || vma->vm_start >= end)
			break;
		addr = max(addr, vma->vm_start);
		next = min(end, vma->vm_end);
		ret = hmi_read_cpu(mni, seq, addr, next,
				   pfns + ((addr - cmd->addr) >> PAGE_SHIFT));
		if (ret == -EBUSY)
			goto again;
		if (ret)
			goto out;
	}
	mutex_lock(&h->lock);
	if (mmu_interval_read_retry(mni, seq)) {
		mutex_unlock(&h->lock);
		goto again;
	}
	ret = 0;
	for (i = 0; i < cmd->npages; i++) {
		addr = cmd->addr + i * PAGE_SIZE;
		entry = hmi_lookup(h, addr, &pfn);
		if (!entry)
			continue;
		cmd->mapped++;
		flags = hmi_pte_flags(entry);
		if (flags & HMI_PTE_EXCL) {
			cmd->exclusive++;
			continue;
		}
		if (!(pfns[i] & HMM_PFN_VALID)) {
			(*unsure)++;
			continue;
		}
		if (page_to_pfn(hmm_pfn_to_page(pfns[i])) == pfn) {
			if (!(flags & HMI_PTE_WRITE) ||
			    (pfns[i] & HMM_PFN_WRITE))
				continue;
			/*
			 * Writable for the device, read-only in the read: a
			 * write fault of the device may have made the CPU's
			 * entry writable after the read (reusing an anonymous
			 * page after fork), which invalidates nothing. Look
			 * again, as for an absent page.
			 */
			(*unsure)++;
			continue;
		}
		if (!cmd->violations)
			cmd->first_bad = addr;
		cmd->violations++;
	}
	mutex_unlock(&h->lock);
out:
	mmap_read_unlock(h->mm);
	mmu_interval_notifier_remove(mni);
	return ret;
}

/*
 * The check, a few pages at a time (each with a notifier of its own, so that
 * invalidations elsewhere do not make it retry), looking again at what it
 * found unsure until it is settled or stays.
 */
static long hmi_check(struct hmi *h, void __user *uarg)
{
	struct hmi_reader reader = { .h = h };
	struct hmi_check cmd, part;
	unsigned long *pfns, unsure, done;
	unsigned int tries;
	long ret;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	ret = hmi_span(cmd.addr, cmd.npages);
	if (ret)
		return ret;
	ret = hmi_start(h);
	if (ret)
		return ret;
	pfns = kcalloc(HMI_CHECK_PAGES, sizeof(*pfns), GFP_KERNEL);
	if (!pfns)
		return -ENOMEM;
	if (!mmget_not_zero(h->mm)) {
		ret = -EFAULT;
		goto out_free;
	}
	cmd.mapped = 0;
	cmd.violations = 0;
	cmd.exclusive = 0;
	cmd.first_bad = 0;
	for (done = 0; done < cmd.npages && !ret; done += part.npages) {
		part.addr = cmd.addr + done * PAGE_SIZE;
		part.npages = min(HMI_CHECK_PAGES, cmd.npages - done);
		for (tries = 0; tries < HMI_CHECK_TRIES; tries++) {
			part.mapped = 0;
			part.violations = 0;
			part.exclusive = 0;
			part.first_bad = 0;
			unsure = 0;
			ret = hmi_check_span(h, &reader, &part, pfns, &unsure);
			if (ret || part.violations || !unsure)
				break;
			usleep_range(1000, 2000);
		}
		/* Device mappings of absent pages that stayed: stale. */
		part.violations += unsure;
		if (part.violations && !cmd.violations)
			cmd.first_bad = part.first_bad ? part.first_bad : part.addr;
		cmd.mapped += part.mapped;
		cmd.violations += part.violations;
		cmd.exclusive += part.exclusive;
	}
	if (!ret && copy_to_user(uarg, &cmd, sizeof(cmd)))
		ret = -EFAULT;
	mmput(h->mm);
out_free:
	kfree(pfns);
	return ret;
}

/* --- device-exclusive access and device-private memory --- */

/* make_device_exclusive() comes with device-private memory. */
#if IS_ENABLED(CONFIG_DEVICE_PRIVATE)
/* Make the page at @addr device-exclusive and map it for atomic access. */
static int hmi_exclusive_page(struct hmi *h, unsigned long addr)
{
	struct mmu_tracked_range *r;
	struct folio *folio;
	struct page *page;
	unsigned long seq;
	void *entry;
	int ret;

	ret = xa_reserve(&h->pt, addr >> PAGE_SHIFT, GFP_KERNEL);
	if (ret)
		return ret;
	for (;;) {
		mmap_read_lock(h->mm);
		r = mmu_range_tracker_fault(&h->tracker, addr);
		if (IS_ERR(r)) {
			mmap_read_unlock(h->mm);
			ret = PTR_ERR(r);
			break;
		}
		seq = mmu_interval_read_begin(&r->notifier);
		/*
		 * Invalidates the page with MMU_NOTIFY_EXCLUSIVE and our owner:
		 * the tracker zaps our old entry through hmi_invalidate() but
		 * leaves the sequence alone (mmu_range_tracker_set_owner()).
		 */
		page = make_device_exclusive(h->mm, addr, h, &folio);
		mmap_read_unlock(h->mm);
		if (IS_ERR(page)) {
			mmu_tracked_range_put(r);
			ret = PTR_ERR(page);
			break;
		}
		mmu_range_tracker_lock(&h->tracker);
		if (mmu_tracked_range_read_retry(r, seq)) {
			mmu_range_tracker_unlock(&h->tracker);
			folio_unlock(folio);
			folio_put(folio);
			mmu_tracked_range_put(r);
			atomic64_inc(&h->retries);
			continue;
		}
		entry = xa_mk_value(page_to_pfn(page) << HMI_PTE_SHIFT |
				    HMI_PTE_WRITE | HMI_PTE_EXCL);
		xa_store(&h->pt, addr >> PAGE_SHIFT, entry, GFP_NOWAIT);
		atomic64_inc(&h->nr_exclusive);
		atomic64_inc(&h->mapped);
		mmu_range_tracker_unlock(&h->tracker);
		folio_unlock(folio);
		folio_put(folio);
		mmu_tracked_range_put(r);
		break;
	}
	xa_release(&h->pt, addr >> PAGE_SHIFT);
	return ret;
}

static long hmi_exclusive(struct hmi *h, void __user *uarg)
{
	struct hmi_access cmd;
	unsigned long i;
	long ret;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	ret = hmi_span(cmd.addr, cmd.npages);
	if (ret)
		return ret;
	ret = hmi_start(h);
	if (ret)
		return ret;
	if (!mmget_not_zero(h->mm))
		return -EFAULT;
	cmd.faults = 0;
	for (i = 0; i < cmd.npages && !ret; i++) {
		ret = hmi_exclusive_page(h, cmd.addr + i * PAGE_SIZE);
		if (!ret)
			cmd.faults++;
	}
	mmput(h->mm);
	if (!ret && copy_to_user(uarg, &cmd, sizeof(cmd)))
		ret = -EFAULT;
	return ret;
}

static struct page *hmi_devmem_alloc(void)
{
	struct page *page;
	struct page *data;

	data = alloc_page(GFP_HIGHUSER);
	if (!data)
		return NULL;
	spin_lock(&hmi_devmem.lock);
	page = hmi_devmem.free;
	if (page)
		hmi_devmem.free = page->zone_device_data;
	spin_unlock(&hmi_devmem.lock);
	if (!page) {
		__free_page(data);
		return NULL;
	}
	/* Locks the page for the migration, and reuses zone_device_data. */
	zone_device_page_init(page, &hmi_devmem.pagemap, 0);
	page->zone_device_data = data;
	return page;
}

/* The last reference to a device page is gone: back to the pool. */
static void hmi_devmem_free(struct folio *folio)
{
	struct page *page = &folio->page;

	__free_page(page->zone_device_data);
	spin_lock(&hmi_devmem.lock);
	page->zone_device_data = hmi_devmem.free;
	hmi_devmem.free = page;
	spin_unlock(&hmi_devmem.lock);
}

/*
 * The CPU touched a page of ours: migrate it back to a system page. The
 * migration invalidates with MMU_NOTIFY_MIGRATE, which the tracker passes
 * to hmi_invalidate() of every device mapping the page: no device keeps it.
 */
static vm_fault_t hmi_devmem_migrate_to_ram(struct vm_fault *vmf)
{
	unsigned long src = 0, dst = 0;
	struct migrate_vma args = {
		.vma = vmf->vma,
		.start = vmf->address & PAGE_MASK,
		.end = (vmf->address & PAGE_MASK) + PAGE_SIZE,
		.src = &src,
		.dst = &dst,
		.pgmap_owner = &hmi_devmem,
		.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page = vmf->page,
	};
	struct page *spage, *dpage;

	if (migrate_vma_setup(&args))
		return VM_FAULT_SIGBUS;
	spage = migrate_pfn_to_page(src);
	if (spage && (src & MIGRATE_PFN_MIGRATE)) {
		dpage = alloc_page_vma(GFP_HIGHUSER, vmf->vma, vmf->address);
		if (!dpage) {
			migrate_vma_finalize(&args);
			return VM_FAULT_OOM;
		}
		lock_page(dpage);
		copy_highpage(dpage, spage->zone_device_data);
		dst = migrate_pfn(page_to_pfn(dpage));
	}
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
	return 0;
}

static const struct dev_pagemap_ops hmi_devmem_ops = {
	.folio_free = hmi_devmem_free,
	.migrate_to_ram = hmi_devmem_migrate_to_ram,
};

/* Create the pool on first use. */
static int hmi_devmem_init(void)
{
	unsigned long pfn, first;
	void *ptr;
	int ret = 0;

	mutex_lock(&hmi_devmem.init_lock);
	if (hmi_devmem.ready)
		goto out;
	hmi_devmem.res = request_free_mem_region(&iomem_resource,
						 HMI_DEVMEM_PAGES << PAGE_SHIFT,
						 "hmm_intervals");
	if (IS_ERR(hmi_devmem.res)) {
		ret = PTR_ERR(hmi_devmem.res);
		goto out;
	}
	hmi_devmem.pagemap.type = MEMORY_DEVICE_PRIVATE;
	hmi_devmem.pagemap.range.start = hmi_devmem.res->start;
	hmi_devmem.pagemap.range.end = hmi_devmem.res->end;
	hmi_devmem.pagemap.nr_range = 1;
	hmi_devmem.pagemap.ops = &hmi_devmem_ops;
	hmi_devmem.pagemap.owner = &hmi_devmem;
	ptr = memremap_pages(&hmi_devmem.pagemap, numa_node_id());
	if (IS_ERR(ptr)) {
		release_mem_region(hmi_devmem.res->start,
				   resource_size(hmi_devmem.res));
		ret = PTR_ERR(ptr);
		goto out;
	}
	first = hmi_devmem.res->start >> PAGE_SHIFT;
	spin_lock(&hmi_devmem.lock);
	for (pfn = first; pfn < first + HMI_DEVMEM_PAGES; pfn++) {
		struct page *page = pfn_to_page(pfn);

		page->zone_device_data = hmi_devmem.free;
		hmi_devmem.free = page;
	}
	spin_unlock(&hmi_devmem.lock);
	hmi_devmem.ready = true;
out:
	mutex_unlock(&hmi_devmem.init_lock);
	return ret;
}

/*
 * Module unload: migrate back what processes still have in device memory,
 * then remove the pool (memunmap_pages() waits for every page).
 */
static void hmi_devmem_fini(void)
{
	unsigned long first, i, *src, *dst;

	if (!hmi_devmem.ready)
		return;
	first = hmi_devmem.res->start >> PAGE_SHIFT;
	src = kvcalloc(HMI_DEVMEM_PAGES, sizeof(*src), GFP_KERNEL | __GFP_NOFAIL);
	dst = kvcalloc(HMI_DEVMEM_PAGES, sizeof(*dst), GFP_KERNEL | __GFP_NOFAIL);
	migrate_device_range(src, first, HMI_DEVMEM_PAGES);
	for (i = 0; i < HMI_DEVMEM_PAGES; i++) {
		struct page *spage = migrate_pfn_to_page(src[i]), *dpage;

		if (!spage || !(src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		dpage = alloc_page(GFP_HIGHUSER | __GFP_NOFAIL);
		lock_page(dpage);
		copy_highpage(dpage, spage->zone_device_data);
		dst[i] = migrate_pfn(page_to_pfn(dpage));
	}
	migrate_device_pages(src, dst, HMI_DEVMEM_PAGES);
	migrate_device_finalize(src, dst, HMI_DEVMEM_PAGES);
	kvfree(src);
	kvfree(dst);
	memunmap_pages(&hmi_devmem.pagemap);
	release_mem_region(hmi_devmem.res->start, resource_size(hmi_devmem.res));
}

/* Migrate the pages of [start, end), which one VMA covers, to the device. */
static unsigned long hmi_migrate_batch(struct vm_area_struct *vma,
				       unsigned long start, unsigned long end,
				       unsigned long *src, unsigned long *dst)
{
	struct migrate_vma args = {
		.vma = vma,
		.start = start,
		.end = end,
		.src = src,
		.dst = dst,
		.pgmap_owner = &hmi_devmem,
		.flags = MIGRATE_VMA_SELECT_SYSTEM,
	};
	unsigned long i, n = (end - start) >> PAGE_SHIFT, done = 0;
	struct page *spage, *dpage;

	memset(src, 0, n * sizeof(*src));
	memset(dst, 0, n * sizeof(*dst));
	/* Invalidates with MMU_NOTIFY_MIGRATE: the device drops the pages. */
	if (migrate_vma_setup(&args))
		return 0;
	for (i = 0; i < n; i++) {
		if (!(src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		dpage = hmi_devmem_alloc();
		if (!dpage)
			continue;
		spage = migrate_pfn_to_page(src[i]);
		if (spage)
			copy_highpage(dpage->zone_device_data, spage);
		else
			clear_highpage(dpage->zone_device_data);
		dst[i] = migrate_pfn(page_to_pfn(dpage));
		if ((src[i] & MIGRATE_PFN_WRITE) ||
		    (!spage && (vma->vm_flags & VM_WRITE)))
			dst[i] |= MIGRATE_PFN_WRITE;
	}
	migrate_vma_pages(&args);
	for (i = 0; i < n; i++)
		if (dst[i] && (src[i] & MIGRATE_PFN_MIGRATE))
			done++;
	migrate_vma_finalize(&args);
	return done;
}

/*
 * Migrate pages to device memory and map them, as a GPU's bind does. The
 * mapping is a device fault like any other: a fresh read of the CPU page
 * table (which now holds our device-private entries, returned as they are
 * to their owner) checked against the range's sequence. A sequence taken
 * before the migration would always be stale, since the migration's own
 * MMU_NOTIFY_MIGRATE invalidation advances it; and mapping the pfns the
 * migration produced without a check would map pages that a racing
 * MADV_DONTNEED already freed (hazard 17).
 */
static long hmi_migrate(struct hmi *h, void __user *uarg)
{
	struct vm_area_struct *vma;
	unsigned long *src, *dst, addr, end, next, i;
	struct hmi_access cmd;
	long ret;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	ret = hmi_span(cmd.addr, cmd.npages);
	if (ret)
		return ret;
	ret = hmi_start(h);
	if (!ret)
		ret = hmi_devmem_init();
	if (ret)
		return ret;
	src = kcalloc(HMI_MIGRATE_BATCH, sizeof(*src), GFP_KERNEL);
	dst = kcalloc(HMI_MIGRATE_BATCH, sizeof(*dst), GFP_KERNEL);
	if (!src || !dst) {
		ret = -ENOMEM;
		goto out_free;
	}
	if (!mmget_not_zero(h->mm)) {
		ret = -EFAULT;
		goto out_free;
	}
	end = cmd.addr + cmd.npages * PAGE_SIZE;
	cmd.faults = 0;
	mmap_read_lock(h->mm);
	for (addr = cmd.addr; addr < end; addr = next) {
		vma = vma_lookup(h->mm, addr);
		if (!vma) {
			ret = -EFAULT;
			break;
		}
		next = min3(end, vma->vm_end, addr + HMI_MIGRATE_BATCH * PAGE_SIZE);
		cmd.faults += hmi_migrate_batch(vma, addr, next, src, dst);
	}
	mmap_read_unlock(h->mm);
	atomic64_add(cmd.faults, &h->migrated);
	for (i = 0; i < cmd.npages && !ret; i++)
		ret = hmi_fault(h, cmd.addr + i * PAGE_SIZE, false);
	mmput(h->mm);
	if (!ret && copy_to_user(uarg, &cmd, sizeof(cmd)))
		ret = -EFAULT;
out_free:
	kfree(src);
	kfree(dst);
	return ret;
}
#else
static long hmi_exclusive(struct hmi *h, void __user *uarg)
{
	return -EOPNOTSUPP;
}

static void hmi_devmem_fini(void)
{
}

static long hmi_migrate(struct hmi *h, void __user *uarg)
{
	return -EOPNOTSUPP;
}
#endif /* CONFIG_DEVICE_PRIVATE */

/* --- state --- */

static long hmi_state(struct hmi *h, void __user *uarg)
{
	struct mmu_range_tracker_stats stats = { };
	struct hmi_range __user *uranges;
	struct mmu_tracked_range *r;
	struct hmi_state st;
	struct hmi_range hr;
	unsigned long start = 0, index;
	void *entry;

	if (copy_from_user(&st, uarg, sizeof(st)))
		return -EFAULT;
	uranges = u64_to_user_ptr(st.ranges);
	st.nr_ranges = 0;
	mutex_lock(&h->setup_lock);
	if (h->started) {
		while ((r = mmu_range_tracker_find(&h->tracker, start,
						   TASK_SIZE))) {
			hr.start = mmu_tracked_range_start(r);
			hr.end = mmu_tracked_range_end(r);
			start = hr.end;
			mmu_tracked_range_put(r);
			if (st.nr_ranges < st.max_ranges &&
			    copy_to_user(&uranges[st.nr_ranges], &hr,
					 sizeof(hr))) {
				mutex_unlock(&h->setup_lock);
				return -EFAULT;
			}
			st.nr_ranges++;
		}
		mmu_range_tracker_get_stats(&h->tracker, &stats);
	}
	mutex_unlock(&h->setup_lock);
	st.entries = 0;
	mutex_lock(&h->lock);
	xa_for_each(&h->pt, index, entry)
		st.entries++;
	xa_for_each(&h->huge, index, entry)
		st.entries++;
	mutex_unlock(&h->lock);
	st.granule_shift = h->granule_shift;
	st.created = stats.created;
	st.split = stats.split;
	st.shrunk = stats.shrunk;
	st.removed = stats.removed;
	st.invalidations = stats.invalidations;
	st.mapped = atomic64_read(&h->mapped);
	st.zapped = atomic64_read(&h->zapped);
	st.retries = atomic64_read(&h->retries);
	st.huge = atomic64_read(&h->nr_huge);
	st.devmem = atomic64_read(&h->nr_devmem);
	st.exclusive = atomic64_read(&h->nr_exclusive);
	st.migrated = atomic64_read(&h->migrated);
	return copy_to_user(uarg, &st, sizeof(st)) ? -EFAULT : 0;
}

static long hmi_set_policy(struct hmi *h, void __user *uarg)
{
	u32 shift;
	long ret = 0;

	if (get_user(shift, (u32 __user *)uarg))
		return -EFAULT;
	if (shift && (shift < PAGE_SHIFT || shift > HMI_MAX_GRANULE_SHIFT))
		return -EINVAL;
	mutex_lock(&h->setup_lock);
	if (h->started)
		ret = -EBUSY;
	else
		h->granule_shift = shift;
	mutex_unlock(&h->setup_lock);
	return ret;
}

static long hmi_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct hmi *h = file->private_data;
	void __user *uarg = (void __user *)arg;

	/* Only the opener's mm is mirrored. */
	if (current->mm != h->mm)
		return -EPERM;
	switch (cmd) {
	case HMI_SET_POLICY:
		return hmi_set_policy(h, uarg);
	case HMI_READ:
		return hmi_access(h, uarg, false);
	case HMI_WRITE:
		return hmi_access(h, uarg, true);
	case HMI_STATE:
		return hmi_state(h, uarg);
	case HMI_SYNC:
		mutex_lock(&h->setup_lock);
		if (h->started)
			mmu_range_tracker_synchronize(&h->tracker);
		mutex_unlock(&h->setup_lock);
		return 0;
	case HMI_SNAPSHOT:
		return hmi_snapshot(h, uarg);
	case HMI_CHECK:
		return hmi_check(h, uarg);
	case HMI_EXCLUSIVE:
		return hmi_exclusive(h, uarg);
	case HMI_MIGRATE:
		return hmi_migrate(h, uarg);
	case HMI_WHOLE_MM:
		return hmi_whole_mm(h);
	default:
		return -ENOTTY;
	}
}

static int hmi_open(struct inode *inode, struct file *file)
{
	struct hmi *h;

	if (!current->mm)
		return -EINVAL;
	h = kzalloc_obj(*h);
	if (!h)
		return -ENOMEM;
	mutex_init(&h->lock);
	mutex_init(&h->setup_lock);
	xa_init(&h->pt);
	xa_init(&h->huge);
	mmgrab(current->mm);
	h->mm = current->mm;
	file->private_data = h;
	return 0;
}

static int hmi_release(struct inode *inode, struct file *file)
{
	struct hmi *h = file->private_data;

	/* The barrier: no callback runs and nothing is queued after this. */
	if (h->started)
		mmu_range_tracker_fini(&h->tracker);
	/* Waits for its callbacks to finish: none runs after this. */
	if (h->whole_registered)
		mmu_notifier_unregister(&h->whole, h->mm);
	xa_destroy(&h->pt);
	xa_destroy(&h->huge);
	mmdrop(h->mm);
	kfree(h);
	return 0;
}

static const struct file_operations hmi_fops = {
	.owner = THIS_MODULE,
	.open = hmi_open,
	.release = hmi_release,
	.unlocked_ioctl = hmi_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice hmi_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "hmm_intervals",
	.fops = &hmi_fops,
};

static int __init hmi_init(void)
{
	return misc_register(&hmi_misc);
}

static void __exit hmi_exit(void)
{
	misc_deregister(&hmi_misc);
	hmi_devmem_fini();
}

module_init(hmi_init);
module_exit(hmi_exit);

MODULE_DESCRIPTION("HMM mirror on mmu_range_tracker, for selftests");
MODULE_LICENSE("GPL");
