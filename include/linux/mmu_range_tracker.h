/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mmu_range_tracker: mmu_interval_notifiers created on device fault,
 * reshaped on munmap and freed safely, for drivers that mirror a process
 * address space. See Documentation/mm/mmu_range_tracker.rst.
 */
#ifndef _LINUX_MMU_RANGE_TRACKER_H
#define _LINUX_MMU_RANGE_TRACKER_H

#include <linux/list.h>
#include <linux/maple_tree.h>
#include <linux/mmu_notifier.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

struct mmu_range_tracker;

/**
 * struct mmu_tracked_range - A tracked range of a process address space
 * @notifier: The interval notifier covering the range. Drivers pass it to
 *            hmm_range_fault() (``range.notifier = &r->notifier``) and to
 *            mmu_interval_read_begin(); they never insert, remove or set the
 *            sequence of it themselves.
 *
 * Ranges are created by mmu_range_tracker_fault() and returned with a
 * reference, dropped by mmu_tracked_range_put(). A driver may embed the
 * structure in a bigger one with &mmu_range_tracker_ops.alloc_range.
 */
struct mmu_tracked_range {
	struct mmu_interval_notifier notifier;
	/* private: */
	struct mmu_range_tracker *tracker;
	refcount_t refs;
	unsigned long flags;
	/* On tracker->pending while flags has MMU_TRACKED_RANGE_DYING. */
	struct list_head pending;
	struct rcu_head rcu;
};

/**
 * struct mmu_range_tracker_ops - Driver callbacks of a tracker
 * @invalidate: Required. Zap the device mappings in the intersection of @r
 *              and @range. Called with the tracker's update lock held; the
 *              tracker has already advanced the sequence of @r. Must not
 *              allocate memory (it runs in reclaim) and must not call
 *              mmu_range_tracker_synchronize() or mmu_range_tracker_fini().
 *              It may call mmu_range_tracker_remove_deferred(). Return false
 *              only when mmu_notifier_range_blockable(@range) is false and
 *              the zap would have to sleep: the invalidation then fails.
 *              The tracker also calls it (with a blockable range, event
 *              %MMU_NOTIFY_UNMAP) when it stops watching part of a range
 *              that may still hold device mappings.
 * @alloc_range: Optional. Allocate a driver structure embedding a
 *               &struct mmu_tracked_range and return the embedded range, or
 *               NULL. Allocate with @gfp: GFP_KERNEL_ACCOUNT, and from
 *               the deferred work also __GFP_NORETRY | __GFP_NOWARN (a
 *               failure there only leaves a part to fault again). Called
 *               never under the update lock, with the memory cgroup of the
 *               tracker's mm active, which @gfp charges, whoever faulted.
 *               Default: kzalloc().
 * @free_range: Optional, required with @alloc_range. Free what @alloc_range
 *              returned. Called from an RCU callback: must not sleep.
 */
struct mmu_range_tracker_ops {
	bool (*invalidate)(struct mmu_tracked_range *r,
			   const struct mmu_notifier_range *range);
	struct mmu_tracked_range *(*alloc_range)(struct mmu_range_tracker *t,
						 gfp_t gfp);
	void (*free_range)(struct mmu_tracked_range *r);
};

/**
 * struct mmu_range_tracker_stats - Counters of a tracker since init
 * @created: Ranges created, by faults and as survivors of reshapes
 * @split: Ranges cut by an unmap that left two or more survivors
 * @shrunk: Ranges cut by an unmap that left one survivor
 * @removed: Ranges removed with no survivor (fully unmapped, exit, driver
 *           removal, fini)
 * @invalidations: Invalidation callbacks received
 */
struct mmu_range_tracker_stats {
	unsigned long created;
	unsigned long split;
	unsigned long shrunk;
	unsigned long removed;
	unsigned long invalidations;
};

/**
 * struct mmu_range_tracker - The tracked ranges of one mm for one device
 *
 * Embedded by the driver, set up by mmu_range_tracker_init(), torn down by
 * mmu_range_tracker_fini(). All members are private.
 */
struct mmu_range_tracker {
	/* private: */
	struct mm_struct *mm;
	const struct mmu_range_tracker_ops *ops;
	/* The update lock: the driver's, or own_lock. */
	struct mutex *lock;
	/* The update lock when the driver has none to share. */
	struct mutex own_lock;
	unsigned int granule_shift;
	/* PAGE_SHIFT under the VMA policy, granule_shift otherwise. */
	unsigned int index_shift;
	bool dead;
	/* See mmu_range_tracker_set_owner(). */
	void *owner;
	/* Live and dying ranges by address, RCU-safe for lookups. */
	struct maple_tree ranges;
	/*
	 * Serializes writers of ranges (the external maple tree lock) and
	 * creation. Never taken under the update lock nor in the invalidate
	 * path, so writers may allocate.
	 */
	struct mutex tree_lock;
	/*
	 * The lock-free fast path of lookups, one xa_load() as in mlx5 ODP:
	 * address >> index_shift -> a live range there. VMA policy: every
	 * page of every live range, in multi-index entries. Granule policy:
	 * one live range of the granule. A cache of @ranges, which lookups
	 * fall back to when it misses. Written under tree_lock.
	 */
	struct xarray index;
	/* Ranges waiting for the deferred work, under pending_lock. */
	spinlock_t pending_lock;
	struct list_head pending;
	struct work_struct work;
	/* Ranges allocated and not yet freed. */
	atomic_t nr_ranges;
	/* See struct mmu_range_tracker_stats. */
	struct {
		atomic_long_t created;
		atomic_long_t split;
		atomic_long_t shrunk;
		atomic_long_t removed;
		atomic_long_t invalidations;
	} stats;
};

int mmu_range_tracker_init(struct mmu_range_tracker *t, struct mm_struct *mm,
			   const struct mmu_range_tracker_ops *ops,
			   struct mutex *lock, unsigned int granule_shift);
void mmu_range_tracker_fini(struct mmu_range_tracker *t);

struct mmu_tracked_range *mmu_range_tracker_fault(struct mmu_range_tracker *t,
						  unsigned long addr);
struct mmu_tracked_range *mmu_range_tracker_lookup(struct mmu_range_tracker *t,
						   unsigned long addr);
struct mmu_tracked_range *mmu_range_tracker_find(struct mmu_range_tracker *t,
						 unsigned long start,
						 unsigned long end);
void mmu_tracked_range_put(struct mmu_tracked_range *r);

void mmu_range_tracker_set_owner(struct mmu_range_tracker *t, void *owner);
void mmu_range_tracker_remove_deferred(struct mmu_tracked_range *r);
void mmu_range_tracker_synchronize(struct mmu_range_tracker *t);
void mmu_range_tracker_get_stats(struct mmu_range_tracker *t,
				 struct mmu_range_tracker_stats *stats);

bool mmu_tracked_range_read_retry(struct mmu_tracked_range *r,
				  unsigned long seq);

/**
 * mmu_range_tracker_lock - Take the tracker's update lock
 * @t: The tracker
 *
 * Device mappings are committed under this lock, after
 * mmu_tracked_range_read_retry() said they are not stale. Do not allocate
 * memory while holding it.
 */
static inline void mmu_range_tracker_lock(struct mmu_range_tracker *t)
{
	mutex_lock(t->lock);
}

/**
 * mmu_range_tracker_unlock - Release the tracker's update lock
 * @t: The tracker
 */
static inline void mmu_range_tracker_unlock(struct mmu_range_tracker *t)
{
	mutex_unlock(t->lock);
}

/**
 * mmu_tracked_range_start - First address of a tracked range
 * @r: The range
 *
 * Return: the page-aligned start of @r.
 */
static inline unsigned long mmu_tracked_range_start(struct mmu_tracked_range *r)
{
	return r->notifier.interval_tree.start;
}

/**
 * mmu_tracked_range_end - End of a tracked range
 * @r: The range
 *
 * Return: the page-aligned, exclusive end of @r.
 */
static inline unsigned long mmu_tracked_range_end(struct mmu_tracked_range *r)
{
	return r->notifier.interval_tree.last + 1;
}

#endif /* _LINUX_MMU_RANGE_TRACKER_H */
