// SPDX-License-Identifier: GPL-2.0
/*
 * An HMM mirror on mmu_range_tracker, for testing from user space.
 *
 * Each open file of /dev/hmm_intervals is a "device" that mirrors the mm of
 * the process that opened it through one mmu_range_tracker. Its page table is
 * software: an xarray from user page index to the pfn the device maps (and
 * whether it may write). HMI_READ and HMI_WRITE copy user memory through that
 * page table, never through the CPU's mapping, so a stale device mapping
 * shows up as stale data.
 */
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmu_range_tracker.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>

#include "test_hmm_intervals_uapi.h"

/* Largest granule a file may ask for: 1 GiB. */
#define HMI_MAX_GRANULE_SHIFT	30
/* Device faults of one page before an access gives up with -EBUSY. */
#define HMI_MAX_TRIES		64

struct hmi {
	struct mmu_range_tracker tracker;
	/* The update lock: device page table updates and copies. */
	struct mutex lock;
	/* The mirrored mm (mm_count reference). */
	struct mm_struct *mm;
	/* Page index -> xa_mk_value(pfn << 1 | writable). */
	struct xarray pt;
	/* Serializes the policy and the start of the tracker. */
	struct mutex setup_lock;
	unsigned int granule_shift;
	bool started;
	atomic64_t mapped;
	atomic64_t zapped;
};

static bool hmi_invalidate(struct mmu_tracked_range *r,
			   const struct mmu_notifier_range *range)
{
	struct hmi *h = container_of(r->tracker, struct hmi, tracker);
	unsigned long start = max(range->start, mmu_tracked_range_start(r));
	unsigned long end = min(range->end, mmu_tracked_range_end(r));
	unsigned long index;
	void *entry;

	lockdep_assert_held(&h->lock);
	if (start >= end)
		return true;
	/* Erasing never allocates: fine in reclaim, under the update lock. */
	xa_for_each_range(&h->pt, index, entry, start >> PAGE_SHIFT,
			  (end - 1) >> PAGE_SHIFT) {
		xa_erase(&h->pt, index);
		atomic64_inc(&h->zapped);
	}
	return true;
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
		h->started = !ret;
	}
out:
	mutex_unlock(&h->setup_lock);
	return ret;
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
	unsigned long index = addr >> PAGE_SHIFT;
	struct mmu_tracked_range *r;
	unsigned long hmm_pfn;
	struct hmm_range range = {
		.start = addr,
		.end = addr + PAGE_SIZE,
		.hmm_pfns = &hmm_pfn,
		.default_flags = HMM_PFN_REQ_FAULT |
				 (write ? HMM_PFN_REQ_WRITE : 0),
	};
	void *entry;
	int ret;

	/* Reserve the slot now: no allocation under the update lock. */
	ret = xa_reserve(&h->pt, index, GFP_KERNEL);
	if (ret)
		return ret;
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
			if (ret == -EBUSY)
				continue;
			break;
		}

		mmu_range_tracker_lock(&h->tracker);
		if (mmu_tracked_range_read_retry(r, range.notifier_seq)) {
			mmu_range_tracker_unlock(&h->tracker);
			mmu_tracked_range_put(r);
			continue;
		}
		entry = xa_mk_value(page_to_pfn(hmm_pfn_to_page(hmm_pfn)) << 1 |
				    (hmm_pfn & HMM_PFN_WRITE ? 1 : 0));
		/*
		 * The slot is reserved unless an invalidation erased it
		 * meanwhile; then GFP_NOWAIT may fail, and we retry.
		 */
		ret = xa_err(xa_store(&h->pt, index, entry, GFP_NOWAIT));
		if (!ret)
			atomic64_inc(&h->mapped);
		mmu_range_tracker_unlock(&h->tracker);
		mmu_tracked_range_put(r);
		if (ret != -ENOMEM)
			break;
		ret = xa_reserve(&h->pt, index, GFP_KERNEL);
		if (ret)
			break;
	}
	mmput(h->mm);
out_release:
	if (ret)
		xa_release(&h->pt, index);
	return ret;
}

/* Copy one page between @buf and the page the device maps at @addr. */
static int hmi_copy_page(struct hmi *h, unsigned long addr, void *buf,
			 bool write, u64 *faults)
{
	unsigned long value;
	unsigned int tries;
	void *entry, *kaddr;
	int ret;

	for (tries = 0; tries < HMI_MAX_TRIES; tries++) {
		mutex_lock(&h->lock);
		entry = xa_load(&h->pt, addr >> PAGE_SHIFT);
		value = entry ? xa_to_value(entry) : 0;
		if (entry && (!write || (value & 1))) {
			/*
			 * Mapped by the device: the page cannot be freed
			 * before an invalidation, which needs this lock.
			 */
			kaddr = kmap_local_page(pfn_to_page(value >> 1));
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

static long hmi_access(struct hmi *h, void __user *uarg, bool write)
{
	struct hmi_access cmd;
	unsigned long addr, i;
	void *buf;
	long ret = 0;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	if (!cmd.npages || cmd.npages > HMI_MAX_PAGES ||
	    !PAGE_ALIGNED(cmd.addr))
		return -EINVAL;
	if (cmd.addr >= TASK_SIZE ||
	    cmd.npages > (TASK_SIZE - cmd.addr) >> PAGE_SHIFT)
		return -EFAULT;
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

static long hmi_state(struct hmi *h, void __user *uarg)
{
	struct mmu_range_tracker_stats stats = { };
	struct hmi_range __user *uranges;
	struct mmu_tracked_range *r;
	struct hmi_state st;
	struct hmi_range hr;
	unsigned long start = 0;

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
	st.granule_shift = h->granule_shift;
	st.created = stats.created;
	st.split = stats.split;
	st.shrunk = stats.shrunk;
	st.removed = stats.removed;
	st.invalidations = stats.invalidations;
	st.mapped = atomic64_read(&h->mapped);
	st.zapped = atomic64_read(&h->zapped);
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
	xa_destroy(&h->pt);
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

module_misc_device(hmi_misc);

MODULE_DESCRIPTION("HMM mirror on mmu_range_tracker, for selftests");
MODULE_LICENSE("GPL");
