/* blockrelay — the control socket's role commands: promote, demote and
 * resolve (loop thread; see control.c for the protocol).
 *
 *   {"cmd": "promote"|"demote", "force": BOOL}  role.c P1-P6, D1-D4;
 *       the change then finishes on the task thread: status says
 *       "role_change": "promoting" or "demoting" until it is done.
 *   {"cmd": "resolve", "volume": V, "discard": NODE}  on the node whose
 *       data is kept: NODE is its downstream peer, whose changes to V
 *       since the split are thrown away.  The peer's next handshake says
 *       so (BR_VOL_DISCARD_PEER), the verdict resyncs it from here with
 *       both bitmaps (rule 1) or fully (rule 2), and a halted peer is
 *       handed back to the reconnect timer (BR_EV_RESOLVE).  The choice
 *       lasts until that resync completes (or this process stops).
 *
 * Refusals answer {"ok": false, "error": TEXT, "errno": NAME} so the CLI
 * can tell "try again" (EBUSY) from "no" (EPERM) and "done already"
 * (EALREADY).
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "log.h"

static const char *
errno_name (int r)
{
  switch (r) {
  case -EALREADY: return "EALREADY";
  case -EBUSY: return "EBUSY";
  case -EPERM: return "EPERM";
  case -ENOMEM: return "ENOMEM";
  default: return "EIO";
  }
}

json_t *
br__control_role (struct br_engine *e, json_t *req, bool promote)
{
  int force = 0, r;
  char why[512] = "";

  if (json_unpack (req, "{s?b}", "force", &force) < 0)
    return br__control_fail ("bad request: \"force\" must be true or false");
  r = promote ? br__role_promote (e, force, why, sizeof why)
    : br__role_demote (e, force, why, sizeof why);
  if (r < 0)
    return json_pack ("{s:b, s:s, s:s}", "ok", 0, "error", why,
                      "errno", errno_name (r));
  return json_pack ("{s:b, s:s, s:s}", "ok", 1, "node", e->self->name,
                    "role", promote ? "primary" : "replica");
}

json_t *
br__control_resolve (struct br_engine *e, json_t *req)
{
  const char *name = NULL, *node = NULL;
  struct br_volume *v = NULL;
  struct br_peer *p = NULL;
  enum br_peer_state st;
  bool halted;

  if (json_unpack (req, "{s:s, s:s}", "volume", &name, "discard", &node) < 0)
    return br__control_fail ("bad request: resolve needs \"volume\": V and "
                             "\"discard\": NODE");
  for (size_t i = 0; i < e->n_vols && v == NULL; i++)
    if (strcmp (e->vols[i].cfg->name, name) == 0)
      v = &e->vols[i];
  if (v == NULL)
    return br__control_fail ("node %s has no volume named '%s'",
                             e->self->name, name);
  if (strcmp (node, e->self->name) == 0)
    return json_pack ("{s:b, s:s, s:s}", "ok", 0, "error", "this node's "
                      "changes are discarded by the node that keeps its "
                      "own: run resolve there (the upstream of this node, "
                      "demoting this one first if it is primary)",
                      "errno", "EPERM");
  for (size_t i = 0; i < v->g->n_peers && p == NULL; i++)
    if (strcmp (v->g->peers[i]->node->name, node) == 0)
      p = v->g->peers[i];
  if (p == NULL)
    return br__control_fail ("%s is not a downstream peer of node %s for "
                             "%s%s", node, e->self->name, name,
                             br__engine_role (e) == BR_ROLE_PRIMARY ? ""
                             : " (this node is a replica: resolve on the "
                             "node whose data is kept)");
  st = br__peer_state (p);
  if (st == BR_PEER_REPLICATING || st == BR_PEER_SYNCING ||
      st == BR_PEER_AHEAD)
    return json_pack ("{s:b, s:s, s:s}", "ok", 0, "error", "there is no "
                      "split brain to resolve: the peer is connected",
                      "errno", "EALREADY");
  p->discard_vols |= UINT64_C (1) << v->id;
  br_mutex_lock (&v->g->lock);
  halted = p->state == BR_PEER_HALTED;
  if (halted) {
    snprintf (p->last_error, sizeof p->last_error, "split brain resolved "
              "by the operator: %s's changes to %s are discarded", node,
              name);
    br__peer_event (p, BR_EV_RESOLVE);
  }
  br_mutex_unlock (&v->g->lock);
  br_warn ("%s: split brain resolved by the operator: the changes of %s "
           "are discarded, it resyncs from %s", name, node, e->self->name);
  if (halted)
    br__peer_reconnect (p);
  return json_pack ("{s:b, s:s, s:s, s:s}", "ok", 1, "volume", name,
                    "discard", node, "state",
                    br_peer_state_name (br__peer_state (p)));
}
