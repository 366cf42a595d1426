/* blockrelay — retiring durable records and clearing scoreboard bits.
 *
 * A bit is set before the write that needs it (I1, group.c).  It may be
 * cleared only when (I2, br_clear_rule):
 *
 *   C1. the peer's durable watermark is at or past the region's last write
 *       (last_seq[region] <= durable), so nothing newer is in flight;
 *   C2. the region is not in the peer's out-of-sync set (a live write that
 *       covered part of a region does not make the whole region in sync;
 *       only its durable RESYNC record does, and only one read after the
 *       region's last local write failure, and not a HASH of it that the
 *       peer reported as differing: br_resync_clears);
 *   C3. no writer is between marking the region and writing it locally
 *       (the region's stripe can be trylocked);
 *   C4. the region has not been written for the activity window
 *       (settings activity-window);
 *   C5. this node's own copy of the region is durable: the last local
 *       write of it completed before a local sync that has finished
 *       (sync generations, group.c br__volume_sync).  Without C5 a power
 *       cut could leave the peer newer than this copy with no bit set.
 *
 * Fails C1 or C2: KEEP (the bit stays; a later record brings the region
 * back here).  Passes C1 and C2 but not C3, C4 or C5: HOLD (the region is
 * in sync with the peer but its bit is kept for now; remembered in a
 * per-peer bitmap and looked at again by br__bits_scan every
 * BR_CLEAR_SCAN_MS; a region held by C5 alone asks for a local sync,
 * br_clear_wants_sync and br__bits_sync_tick).  Held regions are in sync with the peer, so status
 * does not count them as dirty.  A new write to a region drops it from
 * every held set (br__bits_note_write).
 *
 * C4 is the activity window (DRBD's activity log): a region being
 * rewritten keeps its bit, so the next write to it finds the bit set and
 * durable and needs no msync.  The price is only that, after a crash,
 * regions written within the window are resynced as well.
 *
 * Everything here runs with the group lock held: on the loop thread,
 * except br__bits_note_write and br__bits_mark_out_of_sync, which writers
 * call from the write path, and br__bits_note_written (stripes held, no
 * group lock).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define SYNC_SPACING_MS 1000      /* at most one C5 sync a second a volume */

enum br_clear
br_clear_rule (const struct br_clear_in *in)
{
  if (in->last_seq > in->durable || in->out_of_sync)
    return BR_CLEAR_KEEP;                               /* C1, C2 */
  if (in->stripe_busy)
    return BR_CLEAR_HOLD;                               /* C3 */
  if (!in->no_window && in->age_ms < in->window_ms)
    return BR_CLEAR_HOLD;                               /* C4 */
  if (!in->local_durable)
    return BR_CLEAR_HOLD;                               /* C5 */
  return BR_CLEAR_NOW;
}

bool
br_clear_wants_sync (const struct br_clear_in *in)
{
  struct br_clear_in durable = *in;

  durable.local_durable = true;
  return !in->local_durable && br_clear_rule (&durable) == BR_CLEAR_NOW;
}

bool
br_resync_clears (uint64_t rec_seq, uint64_t fail_seq, bool differs)
{
  return !differs && rec_seq > fail_seq;
}

uint32_t
br__now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC_COARSE, &ts);
  return (uint32_t) ((uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

int
br__bits_init (struct br_peer *p)
{
  struct br_group *g = p->g;

  p->held = calloc (g->n_vols, sizeof *p->held);
  p->n_held = calloc (g->n_vols, sizeof *p->n_held);
  if (p->held == NULL || p->n_held == NULL)
    return -1;
  for (size_t i = 0; i < g->n_vols; i++) {
    p->held[i] = calloc ((g->vols[i]->nregions + 63) / 64, 8);
    if (p->held[i] == NULL)
      return -1;
  }
  return 0;
}

void
br__bits_free (struct br_peer *p)
{
  if (p->held)
    for (size_t i = 0; i < p->g->n_vols; i++)
      free (p->held[i]);
  free (p->held);
  free (p->n_held);
}

static bool
bit_test (uint64_t *const *set, uint32_t vol, uint64_t rg)
{
  return (set[vol][rg / 64] >> (rg % 64)) & 1;
}

static void
held_set (struct br_peer *p, uint32_t vol, uint64_t rg)
{
  if (!bit_test (p->held, vol, rg)) {
    p->held[vol][rg / 64] |= UINT64_C (1) << (rg % 64);
    p->n_held[vol]++;
  }
}

static void
held_clear (struct br_peer *p, uint32_t vol, uint64_t rg)
{
  if (bit_test (p->held, vol, rg)) {
    p->held[vol][rg / 64] &= ~(UINT64_C (1) << (rg % 64));
    p->n_held[vol]--;
  }
}

bool
br__oos_test (const struct br_peer *p, uint32_t vol, uint64_t rg)
{
  return p->oos && bit_test (p->oos, vol, rg);
}

bool
br__bits_dirty (const struct br_peer *p, const struct br_volume *v,
                uint64_t rg)
{
  return br_sb_test (v->sb, v->slot[p->idx], rg) &&
         !bit_test (p->held, v->id, rg);
}

static void
oos_set (struct br_peer *p, uint32_t vol, uint64_t rg)
{
  if (!br__oos_test (p, vol, rg)) {
    p->oos[vol][rg / 64] |= UINT64_C (1) << (rg % 64);
    p->oos_count++;
  }
}

static void
oos_clear (struct br_peer *p, uint32_t vol, uint64_t rg)
{
  if (br__oos_test (p, vol, rg)) {
    p->oos[vol][rg / 64] &= ~(UINT64_C (1) << (rg % 64));
    p->oos_count--;
  }
}

void
br__bits_note_write (struct br_volume *v, uint64_t first, uint64_t last,
                     uint64_t seq)
{
  struct br_group *g = v->g;
  uint32_t now = br__now_ms ();

  BR_ASSERT_LOCKED (&g->lock);
  for (uint64_t rg = first; rg <= last; rg++) {
    v->last_seq[rg] = seq;
    v->last_write_ms[rg] = now;
    for (size_t i = 0; i < g->n_peers; i++)
      held_clear (g->peers[i], v->id, rg);
  }
}

void
br__bits_note_written (struct br_volume *v, uint64_t first, uint64_t last)
{
  uint64_t gen = atomic_load (&v->sync_started);

  for (uint64_t rg = first; rg <= last; rg++)
    v->written_gen[rg] = gen;
}

/* Group lock held, regions' stripes held: regions FIRST..LAST of V may
 * differ from every peer in a way no record will repair (the local write
 * of record SEQ failed after the record was queued).  Their bits are set
 * (I1 set them before the write); they go into each peer's out-of-sync
 * set, which only a RESYNC record read after SEQ can clear (C2). */
void
br__bits_mark_out_of_sync (struct br_volume *v, uint64_t first,
                           uint64_t last, uint64_t seq)
{
  struct br_group *g = v->g;

  BR_ASSERT_LOCKED (&g->lock);
  for (uint64_t rg = first; rg <= last; rg++)
    v->fail_seq[rg] = seq;
  for (size_t i = 0; i < g->n_peers; i++) {
    struct br_peer *p = g->peers[i];

    for (uint64_t rg = first; rg <= last; rg++) {
      held_clear (p, v->id, rg);
      if (p->oos)               /* never connected: its snapshot will do */
        oos_set (p, v->id, rg);
    }
    br__peer_event (p, BR_EV_DIVERGED);
  }
}

void
br__bits_resync_region (struct br_peer *p, uint32_t vol, uint64_t rg)
{
  BR_ASSERT_LOCKED (&p->g->lock);
  held_clear (p, vol, rg);
  if (p->oos)                   /* never connected: its snapshot will do */
    oos_set (p, vol, rg);
}

/* Clear region RG's bit for peer P if br_clear_rule allows, hold it, or
 * leave it alone. */
static void
try_clear (struct br_peer *p, struct br_volume *v, uint64_t rg,
           uint32_t now, bool no_window)
{
  struct br_clear_in in = {
    .last_seq = v->last_seq[rg], .durable = p->durable,
    .out_of_sync = br__oos_test (p, v->id, rg),
    .age_ms = now - v->last_write_ms[rg],
    .window_ms = (uint32_t) v->e->cfg->activity_window_ms,
    .no_window = no_window,
  };

  /* The stripe is only worth taking if C1 and C2 hold. */
  in.local_durable = true;
  if (br_clear_rule (&in) == BR_CLEAR_KEEP)
    return;
  in.stripe_busy = !br_rangelock_trylock (&v->locks, rg);
  /* written_gen is written under the stripe. */
  in.local_durable = !in.stripe_busy &&
    atomic_load (&v->sync_done) > v->written_gen[rg];
  switch (br_clear_rule (&in)) {
  case BR_CLEAR_NOW:
    br_sb_clear (v->sb, v->slot[p->idx], rg);
    held_clear (p, v->id, rg);
    break;
  case BR_CLEAR_HOLD:
    held_set (p, v->id, rg);
    if (br_clear_wants_sync (&in))
      atomic_store (&v->want_sync, true);
    break;
  case BR_CLEAR_KEEP:
    break;
  }
  if (!in.stripe_busy)
    br_rangelock_unlock (&v->locks, rg, rg);
}

void
br__bits_scan (struct br_peer *p, bool no_window)
{
  struct br_group *g = p->g;
  uint32_t now = br__now_ms ();

  BR_ASSERT_LOCKED (&g->lock);
  for (size_t vi = 0; vi < g->n_vols; vi++) {
    struct br_volume *v = g->vols[vi];

    if (p->n_held[vi] == 0)
      continue;
    for (uint64_t w = 0; w < (v->nregions + 63) / 64; w++) {
      uint64_t bits = p->held[vi][w];

      while (bits) {
        uint64_t rg = w * 64 + __builtin_ctzll (bits);

        bits &= bits - 1;
        held_clear (p, vi, rg);
        try_clear (p, v, rg, now, no_window);
      }
    }
  }
}

/* ---- recording a peer's generation (task thread) ---- */

struct peer_gen_task {
  struct br_volume *v;
  int slot;
  uint64_t gen;
  char peer[BR_NAME_MAX + 1];
};

/* A primary that has synced a peer is no longer fresh (verdict.c rule
 * 6): its content now exists elsewhere too.  A relay stays fresh until
 * its own upstream's SYNCED (apply.c). */
static void
peer_gen_work (void *arg)
{
  struct peer_gen_task *t = arg;
  br_scoreboard *sb = t->v->sb;

  if (br_sb_set_peer_gen (sb, t->slot, t->gen) < 0 ||
      (t->v->e->role == BR_ROLE_PRIMARY && (br_sb_flags (sb) & BR_SB_FRESH)
       && br_sb_set_flags (sb, 0, BR_SB_FRESH) < 0))
    br_error ("%s: cannot record peer %s's generation", t->v->cfg->name,
              t->peer);
}

static void
peer_gen_done (void *arg, bool cancelled)
{
  free (arg);
}

/* A retired record: SYNCED durable on the peer makes our generation its
 * base for the next time (recorded on the task thread); a durable WRITE,
 * ZERO or resync HASH may clear its regions' bits; a verify's HASH only
 * gives the verify its verdict (verify.c V5: a verify changes no bit). */
static void
on_retired (struct br_peer *p, struct br_rec *r, void *arg)
{
  struct br_group *g = p->g;
  struct br_volume *v = g->vols[r->h.volume];
  uint32_t now = *(const uint32_t *) arg;

  if (r->h.type == BR_T_HASH && (r->h.flags & BR_F_VERIFY)) {
    br__verify_retired (p, r);
    return;
  }
  if (r->h.type == BR_T_SYNCED) {
    struct peer_gen_task *t = malloc (sizeof *t);

    if (t) {
      *t = (struct peer_gen_task) { .v = v, .slot = v->slot[p->idx],
                                    .gen = r->h.count };
      snprintf (t->peer, sizeof t->peer, "%s", p->node->name);
    }
    if (t == NULL || br__task_post (g->e, peer_gen_work, peer_gen_done,
                                    t) < 0) {
      free (t);
      br_warn ("%s: peer %s's generation not recorded (out of memory or "
               "stopping): the next handshake compares again",
               v->cfg->name, p->node->name);
    }
  }
  if (r->bytes) {
    uint64_t first = br__region (v, r->h.offset);
    uint64_t last = br__region (v, r->h.offset + r->bytes - 1);

    for (uint64_t rg = first; rg <= last; rg++) {
      if ((r->h.flags & BR_F_RESYNC) &&
          br_resync_clears (r->h.seq, v->fail_seq[rg], r->differs))
        oos_clear (p, v->id, rg);
      if (br_sb_test (v->sb, v->slot[p->idx], rg))
        try_clear (p, v, rg, now, false);
    }
  }
}

void
br__group_clear_durable (struct br_group *g, struct br_peer *p)
{
  uint32_t now = br__now_ms ();

  BR_ASSERT_LOCKED (&g->lock);
  br__queue_retire (p, on_retired, &now);
}

/* ---- C5: syncing a volume whose bits wait for it ---- */

static void
sync_work (void *arg)
{
  struct br_volume *v = arg;
  int err = br__volume_sync (v);

  if (err < 0)
    br_error ("%s: local sync failed: %s (bits stay set)", v->cfg->name,
              br_strerror (-err));
}

static void
sync_done (void *arg, bool cancelled)
{
  struct br_volume *v = arg;

  v->sync_busy = false;
}

void
br__bits_sync_tick (struct br_engine *e)
{
  uint64_t now = uv_now (&e->loop);

  for (size_t i = 0; i < e->n_vols; i++) {
    struct br_volume *v = &e->vols[i];

    if (v->sync_busy || now - v->sync_ms < SYNC_SPACING_MS ||
        !atomic_exchange (&v->want_sync, false))
      continue;
    v->sync_ms = now;
    if (br__task_post (e, sync_work, sync_done, v) == 0)
      v->sync_busy = true;
  }
}
