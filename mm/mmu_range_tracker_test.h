/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Test seams of mm/mmu_range_tracker.c, for its KUnit suite only: stop points
 * in the deferred work and allocation sites that can be made to fail. They
 * are compiled in only with CONFIG_MMU_RANGE_TRACKER_KUNIT_TEST; otherwise
 * they cost nothing. KUnit's static stubs cannot serve here: they redirect
 * calls made by the test's own thread, and the work runs in a kworker.
 */
#ifndef _MM_MMU_RANGE_TRACKER_TEST_H
#define _MM_MMU_RANGE_TRACKER_TEST_H

#include <linux/types.h>

struct mmu_range_tracker;

/* Where the deferred work calls the point hook, in the order it passes. */
enum mrt_test_point {
	/* Before it takes the batch of dying ranges. */
	MRT_POINT_WORK_START,
	/* The batch is out of the tree, survivors are in, no lock held. */
	MRT_POINT_RESHAPED,
	/* The uncovered parts are zapped, the old notifiers still in. */
	MRT_POINT_ZAPPED,
	/* The old notifiers are removed, the references not dropped yet. */
	MRT_POINT_REMOVED,
};

/* Where the fail hook can make the tracker see an allocation failure. */
enum mrt_test_site {
	/* The range itself, from ->alloc_range or the default kzalloc. */
	MRT_SITE_ALLOC_RANGE,
	/* Maple tree nodes to store a new range. */
	MRT_SITE_TREE_STORE,
	/* Maple tree nodes to erase a dying range. */
	MRT_SITE_TREE_ERASE,
	/* mmu_interval_notifier_insert_nolock() of a new range. */
	MRT_SITE_INSERT,
	/* The range's entries in the lookup index. */
	MRT_SITE_INDEX_STORE,
	/* mmu_notifier_register() in mmu_range_tracker_init(). */
	MRT_SITE_REGISTER,
	NR_MRT_TEST_SITES
};

/**
 * struct mrt_test_hooks - What the KUnit suite plugs into the tracker
 * @point: Called by the deferred work of @t at @point, with no lock held.
 *         May sleep.
 * @fail: Return true to make the allocation at @site fail for @t. May be
 *        called under the tracker's tree lock and the mmap_lock: must not
 *        sleep on them.
 */
struct mrt_test_hooks {
	void (*point)(struct mmu_range_tracker *t, enum mrt_test_point point);
	bool (*fail)(struct mmu_range_tracker *t, enum mrt_test_site site);
};

#if IS_ENABLED(CONFIG_MMU_RANGE_TRACKER_KUNIT_TEST)
/* Set by the suite around each case, NULL otherwise. */
extern const struct mrt_test_hooks *mrt_test_hooks;
#endif

#endif /* _MM_MMU_RANGE_TRACKER_TEST_H */
