// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for mmu_range_tracker, on real address spaces: the test thread
 * gets an mm from kunit_vm_mmap() and unmaps with vm_munmap(), so every
 * invalidation comes from the real mm code.
 *
 * A small software "device" mirrors the test mm: one flag per page of a
 * window, set by mrt_test_commit() with the tracker's retry protocol and
 * cleared by the invalidate callback. A stale device mapping is a flag left
 * set on a page that the CPU no longer maps.
 */
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/interval_tree.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/mmu_range_tracker.h>
#include <linux/moduleparam.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/xarray.h>

#include "../mmu_range_tracker_test.h"

#define MRT_TEST_MAX_SPANS	64

struct mrt_test_dev {
	struct mmu_range_tracker t;
	/* The driver's update lock, shared with the tracker. */
	struct mutex lock;
	/* The device's page table: one flag per page of [base, base + size). */
	unsigned long base;
	unsigned long npages;
	unsigned long *pt;
	/* Invalidate callbacks, and ones that ran without the update lock. */
	atomic_t invalidations;
	atomic_t unlocked_invalidations;
	/* Commits that read_retry found stale: races with invalidations. */
	atomic_t stale;
	atomic_t release_events;
	/* alloc_range fails while set. */
	bool fail_alloc;
	/* The device's zap would sleep: refuse non-blockable invalidations. */
	bool zap_sleeps;
	/* How long a commit reads "the CPU page table", in microseconds. */
	unsigned int read_us;
	/* Ranges the driver allocated and freed, and the last free's cookie. */
	atomic_t allocated;
	atomic_t freed;
	unsigned long free_cookie;
	bool free_before_gp;
	/* See mrt_test_gate_close(). */
	struct completion gate;
	bool gated;
	/* See mrt_test_stop_at(): a point, or -1. */
	int stop_at;
	/* Time the deferred work spent, start to notifiers removed. */
	ktime_t work_start;
	u64 work_ns;
	unsigned int work_runs;
	struct completion stopped, resume;
	/* See mrt_test_fail_at(). */
	spinlock_t fail_lock;
	int fail_skip[NR_MRT_TEST_SITES];
	int fail_times[NR_MRT_TEST_SITES];
	int failed[NR_MRT_TEST_SITES];
};

/* A driver structure embedding its tracked range. */
struct mrt_test_range {
	unsigned long magic;
	struct mmu_tracked_range r;
};

#define MRT_TEST_MAGIC	0x6d72745fUL

static struct mrt_test_dev *mrt_dev(struct mmu_range_tracker *t)
{
	return container_of(t, struct mrt_test_dev, t);
}

static bool mrt_test_invalidate(struct mmu_tracked_range *r,
				const struct mmu_notifier_range *range)
{
	struct mrt_test_dev *dev = mrt_dev(r->tracker);
	unsigned long start, end, addr;

	if (READ_ONCE(dev->zap_sleeps) && !mmu_notifier_range_blockable(range))
		return false;
	atomic_inc(&dev->invalidations);
	if (!mutex_is_locked(&dev->lock))
		atomic_inc(&dev->unlocked_invalidations);
	if (range->event == MMU_NOTIFY_RELEASE)
		atomic_inc(&dev->release_events);

	start = max3(range->start, mmu_tracked_range_start(r), dev->base);
	end = min3(range->end, mmu_tracked_range_end(r),
		   dev->base + dev->npages * PAGE_SIZE);
	for (addr = start; addr < end; addr += PAGE_SIZE)
		clear_bit((addr - dev->base) >> PAGE_SHIFT, dev->pt);
	return true;
}

static struct mmu_tracked_range *mrt_test_alloc_range(struct mmu_range_tracker *t,
						      gfp_t gfp)
{
	struct mrt_test_dev *dev = mrt_dev(t);
	struct mrt_test_range *tr;

	if (READ_ONCE(dev->fail_alloc))
		return NULL;
	tr = kzalloc_obj(*tr, gfp);
	if (!tr)
		return NULL;
	tr->magic = MRT_TEST_MAGIC;
	atomic_inc(&dev->allocated);
	return &tr->r;
}

static void mrt_test_free_range(struct mmu_tracked_range *r)
{
	struct mrt_test_range *tr = container_of(r, struct mrt_test_range, r);
	struct mrt_test_dev *dev = mrt_dev(r->tracker);

	if (dev->free_cookie && !poll_state_synchronize_rcu(dev->free_cookie))
		dev->free_before_gp = true;
	WARN_ON(tr->magic != MRT_TEST_MAGIC);
	tr->magic = 0;
	kfree(tr);
	atomic_inc(&dev->freed);
}

static const struct mmu_range_tracker_ops mrt_test_ops = {
	.invalidate = mrt_test_invalidate,
};

static const struct mmu_range_tracker_ops mrt_test_embed_ops = {
	.invalidate = mrt_test_invalidate,
	.alloc_range = mrt_test_alloc_range,
	.free_range = mrt_test_free_range,
};

static void mrt_test_gate_open(struct mrt_test_dev *dev);
static void mrt_test_resume(struct mrt_test_dev *dev);

/* The hooks act on this suite's trackers only. */
static struct mrt_test_dev *mrt_test_dev_of(struct mmu_range_tracker *t)
{
	if (t->ops != &mrt_test_ops && t->ops != &mrt_test_embed_ops)
		return NULL;
	return mrt_dev(t);
}

static void mrt_hook_point(struct mmu_range_tracker *t,
			   enum mrt_test_point point)
{
	struct mrt_test_dev *dev = mrt_test_dev_of(t);

	if (!dev)
		return;
	if (point == MRT_POINT_WORK_START && READ_ONCE(dev->gated))
		wait_for_completion(&dev->gate);
	/* Only the work writes these; synchronize orders the test's reads. */
	if (point == MRT_POINT_WORK_START)
		dev->work_start = ktime_get();
	if (point == MRT_POINT_REMOVED) {
		/* Per batch: a batch retried after an erase failure restarts. */
		dev->work_ns += ktime_to_ns(ktime_sub(ktime_get(),
						      dev->work_start));
		dev->work_runs++;
		dev->work_start = ktime_get();
	}
	if (READ_ONCE(dev->stop_at) == point) {
		WRITE_ONCE(dev->stop_at, -1);
		complete(&dev->stopped);
		wait_for_completion(&dev->resume);
	}
}

static bool mrt_hook_fail(struct mmu_range_tracker *t,
			  enum mrt_test_site site)
{
	struct mrt_test_dev *dev = mrt_test_dev_of(t);
	bool fail = false;

	if (!dev)
		return false;
	spin_lock(&dev->fail_lock);
	if (dev->fail_skip[site]) {
		dev->fail_skip[site]--;
	} else if (dev->fail_times[site]) {
		dev->fail_times[site]--;
		dev->failed[site]++;
		fail = true;
	}
	spin_unlock(&dev->fail_lock);
	return fail;
}

static const struct mrt_test_hooks mrt_hooks = {
	.point = mrt_hook_point,
	.fail = mrt_hook_fail,
};

/*
 * Make the next @times calls at @site fail, after letting @skip pass. What
 * really failed is counted in dev->failed[@site].
 */
static void mrt_test_fail_at(struct mrt_test_dev *dev, enum mrt_test_site site,
			     int skip, int times)
{
	spin_lock(&dev->fail_lock);
	dev->fail_skip[site] = skip;
	dev->fail_times[site] = times;
	dev->failed[site] = 0;
	spin_unlock(&dev->fail_lock);
}

static int mrt_test_failed(struct mrt_test_dev *dev, enum mrt_test_site site)
{
	int n;

	spin_lock(&dev->fail_lock);
	n = dev->failed[site];
	spin_unlock(&dev->fail_lock);
	return n;
}

/* A device whose tracker is not set up yet: see mrt_test_dev_create(). */
static void mrt_test_dev_setup(struct mrt_test_dev *dev)
{
	mutex_init(&dev->lock);
	spin_lock_init(&dev->fail_lock);
	dev->stop_at = -1;
	init_completion(&dev->gate);
	init_completion(&dev->stopped);
	init_completion(&dev->resume);
}

static void mrt_test_fini_action(void *data)
{
	struct mrt_test_dev *dev = data;

	/* A test that failed with the work held back must not hang fini. */
	mrt_test_gate_open(dev);
	mrt_test_resume(dev);
	/* Idempotent: tests that call it themselves are covered too. */
	mmu_range_tracker_fini(&dev->t);
}

static unsigned long mrt_test_mmap(struct kunit *test, unsigned long npages)
{
	unsigned long addr;

	addr = kunit_vm_mmap(test, NULL, 0, npages * PAGE_SIZE,
			     PROT_READ | PROT_WRITE,
			     MAP_ANONYMOUS | MAP_PRIVATE, 0);
	KUNIT_ASSERT_NE_MSG(test, addr, 0, "kunit_vm_mmap failed");
	KUNIT_ASSERT_FALSE(test, IS_ERR_VALUE(addr));
	return addr;
}

/*
 * A device mirroring current->mm through a tracker, with a page table over
 * [base, base + npages pages). Torn down by a KUnit action even when an
 * assertion fails, before the test's mm goes away.
 */
static struct mrt_test_dev *mrt_test_dev_create(struct kunit *test,
						const struct mmu_range_tracker_ops *ops,
						unsigned int granule_shift,
						unsigned long base,
						unsigned long npages)
{
	struct mrt_test_dev *dev;

	dev = kunit_kzalloc(test, sizeof(*dev), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, dev);
	dev->pt = kunit_kcalloc(test, BITS_TO_LONGS(npages), sizeof(long),
				GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, dev->pt);
	dev->base = base;
	dev->npages = npages;
	mrt_test_dev_setup(dev);
	KUNIT_ASSERT_EQ(test, mmu_range_tracker_init(&dev->t, current->mm, ops,
						     &dev->lock, granule_shift),
			0);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test,
							mrt_test_fini_action,
							dev), 0);
	return dev;
}

static struct mmu_tracked_range *mrt_test_fault(struct mrt_test_dev *dev,
						unsigned long addr)
{
	struct mmu_tracked_range *r;

	mmap_read_lock(dev->t.mm);
	r = mmu_range_tracker_fault(&dev->t, addr);
	mmap_read_unlock(dev->t.mm);
	return r;
}

/*
 * Map the page at @addr into the device the way a driver does: get the range,
 * begin a read, (here hmm_range_fault() would run), then commit under the
 * update lock unless the read is stale.
 */
static int mrt_test_commit(struct mrt_test_dev *dev, unsigned long addr)
{
	struct mmu_tracked_range *r;
	unsigned long seq;
	int tries;

	for (tries = 0; tries < 100; tries++) {
		r = mrt_test_fault(dev, addr);
		if (IS_ERR(r))
			return PTR_ERR(r);
		seq = mmu_interval_read_begin(&r->notifier);
		/* Where hmm_range_fault() would read the CPU page table. */
		if (dev->read_us)
			udelay(dev->read_us);
		cond_resched();
		mmu_range_tracker_lock(&dev->t);
		if (mmu_tracked_range_read_retry(r, seq)) {
			mmu_range_tracker_unlock(&dev->t);
			mmu_tracked_range_put(r);
			atomic_inc(&dev->stale);
			continue;
		}
		set_bit((addr - dev->base) >> PAGE_SHIFT, dev->pt);
		mmu_range_tracker_unlock(&dev->t);
		mmu_tracked_range_put(r);
		return 0;
	}
	return -EBUSY;
}

static struct mmu_range_tracker_stats mrt_test_stats(struct mrt_test_dev *dev)
{
	struct mmu_range_tracker_stats stats;

	mmu_range_tracker_get_stats(&dev->t, &stats);
	return stats;
}

/*
 * Expect no live range: a range found anyway is released, so that a failed
 * expectation does not leave a reference that fini would wait for.
 */
static bool mrt_test_none(struct mmu_tracked_range *r)
{
	if (!r)
		return true;
	mmu_tracked_range_put(r);
	return false;
}

static bool mrt_test_mapped(struct mrt_test_dev *dev, unsigned long addr)
{
	return test_bit((addr - dev->base) >> PAGE_SHIFT, dev->pt);
}

struct mrt_span {
	unsigned long start, end;
};

/* The live ranges intersecting [start, end), in address order. */
static int mrt_test_spans(struct mrt_test_dev *dev, unsigned long start,
			  unsigned long end, struct mrt_span *spans)
{
	struct mmu_tracked_range *r;
	int n = 0;

	while (n < MRT_TEST_MAX_SPANS &&
	       (r = mmu_range_tracker_find(&dev->t, start, end))) {
		spans[n].start = mmu_tracked_range_start(r);
		spans[n].end = mmu_tracked_range_end(r);
		start = spans[n].end;
		mmu_tracked_range_put(r);
		n++;
	}
	return n;
}

/*
 * Hold the deferred work back at its start, so that several invalidations
 * hit a range before its reshape runs, and the state in between can be
 * looked at.
 */
static void mrt_test_gate_close(struct mrt_test_dev *dev)
{
	reinit_completion(&dev->gate);
	WRITE_ONCE(dev->gated, true);
}

static void mrt_test_gate_open(struct mrt_test_dev *dev)
{
	if (!READ_ONCE(dev->gated))
		return;
	WRITE_ONCE(dev->gated, false);
	complete_all(&dev->gate);
}

/*
 * Make the deferred work stop at @point the next time it passes there. It
 * may be stopped at an earlier point: mrt_test_resume() lets it go on.
 */
static void mrt_test_stop_at(struct mrt_test_dev *dev, enum mrt_test_point point)
{
	reinit_completion(&dev->stopped);
	WRITE_ONCE(dev->stop_at, point);
}

/* Wait until the work stopped where mrt_test_stop_at() asked. */
static bool mrt_test_stopped(struct mrt_test_dev *dev)
{
	return wait_for_completion_timeout(&dev->stopped,
					   msecs_to_jiffies(10000));
}

/* Let a stopped work go on; each stop consumes one resume. */
static void mrt_test_resume(struct mrt_test_dev *dev)
{
	complete(&dev->resume);
}

/* Expect a live range of exactly [s, e). */
#define MRT_EXPECT_SPAN(test, span, s, e) do {				\
	struct mrt_span __span = (span);				\
	unsigned long __s = (s), __e = (e);				\
									\
	KUNIT_EXPECT_TRUE_MSG(test, __span.start == __s && __span.end == __e, \
			      "span [%#lx, %#lx), expected [%#lx, %#lx)",	\
			      __span.start, __span.end, __s, __e);	\
} while (0)

/* --- creation --- */

static void mrt_test_fault_covers_vma(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 16);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 16);
	struct mmu_tracked_range *r, *r2;

	r = mrt_test_fault(dev, addr + 3 * PAGE_SIZE);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	KUNIT_EXPECT_EQ(test, mmu_tracked_range_start(r), addr);
	KUNIT_EXPECT_EQ(test, mmu_tracked_range_end(r), addr + 16 * PAGE_SIZE);

	/* Faults elsewhere in the VMA reuse it; so does a lookup. */
	r2 = mrt_test_fault(dev, addr + 15 * PAGE_SIZE + 17);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r2));
	KUNIT_EXPECT_PTR_EQ(test, r2, r);
	mmu_tracked_range_put(r2);
	r2 = mmu_range_tracker_lookup(&dev->t, addr);
	KUNIT_EXPECT_PTR_EQ(test, r2, r);
	if (r2)
		mmu_tracked_range_put(r2);
	mmu_tracked_range_put(r);

	r = mmu_range_tracker_lookup(&dev->t, addr + 16 * PAGE_SIZE);
	KUNIT_EXPECT_TRUE(test, mrt_test_none(r));
	KUNIT_EXPECT_EQ(test, mrt_test_stats(dev).created, 1);
}

static void mrt_test_fault_granule(struct kunit *test)
{
	const unsigned int shift = PAGE_SHIFT + 2;
	const unsigned long granule = 1UL << shift;
	unsigned long addr = mrt_test_mmap(test, 13);
	unsigned long end = addr + 13 * PAGE_SIZE;
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops,
						       shift, addr, 13);
	struct mrt_span spans[MRT_TEST_MAX_SPANS];
	unsigned long a, expect_start, expect_end;
	struct mmu_tracked_range *r;
	int i, n;

	for (a = addr; a < end; a += PAGE_SIZE) {
		r = mrt_test_fault(dev, a);
		KUNIT_ASSERT_FALSE(test, IS_ERR(r));
		expect_start = max(addr, round_down(a, granule));
		expect_end = min(end, round_down(a, granule) + granule);
		KUNIT_EXPECT_EQ(test, mmu_tracked_range_start(r), expect_start);
		KUNIT_EXPECT_EQ(test, mmu_tracked_range_end(r), expect_end);
		mmu_tracked_range_put(r);
	}
	/* The granules tile the VMA exactly, with no overlap. */
	n = mrt_test_spans(dev, addr, end, spans);
	KUNIT_ASSERT_GE(test, n, 4);
	MRT_EXPECT_SPAN(test, spans[0], addr, min(end, round_down(addr, granule) + granule));
	for (i = 1; i < n; i++)
		KUNIT_EXPECT_EQ(test, spans[i].start, spans[i - 1].end);
	KUNIT_EXPECT_EQ(test, spans[n - 1].end, end);
	KUNIT_EXPECT_EQ(test, mrt_test_stats(dev).created, n);
}

static void mrt_test_adjacent_vmas(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 8);
	unsigned long mid = addr + 4 * PAGE_SIZE, res;
	struct mrt_span spans[MRT_TEST_MAX_SPANS];
	struct mrt_test_dev *dev;
	struct mmu_tracked_range *r;

	/* Replace the upper half by a read-only mapping: two VMAs that touch. */
	res = vm_mmap(NULL, mid, 4 * PAGE_SIZE, PROT_READ,
		      MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, 0);
	KUNIT_ASSERT_EQ(test, res, mid);
	dev = mrt_test_dev_create(test, &mrt_test_ops, 0, addr, 8);

	r = mrt_test_fault(dev, mid);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	mmu_tracked_range_put(r);
	r = mrt_test_fault(dev, mid - PAGE_SIZE);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	mmu_tracked_range_put(r);

	KUNIT_ASSERT_EQ(test, mrt_test_spans(dev, addr, addr + 8 * PAGE_SIZE,
					     spans), 2);
	MRT_EXPECT_SPAN(test, spans[0], addr, mid);
	MRT_EXPECT_SPAN(test, spans[1], mid, mid + 4 * PAGE_SIZE);
}

/* A new range is clipped so that it never overlaps a live one. */
static void mrt_test_fault_clips_to_live(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 8);
	unsigned long mid = addr + 4 * PAGE_SIZE, res;
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 8);
	struct mrt_span spans[MRT_TEST_MAX_SPANS];
	struct mmu_tracked_range *r;
	struct vm_area_struct *vma;

	r = mrt_test_fault(dev, addr);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	mmu_tracked_range_put(r);
	/* Shrink to the lower half, then map the upper half again. */
	KUNIT_ASSERT_EQ(test, vm_munmap(mid, 4 * PAGE_SIZE), 0);
	mmu_range_tracker_synchronize(&dev->t);
	res = vm_mmap(NULL, mid, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, 0);
	KUNIT_ASSERT_EQ(test, res, mid);

	/* The VMAs merged again: the new range must stop at the live one. */
	mmap_read_lock(current->mm);
	vma = vma_lookup(current->mm, mid);
	KUNIT_EXPECT_TRUE(test, vma && vma->vm_start == addr);
	mmap_read_unlock(current->mm);
	r = mrt_test_fault(dev, mid + PAGE_SIZE);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	mmu_tracked_range_put(r);
	KUNIT_ASSERT_EQ(test, mrt_test_spans(dev, addr, addr + 8 * PAGE_SIZE,
					     spans), 2);
	MRT_EXPECT_SPAN(test, spans[0], addr, mid);
	MRT_EXPECT_SPAN(test, spans[1], mid, mid + 4 * PAGE_SIZE);
}

/* --- point 1: reshape on unmap --- */

struct mrt_unmap_case {
	const char *name;
	unsigned long first, npages;	/* pages unmapped, of 16 */
	int survivors;
	struct mrt_span expect[2];	/* in pages */
	int split, shrunk, removed;
};

static const struct mrt_unmap_case mrt_unmap_cases[] = {
	{ "middle_splits", 6, 4, 2, { { 0, 6 }, { 10, 16 } }, 1, 0, 0 },
	{ "low_edge_shrinks", 0, 5, 1, { { 5, 16 } }, 0, 1, 0 },
	{ "high_edge_shrinks", 12, 4, 1, { { 0, 12 } }, 0, 1, 0 },
	{ "all_removes", 0, 16, 0, { }, 0, 0, 1 },
};

KUNIT_ARRAY_PARAM_DESC(mrt_unmap, mrt_unmap_cases, name);

static void mrt_test_unmap_reshapes(struct kunit *test)
{
	const struct mrt_unmap_case *c = test->param_value;
	unsigned long addr = mrt_test_mmap(test, 16);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 16);
	struct mrt_span spans[MRT_TEST_MAX_SPANS];
	unsigned long a, hole = addr + c->first * PAGE_SIZE;
	unsigned long hole_end = hole + c->npages * PAGE_SIZE;
	int i;

	for (a = addr; a < addr + 16 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, a), 0);

	KUNIT_ASSERT_EQ(test, vm_munmap(hole, c->npages * PAGE_SIZE), 0);
	/* The unmapped part was zapped synchronously, by the invalidation. */
	for (a = hole; a < hole_end; a += PAGE_SIZE)
		KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, a));

	mmu_range_tracker_synchronize(&dev->t);
	KUNIT_ASSERT_EQ(test, mrt_test_spans(dev, addr, addr + 16 * PAGE_SIZE,
					     spans), c->survivors);
	for (i = 0; i < c->survivors; i++)
		MRT_EXPECT_SPAN(test, spans[i],
				addr + c->expect[i].start * PAGE_SIZE,
				addr + c->expect[i].end * PAGE_SIZE);
	/* Survivors kept their device mappings: they never went unwatched. */
	for (a = addr; a < addr + 16 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_EXPECT_EQ(test, mrt_test_mapped(dev, a),
				a < hole || a >= hole_end);
	KUNIT_EXPECT_EQ(test, mrt_test_stats(dev).split, c->split);
	KUNIT_EXPECT_EQ(test, mrt_test_stats(dev).shrunk, c->shrunk);
	KUNIT_EXPECT_EQ(test, mrt_test_stats(dev).removed, c->removed);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->unlocked_invalidations), 0);
}

/* Two holes and an edge cut before the deferred work runs (hazard 7). */
static void mrt_test_unmap_many_cuts(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 16);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 16);
	struct mrt_span spans[MRT_TEST_MAX_SPANS];
	struct mmu_tracked_range *r;

	r = mrt_test_fault(dev, addr);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	mmu_tracked_range_put(r);
	/* Hold back the work until every cut has happened. */
	mrt_test_gate_close(dev);
	KUNIT_EXPECT_EQ(test, vm_munmap(addr + 2 * PAGE_SIZE, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, vm_munmap(addr + 6 * PAGE_SIZE, 2 * PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, vm_munmap(addr + 14 * PAGE_SIZE, 2 * PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->invalidations), 3);
	mrt_test_gate_open(dev);
	mmu_range_tracker_synchronize(&dev->t);

	KUNIT_ASSERT_EQ(test, mrt_test_spans(dev, addr, addr + 16 * PAGE_SIZE,
					     spans), 3);
	MRT_EXPECT_SPAN(test, spans[0], addr, addr + 2 * PAGE_SIZE);
	MRT_EXPECT_SPAN(test, spans[1], addr + 3 * PAGE_SIZE, addr + 6 * PAGE_SIZE);
	MRT_EXPECT_SPAN(test, spans[2], addr + 8 * PAGE_SIZE, addr + 14 * PAGE_SIZE);
}

/*
 * From the invalidation on, a still-mapped part of a cut range is watched:
 * while the reshape is held back, the old notifier still delivers; after it,
 * the survivor does.
 */
static void mrt_test_unmap_no_window(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 16);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 16);
	unsigned long a;
	int before;

	for (a = addr; a < addr + 16 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, a), 0);

	mrt_test_gate_close(dev);
	KUNIT_ASSERT_EQ(test, vm_munmap(addr + 6 * PAGE_SIZE, 4 * PAGE_SIZE), 0);
	/* The reshape is pending: unmap a page of each survivor-to-be. */
	before = atomic_read(&dev->invalidations);
	KUNIT_EXPECT_EQ(test, vm_munmap(addr + 2 * PAGE_SIZE, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, vm_munmap(addr + 12 * PAGE_SIZE, PAGE_SIZE), 0);
	KUNIT_EXPECT_GE(test, atomic_read(&dev->invalidations), before + 2);
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr + 2 * PAGE_SIZE));
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr + 12 * PAGE_SIZE));
	/* The other pages of the survivors-to-be are still mapped. */
	KUNIT_EXPECT_TRUE(test, mrt_test_mapped(dev, addr + 4 * PAGE_SIZE));
	KUNIT_EXPECT_TRUE(test, mrt_test_mapped(dev, addr + 14 * PAGE_SIZE));
	mrt_test_gate_open(dev);

	mmu_range_tracker_synchronize(&dev->t);
	/* And after the reshape, the survivors deliver. */
	KUNIT_EXPECT_TRUE(test, mrt_test_mapped(dev, addr + 4 * PAGE_SIZE));
	KUNIT_EXPECT_EQ(test, vm_munmap(addr + 4 * PAGE_SIZE, PAGE_SIZE), 0);
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr + 4 * PAGE_SIZE));
	KUNIT_EXPECT_TRUE(test, mrt_test_mapped(dev, addr + 14 * PAGE_SIZE));
	KUNIT_EXPECT_EQ(test, vm_munmap(addr + 14 * PAGE_SIZE, PAGE_SIZE), 0);
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr + 14 * PAGE_SIZE));
}

/* munmap, then new memory at the same address: no stale device mapping. */
static void mrt_test_unmap_remap_no_stale(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 8);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 8);
	unsigned long a, res;

	for (a = addr; a < addr + 8 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, a), 0);
	KUNIT_ASSERT_EQ(test, vm_munmap(addr, 8 * PAGE_SIZE), 0);
	res = vm_mmap(NULL, addr, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, 0);
	KUNIT_ASSERT_EQ(test, res, addr);
	for (a = addr; a < addr + 8 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, a));
	mmu_range_tracker_synchronize(&dev->t);
	for (a = addr; a < addr + 8 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, a));
	/* The new memory is tracked again on the next fault. */
	KUNIT_EXPECT_EQ(test, mrt_test_commit(dev, addr + PAGE_SIZE), 0);
	KUNIT_EXPECT_TRUE(test, mrt_test_mapped(dev, addr + PAGE_SIZE));
}

/* --- point 2: read_retry for removed and reshaped ranges --- */

/* What a driver's commit would learn from read_retry, under the lock. */
static bool mrt_test_stale(struct mrt_test_dev *dev,
			   struct mmu_tracked_range *r, unsigned long seq)
{
	bool stale;

	mmu_range_tracker_lock(&dev->t);
	stale = mmu_tracked_range_read_retry(r, seq);
	mmu_range_tracker_unlock(&dev->t);
	return stale;
}

static void mrt_test_read_retry_after_remove(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 4);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 4);
	struct mmu_tracked_range *r;
	unsigned long seq;

	r = mrt_test_fault(dev, addr);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	seq = mmu_interval_read_begin(&r->notifier);
	KUNIT_EXPECT_FALSE(test, mrt_test_stale(dev, r, seq));

	/* No invalidation moves the sequence, yet the read is stale. */
	mmu_range_tracker_remove_deferred(r);
	KUNIT_EXPECT_TRUE(test, mrt_test_stale(dev, r, seq));
	mmu_range_tracker_synchronize(&dev->t);
	KUNIT_EXPECT_TRUE(test, mrt_test_stale(dev, r, seq));
	mmu_tracked_range_put(r);
	KUNIT_EXPECT_TRUE(test, mrt_test_none(mmu_range_tracker_lookup(&dev->t, addr)));
}

static void mrt_test_read_retry_after_reshape(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 8);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 8);
	struct mmu_tracked_range *r;
	unsigned long seq;

	r = mrt_test_fault(dev, addr);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	mmu_range_tracker_synchronize(&dev->t);
	/* Begin after the last invalidation the range will ever see. */
	KUNIT_ASSERT_EQ(test, vm_munmap(addr + 7 * PAGE_SIZE, PAGE_SIZE), 0);
	mmu_range_tracker_synchronize(&dev->t);
	seq = mmu_interval_read_begin(&r->notifier);
	KUNIT_EXPECT_TRUE(test, mrt_test_stale(dev, r, seq));
	mmu_tracked_range_put(r);
}

/* The driver's commit of a page of a removed range is zapped for good. */
static void mrt_test_remove_deferred_zaps(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 4);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 4);
	struct mmu_tracked_range *r;

	KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, addr), 0);
	r = mmu_range_tracker_lookup(&dev->t, addr);
	KUNIT_ASSERT_NOT_NULL(test, r);
	mmu_range_tracker_remove_deferred(r);
	mmu_tracked_range_put(r);
	mmu_range_tracker_synchronize(&dev->t);
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr));
	KUNIT_EXPECT_EQ(test, mrt_test_stats(dev).removed, 1);
}

/* --- hazard 13: the order of the last steps when a range goes --- */

struct mrt_holder_ctx {
	struct mrt_test_dev *dev;
	struct completion locked, release, done;
};

/* Holds the update lock until told to, or for a second at most. */
static int mrt_holder_thread(void *data)
{
	struct mrt_holder_ctx *ctx = data;

	mmu_range_tracker_lock(&ctx->dev->t);
	complete(&ctx->locked);
	wait_for_completion_timeout(&ctx->release, msecs_to_jiffies(1000));
	mmu_range_tracker_unlock(&ctx->dev->t);
	complete(&ctx->done);
	return 0;
}

/*
 * A removal whose zap of the uncovered parts is held up (the update lock is
 * busy) must keep watching those parts until the zap is done. Here page 0
 * is unmapped and mapped again meanwhile, and a new live range covers it by
 * the time the zap runs: if the old notifier was already gone, nobody zapped
 * page 0 on the unmap and the zap skips it as covered, so the device keeps
 * mapping the freed page.
 */
static void mrt_test_zap_before_removal(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 16);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 16);
	struct mrt_holder_ctx ctx = { .dev = dev };
	struct mmu_tracked_range *r;
	struct task_struct *task;
	unsigned long a, res;

	for (a = addr; a < addr + 16 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, a), 0);
	init_completion(&ctx.locked);
	init_completion(&ctx.release);
	init_completion(&ctx.done);
	task = kthread_run(mrt_holder_thread, &ctx, "mrt_holder");
	KUNIT_ASSERT_FALSE(test, IS_ERR(task));
	wait_for_completion(&ctx.locked);

	r = mmu_range_tracker_lookup(&dev->t, addr);
	KUNIT_ASSERT_NOT_NULL(test, r);
	mmu_range_tracker_remove_deferred(r);
	mmu_tracked_range_put(r);
	/* Let the work run up to where it needs the update lock. */
	msleep(100);

	/* The CPU drops page 0 and maps a new page there; the device faults. */
	KUNIT_EXPECT_EQ(test, vm_munmap(addr, PAGE_SIZE), 0);
	res = vm_mmap(NULL, addr, PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, 0);
	KUNIT_EXPECT_EQ(test, res, addr);
	r = mrt_test_fault(dev, addr);
	KUNIT_EXPECT_FALSE(test, IS_ERR(r));
	if (!IS_ERR(r))
		mmu_tracked_range_put(r);

	complete(&ctx.release);
	wait_for_completion(&ctx.done);
	mmu_range_tracker_synchronize(&dev->t);
	KUNIT_EXPECT_FALSE_MSG(test, mrt_test_mapped(dev, addr),
			       "the device still maps the page unmapped at %#lx",
			       addr);
}

/*
 * The same order, seen from inside the work: when it stops after the
 * reshape, the old notifier still delivers for the parts no survivor covers
 * (here page 0, unmapped, mapped again and faulted into a new live range
 * meanwhile); after the zap those parts hold nothing; after the removal
 * nothing calls back for them any more.
 */
static void mrt_test_work_order(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 16);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 16);
	struct mmu_tracked_range *r;
	unsigned long a, res;
	int before;

	for (a = addr; a < addr + 16 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, a), 0);
	r = mmu_range_tracker_lookup(&dev->t, addr);
	KUNIT_ASSERT_NOT_NULL(test, r);

	/* After the reshape: no survivor (a removal), nothing zapped yet. */
	mrt_test_stop_at(dev, MRT_POINT_RESHAPED);
	mmu_range_tracker_remove_deferred(r);
	KUNIT_ASSERT_TRUE(test, mrt_test_stopped(dev));
	KUNIT_EXPECT_TRUE(test, mrt_test_mapped(dev, addr));
	before = atomic_read(&dev->invalidations);
	KUNIT_EXPECT_EQ(test, vm_munmap(addr, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->invalidations), before + 1);
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr));
	res = vm_mmap(NULL, addr, PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, 0);
	KUNIT_EXPECT_EQ(test, res, addr);
	/* A new live range now covers all 16 pages (the VMAs merged). */
	KUNIT_EXPECT_EQ(test, mrt_test_commit(dev, addr + PAGE_SIZE), 0);

	/* After the zap: the old range's commits are gone, the new one's not. */
	mrt_test_stop_at(dev, MRT_POINT_ZAPPED);
	mrt_test_resume(dev);
	KUNIT_ASSERT_TRUE(test, mrt_test_stopped(dev));
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr));
	KUNIT_EXPECT_TRUE(test, mrt_test_mapped(dev, addr + PAGE_SIZE));
	for (a = addr + 2 * PAGE_SIZE; a < addr + 16 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_EXPECT_TRUE(test, mrt_test_mapped(dev, a));

	/* Through the removal: then only the live range calls back. */
	mrt_test_stop_at(dev, MRT_POINT_REMOVED);
	mrt_test_resume(dev);
	KUNIT_ASSERT_TRUE(test, mrt_test_stopped(dev));
	mrt_test_resume(dev);
	mmu_range_tracker_synchronize(&dev->t);
	mmu_tracked_range_put(r);

	/* Only the live range calls back now, once. */
	before = atomic_read(&dev->invalidations);
	KUNIT_EXPECT_EQ(test, vm_munmap(addr + PAGE_SIZE, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->invalidations), before + 1);
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr + PAGE_SIZE));
}

/* --- point 3: lookup and fault while a reshape is pending --- */

static void mrt_test_fault_while_pending(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 16);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 16);
	struct mrt_span spans[MRT_TEST_MAX_SPANS];
	struct mmu_tracked_range *r;
	int n;

	r = mrt_test_fault(dev, addr);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	mmu_tracked_range_put(r);

	mrt_test_gate_close(dev);
	KUNIT_ASSERT_EQ(test, vm_munmap(addr + 6 * PAGE_SIZE, 4 * PAGE_SIZE), 0);
	/* Dying: never returned by a lookup, survivors not in yet. */
	KUNIT_EXPECT_TRUE(test, mrt_test_none(mmu_range_tracker_lookup(&dev->t, addr)));
	r = mmu_range_tracker_lookup(&dev->t, addr + 12 * PAGE_SIZE);
	KUNIT_EXPECT_TRUE(test, mrt_test_none(r));

	/* The fault does not wait for the held-back work: a live range now. */
	r = mrt_test_fault(dev, addr + 12 * PAGE_SIZE);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	KUNIT_EXPECT_EQ(test, mmu_tracked_range_start(r), addr + 10 * PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, mmu_tracked_range_end(r), addr + 16 * PAGE_SIZE);
	mmu_tracked_range_put(r);
	r = mmu_range_tracker_lookup(&dev->t, addr + 11 * PAGE_SIZE);
	KUNIT_EXPECT_NOT_NULL(test, r);
	if (r)
		mmu_tracked_range_put(r);
	mrt_test_gate_open(dev);

	mmu_range_tracker_synchronize(&dev->t);
	n = mrt_test_spans(dev, addr, addr + 16 * PAGE_SIZE, spans);
	KUNIT_ASSERT_EQ(test, n, 2);
	MRT_EXPECT_SPAN(test, spans[0], addr, addr + 6 * PAGE_SIZE);
	MRT_EXPECT_SPAN(test, spans[1], addr + 10 * PAGE_SIZE, addr + 16 * PAGE_SIZE);
}

/* --- point 4: RCU-deferred free --- */

static void mrt_test_free_after_grace_period(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 4);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_embed_ops,
						       0, addr, 4);
	struct mmu_tracked_range *r;

	r = mrt_test_fault(dev, addr);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	KUNIT_EXPECT_EQ(test, container_of(r, struct mrt_test_range, r)->magic,
			MRT_TEST_MAGIC);
	mmu_range_tracker_remove_deferred(r);
	mmu_range_tracker_synchronize(&dev->t);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->freed), 0);
	/* Ours is the last reference: the free must wait a grace period. */
	dev->free_cookie = get_state_synchronize_rcu();
	mmu_tracked_range_put(r);
	mmu_range_tracker_synchronize(&dev->t);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->freed), 1);
	KUNIT_EXPECT_FALSE(test, dev->free_before_gp);
}

/* --- point 5: allocation failure during a split --- */

static void mrt_test_split_alloc_failure(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 16);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_embed_ops,
						       0, addr, 16);
	struct mmu_tracked_range *r;
	unsigned long a;

	for (a = addr; a < addr + 16 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, a), 0);
	WRITE_ONCE(dev->fail_alloc, true);
	KUNIT_ASSERT_EQ(test, vm_munmap(addr + 6 * PAGE_SIZE, 4 * PAGE_SIZE), 0);
	mmu_range_tracker_synchronize(&dev->t);

	/* No survivor: nothing tracked, and nothing left mapped unwatched. */
	r = mmu_range_tracker_find(&dev->t, addr, addr + 16 * PAGE_SIZE);
	KUNIT_EXPECT_TRUE(test, mrt_test_none(r));
	for (a = addr; a < addr + 16 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, a));
	/* A fault meanwhile reports the failure... */
	r = mrt_test_fault(dev, addr);
	KUNIT_EXPECT_TRUE(test, IS_ERR(r) && PTR_ERR(r) == -ENOMEM);

	/* ...and recreates the coverage once memory is back. */
	WRITE_ONCE(dev->fail_alloc, false);
	KUNIT_EXPECT_EQ(test, mrt_test_commit(dev, addr + PAGE_SIZE), 0);
	r = mmu_range_tracker_lookup(&dev->t, addr);
	KUNIT_ASSERT_NOT_NULL(test, r);
	KUNIT_EXPECT_EQ(test, mmu_tracked_range_start(r), addr);
	KUNIT_EXPECT_EQ(test, mmu_tracked_range_end(r), addr + 6 * PAGE_SIZE);
	mmu_tracked_range_put(r);
}

/* --- every allocation site of the tracker, failing --- */

/* No live range, nothing mapped, nothing allocated but what is expected. */
static void mrt_test_expect_clean(struct kunit *test, struct mrt_test_dev *dev,
				  unsigned long addr, unsigned long npages,
				  int live)
{
	struct mrt_span spans[MRT_TEST_MAX_SPANS];

	mmu_range_tracker_synchronize(&dev->t);
	KUNIT_EXPECT_EQ(test, mrt_test_spans(dev, addr, addr + npages * PAGE_SIZE,
					     spans), live);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->t.nr_ranges), live);
}

struct mrt_fault_fail_case {
	const char *name;
	enum mrt_test_site site;
};

static const struct mrt_fault_fail_case mrt_fault_fail_cases[] = {
	{ "alloc_range", MRT_SITE_ALLOC_RANGE },
	{ "tree_store", MRT_SITE_TREE_STORE },
	{ "insert", MRT_SITE_INSERT },
};

KUNIT_ARRAY_PARAM_DESC(mrt_fault_fail, mrt_fault_fail_cases, name);

/*
 * A fault whose range cannot be created reports -ENOMEM, leaves nothing
 * behind (the range is never published, so it is freed at once), and the
 * next fault succeeds.
 */
static void mrt_test_fault_fails(struct kunit *test)
{
	const struct mrt_fault_fail_case *c = test->param_value;
	unsigned long addr = mrt_test_mmap(test, 4);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_embed_ops,
						       0, addr, 4);
	struct mmu_tracked_range *r;

	mrt_test_fail_at(dev, c->site, 0, 1);
	r = mrt_test_fault(dev, addr);
	KUNIT_EXPECT_TRUE(test, IS_ERR(r) && PTR_ERR(r) == -ENOMEM);
	KUNIT_EXPECT_EQ(test, mrt_test_failed(dev, c->site), 1);
	mrt_test_expect_clean(test, dev, addr, 4, 0);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->allocated),
			atomic_read(&dev->freed));
	KUNIT_EXPECT_EQ(test, mrt_test_stats(dev).created, 0);

	KUNIT_EXPECT_EQ(test, mrt_test_commit(dev, addr), 0);
	mrt_test_expect_clean(test, dev, addr, 4, 1);
}

/* The lookup index is a cache: without its entry lookups use the tree. */
static void mrt_test_index_store_fails(struct kunit *test)
{
	const unsigned int shift = *(const unsigned int *)test->param_value;
	unsigned long addr = mrt_test_mmap(test, 8);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops,
						       shift, addr, 8);
	struct mmu_tracked_range *r, *r2;

	mrt_test_fail_at(dev, MRT_SITE_INDEX_STORE, 0, 1);
	r = mrt_test_fault(dev, addr + PAGE_SIZE);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	KUNIT_EXPECT_EQ(test, mrt_test_failed(dev, MRT_SITE_INDEX_STORE), 1);
	r2 = mmu_range_tracker_lookup(&dev->t, addr + PAGE_SIZE);
	KUNIT_EXPECT_PTR_EQ(test, r2, r);
	if (r2)
		mmu_tracked_range_put(r2);
	mmu_tracked_range_put(r);
	KUNIT_EXPECT_EQ(test, mrt_test_commit(dev, addr), 0);
}

/* init fails cleanly when the mm's interval tree cannot be registered. */
static void mrt_test_register_fails(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 1);
	struct mrt_test_dev *dev;

	dev = kunit_kzalloc(test, sizeof(*dev), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, dev);
	dev->pt = kunit_kcalloc(test, 1, sizeof(long), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, dev->pt);
	dev->base = addr;
	dev->npages = 1;
	mrt_test_dev_setup(dev);
	/* The hook finds the device through the ops init sets first. */
	mrt_test_fail_at(dev, MRT_SITE_REGISTER, 0, 1);
	KUNIT_EXPECT_EQ(test, mmu_range_tracker_init(&dev->t, current->mm,
						     &mrt_test_ops, &dev->lock, 0),
			-ENOMEM);
	KUNIT_EXPECT_EQ(test, mrt_test_failed(dev, MRT_SITE_REGISTER), 1);
	/* The mm reference is taken only after the registration. */
	KUNIT_EXPECT_NULL(test, dev->t.mm);
	/* And init works once the allocation does. */
	KUNIT_ASSERT_EQ(test, mmu_range_tracker_init(&dev->t, current->mm,
						     &mrt_test_ops, &dev->lock, 0),
			0);
	KUNIT_EXPECT_EQ(test, mrt_test_commit(dev, addr), 0);
	mmu_range_tracker_fini(&dev->t);
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr));
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->t.nr_ranges), 0);
}

/*
 * An erase that finds no memory for its tree nodes must not let the range be
 * freed while it is still in the tree (hazard 14): the work retries, and only
 * then zaps, removes and frees. Meanwhile the range stays dying, so lookups
 * skip it and faults cover its span with live ranges.
 */
static void mrt_test_erase_fails(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 8);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_embed_ops,
						       0, addr, 8);
	struct mmu_tracked_range *r;

	KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, addr), 0);
	r = mmu_range_tracker_lookup(&dev->t, addr);
	KUNIT_ASSERT_NOT_NULL(test, r);
	mrt_test_fail_at(dev, MRT_SITE_TREE_ERASE, 0, 3);
	mmu_range_tracker_remove_deferred(r);
	mmu_tracked_range_put(r);
	mmu_range_tracker_synchronize(&dev->t);

	KUNIT_EXPECT_EQ(test, mrt_test_failed(dev, MRT_SITE_TREE_ERASE), 3);
	/* Out of the tree, zapped and freed only after the erase succeeded. */
	rcu_read_lock();
	KUNIT_EXPECT_NULL(test, mtree_load(&dev->t.ranges, addr));
	rcu_read_unlock();
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr));
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->freed), 1);
	KUNIT_EXPECT_EQ(test, mrt_test_stats(dev).removed, 1);
	/* The span is usable again. */
	KUNIT_EXPECT_EQ(test, mrt_test_commit(dev, addr + PAGE_SIZE), 0);
	mrt_test_expect_clean(test, dev, addr, 8, 1);
}

/*
 * A split whose first survivor is allocated and whose second is not: the
 * first keeps its device mappings, the second part's coverage is dropped
 * and its device mappings zapped, and a later fault covers it again.
 */
static void mrt_test_split_second_survivor_fails(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 16);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_embed_ops,
						       0, addr, 16);
	struct mrt_span spans[MRT_TEST_MAX_SPANS];
	unsigned long a;

	for (a = addr; a < addr + 16 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, a), 0);
	mrt_test_fail_at(dev, MRT_SITE_ALLOC_RANGE, 1, 1);
	KUNIT_ASSERT_EQ(test, vm_munmap(addr + 6 * PAGE_SIZE, 4 * PAGE_SIZE), 0);
	mmu_range_tracker_synchronize(&dev->t);

	KUNIT_EXPECT_EQ(test, mrt_test_failed(dev, MRT_SITE_ALLOC_RANGE), 1);
	KUNIT_ASSERT_EQ(test, mrt_test_spans(dev, addr, addr + 16 * PAGE_SIZE,
					     spans), 1);
	MRT_EXPECT_SPAN(test, spans[0], addr, addr + 6 * PAGE_SIZE);
	for (a = addr; a < addr + 16 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_EXPECT_EQ(test, mrt_test_mapped(dev, a),
				a < addr + 6 * PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, mrt_test_stats(dev).shrunk, 1);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->t.nr_ranges), 1);

	KUNIT_EXPECT_EQ(test, mrt_test_commit(dev, addr + 12 * PAGE_SIZE), 0);
	KUNIT_ASSERT_EQ(test, mrt_test_spans(dev, addr, addr + 16 * PAGE_SIZE,
					     spans), 2);
	MRT_EXPECT_SPAN(test, spans[1], addr + 10 * PAGE_SIZE,
			addr + 16 * PAGE_SIZE);
}

/* --- point 6: mm exit with live ranges --- */

struct mrt_exit_ctx {
	struct kunit *test;
	struct mrt_test_dev *dev;
	bool inited;
	int faulted;
	struct completion done;
};

/*
 * Runs in a thread of its own with an mm of its own (kunit_vm_mmap()
 * attaches one to current), which exits with the thread.
 */
static int mrt_exit_thread(void *data)
{
	struct mrt_exit_ctx *ctx = data;
	struct mrt_test_dev *dev = ctx->dev;
	unsigned long addr;
	int i;

	addr = kunit_vm_mmap(ctx->test, NULL, 0, 64 * PAGE_SIZE,
			     PROT_READ | PROT_WRITE,
			     MAP_ANONYMOUS | MAP_PRIVATE, 0);
	if (!addr || IS_ERR_VALUE(addr))
		goto out;
	dev->base = addr;
	if (mmu_range_tracker_init(&dev->t, current->mm, &mrt_test_embed_ops,
				   &dev->lock, PAGE_SHIFT + 2))
		goto out;
	ctx->inited = true;
	for (i = 0; i < 64; i += 4)
		if (!mrt_test_commit(dev, addr + i * PAGE_SIZE))
			ctx->faulted++;
out:
	complete(&ctx->done);
	return 0;
}

static void mrt_test_mm_exit(struct kunit *test)
{
	struct mrt_test_dev *dev;
	struct mrt_exit_ctx ctx = { .test = test };
	struct task_struct *task;
	int i;

	dev = kunit_kzalloc(test, sizeof(*dev), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, dev);
	dev->pt = kunit_kcalloc(test, 1, sizeof(long), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, dev->pt);
	dev->npages = 64;
	mrt_test_dev_setup(dev);
	ctx.dev = dev;
	init_completion(&ctx.done);

	task = kthread_run(mrt_exit_thread, &ctx, "mrt_exit");
	KUNIT_ASSERT_FALSE(test, IS_ERR(task));
	wait_for_completion(&ctx.done);
	KUNIT_ASSERT_TRUE(test, ctx.inited);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test,
							mrt_test_fini_action,
							dev), 0);
	KUNIT_ASSERT_EQ(test, ctx.faulted, 16);
	KUNIT_ASSERT_EQ(test, atomic_read(&dev->allocated), 16);

	/* The thread exits, its mm with it: wait for the RELEASE. */
	for (i = 0; i < 250 && atomic_read(&dev->release_events) < 16; i++)
		msleep(20);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->release_events), 16);
	KUNIT_EXPECT_EQ(test, dev->pt[0], 0);

	mmu_range_tracker_synchronize(&dev->t);
	KUNIT_EXPECT_TRUE(test, mrt_test_none(mmu_range_tracker_find(&dev->t, 0, ULONG_MAX)));
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->freed), 16);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->t.nr_ranges), 0);
	/* fini still works, and a second one does nothing. */
	mmu_range_tracker_fini(&dev->t);
	mmu_range_tracker_fini(&dev->t);
}

/* --- point 7: bad input --- */

static void mrt_test_bad_init(struct kunit *test)
{
	static const struct mmu_range_tracker_ops no_invalidate = { };
	static const struct mmu_range_tracker_ops half_embed = {
		.invalidate = mrt_test_invalidate,
		.alloc_range = mrt_test_alloc_range,
	};
	struct mmu_range_tracker t;
	struct mm_struct *mm;

	mrt_test_mmap(test, 1);
	mm = current->mm;
	KUNIT_EXPECT_EQ(test, mmu_range_tracker_init(&t, mm, NULL, NULL, 0),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, mmu_range_tracker_init(&t, mm, &no_invalidate,
						     NULL, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, mmu_range_tracker_init(&t, mm, &half_embed,
						     NULL, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, mmu_range_tracker_init(&t, NULL, &mrt_test_ops,
						     NULL, 0), -EINVAL);
	KUNIT_EXPECT_EQ(test, mmu_range_tracker_init(&t, mm, &mrt_test_ops,
						     NULL, PAGE_SHIFT - 1),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, mmu_range_tracker_init(&t, mm, &mrt_test_ops,
						     NULL, BITS_PER_LONG),
			-EINVAL);
}

static void mrt_test_bad_addresses(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 4);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 4);
	struct mmu_tracked_range *r;

	/* No VMA. */
	r = mrt_test_fault(dev, addr + 4 * PAGE_SIZE);
	KUNIT_EXPECT_TRUE(test, IS_ERR(r) && PTR_ERR(r) == -EFAULT);
	r = mrt_test_fault(dev, 0);
	KUNIT_EXPECT_TRUE(test, IS_ERR(r) && PTR_ERR(r) == -EFAULT);
	/* Kernel addresses. */
	r = mrt_test_fault(dev, (unsigned long)dev);
	KUNIT_EXPECT_TRUE(test, IS_ERR(r) && PTR_ERR(r) == -EFAULT);
	r = mrt_test_fault(dev, ULONG_MAX);
	KUNIT_EXPECT_TRUE(test, IS_ERR(r) && PTR_ERR(r) == -EFAULT);
	KUNIT_EXPECT_TRUE(test, mrt_test_none(mmu_range_tracker_lookup(&dev->t, ULONG_MAX)));
	/* An unaligned address is fine: the range covers it. */
	r = mrt_test_fault(dev, addr + PAGE_SIZE + 123);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	KUNIT_EXPECT_EQ(test, mmu_tracked_range_start(r), addr);
	mmu_tracked_range_put(r);
	KUNIT_EXPECT_EQ(test, mrt_test_stats(dev).created, 1);
}

static void mrt_test_use_after_fini(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 4);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 4);
	struct mmu_tracked_range *r;

	KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, addr), 0);
	mmu_range_tracker_fini(&dev->t);
	/* fini zapped what the device had mapped. */
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr));
	r = mrt_test_fault(dev, addr);
	KUNIT_EXPECT_TRUE(test, IS_ERR(r) && PTR_ERR(r) == -ENODEV);
	KUNIT_EXPECT_TRUE(test, mrt_test_none(mmu_range_tracker_lookup(&dev->t, addr)));
	KUNIT_EXPECT_TRUE(test, mrt_test_none(mmu_range_tracker_find(&dev->t, 0, ULONG_MAX)));
	mmu_range_tracker_synchronize(&dev->t);
	mmu_range_tracker_fini(&dev->t);
	/* The notifier is gone: an unmap now calls nobody. */
	KUNIT_EXPECT_EQ(test, vm_munmap(addr, 4 * PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->invalidations), 1);
}

struct mrt_fini_ctx {
	struct mrt_test_dev *dev;
	struct completion done;
};

static int mrt_fini_thread(void *data)
{
	struct mrt_fini_ctx *ctx = data;

	mmu_range_tracker_fini(&ctx->dev->t);
	complete(&ctx->done);
	return 0;
}

/* fini with a reference held elsewhere waits for it, then completes. */
static void mrt_test_fini_waits_for_references(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 4);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_embed_ops,
						       0, addr, 4);
	struct mrt_fini_ctx ctx = { .dev = dev };
	struct mmu_tracked_range *r;
	struct task_struct *task;

	r = mrt_test_fault(dev, addr);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	init_completion(&ctx.done);
	task = kthread_run(mrt_fini_thread, &ctx, "mrt_fini");
	KUNIT_ASSERT_FALSE(test, IS_ERR(task));

	KUNIT_EXPECT_FALSE(test, wait_for_completion_timeout(&ctx.done,
							     msecs_to_jiffies(200)));
	/* The range is dead but its memory is still ours. */
	KUNIT_EXPECT_EQ(test, container_of(r, struct mrt_test_range, r)->magic,
			MRT_TEST_MAGIC);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->freed), 0);
	mmu_tracked_range_put(r);
	KUNIT_EXPECT_TRUE(test, wait_for_completion_timeout(&ctx.done,
							    msecs_to_jiffies(10000)));
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->freed), 1);
}

/* --- scale and concurrency --- */

static void mrt_test_many_vmas(struct kunit *test, unsigned int nr)
{
	unsigned long addr = mrt_test_mmap(test, 2 * nr);
	struct mrt_test_dev *dev;
	struct mmu_tracked_range *r;
	unsigned int i;

	/* Every other page unmapped: nr one-page VMAs that cannot merge. */
	for (i = 0; i < nr; i++)
		KUNIT_ASSERT_EQ(test, vm_munmap(addr + (2 * i + 1) * PAGE_SIZE,
						PAGE_SIZE), 0);
	dev = mrt_test_dev_create(test, &mrt_test_embed_ops, 0, addr, 2 * nr);
	for (i = 0; i < nr; i++) {
		r = mrt_test_fault(dev, addr + 2 * i * PAGE_SIZE);
		KUNIT_ASSERT_FALSE(test, IS_ERR(r));
		KUNIT_EXPECT_EQ(test, mmu_tracked_range_end(r) -
				mmu_tracked_range_start(r), PAGE_SIZE);
		mmu_tracked_range_put(r);
	}
	KUNIT_EXPECT_EQ(test, mrt_test_stats(dev).created, nr);
	for (i = 0; i < nr; i += 97) {
		r = mmu_range_tracker_lookup(&dev->t, addr + 2 * i * PAGE_SIZE);
		KUNIT_EXPECT_NOT_NULL(test, r);
		if (r)
			mmu_tracked_range_put(r);
	}
	/* Half go by munmap, the rest by fini, which destroys the tree. */
	KUNIT_ASSERT_EQ(test, vm_munmap(addr, nr * PAGE_SIZE), 0);
	mmu_range_tracker_synchronize(&dev->t);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->freed), nr / 2);
	mmu_range_tracker_fini(&dev->t);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->freed), nr);
}

static void mrt_test_1200_vmas(struct kunit *test)
{
	mrt_test_many_vmas(test, 1200);
}

/* More than enough for a three-level RCU maple tree (hazard 11). */
static void mrt_test_5200_vmas(struct kunit *test)
{
	mrt_test_many_vmas(test, 5200);
}

struct mrt_race_ctx {
	struct mrt_test_dev *dev;
	struct mm_struct *mm;
	unsigned long addr, npages;
	atomic_t stop;
	unsigned long faults, errors, bad, commits;
	/* The page the committer reads now, for the unmapper to aim at. */
	unsigned long target;
	struct completion done, committer_done;
};

/* Commits device mappings at random pages, as a device's faults do. */
static int mrt_race_committer(void *data)
{
	struct mrt_race_ctx *ctx = data;
	unsigned long a;

	kthread_use_mm(ctx->mm);
	while (!atomic_read(&ctx->stop)) {
		a = ctx->addr + get_random_u32_below(ctx->npages) * PAGE_SIZE;
		WRITE_ONCE(ctx->target, a);
		if (!mrt_test_commit(ctx->dev, a))
			ctx->commits++;
		cond_resched();
	}
	kthread_unuse_mm(ctx->mm);
	complete(&ctx->committer_done);
	return 0;
}

/*
 * After an unmap of [a, a + n) returns, the device maps none of it, and no
 * commit can map it again before the CPU does: a fault there finds no VMA.
 */
static unsigned long mrt_race_stale(struct mrt_test_dev *dev, unsigned long a,
				    unsigned long n)
{
	unsigned long i, stale = 0;

	mmu_range_tracker_lock(&dev->t);
	for (i = 0; i < n; i++)
		stale += mrt_test_mapped(dev, a + i * PAGE_SIZE);
	mmu_range_tracker_unlock(&dev->t);
	return stale;
}

static int mrt_race_thread(void *data)
{
	struct mrt_race_ctx *ctx = data;
	struct mmu_tracked_range *r;
	unsigned long a;

	kthread_use_mm(ctx->mm);
	while (!atomic_read(&ctx->stop)) {
		a = ctx->addr + get_random_u32_below(ctx->npages) * PAGE_SIZE;
		r = mrt_test_fault(ctx->dev, a);
		if (IS_ERR(r)) {
			if (PTR_ERR(r) != -EFAULT)
				ctx->bad++;
			ctx->errors++;
		} else {
			if (a < mmu_tracked_range_start(r) ||
			    a >= mmu_tracked_range_end(r))
				ctx->bad++;
			mmu_tracked_range_put(r);
			ctx->faults++;
		}
		r = mmu_range_tracker_lookup(&ctx->dev->t, a);
		if (r) {
			if (a < mmu_tracked_range_start(r) ||
			    a >= mmu_tracked_range_end(r))
				ctx->bad++;
			mmu_tracked_range_put(r);
		}
		cond_resched();
	}
	kthread_unuse_mm(ctx->mm);
	complete(&ctx->done);
	return 0;
}

/*
 * One thread faults and looks up, another commits device mappings, while
 * the test unmaps (munmap downgrades its lock before the invalidation) and
 * maps again; after every unmap, nothing of it may stay mapped by the
 * device. On more than one CPU the races must have happened: commits found
 * stale by read_retry.
 */
static void mrt_test_fault_races_unmap(struct kunit *test)
{
	const unsigned long npages = 64;
	unsigned long addr = mrt_test_mmap(test, npages), a, res, end, stale = 0;
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_embed_ops,
						       0, addr, npages);
	struct mrt_race_ctx ctx = {
		.dev = dev, .mm = current->mm, .addr = addr, .npages = npages,
	};
	struct mrt_span spans[MRT_TEST_MAX_SPANS];
	struct vm_area_struct *vma;
	struct task_struct *task;
	int i, n;

	init_completion(&ctx.done);
	init_completion(&ctx.committer_done);
	/* A device read takes a while: a window for invalidations to hit. */
	dev->read_us = 50;
	task = kthread_run(mrt_race_thread, &ctx, "mrt_race");
	KUNIT_ASSERT_FALSE(test, IS_ERR(task));
	task = kthread_run(mrt_race_committer, &ctx, "mrt_commit");
	if (IS_ERR(task)) {
		atomic_set(&ctx.stop, 1);
		wait_for_completion(&ctx.done);
		KUNIT_FAIL(test, "no committer thread");
		return;
	}
	/*
	 * 400 rounds, and on SMP more until three commits were found stale
	 * (bounded): the race must be hit for the case to count.
	 */
	for (i = 0; i < 400 || (num_online_cpus() > 1 && i < 4000 &&
				atomic_read(&dev->stale) < 3); i++) {
		n = 1 + get_random_u32_below(4);
		/* Every other time, the page the committer is reading. */
		a = READ_ONCE(ctx.target);
		if (!(i & 2) || !a || a + n * PAGE_SIZE > addr + npages * PAGE_SIZE)
			a = addr + get_random_u32_below(npages - 4) * PAGE_SIZE;
		vm_munmap(a, n * PAGE_SIZE);
		stale += mrt_race_stale(dev, a, n);
		if (i & 1) {
			res = vm_mmap(NULL, a, n * PAGE_SIZE,
				      PROT_READ | PROT_WRITE,
				      MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, 0);
			KUNIT_EXPECT_EQ(test, res, a);
		}
		if (!(i % 50))
			msleep(20);
	}
	atomic_set(&ctx.stop, 1);
	wait_for_completion(&ctx.done);
	wait_for_completion(&ctx.committer_done);
	mmu_range_tracker_synchronize(&dev->t);

	KUNIT_EXPECT_EQ(test, ctx.bad, 0);
	KUNIT_EXPECT_EQ_MSG(test, stale, 0,
			    "device pages still mapped after their munmap");
	KUNIT_EXPECT_GT(test, ctx.faults, 0);
	KUNIT_EXPECT_GT(test, ctx.commits, 0);
	kunit_info(test, "%u CPUs, %u rounds: %lu faults (%lu on unmapped addresses), %lu commits, %d found stale (races hit)\n",
		   num_online_cpus(), i, ctx.faults, ctx.errors, ctx.commits,
		   atomic_read(&dev->stale));
	if (num_online_cpus() > 1)
		KUNIT_EXPECT_GT(test, atomic_read(&dev->stale), 0);
	/* At rest: no overlap, and every live range lies in mapped memory. */
	n = mrt_test_spans(dev, addr, addr + npages * PAGE_SIZE, spans);
	mmap_read_lock(current->mm);
	for (i = 0; i < n; i++) {
		if (i)
			KUNIT_EXPECT_GE(test, spans[i].start, spans[i - 1].end);
		for (a = spans[i].start; a < spans[i].end; a = end) {
			vma = vma_lookup(current->mm, a);
			KUNIT_EXPECT_NOT_NULL(test, vma);
			if (!vma)
				break;
			end = vma->vm_end;
		}
	}
	mmap_read_unlock(current->mm);
}

/* --- the device's own exclusive accesses --- */

#if IS_BUILTIN(CONFIG_MMU_RANGE_TRACKER_KUNIT_TEST)
/*
 * An invalidation as make_device_exclusive() issues it. Needs the
 * unexported __mmu_notifier_invalidate_range_start(): built-in tests only.
 */
static void mrt_test_exclusive(struct mrt_test_dev *dev, unsigned long start,
			       void *owner)
{
	struct mmu_notifier_range range;

	mmu_notifier_range_init_owner(&range, MMU_NOTIFY_EXCLUSIVE,
				      MMU_NOTIFIER_RANGE_BLOCKABLE, dev->t.mm,
				      start, start + PAGE_SIZE, owner);
	mmu_notifier_invalidate_range_start(&range);
	mmu_notifier_invalidate_range_end(&range);
}

static void mrt_test_exclusive_owner(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 4);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 4);
	struct mmu_tracked_range *r;
	unsigned long seq;
	int before;

	mmu_range_tracker_set_owner(&dev->t, dev);
	r = mrt_test_fault(dev, addr);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r));
	seq = mmu_interval_read_begin(&r->notifier);

	/* Our own: the device is told, the read stays valid. */
	before = atomic_read(&dev->invalidations);
	mrt_test_exclusive(dev, addr, dev);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->invalidations), before + 1);
	KUNIT_EXPECT_FALSE(test, mrt_test_stale(dev, r, seq));

	/* Another device's, or none: stale as for any invalidation. */
	mrt_test_exclusive(dev, addr, test);
	KUNIT_EXPECT_TRUE(test, mrt_test_stale(dev, r, seq));
	mmu_tracked_range_put(r);
}

/*
 * A non-blockable invalidation, as the OOM reaper issues it, with preemption
 * disabled so that DEBUG_ATOMIC_SLEEP reports any sleep on the way.
 */
static int mrt_test_nonblock(struct mrt_test_dev *dev, unsigned long start,
			     unsigned long end)
{
	struct mmu_notifier_range range;
	int ret;

	mmu_notifier_range_init(&range, MMU_NOTIFY_UNMAP, 0, dev->t.mm, start,
				end);
	preempt_disable();
	ret = mmu_notifier_invalidate_range_start_nonblock(&range);
	preempt_enable();
	if (!ret)
		mmu_notifier_invalidate_range_end(&range);
	return ret;
}

/*
 * Non-blockable invalidations never sleep: the tracker fails them when the
 * update lock is busy, the driver when its zap would sleep, and a failed one
 * changes nothing (no zap, no reshape). Otherwise they zap as usual.
 */
static void mrt_test_nonblocking_invalidate(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 4);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 4);
	struct mrt_holder_ctx ctx = { .dev = dev };
	struct mmu_tracked_range *r;
	struct task_struct *task;

	KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, addr), 0);

	/* The update lock is busy: -EAGAIN at once, the device untouched. */
	init_completion(&ctx.locked);
	init_completion(&ctx.release);
	init_completion(&ctx.done);
	task = kthread_run(mrt_holder_thread, &ctx, "mrt_holder");
	KUNIT_ASSERT_FALSE(test, IS_ERR(task));
	wait_for_completion(&ctx.locked);
	KUNIT_EXPECT_EQ(test, mrt_test_nonblock(dev, addr, addr + PAGE_SIZE),
			-EAGAIN);
	complete(&ctx.release);
	wait_for_completion(&ctx.done);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->invalidations), 0);
	KUNIT_EXPECT_TRUE(test, mrt_test_mapped(dev, addr));

	/* The driver's zap would sleep: it refuses, the tracker passes it on. */
	WRITE_ONCE(dev->zap_sleeps, true);
	KUNIT_EXPECT_EQ(test, mrt_test_nonblock(dev, addr, addr + PAGE_SIZE),
			-EAGAIN);
	KUNIT_EXPECT_TRUE(test, mrt_test_mapped(dev, addr));
	r = mmu_range_tracker_lookup(&dev->t, addr);
	KUNIT_EXPECT_NOT_NULL_MSG(test, r, "a failed invalidation killed the range");
	if (r)
		mmu_tracked_range_put(r);

	/* It can zap without sleeping: the invalidation goes through. */
	WRITE_ONCE(dev->zap_sleeps, false);
	KUNIT_EXPECT_EQ(test, mrt_test_nonblock(dev, addr, addr + PAGE_SIZE), 0);
	KUNIT_EXPECT_FALSE(test, mrt_test_mapped(dev, addr));
	mmu_range_tracker_synchronize(&dev->t);
	KUNIT_EXPECT_EQ(test, mrt_test_commit(dev, addr), 0);
}
#else
static void mrt_test_exclusive_owner(struct kunit *test)
{
	kunit_skip(test, "needs the test built in");
}

static void mrt_test_nonblocking_invalidate(struct kunit *test)
{
	kunit_skip(test, "needs the test built in");
}
#endif

/* --- two-pass interval notifiers of other users in the same mm --- */

/* Another user of the mm with a two-pass notifier, as Xe's userptr. */
struct mrt_two_pass {
	struct mmu_interval_notifier notifier;
	struct mmu_interval_notifier_finish finish;
	struct mrt_test_dev *dev;
	unsigned long addr;
	int starts, finishes;
	/* The tracker's device had dropped @addr when the finish pass ran. */
	bool zapped_at_finish;
};

static bool mrt_two_pass_start(struct mmu_interval_notifier *mni,
			       const struct mmu_notifier_range *range,
			       unsigned long cur_seq,
			       struct mmu_interval_notifier_finish **finish)
{
	struct mrt_two_pass *tp = container_of(mni, struct mrt_two_pass,
					       notifier);

	mmu_interval_set_seq(mni, cur_seq);
	tp->starts++;
	*finish = &tp->finish;
	return true;
}

static void mrt_two_pass_finish(struct mmu_interval_notifier_finish *finish)
{
	struct mrt_two_pass *tp = container_of(finish, struct mrt_two_pass,
					       finish);

	tp->finishes++;
	tp->zapped_at_finish = !mrt_test_mapped(tp->dev, tp->addr);
}

static const struct mmu_interval_notifier_ops mrt_two_pass_ops = {
	.invalidate_start = mrt_two_pass_start,
	.invalidate_finish = mrt_two_pass_finish,
};

/*
 * The tracker's one-pass notifiers and another user's two-pass notifier on
 * the same memory: every invalidation reaches both, the tracker's zap is
 * done before any finish pass runs, and reshaping goes on as usual.
 */
static void mrt_test_two_pass_neighbour(struct kunit *test)
{
	unsigned long addr = mrt_test_mmap(test, 8);
	struct mrt_test_dev *dev = mrt_test_dev_create(test, &mrt_test_ops, 0,
						       addr, 8);
	struct mrt_two_pass tp = { .dev = dev, .addr = addr + 2 * PAGE_SIZE };
	struct mrt_span spans[MRT_TEST_MAX_SPANS];
	unsigned long a;

	for (a = addr; a < addr + 8 * PAGE_SIZE; a += PAGE_SIZE)
		KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, a), 0);
	KUNIT_ASSERT_EQ(test, mmu_interval_notifier_insert(&tp.notifier,
							   current->mm, addr,
							   8 * PAGE_SIZE,
							   &mrt_two_pass_ops),
			0);

	KUNIT_EXPECT_EQ(test, vm_munmap(addr + 2 * PAGE_SIZE, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, tp.starts, 1);
	KUNIT_EXPECT_EQ(test, tp.finishes, 1);
	KUNIT_EXPECT_TRUE(test, tp.zapped_at_finish);
	KUNIT_EXPECT_EQ(test, atomic_read(&dev->invalidations), 1);

	mmu_range_tracker_synchronize(&dev->t);
	KUNIT_ASSERT_EQ(test, mrt_test_spans(dev, addr, addr + 8 * PAGE_SIZE,
					     spans), 2);
	MRT_EXPECT_SPAN(test, spans[0], addr, addr + 2 * PAGE_SIZE);
	MRT_EXPECT_SPAN(test, spans[1], addr + 3 * PAGE_SIZE, addr + 8 * PAGE_SIZE);

	/* The survivors and the two-pass notifier both see the next one. */
	tp.addr = addr + 5 * PAGE_SIZE;
	KUNIT_EXPECT_EQ(test, vm_munmap(addr + 5 * PAGE_SIZE, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, tp.finishes, 2);
	KUNIT_EXPECT_TRUE(test, tp.zapped_at_finish);
	KUNIT_EXPECT_TRUE(test, mrt_test_mapped(dev, addr + 4 * PAGE_SIZE));
	mmu_interval_notifier_remove(&tp.notifier);
}

/* --- the lookup, against the baselines it is meant to match --- */

struct mrt_itree_entry {
	struct interval_tree_node node;
	struct mmu_tracked_range *r;
};

static bool mrt_bench_invalidate(struct mmu_interval_notifier *mni,
				 const struct mmu_notifier_range *range,
				 unsigned long cur_seq)
{
	mmu_interval_set_seq(mni, cur_seq);
	return true;
}

static const struct mmu_interval_notifier_ops mrt_bench_ops = {
	.invalidate = mrt_bench_invalidate,
};

static const unsigned int mrt_bench_policies[] = { PAGE_SHIFT + 2, 0 };

static void mrt_bench_policy_desc(const unsigned int *shift, char *desc)
{
	if (*shift)
		snprintf(desc, KUNIT_PARAM_DESC_SIZE, "granule_%lu_pages",
			 1UL << (*shift - PAGE_SHIFT));
	else
		strscpy(desc, "vma", KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(mrt_bench, mrt_bench_policies, mrt_bench_policy_desc);

/* make bench sets it: the large size, and more lookups and rounds. */
static bool bench;
module_param(bench, bool, 0444);
MODULE_PARM_DESC(bench, "run the benchmark at the sizes and rounds of make bench");

struct mrt_bench_case {
	const char *name;
	/* 0: VMA policy, one one-page VMA per range */
	unsigned int shift;
	/* 16, 1024, or 0: the large size */
	unsigned long nranges;
};

static const struct mrt_bench_case mrt_bench_cases[] = {
	{ "granule_4_pages_16", PAGE_SHIFT + 2, 16 },
	{ "granule_4_pages_1k", PAGE_SHIFT + 2, 1024 },
	{ "granule_4_pages_large", PAGE_SHIFT + 2, 0 },
	{ "vma_16", 0, 16 },
	{ "vma_1k", 0, 1024 },
	{ "vma_large", 0, 0 },
};

KUNIT_ARRAY_PARAM_DESC(mrt_bench_scale, mrt_bench_cases, name);

/* What one round measures, in the same boot and over the same addresses. */
enum mrt_bench_row {
	MRT_BENCH_XA,		/* xa_load() + reference, as mlx5 ODP */
	MRT_BENCH_LOOKUP,	/* mmu_range_tracker_lookup() hit */
	MRT_BENCH_FAULT,	/* mmu_range_tracker_fault() hit */
	MRT_BENCH_ITREE,	/* the 2020 driver-side mutex + interval tree */
	MRT_BENCH_NOTIFIER,	/* nouveau before: a notifier per fault */
	MRT_BENCH_ROWS
};

static const char *const mrt_bench_row_names[MRT_BENCH_ROWS] = {
	"xa_load+ref", "lookup", "fault_hit", "mutex+itree",
	"notifier_per_fault",
};

#define MRT_BENCH_ROUNDS	7

struct mrt_bench_ctx {
	struct mrt_test_dev *dev;
	struct xarray xa;
	unsigned int xa_shift;
	struct rb_root_cached itree;
	/* The lock a driver-side interval tree search would take. */
	struct mutex lock;
	unsigned long *addrs;
	/* Wrong answers; the two-CPU rows count from two threads. */
	atomic_long_t wrong;
};

static bool mrt_bench_holds(struct mmu_tracked_range *r, unsigned long a)
{
	return r && a >= mmu_tracked_range_start(r) &&
	       a < mmu_tracked_range_end(r);
}

/* One round of @n operations of @row at @addrs; returns its nanoseconds. */
static u64 mrt_bench_round(struct mrt_bench_ctx *ctx, enum mrt_bench_row row,
			   const unsigned long *addrs, unsigned int n)
{
	struct mmu_range_tracker *t = &ctx->dev->t;
	struct mmu_interval_notifier mni;
	struct interval_tree_node *node;
	struct mmu_tracked_range *r;
	unsigned long a, wrong = 0;
	unsigned int i;
	ktime_t t0;

	if (row == MRT_BENCH_FAULT)
		mmap_read_lock(t->mm);
	t0 = ktime_get();
	for (i = 0; i < n; i++) {
		a = addrs[i];
		switch (row) {
		case MRT_BENCH_XA:
			rcu_read_lock();
			r = xa_load(&ctx->xa, a >> ctx->xa_shift);
			if (r && !refcount_inc_not_zero(&r->refs))
				r = NULL;
			rcu_read_unlock();
			wrong += !mrt_bench_holds(r, a);
			if (r)
				refcount_dec(&r->refs);
			break;
		case MRT_BENCH_LOOKUP:
		case MRT_BENCH_FAULT:
			r = row == MRT_BENCH_LOOKUP ?
			    mmu_range_tracker_lookup(t, a) :
			    mmu_range_tracker_fault(t, a);
			if (IS_ERR(r))
				r = NULL;
			wrong += !mrt_bench_holds(r, a);
			if (r)
				mmu_tracked_range_put(r);
			break;
		case MRT_BENCH_ITREE:
			mutex_lock(&ctx->lock);
			node = interval_tree_iter_first(&ctx->itree, a, a);
			wrong += !node || node->start > a || node->last < a;
			mutex_unlock(&ctx->lock);
			break;
		case MRT_BENCH_NOTIFIER:
			if (mmu_interval_notifier_insert(&mni, t->mm,
							 a & PAGE_MASK,
							 PAGE_SIZE,
							 &mrt_bench_ops)) {
				wrong++;
				break;
			}
			mmu_interval_read_begin(&mni);
			mmu_interval_notifier_remove(&mni);
			break;
		default:
			break;
		}
	}
	t0 = ktime_sub(ktime_get(), t0);
	if (row == MRT_BENCH_FAULT)
		mmap_read_unlock(t->mm);
	atomic_long_add(wrong, &ctx->wrong);
	return ktime_to_ns(t0);
}

static int mrt_bench_cmp(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/*
 * Slab memory in use, in bytes: the range structures, maple tree nodes and
 * xarray nodes that creating ranges allocates. Per-CPU counter drift makes
 * it exact only to some hundred kilobytes: meaningful over many ranges.
 */
static long mrt_bench_slab_bytes(void)
{
	return (global_node_page_state_pages(NR_SLAB_UNRECLAIMABLE_B) +
		global_node_page_state_pages(NR_SLAB_RECLAIMABLE_B)) * PAGE_SIZE;
}

/* Hundredths of @num / @den, for ratios printed as N.NN. */
static u64 mrt_bench_pct(u64 num, u64 den)
{
	return div64_u64(num * 100, max(den, 1ULL));
}

/*
 * The fault path's costs against what the review held them to: mlx5 ODP's
 * xa_load() of the range's index plus the reference ODP then takes, the
 * driver-side mutex + interval tree search of 2020, and what nouveau did
 * per GPU fault before the tracker (insert an interval notifier, read_begin,
 * remove it); and the cost of a miss (a range created on fault) with the
 * slab memory a live range takes (structure, tree and index). For each
 * policy at 16, 1024 and a large number of ranges (4-page granules of one
 * VMA, or one-page VMAs): 4096 in make test's short round, 65536 granules
 * and 60000 VMAs (vm.max_map_count is 65530) with bench=1. Every answer is
 * checked; each cost is the median of the rounds, in ns per operation,
 * printed on one "BENCH" line that harness/bench.sh tabulates.
 */
static void mrt_bench_scale(struct kunit *test)
{
	const struct mrt_bench_case *c = test->param_value;
	const unsigned int step = c->shift ? c->shift : PAGE_SHIFT + 1;
	unsigned long nranges = c->nranges ? c->nranges :
				bench ? (c->shift ? 65536 : 60000) : 4096;
	unsigned int lookups = bench ? 64 * 1024 : 8 * 1024;
	unsigned int rounds = bench ? MRT_BENCH_ROUNDS : 1;
	unsigned long npages = nranges << (step - PAGE_SHIFT);
	u64 ns[MRT_BENCH_ROWS] = { }, miss;
	u64 samples[MRT_BENCH_ROWS][MRT_BENCH_ROUNDS];
	struct mrt_bench_ctx ctx = { .itree = RB_ROOT_CACHED };
	struct mrt_itree_entry *entries;
	struct mmu_tracked_range *r;
	unsigned long addr;
	unsigned int i, row, n;
	long slab;
	ktime_t t0;

	/*
	 * Read-only: nothing is touched, and up to 1 GiB of address space is
	 * then not charged against the overcommit limit of a small machine.
	 */
	addr = kunit_vm_mmap(test, NULL, 0, npages * PAGE_SIZE, PROT_READ,
			     MAP_ANONYMOUS | MAP_PRIVATE, 0);
	KUNIT_ASSERT_FALSE(test, IS_ERR_VALUE(addr));
	KUNIT_ASSERT_NE(test, addr, 0);

	/* On the stack: initialized at run time, so lockdep gets a key. */
	xa_init(&ctx.xa);
	mutex_init(&ctx.lock);
	ctx.xa_shift = c->shift ? c->shift : PAGE_SHIFT;

	/* VMA policy: every other page unmapped, one VMA per range. */
	for (i = 0; !c->shift && i < nranges; i++)
		KUNIT_ASSERT_EQ(test, vm_munmap(addr + (2 * i + 1) * PAGE_SIZE,
						PAGE_SIZE), 0);
	ctx.dev = mrt_test_dev_create(test, &mrt_test_ops, c->shift, addr,
				      npages);
	entries = kvcalloc(nranges, sizeof(*entries), GFP_KERNEL);
	ctx.addrs = kvcalloc(lookups, sizeof(*ctx.addrs), GFP_KERNEL);
	if (!entries || !ctx.addrs) {
		kvfree(entries);
		kvfree(ctx.addrs);
		KUNIT_FAIL(test, "no memory for %lu ranges", nranges);
		return;
	}

	/* The misses: every range created by a fault. */
	slab = mrt_bench_slab_bytes();
	t0 = ktime_get();
	for (i = 0; i < nranges; i++) {
		r = mrt_test_fault(ctx.dev, addr + ((unsigned long)i << step));
		if (IS_ERR(r))
			break;
		entries[i].r = r;
	}
	miss = div_u64(ktime_to_ns(ktime_sub(ktime_get(), t0)), nranges);
	KUNIT_EXPECT_EQ(test, i, nranges);
	nranges = i;
	slab = nranges ? (mrt_bench_slab_bytes() - slab) / (long)nranges : 0;
	for (i = 0; i < nranges; i++) {
		r = entries[i].r;
		entries[i].node.start = mmu_tracked_range_start(r);
		entries[i].node.last = mmu_tracked_range_end(r) - 1;
		interval_tree_insert(&entries[i].node, &ctx.itree);
		if (xa_err(xa_store(&ctx.xa, entries[i].node.start >> ctx.xa_shift,
				    r, GFP_KERNEL)))
			atomic_long_inc(&ctx.wrong);
		mmu_tracked_range_put(r);
	}
	for (i = 0; nranges && i < lookups; i++) {
		r = entries[get_random_u32_below(nranges)].r;
		ctx.addrs[i] = mmu_tracked_range_start(r) +
			get_random_u32_below(mmu_tracked_range_end(r) -
					     mmu_tracked_range_start(r));
	}

	/*
	 * Rows in turn within each round, so that none always runs first
	 * (on cold caches and TLB) or after the most expensive one.
	 */
	for (i = 0; nranges && i < rounds; i++) {
		for (row = 0; row < MRT_BENCH_ROWS; row++) {
			/* A notifier per fault costs more: fewer of them. */
			n = row == MRT_BENCH_NOTIFIER ? min(lookups, 4096U) :
							lookups;
			samples[row][i] = div_u64(mrt_bench_round(&ctx, row,
								  ctx.addrs, n),
						  n);
		}
	}
	for (row = 0; nranges && row < MRT_BENCH_ROWS; row++) {
		sort(samples[row], rounds, sizeof(u64), mrt_bench_cmp, NULL);
		ns[row] = samples[row][rounds / 2];
		kunit_info(test, "%s: %llu ns/op\n", mrt_bench_row_names[row],
			   ns[row]);
	}
	KUNIT_EXPECT_EQ(test, atomic_long_read(&ctx.wrong), 0);
	if (nranges)
		kunit_info(test, "BENCH policy=%s ranges=%lu xa_ref=%llu lookup=%llu fault_hit=%llu mutex_itree=%llu notifier_per_fault=%llu miss=%llu bytes=%ld\n",
			   c->shift ? "granule_4_pages" : "vma", nranges,
			   ns[MRT_BENCH_XA], ns[MRT_BENCH_LOOKUP],
			   ns[MRT_BENCH_FAULT], ns[MRT_BENCH_ITREE],
			   ns[MRT_BENCH_NOTIFIER], miss, slab);
	if (nranges)
		kunit_info(test, "ratio lookup/(xa_load+ref) = %llu.%02llu\n",
			   mrt_bench_pct(ns[MRT_BENCH_LOOKUP], ns[MRT_BENCH_XA]) / 100,
			   mrt_bench_pct(ns[MRT_BENCH_LOOKUP], ns[MRT_BENCH_XA]) % 100);
	xa_destroy(&ctx.xa);
	kvfree(ctx.addrs);
	kvfree(entries);
}

/* One CPU's part of a two-CPU round: @row at @addrs. */
struct mrt_bench_cpu {
	struct mrt_bench_ctx *ctx;
	enum mrt_bench_row row;
	const unsigned long *addrs;
	unsigned int n;
	/* Counts down to 0 when every thread of the round is ready. */
	atomic_t *ready;
	u64 ns;
	struct completion done;
};

static int mrt_bench_cpu_fn(void *data)
{
	struct mrt_bench_cpu *c = data;

	/*
	 * Start together: each thread waits until the last one is ready, and
	 * yields meanwhile in case a CPU went offline and both share one.
	 */
	atomic_dec(c->ready);
	while (atomic_read(c->ready))
		cond_resched();
	c->ns = mrt_bench_round(c->ctx, c->row, c->addrs, c->n);
	complete(&c->done);
	return 0;
}

/*
 * @row on @ncpus CPUs at once, one thread bound to each of @cpus with its
 * addresses in @addrs[i]; returns the nanoseconds of the slowest, or 0 if
 * a thread could not be created.
 */
static u64 mrt_bench_cpus(struct mrt_bench_ctx *ctx, enum mrt_bench_row row,
			  const int *cpus, unsigned long *const *addrs,
			  int ncpus, unsigned int n)
{
	struct mrt_bench_cpu c[2];
	struct task_struct *tsk[2];
	atomic_t ready;
	u64 ns = 0;
	int i;

	if (WARN_ON(ncpus > ARRAY_SIZE(c)))
		return 0;
	atomic_set(&ready, ncpus);
	for (i = 0; i < ncpus; i++) {
		c[i] = (struct mrt_bench_cpu) {
			.ctx = ctx, .row = row, .addrs = addrs[i], .n = n,
			.ready = &ready,
		};
		init_completion(&c[i].done);
		tsk[i] = kthread_create_on_cpu(mrt_bench_cpu_fn, &c[i], cpus[i],
					       "mrt_bench/%u");
		if (IS_ERR(tsk[i]))
			break;
	}
	if (i < ncpus) {
		/* Not started: they exit without running mrt_bench_cpu_fn(). */
		while (i--)
			kthread_stop(tsk[i]);
		return 0;
	}
	for (i = 0; i < ncpus; i++)
		wake_up_process(tsk[i]);
	for (i = 0; i < ncpus; i++) {
		wait_for_completion(&c[i].done);
		ns = max(ns, c[i].ns);
	}
	return ns;
}

/*
 * Lookups on two CPUs at once against one CPU, in the same boot: aggregate
 * throughput when the two CPUs look up different ranges (each half of 1024
 * ranges) and when both look up the same range (one reference count, one
 * cache line, bouncing between them). Printed on one "SMP" line; on one CPU
 * (UML) only the one-CPU row is measured. The lookups are lock-free: the
 * two-CPU rows show what sharing costs, which a lock would serialize.
 */
static void mrt_bench_smp(struct kunit *test)
{
	const unsigned int *shift = test->param_value;
	const unsigned int step = *shift ? *shift : PAGE_SHIFT + 1;
	const unsigned long nranges = 1024;
	unsigned int lookups = bench ? 256 * 1024 : 8 * 1024;
	unsigned long npages = nranges << (step - PAGE_SHIFT);
	struct mrt_bench_ctx ctx = { };
	unsigned long *half[2], *same[2];
	u64 one, diff = 0, shared = 0;
	unsigned long addr, i;
	int cpus[2], ncpus;

	addr = kunit_vm_mmap(test, NULL, 0, npages * PAGE_SIZE, PROT_READ,
			     MAP_ANONYMOUS | MAP_PRIVATE, 0);
	KUNIT_ASSERT_FALSE(test, IS_ERR_VALUE(addr));
	KUNIT_ASSERT_NE(test, addr, 0);
	for (i = 0; !*shift && i < nranges; i++)
		KUNIT_ASSERT_EQ(test, vm_munmap(addr + (2 * i + 1) * PAGE_SIZE,
						PAGE_SIZE), 0);
	ctx.dev = mrt_test_dev_create(test, &mrt_test_ops, *shift, addr, npages);
	for (i = 0; i < nranges; i++) {
		struct mmu_tracked_range *r;

		r = mrt_test_fault(ctx.dev, addr + ((unsigned long)i << step));
		KUNIT_ASSERT_FALSE(test, IS_ERR(r));
		mmu_tracked_range_put(r);
	}
	for (i = 0; i < 2; i++) {
		half[i] = kunit_kcalloc(test, lookups, sizeof(long), GFP_KERNEL);
		same[i] = kunit_kcalloc(test, lookups, sizeof(long), GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, half[i]);
		KUNIT_ASSERT_NOT_NULL(test, same[i]);
	}
	/* Page-aligned addresses inside range k: range k's first page. */
	for (i = 0; i < lookups; i++) {
		unsigned long k = get_random_u32_below(nranges / 2);

		half[0][i] = addr + (k << step);
		half[1][i] = addr + ((k + nranges / 2) << step);
		same[0][i] = addr;
		same[1][i] = addr;
	}

	cpus[0] = cpumask_first(cpu_online_mask);
	cpus[1] = cpumask_next(cpus[0], cpu_online_mask);
	ncpus = cpus[1] < nr_cpu_ids ? 2 : 1;
	one = mrt_bench_cpus(&ctx, MRT_BENCH_LOOKUP, cpus, half, 1, lookups);
	KUNIT_ASSERT_NE_MSG(test, one, 0, "no benchmark thread");
	if (ncpus == 2) {
		diff = mrt_bench_cpus(&ctx, MRT_BENCH_LOOKUP, cpus, half, 2,
				      lookups);
		shared = mrt_bench_cpus(&ctx, MRT_BENCH_LOOKUP, cpus, same, 2,
					lookups);
		KUNIT_ASSERT_NE_MSG(test, diff, 0, "no benchmark thread");
		KUNIT_ASSERT_NE_MSG(test, shared, 0, "no benchmark thread");
	}
	KUNIT_EXPECT_EQ(test, atomic_long_read(&ctx.wrong), 0);
	/* Aggregate against one CPU: 2 * n / slowest over n / one. */
	kunit_info(test, "SMP policy=%s ranges=%lu cpus=%d one=%llu diff_ratio=%llu same_ratio=%llu\n",
		   *shift ? "granule_4_pages" : "vma", nranges, ncpus,
		   div_u64(one, lookups),
		   diff ? mrt_bench_pct(2 * one, diff) : 0,
		   shared ? mrt_bench_pct(2 * one, shared) : 0);
}

/* Unmaps and maps again one page of the test's mm, until stopped. */
struct mrt_bench_unmapper {
	struct mm_struct *mm;
	unsigned long addr;
	atomic_long_t rounds;
	int err;
};

static int mrt_bench_unmap_fn(void *data)
{
	struct mrt_bench_unmapper *u = data;

	kthread_use_mm(u->mm);
	while (!kthread_should_stop() && !u->err) {
		if (vm_munmap(u->addr, PAGE_SIZE) ||
		    vm_mmap(NULL, u->addr, PAGE_SIZE, PROT_READ,
			    MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, 0) != u->addr)
			u->err = -EFAULT;
		atomic_long_inc(&u->rounds);
		cond_resched();
	}
	kthread_unuse_mm(u->mm);
	/* kthread_stop() must find the thread alive. */
	while (!kthread_should_stop())
		schedule_timeout_interruptible(1);
	return 0;
}

/*
 * What nouveau did per GPU fault before the tracker (insert an interval
 * notifier, read_begin, remove), idle and while another CPU unmaps and maps
 * again a page of the same VMA: insertions and removals then wait for the
 * invalidations in flight. On one thread bound to a CPU, the unmapper on
 * another; on one CPU (UML) only the idle row. Printed on one "BUSY" line,
 * with the unmaps done during the busy rounds: they must be some.
 */
static void mrt_bench_notifier_busy(struct kunit *test)
{
	const unsigned int n = 4096;
	unsigned int rounds = bench ? MRT_BENCH_ROUNDS : 1, i;
	u64 idle[MRT_BENCH_ROUNDS], busy[MRT_BENCH_ROUNDS];
	struct mrt_bench_unmapper u = { };
	struct mrt_bench_ctx ctx = { };
	unsigned long *addrs[1], addr;
	long unmaps = 0, before;
	struct task_struct *tsk;
	int cpus[2];

	addr = kunit_vm_mmap(test, NULL, 0, 16 * PAGE_SIZE, PROT_READ,
			     MAP_ANONYMOUS | MAP_PRIVATE, 0);
	KUNIT_ASSERT_FALSE(test, IS_ERR_VALUE(addr));
	KUNIT_ASSERT_NE(test, addr, 0);
	ctx.dev = mrt_test_dev_create(test, &mrt_test_ops, 0, addr, 16);
	addrs[0] = kunit_kcalloc(test, n, sizeof(long), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, addrs[0]);
	for (i = 0; i < n; i++)
		addrs[0][i] = addr;
	/* The first kunit_vm_mmap() gave the test thread its mm. */
	u.mm = current->mm;
	u.addr = addr + 8 * PAGE_SIZE;
	cpus[0] = cpumask_first(cpu_online_mask);
	cpus[1] = cpumask_next(cpus[0], cpu_online_mask);

	for (i = 0; i < rounds; i++) {
		idle[i] = mrt_bench_cpus(&ctx, MRT_BENCH_NOTIFIER, cpus, addrs,
					 1, n);
		KUNIT_ASSERT_NE_MSG(test, idle[i], 0, "no benchmark thread");
		idle[i] = div_u64(idle[i], n);
	}
	sort(idle, rounds, sizeof(u64), mrt_bench_cmp, NULL);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&ctx.wrong), 0);
	if (cpus[1] >= nr_cpu_ids) {
		kunit_info(test, "BUSY cpus=1 notifier_idle=%llu notifier_busy=0 unmaps=0\n",
			   idle[rounds / 2]);
		return;
	}

	tsk = kthread_create_on_cpu(mrt_bench_unmap_fn, &u, cpus[1],
				    "mrt_unmap/%u");
	KUNIT_ASSERT_FALSE(test, IS_ERR(tsk));
	wake_up_process(tsk);
	/* Let it start unmapping before the first round. */
	while (!atomic_long_read(&u.rounds) && !u.err)
		cond_resched();
	for (i = 0; i < rounds; i++) {
		before = atomic_long_read(&u.rounds);
		busy[i] = mrt_bench_cpus(&ctx, MRT_BENCH_NOTIFIER, cpus, addrs,
					 1, n);
		unmaps += atomic_long_read(&u.rounds) - before;
		if (busy[i])
			busy[i] = div_u64(busy[i], n);
	}
	kthread_stop(tsk);
	KUNIT_EXPECT_EQ(test, u.err, 0);
	KUNIT_EXPECT_GT(test, unmaps, 0);
	KUNIT_EXPECT_EQ(test, atomic_long_read(&ctx.wrong), 0);
	sort(busy, rounds, sizeof(u64), mrt_bench_cmp, NULL);
	kunit_info(test, "BUSY cpus=2 notifier_idle=%llu notifier_busy=%llu unmaps=%ld\n",
		   idle[rounds / 2], busy[rounds / 2], unmaps);
}

/* The workload of the policy analysis: 100 mappings, 16 pages each. */
#define MRT_WL_MAPPINGS		100
#define MRT_WL_PAGES		16
#define MRT_WL_TOUCHED		50

static const unsigned int mrt_wl_policies[] = {
	PAGE_SHIFT + 2, PMD_SHIFT, 0
};

static void mrt_wl_policy_desc(const unsigned int *shift, char *desc)
{
	if (*shift == PMD_SHIFT)
		strscpy(desc, "granule_pmd", KUNIT_PARAM_DESC_SIZE);
	else
		mrt_bench_policy_desc(shift, desc);
}

KUNIT_ARRAY_PARAM(mrt_wl, mrt_wl_policies, mrt_wl_policy_desc);

/*
 * What a policy costs when the device touched little: 100 adjacent
 * mappings of 16 pages (one VMA, as adjacent anonymous mmaps merge, PMD
 * aligned), the device maps every page of mapping 50, then the CPU unmaps
 * the mappings one by one, in order, while a device fault on mapping 50 is
 * in flight as long as mapping 50 exists. Counted: invalidate callbacks,
 * faults that had to retry, ranges created, split, shrunk and removed, and
 * the time of the deferred work per unmap that queued it.
 * Every invalidation of memory inside a range the device used reaches the
 * driver, and makes a fault in flight anywhere in that range retry: the
 * VMA policy pays for all 100 mappings, a granule only for its neighbours.
 * Printed on one "WORKLOAD" line; the device must end with nothing mapped.
 */
static void mrt_bench_workload(struct kunit *test)
{
	const unsigned int *shift = test->param_value;
	const unsigned long msize = MRT_WL_PAGES * PAGE_SIZE;
	const unsigned long size = MRT_WL_MAPPINGS * msize;
	unsigned long addr, base, touched, a, seq = 0, retried = 0;
	struct mmu_range_tracker_stats st;
	char desc[KUNIT_PARAM_DESC_SIZE];
	struct mmu_tracked_range *r;
	struct mrt_test_dev *dev;
	int i, cb;

	/* A PMD-aligned stretch, so that granule boundaries are known. */
	addr = mrt_test_mmap(test, (size + PMD_SIZE) >> PAGE_SHIFT);
	base = ALIGN(addr, PMD_SIZE);
	if (base > addr)
		KUNIT_ASSERT_EQ(test, vm_munmap(addr, base - addr), 0);
	KUNIT_ASSERT_EQ(test, vm_munmap(base + size, addr + PMD_SIZE - base), 0);
	dev = mrt_test_dev_create(test, &mrt_test_ops, *shift, base,
				  size >> PAGE_SHIFT);
	touched = base + MRT_WL_TOUCHED * msize;
	for (a = touched; a < touched + msize; a += PAGE_SIZE)
		KUNIT_ASSERT_EQ(test, mrt_test_commit(dev, a), 0);
	KUNIT_ASSERT_EQ(test, mrt_test_stats(dev).created,
			*shift ? DIV_ROUND_UP(msize, 1UL << *shift) : 1);
	cb = atomic_read(&dev->invalidations);

	for (i = 0; i < MRT_WL_MAPPINGS; i++) {
		r = NULL;
		if (i < MRT_WL_TOUCHED) {
			r = mrt_test_fault(dev, touched);
			KUNIT_ASSERT_FALSE(test, IS_ERR(r));
			seq = mmu_interval_read_begin(&r->notifier);
		}
		KUNIT_ASSERT_EQ(test, vm_munmap(base + i * msize, msize), 0);
		if (r) {
			/* Where the fault would commit. */
			mmu_range_tracker_lock(&dev->t);
			retried += mmu_tracked_range_read_retry(r, seq);
			mmu_range_tracker_unlock(&dev->t);
			mmu_tracked_range_put(r);
		}
		/*
		 * Let the deferred work reshape before the next unmap, as it
		 * would between unmaps that are not back to back: otherwise
		 * the dying ranges of every earlier unmap are still watched
		 * and are called again.
		 */
		mmu_range_tracker_synchronize(&dev->t);
	}
	st = mrt_test_stats(dev);
	cb = atomic_read(&dev->invalidations) - cb;

	/* The promise, and nothing left watching unmapped memory. */
	KUNIT_EXPECT_TRUE(test, bitmap_empty(dev->pt, dev->npages));
	r = mmu_range_tracker_find(&dev->t, base, base + size);
	KUNIT_EXPECT_TRUE(test, mrt_test_none(r));
	/*
	 * The VMA-sized range covers every mapping: each unmap before mapping
	 * 50 hits the fault in flight. A granule of 4 pages is inside mapping
	 * 50: no other unmap reaches it, and each of its ranges is called
	 * twice, by the unmap and by the zap of what no live range covers
	 * before its notifier goes.
	 */
	if (!*shift)
		KUNIT_EXPECT_EQ(test, retried, MRT_WL_TOUCHED);
	if (*shift == PAGE_SHIFT + 2) {
		KUNIT_EXPECT_EQ(test, retried, 0);
		KUNIT_EXPECT_EQ(test, cb, 2 * (msize >> *shift));
	}
	mrt_wl_policy_desc(shift, desc);
	kunit_info(test, "WORKLOAD policy=%s mappings=%d touched=1 callbacks=%d retried=%lu created=%lu split=%lu shrunk=%lu removed=%lu work_runs=%u work_ns=%llu\n",
		   desc, MRT_WL_MAPPINGS, cb, retried, st.created,
		   st.split, st.shrunk, st.removed, dev->work_runs,
		   dev->work_runs ? div_u64(dev->work_ns, dev->work_runs) : 0);
}

static struct kunit_case mrt_test_cases[] = {
	KUNIT_CASE(mrt_test_fault_covers_vma),
	KUNIT_CASE(mrt_test_fault_granule),
	KUNIT_CASE(mrt_test_adjacent_vmas),
	KUNIT_CASE(mrt_test_fault_clips_to_live),
	KUNIT_CASE_PARAM(mrt_test_unmap_reshapes, mrt_unmap_gen_params),
	KUNIT_CASE(mrt_test_unmap_many_cuts),
	KUNIT_CASE(mrt_test_unmap_no_window),
	KUNIT_CASE(mrt_test_unmap_remap_no_stale),
	KUNIT_CASE(mrt_test_read_retry_after_remove),
	KUNIT_CASE(mrt_test_read_retry_after_reshape),
	KUNIT_CASE(mrt_test_remove_deferred_zaps),
	KUNIT_CASE(mrt_test_zap_before_removal),
	KUNIT_CASE(mrt_test_work_order),
	KUNIT_CASE(mrt_test_fault_while_pending),
	KUNIT_CASE(mrt_test_free_after_grace_period),
	KUNIT_CASE(mrt_test_split_alloc_failure),
	KUNIT_CASE_PARAM(mrt_test_fault_fails, mrt_fault_fail_gen_params),
	KUNIT_CASE_PARAM(mrt_test_index_store_fails, mrt_bench_gen_params),
	KUNIT_CASE(mrt_test_register_fails),
	KUNIT_CASE(mrt_test_erase_fails),
	KUNIT_CASE(mrt_test_split_second_survivor_fails),
	KUNIT_CASE(mrt_test_mm_exit),
	KUNIT_CASE(mrt_test_nonblocking_invalidate),
	KUNIT_CASE(mrt_test_bad_init),
	KUNIT_CASE(mrt_test_bad_addresses),
	KUNIT_CASE(mrt_test_use_after_fini),
	KUNIT_CASE(mrt_test_fini_waits_for_references),
	KUNIT_CASE(mrt_test_exclusive_owner),
	KUNIT_CASE(mrt_test_two_pass_neighbour),
	KUNIT_CASE(mrt_test_1200_vmas),
	KUNIT_CASE_SLOW(mrt_test_5200_vmas),
	KUNIT_CASE_SLOW(mrt_test_fault_races_unmap),
	KUNIT_CASE_PARAM_ATTR(mrt_bench_scale, mrt_bench_scale_gen_params,
			      { .speed = KUNIT_SPEED_SLOW }),
	KUNIT_CASE_PARAM_ATTR(mrt_bench_smp, mrt_bench_gen_params,
			      { .speed = KUNIT_SPEED_SLOW }),
	KUNIT_CASE_PARAM(mrt_bench_workload, mrt_wl_gen_params),
	KUNIT_CASE_SLOW(mrt_bench_notifier_busy),
	{}
};

static int mrt_test_suite_init(struct kunit_suite *suite)
{
	WRITE_ONCE(mrt_test_hooks, &mrt_hooks);
	return 0;
}

/* Every tracker of the suite is finished: its work cannot run any more. */
static void mrt_test_suite_exit(struct kunit_suite *suite)
{
	WRITE_ONCE(mrt_test_hooks, NULL);
}

static struct kunit_suite mrt_test_suite = {
	.name = "mmu_range_tracker",
	.suite_init = mrt_test_suite_init,
	.suite_exit = mrt_test_suite_exit,
	.test_cases = mrt_test_cases,
};

kunit_test_suite(mrt_test_suite);

MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");
MODULE_DESCRIPTION("KUnit tests for mmu_range_tracker");
MODULE_LICENSE("GPL");
