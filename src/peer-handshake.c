/* blockrelay — the upstream side of a handshake, from WELCOME on: the
 * replica's answer validated, AUTH sent, the verdict for every volume
 * (I6), a full sync's marks, and the start of the stream.  HELLO is sent
 * by peer.c when the connection is up.
 *
 * Both sides compute br_gen_verdict() (verdict.c) from the same two views
 * (HELLO's and WELCOME's) and log the deciding rule.  Events made here:
 *
 *   SYNC_NEEDED    finish_handshake()    (the verdict left dirty regions,
 *                                        the replica's bitmap included)
 *   IN_SYNC        finish_handshake()    (nothing dirty)
 *   SPLIT_BRAIN    judge(), or a replica that refuses with SPLIT_BRAIN
 *   LOST / ERROR   a refusal, a bad WELCOME, failed AUTH, a verdict that
 *                  says wait, no memory
 *
 * Rules:
 *   H1. Nothing in WELCOME is used before br_wire_decode_welcome() and,
 *       with a secret, its MAC have been checked, and br__welcome_problem()
 *       has matched it against the group (node, protocol, volumes, sizes,
 *       granularities).
 *   H2. A full sync marks every bit of the peer's slot durably on the task
 *       thread (the loop thread never msyncs); p->welcome_busy is set
 *       meanwhile, and the result is used only if the connection (epoch)
 *       is still the one that asked and still in HANDSHAKE.
 *   H3. The stream starts (finish_handshake) only after every mark is
 *       durable, so a bit the resync will clear is set first (I1).
 *   H4. A verdict that takes the replica's bitmap (failback, resolve:
 *       verdict.h take_owed) waits in HANDSHAKE for the replica's BITMAP
 *       frames (p->bitmap_wait): each is checked (volume, range, bits past
 *       the volume, its count), the regions of every volume must add up
 *       to the `owed` its WELCOME announced, and they are marked in this
 *       side's bitmap for the peer durably (task thread, as H2) before
 *       the stream starts.  Anything else in between drops the link.
 *
 * Loop thread only; the group lock is taken for the state change.
 */
#include "internal.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* The connection is up and every full-sync mark is durable: from now on
 * the stream starts, with a resync if any bit is set. */
static void
finish_handshake (struct br_peer *p)
{
  struct br_group *g = p->g;
  bool dirty;

  br_mutex_lock (&g->lock);
  p->start_seq = p->applied = p->durable = g->next_seq;
  p->backoff_ms = 0;
  p->last_error[0] = '\0';
  if (br__resync_snapshot (p) < 0) {
    br_mutex_unlock (&g->lock);
    br__peer_lost (p, BR_EV_LOST, "out of memory");
    return;
  }
  dirty = p->oos_count > 0;
  br__peer_event (p, dirty ? BR_EV_SYNC_NEEDED : BR_EV_IN_SYNC);
  br_mutex_unlock (&g->lock);
  if (dirty)
    br__resync_step (p);
  else
    br__peer_flush_queue (p);
}

/* The marks the verdict asks for, durably, on the task thread (the loop
 * thread never msyncs): every bit of the peer's slot for a full sync, and
 * the regions of the replica's bitmap that were taken (H4). */
struct mark_task {
  struct br_peer *p;
  uint64_t epoch;
  uint64_t vols;                    /* bit i: volume i needs a full sync */
  uint64_t **taken;                 /* per volume: regions to mark, or
                                       NULL (owned by the task) */
  int err;
};

static int
mark_taken (struct br_volume *v, int slot, const uint64_t *map)
{
  uint64_t gran = (uint64_t) 1 << v->gran_shift;

  for (uint64_t rg = 0; rg < v->nregions; rg++) {
    uint64_t end = rg;
    int err;

    if (!(map[rg / 64] & (UINT64_C (1) << (rg % 64))))
      continue;
    while (end + 1 < v->nregions &&
           (map[(end + 1) / 64] & (UINT64_C (1) << ((end + 1) % 64))))
      end++;
    err = br_sb_mark (v->sb, 1u << slot, rg * gran,
                      (end + 1) * gran > v->size ? v->size - rg * gran
                      : (end - rg + 1) * gran);
    if (err < 0)
      return err;
    rg = end;
  }
  return 0;
}

static void
mark_work (void *arg)
{
  struct mark_task *t = arg;
  struct br_group *g = t->p->g;

  for (size_t i = 0; i < g->n_vols && t->err == 0; i++) {
    int slot = g->vols[i]->slot[t->p->idx];

    if (t->vols & (UINT64_C (1) << i))
      t->err = br_sb_mark_all (g->vols[i]->sb, slot);
    else if (t->taken && t->taken[i])
      t->err = mark_taken (g->vols[i], slot, t->taken[i]);
  }
}

static void
free_taken (uint64_t **taken, size_t n)
{
  if (taken == NULL)
    return;
  for (size_t i = 0; i < n; i++)
    free (taken[i]);
  free (taken);
}

static void
mark_done (void *arg, bool cancelled)
{
  struct mark_task *t = arg;
  struct br_peer *p = t->p;

  p->welcome_busy = false;
  if (!cancelled && p->epoch == t->epoch && p->state == BR_PEER_HANDSHAKE) {
    if (t->err < 0)
      br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_LOCAL_IO,
                        "cannot mark the regions to resync: %s",
                        br_strerror (-t->err));
    else
      finish_handshake (p);
  }
  free_taken (t->taken, p->g->n_vols);
  free (t);
}

/* Post the marks (full: volumes to mark entirely; TAKEN: given to the
 * task), or start the stream if there are none. */
static void
mark_and_finish (struct br_peer *p, uint64_t full, uint64_t **taken)
{
  struct mark_task *t;

  if (full == 0 && taken == NULL) {
    finish_handshake (p);
    return;
  }
  t = calloc (1, sizeof *t);
  if (t) {
    *t = (struct mark_task) { .p = p, .epoch = p->epoch, .vols = full,
                              .taken = taken };
    if (br__task_post (p->g->e, mark_work, mark_done, t) == 0) {
      p->welcome_busy = true;
      return;
    }
  }
  free (t);
  free_taken (taken, p->g->n_vols);
  br__peer_lost (p, BR_EV_LOST, "cannot start the resync: out of memory");
}

void
br__peer_bitmap_reset (struct br_peer *p)
{
  free_taken (p->taken, p->g->n_vols);
  free (p->taken_count);
  free (p->taken_want);
  p->taken = NULL;
  p->taken_count = p->taken_want = NULL;
  p->take_vols = p->full_vols = 0;
  p->bitmap_wait = false;
}

static int
bitmap_begin (struct br_peer *p, const struct br_welcome *w)
{
  struct br_group *g = p->g;

  p->taken = calloc (g->n_vols, sizeof *p->taken);
  p->taken_count = calloc (g->n_vols, sizeof *p->taken_count);
  p->taken_want = calloc (g->n_vols, sizeof *p->taken_want);
  if (!p->taken || !p->taken_count || !p->taken_want)
    return -ENOMEM;
  for (size_t i = 0; i < g->n_vols; i++)
    if (p->take_vols & (UINT64_C (1) << i)) {
      p->taken[i] = calloc ((g->vols[i]->nregions + 63) / 64,
                            sizeof **p->taken);
      if (p->taken[i] == NULL)
        return -ENOMEM;
      p->taken_want[i] = w->vols[i].owed;
    }
  p->bitmap_wait = true;
  return 0;
}

void
br__peer_on_bitmap (struct br_peer *p, const struct br_frame_hdr *h,
                    const uint8_t *payload)
{
  struct br_group *g = p->g;
  struct br_volume *v;
  uint64_t words = h->length / 8, nwords, set = 0;
  uint64_t **taken;

  if (h->volume >= g->n_vols || !(p->take_vols & (UINT64_C (1) << h->volume))) {
    br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME, "BITMAP for volume "
                      "%u, which the verdict did not take", h->volume);
    return;
  }
  v = g->vols[h->volume];
  nwords = (v->nregions + 63) / 64;
  if (h->offset / 64 > nwords || words > nwords - h->offset / 64) {
    br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME, "BITMAP of %s past "
                      "the end of the volume", v->cfg->name);
    return;
  }
  for (uint64_t i = 0; i < words; i++) {
    uint64_t word = le64toh (*(const uint64_t *) (payload + 8 * i));
    uint64_t wi = h->offset / 64 + i;

    if (wi == nwords - 1 && v->nregions % 64 &&
        (word >> (v->nregions % 64)) != 0) {
      br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME, "BITMAP of %s "
                        "has bits past its last region", v->cfg->name);
      return;
    }
    set += (uint64_t) __builtin_popcountll (word);
    p->taken[h->volume][wi] |= word;
  }
  if (set != h->count) {
    br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME, "BITMAP of %s holds "
                      "%llu regions, its header says %llu", v->cfg->name,
                      (unsigned long long) set,
                      (unsigned long long) h->count);
    return;
  }
  p->taken_count[h->volume] += set;
  p->taken_regions += set;
  if (!(h->flags & BR_F_LAST))
    return;
  for (size_t i = 0; i < g->n_vols; i++)
    if ((p->take_vols & (UINT64_C (1) << i)) &&
        p->taken_count[i] != p->taken_want[i]) {
      br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME, "the BITMAP of %s "
                        "holds %llu regions, its WELCOME said %llu",
                        g->vols[i]->cfg->name,
                        (unsigned long long) p->taken_count[i],
                        (unsigned long long) p->taken_want[i]);
      return;
    }
  br_info ("peer %s (group %s): its bitmap taken: %llu regions of %s%s "
           "resynced from here", p->node->name, g->name,
           (unsigned long long) p->taken_count[h->volume],
           v->cfg->name, __builtin_popcountll (p->take_vols) > 1
           ? " and more" : "");
  taken = p->taken;
  p->taken = NULL;
  {
    uint64_t full = p->full_vols;

    br__peer_bitmap_reset (p);
    mark_and_finish (p, full, taken);
  }
}

/* I6: the verdict for every volume.  Returns the volumes that need a full
 * sync (and sets p->take_vols), or -1 after dropping the connection. */
static int64_t
judge (struct br_peer *p, const struct br_welcome *w)
{
  struct br_group *g = p->g;
  uint64_t full = 0;

  p->verdict[0] = '\0';
  for (size_t i = 0; i < g->n_vols; i++) {
    struct br_volume *v = g->vols[i];
    struct br_wire_vol ours;
    struct br_verdict vd;

    br__peer_vol_view (p, i, &ours);
    vd = br__vol_verdict (&ours, &w->vols[i], br__hello_flags (p));
    br__events_verdict (p, v, &vd);     /* logged with the change */
    if (i == 0)
      p->last_verdict[0] = '\0';
    {
      size_t used = strlen (p->last_verdict);

      snprintf (p->last_verdict + used, sizeof p->last_verdict - used,
                "%s%s: %s by rule %d", used ? "; " : "", v->cfg->name,
                br_verdict_action_name (vd.action), vd.rule);
    }
    if (vd.take_owed && w->vols[i].owed > 0)
      p->take_vols |= UINT64_C (1) << i;
    switch (vd.action) {
    case BR_VERDICT_RESYNC:
    case BR_VERDICT_ASSUMED:
      break;
    case BR_VERDICT_FULL_SYNC:
      full |= UINT64_C (1) << i;
      break;
    case BR_VERDICT_WAIT:
      br__peer_lost (p, BR_EV_LOST, "%s: waiting (rule %d: %s)", v->cfg->name,
                     vd.rule, vd.why);
      return -1;
    case BR_VERDICT_DST_AHEAD:
    case BR_VERDICT_SPLIT_BRAIN:
      br_error ("split brain on volume %s by rule %d: %s; node %s is at "
                "generation %016llx, node %s at %016llx; replication stops "
                "and neither copy is overwritten until an operator chooses "
                "a side", v->cfg->name, vd.rule, vd.why, g->e->self->name,
                (unsigned long long) ours.gen, p->node->name,
                (unsigned long long) w->vols[i].gen);
      br__peer_lost (p, BR_EV_SPLIT_BRAIN, "split brain on %s by rule %d: %s",
                     v->cfg->name, vd.rule, vd.why);
      return -1;
    }
  }
  return (int64_t) full;
}

void
br__peer_on_welcome (struct br_peer *p, const uint8_t *payload, uint32_t len)
{
  struct br_engine *e = p->g->e;
  struct br_welcome *w = malloc (sizeof *w);
  char why[512], esc[BR_ESCAPED_SIZE (BR_WIRE_MSG_MAX)];
  uint8_t mac[BR_WIRE_MAC_SIZE];
  const char *reason;
  int64_t full;

  if (w == NULL) {
    br__peer_lost (p, BR_EV_LOST, "out of memory");
    return;
  }
  if (br_wire_decode_welcome (payload, len, w, &reason) < 0) {
    br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME,
                      "bad WELCOME: %s", reason);
    goto out;
  }
  if (w->status != BR_WELCOME_OK) {
    br_escape_text (esc, sizeof esc, w->message, sizeof w->message);
    br_error ("peer %s refused group %s: %s", p->node->name, p->g->name,
              esc);
    br__peer_lost (p, w->status == BR_WELCOME_SPLIT_BRAIN ? BR_EV_SPLIT_BRAIN
                   : BR_EV_ERROR, "refused: %s", esc);
    goto out;
  }
  memset (mac, 0, sizeof mac);
  if (e->secret) {
    if (!br_wire_auth_verify (e->secret, e->secret_len, "server", p->nonce,
                              w->nonce, w->mac)) {
      br__peer_lost (p, BR_EV_ERROR, "authentication failed: %s does not know "
                     "the shared secret", p->node->name);
      goto out;
    }
    br_wire_auth_mac (e->secret, e->secret_len, "client", w->nonce,
                      p->nonce, mac);
  }
  if (br__welcome_problem (p, w, why, sizeof why)) {
    br__peer_lost (p, BR_EV_ERROR, "%s", why);
    goto out;
  }
  if (br__peer_send_frame (p, BR_T_AUTH, mac, sizeof mac) < 0) {
    br__peer_lost (p, BR_EV_LOST, "cannot send AUTH");
    goto out;
  }
  br__peer_bitmap_reset (p);
  if ((full = judge (p, w)) < 0)
    goto out;
  if (p->take_vols) {
    /* H4: the replica's BITMAP frames follow; the marks wait for them. */
    p->full_vols = (uint64_t) full;
    if (bitmap_begin (p, w) < 0) {
      br__peer_bitmap_reset (p);
      br__peer_lost (p, BR_EV_LOST, "out of memory");
    }
    goto out;
  }
  mark_and_finish (p, (uint64_t) full, NULL);
 out:
  free (w);
}
