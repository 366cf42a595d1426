/* blockrelay — online verify: does a peer's copy of a volume match ours?
 *
 * `blockrelay verify VOLUME --peer NODE` (control.c) starts a job on the
 * peer: it walks the volume's regions in order and hands batches of them
 * to the task thread (resync.c's region batches), which reads each region
 * under its stripe lock and queues a HASH|VERIFY record of it in the same
 * critical section.  The peer compares the hash with its own copy after
 * applying everything before it in the stream (apply.c), so a live write
 * racing the verify is on both sides of the comparison or on neither:
 * writes continue, and only real differences are reported.  The peer names
 * the records whose range differs in DIFFER frames (peer.c), before the
 * ACK that covers them; each record's verdict is taken when it retires
 * (br__verify_retired, from bits.c).
 *
 * Job states:
 *
 *   (none) --start--> RUNNING --walk done, all retired--> DONE
 *                        |                                  ^
 *                        +-- lost / left REPLICATING ----> FAILED
 *
 *   V1. A region that is dirty for the peer (bit set, not merely held) is
 *       skipped and counted: it is known to differ or to be on its way,
 *       and a resync, not a verify, brings it in sync.
 *   V2. Records are queued only while the peer is REPLICATING on the
 *       connection (epoch) the job began on.  If the connection is lost
 *       or the peer leaves REPLICATING, the job fails: its records in
 *       flight may never get a verdict.  Run it again.
 *   V3. A job is DONE when its walk has passed the last region and every
 *       record it queued has retired, so every verdict is in.
 *   V4. Flow control: one batch on the task thread at a time, at most
 *       VERIFY_MAX_INFLIGHT records queued, and none while the peer's
 *       queue is half full.  Writers come first.
 *   V5. A verify changes no bit.  With --repair, a DONE job with
 *       differences hands them to br__resync_request: marked durably,
 *       then resynced (the peer goes SYNCING, then REPLICATING).
 *
 * A peer has at most one job; the last one's result stays readable until
 * the next starts.  Locks: every field of a job is under the group lock
 * (control.c reads it from the loop thread, the task thread's batches
 * update it).  The job object lives as long as its peer, so a batch that
 * finishes after its job ended finds it (and a newer job's id).
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define VERIFY_MAX_INFLIGHT 256

/* A batch's own state: its job, and the regions skipped (V1) before each
 * item, so that a batch cut short un-counts those the walk will see
 * again. */
struct vbatch {
  uint64_t id;
  uint64_t skipped;                 /* in the whole batch */
  uint64_t skipped_before[BR_REGION_BATCH];
};

struct br_verify {
  struct br_peer *p;
  uint64_t id;                      /* bumps at every start */
  enum br_verify_state state;
  struct br_volume *v;
  bool repair, repaired;
  uint64_t epoch;                   /* the connection it runs on (V2) */
  uint64_t cursor;                  /* next region to look at */
  uint64_t compared, skipped, inflight, n_differ;
  uint64_t *differ;                 /* one bit per region of v */
  bool busy;                        /* a batch is on the task thread */
  uint64_t start_ms, end_ms;
  char error[256];
};

const char *
br_verify_state_name (enum br_verify_state s)
{
  static const char *names[] = { "none", "running", "done", "failed" };
  return (unsigned) s <= BR_VERIFY_FAILED ? names[s] : "?";
}

void
br__verify_free (struct br_peer *p)
{
  if (p->verify) {
    free (p->verify->differ);
    free (p->verify);
    p->verify = NULL;
  }
}

int
br__verify_start (struct br_peer *p, struct br_volume *v, bool repair,
                  char *err, size_t errlen)
{
  struct br_group *g = p->g;
  struct br_verify *j;
  uint64_t *map;
  int ret = 0;

  br_mutex_lock (&g->lock);
  if (p->verify && (p->verify->state == BR_VERIFY_RUNNING ||
                    p->verify->busy)) {
    snprintf (err, errlen, "a verify of %s on %s is already running",
              p->verify->v->cfg->name, p->node->name);
    ret = -EBUSY;
  }
  else if (p->state != BR_PEER_REPLICATING) {
    snprintf (err, errlen, "peer %s of group %s is %s, not replicating: "
              "a verify needs a connected peer in sync", p->node->name,
              g->name, br_peer_state_name (p->state));
    ret = -EAGAIN;
  }
  else if (p->verify == NULL &&
           (p->verify = calloc (1, sizeof *p->verify)) == NULL)
    ret = -ENOMEM;
  else if ((map = calloc ((v->nregions + 63) / 64, 8)) == NULL)
    ret = -ENOMEM;
  else {
    j = p->verify;
    free (j->differ);
    *j = (struct br_verify) {
      .p = p, .id = j->id + 1, .state = BR_VERIFY_RUNNING, .v = v,
      .repair = repair, .epoch = p->epoch, .differ = map,
      .start_ms = uv_now (&g->e->loop),
    };
  }
  if (ret == -ENOMEM)
    snprintf (err, errlen, "out of memory");
  br_mutex_unlock (&g->lock);
  if (ret == 0) {
    br_info ("verify of %s on %s started%s", v->cfg->name, p->node->name,
             repair ? " (repairing what differs)" : "");
    br__verify_step (p);
  }
  return ret;
}

/* Group lock held: the job ends (DONE or FAILED, with a reason). */
static void
finish (struct br_verify *j, enum br_verify_state st, const char *why)
{
  j->state = st;
  j->end_ms = uv_now (&j->p->g->e->loop);
  if (why)
    snprintf (j->error, sizeof j->error, "%s", why);
  br__events_verify_done (j->p, j->v, st == BR_VERIFY_FAILED,
                          j->compared + j->skipped, j->n_differ, j->repair,
                          why);
}

/* Group lock held: R retired on the peer; its verdict is final (V3). */
void
br__verify_retired (struct br_peer *p, struct br_rec *r)
{
  struct br_verify *j = p->verify;
  uint64_t rg;

  if (j == NULL || j->state != BR_VERIFY_RUNNING || j->v->id != r->h.volume
      || j->inflight == 0)
    return;                     /* a failed job's record */
  j->inflight--;
  j->compared++;
  rg = r->h.offset >> j->v->gran_shift;
  if (r->differs) {
    j->differ[rg / 64] |= UINT64_C (1) << (rg % 64);
    j->n_differ++;
  }
}

/* ---- batches ---- */

static struct br_rec *
verify_make (struct br_region_batch *b, size_t i, struct br_volume *v,
             uint64_t off, const uint8_t *buf, uint64_t len)
{
  return br__rec_hash (BR_F_VERIFY, v->id, off, buf, len);
}

static bool
verify_queue (struct br_region_batch *b, size_t i, struct br_rec *r)
{
  struct br_peer *p = b->p;
  struct br_verify *j = p->verify;

  if (j->id != ((struct vbatch *) b->arg)->id || j->state != BR_VERIFY_RUNNING ||
      p->state != BR_PEER_REPLICATING || j->inflight >= VERIFY_MAX_INFLIGHT)
    return false;
  br__rec_seal (r, ++p->g->next_seq);
  if (br__queue_push (p, r) < 0)
    return false;
  j->inflight++;
  return true;
}

static void
verify_finish (struct br_region_batch *b, bool cancelled)
{
  struct br_peer *p = b->p;
  struct br_group *g = p->g;
  struct br_verify *j = p->verify;
  bool more = false;

  struct vbatch *vb = b->arg;

  br_mutex_lock (&g->lock);
  j->busy = false;
  if (!cancelled && j->id == vb->id && j->state == BR_VERIFY_RUNNING) {
    if (b->done < b->n) {
      j->cursor = b->item[b->done].rg;        /* resume there */
      j->skipped -= vb->skipped - vb->skipped_before[b->done];
    }
    if (b->err < 0) {
      char msg[128];
      snprintf (msg, sizeof msg, "reading this node's copy failed: %s",
                br_strerror (-b->err));
      finish (j, BR_VERIFY_FAILED, msg);
    }
    more = b->err == 0 && b->done == b->n;
  }
  br_mutex_unlock (&g->lock);
  free (b->arg);
  if (!cancelled) {
    br__peer_flush_queue (p);
    if (more)
      br__verify_step (p);
  }
}

/* Group lock held: the next regions from the cursor into B, skipping the
 * dirty ones (V1). */
static void
fill (struct br_verify *j, struct br_region_batch *b)
{
  struct br_peer *p = j->p;
  struct br_volume *v = j->v;
  struct vbatch *vb = b->arg;

  while (b->n < BR_REGION_BATCH && j->cursor < v->nregions) {
    uint64_t rg = j->cursor++;

    if (br__bits_dirty (p, v, rg) || br__oos_test (p, v->id, rg)) {
      j->skipped++;
      vb->skipped++;
      continue;
    }
    vb->skipped_before[b->n] = vb->skipped;
    b->item[b->n].vol = v->id;
    b->item[b->n].rg = rg;
    b->item[b->n].hash = true;
    b->n++;
  }
}

/* Group lock held: a DONE job with differences to repair (V5).  The map
 * is copied: the job keeps its result. */
static void
repair (struct br_verify *j)
{
  size_t words = (j->v->nregions + 63) / 64;
  uint64_t *map = malloc (words * 8);

  if (map)
    memcpy (map, j->differ, words * 8);
  if (map == NULL || br__resync_request (j->p, j->v->id, map, false) < 0) {
    free (map);
    snprintf (j->error, sizeof j->error, "cannot start the repair: out of "
              "memory");
    br_error ("verify of %s on %s: %s", j->v->cfg->name, j->p->node->name,
              j->error);
    return;
  }
  j->repaired = true;
}

void
br__verify_step (struct br_peer *p)
{
  struct br_group *g = p->g;
  struct br_verify *j;
  struct br_region_batch *b = NULL;
  char done_msg[256] = "";

  br_mutex_lock (&g->lock);
  j = p->verify;
  if (j == NULL || j->state != BR_VERIFY_RUNNING || j->busy)
    goto out;
  if (p->epoch != j->epoch || p->state != BR_PEER_REPLICATING) {   /* V2 */
    char why[200];
    snprintf (why, sizeof why, "the connection to %s was lost or left "
              "replicating (now %s) during the verify", p->node->name,
              br_peer_state_name (p->state));
    finish (j, BR_VERIFY_FAILED, why);
    snprintf (done_msg, sizeof done_msg, "failed: %s", why);
    goto out;
  }
  if (j->cursor >= j->v->nregions) {
    if (j->inflight == 0) {                                    /* V3 */
      finish (j, BR_VERIFY_DONE, NULL);
      snprintf (done_msg, sizeof done_msg, "%llu regions differ (%llu "
                "compared, %llu skipped as dirty)",
                (unsigned long long) j->n_differ,
                (unsigned long long) j->compared,
                (unsigned long long) j->skipped);
      if (j->repair && j->n_differ > 0)
        repair (j);
    }
    goto out;
  }
  if (j->inflight >= VERIFY_MAX_INFLIGHT ||                    /* V4 */
      p->queued_bytes >= p->queue_limit / 2 ||
      (b = calloc (1, sizeof *b)) == NULL ||
      (b->arg = calloc (1, sizeof (struct vbatch))) == NULL)
    goto out;
  ((struct vbatch *) b->arg)->id = j->id;
  b->p = p;
  b->epoch = p->epoch;
  b->make = verify_make;
  b->queue = verify_queue;
  b->finish = verify_finish;
  fill (j, b);
  if (b->n > 0 && br__region_batch_post (b) == 0) {
    j->busy = true;
    b = NULL;
  }
 out:
  br_mutex_unlock (&g->lock);
  if (b) {
    free (b->arg);
    free (b);
  }
  if (done_msg[0])
    br_info ("verify of %s on %s: %s", j->v->cfg->name, p->node->name,
             done_msg);
}

void
br__verify_progress (struct br_peer *p, const struct br_volume *v,
                     uint64_t *total, uint64_t *done, uint64_t *differ,
                     uint64_t *running)
{
  const struct br_verify *j = p->verify;

  BR_ASSERT_LOCKED (&p->g->lock);
  *total = *done = *differ = *running = 0;
  if (j == NULL || j->v == NULL || (v && j->v != v))
    return;
  *total = j->v->nregions;
  *done = j->compared + j->skipped;
  *differ = j->n_differ;
  *running = j->state == BR_VERIFY_RUNNING;
}

int
br__verify_info (struct br_peer *p, struct br_verify_info *out)
{
  struct br_group *g = p->g;
  struct br_verify *j;
  int ret = 0;

  memset (out, 0, sizeof *out);
  br_mutex_lock (&g->lock);
  j = p->verify;
  if (j == NULL || j->v == NULL)
    goto out;
  out->state = j->state;
  out->volume = j->v->cfg->name;
  out->total = j->v->nregions;
  out->compared = j->compared;
  out->skipped = j->skipped;
  out->n_differ = j->n_differ;
  out->repair = j->repair;
  out->repaired = j->repaired;
  out->elapsed_ms = (j->state == BR_VERIFY_RUNNING
                     ? uv_now (&g->e->loop) : j->end_ms) - j->start_ms;
  snprintf (out->error, sizeof out->error, "%s", j->error);
  /* The differing regions as ranges of adjacent ones, in bytes. */
  for (uint64_t rg = 0; rg < j->v->nregions; rg++) {
    uint64_t gran = (uint64_t) 1 << j->v->gran_shift, off, end;

    if (!(j->differ[rg / 64] & (UINT64_C (1) << (rg % 64))))
      continue;
    off = rg * gran;
    while (rg + 1 < j->v->nregions &&
           (j->differ[(rg + 1) / 64] & (UINT64_C (1) << ((rg + 1) % 64))))
      rg++;
    end = (rg + 1) * gran < j->v->size ? (rg + 1) * gran : j->v->size;
    if (out->n_ranges % 64 == 0) {
      struct br_range *n = realloc (out->ranges, (out->n_ranges + 64) *
                                    sizeof *n);
      if (n == NULL) {
        ret = -ENOMEM;
        break;
      }
      out->ranges = n;
    }
    out->ranges[out->n_ranges++] = (struct br_range) { off, end - off };
  }
 out:
  br_mutex_unlock (&g->lock);
  if (ret < 0) {
    free (out->ranges);
    out->ranges = NULL;
  }
  return ret;
}
