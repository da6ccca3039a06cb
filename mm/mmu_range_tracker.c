// SPDX-License-Identifier: GPL-2.0
/*
 * mmu_range_tracker: interval notifiers created on device fault, reshaped on
 * munmap, removed and freed from deferred work.
 *
 * Design, in the order a reviewer will ask about it (the numbers refer to
 * the hazards listed in Documentation/mm/mmu_range_tracker.rst):
 *
 * A range is *live* from its creation until something marks it *dying*
 * (MRT_DYING): an MMU_NOTIFY_UNMAP or MMU_NOTIFY_RELEASE invalidation that
 * touches it, mmu_range_tracker_remove_deferred(), or fini. Marking is all
 * the invalidate path does beyond calling the driver: it sets a bit and adds
 * the range to a list through a list_head embedded in the range, so it never
 * allocates (6), and any number of cuts before the work runs (7) only set the
 * same bit again.
 *
 * The deferred work then, for each dying range:
 *  1. erases it from the maple tree and, for an UNMAP/RELEASE cut, inserts a
 *     new live range for every part that is still mapped according to the
 *     VMA tree and not already covered by a live range. It reads the VMA
 *     tree under mmap_read_lock() with an mm_users reference (2), so the
 *     hole is visible even when munmap downgraded its lock before the
 *     invalidation (5). Survivors are inserted *before* the old notifier is
 *     removed, so a still-mapped address is never without a notifier. The
 *     erase preallocates its tree nodes and, when it cannot, leaves the range
 *     in the tree (dying, so lookups skip it, and still watched by its
 *     notifier) for a retry: a range freed while still in the tree would be
 *     a use after free for every later lookup (14);
 *  2. under the update lock, zaps the device mappings of the parts of the
 *     old range that no live range covers now, *before* the old notifier is
 *     removed (13). Until the zap those parts may hold mappings committed
 *     through the old range (driver removal, allocation failure, exit, a VMA
 *     that was gone before the invalidation reached us), and only the old
 *     notifier still delivers their invalidations. The range is dying, so
 *     nothing commits through it after the zap;
 *  3. removes the old notifier with no lock held: removal waits for running
 *     invalidations, which take the update lock (1), and nobody waits for
 *     this work while holding the mmap_lock (4);
 *  4. drops the tracker's reference: the last reference frees the range
 *     after an RCU grace period, because mmu_range_tracker_lookup() may be
 *     reading it without any lock (9).
 *
 * Readers commit device mappings under the update lock after
 * mmu_tracked_range_read_retry(), which says "stale" for a dying range as
 * well as for a moved sequence (8): MRT_DYING is set under the update lock
 * on the invalidation path, before the work can remove the notifier.
 *
 * Faults never wait for the work: a fault at an address whose range is dying
 * creates a new live range around it, using the dying one's slots in the
 * tree, and the work later fills only what is still uncovered. Creation
 * under mmap_read_lock() uses mmu_interval_notifier_insert_nolock() (12),
 * which is possible because init registers the mm's interval tree once.
 */

#include <kunit/visibility.h>
#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/export.h>
#include <linux/lockdep.h>
#include <linux/maple_tree.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/mmu_range_tracker.h>
#include <linux/printk.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/wait_bit.h>

#include "mmu_range_tracker_test.h"

/* Bits of mmu_tracked_range.flags. */
enum {
	/* No longer live: lookups skip it, read_retry says stale. */
	MRT_DYING,
	/* Cut by an unmap or exit: the work re-covers what is still mapped. */
	MRT_RESHAPE,
	/* Removal asked for (driver or fini): no survivors. */
	MRT_DROP,
};

/* How long fini waits for leaked references before saying so, again. */
#define MRT_FINI_WARN_INTERVAL	(10 * HZ)
/* How long the work waits before it retries an erase that found no memory. */
#define MRT_ERASE_RETRY_MS	10

#if IS_ENABLED(CONFIG_MMU_RANGE_TRACKER_KUNIT_TEST)
const struct mrt_test_hooks *mrt_test_hooks;
EXPORT_SYMBOL_IF_KUNIT(mrt_test_hooks);

static void mrt_test_point(struct mmu_range_tracker *t,
			   enum mrt_test_point point)
{
	const struct mrt_test_hooks *hooks = READ_ONCE(mrt_test_hooks);

	if (hooks && hooks->point)
		hooks->point(t, point);
}

static bool mrt_test_fail(struct mmu_range_tracker *t, enum mrt_test_site site)
{
	const struct mrt_test_hooks *hooks = READ_ONCE(mrt_test_hooks);

	return hooks && hooks->fail && hooks->fail(t, site);
}
#else
static inline void mrt_test_point(struct mmu_range_tracker *t,
				  enum mrt_test_point point)
{
}

static inline bool mrt_test_fail(struct mmu_range_tracker *t,
				 enum mrt_test_site site)
{
	return false;
}
#endif

static bool mrt_is_dying(struct mmu_tracked_range *r)
{
	return test_bit(MRT_DYING, &r->flags);
}

/*
 * Mark @r dying and queue it for the deferred work. Called from the
 * invalidate callback, from any context through remove_deferred(), and from
 * fini. Allocates nothing and takes only a spinlock.
 */
static void mrt_queue_dying(struct mmu_tracked_range *r)
{
	struct mmu_range_tracker *t = r->tracker;
	unsigned long irqflags;

	if (test_and_set_bit(MRT_DYING, &r->flags))
		return;
	spin_lock_irqsave(&t->pending_lock, irqflags);
	list_add_tail(&r->pending, &t->pending);
	spin_unlock_irqrestore(&t->pending_lock, irqflags);
	queue_work(system_dfl_wq, &t->work);
}

static bool mrt_invalidate(struct mmu_interval_notifier *mni,
			   const struct mmu_notifier_range *range,
			   unsigned long cur_seq)
{
	struct mmu_tracked_range *r =
		container_of(mni, struct mmu_tracked_range, notifier);
	struct mmu_range_tracker *t = r->tracker;
	bool ok;

	if (mmu_notifier_range_blockable(range))
		mutex_lock(t->lock);
	else if (!mutex_trylock(t->lock))
		return false;

	/*
	 * Advance the sequence before zapping, under the lock readers commit
	 * under: a reader that checks after we unlock sees the new sequence,
	 * one that committed before we locked is zapped below. The device's
	 * own make_device_exclusive() is the exception: its fault path
	 * maps the page right after, and would otherwise always see its read
	 * as stale (see mmu_range_tracker_set_owner()).
	 */
	if (!(range->event == MMU_NOTIFY_EXCLUSIVE && t->owner &&
	      range->owner == t->owner))
		mmu_interval_set_seq(mni, cur_seq);
	atomic_long_inc(&t->stats.invalidations);
	ok = t->ops->invalidate(r, range);
	WARN_ON_ONCE(!ok && mmu_notifier_range_blockable(range));

	/*
	 * An unmap (munmap, or mremap moving pages away) or the exit of the mm
	 * leaves part of the range without memory: reshape it later. Setting
	 * MRT_DYING here, under the update lock, is what makes every reader
	 * that has not committed yet retry (hazard 8). A failed non-blockable
	 * invalidation (the OOM reaper's) changes no CPU page table: nothing
	 * to reshape.
	 */
	if (ok && (range->event == MMU_NOTIFY_UNMAP ||
		   range->event == MMU_NOTIFY_RELEASE)) {
		set_bit(MRT_RESHAPE, &r->flags);
		mrt_queue_dying(r);
	}
	mutex_unlock(t->lock);
	return ok;
}

static const struct mmu_interval_notifier_ops mrt_notifier_ops = {
	.invalidate = mrt_invalidate,
};

static struct mmu_tracked_range *mrt_alloc_range(struct mmu_range_tracker *t,
						 gfp_t gfp)
{
	struct mem_cgroup *memcg, *old_memcg;
	struct mmu_tracked_range *r;

	if (mrt_test_fail(t, MRT_SITE_ALLOC_RANGE))
		return NULL;
	/*
	 * A range is made for the mm, from whatever context faulted: a
	 * kworker (an RDMA responder serving a peer, async prefetch, our
	 * deferred work) would charge nobody. Charge the mm's memory cgroup:
	 * @gfp has __GFP_ACCOUNT.
	 */
	memcg = get_mem_cgroup_from_mm(t->mm);
	old_memcg = set_active_memcg(memcg);
	if (t->ops->alloc_range)
		r = t->ops->alloc_range(t, gfp);
	else
		r = kzalloc_obj(*r, gfp);
	set_active_memcg(old_memcg);
	mem_cgroup_put(memcg);
	if (!r)
		return NULL;
	r->tracker = t;
	r->flags = 0;
	refcount_set(&r->refs, 1);
	INIT_LIST_HEAD(&r->pending);
	atomic_inc(&t->nr_ranges);
	return r;
}

/* Free a range. Runs from an RCU callback or for a range never published. */
static void mrt_free_range(struct mmu_tracked_range *r)
{
	struct mmu_range_tracker *t = r->tracker;

	if (t->ops->free_range)
		t->ops->free_range(r);
	else
		kfree(r);
	/*
	 * fini waits for nr_ranges to reach zero and may free @t as soon as it
	 * does: wake_up_var() uses the address only as a hash key.
	 */
	if (atomic_dec_and_test(&t->nr_ranges))
		wake_up_var(&t->nr_ranges);
}

static void mrt_free_range_rcu(struct rcu_head *head)
{
	mrt_free_range(container_of(head, struct mmu_tracked_range, rcu));
}

/**
 * mmu_tracked_range_put - Drop a reference to a tracked range
 * @r: The range, as returned by mmu_range_tracker_fault() or
 *     mmu_range_tracker_lookup()
 *
 * The range is freed after an RCU grace period once the tracker and every
 * holder have dropped their references. Callable from any context.
 */
void mmu_tracked_range_put(struct mmu_tracked_range *r)
{
	if (refcount_dec_and_test(&r->refs))
		call_rcu(&r->rcu, mrt_free_range_rcu);
}
EXPORT_SYMBOL_GPL(mmu_tracked_range_put);

/* Take a reference on @r unless it is dying or being freed. */
static struct mmu_tracked_range *mrt_get_live(struct mmu_tracked_range *r)
{
	if (!r || mrt_is_dying(r) || !refcount_inc_not_zero(&r->refs))
		return NULL;
	/* It may have been marked dying between the test and the increment. */
	if (mrt_is_dying(r)) {
		mmu_tracked_range_put(r);
		return NULL;
	}
	return r;
}

static unsigned long mrt_index(struct mmu_range_tracker *t, unsigned long addr)
{
	return addr >> t->index_shift;
}

/*
 * Make @r the entry of its addresses in the lookup index. VMA policy: every
 * page of @r, as multi-index entries (a large range costs O(log) slots).
 * Granule policy: the granule's one slot, unless another live range of the
 * same granule (a survivor of a cut) holds it; lookups of @r's addresses
 * then take the maple tree. The index is a cache: a failed store leaves
 * lookups to the maple tree, nothing else.
 */
static void mrt_index_publish(struct mmu_range_tracker *t,
			      struct mmu_tracked_range *r)
{
	unsigned long first = mrt_index(t, mmu_tracked_range_start(r));
	struct mmu_tracked_range *old;

	lockdep_assert_held(&t->tree_lock);
	if (mrt_test_fail(t, MRT_SITE_INDEX_STORE))
		return;
	if (!t->granule_shift) {
		xa_store_range(&t->index, first,
			       mrt_index(t, mmu_tracked_range_end(r) - 1), r,
			       GFP_KERNEL);
		return;
	}
	old = xa_load(&t->index, first);
	if (old && !mrt_is_dying(old))
		return;
	xa_store(&t->index, first, r, GFP_KERNEL);
}

/*
 * Take @r out of the lookup index: the slots still holding it (a fault may
 * have taken others for a new range). Erasing an entry, multi-index or not,
 * never allocates.
 */
static void mrt_index_erase(struct mmu_range_tracker *t,
			    struct mmu_tracked_range *r)
{
	unsigned long index;
	void *entry;

	lockdep_assert_held(&t->tree_lock);
	xa_for_each_range(&t->index, index, entry,
			  mrt_index(t, mmu_tracked_range_start(r)),
			  mrt_index(t, mmu_tracked_range_end(r) - 1))
		if (entry == r)
			xa_erase(&t->index, index);
}

/*
 * Create a live range over [start, end), which overlaps no live range, and
 * publish it. The caller holds tree_lock and an mm_users reference, and
 * allocates @r beforehand. On error @r has been freed.
 */
static int mrt_publish(struct mmu_range_tracker *t,
		       struct mmu_tracked_range *r,
		       unsigned long start, unsigned long end)
{
	MA_STATE(mas, &t->ranges, start, end - 1);
	int ret;

	lockdep_assert_held(&t->tree_lock);
	/*
	 * Allocate the tree nodes first: once the notifier is inserted, the
	 * only undo is mmu_interval_notifier_remove(), which may sleep on a
	 * running invalidation while our caller holds the mmap_lock.
	 */
	ret = mrt_test_fail(t, MRT_SITE_TREE_STORE) ? -ENOMEM :
	      mas_preallocate(&mas, r, GFP_KERNEL);
	if (ret)
		goto err_free;
	/* Never takes the mmap_lock: the caller may hold it for read (12). */
	ret = mrt_test_fail(t, MRT_SITE_INSERT) ? -ENOMEM :
	      mmu_interval_notifier_insert_nolock(&r->notifier, t->mm, start,
						  end - start,
						  &mrt_notifier_ops);
	if (ret) {
		mas_destroy(&mas);
		goto err_free;
	}
	mas_store_prealloc(&mas, r);
	mrt_index_publish(t, r);
	atomic_long_inc(&t->stats.created);
	return 0;

err_free:
	/* Never published: no lookup can hold it, no grace period needed. */
	mrt_free_range(r);
	return ret;
}

/*
 * The first part of [*pos, end) that no live range covers: moves *pos past
 * the live ranges that cover it and returns where the gap ends (@end if no
 * live range follows). When the return value is not above *pos, no gap is
 * left. The caller holds tree_lock (no range leaves the tree) or
 * rcu_read_lock() (no range is freed).
 */
static unsigned long mrt_next_gap(struct mmu_range_tracker *t,
				  unsigned long *pos, unsigned long end)
{
	struct mmu_tracked_range *r;
	unsigned long index = *pos;

	RCU_LOCKDEP_WARN(!rcu_read_lock_held() &&
			 !lockdep_is_held(&t->tree_lock),
			 "walking ranges needs tree_lock or RCU");
	mt_for_each(&t->ranges, r, index, end - 1) {
		if (mrt_is_dying(r))
			continue;
		if (mmu_tracked_range_start(r) > *pos)
			return mmu_tracked_range_start(r);
		*pos = mmu_tracked_range_end(r);
	}
	return end;
}

/*
 * Shrink [*start, *end) around @addr to the gap between live ranges that
 * contains it. Dying ranges do not count: their slots in the tree are
 * overwritten. No live range may contain @addr.
 */
static void mrt_clip(struct mmu_range_tracker *t, unsigned long addr,
		     unsigned long *start, unsigned long *end)
{
	unsigned long pos = *start, gap_end;

	lockdep_assert_held(&t->tree_lock);
	/* Gaps that end at or before @addr are followed by a live range. */
	while ((gap_end = mrt_next_gap(t, &pos, *end)) <= addr)
		pos = gap_end;
	*start = pos;
	*end = gap_end;
}

/*
 * Cover every part of [start, end) that no live range covers with new live
 * ranges. Caller holds tree_lock, mmap_read_lock() and mm_users. Returns how
 * many ranges it created; parts it could not cover stay uncovered, and the
 * caller zaps them.
 */
static unsigned int mrt_fill(struct mmu_range_tracker *t, unsigned long start,
			     unsigned long end)
{
	struct mmu_tracked_range *new;
	unsigned int created = 0;
	unsigned long pos = start, gap_end;

	lockdep_assert_held(&t->tree_lock);
	while (pos < end) {
		gap_end = mrt_next_gap(t, &pos, end);
		if (pos >= gap_end)
			continue;
		/*
		 * Holding tree_lock, the mmap_lock and mm_users: a charge
		 * over the cgroup's limit must fail, not OOM-kill (the victim,
		 * likely this mm's owner, could not exit while we hold its
		 * mm_users) nor throttle. The part is then left uncovered, and
		 * the device faults it again.
		 */
		new = mrt_alloc_range(t, GFP_KERNEL_ACCOUNT | __GFP_NORETRY |
					 __GFP_NOWARN);
		if (!new || mrt_publish(t, new, pos, gap_end))
			pr_debug("mmu_range_tracker: cannot cover [%#lx, %#lx)\n",
				 pos, gap_end);
		else
			created++;
		pos = gap_end;
	}
	return created;
}

/* Re-cover the still-mapped parts of dying range @r. */
static unsigned int mrt_reshape(struct mmu_range_tracker *t,
				struct mmu_tracked_range *r)
{
	VMA_ITERATOR(vmi, t->mm, mmu_tracked_range_start(r));
	unsigned long start = mmu_tracked_range_start(r);
	unsigned long end = mmu_tracked_range_end(r);
	struct vm_area_struct *vma;
	unsigned int created = 0;

	mmap_assert_locked(t->mm);
	for_each_vma_range(vmi, vma, end)
		created += mrt_fill(t, max(start, vma->vm_start),
				    min(end, vma->vm_end));
	return created;
}

/*
 * Remove every slot of @r from the tree; a fault may have taken some. In RCU
 * mode an erase copies tree nodes, which takes memory: 6.12's mas_erase()
 * returns without erasing when it cannot get it, 7.3's retries forever with
 * __GFP_NOFAIL. Preallocate instead, so that a failure is seen: the caller
 * keeps the range and retries (14). A range left in the tree after its free
 * would be found by every later lookup and gap walk.
 *
 * Return: 0, or -ENOMEM with some slots of @r possibly still in the tree.
 */
static int mrt_erase(struct mmu_range_tracker *t, struct mmu_tracked_range *r)
{
	MA_STATE(mas, &t->ranges, 0, 0);
	unsigned long last = mmu_tracked_range_end(r) - 1;
	unsigned long index = mmu_tracked_range_start(r);
	void *entry;

	lockdep_assert_held(&t->tree_lock);
	while (index <= last) {
		mas_set(&mas, index);
		entry = mas_find(&mas, last);
		if (!entry)
			break;
		index = mas.last + 1;
		if (entry != r)
			continue;
		if (mrt_test_fail(t, MRT_SITE_TREE_ERASE) ||
		    mas_preallocate(&mas, NULL, GFP_KERNEL))
			return -ENOMEM;
		mas_store_prealloc(&mas, NULL);
	}
	mrt_index_erase(t, r);
	return 0;
}

/*
 * Zap the device mappings of the parts of dying range @r that no live range
 * covers. A live range's notifier was inserted before @r's is removed, so its
 * part never went unwatched; everything else may hold mappings committed
 * through @r that no other notifier will ever invalidate. Called before @r's
 * notifier is removed (13), under the update lock: @r is dying, so nothing
 * commits through it once this returns.
 */
static void mrt_zap_uncovered(struct mmu_range_tracker *t,
			      struct mmu_tracked_range *r)
{
	struct mmu_notifier_range range;
	unsigned long end = mmu_tracked_range_end(r);
	unsigned long pos = mmu_tracked_range_start(r), gap_end;

	lockdep_assert_held(t->lock);
	mmu_notifier_range_init_owner(&range, MMU_NOTIFY_UNMAP,
				      MMU_NOTIFIER_RANGE_BLOCKABLE, t->mm, 0, 0,
				      NULL);
	while (pos < end) {
		rcu_read_lock();
		gap_end = mrt_next_gap(t, &pos, end);
		rcu_read_unlock();
		if (pos >= gap_end)
			continue;
		range.start = pos;
		range.end = gap_end;
		t->ops->invalidate(r, &range);
		pos = gap_end;
	}
}

/*
 * One pass of the deferred work over @batch (see the top of this file).
 * Ranges whose erase found no memory move to @retry, still dying, still in
 * the tree and still watched by their notifier.
 */
static void mrt_work_batch(struct mmu_range_tracker *t, struct list_head *batch,
			   struct list_head *retry)
{
	struct mmu_tracked_range *r, *next;
	unsigned int created;
	bool have_mm;

	/*
	 * Inserting needs mm_users (2); an exiting mm gets no survivors, its
	 * RELEASE invalidation already zapped everything.
	 */
	have_mm = mmget_not_zero(t->mm);
	if (have_mm)
		mmap_read_lock(t->mm);
	mutex_lock(&t->tree_lock);
	list_for_each_entry_safe(r, next, batch, pending) {
		if (mrt_erase(t, r)) {
			list_move_tail(&r->pending, retry);
			continue;
		}
		created = 0;
		if (have_mm && !t->dead && test_bit(MRT_RESHAPE, &r->flags) &&
		    !test_bit(MRT_DROP, &r->flags))
			created = mrt_reshape(t, r);
		if (test_bit(MRT_DROP, &r->flags) || !created)
			atomic_long_inc(&t->stats.removed);
		else if (created == 1)
			atomic_long_inc(&t->stats.shrunk);
		else
			atomic_long_inc(&t->stats.split);
	}
	mutex_unlock(&t->tree_lock);
	if (have_mm)
		mmap_read_unlock(t->mm);
	mrt_test_point(t, MRT_POINT_RESHAPED);

	/* Survivors are in: zap the rest while the old notifiers watch (13). */
	mutex_lock(t->lock);
	list_for_each_entry(r, batch, pending)
		mrt_zap_uncovered(t, r);
	mutex_unlock(t->lock);
	mrt_test_point(t, MRT_POINT_ZAPPED);

	/* Now the old notifiers can go, with no lock held (1). */
	list_for_each_entry(r, batch, pending)
		mmu_interval_notifier_remove(&r->notifier);
	if (have_mm)
		mmput(t->mm);
	mrt_test_point(t, MRT_POINT_REMOVED);

	list_for_each_entry_safe(r, next, batch, pending) {
		list_del_init(&r->pending);
		mmu_tracked_range_put(r);
	}
}

static void mrt_work(struct work_struct *work)
{
	struct mmu_range_tracker *t =
		container_of(work, struct mmu_range_tracker, work);
	LIST_HEAD(batch);
	LIST_HEAD(retry);

	mrt_test_point(t, MRT_POINT_WORK_START);
	spin_lock_irq(&t->pending_lock);
	list_splice_init(&t->pending, &batch);
	spin_unlock_irq(&t->pending_lock);

	/*
	 * Retry erases that found no memory until they succeed (14), giving
	 * reclaim a moment with no lock held: synchronize and fini wait for
	 * this work, so they return only once every range is out of the tree.
	 */
	while (!list_empty(&batch)) {
		mrt_work_batch(t, &batch, &retry);
		if (list_empty(&retry))
			break;
		msleep(MRT_ERASE_RETRY_MS);
		list_splice_init(&retry, &batch);
	}
}

/**
 * mmu_range_tracker_init - Set up a tracker for one mm
 * @t: The tracker, owned by the caller
 * @mm: The mm to mirror; the caller holds an mm_users reference (mmget() or
 *      current->mm). The tracker keeps an mm_count reference until fini.
 * @ops: Driver callbacks; @ops->invalidate is required
 * @lock: The driver's update lock, or NULL for one of the tracker's own
 * @granule_shift: 0: a range covers the VMA around the faulting address.
 *                 Otherwise ranges are naturally aligned blocks of
 *                 2^@granule_shift bytes clipped to the VMA;
 *                 PAGE_SHIFT <= @granule_shift < BITS_PER_LONG - 1.
 *
 * Registers the interval tree of @mm, which takes mmap_write_lock() once, so
 * that later creation from the fault path never needs the mmap_lock. Must not
 * be called with the mmap_lock held.
 *
 * Return: 0, -EINVAL for bad arguments, -ESRCH if @mm has exited, or the
 * error of mmu_notifier_register().
 */
int mmu_range_tracker_init(struct mmu_range_tracker *t, struct mm_struct *mm,
			   const struct mmu_range_tracker_ops *ops,
			   struct mutex *lock, unsigned int granule_shift)
{
	int ret;

	if (!t || !mm || !ops || !ops->invalidate ||
	    !ops->alloc_range != !ops->free_range)
		return -EINVAL;
	if (granule_shift &&
	    (granule_shift < PAGE_SHIFT || granule_shift >= BITS_PER_LONG - 1))
		return -EINVAL;

	if (!mmget_not_zero(mm))
		return -ESRCH;
	memset(t, 0, sizeof(*t));
	t->ops = ops;
	ret = mrt_test_fail(t, MRT_SITE_REGISTER) ? -ENOMEM :
	      mmu_notifier_register(NULL, mm);
	mmput(mm);
	if (ret)
		return ret;

	mmgrab(mm);
	t->mm = mm;
	mutex_init(&t->own_lock);
	t->lock = lock ? lock : &t->own_lock;
	t->granule_shift = granule_shift;
	t->index_shift = granule_shift ? granule_shift : PAGE_SHIFT;
	mutex_init(&t->tree_lock);
	/*
	 * RCU for lock-free lookups. MT_FLAGS_ALLOC_RANGE is not for gap
	 * tracking: the RCU free walk of 6.12.y misreads the metadata of non-full
	 * maple_range_64 nodes (hazard 11), allocation-range nodes are safe.
	 */
	mt_init_flags(&t->ranges, MT_FLAGS_ALLOC_RANGE | MT_FLAGS_USE_RCU |
				  MT_FLAGS_LOCK_EXTERN);
	mt_set_external_lock(&t->ranges, &t->tree_lock);
	xa_init(&t->index);
	spin_lock_init(&t->pending_lock);
	INIT_LIST_HEAD(&t->pending);
	INIT_WORK(&t->work, mrt_work);
	atomic_set(&t->nr_ranges, 0);

	/*
	 * Teach lockdep now that the update lock is taken in reclaim (the
	 * invalidate path), so that any allocation under it is reported even
	 * if reclaim never happens during a test.
	 */
	if (IS_ENABLED(CONFIG_LOCKDEP)) {
		fs_reclaim_acquire(GFP_KERNEL);
		might_lock(t->lock);
		fs_reclaim_release(GFP_KERNEL);
	}
	return 0;
}
EXPORT_SYMBOL_GPL(mmu_range_tracker_init);

/**
 * mmu_range_tracker_lookup - Find the live range covering an address
 * @t: The tracker
 * @addr: A user address
 *
 * Lock-free: one xa_load() of the lookup index, as in mlx5 ODP's implicit
 * mode (by page under the VMA policy, by granule under the granule policy),
 * falling back to one RCU maple tree load when the index has no live range
 * there (a granule with several ranges, a failed index store); then a
 * reference increment. Needs no mmap_lock and never creates a range. A range
 * that is being removed or reshaped is never returned.
 *
 * Return: the range with a reference (drop it with mmu_tracked_range_put()),
 * or NULL.
 */
struct mmu_tracked_range *mmu_range_tracker_lookup(struct mmu_range_tracker *t,
						   unsigned long addr)
{
	struct mmu_tracked_range *r;

	if (unlikely(READ_ONCE(t->dead)))
		return NULL;
	rcu_read_lock();
	/* Freed only after a grace period: safe to touch until unlock (9). */
	r = xa_load(&t->index, mrt_index(t, addr));
	if (r && addr >= mmu_tracked_range_start(r) &&
	    addr < mmu_tracked_range_end(r)) {
		r = mrt_get_live(r);
		if (r)
			goto out;
	}
	r = mrt_get_live(mtree_load(&t->ranges, addr));
out:
	rcu_read_unlock();
	return r;
}
EXPORT_SYMBOL_GPL(mmu_range_tracker_lookup);

/**
 * mmu_range_tracker_fault - Find or create the live range covering an address
 * @t: The tracker
 * @addr: The faulting user address; need not be aligned
 *
 * The caller holds mmap_read_lock() (as hmm_range_fault() requires) and not
 * the update lock: creating a range allocates. A new range covers the VMA
 * containing @addr, or the aligned granule around @addr clipped to that VMA,
 * further clipped so that it overlaps no live range. Never waits for the
 * deferred work: a fault on the surviving part of a range whose reshape is
 * still pending gets a new live range at once.
 *
 * Return: the range with a reference (drop it with mmu_tracked_range_put()),
 * ERR_PTR(-EFAULT) if no VMA covers @addr or @addr is not a user address,
 * ERR_PTR(-ENOMEM), ERR_PTR(-ESRCH) if the mm is exiting, or
 * ERR_PTR(-ENODEV) after mmu_range_tracker_fini().
 */
struct mmu_tracked_range *mmu_range_tracker_fault(struct mmu_range_tracker *t,
						  unsigned long addr)
{
	struct mmu_tracked_range *r, *new;
	struct vm_area_struct *vma;
	unsigned long start, end;
	int ret;

	if (unlikely(READ_ONCE(t->dead)))
		return ERR_PTR(-ENODEV);
	mmap_assert_locked(t->mm);
	lockdep_assert_not_held(t->lock);

	if (addr >= t->mm->task_size)
		return ERR_PTR(-EFAULT);
	r = mmu_range_tracker_lookup(t, addr);
	if (r)
		return r;

	vma = vma_lookup(t->mm, addr);
	if (!vma)
		return ERR_PTR(-EFAULT);
	start = vma->vm_start;
	end = vma->vm_end;
	if (t->granule_shift) {
		unsigned long granule = 1UL << t->granule_shift;
		unsigned long base = round_down(addr, granule);

		start = max(start, base);
		/* base + granule may wrap at the very top of a 64-bit space. */
		if (base + granule > base)
			end = min(end, base + granule);
	}

	/*
	 * insert_nolock() needs mm_users (2). The caller holds the mmap_lock,
	 * so our mmput must not be the one that runs exit_mmap(), which takes
	 * it for write: mmput_async().
	 */
	if (!mmget_not_zero(t->mm))
		return ERR_PTR(-ESRCH);
	/* Allocate before taking tree_lock, outside the update lock (6). */
	new = mrt_alloc_range(t, GFP_KERNEL_ACCOUNT);
	if (!new) {
		r = ERR_PTR(-ENOMEM);
		goto out_mmput;
	}

	mutex_lock(&t->tree_lock);
	if (t->dead) {
		r = ERR_PTR(-ENODEV);
		goto out_free;
	}
	/* Another fault may have won while we allocated. */
	r = mrt_get_live(mtree_load(&t->ranges, addr));
	if (r)
		goto out_free;

	mrt_clip(t, addr, &start, &end);
	ret = mrt_publish(t, new, start, end);
	if (ret) {
		r = ERR_PTR(ret);
		goto out_unlock;
	}
	/* One reference for the tree, one for the caller. */
	refcount_inc(&new->refs);
	r = new;
	goto out_unlock;

out_free:
	mrt_free_range(new);
out_unlock:
	mutex_unlock(&t->tree_lock);
out_mmput:
	mmput_async(t->mm);
	return r;
}
EXPORT_SYMBOL_GPL(mmu_range_tracker_fault);

/**
 * mmu_range_tracker_find - Find the first live range in an address span
 * @t: The tracker
 * @start: First address of the span
 * @end: Exclusive end of the span
 *
 * Lock-free like mmu_range_tracker_lookup(). To walk every live range, call
 * it again from the end of the range it returned.
 *
 * Return: the live range with the lowest address that intersects
 * [@start, @end), with a reference, or NULL.
 */
struct mmu_tracked_range *mmu_range_tracker_find(struct mmu_range_tracker *t,
						 unsigned long start,
						 unsigned long end)
{
	struct mmu_tracked_range *r, *found = NULL;
	unsigned long index = start;

	if (unlikely(READ_ONCE(t->dead)) || start >= end)
		return NULL;
	rcu_read_lock();
	mt_for_each(&t->ranges, r, index, end - 1) {
		found = mrt_get_live(r);
		if (found)
			break;
	}
	rcu_read_unlock();
	return found;
}
EXPORT_SYMBOL_GPL(mmu_range_tracker_find);

/**
 * mmu_tracked_range_read_retry - Check whether a device read is stale
 * @r: The range the read went through
 * @seq: What mmu_interval_read_begin(&@r->notifier) returned
 *
 * Call with the update lock held (mmu_range_tracker_lock()), and commit the
 * device mappings under the same hold only if it returns false.
 *
 * Return: true if an invalidation hit @r since @seq was read, or if @r is no
 * longer the range that receives invalidations for its addresses (it is
 * being removed or reshaped); the caller retries with a range from
 * mmu_range_tracker_fault().
 */
bool mmu_tracked_range_read_retry(struct mmu_tracked_range *r,
				  unsigned long seq)
{
	lockdep_assert_held(r->tracker->lock);
	return mrt_is_dying(r) || mmu_interval_read_retry(&r->notifier, seq);
}
EXPORT_SYMBOL_GPL(mmu_tracked_range_read_retry);

/**
 * mmu_range_tracker_set_owner - Name the device's own exclusive accesses
 * @t: The tracker
 * @owner: The owner the driver passes to make_device_exclusive(), or
 *         NULL
 *
 * make_device_exclusive() invalidates the page with
 * %MMU_NOTIFY_EXCLUSIVE and its owner before the device maps it for atomic
 * access. For those invalidations the tracker still calls ->invalidate but
 * does not advance the range's sequence, so that the fault path that asked
 * for exclusive access can commit its mapping. Set it before the first fault.
 */
void mmu_range_tracker_set_owner(struct mmu_range_tracker *t, void *owner)
{
	WRITE_ONCE(t->owner, owner);
}
EXPORT_SYMBOL_GPL(mmu_range_tracker_set_owner);

/**
 * mmu_range_tracker_remove_deferred - Stop tracking a range
 * @r: The range
 *
 * Marks @r dying at once (lookups no longer return it, read_retry says
 * stale) and leaves the removal of its notifier, the zap of any device
 * mappings it still covers and the release of the tracker's reference to the
 * deferred work. Callable from the invalidate callback and from atomic
 * context, where mmu_interval_notifier_remove() would deadlock. Does not drop
 * the caller's own reference.
 */
void mmu_range_tracker_remove_deferred(struct mmu_tracked_range *r)
{
	set_bit(MRT_DROP, &r->flags);
	mrt_queue_dying(r);
}
EXPORT_SYMBOL_GPL(mmu_range_tracker_remove_deferred);

/**
 * mmu_range_tracker_synchronize - Wait for deferred removals and reshapes
 * @t: The tracker
 *
 * The barrier: returns once every removal and reshape queued before the call
 * is complete, and every range it released whose last reference is gone has
 * been freed (RCU callbacks included). Sleeps; must not be called with the
 * mmap_lock or the update lock held, nor from the invalidate callback: the
 * deferred work takes both.
 */
void mmu_range_tracker_synchronize(struct mmu_range_tracker *t)
{
	might_sleep();
	if (READ_ONCE(t->dead))
		return;
	might_lock_read(&t->mm->mmap_lock);
	lockdep_assert_not_held(t->lock);
	flush_work(&t->work);
	rcu_barrier();
}
EXPORT_SYMBOL_GPL(mmu_range_tracker_synchronize);

/**
 * mmu_range_tracker_get_stats - Read the tracker's counters
 * @t: The tracker
 * @stats: Filled with the counters since init
 */
void mmu_range_tracker_get_stats(struct mmu_range_tracker *t,
				 struct mmu_range_tracker_stats *stats)
{
	stats->created = atomic_long_read(&t->stats.created);
	stats->split = atomic_long_read(&t->stats.split);
	stats->shrunk = atomic_long_read(&t->stats.shrunk);
	stats->removed = atomic_long_read(&t->stats.removed);
	stats->invalidations = atomic_long_read(&t->stats.invalidations);
}
EXPORT_SYMBOL_GPL(mmu_range_tracker_get_stats);

/**
 * mmu_range_tracker_fini - Tear a tracker down
 * @t: The tracker
 *
 * Removes every range (zapping their device mappings), waits for the
 * deferred work, running callbacks and RCU frees, and drops the mm. After it
 * returns no callback runs and nothing of the tracker is referenced: safe
 * before module unload. References still held by other threads are waited
 * for, with a warning every ten seconds. Works after the mm has exited; a
 * second call does nothing. Must not be called with the mmap_lock or the
 * update lock held.
 */
void mmu_range_tracker_fini(struct mmu_range_tracker *t)
{
	struct mmu_tracked_range *r;
	unsigned long index = 0;
	int left;

	might_sleep();
	if (READ_ONCE(t->dead))
		return;
	might_lock_read(&t->mm->mmap_lock);
	lockdep_assert_not_held(t->lock);

	/* Under tree_lock so that no fault or reshape creates a range after. */
	mutex_lock(&t->tree_lock);
	WRITE_ONCE(t->dead, true);
	mt_for_each(&t->ranges, r, index, ULONG_MAX) {
		set_bit(MRT_DROP, &r->flags);
		mrt_queue_dying(r);
	}
	mutex_unlock(&t->tree_lock);

	/*
	 * Every range is on the pending list now; the work removes their
	 * notifiers, so no invalidation can queue it again after this flush.
	 */
	flush_work(&t->work);

	while ((left = atomic_read(&t->nr_ranges)) &&
	       !wait_var_event_timeout(&t->nr_ranges,
				       !atomic_read(&t->nr_ranges),
				       MRT_FINI_WARN_INTERVAL))
		pr_warn("mmu_range_tracker: fini waits for %d range(s) still referenced\n",
			left);

	mutex_lock(&t->tree_lock);
	__mt_destroy(&t->ranges);
	xa_destroy(&t->index);
	mutex_unlock(&t->tree_lock);
	mmdrop(t->mm);
}
EXPORT_SYMBOL_GPL(mmu_range_tracker_fini);
