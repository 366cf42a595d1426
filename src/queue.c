/* blockrelay — replicated records and each peer's queue of them.
 *
 * A record (struct br_rec) is one replicated operation: WRITE, ZERO,
 * FLUSH, SYNCED, HASH or the RESYNC marker, with its frame header encoded once
 * and its data copied (or adopted) once, shared by the queues of every
 * peer of the group with a reference count.
 *
 * A peer's queue (p->q) holds the records queued to it and not yet
 * durable there, in sequence order; q[0 .. n_sent) have been handed to
 * the socket.  This file is the one owner of the queue and its counters:
 *
 *   Q1. queued_bytes is the sum of the WRITE payload bytes in q;
 *       resync_inflight the number of records in q with BR_F_RESYNC.
 *   Q2. n_sent <= q.len; records leave q only from the front (durable,
 *       br__queue_retire), from the back (unsent, br__queue_drop_unsent)
 *       or all at once (br__queue_clear); their bits are never touched
 *       here (bits.c decides when a bit may clear).
 * Lock rule: every br__queue_* runs with the group lock held (asserted).
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
  r->differs = false;
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

struct br_rec *
br__rec_hash (uint16_t flags, uint32_t volume, uint64_t offset,
              const void *buf, uint64_t len)
{
  uint8_t hash[BR_WIRE_HASH_SIZE];
  struct br_rec *r;

  br_wire_region_hash (buf, len, hash);
  /* Built as a WRITE of the hash (payload and its checksum), then made a
   * HASH covering LEN bytes. */
  r = br__rec_new (BR_T_WRITE, flags, volume, 0, offset, sizeof hash, hash);
  if (r) {
    r->h.type = BR_T_HASH;
    r->h.count = len;
    r->bytes = len;
  }
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

/* ---- a peer's queue ---- */

static void
account (struct br_peer *p, const struct br_rec *r, int sign)
{
  uint64_t bytes = r->h.type == BR_T_WRITE ? r->bytes : 0;
  uint64_t resync = (r->h.flags & BR_F_RESYNC) ? 1 : 0;

  if (sign > 0) {
    p->queued_bytes += bytes;
    p->resync_inflight += resync;
  }
  else {
    assert (p->queued_bytes >= bytes && p->resync_inflight >= resync);
    p->queued_bytes -= bytes;
    p->resync_inflight -= resync;
  }
}

int
br__queue_push (struct br_peer *p, struct br_rec *r)
{
  BR_ASSERT_LOCKED (&p->g->lock);
  if (br__fifo_push (&p->q, r) < 0)
    return -ENOMEM;
  atomic_fetch_add (&r->refs, 1);
  account (p, r, +1);
  return 0;
}

void
br__queue_retire (struct br_peer *p,
                  void (*fn) (struct br_peer *p, struct br_rec *r, void *arg),
                  void *arg)
{
  BR_ASSERT_LOCKED (&p->g->lock);
  while (p->q.len > 0 && p->n_sent > 0) {
    struct br_rec *r = br__fifo_at (&p->q, 0);

    if (r->h.seq > p->durable)
      break;
    br__fifo_pop (&p->q);
    p->n_sent--;
    account (p, r, -1);
    if (r->h.type == BR_T_WRITE || r->h.type == BR_T_ZERO) {
      p->replicated_bytes += r->bytes;          /* metrics.c */
      p->replicated_writes++;
      if (r->h.flags & BR_F_RESYNC)
        p->resync_replicated_bytes += r->bytes;
    }
    if (fn)
      fn (p, r, arg);
    br__rec_put (r);
  }
}

void
br__queue_drop_unsent (struct br_peer *p)
{
  BR_ASSERT_LOCKED (&p->g->lock);
  for (size_t i = p->n_sent; i < p->q.len; i++)
    account (p, br__fifo_at (&p->q, i), -1);
  br__fifo_truncate (&p->q, p->n_sent);
}

void
br__queue_clear (struct br_peer *p)
{
  BR_ASSERT_LOCKED (&p->g->lock);
  br__fifo_free (&p->q);
  p->n_sent = 0;
  p->queued_bytes = 0;
  p->resync_inflight = 0;
}

void
br__queue_sent (struct br_peer *p, size_t n)
{
  BR_ASSERT_LOCKED (&p->g->lock);
  assert (p->n_sent + n <= p->q.len);
  p->n_sent += n;
}

struct br_rec *
br__queue_find_sent (const struct br_peer *p, uint64_t seq)
{
  size_t lo = 0, hi = p->n_sent;

  BR_ASSERT_LOCKED (&p->g->lock);
  while (lo < hi) {                     /* q is in strictly rising seq order */
    size_t mid = lo + (hi - lo) / 2;
    struct br_rec *r = br__fifo_at (&p->q, mid);

    if (r->h.seq == seq)
      return r;
    if (r->h.seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* Seal R with the group's next sequence number and queue it to P; on
 * failure P is dropped (its bits are set: nothing is lost, I5). */
static bool
queue_control (struct br_peer *p, struct br_rec *r)
{
  if (r) {
    br__rec_seal (r, ++p->g->next_seq);
    if (br__queue_push (p, r) == 0) {
      br__rec_put (r);
      return true;
    }
  }
  br__rec_put (r);
  snprintf (p->last_error, sizeof p->last_error,
            "out of memory queueing a record");
  atomic_store (&p->must_drop, true);
  return false;
}

bool
br__queue_resync_begin (struct br_peer *p)
{
  BR_ASSERT_LOCKED (&p->g->lock);
  return queue_control (p, br__rec_new (BR_T_RESYNC, 0, 0, 0, 0, 0, NULL));
}

bool
br__queue_synced (struct br_peer *p, struct br_volume *v, uint64_t gen)
{
  struct br_rec *r = br__rec_new (BR_T_SYNCED, 0, v->id, 0, 0, 0, NULL);

  BR_ASSERT_LOCKED (&p->g->lock);
  if (r)
    r->h.count = gen;
  return queue_control (p, r);
}
