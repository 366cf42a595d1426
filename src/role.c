/* blockrelay — roles: `blockrelay promote` makes a replica the primary of
 * its groups, `blockrelay demote` makes a primary a replica, in place,
 * without restarting the process or editing the topology.
 *
 * The decision is pure: br_role_check() of the facts gathered on the loop
 * thread, with numbered rules (table-tested in tests/unit/test_role.c):
 *
 *   promote                                   demote
 *   P1 already primary      -> -EALREADY      D1 already a replica -> -EALREADY
 *   P2 a change under way   -> -EBUSY         D2 a change under way -> -EBUSY
 *   P3 no NBD front end     -> -EPERM         D3 NBD clients open  -> -EPERM
 *      (blockrelayd)                          D4 a connected peer lacks
 *   P4 an upstream session runs -> -EPERM        records (not durable
 *      (the old primary is reachable and          there yet), no --force
 *      primary: demote or stop it first)          -> -EBUSY (retry)
 *   P5 an upstream session is starting or
 *      closing -> -EBUSY (retry)
 *   P6 a volume is inconsistent, no --force -> -EPERM
 *   anything else -> 0
 *
 * What a promotion does (loop thread, then the task thread, then the loop
 * thread, like a relay's change of origin in relay.c):
 *   1. role = PRIMARY: from now on every HELLO is refused ("primary"), and
 *      the plugin lets NBD clients in.
 *   2. task: every volume takes a new generation (its old one goes on the
 *      history, where the old primary's verdict finds it: rule 3 of
 *      verdict.c) and forgets the recorded origin; each group's peers
 *      become the children of the tree rooted here (br__relay_prepare).
 *      The old upstream and the children this node already had keep
 *      their bits (relay.c): the old primary's own bitmap holds what it
 *      wrote that this copy lacks, and the handshake takes it (H4).
 *   3. loop: the peers are published and started.
 * A demotion: role = REPLICA under clients_lock (so no NBD client
 * attaches in between), the listener starts if it was not running; the
 * task thread syncs every volume; then (loop thread) the bits every peer
 * has durable are cleared whatever the activity window says (no write
 * follows: as at a clean stop), and the peers stop and are retired with
 * the bits that are left: the next upstream's verdict takes them (rule
 * 3) as what this copy holds that the peer may lack.
 *
 * Lock rules: clients_lock orders br_engine_client_attach() against a
 * demotion; it is never held with the group lock.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "replica.h"
#include "role.h"
#include "util.h"

int
br_role_check (enum br_role_op op, const struct br_role_facts *f, char *why,
               size_t len)
{
  if (op == BR_ROLE_PROMOTE) {
    if (f->role == BR_ROLE_PRIMARY)
      return snprintf (why, len, "P1: node %s is primary already", f->node),
        -EALREADY;
    if (f->busy)
      return snprintf (why, len, "P2: node %s is changing its role",
                       f->node), -EBUSY;
    if (!f->can_serve)
      return snprintf (why, len, "P3: blockrelayd serves no NBD export: run "
                       "a replica that may take over as `nbdkit blockrelay "
                       "... role=replica` to promote it in place, or stop "
                       "blockrelayd and start the plugin on node %s",
                       f->node), -EPERM;
    if (f->upstream)
      return snprintf (why, len, "P4: group %s replicates from %s, which is "
                       "connected and primary: demote or stop %s first",
                       f->group, f->upstream, f->upstream), -EPERM;
    if (f->starting)
      return snprintf (why, len, "P5: an upstream session of group %s is "
                       "starting or closing", f->group), -EBUSY;
    if (f->inconsistent && !f->force)
      return snprintf (why, len, "P6: %s is inconsistent on node %s (a "
                       "resync into it has not completed): promoting it "
                       "serves a mix of old and new data; --force to do it "
                       "anyway", f->inconsistent, f->node), -EPERM;
    return 0;
  }
  if (f->role == BR_ROLE_REPLICA)
    return snprintf (why, len, "D1: node %s is a replica already", f->node),
      -EALREADY;
  if (f->busy)
    return snprintf (why, len, "D2: node %s is changing its role", f->node),
      -EBUSY;
  if (f->clients)
    return snprintf (why, len, "D3: %u NBD client connection(s) are open on "
                     "node %s: disconnect them first (umount, nbd-client "
                     "-d, stop the VM)", f->clients, f->node), -EPERM;
  if (f->lagging && !f->force)
    return snprintf (why, len, "D4: peer %s of group %s does not have "
                     "every write durable yet", f->lagging, f->group),
      -EBUSY;
  return 0;
}

/* ---- the engine side (loop thread) ---- */

static void
gather (struct br_engine *e, enum br_role_op op, bool force,
        struct br_role_facts *f)
{
  memset (f, 0, sizeof *f);
  f->node = e->self->name;
  f->role = br__engine_role (e);
  f->busy = atomic_load (&e->role_busy);
  f->can_serve = e->can_serve;
  f->force = force;
  for (size_t gi = 0; gi < e->n_groups; gi++) {
    struct br_group *g = &e->groups[gi];

    if (g->upstream && g->upstream->st == S_RUNNING && !f->upstream) {
      f->upstream = g->upstream->peer;
      f->group = g->name;
    }
    else if ((g->upstream || g->applying) && !f->upstream && !f->starting) {
      f->starting = true;
      f->group = g->name;
    }
    for (size_t vi = 0; vi < g->n_vols && !f->inconsistent; vi++)
      if (!(br_sb_flags (g->vols[vi]->sb) & BR_SB_CONSISTENT))
        f->inconsistent = g->vols[vi]->cfg->name;
    if (op != BR_ROLE_DEMOTE)
      continue;
    br_mutex_lock (&g->lock);
    for (size_t pi = 0; pi < g->n_peers && !f->lagging; pi++) {
      struct br_peer *p = g->peers[pi];

      if (br_peer_state_queues (p->state) && p->q.len > 0) {
        f->lagging = p->node->name;
        f->group = g->name;
      }
    }
    br_mutex_unlock (&g->lock);
  }
}

struct promote_task {
  struct br_engine *e;
  struct br_relay_plan **plans;     /* per group; NULL: nothing changes */
  int err;
  char why[512];
};

static void
promote_work (void *arg)
{
  struct promote_task *t = arg;
  struct br_engine *e = t->e;

  for (size_t i = 0; i < e->n_vols && t->err == 0; i++) {
    struct br_volume *v = &e->vols[i];
    uint64_t gen;

    br_wire_random (&gen, sizeof gen);
    if ((t->err = br_sb_set_gen (v->sb, gen | 1)) < 0 ||
        (t->err = br_sb_set_origin (v->sb, "")) < 0)
      snprintf (t->why, sizeof t->why, "%s: cannot record the new "
                "generation: %s", v->cfg->name, br_strerror (-t->err));
  }
  for (size_t gi = 0; gi < e->n_groups && t->err == 0; gi++)
    if (t->plans[gi])
      t->err = br__relay_prepare (t->plans[gi], t->why, sizeof t->why);
}

static void
promote_done (void *arg, bool cancelled)
{
  struct promote_task *t = arg;
  struct br_engine *e = t->e;

  for (size_t gi = 0; gi < e->n_groups; gi++) {
    struct br_group *g = &e->groups[gi];

    if (cancelled || t->err < 0) {
      br__relay_plan_free (t->plans[gi]);
      continue;
    }
    if (t->plans[gi])
      br__relay_commit (t->plans[gi]);
    for (size_t pi = 0; pi < g->n_peers; pi++)
      br__peer_start (g->peers[pi]);
  }
  atomic_store (&e->role_busy, false);
  if (!cancelled && t->err < 0) {
    snprintf (e->role_error, sizeof e->role_error, "promote: %s", t->why);
    br_error ("%s", e->role_error);
  }
  else if (!cancelled)
    br_info ("node %s is primary now: its volumes are served, and what was "
             "written from now on is a new generation", e->self->name);
  free (t->plans);
  free (t);
}

int
br__role_promote (struct br_engine *e, bool force, char *why, size_t len)
{
  struct br_role_facts f;
  struct promote_task *t;
  int r;

  gather (e, BR_ROLE_PROMOTE, force, &f);
  if ((r = br_role_check (BR_ROLE_PROMOTE, &f, why, len)) < 0)
    return r;
  t = calloc (1, sizeof *t);
  if (t == NULL || (t->plans = calloc (e->n_groups, sizeof *t->plans)) ==
      NULL) {
    free (t);
    snprintf (why, len, "out of memory");
    return -ENOMEM;
  }
  t->e = e;
  atomic_store (&e->role_busy, true);   /* before the role: attach checks */
  atomic_store (&e->role, BR_ROLE_PRIMARY);             /* 1 */
  for (size_t gi = 0; gi < e->n_groups; gi++)
    if ((r = br__relay_plan (&e->groups[gi], e->self->name, &t->plans[gi],
                             why, len)) < 0)
      break;
  if (r == 0 && (r = br__task_post (e, promote_work, promote_done, t)) == 0) {
    e->role_error[0] = '\0';                            /* 2, 3 follow */
    br_warn ("node %s: promoted by the operator%s", e->self->name,
             force && f.inconsistent ? " (forced: a copy is inconsistent)"
             : "");
    return 0;
  }
  atomic_store (&e->role, BR_ROLE_REPLICA);
  atomic_store (&e->role_busy, false);
  for (size_t gi = 0; gi < e->n_groups; gi++)
    br__relay_plan_free (t->plans[gi]);
  free (t->plans);
  free (t);
  if (why[0] == '\0')
    snprintf (why, len, "%s", br_strerror (-r));
  return r;
}

struct demote_task {
  struct br_engine *e;
  bool synced;
};

static void
demote_work (void *arg)
{
  struct demote_task *t = arg;

  t->synced = true;
  for (size_t i = 0; i < t->e->n_vols; i++)
    if (br__volume_sync (&t->e->vols[i]) < 0)
      t->synced = false;
}

/* The volumes are durable here: what a peer has made durable too needs no
 * bit any more, whatever the activity window says (no write follows as a
 * primary: as at a clean stop).  Then the peers stop with the bits that
 * are left, which the next upstream's verdict takes. */
static void
demote_done (void *arg, bool cancelled)
{
  struct demote_task *t = arg;
  struct br_engine *e = t->e;

  for (size_t gi = 0; gi < e->n_groups && !cancelled; gi++) {
    struct br_group *g = &e->groups[gi];

    br_mutex_lock (&g->lock);
    for (size_t pi = 0; t->synced && pi < g->n_peers; pi++)
      br__bits_scan (g->peers[pi], true);
    br_mutex_unlock (&g->lock);
    if (!br__relay_retire (g))
      snprintf (e->role_error, sizeof e->role_error, "demote: out of "
                "memory retiring the peers of group %s", g->name);
    g->origin[0] = '\0';
  }
  if (!cancelled && !t->synced)
    br_warn ("node %s: a volume could not be synced: its peers keep every "
             "bit", e->self->name);
  atomic_store (&e->role_busy, false);
  if (!cancelled)
    br_warn ("node %s: demoted by the operator: a replica now, waiting for "
             "an upstream on %s:%s", e->self->name, e->self->host,
             e->self->port);
  free (t);
}

int
br__role_demote (struct br_engine *e, bool force, char *why, size_t len)
{
  struct br_role_facts f;
  struct demote_task *t = calloc (1, sizeof *t);
  int r;

  if (t == NULL) {
    snprintf (why, len, "out of memory");
    return -ENOMEM;
  }
  t->e = e;
  gather (e, BR_ROLE_DEMOTE, force, &f);
  pthread_mutex_lock (&e->clients_lock);
  f.clients = e->clients;
  r = br_role_check (BR_ROLE_DEMOTE, &f, why, len);
  if (r == 0) {
    atomic_store (&e->role_busy, true);
    atomic_store (&e->role, BR_ROLE_REPLICA);
  }
  pthread_mutex_unlock (&e->clients_lock);
  if (r < 0) {
    free (t);
    return r;
  }
  if (e->replica == NULL && (r = br__replica_start (e)) < 0) {
    snprintf (why, len, "cannot listen on %s:%s: %s", e->self->host,
              e->self->port, br_strerror (-r));
    goto undo;
  }
  if ((r = br__task_post (e, demote_work, demote_done, t)) < 0) {
    snprintf (why, len, "out of memory");
    goto undo;
  }
  e->role_error[0] = '\0';
  return 0;

 undo:
  free (t);
  atomic_store (&e->role, BR_ROLE_PRIMARY);
  atomic_store (&e->role_busy, false);
  return r;
}

/* ---- the NBD front end ---- */

enum br_role
br_engine_role (const br_engine *e)
{
  return br__engine_role (e);
}

int
br_engine_client_attach (br_engine *e)
{
  int r = 0;

  pthread_mutex_lock (&e->clients_lock);
  if (br__engine_role (e) != BR_ROLE_PRIMARY || atomic_load (&e->role_busy))
    r = -EROFS;
  else
    e->clients++;
  pthread_mutex_unlock (&e->clients_lock);
  return r;
}

void
br_engine_client_detach (br_engine *e)
{
  pthread_mutex_lock (&e->clients_lock);
  if (e->clients > 0)
    e->clients--;
  pthread_mutex_unlock (&e->clients_lock);
}

unsigned
br__engine_clients (struct br_engine *e)
{
  unsigned n;

  pthread_mutex_lock (&e->clients_lock);
  n = e->clients;
  pthread_mutex_unlock (&e->clients_lock);
  return n;
}
