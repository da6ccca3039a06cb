// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for mmu_interval_notifier_insert_nolock(), on the test
 * thread's own mm (kunit_vm_mmap() attaches one): an insert under
 * mmap_read_lock(), an insert parked while an invalidation runs, and the
 * errors; and the end of an interval tree invalidation that a notifier of
 * the mm's list refused.
 */
#include <kunit/test.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/mmu_notifier.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

struct mni_test {
	struct mmu_interval_notifier mni;
	int invalidations;
	unsigned long last_start, last_end;
};

static bool mni_test_invalidate(struct mmu_interval_notifier *mni,
				const struct mmu_notifier_range *range,
				unsigned long cur_seq)
{
	struct mni_test *t = container_of(mni, struct mni_test, mni);

	/* No reader commits concurrently here: no lock to pair with. */
	mmu_interval_set_seq(mni, cur_seq);
	t->invalidations++;
	t->last_start = range->start;
	t->last_end = range->end;
	return true;
}

static const struct mmu_interval_notifier_ops mni_test_ops = {
	.invalidate = mni_test_invalidate,
};

/* Map @npages for the test and register the mm's interval tree. */
static unsigned long mni_test_setup(struct kunit *test, unsigned long npages)
{
	unsigned long addr;

	addr = kunit_vm_mmap(test, NULL, 0, npages * PAGE_SIZE,
			     PROT_READ | PROT_WRITE,
			     MAP_ANONYMOUS | MAP_PRIVATE, 0);
	KUNIT_ASSERT_NE_MSG(test, addr, 0, "kunit_vm_mmap failed");
	KUNIT_ASSERT_FALSE(test, IS_ERR_VALUE(addr));
	/* Registers the interval tree once; takes mmap_write_lock(). */
	KUNIT_ASSERT_EQ(test, mmu_notifier_register(NULL, current->mm), 0);
	return addr;
}

/* What a device fault handler does: insert while holding the read lock. */
static void mni_test_insert_under_read_lock(struct kunit *test)
{
	unsigned long addr = mni_test_setup(test, 8);
	struct mni_test t = { };
	unsigned long seq;
	int ret;

	mmap_read_lock(current->mm);
	ret = mmu_interval_notifier_insert_nolock(&t.mni, current->mm, addr,
						  8 * PAGE_SIZE, &mni_test_ops);
	mmap_read_unlock(current->mm);
	KUNIT_ASSERT_EQ(test, ret, 0);

	seq = mmu_interval_read_begin(&t.mni);
	KUNIT_EXPECT_FALSE(test, mmu_interval_read_retry(&t.mni, seq));
	KUNIT_EXPECT_EQ(test, vm_munmap(addr + 2 * PAGE_SIZE, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, t.invalidations, 1);
	KUNIT_EXPECT_EQ(test, t.last_start, addr + 2 * PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, t.last_end, addr + 3 * PAGE_SIZE);
	KUNIT_EXPECT_TRUE(test, mmu_interval_read_retry(&t.mni, seq));
	mmu_interval_notifier_remove(&t.mni);

	/* Removed: a later unmap reaches nobody. */
	KUNIT_EXPECT_EQ(test, vm_munmap(addr, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, t.invalidations, 1);
}

#if IS_BUILTIN(CONFIG_MMU_NOTIFIER_KUNIT_TEST)
/*
 * An insert while an invalidation runs is parked on the deferred list and
 * enters the tree when the invalidation ends (hazard 3 of
 * Documentation/mm/mmu_range_tracker.rst). Starting an invalidation needs
 * the unexported __mmu_notifier_invalidate_range_start(): built-in only.
 */
static void mni_test_insert_during_invalidation(struct kunit *test)
{
	unsigned long addr = mni_test_setup(test, 8);
	struct mmu_notifier_range range;
	struct mni_test t = { };
	unsigned long seq;
	int ret;

	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR,
				MMU_NOTIFIER_RANGE_BLOCKABLE, current->mm,
				addr + 6 * PAGE_SIZE, addr + 8 * PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	ret = mmu_interval_notifier_insert_nolock(&t.mni, current->mm, addr,
						  4 * PAGE_SIZE, &mni_test_ops);
	/* Parked: an odd sequence, and not called by this invalidation. */
	KUNIT_EXPECT_TRUE(test, t.mni.invalidate_seq & 1);
	mmu_notifier_invalidate_range_end(&range);
	KUNIT_ASSERT_EQ(test, ret, 0);
	KUNIT_EXPECT_EQ(test, t.invalidations, 0);

	/* In the tree now: read_begin does not wait, unmaps reach it. */
	seq = mmu_interval_read_begin(&t.mni);
	KUNIT_EXPECT_EQ(test, vm_munmap(addr, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, t.invalidations, 1);
	KUNIT_EXPECT_TRUE(test, mmu_interval_read_retry(&t.mni, seq));
	mmu_interval_notifier_remove(&t.mni);
}

/* A notifier of the mm's list that, like one that must sleep, refuses. */
struct mni_test_mn {
	struct mmu_notifier mn;
	int refused;
};

static int mni_test_mn_start(struct mmu_notifier *mn,
			     const struct mmu_notifier_range *range)
{
	struct mni_test_mn *m = container_of(mn, struct mni_test_mn, mn);

	if (mmu_notifier_range_blockable(range))
		return 0;
	m->refused++;
	return -EAGAIN;
}

static const struct mmu_notifier_ops mni_test_mn_ops = {
	.invalidate_range_start = mni_test_mn_start,
};

/*
 * A non-blockable invalidation (the OOM reaper's) that the interval tree's
 * notifiers took and a notifier of the list refused fails, and its caller
 * must not call invalidate_range_end(): the interval tree's part is ended
 * all the same. If it were not, the mm would stay "invalidating" for ever:
 * a notifier inserted later parked on the deferred list and never called,
 * mmu_interval_read_begin() and mmu_interval_notifier_remove() waiting.
 */
static void mni_test_nonblock_refused(struct kunit *test)
{
	unsigned long addr = mni_test_setup(test, 2);
	struct mni_test_mn m = { .mn.ops = &mni_test_mn_ops };
	struct mmu_notifier_range range;
	struct mni_test *a, *b;

	/* Not on the stack: left in the tree if the test fails. */
	a = kzalloc_obj(*a);
	b = kzalloc_obj(*b);
	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, b);
	KUNIT_ASSERT_EQ(test, mmu_notifier_register(&m.mn, current->mm), 0);
	KUNIT_ASSERT_EQ(test,
			mmu_interval_notifier_insert(&a->mni, current->mm,
						     addr, PAGE_SIZE,
						     &mni_test_ops), 0);

	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, current->mm,
				addr, addr + PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, mmu_notifier_invalidate_range_start_nonblock(&range),
			-EAGAIN);
	KUNIT_EXPECT_EQ(test, a->invalidations, 1);
	KUNIT_EXPECT_EQ(test, m.refused, 1);
	mmu_notifier_unregister(&m.mn, current->mm);

	/* Enters the tree at once only if the failed invalidation ended. */
	KUNIT_ASSERT_EQ(test,
			mmu_interval_notifier_insert(&b->mni, current->mm,
						     addr, PAGE_SIZE,
						     &mni_test_ops), 0);
	KUNIT_EXPECT_EQ(test, vm_munmap(addr, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, a->invalidations, 2);
	if (b->invalidations != 1) {
		/* Removing would wait for ever: leave both to the mm. */
		KUNIT_FAIL(test, "invalidation never ended: %d calls of a later notifier",
			   b->invalidations);
		return;
	}
	mmu_interval_notifier_remove(&a->mni);
	mmu_interval_notifier_remove(&b->mni);
	kfree(a);
	kfree(b);
}
#else
static void mni_test_insert_during_invalidation(struct kunit *test)
{
	kunit_skip(test, "needs the test built in");
}

static void mni_test_nonblock_refused(struct kunit *test)
{
	kunit_skip(test, "needs the test built in");
}
#endif

static void mni_test_insert_bad_range(struct kunit *test)
{
	unsigned long addr = mni_test_setup(test, 1);
	struct mni_test t = { };

	KUNIT_EXPECT_EQ(test,
			mmu_interval_notifier_insert_nolock(&t.mni, current->mm,
							    addr, 0,
							    &mni_test_ops),
			-EOVERFLOW);
	KUNIT_EXPECT_EQ(test,
			mmu_interval_notifier_insert_nolock(&t.mni, current->mm,
							    ULONG_MAX - PAGE_SIZE + 1,
							    2 * PAGE_SIZE,
							    &mni_test_ops),
			-EOVERFLOW);
}

static struct kunit_case mni_test_cases[] = {
	KUNIT_CASE(mni_test_insert_under_read_lock),
	KUNIT_CASE(mni_test_insert_during_invalidation),
	KUNIT_CASE(mni_test_nonblock_refused),
	KUNIT_CASE(mni_test_insert_bad_range),
	{}
};

static struct kunit_suite mni_test_suite = {
	.name = "mmu_interval_notifier",
	.test_cases = mni_test_cases,
};

kunit_test_suite(mni_test_suite);

MODULE_DESCRIPTION("KUnit tests for mmu_interval_notifier_insert_nolock()");
MODULE_LICENSE("GPL");
