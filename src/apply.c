/* blockrelay — a replica session's apply and sync threads.
 *
 * The loop thread (replica.c) validates every frame and queues it on the
 * session; the apply thread applies the queue strictly in stream order
 * (I3) and publishes the applied watermark; the sync thread makes data
 * durable and publishes the durable watermark.  A relay's apply thread
 * passes each record through the write path (group.c br__relay_*), which
 * forwards it to the node's own peers.
 *
 * Invariants (see also R1-R4 in replica.c):
 *   R3. A disk error stops the session's applying at that record: the
 *       record and everything after it are never acknowledged; an ERROR
 *       frame tells the upstream why (fail_locked, sent by the loop).
 *   S1, S2 below.
 */
#include "replica.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define SYNC_BYTES (16u * 1024 * 1024)
#define SYNC_MS 50

/* The apply thread writes records in stream order and never waits for
 * stable storage; the sync thread makes data durable (fdatasync of every
 * volume written since its last round) when asked.  Protocol:
 *
 *   apply: pwrite; dirty[vol] = true; applied = seq
 *   sync:  target = applied; for each vol: if exchange (dirty, false):
 *          fdatasync; durable = target
 *
 * Setting dirty after the pwrite returns and clearing it before the
 * fdatasync makes every write at or below target covered by the round
 * (S1).  Rounds are requested on FLUSH and FUA, after SYNC_BYTES of
 * writes, and SYNC_MS after the oldest unsynced write, busy or idle (S2:
 * under any steady load the durable watermark trails by at most about
 * SYNC_MS, so bits and resyncs are not held up).  SYNCED is applied by the
 * apply thread itself: it needs its data durable before the header says
 * "consistent at generation G".
 */

static void *thread_exit (struct br_replica_session *s);

static void
request_sync (struct br_replica_session *s)
{
  s->sync_req = true;
  pthread_cond_signal (&s->sync_cond);
}

/* Sync every volume written since the last round (S1). */
static int
sync_dirty (struct br_replica_session *s)
{
  for (size_t i = 0; i < s->g->n_vols; i++)
    if (atomic_exchange (&s->dirty[i], false)) {
      int err = br__volume_sync (s->g->vols[i]);
      if (err < 0) {
        atomic_store (&s->dirty[i], true);
        return err;
      }
    }
  return 0;
}

static void
fail_locked (struct br_replica_session *s, uint64_t seq, int err,
             const char *what)
{
  if (s->error)
    return;
  s->error = -err;
  s->error_seq = seq;
  snprintf (s->errmsg, sizeof s->errmsg, "%s failed: %s", what,
            br_strerror (-err));
  br_error ("group %s from %s: %s; no further writes are applied",
            s->g->name, s->peer, s->errmsg);
  uv_async_send (&s->notify);
}

void *
br__sync_thread (void *arg)
{
  struct br_replica_session *s = arg;

  pthread_mutex_lock (&s->lock);
  for (;;) {
    uint64_t target;
    int err;

    while (!s->sync_req && !s->stop)
      pthread_cond_wait (&s->sync_cond, &s->lock);
    if (s->stop || s->error)
      break;
    s->sync_req = false;
    target = s->applied;
    pthread_mutex_unlock (&s->lock);
    err = sync_dirty (s);
    pthread_mutex_lock (&s->lock);
    if (err < 0) {
      fail_locked (s, target + 1, err, "fdatasync");
      break;
    }
    if (target > s->durable) {
      s->durable = target;
      uv_async_send (&s->notify);
    }
  }
  pthread_mutex_unlock (&s->lock);
  return thread_exit (s);
}

/* A resync starts (the RESYNC marker, or a RESYNC record as a second
 * line of defence): this copy is a mix of old and new regions until
 * SYNCED, durably so before anything that follows is applied.  Every
 * volume of the group: the group is one consistent set, and its SYNCED
 * records come together at the end of the resync.  A relay's children in
 * sync with it become inconsistent with it (the marker is forwarded). */
static int
mark_inconsistent (struct br_replica_session *s)
{
  struct br_group *g = s->g;
  bool was = false;
  int err;

  for (size_t i = 0; i < g->n_vols; i++) {
    if (!(br_sb_flags (g->vols[i]->sb) & BR_SB_CONSISTENT))
      continue;
    was = true;
    if ((err = br_sb_set_flags (g->vols[i]->sb, 0, BR_SB_CONSISTENT)) < 0)
      return err;
  }
  if (was)
    br_info ("group %s: resync from %s started; inconsistent until it "
             "completes", g->name, s->peer);
  if (g->n_peers)
    br__relay_resync_begin (g);
  return 0;
}

/* SYNCED: everything before it is applied; make it durable, then adopt
 * the upstream's generation and mark this copy consistent (and no longer
 * fresh: it has been synced). */
static int
apply_synced (struct br_replica_session *s, const struct op *o)
{
  struct br_volume *v = s->g->vols[o->h.volume];
  int slot, err;

  /* Every volume, whatever its dirty flag says: a sync round running in
   * the other thread may have taken the flag and not finished yet. */
  for (size_t i = 0; i < s->g->n_vols; i++)
    if ((err = br__volume_sync (s->g->vols[i])) < 0)
      return err;
  /* The base for the upstream first, then the generation: a copy at a
   * generation it got from this upstream's SYNCED always records it as
   * their base (the verdict's rule 8 relies on that when the upstream
   * stopped before it could record its side). */
  slot = br_sb_peer_slot (v->sb, s->peer);
  /* What this copy owed the upstream (it was its upstream once: its
   * writes the upstream lacked) was taken by the upstream's verdict and
   * resynced from there, or is moot now that both are equal: cleared
   * durably before the generation, so a copy at the upstream's
   * generation never owes it anything (verdict rule 4). */
  if (slot >= 0 && br_sb_count (v->sb, slot) > 0) {
    for (int64_t rg = br_sb_next_set (v->sb, slot, 0); rg >= 0;
         rg = br_sb_next_set (v->sb, slot, (uint64_t) rg + 1))
      br_sb_clear (v->sb, slot, (uint64_t) rg);
    if ((err = br_sb_sync (v->sb)) < 0)
      return err;
  }
  if ((slot >= 0 && (err = br_sb_set_peer_gen (v->sb, slot, o->h.count)) < 0)
      || (err = br_sb_set_gen (v->sb, o->h.count)) < 0 ||
      (err = br_sb_set_flags (v->sb, BR_SB_CONSISTENT, BR_SB_FRESH)) < 0)
    return err;
  br_info ("%s: in sync with %s at generation %016llx", v->cfg->name,
           s->peer, (unsigned long long) o->h.count);
  if (s->g->n_peers)
    br__relay_synced (v, o->h.count);
  return 0;
}

/* s->lock held: remember that HASH record SEQ differs here. */
static int
note_differ (struct br_replica_session *s, uint64_t seq)
{
  if (s->n_differ == s->cap_differ) {
    size_t ncap = s->cap_differ ? 2 * s->cap_differ : 64;
    uint64_t *n = realloc (s->differ, ncap * sizeof *n);

    if (n == NULL)
      return -ENOMEM;
    s->differ = n;
    s->cap_differ = ncap;
  }
  s->differ[s->n_differ++] = seq;
  return 0;
}

/* HASH: compare this copy of the range with the upstream's hash.  Every
 * record before it in the stream is applied, so the two hashes are of the
 * same bytes unless the copies differ (R6 of replica.c: the seq goes into
 * a DIFFER frame before the ACK that covers it).  A resync's HASH counts
 * as a write of the range: its durable ACK must mean this copy of it is
 * on stable storage, since the upstream then takes the region as in sync
 * and may clear its bit. */
static int
apply_hash (struct br_replica_session *s, const struct op *o)
{
  struct br_volume *v = s->g->vols[o->h.volume];
  uint8_t mine[BR_WIRE_HASH_SIZE];
  int err = 0;

  if (o->h.count > s->hash_cap) {
    uint8_t *n = realloc (s->hash_buf, o->h.count);

    if (n == NULL)
      return -ENOMEM;
    s->hash_buf = n;
    s->hash_cap = o->h.count;
  }
  if ((err = br_disk_pread (v->disk, s->hash_buf, o->h.count,
                            o->h.offset)) < 0)
    return err;
  br_wire_region_hash (s->hash_buf, o->h.count, mine);
  if (memcmp (mine, o->payload, sizeof mine) != 0) {
    pthread_mutex_lock (&s->lock);
    err = note_differ (s, o->h.seq);
    pthread_mutex_unlock (&s->lock);
  }
  if (err == 0 && (o->h.flags & BR_F_RESYNC))
    atomic_store (&s->dirty[o->h.volume], true);
  return err;
}

static int
apply_one (struct br_replica_session *s, struct op *o)
{
  struct br_volume *v = s->g->vols[o->h.volume];
  int err;

  if ((o->h.flags & BR_F_RESYNC) &&
      (br_sb_flags (v->sb) & BR_SB_CONSISTENT) &&
      (err = mark_inconsistent (s)) < 0)
    return err;
  /* A relay passes writes through the write path, which marks them in
   * its scoreboard for its own peers and forwards them (relay.c). */
  switch (o->h.type) {
  case BR_T_RESYNC:
    return mark_inconsistent (s);
  case BR_T_SYNCED:
    return apply_synced (s, o);
  case BR_T_HASH:
    return apply_hash (s, o);
  case BR_T_WRITE:
    err = s->g->n_peers ? br__relay_write (v, &o->h, &o->payload)
      : br_disk_pwrite (v->disk, o->payload, o->h.length, o->h.offset);
    break;
  case BR_T_ZERO:
    err = s->g->n_peers ? br__relay_write (v, &o->h, &o->payload)
      : br_disk_zero (v->disk, o->h.count, o->h.offset,
                      o->h.flags & BR_F_MAY_TRIM);
    break;
  default:                      /* FLUSH: asks for a sync round */
    return s->g->n_peers ? br__relay_flush (v, o->h.seq) : 0;
  }
  if (err == 0)
    atomic_store (&s->dirty[o->h.volume], true);   /* after the write: S1 */
  return err;
}

/* Each thread, as it returns: the loop thread joins them once both have
 * (replica.c finish_close). */
static void *
thread_exit (struct br_replica_session *s)
{
  atomic_fetch_add (&s->threads_exited, 1);
  uv_async_send (&s->notify);
  return NULL;
}

static void
deadline_in (struct timespec *ts, long ms)
{
  clock_gettime (CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* When the apply thread asks for a sync round (S2): what it has applied
 * since its last request. */
struct pacing {
  uint64_t unsynced;            /* bytes */
  uint32_t oldest;              /* br__now_ms of the oldest unsynced write */
  bool pending;                 /* writes not yet covered by a request */
};

static void
request_covering (struct br_replica_session *s, struct pacing *pc)
{
  request_sync (s);
  pc->pending = false;
  pc->unsynced = 0;
}

/* s->lock held: the next op, or NULL when the thread must stop.  While
 * idle with writes pending, asks for their round SYNC_MS after the oldest
 * (S2, idle). */
static struct op *
next_op (struct br_replica_session *s, struct pacing *pc)
{
  struct op *o;

  while (s->head == NULL && !s->stop && !s->error) {
    struct timespec ts;
    uint32_t age;

    if (!pc->pending) {
      pthread_cond_wait (&s->cond, &s->lock);
      continue;
    }
    age = br__now_ms () - pc->oldest;
    deadline_in (&ts, age >= SYNC_MS ? 0 : SYNC_MS - age);
    if (pthread_cond_timedwait (&s->cond, &s->lock, &ts) == ETIMEDOUT &&
        s->head == NULL)
      request_covering (s, pc);
  }
  if (s->stop || s->error)
    return NULL;
  o = s->head;
  s->head = o->next;
  if (s->head == NULL)
    s->tail = NULL;
  s->queued -= o->h.length;
  return o;
}

/* s->lock held: O was applied; publish it and pace the sync rounds (S2,
 * busy).  FLUSH, HASH and the RESYNC marker carry no data but must become
 * durable (a peer waits for them): they always ask for a round. */
static void
applied (struct br_replica_session *s, const struct op *o, struct pacing *pc)
{
  bool control = o->h.type == BR_T_FLUSH || o->h.type == BR_T_RESYNC ||
                 o->h.type == BR_T_HASH;

  s->applied = o->h.seq;
  if (o->h.type == BR_T_SYNCED && o->h.seq > s->durable)
    s->durable = o->h.seq;      /* apply_synced synced everything */
  else if (o->h.type == BR_T_WRITE || o->h.type == BR_T_ZERO) {
    if (!pc->pending)
      pc->oldest = br__now_ms ();
    pc->pending = true;
    pc->unsynced += o->h.length;
  }
  if (pc->pending && (control || (o->h.flags & BR_F_FUA) ||
                      pc->unsynced >= SYNC_BYTES ||
                      (uint32_t) (br__now_ms () - pc->oldest) >= SYNC_MS))
    request_covering (s, pc);
  else if (control)
    request_sync (s);           /* nothing new, but answer it */
}

static void
free_op (struct op *o)
{
  free (o->payload);
  free (o);
}

void *
br__apply_thread (void *arg)
{
  struct br_replica_session *s = arg;
  struct pacing pc = { 0 };
  struct op *o;

  pthread_mutex_lock (&s->lock);
  while ((o = next_op (s, &pc)) != NULL) {
    int err;

    pthread_mutex_unlock (&s->lock);
    err = apply_one (s, o);
    pthread_mutex_lock (&s->lock);
    if (err == -ECANCELED) {    /* the session is closing (relay) */
      free_op (o);
      break;
    }
    if (err < 0) {
      char what[128];
      snprintf (what, sizeof what, "%s: %s of %u bytes at offset %llu",
                s->g->vols[o->h.volume]->cfg->name,
                o->h.type == BR_T_SYNCED ? "sync"
                : o->h.type == BR_T_HASH ? "hash compare"
                : o->h.type == BR_T_ZERO ? "zero" : "write",
                o->h.type == BR_T_ZERO || o->h.type == BR_T_HASH
                ? (unsigned) o->h.count : o->h.length,
                (unsigned long long) o->h.offset);
      fail_locked (s, o->h.seq, err, what);
      free_op (o);
      break;
    }
    applied (s, o, &pc);
    free_op (o);
    uv_async_send (&s->notify);
  }
  pthread_mutex_unlock (&s->lock);
  return thread_exit (s);
}
