/* blockrelay — the checks and verdicts of both sides of the handshake.
 *
 * The upstream (peer.c) sends HELLO with its generation view of every
 * volume of the group; the downstream (replica.c) answers WELCOME with
 * its own.  This file holds what each side decides from them, without
 * I/O, so that the loop thread's handlers only send and close:
 *
 *   br__vol_view         a volume's entry as this node sees it for a peer
 *   br__peer_vol_view    ... and as the upstream side sends it to peer P
 *                        (with the operator's discard of P's changes)
 *   br__vol_verdict      the generation verdict (verdict.c) of one volume
 *   br__hello_problem    downstream: may this HELLO start a session?
 *                        (addressing, topology, group, geometry, then the
 *                        verdict of every volume; fills the WELCOME)
 *   br__welcome_problem  upstream: does this WELCOME describe our group?
 *
 * Both sides compute the verdict from the same two views, so they agree
 * and log the same rule.  Text from the peer is escaped before it goes
 * into a message (util.h br_escape_text).
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

void
br__vol_view (const struct br_volume *v, int slot, struct br_wire_vol *out)
{
  memset (out, 0, sizeof *out);
  snprintf (out->name, sizeof out->name, "%s", v->cfg->name);
  out->size = v->size;
  out->granularity = (uint32_t) 1 << v->gran_shift;
  out->flags = br_sb_flags (v->sb);
  out->gen = br_sb_gen (v->sb);
  if (slot >= 0) {
    out->peer_gen = br_sb_peer_gen (v->sb, slot);
    out->owed = br_sb_count (v->sb, slot);
  }
  _Static_assert (BR_WIRE_HISTORY == BR_SB_HISTORY, "history sizes");
  br_sb_history (v->sb, out->history);
}

void
br__peer_vol_view (const struct br_peer *p, size_t i, struct br_wire_vol *out)
{
  const struct br_volume *v = p->g->vols[i];

  br__vol_view (v, v->slot[p->idx], out);
  if (p->discard_vols & (UINT64_C (1) << i))
    out->flags |= BR_VOL_DISCARD_PEER;
}

static void
gen_view (const struct br_wire_vol *w, struct br_gen_view *g)
{
  g->gen = w->gen;
  memcpy (g->history, w->history, sizeof g->history);
  g->base = w->peer_gen;
  g->owed = w->owed;
  g->flags = w->flags;
}

struct br_verdict
br__vol_verdict (const struct br_wire_vol *src, const struct br_wire_vol *dst,
                 uint32_t hello_flags)
{
  struct br_verdict_in in = {
    .src_relay = (hello_flags & BR_HELLO_RELAY) != 0,
    .assume_clean = (hello_flags & BR_HELLO_ASSUME_CLEAN) != 0,
    .discard_dst = (src->flags & BR_VOL_DISCARD_PEER) != 0,
    .discard_zero = (hello_flags & BR_HELLO_DISCARD_ZERO) != 0,
  };

  gen_view (src, &in.src);
  gen_view (dst, &in.dst);
  return br_gen_verdict (&in);
}

uint32_t
br__hello_flags (const struct br_peer *p)
{
  const struct br_engine *e = p->g->e;

  return (e->assume_clean ? BR_HELLO_ASSUME_CLEAN : 0) |
    (br__engine_role (e) == BR_ROLE_REPLICA ? BR_HELLO_RELAY : 0) |
    (p->link->after_sb == BR_AFTER_SB_DISCARD_ZERO ? BR_HELLO_DISCARD_ZERO
     : 0);
}

bool
br__welcome_problem (const struct br_peer *p, const struct br_welcome *w,
                     char *why, size_t len)
{
  const struct br_group *g = p->g;
  char esc[BR_ESCAPED_SIZE (BR_WIRE_NAME_MAX)];

  if (strcmp (w->node, p->node->name) != 0)
    snprintf (why, len, "expected node %s, reached %s", p->node->name,
              br_escape_text (esc, sizeof esc, w->node, sizeof w->node));
  else if (w->proto != BR_WIRE_VERSION)
    snprintf (why, len, "WELCOME chose protocol %u, this node speaks %u",
              w->proto, BR_WIRE_VERSION);
  else if (w->n_volumes != g->n_vols)
    snprintf (why, len, "WELCOME lists %u volumes, expected %zu",
              w->n_volumes, g->n_vols);
  else {
    for (size_t i = 0; i < g->n_vols; i++) {
      const struct br_volume *v = g->vols[i];
      const struct br_wire_vol *wv = &w->vols[i];

      if (strcmp (wv->name, v->cfg->name) != 0)
        snprintf (why, len, "WELCOME volume %zu is %s, expected %s", i,
                  br_escape_text (esc, sizeof esc, wv->name,
                                  sizeof wv->name), v->cfg->name);
      else if (wv->size != v->size)
        snprintf (why, len, "%s is %llu bytes on %s, %llu here",
                  v->cfg->name, (unsigned long long) wv->size,
                  p->node->name, (unsigned long long) v->size);
      else if (wv->granularity != (uint32_t) 1 << v->gran_shift)
        snprintf (why, len, "%s has granularity %u on %s, %u here",
                  v->cfg->name, wv->granularity, p->node->name,
                  1u << v->gran_shift);
      else
        continue;
      return true;
    }
    return false;
  }
  return true;
}

/* ---- the downstream's checks of a HELLO ---- */

static struct br_group *
find_group (struct br_engine *e, const char *name)
{
  for (size_t i = 0; i < e->n_groups; i++)
    if (strcmp (e->groups[i].name, name) == 0)
      return &e->groups[i];
  return NULL;
}

static uint16_t
say (char *why, size_t len, uint16_t status, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

static uint16_t
say (char *why, size_t len, uint16_t status, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (why, len, fmt, ap);
  va_end (ap);
  return status;
}

#define REFUSE(...) say (why, len, BR_WELCOME_REFUSED, __VA_ARGS__)

/* Who may send to us: the right node name, a neighbour in the topology,
 * our parent in the tree rooted at the stream's origin (never a sibling
 * or a child), for a group we have with the same volumes. */
static uint16_t
addressing_problem (struct br_engine *e, const struct br_hello *m,
                    struct br_group **gp, char *why, size_t len)
{
  char from[BR_ESCAPED_SIZE (BR_WIRE_NAME_MAX)];
  char other[BR_ESCAPED_SIZE (BR_WIRE_NAME_MAX)];
  const char *parent;
  struct br_group *g;

  br_escape_text (from, sizeof from, m->from, sizeof m->from);
  if (br__engine_role (e) == BR_ROLE_PRIMARY)
    return REFUSE ("node %s is primary: it serves its own clients and "
                   "receives from nobody (both nodes are primary: demote "
                   "one of them)", e->self->name);
  if (m->proto_min > BR_WIRE_VERSION || m->proto_max < BR_WIRE_VERSION)
    return REFUSE ("protocol versions %u-%u not supported (this node "
                   "speaks %u)", m->proto_min, m->proto_max,
                   BR_WIRE_VERSION);
  if (strcmp (m->to, e->self->name) != 0)
    return REFUSE ("this is node %s, not %s", e->self->name,
                   br_escape_text (other, sizeof other, m->to,
                                   sizeof m->to));
  if (br_config_node (e->cfg, m->from) == NULL)
    return REFUSE ("node %s is not a node of %s", from, e->cfg->path);
  if (br_config_link (e->cfg, m->from, e->self->name) == NULL)
    return REFUSE ("node %s has no link to %s in %s", from, e->self->name,
                   e->cfg->path);
  if (br_config_node (e->cfg, m->origin) == NULL)
    return REFUSE ("origin %s of the stream from %s is not a node of %s",
                   br_escape_text (other, sizeof other, m->origin,
                                   sizeof m->origin), from, e->cfg->path);
  parent = br_topology_parent (e->cfg, m->origin, e->self->name);
  if (parent == NULL || strcmp (parent, m->from) != 0)
    return REFUSE ("with %s as primary, %s receives from %s, not from %s",
                   m->origin, e->self->name, parent ? parent : "nobody",
                   from);
  g = find_group (e, m->group);
  if (g == NULL)
    return REFUSE ("no group named %s on node %s",
                   br_escape_text (other, sizeof other, m->group,
                                   sizeof m->group), e->self->name);
  if (br__relay_check (g, m->origin, why, len) < 0)
    return BR_WELCOME_REFUSED;
  if (m->n_volumes != g->n_vols)
    return REFUSE ("group %s has %zu volumes here, %u on %s", g->name,
                   g->n_vols, m->n_volumes, from);
  *gp = g;
  return BR_WELCOME_OK;
}

static uint16_t
geometry_problem (const struct br_volume *v, const struct br_wire_vol *mv,
                  const char *from, char *why, size_t len)
{
  char esc[BR_ESCAPED_SIZE (BR_WIRE_NAME_MAX)];

  if (strcmp (mv->name, v->cfg->name) != 0)
    return REFUSE ("volume %u of group %s is %s here, %s on %s", v->id,
                   v->g->name, v->cfg->name,
                   br_escape_text (esc, sizeof esc, mv->name,
                                   sizeof mv->name), from);
  if (mv->size != v->size)
    return REFUSE ("volume %s is %llu bytes here, %llu bytes on %s",
                   v->cfg->name, (unsigned long long) v->size,
                   (unsigned long long) mv->size, from);
  if (mv->granularity != (uint32_t) 1 << v->gran_shift)
    return REFUSE ("volume %s has granularity %u here, %u on %s",
                   v->cfg->name, 1u << v->gran_shift, mv->granularity,
                   from);
  return BR_WELCOME_OK;
}

uint16_t
br__hello_problem (struct br_engine *e, const struct br_hello *m,
                   struct br_group **gp, struct br_welcome *w,
                   uint64_t *take, char *why, size_t len)
{
  char from[BR_ESCAPED_SIZE (BR_WIRE_NAME_MAX)];
  struct br_group *g = NULL;
  uint16_t st;

  br_escape_text (from, sizeof from, m->from, sizeof m->from);
  *take = 0;
  if ((st = addressing_problem (e, m, &g, why, len)) != BR_WELCOME_OK)
    return st;
  for (size_t i = 0; i < g->n_vols; i++) {
    struct br_volume *v = g->vols[i];
    struct br_verdict vd;
    int slot;

    if ((st = geometry_problem (v, &m->vols[i], from, why, len)))
      return st;
    slot = br_sb_find_slot (v->sb, m->from);
    br__vol_view (v, slot, &w->vols[i]);
    vd = br__vol_verdict (&m->vols[i], &w->vols[i], m->flags);
    br_info ("%s: from %s: %s by rule %d (%s)", v->cfg->name, from,
             br_verdict_action_name (vd.action), vd.rule, vd.why);
    if (br_verdict_stops (vd.action))
      return say (why, len, BR_WELCOME_SPLIT_BRAIN, "split brain on %s by "
                  "rule %d: %s; this node %s is at generation %016llx and "
                  "holds %llu regions that %s does not have, %s is at "
                  "%016llx; this copy is not overwritten until an operator "
                  "chooses a side", v->cfg->name, vd.rule, vd.why,
                  e->self->name, (unsigned long long) w->vols[i].gen,
                  (unsigned long long) w->vols[i].owed, from, from,
                  (unsigned long long) m->vols[i].gen);
    if (vd.action == BR_VERDICT_WAIT)
      return REFUSE ("%s: not yet (rule %d: %s)", v->cfg->name, vd.rule,
                     vd.why);
    if (vd.take_owed && w->vols[i].owed > 0)
      *take |= UINT64_C (1) << i;
  }
  w->n_volumes = g->n_vols;
  *gp = g;
  return BR_WELCOME_OK;
}
