/* blockrelay — relaying (cascade): a replica that forwards what it applies
 * to its own children.
 *
 * The flow of data is the shortest-path tree rooted at the primary
 * (topology.c).  A replica learns the origin of a group's stream from its
 * upstream's HELLO and makes its children in the tree rooted there its
 * peers (the primary's groups do the same at open, with itself as the
 * origin).  The origin is recorded in the scoreboards, so that a
 * restarted relay resumes forwarding — and resyncing its children —
 * before its upstream is back.
 *
 * Forwarding.  The relay's apply thread (apply.c) passes each record
 * through the primary's write path (group.c br__write_path): region
 * stripes, br_sb_mark() for its own peers (I1 at every hop), a sequence
 * number of the relay's own stream, the shared record (which adopts the
 * received buffer: no copy, no second checksum), the local write.
 * RESYNC flags and the RESYNC marker pass through; SYNCED from upstream
 * makes the relay consistent and is forwarded to every child that is
 * replicating.
 *
 * Pipelined waits.  A relay does not wait for its sync children record
 * by record (one round trip per record would cap a sync chain at a few
 * thousand writes a second).  It remembers (up_seq, seq, mask, epochs)
 * and applies the next record; the watermarks it reports upstream are
 * held below the first up_seq that its sync children have not
 * acknowledged (br__relay_hold), so the upstream learns "applied" (or
 * "durable") only once the whole sync chain has it.  Children with
 * on-peer-loss block or fail keep the plain wait their policies need.
 *
 * The peer set.  Peers are added or retired only while no apply thread
 * runs for the group (the apply thread reads them without the group
 * lock): at open, at start, or between upstream sessions.  A new origin
 * with the same children only changes the recorded origin; one with
 * other children retires the old peers and gives the new ones a full
 * sync (a failover in a chain).  br__relay_plan decides (loop thread),
 * br__relay_prepare writes the scoreboards (task thread), and
 * br__relay_commit publishes (loop thread).
 *
 * Lock rules: the pending waits (g->rw) are under the group lock.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* ---- pipelined waits ---- */

static bool
all_log (const struct br_group *g, uint32_t mask)
{
  for (size_t i = 0; i < g->n_peers; i++)
    if ((mask & (1u << i)) &&
        br_peer_loss_policy (br__peer_state (g->peers[i]),
                             g->peers[i]->link->on_peer_loss) != BR_LOSS_LOG)
      return false;
  return true;
}

/* Remember a wait (group lock NOT held); -ENOMEM: the caller waits. */
static int
relay_defer (struct br_group *g, uint64_t up_seq, const struct br_wait *bw,
             bool durable)
{
  struct br_relay_wait *w;

  br_mutex_lock (&g->lock);
  if (g->rw_len == g->rw_cap) {
    size_t ncap = g->rw_cap ? g->rw_cap * 2 : 256;
    struct br_relay_wait *n = malloc (ncap * sizeof *n);

    if (n == NULL) {
      br_mutex_unlock (&g->lock);
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
  w->seq = bw->seq;
  w->mask = bw->mask;
  w->durable = durable;
  memcpy (w->epochs, bw->epochs, sizeof w->epochs);
  br_mutex_unlock (&g->lock);
  return 0;
}

void
br__relay_hold (struct br_group *g, uint64_t *applied, uint64_t *durable)
{
  uint64_t hold = UINT64_MAX;

  BR_ASSERT_LOCKED (&g->lock);
  while (g->rw_len > 0 && hold == UINT64_MAX) {
    const struct br_relay_wait *w = &g->rw[g->rw_head];

    for (size_t i = 0; i < g->n_peers; i++) {
      const struct br_peer *p = g->peers[i];

      if (!(w->mask & (1u << i)) || p->epoch != w->epochs[i] ||
          !br_peer_state_queues (p->state))
        continue;               /* acknowledged, or lost: logged (I5) */
      if (p->applied < w->seq || (w->durable && p->durable < w->seq)) {
        hold = w->up_seq;
        break;
      }
    }
    if (hold == UINT64_MAX) {
      g->rw_head = (g->rw_head + 1) % g->rw_cap;
      g->rw_len--;
    }
  }
  if (hold <= *applied)
    *applied = hold - 1;
  if (hold <= *durable)
    *durable = hold - 1;
}

void
br__relay_reset (struct br_group *g)
{
  br_mutex_lock (&g->lock);
  g->rw_head = g->rw_len = 0;
  br_mutex_unlock (&g->lock);
}

/* The end of a relayed operation: wait for the sync peers, or leave it to
 * br__relay_hold. */
static int
relay_finish (struct br_group *g, uint64_t up_seq, const struct br_wait *w,
              bool durable, bool flush)
{
  if (w->mask == 0)
    return 0;
  if (all_log (g, w->mask) &&
      relay_defer (g, up_seq, w, durable) == 0)
    return 0;
  return br__wait_for_peers (g, w, durable, flush, true);
}

/* ---- forwarding (the apply thread) ---- */

int
br__relay_write (struct br_volume *v, const struct br_frame_hdr *h,
                 uint8_t **payload)
{
  struct br_relay_in ri = { .up_seq = h->seq, .payload = payload,
                            .sum = h->payload_sum };
  struct br_wait w;
  int err;

  if (h->type == BR_T_WRITE)
    err = br__write_path (v, BR_T_WRITE, h->flags, *payload, h->length,
                          h->offset, &ri, &w);
  else
    err = br__write_path (v, BR_T_ZERO, h->flags, NULL, h->count, h->offset,
                          &ri, &w);
  if (err < 0)
    return err;
  return relay_finish (v->g, h->seq, &w, h->flags & BR_F_FUA, false);
}

int
br__relay_flush (struct br_volume *v, uint64_t up_seq)
{
  struct br_wait w;
  int err = br__flush_path (v, true, &w);

  if (err < 0)
    return err;
  return relay_finish (v->g, up_seq, &w, true, true);
}

/* Queue a control record to every peer that is replicating (a peer still
 * resyncing gets SYNCED from br__resync_done; one that is away compares
 * generations when it is back). */
static void
to_replicating (struct br_group *g,
                bool (*queue) (struct br_peer *p, struct br_volume *v,
                               uint64_t gen),
                struct br_volume *v, uint64_t gen)
{
  bool queued = false;

  br_mutex_lock (&g->lock);
  for (size_t i = 0; i < g->n_peers; i++) {
    struct br_peer *p = g->peers[i];

    if (p->state == BR_PEER_REPLICATING && queue (p, v, gen))
      queued = true;
  }
  br_mutex_unlock (&g->lock);
  if (queued)
    br__wake (g->e);
}

/* This copy of V is consistent at GEN (its upstream's SYNCED is applied
 * and durable): the children in sync with it get the same news. */
void
br__relay_synced (struct br_volume *v, uint64_t gen)
{
  to_replicating (v->g, br__queue_synced, v, gen);
}

static bool
queue_resync_begin (struct br_peer *p, struct br_volume *v, uint64_t gen)
{
  (void) v;
  (void) gen;
  return br__queue_resync_begin (p);
}

/* The upstream starts resyncing this copy: the children in sync with it
 * become a mix of old and new regions too, from here in stream order. */
void
br__relay_resync_begin (struct br_group *g)
{
  to_replicating (g, queue_resync_begin, g->vols[0], 0);
}

/* ---- the peer set ---- */

struct br_relay_plan {
  struct br_group *g;
  char origin[BR_NAME_MAX + 1];
  bool changed;                     /* another origin was recorded */
  bool same;                        /* ... with the same children */
  int n;
  const struct br_node_cfg *nodes[BR_MAX_PEERS];
  const struct br_link_cfg *links[BR_MAX_PEERS];
  int slots[BR_MAX_PEERS][BR_WIRE_MAX_VOLUMES];
  bool keep[BR_MAX_PEERS];          /* a promotion: no full sync (below) */
};

static int
children_of (struct br_group *g, const char *origin,
             const struct br_node_cfg **nodes,
             const struct br_link_cfg **links, char *err, size_t errlen)
{
  int n = br_topology_children (g->e->cfg, origin, g->e->self->name, nodes,
                                links, BR_MAX_PEERS);

  if (n < 0)
    snprintf (err, errlen, n == -E2BIG ? "node %s would have more than %d "
              "peers" : "unknown node %s or origin", g->e->self->name,
              BR_MAX_PEERS);
  return n;
}

static bool
same_children (const struct br_group *g, const struct br_node_cfg **nodes,
               int n)
{
  if ((size_t) n != g->n_peers)
    return false;
  for (int i = 0; i < n; i++)
    if (g->peers[i]->node != nodes[i])
      return false;
  return true;
}

int
br__relay_check (struct br_group *g, const char *origin, char *err,
                 size_t errlen)
{
  const struct br_node_cfg *nodes[BR_MAX_PEERS];
  const struct br_link_cfg *links[BR_MAX_PEERS];
  int n;

  if (g->origin[0] == '\0' || strcmp (g->origin, origin) == 0 ||
      !g->applying)
    return 0;
  n = children_of (g, origin, nodes, links, err, errlen);
  if (n < 0)
    return n;
  if (same_children (g, nodes, n))
    return 0;
  snprintf (err, errlen, "group %s on node %s is applying the writes of %s "
            "and forwards them to %zu node(s); with %s as primary it would "
            "forward to %d: try again once that stream has stopped",
            g->name, g->e->self->name, g->origin, g->n_peers, origin, n);
  return -EBUSY;
}

int
br__relay_plan (struct br_group *g, const char *origin,
                struct br_relay_plan **out, char *err, size_t errlen)
{
  struct br_relay_plan *plan;
  int r;

  *out = NULL;
  if (g->origin[0] && strcmp (g->origin, origin) == 0)
    return 0;
  if ((r = br__relay_check (g, origin, err, errlen)) < 0)
    return r;
  if (strlen (origin) > BR_NAME_MAX || g->n_vols > BR_WIRE_MAX_VOLUMES) {
    snprintf (err, errlen, "origin or group too large");
    return -EINVAL;
  }
  plan = calloc (1, sizeof *plan);
  if (plan == NULL) {
    snprintf (err, errlen, "out of memory");
    return -ENOMEM;
  }
  plan->g = g;
  snprintf (plan->origin, sizeof plan->origin, "%s", origin);
  plan->n = children_of (g, origin, plan->nodes, plan->links, err, errlen);
  if (plan->n < 0) {
    r = plan->n;
    free (plan);
    return r;
  }
  plan->changed = g->origin[0] != '\0';
  plan->same = plan->changed && same_children (g, plan->nodes, plan->n);
  /* A promotion (the origin becomes this node, role.c): a child that was
   * a peer already keeps the bits this copy kept for it, and the old
   * upstream starts with none: this copy holds nothing it lacks (it holds
   * only what it got from it), and what it holds that this copy lacks is
   * in its own bitmap, which the failback verdict takes (rule 3). */
  if (plan->changed && strcmp (origin, g->e->self->name) == 0) {
    const char *parent = br_topology_parent (g->e->cfg, g->origin,
                                             g->e->self->name);

    for (int i = 0; i < plan->n; i++) {
      plan->keep[i] = parent && strcmp (parent, plan->nodes[i]->name) == 0;
      for (size_t pi = 0; pi < g->n_peers; pi++)
        plan->keep[i] |= g->peers[pi]->node == plan->nodes[i];
    }
  }
  *out = plan;
  return 0;
}

/* Task thread (or before the loop runs): everything durable. */
int
br__relay_prepare (struct br_relay_plan *plan, char *err, size_t errlen)
{
  struct br_group *g = plan->g;
  int r;

  for (int i = 0; i < plan->n && !plan->same; i++)
    for (size_t vi = 0; vi < g->n_vols; vi++) {
      struct br_volume *v = g->vols[vi];
      int slot = br_sb_peer_slot (v->sb, plan->nodes[i]->name);

      if (slot < 0) {
        snprintf (err, errlen, "%s: no free scoreboard slot for peer %s",
                  v->cfg->name, plan->nodes[i]->name);
        return slot;
      }
      plan->slots[i][vi] = slot;
      /* A child this copy did not track until now may differ anywhere. */
      if (plan->changed && !plan->keep[i] &&
          (r = br_sb_mark_all (v->sb, slot)) < 0) {
        snprintf (err, errlen, "cannot mark %s for a full sync of %s",
                  v->cfg->name, plan->nodes[i]->name);
        return r;
      }
    }
  if (g->e->role == BR_ROLE_REPLICA)
    for (size_t vi = 0; vi < g->n_vols; vi++)
      if ((r = br_sb_set_origin (g->vols[vi]->sb, plan->origin)) < 0) {
        snprintf (err, errlen, "%s: cannot record origin %s in the "
                  "scoreboard", g->vols[vi]->cfg->name, plan->origin);
        return r;
      }
  return 0;
}

/* Stop every peer of G; they are freed at close (their handles close
 * asynchronously).  False: out of memory (nothing changed). */
bool
br__relay_retire (struct br_group *g)
{
  struct br_engine *e = g->e;
  struct br_peer **nr = realloc (e->retired, (e->n_retired + g->n_peers) *
                                 sizeof *nr);

  if (nr == NULL)
    return false;
  e->retired = nr;
  for (size_t i = 0; i < g->n_peers; i++) {
    br__peer_close (g->peers[i]);
    e->retired[e->n_retired++] = g->peers[i];
    g->peers[i] = NULL;
  }
  g->n_peers = 0;
  for (size_t vi = 0; vi < g->n_vols; vi++)
    g->vols[vi]->slot_mask = 0;
  return true;
}

/* Add child I of PLAN as a peer of G (not started); false: no memory. */
static bool
add_peer (struct br_relay_plan *plan, int i)
{
  struct br_group *g = plan->g;
  int idx = g->n_peers;
  struct br_peer *p;

  if (br__peer_init (g, idx, plan->nodes[i], plan->links[i]) < 0 ||
      br__bits_init (g->peers[idx]) < 0) {
    br__peer_free (g->peers[idx]);
    g->peers[idx] = NULL;
    return false;
  }
  p = g->peers[idx];
  /* An async child of a relay pulls ahead rather than hold up the
   * upstream, unless the file says otherwise. */
  if (g->e->role == BR_ROLE_REPLICA && plan->links[i]->mode == BR_MODE_ASYNC
      && !plan->links[i]->on_congestion_set)
    p->congestion = BR_CONGESTION_PULL_AHEAD;
  for (size_t vi = 0; vi < g->n_vols; vi++)
    g->vols[vi]->slot[idx] = plan->slots[i][vi];
  /* Published last: writers read n_peers and slot_mask. */
  g->n_peers++;
  for (size_t vi = 0; vi < g->n_vols; vi++)
    g->vols[vi]->slot_mask |= 1u << g->vols[vi]->slot[idx];
  return true;
}

void
br__relay_commit (struct br_relay_plan *plan)
{
  struct br_group *g = plan->g;
  bool relay = g->e->role == BR_ROLE_REPLICA;

  if (plan->same)
    br_info ("group %s: now receiving the writes of %s (was %s); same "
             "downstream", g->name, plan->origin, g->origin);
  else {
    if (plan->changed) {
      br_warn ("group %s: the writes now come from %s (was %s): the "
               "downstream changes, and every new child gets a full sync%s",
               g->name, plan->origin, g->origin,
               strcmp (plan->origin, g->e->self->name) == 0
               ? " (but the old upstream and the children kept)" : "");
      if (!br__relay_retire (g)) {
        br_error ("group %s: out of memory retiring peers", g->name);
        goto out;
      }
    }
    for (int i = 0; i < plan->n; i++) {
      if (!add_peer (plan, i)) {
        br_error ("group %s: out of memory adding peer %s", g->name,
                  plan->nodes[i]->name);
        break;
      }
      if (relay && g->e->started_loop)
        br__peer_start (g->peers[g->n_peers - 1]);
    }
    if (relay && plan->n > 0)
      br_info ("group %s: relaying the writes of %s to %d node(s)", g->name,
               plan->origin, plan->n);
  }
  snprintf (g->origin, sizeof g->origin, "%s", plan->origin);
 out:
  free (plan);
}

void
br__relay_plan_free (struct br_relay_plan *plan)
{
  free (plan);
}

int
br__relay_start (struct br_group *g, const char *origin, char *err,
                 size_t errlen)
{
  struct br_relay_plan *plan;
  int r = br__relay_plan (g, origin, &plan, err, errlen);

  if (r < 0 || plan == NULL)
    return r;
  if ((r = br__relay_prepare (plan, err, errlen)) < 0) {
    br__relay_plan_free (plan);
    return r;
  }
  br__relay_commit (plan);
  return 0;
}

void
br__relay_resume (struct br_engine *e)
{
  for (size_t gi = 0; gi < e->n_groups; gi++) {
    struct br_group *g = &e->groups[gi];
    char origin[BR_NAME_MAX + 1], err[512] = "";

    br_sb_origin (g->vols[0]->sb, origin, sizeof origin);
    if (origin[0] == '\0')
      continue;
    if (br_config_node (e->cfg, origin) == NULL) {
      br_warn ("group %s: the recorded origin %s is not in %s; waiting for "
               "an upstream", g->name, origin, e->cfg->path);
      continue;
    }
    if (br__relay_start (g, origin, err, sizeof err) < 0)
      br_error ("group %s: cannot resume relaying for %s: %s", g->name,
                origin, err);
  }
}
