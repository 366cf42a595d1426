/* blockrelay — the resync engine: bringing a peer's out-of-sync regions
 * up to date while live writes continue.
 *
 * When a connection comes up with regions to resync (or a pull-ahead peer
 * drains), br__resync_snapshot() copies the peer's scoreboard bits into
 * its out-of-sync set (oos) and the peer becomes SYNCING (peerfsm.c; its
 * first record is the RESYNC marker).  br__resync_step() (loop thread:
 * from the tick, after ACKs, after the handshake) walks the set in volume
 * and region order and hands batches of regions to the task thread,
 * which reads each one and queues its current content:
 *
 *   R1. A region is read and queued under its stripe lock, so no live
 *       write to it can fall between the read and the queueing (I3).
 *       Live writes are queued to a SYNCING peer as usual; the stream
 *       order settles which content the replica ends with.
 *   R2. A region that reads as zeros is sent as a ZERO record.
 *   R3. A region leaves the set only when its RESYNC record is durable on
 *       the peer and was read after the region's last local write failure
 *       (bits.c C2), never because a live write covered part of it.
 *   R4. Flow control: a batch is made only while the peer's queue is
 *       under half of queue-size, fewer than RESYNC_MAX_INFLIGHT resync
 *       records (zeros included) are queued, and resync-rate's bucket is
 *       not empty; the task thread stops a batch when the queue fills.
 *   R5. When the set is empty, RESYNC_DONE makes the peer REPLICATING,
 *       whose effect queues one SYNCED record per volume (the replica
 *       adopts our generation and marks itself consistent).
 *   R6. The loop thread never reads the disk: one batch per peer is on
 *       the task thread at a time (p->resync_busy); a batch checks the
 *       connection's epoch before it queues, so nothing read for an old
 *       connection reaches a new one.
 *
 * Everything shared (queue, set, cursor, state) is under the group lock.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define RESYNC_BATCH 32
#define RESYNC_MAX_INFLIGHT 512

int
br__resync_snapshot (struct br_peer *p)
{
  struct br_group *g = p->g;

  BR_ASSERT_LOCKED (&g->lock);
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
  br__resync_restart (p);
  p->resync_bytes_sent = 0;
  p->resync_start_ms = uv_now (&g->e->loop);
  return 0;
}

void
br__resync_restart (struct br_peer *p)
{
  BR_ASSERT_LOCKED (&p->g->lock);
  p->resync_vol = 0;
  p->resync_region = 0;
  p->resync_total = p->oos_count;
}

void
br__resync_done (struct br_peer *p)
{
  struct br_group *g = p->g;

  BR_ASSERT_LOCKED (&g->lock);
  for (size_t i = 0; i < g->n_vols; i++) {
    struct br_volume *v = g->vols[i];

    /* A relay whose own copy is being resynced from upstream has nothing
     * consistent to offer yet: the peer gets SYNCED when this copy does
     * (br__relay_synced). */
    if (g->e->role == BR_ROLE_REPLICA &&
        !(br_sb_flags (v->sb) & BR_SB_CONSISTENT))
      continue;
    if (!br__queue_synced (p, v, br_sb_gen (v->sb)))
      break;                    /* dropped: retried after a reconnect */
  }
}

/* ---- a batch on the task thread ---- */

struct batch {
  struct br_peer *p;
  uint64_t epoch;
  size_t n, done;
  int err;
  struct { uint32_t vol; uint64_t rg; } item[RESYNC_BATCH];
};

static bool
all_zero (const uint8_t *buf, size_t len)
{
  return len == 0 || (buf[0] == 0 && memcmp (buf, buf + 1, len - 1) == 0);
}

/* Read region RG of V into a new RESYNC record (R2).  0 or -errno. */
static int
read_region (struct br_volume *v, uint64_t rg, struct br_rec **out)
{
  uint64_t off = rg << v->gran_shift;
  uint64_t len = (uint64_t) 1 << v->gran_shift;
  uint8_t *buf;
  int err;

  if (off + len > v->size)
    len = v->size - off;
  buf = malloc (len);
  if (buf == NULL)
    return -ENOMEM;
  if ((err = br_disk_pread (v->disk, buf, len, off)) < 0) {
    free (buf);
    br_error ("%s: resync read at %llu failed: %s", v->cfg->name,
              (unsigned long long) off, br_strerror (-err));
    return err;
  }
  if (all_zero (buf, len)) {
    free (buf);
    *out = br__rec_new (BR_T_ZERO, BR_F_RESYNC, v->id, 0, off, len, NULL);
  }
  else {
    *out = br__rec_adopt (BR_F_RESYNC, v->id, off, len, buf,
                          br_wire_checksum (buf, len));
    if (*out == NULL)
      free (buf);
  }
  return *out ? 0 : -ENOMEM;
}

/* Queue R for P if the connection is the batch's and there is room (R4);
 * group lock held.  False: the batch stops here. */
static bool
queue_region (struct batch *b, struct br_rec *r)
{
  struct br_peer *p = b->p;
  uint64_t data = r->h.type == BR_T_WRITE ? r->bytes : 0;

  if (p->epoch != b->epoch || p->state != BR_PEER_SYNCING ||
      (p->queued_bytes > 0 && p->queued_bytes + data > p->queue_limit) ||
      p->resync_inflight >= RESYNC_MAX_INFLIGHT)
    return false;
  br__rec_seal (r, ++p->g->next_seq);
  if (br__queue_push (p, r) < 0)
    return false;
  p->resync_bytes_sent += r->bytes;
  return true;
}

static void
batch_work (void *arg)
{
  struct batch *b = arg;
  struct br_group *g = b->p->g;

  for (b->done = 0; b->done < b->n; b->done++) {
    struct br_volume *v = g->vols[b->item[b->done].vol];
    uint64_t rg = b->item[b->done].rg;
    struct br_rec *r = NULL;
    bool queued;

    br_rangelock_lock (&v->locks, rg, rg);                      /* R1 */
    b->err = read_region (v, rg, &r);
    if (b->err == 0) {
      br_mutex_lock (&g->lock);
      queued = queue_region (b, r);
      br_mutex_unlock (&g->lock);
    }
    br_rangelock_unlock (&v->locks, rg, rg);
    br__rec_put (r);
    if (b->err < 0 || !queued)
      break;
  }
  if (b->done > 0)
    br__wake (g->e);
}

static void
batch_done (void *arg, bool cancelled)
{
  struct batch *b = arg;
  struct br_peer *p = b->p;
  struct br_group *g = p->g;
  bool more = false;

  p->resync_busy = false;
  if (!cancelled) {
    br_mutex_lock (&g->lock);
    if (p->epoch == b->epoch && p->state == BR_PEER_SYNCING) {
      /* Resume at the first region not queued (the cursor was moved past
       * the whole batch when it was made). */
      if (b->done < b->n) {
        p->resync_vol = b->item[b->done].vol;
        p->resync_region = b->item[b->done].rg;
      }
      more = b->err == 0 && b->done == b->n;
    }
    br_mutex_unlock (&g->lock);
    if (b->err < 0) {
      char msg[128];
      snprintf (msg, sizeof msg, "resync failed: %s", br_strerror (-b->err));
      br__peer_fail (p, msg);
    }
    else {
      br__peer_flush_queue (p);
      if (more)
        br__resync_step (p);
    }
  }
  free (b);
}

/* Group lock held: the next out-of-sync regions from the cursor into B,
 * moving the cursor past them; R4's bucket is charged for them. */
static void
fill_batch (struct br_peer *p, struct batch *b)
{
  struct br_group *g = p->g;

  while (b->n < RESYNC_BATCH && p->resync_vol < g->n_vols) {
    struct br_volume *v = g->vols[p->resync_vol];
    uint64_t rg = p->resync_region;

    while (rg < v->nregions && !br__oos_test (p, v->id, rg))
      rg++;
    if (rg == v->nregions) {
      p->resync_vol++;
      p->resync_region = 0;
      continue;
    }
    b->item[b->n].vol = v->id;
    b->item[b->n].rg = rg;
    b->n++;
    p->resync_region = rg + 1;
    if (p->link->resync_rate) {
      p->resync_tokens -= (double) ((uint64_t) 1 << v->gran_shift);
      if (p->resync_tokens <= 0)
        break;
    }
  }
}

void
br__resync_step (struct br_peer *p)
{
  struct br_group *g = p->g;
  struct batch *b;

  if (p->resync_busy)
    return;
  br__peer_refill (p);
  br_mutex_lock (&g->lock);
  if (p->state != BR_PEER_SYNCING) {
    br_mutex_unlock (&g->lock);
    return;
  }
  if (p->oos_count == 0) {
    /* Everything sent and durable (oos bits clear only then: R3, R5). */
    br__peer_event (p, BR_EV_RESYNC_DONE);
    br_mutex_unlock (&g->lock);
    br_info ("peer %s (group %s): resync complete", p->node->name, g->name);
    br__peer_flush_queue (p);
    return;
  }
  if (p->queued_bytes >= p->queue_limit / 2 ||                   /* R4 */
      p->resync_inflight >= RESYNC_MAX_INFLIGHT ||
      (p->link->resync_rate && p->resync_tokens <= 0) ||
      (b = calloc (1, sizeof *b)) == NULL) {
    br_mutex_unlock (&g->lock);
    return;
  }
  b->p = p;
  b->epoch = p->epoch;
  fill_batch (p, b);
  if (b->n == 0 && p->q.len == 0) {
    /* Walked everything and all of it is durable, yet regions remain (a
     * RESYNC record read before a local failure did not count): walk
     * again; the next step makes a batch. */
    br__resync_restart (p);
  }
  br_mutex_unlock (&g->lock);
  if (b->n == 0 || br__task_post (g->e, batch_work, batch_done, b) < 0) {
    free (b);
    return;
  }
  p->resync_busy = true;
}
