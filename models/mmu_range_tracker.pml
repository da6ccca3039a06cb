/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A Promela model, for the spin model checker, of the fault / invalidate /
 * reshape protocol of mm/mmu_range_tracker.c, on top of a model of the
 * interval notifiers of mm/mmu_notifier.c (sequence numbers, inserts and
 * removals deferred while an invalidation runs) and of the CPU side (VMA
 * tree, page table, munmap with its lock downgrade, MADV_DONTNEED, exit).
 * Run it with harness/spin.sh; models/README.md says what it proves and
 * what it leaves out.
 *
 * Processes, and the C code each one mirrors:
 *   device()       lib/test_hmm_intervals.c:hmi_fault(): mmap_read_lock(),
 *                  mmu_range_tracker_fault() (lookup, else create),
 *                  mmu_interval_read_begin(), hmm_range_fault(),
 *                  mmu_range_tracker_lock(), mmu_tracked_range_read_retry(),
 *                  the commit, unlock, mmu_tracked_range_put(); or a driver
 *                  removal: lookup + mmu_range_tracker_remove_deferred();
 *   cpu_munmap()   munmap(2) of one page (do_vmi_align_munmap(),
 *                  vms_complete_munmap_vmas()), then maybe mmap(MAP_FIXED)
 *                  over the hole;
 *   cpu_dontneed() madvise(MADV_DONTNEED) of one page (zap_page_range_single());
 *                  reclaim (try_to_unmap()) looks the same to a notifier;
 *   work()         mrt_work() -> mrt_work_batch(): mrt_erase() (which may
 *                  fail: the range is kept and retried), mrt_reshape() ->
 *                  mrt_fill(), mrt_zap_uncovered(), then
 *                  mmu_interval_notifier_remove(), then the puts;
 *   fini()         mmu_range_tracker_fini();
 *   mm_exit()      the process exits: its mmput(), and the last mmput()'s
 *                  exit_mmap(): mmu_notifier_release(), unmap_vmas();
 *   monitor()      the invariants, in every reachable state.
 * mrt_invalidate() runs inside whichever process invalidates, as in the
 * kernel.
 *
 * Properties (see the monitor and the asserts):
 *  (a) the device never maps a page once the invalidation that took it
 *      from the CPU has returned (the page is freed then: gone[]);
 *  (b) no range is freed while a lookup may still use it (USE()), and no
 *      freed range is reachable from the maple tree (not even one whose
 *      erase failed: hazard 14);
 *  (c) a page that both the CPU and the device map is always under a
 *      notifier of the interval tree: no coverage gap;
 *  (d) everything terminates: no invalid end state (pan's default: fini,
 *      the work, every thread reaches its end or its idle wait), and no
 *      cycle at all (pan -l, built -DNP), so no livelock under any
 *      scheduler, weakly fair ones included. fini also checks that it
 *      leaves no range in the tree, no notifier and no device mapping.
 *
 * -DREMOVE_THEN_ZAP builds the old order of mrt_work_batch() (remove the
 * old notifiers, then zap the uncovered parts): pan must find a violation.
 * -DERASE_IGNORED builds the old erase, which went on as if a failed
 * erase had succeeded (hazard 14): pan must find a violation of (b).
 *
 * Atomicity. A sequence that holds a lock throughout is one atomic step
 * when everything it touches is under that lock or is read lock-free only
 * where the model splits the reader too (the lookup: a load, then the
 * dereference). Lock words are then not even written: `atomic { lock == 0
 * -> ... }` is "take, do, release" seen from outside.
 */

#define NP	3	/* pages 0..2: the invariants below spell out three */
#ifndef NR
#define NR	5	/* range slots: one per allocation, never reused */
#endif
#define NPG	8	/* page ids 1..7, 0 = no page */
#define NONE	255

/*
 * The scenario: one VMA over all pages, every page present. The device
 * does DEV_OPS operations, each a fault at any page or (after the first) a
 * driver removal of the range at any page; one CPU thread unmaps a page
 * (0 .. MUNMAP_LAST) and maybe maps it again, another does MADV_DONTNEED
 * at any page; then the process exits, or lives on; fini runs at any time;
 * the work's mrt_erase() fails ERASE_FAILS times at most, and any survivor
 * allocation may fail. munmap of page 2 mirrors page 0, so the default
 * leaves it out. harness/spin.sh picks DEV_OPS and ERASE_FAILS per check:
 * two device operations and a failed erase together would double its
 * largest search.
 */
#ifndef DEV_OPS
#define DEV_OPS		2
#endif
#ifndef ERASE_FAILS
#define ERASE_FAILS	1	/* mrt_erase() -ENOMEM, this many times in a run */
#endif
#ifndef MUNMAP_LAST
#define MUNMAP_LAST	1	/* munmap of page 0 .. MUNMAP_LAST */
#endif

/*
 * rcu_readers bits: who is inside rcu_read_lock() across steps. Only the
 * device's lookup is: mrt_zap_uncovered()'s walk is one step here.
 */
#define RCU_DEV		1	/* mmu_range_tracker_lookup() */

mtype = { CLEAR, UNMAP, RELEASE };

/* ---- CPU: VMA tree, page table, pages ---- */
bool vma[NP];		/* a VMA maps the page; neighbours: one VMA */
byte pte[NP];		/* page id mapped there, 0 = none */
byte next_page;		/* id of the next page a CPU fault allocates */
bool gone[NPG];		/* freed: the invalidation that unmapped it returned */

/* ---- the device's page table (test_hmm_intervals: h->pt) ---- */
byte dev[NP];		/* page id the device maps there, 0 = none */

/* ---- mm->mmap_lock, an rwsem: a waiting writer blocks new readers ---- */
byte mm_rd;
bool mm_wr;
byte mm_wwait;

/* ---- mm->mm_users ---- */
byte mm_users;
byte cpu_done;		/* CPU threads finished: the process may exit */

/* ---- mm->notifier_subscriptions ---- */
byte inv_seq;		/* invalidate_seq: odd while invalidating */
byte nactive;		/* active_invalidate_ranges */
byte watch[NP];		/* notifiers in the interval tree over the page */

/* ---- struct mmu_tracked_range, with its mmu_interval_notifier ---- */
#define R_UNUSED	0
#define R_ALLOC		1
#define R_FREED		2

typedef range_t {
	byte state;		/* R_* */
	byte start;		/* pages [start, end) */
	byte end;
	byte refs;		/* refs */
	bool dying;		/* MRT_DYING */
	bool reshape;		/* MRT_RESHAPE */
	bool drop;		/* MRT_DROP */
	bool intree;		/* notifier in the interval tree */
	bool deferred;		/* on subscriptions->deferred_list */
	byte seq;		/* notifier.invalidate_seq */
	bool rcu_pending;	/* call_rcu() done, callback not run */
	byte rcu_wait;		/* readers its grace period waits for */
};
range_t rg[NR];
byte nalloc;		/* slots handed out */

/* ---- struct mmu_range_tracker ---- */
byte mt[NP] = NONE;	/* ranges: the maple tree, page -> range */
bool dead;		/* dead */
byte nr_ranges;		/* nr_ranges */
/*
 * The update lock (*lock). Every section under it is one atomic step
 * here, so it is never seen taken: `upd == 0 ->' only marks where C takes
 * it. tree_lock is held across steps by the work.
 */
byte upd;
byte tlock;		/* tree_lock: 0 or holder's _pid + 1 */
byte pend[NR];		/* pending (FIFO) */
byte npend;
bool work_pending;	/* WORK_STRUCT_PENDING of work */
bool work_running;
byte flush_left;	/* executions fini's flush_work() still waits for */
byte rcu_readers;	/* RCU_* bits */
bool fini_done;
byte erase_fails;	/* mrt_erase() failures so far (ERASE_FAILS at most) */

/* A range pointer is dereferenced: it must not be freed (property (b)). */
#define USE(r)		assert(rg[r].state == R_ALLOC)	/* (b) */
/* A live range holds page p in the maple tree. */
#define LIVE_AT(p)	(mt[p] != NONE && !rg[mt[p]].dying)

/* ==== locks and lifetimes ==== */

inline mmap_read_unlock()
{
	mm_rd--
}

inline mmget_not_zero(ok)
{
	if
	:: mm_users > 0 -> mm_users++; ok = true
	:: else -> ok = false
	fi
}

/* Put r's notifier in or out of the interval tree; keep watch[] in step. */
inline set_intree(r, v)
{
	rg[r].intree = v;
	i = rg[r].start;
	do
	:: i < rg[r].end && v -> watch[i]++; i++
	:: i < rg[r].end && !v -> watch[i]--; i++
	:: else -> break
	od;
	i = 0
}

/* mrt_free_range(), from the RCU callback mrt_free_range_rcu() */
inline free_range(r)
{
	USE(r);
	/* (b) its notifier is gone, no reference left (or never published) */
	assert(!rg[r].intree && !rg[r].deferred && rg[r].refs == 0 ||
	       rg[r].seq == 0);
	rg[r].state = R_FREED;
	/* forget the rest: states that differ only there are one */
	rg[r].start = 0;
	rg[r].end = 0;
	rg[r].dying = false;
	rg[r].reshape = false;
	rg[r].drop = false;
	rg[r].seq = 0;
	rg[r].rcu_pending = false;
	rg[r].rcu_wait = 0;
	nr_ranges--;
	printf("MRT range %d freed\n", r)
}

inline rcu_read_lock(rbit)
{
	rcu_readers = rcu_readers | rbit
}

/* The grace periods of pending callbacks stop waiting for this reader. */
inline rcu_read_unlock(rbit)
{
	rcu_readers = rcu_readers - rbit;
	i = 0;
	do
	:: i < NR ->
		if
		:: rg[i].rcu_pending && (rg[i].rcu_wait & rbit) ->
			rg[i].rcu_wait = rg[i].rcu_wait - rbit;
			if
			:: rg[i].rcu_wait == 0 -> free_range(i)
			:: else
			fi
		:: else
		fi;
		i++
	:: else -> break
	od;
	i = 0
}

/*
 * mmu_tracked_range_put(): the last reference frees the range after a
 * grace period, that is once every reader now inside rcu_read_lock() left.
 * The callback runs as early as RCU allows (the worst case for property
 * (b); later only delays fini).
 */
inline range_put(r)
{
	USE(r);
	assert(rg[r].refs > 0);		/* (b) no put without a get */
	rg[r].refs--;
	if
	:: rg[r].refs == 0 ->
		if
		:: rcu_readers == 0 -> free_range(r)
		:: else ->
			rg[r].rcu_pending = true;
			rg[r].rcu_wait = rcu_readers
		fi
	:: else
	fi
}

/*
 * mrt_alloc_range(). may_fail: -ENOMEM at will (survivors); otherwise only
 * when every slot is used.
 */
inline alloc_range(r, may_fail)
{
	if
	:: nalloc < NR ->
		r = nalloc;
		nalloc++;
		rg[r].state = R_ALLOC;
		rg[r].refs = 1;
		nr_ranges++
	:: nalloc >= NR -> r = NONE
	:: may_fail -> r = NONE
	fi
}

/* mrt_queue_dying(): test_and_set_bit(), list_add_tail(), queue_work(). */
inline queue_dying(r)
{
	if
	:: !rg[r].dying ->
		rg[r].dying = true;
		pend[npend] = r;
		npend++;
		work_pending = true
	:: else
	fi
}

/* ==== interval notifiers, mm/mmu_notifier.c ==== */

/*
 * __mmu_interval_notifier_insert(): while an invalidation runs the tree is
 * frozen, the insert waits on the deferred list for mn_itree_inv_end(), and
 * the sequence starts at the current odd invalidate_seq, so read_begin()
 * sleeps until then (hazard 3). Otherwise it goes in at once with an odd
 * sequence that is not the current one.
 */
inline notifier_insert(r)
{
	if
	:: nactive > 0 && (inv_seq & 1) ->
		rg[r].deferred = true;
		rg[r].seq = inv_seq
	:: nactive > 0 && !(inv_seq & 1) ->
		inv_seq = inv_seq | 1;
		set_intree(r, true);
		rg[r].seq = inv_seq
	:: nactive == 0 ->
		rg[r].seq = inv_seq - 1;
		set_intree(r, true)
	fi
}

/*
 * mmu_interval_notifier_remove(): while invalidating, queue the removal and
 * sleep until mn_itree_inv_end() did it. Once it returns no callback runs
 * and none will (hazard 1: the caller holds no lock a callback takes).
 */
inline notifier_remove(r)
{
	atomic {
		USE(r);
		if
		:: (inv_seq & 1) && !rg[r].intree ->
			/* its insert is still deferred: hlist_del() */
			assert(rg[r].deferred);
			rg[r].deferred = false
		:: (inv_seq & 1) && rg[r].intree ->
			rg[r].deferred = true;
			rseq = inv_seq
		:: else ->
			assert(rg[r].intree);
			set_intree(r, false)
		fi;
		if
		:: rseq == 0 -> printf("MRT work: notifier of range %d removed\n", r)
		:: else -> printf("MRT work: removal of range %d's notifier waits for the invalidation\n", r)
		fi
	}
	if
	:: rseq != 0 -> (inv_seq != rseq); rseq = 0
	:: else
	fi
}

/*
 * mrt_invalidate() for notifier k over [s, e): with the update lock,
 * mmu_interval_set_seq() first (a reader that checks after we unlock sees
 * it; one that committed before we locked is zapped now), the driver's zap
 * of the intersection (hmi_invalidate()), then for UNMAP and RELEASE the
 * dying mark, still under the lock: every reader that has not committed
 * yet will find read_retry() stale, even once the notifier is gone
 * (hazard 8). The reshape itself is deferred: no allocation here (6).
 */
inline mrt_invalidate_locked(s, e, ev)
{
	USE(k);
	printf("MRT   %e [%d,%d): callback of range %d\n", ev, s, e, k);
	rg[k].seq = cur;
	j = (s > rg[k].start -> s : rg[k].start);
	do
	:: j < e && j < rg[k].end -> dev[j] = 0; j++
	:: else -> break
	od;
	j = 0;
	if
	:: ev == UNMAP || ev == RELEASE ->
		rg[k].reshape = true;
		queue_dying(k)
	:: else
	fi
}

/* mn_itree_inv_next(): k = the next notifier in the tree over [s, e). */
#define OVERLAPS(k, s, e)	(rg[k].intree && rg[k].start < (e) && (s) < rg[k].end)
inline next_notifier(s, e)
{
	do
	:: k < NR && !OVERLAPS(k, s, e) -> k++
	:: else -> break
	od
}

/*
 * mmu_notifier_invalidate_range_start() -> mn_itree_invalidate():
 * mn_itree_inv_start_range() counts the range active and, if a notifier of
 * the tree intersects [s, e), makes invalidate_seq odd (the tree is frozen
 * from then on, until the last inv_end); then the callback of each of
 * them, one at a time, each taking the update lock. It starts once `when'
 * holds.
 */
inline inv_range_start(when, s, e, ev)
{
	atomic {
		when ->
		nactive++;
		k = 0;
		next_notifier(s, e);
		if
		:: k < NR -> inv_seq = inv_seq | 1
		:: else
		fi;
		cur = inv_seq
	}
	do
	:: k < NR ->
		atomic {
			upd == 0 ->
			mrt_invalidate_locked(s, e, ev);
			k++;
			next_notifier(s, e)
		}
	:: else -> break
	od;
	k = 0;
	cur = 0
}

/*
 * mmu_notifier_invalidate_range_end() -> mn_itree_inv_end(): the last one
 * makes invalidate_seq even and applies the deferred inserts and removals,
 * under the same spinlock; sleepers in read_begin() and remove() then wake
 * (their guards on inv_seq).
 */
inline inv_range_end()
{
	nactive--;
	if
	:: nactive == 0 && (inv_seq & 1) ->
		inv_seq++;
		k = 0;
		do
		:: k < NR && rg[k].deferred && rg[k].intree ->
			rg[k].deferred = false;
			set_intree(k, false);
			k++
		:: k < NR && rg[k].deferred && !rg[k].intree ->
			rg[k].deferred = false;
			set_intree(k, true);
			k++
		:: k < NR && !rg[k].deferred -> k++
		:: else -> break
		od;
		k = 0
	:: else
	fi
}

/*
 * Page x that the CPU mapped at page p is freed (tlb_finish_mmu(), after
 * the invalidation returned): the device must not map it (property (a)).
 */
inline free_page(p, x)
{
	if
	:: x != 0 ->
		gone[x] = true;
		assert(dev[p] != x)	/* (a) the device maps the freed page */
	:: else
	fi;
	x = 0
}

/* ==== the tracker, mm/mmu_range_tracker.c ==== */

/*
 * mrt_publish(r, [s, e)) under tree_lock: insert the notifier first, then
 * store the range over slots that only dying ranges held (mrt_clip() and
 * mrt_fill() keep clear of live ones).
 */
inline publish(r, s, e)
{
	rg[r].start = s;
	rg[r].end = e;
	notifier_insert(r);
	i = s;
	do
	:: i < e ->
		assert(!LIVE_AT(i));	/* live ranges never overlap */
		mt[i] = r;
		i++
	:: else -> break
	od;
	i = 0
}

/*
 * mmu_range_tracker_lookup(), second half: mrt_get_live() on what
 * mtree_load() returned under rcu_read_lock(), then rcu_read_unlock().
 * (Its dying test, refcount_inc_not_zero() and second dying test are one
 * step here: a reader that lost that race gets a dying range and then a
 * stale read_retry(), which the model covers anyway.)
 */
inline get_live_rcu_unlock(r)
{
	if
	:: r != NONE ->
		USE(r);
		if
		:: rg[r].dying || rg[r].refs == 0 -> r = NONE
		:: else -> rg[r].refs++
		fi
	:: else
	fi;
	rcu_read_unlock(RCU_DEV)
}

/*
 * mrt_zap_uncovered(r): the driver's ->invalidate over every part of r
 * that no live range covers, found by a gap walk under RCU (one step, so
 * no range can be freed under it). The caller holds the update lock.
 */
inline zap_uncovered(r)
{
	USE(r);
	printf("MRT work: zap of the pages of range %d no live range covers\n", r);
	p = rg[r].start;
	do
	:: p < rg[r].end ->
		if
		:: mt[p] != NONE -> USE(mt[p])
		:: else
		fi;
		if
		:: !LIVE_AT(p) -> dev[p] = 0
		:: else
		fi;
		p++
	:: else -> break
	od;
	p = 0
}

/* ==== processes ==== */

/*
 * The device (hmi_fault()), DEV_OPS times at any page: a fault, or a driver
 * removal (mmu_range_tracker_remove_deferred()) of the range there.
 */
proctype device()
{
	byte n, addr, r, nw, seq, val, s, e, i;
	bool ok, busy;

next_op:
	do
	:: n < DEV_OPS ->
		atomic {
			n++;
			select(addr : 0 .. NP - 1);
			if
			:: true ->
				/* a fault: hmi_fault() holds mm_users throughout */
				mmget_not_zero(ok);
				if
				:: ok -> ok = false; goto retry
				:: else -> addr = 0; goto next_op
				fi
			:: n > 1
			fi;
			/* a removal: lookup + remove_deferred() + put */
			if
			:: dead -> addr = 0; goto next_op
			:: else
			fi;
			rcu_read_lock(RCU_DEV);
			r = mt[addr]
		}
		atomic {
			get_live_rcu_unlock(r);
			if
			:: r != NONE ->
				printf("MRT device: remove_deferred(range %d)\n", r);
				rg[r].drop = true;
				queue_dying(r);
				range_put(r)
			:: else
			fi;
			r = NONE;
			addr = 0;
			goto next_op
		}

retry:
		/*
		 * mmap_read_lock(), then mmu_range_tracker_fault(): the dead
		 * test, then the lock-free lookup (mtree_load() under RCU...
		 */
		atomic {
			!mm_wr && mm_wwait == 0 ->
			mm_rd++;
			if
			:: dead -> goto fault_err		/* -ENODEV */
			:: else
			fi;
			rcu_read_lock(RCU_DEV);
			r = mt[addr]
		}
		/* ... then mrt_get_live()) */
		atomic {
			get_live_rcu_unlock(r);
			if
			:: r != NONE ->
				printf("MRT device: fault at page %d finds range %d\n", addr, r);
				goto got_range
			:: else
			fi;
			/*
			 * vma_lookup(): the VMA around addr (stable: we hold
			 * the mmap_lock), then mrt_alloc_range() outside every
			 * lock (hazard 6). mmget_not_zero() succeeds: we hold
			 * mm_users.
			 */
			if
			:: !vma[addr] -> goto fault_err	/* -EFAULT */
			:: else
			fi;
			s = addr;
			do
			:: s > 0 && vma[s - 1] -> s--
			:: else -> break
			od;
			e = addr + 1;
			do
			:: e < NP && vma[e] -> e++
			:: else -> break
			od;
			alloc_range(nw, false);
			if
			:: nw == NONE -> goto fault_err	/* -ENOMEM */
			:: else
			fi
		}
		/* Under tree_lock: fini may have run, another fault may have won. */
		atomic {
			tlock == 0 ->
			r = mt[addr];
			if
			:: dead ->
				free_range(nw);		/* never published */
				r = NONE
			:: !dead && r != NONE && !rg[r].dying && rg[r].refs > 0 ->
				rg[r].refs++;
				free_range(nw)
			:: else ->
				/* mrt_clip(): the gap between live ranges around addr */
				r = addr;
				do
				:: r > s && !LIVE_AT(r - 1) -> r--
				:: else -> break
				od;
				s = r;
				r = addr + 1;
				do
				:: r < e && !LIVE_AT(r) -> r++
				:: else -> break
				od;
				e = r;
				publish(nw, s, e);
				rg[nw].refs = 2;	/* the tree's and ours */
				r = nw;
				printf("MRT device: fault at page %d creates range %d over [%d,%d)\n",
				       addr, r, rg[r].start, rg[r].end)
			fi;
			nw = 0; s = 0; e = 0;
			if
			:: r == NONE -> goto fault_err
			:: else
			fi
		}
got_range:
		/* mmu_interval_read_begin() */
		atomic {
			USE(r);
			seq = rg[r].seq;
			busy = (seq == inv_seq)
		}
		if
		:: busy -> (inv_seq != seq); busy = false
		:: else
		fi;
		/*
		 * hmm_range_fault() with HMM_PFN_REQ_FAULT: -EFAULT without a
		 * VMA (a downgraded munmap already removed it), a CPU fault of
		 * a fresh page into an empty entry, else the entry; then
		 * mmap_read_unlock().
		 */
		atomic {
			if
			:: vma[addr] && pte[addr] == 0 ->
				assert(next_page < NPG);	/* model bound */
				pte[addr] = next_page;
				next_page++
			:: else
			fi;
			val = (vma[addr] -> pte[addr] : 0);
			mmap_read_unlock();
			if
			:: val == 0 ->
				range_put(r);
				mm_users--;		/* mmput() */
				r = NONE; seq = 0;
				addr = 0;
				goto next_op
			:: else
			fi
		}
		/*
		 * Update lock, read_retry(), commit (hmi_commit()), unlock, put,
		 * mmput(); or, stale, unlock, put and again.
		 */
		atomic {
			upd == 0 ->
			USE(r);
			if
			:: rg[r].dying || rg[r].seq != seq ->
				printf("MRT device: read through range %d stale, again\n", r);
				range_put(r);
				r = NONE; seq = 0; val = 0;
				goto retry
			:: else
			fi;
			assert(!gone[val]);		/* property (a) */
			dev[addr] = val;
			printf("MRT device: maps page %d -> page id %d, checked through range %d\n",
			       addr, val, r);
			range_put(r);
			mm_users--;
			r = NONE; seq = 0; val = 0;
			addr = 0;
			goto next_op
		}
fault_err:
		atomic {
			r = NONE; nw = 0; s = 0; e = 0;
			mmap_read_unlock();
			mm_users--;
			addr = 0;
			goto next_op
		}
	:: else -> break
	od
}

/*
 * munmap(2) of page m: under the write lock the VMA tree gets the hole,
 * then mmap_write_downgrade() (vms_complete_munmap_vmas()) and only then
 * unmap_vmas(): the UNMAP invalidation, the page table cleared, the end of
 * the invalidation, the page freed. Faults run again meanwhile and see the
 * hole before any notifier heard of it (hazard 5). Then maybe
 * mmap(MAP_FIXED) over the hole: a new VMA, which a later fault populates
 * with a fresh page.
 */
proctype cpu_munmap()
{
	byte m, x, i, j, k, cur;

	atomic {
		select(m : 0 .. MUNMAP_LAST);
		mm_wwait++
	}
	atomic {
		!mm_wr && mm_rd == 0 ->
		mm_wwait--;
		vma[m] = false;
		printf("MRT munmap: page %d out of the VMA tree, lock downgraded\n", m);
		mm_rd++			/* write lock, hole, downgrade */
	}
	inv_range_start(true, m, m + 1, UNMAP);
	atomic {
		x = pte[m];
		pte[m] = 0;
		inv_range_end();
		printf("MRT munmap: page %d cleared, invalidation over, page id %d freed\n", m, x);
		free_page(m, x);
		mmap_read_unlock()
	}
	if
	:: true ->
		mm_wwait++;
		atomic {
			!mm_wr && mm_rd == 0 ->
			mm_wwait--;
			vma[m] = true;
			printf("MRT mmap: page %d mapped again\n", m);
			cpu_done++
		}
	:: true -> cpu_done++
	fi;
	m = 0
}

/*
 * madvise(MADV_DONTNEED) of page d, under the read lock: CLEAR
 * invalidation, page table cleared, page freed. The VMA stays, so the
 * tracker has nothing to reshape.
 */
proctype cpu_dontneed()
{
	byte d, x, i, j, k, cur;

	atomic {
		select(d : 0 .. NP - 1);
		!mm_wr && mm_wwait == 0 ->
		mm_rd++;
		if
		:: !vma[d] -> mm_rd--; cpu_done++; goto out	/* -ENOMEM */
		:: else
		fi
	}
	inv_range_start(true, d, d + 1, CLEAR);
	atomic {
		x = pte[d];
		pte[d] = 0;
		inv_range_end();
		printf("MRT MADV_DONTNEED: page %d cleared, invalidation over, page id %d freed\n", d, x);
		free_page(d, x);
		mmap_read_unlock();
		cpu_done++
	}
out:
	d = 0
}

/*
 * mrt_work() -> mrt_work_batch(): take the pending ranges; under
 * mmap_read_lock() (with mm_users: inserting needs them, hazard 2) and
 * tree_lock, erase each from the tree (mrt_erase()) and, for a reshape,
 * insert survivors over its parts that a VMA still maps and no live range
 * covers (mrt_reshape() -> mrt_fill()); then zap the uncovered parts under
 * the update lock (mrt_zap_uncovered()); then remove the old notifiers;
 * then mmput() and drop the tracker's references. A range whose erase found
 * no memory (hazard 14) is kept, dying, in the tree and watched by its
 * notifier, skips this pass's reshape, zap, removal and put, and goes
 * through mrt_work_batch() again after the msleep(): mrt_work()'s retry
 * loop, in the same execution of the work (fini's flush_work() waits for
 * it).
 */
#define RETRY(b)	(retry & (1 << (b)))	/* batch[b] is on the retry list */
proctype work()
{
	byte batch[NR];
	byte nb, b, r, nw, p, ge, i, k, rseq, nk;
	byte retry;	/* bit b: batch[b]'s erase failed, on the retry list */
	bool have_mm;

end_idle:
	do
	:: atomic {
		work_pending ->
		work_pending = false;
		work_running = true;
		/* list_splice_init(&t->pending, &batch) */
		do
		:: nb < npend -> batch[nb] = pend[nb]; pend[nb] = 0; nb++
		:: else -> break
		od;
		npend = 0;
		if
		:: nb == 0 -> goto done
		:: else
		fi;
		/*
		 * mrt_work_batch(): mmget_not_zero(); an exiting mm gets no
		 * survivors, RELEASE zapped it all.
		 */
		mmget_not_zero(have_mm)
	   }
pass:
		/*
		 * Under tree_lock, one range at a time: mrt_erase(), then
		 * mrt_reshape() -> mrt_fill(): a survivor per run of pages of r
		 * that a VMA maps and no live range covers, its notifier in
		 * *before* r's goes. A failed allocation leaves the run
		 * uncovered: the zap below handles it.
		 */
		do
		:: b < nb ->
			atomic {
				/*
				 * The first range takes mmap_read_lock() (if
				 * have_mm) and tree_lock: nobody else holds
				 * tree_lock across steps, so taking both at once
				 * changes nothing.
				 */
				(b > 0 || ((!have_mm || (!mm_wr && mm_wwait == 0)) && tlock == 0)) ->
				if
				:: b == 0 && have_mm -> mm_rd++
				:: else
				fi;
				tlock = _pid + 1;
				r = batch[b];
				USE(r);
				/*
				 * mrt_erase(): every slot still holding r (a
				 * fault may have taken some). mas_preallocate()
				 * may fail at any of them, ERASE_FAILS times in
				 * all: -ENOMEM, the slots before it erased, r
				 * moves to the retry list. -DERASE_IGNORED
				 * builds the old code instead, whose erase
				 * (6.12's mas_erase()) returned as if done.
				 */
				p = rg[r].start;
				do
				:: p < rg[r].end && mt[p] == r ->
					if
					:: erase_fails < ERASE_FAILS ->
						erase_fails++;
#ifndef ERASE_IGNORED
						retry = retry | (1 << b);
						printf("MRT work: no memory to erase range %d at page %d, retry later\n", r, p);
#else
						printf("MRT work: no memory to erase range %d at page %d, ignored\n", r, p);
#endif
						break
					:: true -> mt[p] = NONE; p++
					fi
				:: p < rg[r].end && mt[p] != r -> p++
				:: else -> break
				od;
				if
				:: p >= rg[r].end -> printf("MRT work: range %d out of the tree\n", r)
				:: else
				fi;
				if
				:: !RETRY(b) && have_mm && !dead && rg[r].reshape && !rg[r].drop ->
					p = rg[r].start;
					do
					:: p < rg[r].end && vma[p] && !LIVE_AT(p) ->
						ge = p + 1;
						do
						:: ge < rg[r].end && vma[ge] && !LIVE_AT(ge) -> ge++
						:: else -> break
						od;
						alloc_range(nw, true);
						if
						:: nw != NONE ->
							publish(nw, p, ge);
							printf("MRT work: survivor range %d over [%d,%d)\n", nw, p, ge)
						:: else ->
							printf("MRT work: no memory for a survivor over [%d,%d)\n", p, ge)
						fi;
						p = ge;
						nw = 0; ge = 0
					:: p < rg[r].end && !(vma[p] && !LIVE_AT(p)) -> p++
					:: else -> break
					od
				:: else
				fi;
				p = 0; r = 0;
				b++;
				if
				:: b == nb ->
					b = 0;
					tlock = 0;
					if
					:: have_mm -> mmap_read_unlock()
					:: else
					fi;
					break
				:: else
				fi
			}
		od;
#ifndef REMOVE_THEN_ZAP
		/*
		 * Zap, then remove (hazard 13). Until the zap, the uncovered
		 * parts may hold device mappings committed through the old
		 * range (driver removal, failed allocation, exit, a VMA gone
		 * before its invalidation reached us), and only the old
		 * notifier still delivers their invalidations. Dying, the old
		 * range commits nothing after the zap released the lock.
		 */
		atomic {
			upd == 0 ->
			do
			:: b < nb && !RETRY(b) -> zap_uncovered(batch[b]); b++
			:: b < nb && RETRY(b) -> b++
			:: else -> break
			od;
			b = 0
		}
		/* Removal sleeps on running invalidations: no lock held (1). */
		do
		:: b < nb && !RETRY(b) -> notifier_remove(batch[b]); b++
		:: b < nb && RETRY(b) -> b++
		:: else -> break
		od;
#else
		/*
		 * The old order: the uncovered parts are watched by nothing
		 * between the removal and the zap.
		 */
		do
		:: b < nb && !RETRY(b) -> notifier_remove(batch[b]); b++
		:: b < nb && RETRY(b) -> b++
		:: else -> break
		od;
		atomic {
			upd == 0 ->
			b = 0;
			do
			:: b < nb && !RETRY(b) -> zap_uncovered(batch[b]); b++
			:: b < nb && RETRY(b) -> b++
			:: else -> break
			od
		}
#endif
		/*
		 * mmput(), then the tracker's references (the frees wait for
		 * RCU); the ranges of the retry list stay, moved to the front.
		 */
		atomic {
			if
			:: have_mm -> mm_users--
			:: else
			fi;
			have_mm = false;
			b = 0;
			do
			:: b < nb && RETRY(b) -> batch[nk] = batch[b]; nk++; b++
			:: b < nb && !RETRY(b) -> range_put(batch[b]); b++
			:: else -> break
			od;
			b = nk;
			do
			:: b < nb -> batch[b] = 0; b++
			:: else -> break
			od;
			b = 0;
			nb = nk;
			nk = 0;
			retry = 0;
			if
			:: nb > 0 -> goto again
			:: else
			fi;
done:
			work_running = false;
			if
			:: flush_left > 0 -> flush_left--
			:: else
			fi
		}
	od;
again:
	/*
	 * msleep(MRT_ERASE_RETRY_MS) with no lock held, then
	 * mrt_work_batch() on the retry list: mmget_not_zero() again.
	 */
	atomic {
		printf("MRT work: erase retry\n");
		mmget_not_zero(have_mm);
		goto pass
	}
}

/*
 * mmu_range_tracker_fini(): under tree_lock, dead and every range of the
 * tree dying for a drop (no fault or reshape creates one after); then
 * flush_work(); then wait for every range to be freed (references and RCU
 * callbacks); then the tree must be empty and no notifier left.
 */
proctype fini()
{
	byte p;

	atomic {
		tlock == 0 ->
		dead = true;
		printf("MRT fini: tracker dead, every range in the tree dropped\n");
		do
		:: p < NP && mt[p] != NONE ->
			USE(mt[p]);
			rg[mt[p]].drop = true;
			queue_dying(mt[p]);
			p++
		:: p < NP && mt[p] == NONE -> p++
		:: else -> break
		od;
		p = 0;
		/*
		 * flush_work(): the execution running now, if any, and the
		 * one queued now, if any, must end.
		 */
		flush_left = work_running + work_pending
	}
	(flush_left == 0);
	/* wait_var_event(&t->nr_ranges, !atomic_read(&t->nr_ranges)) */
	atomic {
		nr_ranges == 0 && tlock == 0 ->
		do
		:: p < NP ->
			assert(mt[p] == NONE);	/* the tree is empty */
			assert(dev[p] == 0);	/* every mapping zapped */
			p++
		:: else -> break
		od;
		p = 0;
		do
		:: p < NR ->
			assert(!rg[p].intree && !rg[p].deferred); /* no notifier */
			p++
		:: else -> break
		od;
		p = 0;
		printf("MRT fini: done\n");
		fini_done = true
	}
}

/*
 * The process exits once its CPU threads are done, or lives on past the
 * driver's fini (then fini must not depend on the exit): its mmput(). The last
 * mmput() (device, work, or this one) runs exit_mmap(): here, once
 * mm_users is 0. mmu_notifier_release() is one RELEASE invalidation over
 * everything; unmap_vmas() under the read lock is an UNMAP one, with the
 * page tables cleared and the pages freed.
 */
proctype mm_exit()
{
	byte p, x, i, j, k, cur;
	byte oldpg[NP];

	atomic {
		cpu_done == 2 ->
		if
		:: mm_users--
		:: goto lives_on	/* the process outlives the tracker */
		fi
	}
	inv_range_start(mm_users == 0, 0, NP, RELEASE);
	atomic {
		inv_range_end();
		printf("MRT exit_mmap: RELEASE over\n");
		!mm_wr && mm_wwait == 0 -> mm_rd++
	}
	inv_range_start(true, 0, NP, UNMAP);
	atomic {
		do
		:: p < NP -> oldpg[p] = pte[p]; pte[p] = 0; p++
		:: else -> break
		od;
		p = 0;
		inv_range_end();
		printf("MRT exit_mmap: page tables cleared, invalidation over, pages freed\n");
		do
		:: p < NP -> free_page(p, oldpg[p]); p++
		:: else -> break
		od;
		p = 0;
		mmap_read_unlock()
	}
	/*
	 * The VMAs go next, under the write lock: nobody looks at them any
	 * more (no mm_users: no fault, no reshape), so that is left out.
	 */
lives_on:
	skip
}

/*
 * The invariants, checked in every reachable state: this process can move
 * only in a state that breaks one, and then fails the assert naming it.
 */
#define INV_A(p)	(dev[p] == 0 || !gone[dev[p]])
#define INV_B(p)	(mt[p] == NONE || rg[mt[p]].state == R_ALLOC)
#define INV_C(p)	(dev[p] == 0 || dev[p] != pte[p] || watch[p] > 0)
#define PROP_A		(INV_A(0) && INV_A(1) && INV_A(2))
#define PROP_B		(INV_B(0) && INV_B(1) && INV_B(2))
#ifndef NO_PROP_C
#define PROP_C		(INV_C(0) && INV_C(1) && INV_C(2))
#else
#define PROP_C		true	/* -DNO_PROP_C: find a trail for (a) alone */
#endif

active proctype monitor()
{
end:
	atomic {
		!(PROP_A && PROP_B && PROP_C) ->
		assert(PROP_A);		/* (a) the device maps a freed page */
		assert(PROP_B);		/* (b) a freed range in the tree */
		assert(PROP_C)		/* (c) a mapped page watched by nothing */
	}
}

init
{
	byte p;

	atomic {
		do
		:: p < NP ->
			vma[p] = true;
			pte[p] = p + 1;
			p++
		:: else -> break
		od;
		p = 0;
		next_page = NP + 1;
		inv_seq = 2;		/* __mmu_notifier_register() */
		mm_users = 1;		/* the process */
		run device();
		run cpu_munmap();
		run cpu_dontneed();
		run work();
#ifndef NO_FINI
		run fini();
#endif
#ifndef NO_EXIT
		run mm_exit()
#endif
	}
}
