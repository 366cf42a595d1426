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
 *   R7. Checksum resync (link `resync: checksum`, or `blockrelay resync
 *       --checksum` for one resync): a region not yet hashed in this
 *       resync is queued as a HASH of its content instead (R1 still
 *       holds: read and queued under the stripe lock), and marked hashed.
 *       A HASH the peer reports as differing (DIFFER, peer.c) leaves the
 *       region in the set (br_resync_clears); the walk comes back to it
 *       once every resync record has retired and sends its data.  One the
 *       peer matched brings the region in sync like its data would: the
 *       peer's durable ACK of it means its copy is on stable storage.
 *       Hashes are not charged to resync-rate (a few bytes on the wire).
 *
 * The batch engine (read regions on the task thread, make a record of
 * each, queue it under the group lock) is shared with verify.c: struct
 * br_region_batch.
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

#define RESYNC_MAX_INFLIGHT 512

static uint64_t **
alloc_bitmaps (const struct br_group *g)
{
  uint64_t **b = calloc (g->n_vols, sizeof *b);

  for (size_t i = 0; b && i < g->n_vols; i++)
    if ((b[i] = calloc ((g->vols[i]->nregions + 63) / 64, 8)) == NULL) {
      while (i-- > 0)
        free (b[i]);
      free (b);
      b = NULL;
    }
  return b;
}

/* The out-of-sync and hashed sets, both or neither.  0 or -ENOMEM. */
static int
alloc_sets (struct br_peer *p)
{
  p->oos = alloc_bitmaps (p->g);
  p->hashed = alloc_bitmaps (p->g);
  if (p->oos && p->hashed)
    return 0;
  for (size_t i = 0; i < p->g->n_vols; i++) {
    if (p->oos)
      free (p->oos[i]);
    if (p->hashed)
      free (p->hashed[i]);
  }
  free (p->oos);
  free (p->hashed);
  p->oos = p->hashed = NULL;
  return -ENOMEM;
}

int
br__resync_snapshot (struct br_peer *p)
{
  struct br_group *g = p->g;

  BR_ASSERT_LOCKED (&g->lock);
  if (p->oos == NULL && alloc_sets (p) < 0)
    return -ENOMEM;
  p->oos_count = 0;
  p->resync_checksum = p->link->resync == BR_RESYNC_CHECKSUM ||
                       p->checksum_asked;
  for (size_t i = 0; i < g->n_vols; i++) {
    struct br_volume *v = g->vols[i];
    int slot = v->slot[p->idx];
    int64_t rg = -1;

    memset (p->oos[i], 0, (v->nregions + 63) / 64 * 8);
    memset (p->hashed[i], 0, (v->nregions + 63) / 64 * 8);
    while ((rg = br_sb_next_set (v->sb, slot, rg + 1)) >= 0) {
      p->oos[i][rg / 64] |= UINT64_C (1) << (rg % 64);
      p->oos_count++;
    }
  }
  br__resync_restart (p, false);
  p->resync_bytes_sent = 0;
  p->resync_start_ms = uv_now (&g->e->loop);
  return 0;
}

void
br__resync_restart (struct br_peer *p, bool fresh)
{
  BR_ASSERT_LOCKED (&p->g->lock);
  if (fresh && p->hashed) {
    for (size_t i = 0; i < p->g->n_vols; i++)
      memset (p->hashed[i], 0, (p->g->vols[i]->nregions + 63) / 64 * 8);
    p->resync_checksum = p->link->resync == BR_RESYNC_CHECKSUM ||
                         p->checksum_asked;
    p->resync_bytes_sent = 0;
    p->resync_start_ms = uv_now (&p->g->e->loop);
  }
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

/* ---- region batches on the task thread (resync and verify) ---- */

static bool
all_zero (const uint8_t *buf, size_t len)
{
  return len == 0 || (buf[0] == 0 && memcmp (buf, buf + 1, len - 1) == 0);
}

/* Read region RG of V (BUF has room for a whole region); *LEN is its
 * length.  0 or -errno (logged). */
static int
read_region (struct br_volume *v, uint64_t rg, uint8_t *buf, uint64_t *len)
{
  uint64_t off = rg << v->gran_shift;
  int err;

  *len = (uint64_t) 1 << v->gran_shift;
  if (off + *len > v->size)
    *len = v->size - off;
  if ((err = br_disk_pread (v->disk, buf, *len, off)) < 0)
    br_error ("%s: read of the region at %llu failed: %s", v->cfg->name,
              (unsigned long long) off, br_strerror (-err));
  return err;
}

static void
region_batch_work (void *arg)
{
  struct br_region_batch *b = arg;
  struct br_group *g = b->p->g;
  uint8_t *buf = NULL;
  size_t cap = 0;

  for (b->done = 0; b->done < b->n; b->done++) {
    struct br_volume *v = g->vols[b->item[b->done].vol];
    uint64_t rg = b->item[b->done].rg, len;
    size_t need = (size_t) 1 << v->gran_shift;
    struct br_rec *r = NULL;
    bool queued = false;

    if (need > cap) {
      uint8_t *n = realloc (buf, need);
      if (n == NULL) {
        b->err = -ENOMEM;
        break;
      }
      buf = n;
      cap = need;
    }
    br_rangelock_lock (&v->locks, rg, rg);                      /* R1 */
    b->err = read_region (v, rg, buf, &len);
    if (b->err == 0 &&
        (r = b->make (b, b->done, v, rg << v->gran_shift, buf, len)) == NULL)
      b->err = -ENOMEM;
    if (b->err == 0) {
      br_mutex_lock (&g->lock);
      queued = b->epoch == b->p->epoch && b->queue (b, b->done, r);
      br_mutex_unlock (&g->lock);
    }
    br_rangelock_unlock (&v->locks, rg, rg);
    br__rec_put (r);
    if (b->err < 0 || !queued)
      break;
  }
  free (buf);
  if (b->done > 0)
    br__wake (g->e);
}

static void
region_batch_done (void *arg, bool cancelled)
{
  struct br_region_batch *b = arg;

  b->finish (b, cancelled);
  free (b);
}

int
br__region_batch_post (struct br_region_batch *b)
{
  return br__task_post (b->p->g->e, region_batch_work, region_batch_done, b);
}

/* ---- resync batches ---- */

/* A region's RESYNC record: a HASH (R7), ZERO (R2) or its data. */
static struct br_rec *
resync_make (struct br_region_batch *b, size_t i, struct br_volume *v,
             uint64_t off, const uint8_t *buf, uint64_t len)
{
  uint8_t *copy;
  struct br_rec *r;

  if (b->item[i].hash)
    return br__rec_hash (BR_F_RESYNC, v->id, off, buf, len);
  if (all_zero (buf, len))
    return br__rec_new (BR_T_ZERO, BR_F_RESYNC, v->id, 0, off, len, NULL);
  if ((copy = malloc (len)) == NULL)
    return NULL;
  memcpy (copy, buf, len);
  r = br__rec_adopt (BR_F_RESYNC, v->id, off, len, copy,
                     br_wire_checksum (copy, len));
  if (r == NULL)
    free (copy);
  return r;
}

/* Queue R for P if the peer is still syncing and there is room (R4);
 * group lock held.  False: the batch stops here. */
static bool
resync_queue (struct br_region_batch *b, size_t i, struct br_rec *r)
{
  struct br_peer *p = b->p;
  uint64_t data = r->h.type == BR_T_WRITE ? r->bytes : 0;

  if (p->state != BR_PEER_SYNCING ||
      (p->queued_bytes > 0 && p->queued_bytes + data > p->queue_limit) ||
      p->resync_inflight >= RESYNC_MAX_INFLIGHT)
    return false;
  br__rec_seal (r, ++p->g->next_seq);
  if (br__queue_push (p, r) < 0)
    return false;
  if (r->h.type == BR_T_HASH) {
    uint64_t rg = b->item[i].rg;

    p->hashed[r->h.volume][rg / 64] |= UINT64_C (1) << (rg % 64);
    p->resync_hashed_regions++;
  }
  else
    p->resync_bytes_sent += r->bytes;
  return true;
}

static void
resync_finish (struct br_region_batch *b, bool cancelled)
{
  struct br_peer *p = b->p;
  struct br_group *g = p->g;
  bool more = false;

  p->resync_busy = false;
  if (cancelled)
    return;
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

/* Group lock held: the next out-of-sync regions from the cursor into B,
 * moving the cursor past them; R4's bucket is charged for them. */
static void
fill_batch (struct br_peer *p, struct br_region_batch *b)
{
  struct br_group *g = p->g;

  while (b->n < BR_REGION_BATCH && p->resync_vol < g->n_vols) {
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
    b->item[b->n].hash = p->resync_checksum &&                  /* R7 */
      !(p->hashed[v->id][rg / 64] & (UINT64_C (1) << (rg % 64)));
    p->resync_region = rg + 1;
    if (p->link->resync_rate && !b->item[b->n].hash) {
      b->n++;
      p->resync_tokens -= (double) ((uint64_t) 1 << v->gran_shift);
      if (p->resync_tokens <= 0)
        break;
    }
    else
      b->n++;
  }
}

void
br__resync_step (struct br_peer *p)
{
  struct br_group *g = p->g;
  struct br_region_batch *b;

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
    p->checksum_asked = false;
    br_mutex_unlock (&g->lock);
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
  b->make = resync_make;
  b->queue = resync_queue;
  b->finish = resync_finish;
  fill_batch (p, b);
  if (b->n == 0 && p->resync_inflight == 0) {
    /* Walked everything and every resync record has retired, yet regions
     * remain (one read before a local failure did not count, R3, or its
     * hash differed, R7): walk again; the next step makes a batch. */
    br__resync_restart (p, false);
  }
  br_mutex_unlock (&g->lock);
  if (b->n == 0 || br__region_batch_post (b) < 0) {
    free (b);
    return;
  }
  p->resync_busy = true;
}

/* ---- resync on request ---- */

struct request {
  struct br_peer *p;
  uint32_t vol;
  uint64_t *map;                    /* NULL: everything */
  bool checksum;
  int err;
};

/* Task thread: the bits first, durably (I1: set before the resync that
 * clears them). */
static void
request_work (void *arg)
{
  struct request *t = arg;
  struct br_group *g = t->p->g;

  for (size_t i = 0; i < g->n_vols && t->err == 0; i++) {
    struct br_volume *v = g->vols[i];
    int slot = v->slot[t->p->idx];

    if (t->map == NULL)
      t->err = br_sb_mark_all (v->sb, slot);
    else if (i == t->vol)
      for (uint64_t rg = 0; rg < v->nregions && t->err == 0; rg++)
        if (t->map[rg / 64] & (UINT64_C (1) << (rg % 64))) {
          uint64_t off = rg << v->gran_shift;
          uint64_t len = (uint64_t) 1 << v->gran_shift;

          t->err = br_sb_mark (v->sb, UINT32_C (1) << slot, off,
                               off + len > v->size ? v->size - off : len);
        }
  }
}

static void
request_done (void *arg, bool cancelled)
{
  struct request *t = arg;
  struct br_peer *p = t->p;
  struct br_group *g = p->g;
  bool step = false, logged = false;

  if (cancelled)
    goto out;
  if (t->err < 0) {
    br_error ("peer %s (group %s): cannot mark regions for a resync: %s",
              p->node->name, g->name, br_strerror (-t->err));
    goto out;
  }
  br_mutex_lock (&g->lock);
  for (size_t i = 0; i < g->n_vols; i++) {
    struct br_volume *v = g->vols[i];

    if (t->map != NULL && i != t->vol)
      continue;
    for (uint64_t rg = 0; rg < v->nregions; rg++)
      if (t->map == NULL || (t->map[rg / 64] & (UINT64_C (1) << (rg % 64))))
        br__bits_resync_region (p, v->id, rg);
  }
  if (t->checksum) {
    p->checksum_asked = true;
    if (p->state == BR_PEER_SYNCING)
      p->resync_checksum = true;
  }
  /* Connected: resync now.  Otherwise the bits are set and durable, and
   * the next connection's snapshot takes them. */
  if (br_peer_state_queues (p->state)) {
    logged = p->state != BR_PEER_SYNCING;     /* a change: its line says */
    br__peer_event_why (p, BR_EV_RESYNC, "resync of %s requested%s",
                        t->map ? "differing regions" : "every region",
                        t->checksum ? " (checksum)" : "");
    step = true;
  }
  br_mutex_unlock (&g->lock);
  if (!logged)
    br_info ("peer %s (group %s): resync of %s requested%s", p->node->name,
             g->name, t->map ? "differing regions" : "every region",
             t->checksum ? " (checksum)" : "");
  if (step)
    br__resync_step (p);
 out:
  free (t->map);
  free (t);
}

int
br__resync_request (struct br_peer *p, uint32_t vol, uint64_t *map,
                    bool checksum)
{
  struct request *t = calloc (1, sizeof *t);

  if (t == NULL || (*t = (struct request) { .p = p, .vol = vol, .map = map,
                                            .checksum = checksum },
                    br__task_post (p->g->e, request_work, request_done,
                                   t) < 0)) {
    free (t);
    return -ENOMEM;
  }
  return 0;
}
