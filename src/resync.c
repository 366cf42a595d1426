/* blockrelay — the resync engine: bringing a peer's out-of-sync regions
 * up to date while live writes continue.
 *
 * When a connection comes up (or a pull-ahead peer drains, or a local
 * write failed after its record went out), br__resync_snapshot() copies
 * the peer's scoreboard bits into its out-of-sync set (oos) and the peer
 * is SYNCING.  br__resync_step() (loop thread; from the tick, after ACKs
 * and after the handshake) walks the set in volume and region order and
 * queues the current content of each region:
 *
 *   R1. A region is read and queued under its stripe lock (trylock: the
 *       loop thread never waits for a writer), so no live write to it can
 *       fall between the read and the queueing (I3).  Live writes are
 *       queued to a SYNCING peer as usual; the stream order settles which
 *       content the replica ends with.
 *   R2. A region that reads as zeros is sent as a ZERO record.
 *   R3. A region leaves the set only when its RESYNC record is durable on
 *       the peer (bits.c), never because a live write covered part of it.
 *   R4. Queueing stops while the peer's queue is at half of queue-size (so
 *       live writes keep room) and while resync-rate's bucket is empty.
 *   R5. When the set is empty, br__resync_done() queues one SYNCED record
 *       per volume (the replica adopts our generation and marks itself
 *       consistent) and the peer is REPLICATING.
 *
 * Everything shared (queue, set, state) is under the group lock.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* Snapshot the scoreboard into the out-of-sync sets (group lock held). */
int
br__resync_snapshot (struct br_peer *p)
{
  struct br_group *g = p->g;

  if (p->oos == NULL) {
    p->oos = calloc (g->n_vols, sizeof *p->oos);
    if (p->oos == NULL)
      return -ENOMEM;
    for (size_t i = 0; i < g->n_vols; i++) {
      p->oos[i] = calloc ((g->vols[i]->nregions + 63) / 64, 8);
      if (p->oos[i] == NULL)
        return -ENOMEM;
    }
  }
  p->oos_count = 0;
  for (size_t i = 0; i < g->n_vols; i++) {
    struct br_volume *v = g->vols[i];
    int slot = v->slot[p->idx];
    int64_t rg = -1;

    memset (p->oos[i], 0, (v->nregions + 63) / 64 * 8);
    while ((rg = br_sb_next_set (v->sb, slot, rg + 1)) >= 0) {
      p->oos[i][rg / 64] |= UINT64_C (1) << (rg % 64);
      p->oos_count++;
    }
  }
  p->resync_vol = 0;
  p->resync_region = 0;
  p->resync_total = p->oos_count;
  p->resync_bytes_sent = 0;
  p->resync_start_ms = uv_now (&g->e->loop);
  return 0;
}

/* Group lock held: the peer is in sync.  Queue one SYNCED per volume (the
 * replica adopts our generation and marks itself consistent; when it is
 * durable we record that generation as the peer's base) and replicate. */
void
br__resync_done (struct br_peer *p)
{
  struct br_group *g = p->g;

  for (size_t i = 0; i < g->n_vols; i++) {
    struct br_volume *v = g->vols[i];

    /* A relay whose own copy is being resynced from upstream has nothing
     * consistent to offer yet: the peer gets SYNCED when this copy does
     * (br__relay_synced). */
    if (g->e->role == BR_ROLE_REPLICA &&
        !(br_sb_flags (v->sb) & BR_SB_CONSISTENT))
      continue;
    if (!br__queue_synced (p, v, br_sb_gen (v->sb)))
      break;                    /* retried after a reconnect */
  }
  br__peer_set_state (p, BR_PEER_REPLICATING);
}

static bool
all_zero (const uint8_t *buf, size_t len)
{
  return len == 0 || (buf[0] == 0 && memcmp (buf, buf + 1, len - 1) == 0);
}

/* Queue the current contents of one out-of-sync region (I3: under its
 * stripe lock, so no live write to it can slip between read and queue).
 * Returns 1 if queued, 0 if the stripe was busy, -errno on error. */
static int
resync_region (struct br_peer *p, struct br_volume *v, uint64_t rg,
               uint8_t *buf)
{
  struct br_group *g = p->g;
  uint64_t off = rg << v->gran_shift;
  uint64_t len = (uint64_t) 1 << v->gran_shift;
  struct br_rec *r;
  int err;

  if (off + len > v->size)
    len = v->size - off;
  if (!br_rangelock_trylock (&v->locks, rg))
    return 0;
  err = br_disk_pread (v->disk, buf, len, off);
  if (err < 0) {
    br_rangelock_unlock (&v->locks, rg, rg);
    br_error ("%s: resync read at %llu failed: %s", v->cfg->name,
              (unsigned long long) off, br_strerror (-err));
    return err;
  }
  r = all_zero (buf, len)
    ? br__rec_new (BR_T_ZERO, BR_F_RESYNC, v->id, 0, off, len, NULL)
    : br__rec_new (BR_T_WRITE, BR_F_RESYNC, v->id, 0, off, len, buf);
  if (r == NULL) {
    br_rangelock_unlock (&v->locks, rg, rg);
    return -ENOMEM;
  }
  pthread_mutex_lock (&g->lock);
  if (p->state != BR_PEER_SYNCING ||    /* lost meanwhile */
      (p->queued_bytes > 0 &&           /* or live writes filled the queue */
       p->queued_bytes + (r->h.type == BR_T_WRITE ? len : 0) >
       p->queue_limit)) {
    pthread_mutex_unlock (&g->lock);
    br_rangelock_unlock (&v->locks, rg, rg);
    br__rec_put (r);
    return 0;
  }
  br__rec_seal (r, ++g->next_seq);
  if (br__fifo_push (&p->q, r) < 0) {
    pthread_mutex_unlock (&g->lock);
    br_rangelock_unlock (&v->locks, rg, rg);
    br__rec_put (r);
    return -ENOMEM;
  }
  if (r->h.type == BR_T_WRITE)
    p->queued_bytes += len;
  p->resync_bytes_sent += len;
  pthread_mutex_unlock (&g->lock);
  br_rangelock_unlock (&v->locks, rg, rg);
  return 1;
}

/* Queue resync records while the queue has room; finish the resync when
 * every out-of-sync region has been made durable on the peer. */
void
br__resync_step (struct br_peer *p)
{
  struct br_group *g = p->g;
  uint8_t *buf = NULL;
  bool queued = false;

  br__peer_refill (p);
  for (;;) {
    struct br_volume *v = NULL;
    bool room;
    int64_t next = -1;

    pthread_mutex_lock (&g->lock);
    if (p->state != BR_PEER_SYNCING) {
      pthread_mutex_unlock (&g->lock);
      break;
    }
    if (p->oos_count == 0) {
      /* Everything sent; done when it is durable too (the oos bits are
       * only cleared by durable RESYNC records). */
      br__resync_done (p);
      br_info ("peer %s (group %s): resync complete", p->node->name,
               g->name);
      pthread_mutex_unlock (&g->lock);
      queued = true;
      break;
    }
    room = p->queued_bytes < p->queue_limit / 2 &&
      (p->link->resync_rate == 0 || p->resync_tokens > 0);
    while (room && p->resync_vol < g->n_vols) {
      v = g->vols[p->resync_vol];
      for (uint64_t rg = p->resync_region; rg < v->nregions; rg++)
        if (br__oos_test (p, v->id, rg)) {
          next = rg;
          break;
        }
      if (next >= 0)
        break;
      p->resync_vol++;
      p->resync_region = 0;
    }
    if (room && next < 0 && p->n_sent == p->q.len && p->q.len == 0) {
      /* Walked everything, all durable, yet regions remain (a region was
       * skipped while busy): walk again. */
      p->resync_vol = 0;
      p->resync_region = 0;
    }
    pthread_mutex_unlock (&g->lock);
    if (!room || next < 0)
      break;

    if (buf == NULL && (buf = malloc ((size_t) 1 << v->gran_shift)) == NULL)
      break;
    int r = resync_region (p, v, next, buf);
    if (r < 0) {
      char msg[128];
      snprintf (msg, sizeof msg, "resync failed: %s", br_strerror (-r));
      br__peer_fail (p, msg);
      break;
    }
    if (r == 0)
      break;                    /* stripe busy: retry on the next tick */
    queued = true;
    if (p->link->resync_rate)
      p->resync_tokens -= (double) ((uint64_t) 1 << v->gran_shift);
    pthread_mutex_lock (&g->lock);
    p->resync_region = next + 1;
    pthread_mutex_unlock (&g->lock);
  }
  free (buf);
  if (queued)
    br__peer_flush_queue (p);
}
