/* blockrelay — the upstream side of a handshake, from WELCOME on: the
 * replica's answer validated, AUTH sent, the verdict for every volume
 * (I6), a full sync's marks, and the start of the stream.  HELLO is sent
 * by peer.c when the connection is up.
 *
 * Both sides compute br_gen_verdict() (verdict.c) from the same two views
 * (HELLO's and WELCOME's) and log the deciding rule.  Events made here:
 *
 *   SYNC_NEEDED    finish_handshake()    (the verdict left dirty regions)
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
 *
 * Loop thread only; the group lock is taken for the state change.
 */
#include "internal.h"

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

/* A full sync: every bit of the peer's slot, durably, on the task thread
 * (the loop thread never msyncs). */
struct mark_task {
  struct br_peer *p;
  uint64_t epoch;
  uint64_t vols;                    /* bit i: volume i needs a full sync */
  int err;
};

static void
mark_work (void *arg)
{
  struct mark_task *t = arg;
  struct br_group *g = t->p->g;

  for (size_t i = 0; i < g->n_vols && t->err == 0; i++)
    if (t->vols & (UINT64_C (1) << i))
      t->err = br_sb_mark_all (g->vols[i]->sb, g->vols[i]->slot[t->p->idx]);
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
                        "cannot mark a full sync: %s",
                        br_strerror (-t->err));
    else
      finish_handshake (p);
  }
  free (t);
}

/* I6: the verdict for every volume.  Returns the volumes that need a full
 * sync, or -1 after dropping the connection. */
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

    br__vol_view (v, v->slot[p->idx], &ours);
    vd = br__vol_verdict (&ours, &w->vols[i], br__hello_flags (g));
    br__events_verdict (p, v, &vd);     /* logged with the change */
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
  if ((full = judge (p, w)) < 0)
    goto out;
  if (full) {
    struct mark_task *t = calloc (1, sizeof *t);

    if (t) {
      *t = (struct mark_task) { .p = p, .epoch = p->epoch,
                                .vols = (uint64_t) full };
      if (br__task_post (e, mark_work, mark_done, t) == 0) {
        p->welcome_busy = true;
        goto out;
      }
    }
    free (t);
    br__peer_lost (p, BR_EV_LOST, "cannot start a full sync");
    goto out;
  }
  finish_handshake (p);
 out:
  free (w);
}
