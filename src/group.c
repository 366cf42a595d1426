/* blockrelay — the primary's write path.
 *
 * Every client operation on a volume goes through here: it is made durable
 * in the scoreboard, given a place in its group's ordered stream, written
 * to the local disk and, for sync peers, waited on.
 *
 * The write path, step by step (br_volume_pwrite / br_volume_zero):
 *
 *   1. Lock the region stripes the write covers (I3: a resync read of a
 *      region and a live write to it never interleave).
 *   2. br_sb_mark(): set the region bits of every peer and wait until they
 *      are on disk (I1).  Concurrent writers share one msync.
 *   3. Under the group lock: wait while an async peer's queue is full,
 *      take the next sequence number, record it as the region's last
 *      write (last_seq[]), and append one shared record to the queue of
 *      every connected peer.  The stream order is therefore the sequence
 *      order (I3).  Peers that are not connected get nothing: their bits
 *      are already set and the resync engine will send the region later
 *      (logging mode).
 *   4. Wake the loop thread, which sends the record, and in parallel write
 *      the local disk (and fdatasync it for FUA).
 *   5. Unlock the stripes.
 *   6. Sync peers: wait until each one that had the record acknowledges it
 *      applied (or durable, for FUA), or loses its connection (then the
 *      write stays tracked in its bitmap: I5).
 *
 * Bits are cleared lazily by the loop thread (bits.c) when a peer's
 * durable watermark passes a record, under the conditions listed there
 * (I2).
 *
 * FLUSH (I4): a FLUSH record takes the next sequence number; once every
 * connected sync peer reports it durable, every write before it, from any
 * connection, is durable there too, because the peer applies and syncs in
 * stream order.  Together with fdatasync of the local disk this makes
 * flush global, so can_multi_conn is honest.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* ---- records ---- */

struct br_rec *
br__rec_new (uint8_t type, uint16_t flags, uint32_t volume, uint64_t seq,
             uint64_t offset, uint64_t bytes, const void *data)
{
  size_t len = type == BR_T_WRITE ? bytes : 0;
  struct br_rec *r = malloc (sizeof *r + len);

  if (r == NULL)
    return NULL;
  atomic_init (&r->refs, 1);
  memset (&r->h, 0, sizeof r->h);
  r->h.version = BR_WIRE_VERSION;
  r->h.type = type;
  r->h.flags = flags;
  r->h.volume = volume;
  r->h.seq = seq;
  r->h.offset = offset;
  r->bytes = bytes;
  r->born_ms = br__now_ms ();
  r->adopted = false;
  r->payload = r->data;
  if (type == BR_T_WRITE && len > 0) {
    memcpy (r->data, data, len);
    r->h.length = len;
    r->h.payload_sum = br_wire_checksum (r->data, len);
  }
  else if (type == BR_T_ZERO)
    r->h.count = bytes;
  return r;
}

struct br_rec *
br__rec_adopt (uint16_t flags, uint32_t volume, uint64_t offset, uint32_t len,
               uint8_t *buf, uint64_t sum)
{
  struct br_rec *r = br__rec_new (BR_T_WRITE, flags, volume, 0, offset, 0,
                                  NULL);

  if (r == NULL)
    return NULL;
  r->bytes = len;
  r->h.length = len;
  r->h.payload_sum = sum;
  r->payload = buf;
  r->adopted = true;
  return r;
}

void
br__rec_seal (struct br_rec *r, uint64_t seq)
{
  r->h.seq = seq;
  br_wire_encode_hdr (&r->h, r->hdr);
}

void
br__rec_put (struct br_rec *r)
{
  if (r && atomic_fetch_sub (&r->refs, 1) == 1) {
    if (r->adopted)
      free (r->payload);
    free (r);
  }
}

/* ---- FIFO of records ---- */

int
br__fifo_push (struct br_fifo *f, struct br_rec *r)
{
  if (f->len == f->cap) {
    size_t ncap = f->cap ? f->cap * 2 : 64;
    struct br_rec **n = malloc (ncap * sizeof *n);

    if (n == NULL)
      return -ENOMEM;
    for (size_t i = 0; i < f->len; i++)
      n[i] = f->slot[(f->head + i) % f->cap];
    free (f->slot);
    f->slot = n;
    f->cap = ncap;
    f->head = 0;
  }
  f->slot[(f->head + f->len) % f->cap] = r;
  f->len++;
  return 0;
}

struct br_rec *
br__fifo_at (const struct br_fifo *f, size_t i)
{
  assert (i < f->len);
  return f->slot[(f->head + i) % f->cap];
}

struct br_rec *
br__fifo_pop (struct br_fifo *f)
{
  struct br_rec *r;

  if (f->len == 0)
    return NULL;
  r = f->slot[f->head];
  f->head = (f->head + 1) % f->cap;
  f->len--;
  return r;
}

/* Drop (and release) the entries from index N to the end. */
void
br__fifo_truncate (struct br_fifo *f, size_t n)
{
  while (f->len > n) {
    f->len--;
    br__rec_put (f->slot[(f->head + f->len) % f->cap]);
  }
}

void
br__fifo_free (struct br_fifo *f)
{
  struct br_rec *r;

  while ((r = br__fifo_pop (f)) != NULL)
    br__rec_put (r);
  free (f->slot);
  memset (f, 0, sizeof *f);
}

/* ---- helpers ---- */

uint64_t
br__region (const struct br_volume *v, uint64_t off)
{
  return off >> v->gran_shift;
}

static bool
peer_connected (const struct br_peer *p)
{
  enum br_peer_state s = __atomic_load_n (&p->state, __ATOMIC_RELAXED);

  return s == BR_PEER_REPLICATING || s == BR_PEER_SYNCING;
}

static bool
any_connected (const struct br_group *g)
{
  for (size_t i = 0; i < g->n_peers; i++)
    if (peer_connected (g->peers[i]))
      return true;
  return false;
}

void
br__wake (struct br_engine *e)
{
  /* Coalesce: one uv_async_send per batch of records. */
  if (!atomic_exchange (&e->wake_pending, true))
    uv_async_send (&e->wakeup);
}

/* on-congestion: pull-ahead (group lock held): instead of making writers
 * wait, drop what P has not sent yet and stop queueing live writes to it.
 * Every dropped record's bits are still set (last_seq keeps them from
 * being cleared); the loop thread resyncs them once the link drains. */
static void
pull_ahead (struct br_peer *p)
{
  for (size_t i = p->n_sent; i < p->q.len; i++) {
    struct br_rec *r = br__fifo_at (&p->q, i);
    if (r->h.type == BR_T_WRITE)
      p->queued_bytes -= r->bytes;
  }
  br__fifo_truncate (&p->q, p->n_sent);
  br_info ("peer %s (group %s): queue full, pulling ahead (writes are "
           "tracked and resynced when the link drains)", p->node->name,
           p->g->name);
  br__peer_set_state (p, BR_PEER_AHEAD);
}

/* A relay's writer gives up waiting once its upstream session closes. */
static bool
cancelled (struct br_group *g, bool relay)
{
  return relay && atomic_load (&g->cancel);
}

/* Wait (group lock held) until no connected async peer's queue would go
 * over its bound with BYTES more.  A queue that is empty always accepts, so
 * one write larger than the bound cannot wait forever.  A pull-ahead peer
 * never makes writers wait.  0, or -ECANCELED (relay). */
static int
wait_for_queue_space (struct br_group *g, uint64_t bytes, bool relay)
{
  for (;;) {
    bool full = false;

    if (cancelled (g, relay))
      return -ECANCELED;

    for (size_t i = 0; i < g->n_peers; i++) {
      struct br_peer *p = g->peers[i];

      if (peer_connected (p) && p->mode == BR_MODE_ASYNC &&
          p->queued_bytes > 0 && p->queued_bytes + bytes > p->queue_limit) {
        if (p->congestion == BR_CONGESTION_PULL_AHEAD)
          pull_ahead (p);
        else
          full = true;
      }
    }
    if (!full)
      return 0;
    g->space_waiters++;
    pthread_cond_wait (&g->cond, &g->lock);
    g->space_waiters--;
  }
}

#define LOST_EPOCH UINT64_MAX   /* "not connected when queued" */

/* A writer waiting for its peers: each has its own condition variable, so
 * an acknowledgement wakes only the writers it can complete (a broadcast
 * on a shared one woke every writer on every ACK). */
struct br_waiter {
  struct br_waiter *next, **pprev;
  uint64_t seq;
  pthread_cond_t cond;
};

void
br__group_notify (struct br_group *g, uint64_t upto)
{
  for (struct br_waiter *w = g->waiters; w; w = w->next)
    if (w->seq <= upto)
      pthread_cond_signal (&w->cond);
  if (g->space_waiters)
    pthread_cond_broadcast (&g->cond);
}

void
br__group_notify_all (struct br_group *g)
{
  br__group_notify (g, UINT64_MAX);
}

/* Under the group lock: append R (which may be NULL when no peer is
 * connected) to every connected peer's queue.  Returns
 * the mask of sync peers that must acknowledge it, with their epochs. */
static uint32_t
enqueue (struct br_group *g, struct br_rec *r, uint64_t data_bytes,
         uint64_t epochs[BR_MAX_PEERS])
{
  uint32_t wait_mask = 0;

  for (size_t i = 0; i < g->n_peers; i++) {
    struct br_peer *p = g->peers[i];

    if (!peer_connected (p)) {
      /* A sync peer that must not be silently skipped: the writer waits
       * for it (block) or fails (fail) in wait_for_peers(). */
      if (p->mode == BR_MODE_SYNC && p->link->on_peer_loss != BR_LOSS_LOG) {
        wait_mask |= 1u << i;
        epochs[i] = LOST_EPOCH;
      }
      continue;
    }
    if (r == NULL || br__fifo_push (&p->q, r) < 0) {
      /* No record (allocating it failed: with the group lock held, R is
       * NULL while a peer is connected only then) or no room for it.  Its
       * bits are set and last_seq keeps them set, so dropping the
       * connection loses nothing (I5); the loop thread closes it and the
       * peer is resynced. */
      snprintf (p->last_error, sizeof p->last_error,
                "out of memory queueing a record");
      p->must_drop = true;
      br__peer_set_state (p, BR_PEER_LOGGING);
      continue;
    }
    atomic_fetch_add (&r->refs, 1);
    p->queued_bytes += data_bytes;
    if (p->mode == BR_MODE_SYNC) {
      wait_mask |= 1u << i;
      epochs[i] = p->epoch;
    }
  }
  return wait_mask;
}

/* Wait until every peer in MASK has applied (or made durable) SEQ, or lost
 * the connection it had when the record was queued.  What a loss means
 * depends on the link's on-peer-loss policy (I5):
 *   log    the write completes; it stays tracked in the peer's bitmap;
 *   block  wait until the peer is back and replicating (its resync then
 *          covered this write) or block-timeout passes, then as log;
 *   fail   the write fails with EIO (it is on the local disk and tracked).
 * Returns 0, -EIO, or -ECANCELED (a relay whose upstream went away). */
static int
wait_for_peers (struct br_group *g, uint32_t mask, const uint64_t *epochs,
                uint64_t seq, bool durable, bool relay)
{
  struct timespec deadline = { 0, 0 };
  struct br_waiter w = { .seq = seq };
  int ret = 0;

  if (mask == 0)
    return 0;
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_REALTIME);
  pthread_cond_init (&w.cond, &ca);
  pthread_condattr_destroy (&ca);
  pthread_mutex_lock (&g->lock);
  w.next = g->waiters;
  w.pprev = &g->waiters;
  if (g->waiters)
    g->waiters->pprev = &w.next;
  g->waiters = &w;
  for (;;) {
    bool waiting = false, blocked = false;

    if (cancelled (g, relay)) {
      ret = -ECANCELED;
      break;
    }
    for (size_t i = 0; i < g->n_peers; i++) {
      struct br_peer *p = g->peers[i];

      if (!(mask & (1u << i)))
        continue;
      if (p->epoch != epochs[i] || !peer_connected (p)) {
        switch (p->link->on_peer_loss) {
        case BR_LOSS_LOG:
          mask &= ~(1u << i);
          break;
        case BR_LOSS_FAIL:
          ret = -EIO;
          mask &= ~(1u << i);
          break;
        case BR_LOSS_BLOCK:
          if (p->state == BR_PEER_REPLICATING)
            mask &= ~(1u << i);
          else if (deadline.tv_sec == 0) {
            clock_gettime (CLOCK_REALTIME, &deadline);
            deadline.tv_sec += p->link->block_timeout_ms / 1000;
            deadline.tv_nsec += (p->link->block_timeout_ms % 1000) * 1000000;
            if (deadline.tv_nsec >= 1000000000) {
              deadline.tv_sec++;
              deadline.tv_nsec -= 1000000000;
            }
          }
          blocked = waiting = (mask & (1u << i)) != 0;
          break;
        }
      }
      else if ((durable ? p->durable : p->applied) >= seq)
        mask &= ~(1u << i);
      else
        waiting = true;
    }
    if (!waiting)
      break;
    if (blocked) {
      if (pthread_cond_timedwait (&w.cond, &g->lock, &deadline) ==
          ETIMEDOUT) {
        br_warn ("group %s: a sync peer stayed away past block-timeout; "
                 "completing writes in logging mode", g->name);
        break;
      }
    }
    else
      pthread_cond_wait (&w.cond, &g->lock);
  }
  *w.pprev = w.next;
  if (w.next)
    w.next->pprev = w.pprev;
  pthread_mutex_unlock (&g->lock);
  pthread_cond_destroy (&w.cond);
  if (ret == -EIO)
    br_error ("group %s: a sync peer with on-peer-loss: fail is not "
              "connected; failing the write with EIO", g->name);
  return ret;
}

/* ---- a relay's waits for its sync peers, pipelined ----
 *
 * A relay does not wait for its sync peers record by record (one round
 * trip per record would cap a sync chain at a few thousand writes a
 * second).  It queues the record, writes locally, remembers
 * (up_seq, seq, mask, epochs) and applies the next record; the upstream's
 * ACK watermarks are held below the first up_seq not yet acknowledged by
 * every sync peer that got it (replica.c send_ack), so the upstream still
 * learns "applied" (or "durable") only once the whole sync chain has it.
 * Peers with on-peer-loss block or fail keep the plain wait, whose
 * policies need a waiting writer. */

static bool
all_log (const struct br_group *g, uint32_t mask)
{
  for (size_t i = 0; i < g->n_peers; i++)
    if ((mask & (1u << i)) && g->peers[i]->link->on_peer_loss != BR_LOSS_LOG)
      return false;
  return true;
}

/* Remember a wait (group lock NOT held); -ENOMEM: the caller waits. */
static int
relay_defer (struct br_group *g, uint64_t up_seq, uint64_t seq, uint32_t mask,
             const uint64_t *epochs, bool durable)
{
  struct br_relay_wait *w;

  pthread_mutex_lock (&g->lock);
  if (g->rw_len == g->rw_cap) {
    size_t ncap = g->rw_cap ? g->rw_cap * 2 : 256;
    struct br_relay_wait *n = malloc (ncap * sizeof *n);

    if (n == NULL) {
      pthread_mutex_unlock (&g->lock);
      return -ENOMEM;
    }
    for (size_t i = 0; i < g->rw_len; i++)
      n[i] = g->rw[(g->rw_head + i) % g->rw_cap];
    free (g->rw);
    g->rw = n;
    g->rw_cap = ncap;
    g->rw_head = 0;
  }
  w = &g->rw[(g->rw_head + g->rw_len++) % g->rw_cap];
  w->up_seq = up_seq;
  w->seq = seq;
  w->mask = mask;
  w->durable = durable;
  memcpy (w->epochs, epochs, sizeof w->epochs);
  pthread_mutex_unlock (&g->lock);
  return 0;
}

uint64_t
br__relay_hold (struct br_group *g)
{
  while (g->rw_len > 0) {
    const struct br_relay_wait *w = &g->rw[g->rw_head];

    for (size_t i = 0; i < g->n_peers; i++) {
      const struct br_peer *p = g->peers[i];

      if (!(w->mask & (1u << i)) || p->epoch != w->epochs[i] ||
          !peer_connected (p))
        continue;               /* acknowledged, or lost: logged (I5) */
      if (p->applied < w->seq || (w->durable && p->durable < w->seq))
        return w->up_seq;
    }
    g->rw_head = (g->rw_head + 1) % g->rw_cap;
    g->rw_len--;
  }
  return UINT64_MAX;
}

void
br__relay_reset (struct br_group *g)
{
  pthread_mutex_lock (&g->lock);
  g->rw_head = g->rw_len = 0;
  pthread_mutex_unlock (&g->lock);
}

/* The end of a relayed operation: wait for the sync peers, or leave it to
 * br__relay_hold. */
static int
relay_finish (struct br_group *g, uint64_t up_seq, uint64_t seq,
              uint32_t mask, const uint64_t *epochs, bool durable)
{
  if (mask == 0)
    return 0;
  if (all_log (g, mask) &&
      relay_defer (g, up_seq, seq, mask, epochs, durable) == 0)
    return 0;
  return wait_for_peers (g, mask, epochs, seq, durable, true);
}

/* on-peer-loss: fail refuses writes up front while such a peer is away
 * (racy read; a loss after it is caught by wait_for_peers). */
static bool
must_fail (const struct br_group *g)
{
  for (size_t i = 0; i < g->n_peers; i++) {
    const struct br_peer *p = g->peers[i];
    if (p->mode == BR_MODE_SYNC && p->link->on_peer_loss == BR_LOSS_FAIL &&
        !peer_connected (p))
      return true;
  }
  return false;
}

/* What a relay's apply thread passes to replicate() (NULL for the
 * primary's clients). */
struct relay_in {
  uint64_t up_seq;                  /* in the upstream's stream */
  uint8_t **payload;                /* WRITE: its buffer, which the record
                                       takes instead of copying it */
  uint64_t sum;                     /* its checksum, verified on receipt */
};

static struct br_rec *
make_rec (struct br_volume *v, uint8_t type, uint16_t flags, const void *buf,
          size_t count, uint64_t off, const struct relay_in *ri)
{
  struct br_rec *r;

  if (ri && type == BR_T_WRITE && ri->payload && *ri->payload) {
    r = br__rec_adopt (flags, v->id, off, count, *ri->payload, ri->sum);
    if (r)
      *ri->payload = NULL;
    return r;
  }
  return br__rec_new (type, flags, v->id, 0, off, count, buf);
}

/* The common path of WRITE and ZERO, for the primary's clients and for a
 * relay's apply thread (RI: data that came from upstream).  BUF stays
 * valid until the end: a record that adopted it is held until then. */
static int
replicate (struct br_volume *v, uint8_t type, uint16_t flags,
           const void *buf, size_t count, uint64_t off,
           const struct relay_in *ri)
{
  struct br_group *g = v->g;
  bool relay = ri != NULL;
  uint64_t first, last, seq, epochs[BR_MAX_PEERS];
  uint32_t wait_mask;
  struct br_rec *r = NULL;
  bool fua = flags & BR_F_FUA;
  int err;

  if (count == 0)
    return 0;
  if (off > v->size || count > v->size - off)
    return -ERANGE;
  if (must_fail (g)) {
    br_error ("%s: a sync peer with on-peer-loss: fail is not connected; "
              "refusing the write", v->cfg->name);
    return -EIO;
  }
  first = br__region (v, off);
  last = br__region (v, off + count - 1);
  /* The first write makes this copy the origin of data: it is no longer
   * "fresh" (a full sync into it would lose something).  A relay's copy
   * stays fresh until its upstream's SYNCED. */
  if (!relay && (br_sb_flags (v->sb) & BR_SB_FRESH))
    br_sb_set_flags (v->sb, 0, BR_SB_FRESH);

  br_rangelock_lock (&v->locks, first, last);

  if (v->slot_mask) {
    err = br_sb_mark (v->sb, v->slot_mask, off, count);
    if (err < 0) {
      br_rangelock_unlock (&v->locks, first, last);
      br_error ("%s: cannot record the write in the scoreboard: %s",
                v->cfg->name, br_strerror (-err));
      return err;
    }
  }

  /* Copy the data and checksum it outside the lock when a peer will
   * probably want it (the state is read racily; rechecked below). */
  if (any_connected (g))
    r = make_rec (v, type, flags, buf, count, off, ri);

  pthread_mutex_lock (&g->lock);
  if (wait_for_queue_space (g, type == BR_T_WRITE ? count : 0, relay) < 0) {
    pthread_mutex_unlock (&g->lock);
    br_rangelock_unlock (&v->locks, first, last);
    br__rec_put (r);
    return -ECANCELED;          /* nothing written; the bits stay set */
  }
  seq = ++g->next_seq;
  br__bits_note_write (v, first, last, seq);
  if (r == NULL && any_connected (g))
    r = make_rec (v, type, flags, buf, count, off, ri);
  if (r)
    br__rec_seal (r, seq);
  wait_mask = enqueue (g, r, type == BR_T_WRITE ? count : 0, epochs);
  pthread_mutex_unlock (&g->lock);
  if (r)
    br__wake (g->e);            /* our reference: until BUF is written */

  if (type == BR_T_WRITE)
    err = br_disk_pwrite (v->disk, buf, count, off);
  else
    err = br_disk_zero (v->disk, count, off, flags & BR_F_MAY_TRIM);
  /* FUA: durable here before the reply.  A relay's session syncs on FUA
   * itself (apply.c) before it reports the record durable upstream. */
  if (err == 0 && fua && !relay)
    err = br_disk_flush (v->disk);
  if (err < 0) {
    /* The record may already be on the peers while this disk refused it:
     * the regions must be resent from what this disk holds.  Still under
     * the stripes, so no acknowledgement can have cleared their bits. */
    pthread_mutex_lock (&g->lock);
    br__bits_mark_out_of_sync (v, first, last);
    pthread_mutex_unlock (&g->lock);
  }
  br_rangelock_unlock (&v->locks, first, last);
  br__rec_put (r);                  /* the queues hold their own */

  if (err < 0) {
    br_error ("%s: local %s at %llu+%zu failed: %s (the peers will get "
              "this disk's content of the region)", v->cfg->name,
              type == BR_T_WRITE ? "write" : "zero",
              (unsigned long long) off, count, br_strerror (-err));
    return err;
  }
  if (relay)
    return relay_finish (g, ri->up_seq, seq, wait_mask, epochs, fua);
  return wait_for_peers (g, wait_mask, epochs, seq, fua, false);
}

int
br_volume_pwrite (br_volume *v, const void *buf, size_t count, uint64_t off,
                  bool fua)
{
  if (count > BR_WIRE_MAX_PAYLOAD) {
    /* Larger than one frame: split, each piece in order. */
    for (size_t done = 0; done < count; done += BR_WIRE_MAX_PAYLOAD) {
      size_t n = count - done < BR_WIRE_MAX_PAYLOAD
        ? count - done : BR_WIRE_MAX_PAYLOAD;
      int err = br_volume_pwrite (v, (const char *) buf + done, n, off + done,
                                  fua);
      if (err < 0)
        return err;
    }
    return 0;
  }
  return replicate (v, BR_T_WRITE, fua ? BR_F_FUA : 0, buf, count, off,
                    NULL);
}

int
br_volume_zero (br_volume *v, size_t count, uint64_t off, bool may_trim,
                bool fua)
{
  uint16_t flags = (fua ? BR_F_FUA : 0) | (may_trim ? BR_F_MAY_TRIM : 0);

  return replicate (v, BR_T_ZERO, flags, NULL, count, off, NULL);
}

int
br_volume_pread (br_volume *v, void *buf, size_t count, uint64_t off)
{
  if (off > v->size || count > v->size - off)
    return -ERANGE;
  return br_disk_pread (v->disk, buf, count, off);
}

/* FLUSH: a FLUSH record in the stream, the local disk synced (by the
 * session's sync thread for a relay: apply.c), then wait until every sync
 * peer has everything before it durable.  RELAY: as for replicate(). */
static int
flush_stream (struct br_volume *v, bool relay, uint64_t up_seq)
{
  struct br_group *g = v->g;
  uint64_t seq, epochs[BR_MAX_PEERS];
  uint32_t wait_mask = 0;
  struct br_rec *r = NULL;
  int err;

  pthread_mutex_lock (&g->lock);
  seq = ++g->next_seq;
  if (any_connected (g))
    r = br__rec_new (BR_T_FLUSH, 0, v->id, 0, 0, 0, NULL);
  if (r)
    br__rec_seal (r, seq);
  wait_mask = enqueue (g, r, 0, epochs);
  pthread_mutex_unlock (&g->lock);
  if (r) {
    br__rec_put (r);
    br__wake (g->e);
  }

  if (!relay && (err = br_disk_flush (v->disk)) < 0) {
    br_error ("%s: local flush failed: %s", v->cfg->name, br_strerror (-err));
    return err;
  }
  if (relay)
    return relay_finish (g, up_seq, seq, wait_mask, epochs, true);
  return wait_for_peers (g, wait_mask, epochs, seq, true, false);
}

int
br_volume_flush (br_volume *v)
{
  return flush_stream (v, false, 0);
}

/* Group lock held: append to P's queue a SYNCED record for V at GEN, with
 * the next sequence number.  False (and P is dropped by the loop thread,
 * then compares generations again) if there is no memory for it. */
bool
br__queue_synced (struct br_peer *p, struct br_volume *v, uint64_t gen)
{
  struct br_rec *r = br__rec_new (BR_T_SYNCED, 0, v->id, 0, 0, 0, NULL);

  if (r) {
    r->h.count = gen;
    br__rec_seal (r, ++v->g->next_seq);
  }
  if (r == NULL || br__fifo_push (&p->q, r) < 0) {
    br__rec_put (r);
    snprintf (p->last_error, sizeof p->last_error,
              "out of memory queueing a record");
    p->must_drop = true;
    return false;
  }
  return true;
}

/* ---- relaying (a replica's apply thread) ---- */

int
br__relay_write (struct br_volume *v, const struct br_frame_hdr *h,
                 uint8_t **payload)
{
  struct relay_in ri = { .up_seq = h->seq, .payload = payload,
                         .sum = h->payload_sum };

  if (h->type == BR_T_WRITE)
    return replicate (v, BR_T_WRITE, h->flags, *payload, h->length,
                      h->offset, &ri);
  return replicate (v, BR_T_ZERO, h->flags, NULL, h->count, h->offset, &ri);
}

int
br__relay_flush (struct br_volume *v, uint64_t up_seq)
{
  return flush_stream (v, true, up_seq);
}

/* This copy of V is now consistent at GEN (its upstream's SYNCED was
 * applied and is durable): every peer that is in sync with this copy
 * (replicating: no out-of-sync set left) gets the same news in its stream,
 * after everything it has been sent.  A peer still resyncing gets it from
 * br__resync_done(); one that is away compares generations when it is
 * back. */
void
br__relay_synced (struct br_volume *v, uint64_t gen)
{
  struct br_group *g = v->g;
  bool queued = false;

  pthread_mutex_lock (&g->lock);
  for (size_t i = 0; i < g->n_peers; i++) {
    struct br_peer *p = g->peers[i];

    if (p->state == BR_PEER_REPLICATING && br__queue_synced (p, v, gen))
      queued = true;
  }
  pthread_mutex_unlock (&g->lock);
  if (queued)
    br__wake (g->e);
}
