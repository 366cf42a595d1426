/* blockrelay — retiring durable records and clearing scoreboard bits.
 *
 * A bit is set before the write that needs it (I1, group.c).  It may be
 * cleared only when (I2):
 *
 *   C1. the peer's durable watermark is at or past the region's last write
 *       (last_seq[region] <= durable), so nothing newer is in flight;
 *   C2. the region is not in the peer's out-of-sync set (a live write that
 *       covered part of a region does not make the whole region in sync;
 *       only its durable RESYNC record does);
 *   C3. no writer is between marking the region and queueing its record
 *       (the region's stripe can be trylocked);
 *   C4. the region has not been written for BR_CLEAR_HOLD_MS.
 *
 * C4 is the activity window (what DRBD calls the activity log): a region
 * being rewritten keeps its bit, so the next write to it finds the bit set
 * and durable and needs no msync.  The price is only that, after a crash,
 * regions written in the last few seconds are resynced as well.
 *
 * A region that passes C1 and C2 but not C3 or C4 is "held": its bit stays
 * set and it is remembered in a per-peer bitmap; br__bits_scan() looks at
 * held regions again every BR_CLEAR_SCAN_MS.  Held regions are in sync
 * with the peer (C1 and C2 hold), so status does not count them as dirty.
 * A new write to a region drops it from every held set
 * (br__bits_note_write), since it is no longer known to be in sync.
 *
 * Everything here runs with the group lock held: on the loop thread, except
 * br__bits_note_write which writers call from replicate().
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

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
held_test (const struct br_peer *p, uint32_t vol, uint64_t rg)
{
  return (p->held[vol][rg / 64] >> (rg % 64)) & 1;
}

static void
held_set (struct br_peer *p, uint32_t vol, uint64_t rg)
{
  if (!held_test (p, vol, rg)) {
    p->held[vol][rg / 64] |= UINT64_C (1) << (rg % 64);
    p->n_held[vol]++;
  }
}

static void
held_clear (struct br_peer *p, uint32_t vol, uint64_t rg)
{
  if (held_test (p, vol, rg)) {
    p->held[vol][rg / 64] &= ~(UINT64_C (1) << (rg % 64));
    p->n_held[vol]--;
  }
}

/* Writers, under the group lock: regions FIRST..LAST of V are being
 * written by record SEQ. */
void
br__bits_note_write (struct br_volume *v, uint64_t first, uint64_t last,
                     uint64_t seq)
{
  struct br_group *g = v->g;
  uint32_t now = br__now_ms ();

  for (uint64_t rg = first; rg <= last; rg++) {
    v->last_seq[rg] = seq;
    v->last_write_ms[rg] = now;
    for (size_t i = 0; i < g->n_peers; i++)
      held_clear (g->peers[i], v->id, rg);
  }
}

/* Group lock held, regions' stripes held: regions FIRST..LAST of V may
 * differ from every peer in a way no record will repair (a local write
 * failed after its record was queued).  Their bits are set (I1 set them
 * before the write); put them in each connected peer's out-of-sync set,
 * so only a resync record can clear them, and start that resync. */
void
br__bits_mark_out_of_sync (struct br_volume *v, uint64_t first,
                           uint64_t last)
{
  struct br_group *g = v->g;

  for (size_t i = 0; i < g->n_peers; i++) {
    struct br_peer *p = g->peers[i];

    if (p->oos == NULL)
      continue;                 /* never connected: its snapshot will do */
    for (uint64_t rg = first; rg <= last; rg++) {
      held_clear (p, v->id, rg);
      if (!br__oos_test (p, v->id, rg)) {
        p->oos[v->id][rg / 64] |= UINT64_C (1) << (rg % 64);
        p->oos_count++;
      }
    }
    if (p->state == BR_PEER_REPLICATING) {
      p->resync_vol = 0;
      p->resync_region = 0;
      p->resync_total = p->oos_count;
      br__peer_set_state (p, BR_PEER_SYNCING);
    }
  }
}

bool
br__oos_test (const struct br_peer *p, uint32_t vol, uint64_t rg)
{
  return p->oos && (p->oos[vol][rg / 64] >> (rg % 64)) & 1;
}

static void
oos_clear (struct br_peer *p, uint32_t vol, uint64_t rg)
{
  if (br__oos_test (p, vol, rg)) {
    p->oos[vol][rg / 64] &= ~(UINT64_C (1) << (rg % 64));
    p->oos_count--;
  }
}

/* Clear region RG's bit for peer P if C1-C4 allow, hold it if only C3 or
 * C4 stand in the way, leave it alone otherwise (a later record for the
 * region will bring it back here). */
static void
try_clear (struct br_peer *p, struct br_volume *v, uint64_t rg,
           uint32_t now, bool no_window)
{
  if (v->last_seq[rg] > p->durable || br__oos_test (p, v->id, rg))
    return;
  if ((!no_window &&
       (uint32_t) (now - v->last_write_ms[rg]) < BR_CLEAR_HOLD_MS) ||
      !br_rangelock_trylock (&v->locks, rg)) {
    held_set (p, v->id, rg);
    return;
  }
  br_sb_clear (v->sb, v->slot[p->idx], rg);
  held_clear (p, v->id, rg);
  br_rangelock_unlock (&v->locks, rg, rg);
}

/* Loop thread, group lock held: look at held regions again.  NO_WINDOW
 * (at a clean shutdown, when no write can follow) ignores C4, so a pair
 * stopped in sync does not resync its recently written regions later. */
void
br__bits_scan (struct br_peer *p, bool no_window)
{
  struct br_group *g = p->g;
  uint32_t now = br__now_ms ();

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

/* Called with the group lock held after P's durable watermark moved:
 * retire every record at or below it and clear the bits it allows. */
void
br__group_clear_durable (struct br_group *g, struct br_peer *p)
{
  uint32_t now = br__now_ms ();

  while (p->q.len > 0 && p->n_sent > 0) {
    struct br_rec *r = br__fifo_at (&p->q, 0);

    if (r->h.seq > p->durable)
      break;
    br__fifo_pop (&p->q);
    p->n_sent--;
    if (r->h.type == BR_T_WRITE)
      p->queued_bytes -= r->bytes;
    if (r->h.type == BR_T_SYNCED) {
      /* The peer is now at our generation: the base for the next time. */
      struct br_volume *v = g->vols[r->h.volume];
      if (br_sb_set_peer_gen (v->sb, v->slot[p->idx], r->h.count) < 0)
        br_error ("%s: cannot record peer %s's generation", v->cfg->name,
                  p->node->name);
    }
    if (r->bytes) {
      struct br_volume *v = g->vols[r->h.volume];
      uint64_t first = br__region (v, r->h.offset);
      uint64_t last = br__region (v, r->h.offset + r->bytes - 1);

      for (uint64_t rg = first; rg <= last; rg++) {
        if (r->h.flags & BR_F_RESYNC)
          oos_clear (p, v->id, rg);
        if (br_sb_test (v->sb, v->slot[p->idx], rg))
          try_clear (p, v, rg, now, false);
      }
    }
    br__rec_put (r);
  }
}
