/* blockrelay — the engine: one per process, serving every volume of a node.
 *
 * br_engine_open() loads the topology, opens each volume's disk and
 * scoreboard, builds the groups and, for the primary role, one peer per
 * (group, neighbouring node).  br_engine_start() binds the sockets on the
 * calling thread (so that errors are reported to the caller) and then
 * runs the libuv loop in a thread of its own; everything network-facing
 * runs on that thread.  br_engine_stop() asks the loop to close every
 * handle and joins it.
 *
 * Threads:
 *   - callers of br_volume_* (nbdkit's workers): group.c
 *   - the loop thread: peer.c, replica.c, control.c, the tick timer
 *   - one apply thread per upstream session (replica.c)
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"
#include "util.h"

#define TICK_MS 20

static int
mkdir_p (const char *path)
{
  char buf[4096];
  size_t len = strlen (path);

  if (len >= sizeof buf)
    return -ENAMETOOLONG;
  memcpy (buf, path, len + 1);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir (buf, 0755) < 0 && errno != EEXIST)
        return -errno;
      *p = '/';
    }
  if (mkdir (buf, 0755) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

static int
read_secret (struct br_engine *e, char *err, size_t errlen)
{
  const char *path = e->cfg->secret_file;
  uint8_t buf[4096];
  ssize_t n;
  int fd;

  if (path == NULL)
    return 0;
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int saved = errno;
    snprintf (err, errlen, "%s: cannot read the secret: %s", path,
              br_strerror (saved));
    return -saved;
  }
  n = read (fd, buf, sizeof buf);
  close (fd);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    n--;
  if (n < 16) {
    snprintf (err, errlen, "%s: the secret must be at least 16 bytes", path);
    return -EINVAL;
  }
  e->secret = malloc (n);
  if (e->secret == NULL)
    return -ENOMEM;
  memcpy (e->secret, buf, n);
  e->secret_len = n;
  return 0;
}

static struct br_group *
group_for (struct br_engine *e, const char *name)
{
  for (size_t i = 0; i < e->n_groups; i++)
    if (strcmp (e->groups[i].name, name) == 0)
      return &e->groups[i];
  return NULL;
}

/* Generation identifiers at open (I6).
 *  - A backing file that had to be created although the scoreboard knew
 *    it (the disk was lost or wiped) holds nothing: the copy becomes FRESH
 *    with a new generation and no peer base, so it is fully resynced if it
 *    is a replica, and recognised as diverged (not silently trusted) if it
 *    is a primary whose peers still hold data.
 *  - A primary takes a new generation every time it starts: whatever it
 *    writes from now on is a history its peers can only have by syncing
 *    from it, while they still match the old one (its base for them). */
static int
check_generation (struct br_engine *e, struct br_volume *v)
{
  uint64_t gen;
  int r = 0;

  if (br_disk_created (v->disk) && !(br_sb_flags (v->sb) & BR_SB_FRESH)) {
    br_warn ("%s: the backing store %s was missing and has been created "
             "empty; this copy is treated as new", v->cfg->name,
             br_disk_path (v->disk));
    r = br_sb_set_flags (v->sb, BR_SB_FRESH, BR_SB_CONSISTENT);
    if (r == 0)
      r = br_sb_forget_history (v->sb);
    for (int i = 0; r == 0 && i < BR_SB_MAX_PEERS; i++)
      if (br_sb_peer_name (v->sb, i)[0])
        r = br_sb_set_peer_gen (v->sb, i, 0);
    if (r == 0) {
      br_wire_random (&gen, sizeof gen);
      r = br_sb_set_gen (v->sb, gen | 1);
    }
    if (r == 0)
      r = br_sb_forget_history (v->sb);
  }
  if (r == 0 && e->role == BR_ROLE_PRIMARY) {
    br_wire_random (&gen, sizeof gen);
    r = br_sb_set_gen (v->sb, gen | 1);
  }
  return r;
}

static int
open_volume (struct br_engine *e, struct br_volume *v,
             const struct br_volume_cfg *vc, char *err, size_t errlen)
{
  char path[4096];
  int r;

  v->e = e;
  v->cfg = vc;
  v->size = vc->size;
  v->gran_shift = __builtin_ctz (vc->granularity);
  v->nregions = (vc->size + vc->granularity - 1) / vc->granularity;
  br_rangelock_init (&v->locks);
  v->last_seq = calloc (v->nregions, sizeof *v->last_seq);
  v->last_write_ms = calloc (v->nregions, sizeof *v->last_write_ms);
  if (v->last_seq == NULL || v->last_write_ms == NULL)
    return -ENOMEM;
  if (br_config_disk_path (e->cfg, e->self, vc->name, path, sizeof path) < 0)
    return -ENAMETOOLONG;
  r = br_disk_open (path, vc->size, &v->disk, err, errlen);
  if (r < 0)
    return r;
  if ((size_t) snprintf (path, sizeof path, "%s/%s.meta", e->self->data_dir,
                         vc->name) >= sizeof path)
    return -ENAMETOOLONG;
  r = br_sb_open (path, vc->size, vc->granularity, e->self->name, &v->sb,
                  err, errlen);
  if (r < 0)
    return r;
  if (!br_sb_was_clean (v->sb))
    br_warn ("%s: not shut down cleanly; regions marked in its scoreboard "
             "will be resynced", vc->name);
  return check_generation (e, v);
}

static int
build_groups (struct br_engine *e)
{
  e->groups = calloc (e->cfg->n_volumes, sizeof *e->groups);
  if (e->groups == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < e->n_vols; i++) {
    struct br_volume *v = &e->vols[i];
    struct br_group *g = group_for (e, v->cfg->group);
    struct br_volume **nv;

    if (g == NULL) {
      g = &e->groups[e->n_groups++];
      g->e = e;
      g->name = v->cfg->group;
      pthread_mutex_init (&g->lock, NULL);
      pthread_cond_init (&g->cond, NULL);
      atomic_init (&g->cancel, false);
    }
    nv = realloc (g->vols, (g->n_vols + 1) * sizeof *nv);
    if (nv == NULL)
      return -ENOMEM;
    g->vols = nv;
    v->g = g;
    v->id = g->n_vols;
    g->vols[g->n_vols++] = v;
  }
  return 0;
}

/* Add a peer for NODE over LINK to G, with a scoreboard slot in each
 * volume (not started). */
static int
group_add_peer (struct br_group *g, const struct br_node_cfg *node,
                const struct br_link_cfg *link, char *err, size_t errlen)
{
  int idx = g->n_peers;

  if (idx == BR_MAX_PEERS) {
    snprintf (err, errlen, "node %s has more than %d peers",
              g->e->self->name, BR_MAX_PEERS);
    return -EINVAL;
  }
  if (br__peer_init (g, idx, node, link) < 0 ||
      br__bits_init (g->peers[idx]) < 0) {
    br__peer_free (g->peers[idx]);
    g->peers[idx] = NULL;
    snprintf (err, errlen, "out of memory");
    return -ENOMEM;
  }
  for (size_t vi = 0; vi < g->n_vols; vi++) {
    struct br_volume *v = g->vols[vi];
    int slot = br_sb_peer_slot (v->sb, node->name);

    if (slot < 0) {
      snprintf (err, errlen, "%s: no free scoreboard slot for peer %s",
                v->cfg->name, node->name);
      br__peer_free (g->peers[idx]);
      g->peers[idx] = NULL;
      return slot;
    }
    v->slot[idx] = slot;
  }
  /* Published last: writers read n_peers and slot_mask. */
  g->n_peers++;
  for (size_t vi = 0; vi < g->n_vols; vi++)
    g->vols[vi]->slot_mask |= 1u << g->vols[vi]->slot[idx];
  return 0;
}

/* Primary role: every neighbour is a child (the tree is rooted here). */
static int
build_peers (struct br_engine *e, char *err, size_t errlen)
{
  for (size_t gi = 0; gi < e->n_groups; gi++) {
    struct br_group *g = &e->groups[gi];
    int r = br__relay_start (g, e->self->name, err, errlen);

    if (r < 0)
      return r;
  }
  return 0;
}

/* ---- relaying (replica role) ----
 *
 * A replica learns the origin of a group's stream from its upstream's
 * HELLO and forwards to its children in the tree rooted there
 * (topology.c).  Peers are only added or retired on the loop thread while
 * no apply thread runs for the group (the apply thread reads them without
 * the group lock): before the first session's thread starts, or between
 * sessions.  While a session applies, a new upstream with another origin
 * is accepted only if the children would be the same. */

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

/* Loop thread, no apply thread running: stop every peer of G; they are
 * freed at close (their handles close asynchronously). */
static int
retire_peers (struct br_group *g)
{
  struct br_engine *e = g->e;
  struct br_peer **nr = realloc (e->retired, (e->n_retired + g->n_peers) *
                                 sizeof *nr);

  if (nr == NULL)
    return -ENOMEM;
  e->retired = nr;
  for (size_t i = 0; i < g->n_peers; i++) {
    br__peer_close (g->peers[i]);
    e->retired[e->n_retired++] = g->peers[i];
    g->peers[i] = NULL;
  }
  g->n_peers = 0;
  for (size_t vi = 0; vi < g->n_vols; vi++)
    g->vols[vi]->slot_mask = 0;
  return 0;
}

static void
record_origin (struct br_group *g, const char *origin)
{
  snprintf (g->origin, sizeof g->origin, "%s", origin);
  if (g->e->role != BR_ROLE_REPLICA)
    return;
  for (size_t vi = 0; vi < g->n_vols; vi++)
    if (br_sb_set_origin (g->vols[vi]->sb, origin) < 0)
      br_error ("%s: cannot record origin %s in the scoreboard",
                g->vols[vi]->cfg->name, origin);
}

int
br__relay_start (struct br_group *g, const char *origin, char *err,
                 size_t errlen)
{
  const struct br_node_cfg *nodes[BR_MAX_PEERS];
  const struct br_link_cfg *links[BR_MAX_PEERS];
  bool relay = g->e->role == BR_ROLE_REPLICA, changed;
  int n, r;

  if (g->origin[0] && strcmp (g->origin, origin) == 0)
    return 0;
  r = br__relay_check (g, origin, err, errlen);
  if (r < 0)
    return r;
  n = children_of (g, origin, nodes, links, err, errlen);
  if (n < 0)
    return n;
  changed = g->origin[0] != '\0';
  if (changed && same_children (g, nodes, n)) {
    br_info ("group %s: now receiving the writes of %s (was %s); same "
             "downstream", g->name, origin, g->origin);
    record_origin (g, origin);
    return 0;
  }
  if (changed) {
    br_warn ("group %s: the writes now come from %s (was %s): the "
             "downstream changes, and every new child gets a full sync",
             g->name, origin, g->origin);
    if ((r = retire_peers (g)) < 0) {
      snprintf (err, errlen, "out of memory");
      return r;
    }
  }
  for (int i = 0; i < n; i++) {
    struct br_peer *p;

    r = group_add_peer (g, nodes[i], links[i], err, errlen);
    if (r < 0)
      return r;
    p = g->peers[g->n_peers - 1];
    /* An async child of a relay pulls ahead rather than hold up the
     * upstream, unless the file says otherwise. */
    if (relay && links[i]->mode == BR_MODE_ASYNC &&
        !links[i]->on_congestion_set)
      p->congestion = BR_CONGESTION_PULL_AHEAD;
    /* A child this copy did not track until now may differ anywhere. */
    for (size_t vi = 0; changed && vi < g->n_vols; vi++)
      if ((r = br_sb_mark_all (g->vols[vi]->sb, g->vols[vi]->slot[p->idx]))
          < 0) {
        snprintf (err, errlen, "cannot mark %s for a full sync",
                  g->vols[vi]->cfg->name);
        return r;
      }
    if (relay && g->e->started_loop)
      br__peer_start (p);
  }
  record_origin (g, origin);
  if (relay && n > 0)
    br_info ("group %s: relaying the writes of %s to %d node(s)", g->name,
             origin, n);
  return 0;
}

/* Replica role, at start: resume relaying for the origin the scoreboards
 * recorded, so children are resynced even before the upstream is back. */
static void
resume_relaying (struct br_engine *e)
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

int
br_engine_open (const struct br_engine_opts *opts, br_engine **out,
                char *err, size_t errlen)
{
  struct br_engine *e = calloc (1, sizeof *e);
  int r;

  if (e == NULL)
    return -ENOMEM;
  e->role = opts->role;
  e->assume_clean = opts->assume_clean;
  if (br_config_load (opts->config_path, &e->cfg, err, errlen) < 0) {
    free (e);
    return -EINVAL;
  }
  e->self = br_config_node (e->cfg, opts->node);
  if (e->self == NULL) {
    snprintf (err, errlen, "%s: no node named '%s'", opts->config_path,
              opts->node);
    r = -ENOENT;
    goto fail;
  }
  e->control_path = strdup (opts->control_path ? opts->control_path
                            : e->self->control);
  if (e->control_path == NULL) {
    r = -ENOMEM;
    goto fail;
  }
  r = mkdir_p (e->self->data_dir);
  if (r < 0) {
    snprintf (err, errlen, "cannot create %s: %s", e->self->data_dir,
              br_strerror (-r));
    goto fail;
  }
  r = read_secret (e, err, errlen);
  if (r < 0)
    goto fail;
  e->vols = calloc (e->cfg->n_volumes, sizeof *e->vols);
  if (e->vols == NULL) {
    r = -ENOMEM;
    goto fail;
  }
  for (size_t i = 0; i < e->cfg->n_volumes; i++) {
    e->n_vols++;
    r = open_volume (e, &e->vols[i], &e->cfg->volumes[i], err, errlen);
    if (r < 0)
      goto fail;
  }
  r = build_groups (e);
  if (r == 0 && e->role == BR_ROLE_PRIMARY)
    r = build_peers (e, err, errlen);
  if (r < 0)
    goto fail;
  *out = e;
  return 0;

 fail:
  if (err[0] == '\0')
    snprintf (err, errlen, "%s", br_strerror (-r));
  br_engine_close (e);
  return r;
}

/* ---- the loop thread ---- */

static void
on_wakeup (uv_async_t *a)
{
  struct br_engine *e = a->data;

  atomic_store (&e->wake_pending, false);
  for (size_t gi = 0; gi < e->n_groups; gi++)
    for (size_t pi = 0; pi < e->groups[gi].n_peers; pi++)
      br__peer_flush_queue (e->groups[gi].peers[pi]);
}

static void
on_tick (uv_timer_t *t)
{
  struct br_engine *e = t->data;

  for (size_t gi = 0; gi < e->n_groups; gi++)
    for (size_t pi = 0; pi < e->groups[gi].n_peers; pi++)
      br__peer_tick (e->groups[gi].peers[pi]);
}

static void
on_stop (uv_async_t *a)
{
  struct br_engine *e = a->data;

  for (size_t gi = 0; gi < e->n_groups; gi++)
    for (size_t pi = 0; pi < e->groups[gi].n_peers; pi++)
      br__peer_close (e->groups[gi].peers[pi]);
  br__replica_stop (e);
  br__control_stop (e);
  uv_close ((uv_handle_t *) &e->tick, NULL);
  uv_close ((uv_handle_t *) &e->wakeup, NULL);
  uv_close ((uv_handle_t *) &e->stop, NULL);
}

static void
run_loop (void *arg)
{
  struct br_engine *e = arg;

  uv_run (&e->loop, UV_RUN_DEFAULT);
}

int
br_engine_start (br_engine *e)
{
  int r;

  r = uv_loop_init (&e->loop);
  if (r < 0)
    return r;
  e->started_at = time (NULL);
  uv_async_init (&e->loop, &e->wakeup, on_wakeup);
  uv_async_init (&e->loop, &e->stop, on_stop);
  uv_timer_init (&e->loop, &e->tick);
  e->wakeup.data = e->stop.data = e->tick.data = e;
  uv_timer_start (&e->tick, on_tick, TICK_MS, TICK_MS);

  r = br__control_start (e);
  if (r == 0 && e->role == BR_ROLE_REPLICA)
    r = br__replica_start (e);
  if (r < 0) {
    on_stop (&e->stop);
    uv_run (&e->loop, UV_RUN_DEFAULT);
    uv_loop_close (&e->loop);
    return r;
  }
  for (size_t gi = 0; gi < e->n_groups; gi++)
    for (size_t pi = 0; pi < e->groups[gi].n_peers; pi++)
      br__peer_start (e->groups[gi].peers[pi]);
  e->started_loop = true;         /* peers added from now on start at once */
  if (e->role == BR_ROLE_REPLICA)
    resume_relaying (e);
  r = uv_thread_create (&e->thread, run_loop, e);
  if (r < 0) {
    br_error ("cannot start the loop thread: %s", uv_strerror (r));
    on_stop (&e->stop);
    uv_run (&e->loop, UV_RUN_DEFAULT);
    uv_loop_close (&e->loop);
    return r;
  }
  e->started = true;
  return 0;
}

void
br_engine_stop (br_engine *e)
{
  if (!e->started)
    return;
  uv_async_send (&e->stop);
  uv_thread_join (&e->thread);
  if (uv_loop_close (&e->loop) < 0)
    br_error ("internal error: libuv handles left open at shutdown");
  e->started = false;
}

void
br_engine_close (br_engine *e)
{
  if (e == NULL)
    return;
  br_engine_stop (e);
  for (size_t i = 0; i < e->n_retired; i++)   /* they point to groups */
    br__peer_free (e->retired[i]);
  free (e->retired);
  for (size_t gi = 0; gi < e->n_groups; gi++) {
    struct br_group *g = &e->groups[gi];

    for (size_t pi = 0; pi < g->n_peers; pi++)
      br__peer_free (g->peers[pi]);
    free (g->vols);
    free (g->rw);
    pthread_mutex_destroy (&g->lock);
    pthread_cond_destroy (&g->cond);
  }
  free (e->groups);
  for (size_t i = 0; i < e->n_vols; i++) {
    struct br_volume *v = &e->vols[i];

    if (v->sb)
      br_sb_close (v->sb, true);
    if (v->disk) {
      if (br_disk_flush (v->disk) < 0)
        br_error ("%s: final flush failed", v->cfg->name);
      br_disk_close (v->disk);
    }
    br_rangelock_destroy (&v->locks);
    free (v->last_seq);
    free (v->last_write_ms);
  }
  free (e->vols);
  if (e->secret)
    sodium_memzero (e->secret, e->secret_len);
  free (e->secret);
  free (e->control_path);
  br_config_free (e->cfg);
  free (e);
}

size_t
br_engine_n_volumes (const br_engine *e)
{
  return e->n_vols;
}

br_volume *
br_engine_volume (br_engine *e, size_t i)
{
  return i < e->n_vols ? &e->vols[i] : NULL;
}

br_volume *
br_engine_find_volume (br_engine *e, const char *name)
{
  for (size_t i = 0; i < e->n_vols; i++)
    if (strcmp (e->vols[i].cfg->name, name) == 0)
      return &e->vols[i];
  return NULL;
}

const char *
br_volume_name (const br_volume *v)
{
  return v->cfg->name;
}

uint64_t
br_volume_size (const br_volume *v)
{
  return v->size;
}
