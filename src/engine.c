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
  if (mkdir (buf, 0700) < 0 && errno != EEXIST)   /* the data-dir */
    return -errno;
  return 0;
}

/* settings.secret-file: like ssh with its keys, refuse a file that
 * group or others could read or write (the secret would be theirs, or
 * theirs to change), or that belongs to someone other than this user or
 * root, or is not a regular file.  The checks are made on the open file
 * (fstat), so a file swapped after them is not the one read.  The secret
 * is at least 16 bytes after a trailing newline is dropped, at most
 * 4096. */
static int
read_secret (struct br_engine *e, char *err, size_t errlen)
{
  const char *path = e->cfg->secret_file;
  uint8_t buf[4097];
  struct stat st;
  ssize_t n;
  int fd;

  if (path == NULL)
    return 0;
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int saved = errno;
    snprintf (err, errlen, "%s: cannot open the secret file (settings "
              "secret-file): %s", path, br_strerror (saved));
    return -saved;
  }
  if (fstat (fd, &st) < 0) {
    int saved = errno;
    close (fd);
    snprintf (err, errlen, "%s: cannot stat the secret file: %s", path,
              br_strerror (saved));
    return -saved;
  }
  if (!S_ISREG (st.st_mode)) {
    close (fd);
    snprintf (err, errlen, "%s: the secret file is not a regular file",
              path);
    return -EINVAL;
  }
  if (st.st_mode & 077) {
    close (fd);
    snprintf (err, errlen, "%s: the secret file has mode %04o: it must not "
              "be readable or writable by group or others (chmod 600 %s)",
              path, (unsigned) (st.st_mode & 07777), path);
    return -EPERM;
  }
  if (st.st_uid != geteuid () && st.st_uid != 0) {
    close (fd);
    snprintf (err, errlen, "%s: the secret file is owned by uid %u, not by "
              "this user (uid %u) or root", path, (unsigned) st.st_uid,
              (unsigned) geteuid ());
    return -EPERM;
  }
  n = read (fd, buf, sizeof buf);
  if (n < 0) {
    int saved = errno;
    close (fd);
    snprintf (err, errlen, "%s: cannot read the secret: %s", path,
              br_strerror (saved));
    return -saved;
  }
  close (fd);
  if (n > 4096) {
    sodium_memzero (buf, sizeof buf);
    snprintf (err, errlen, "%s: the secret must be at most 4096 bytes", path);
    return -EINVAL;
  }
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    n--;
  if (n < 16) {
    sodium_memzero (buf, sizeof buf);
    snprintf (err, errlen, "%s: the secret must be at least 16 bytes", path);
    return -EINVAL;
  }
  e->secret = malloc (n);
  if (e->secret == NULL)
    return -ENOMEM;
  memcpy (e->secret, buf, n);
  sodium_memzero (buf, sizeof buf);
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

/* A backing file that is missing although the scoreboard knew it (the
 * disk was lost or wiped) will be created empty: before it is, the copy
 * takes a new generation, forgets its history and its peer bases, and
 * only then becomes FRESH, each step durable, so that a crash at any point
 * never lets the empty file pass for the old data.  FRESH goes last: a
 * crash before it leaves the disk missing and not FRESH, and the next
 * start does all of this again.  Hence a FRESH copy's history holds only
 * generations of its current disk, which was never written (the verdict,
 * rules 6 and 9, relies on that). */
static int
mark_lost (struct br_volume *v, const char *path)
{
  uint64_t gen;
  int r;

  br_warn ("%s: the backing store %s is missing and will be created "
           "empty; this copy is treated as new", v->cfg->name, path);
  br_wire_random (&gen, sizeof gen);
  r = br_sb_set_gen (v->sb, gen | 1);         /* the old one into history */
  if (r == 0)
    r = br_sb_forget_history (v->sb);
  for (int i = 0; r == 0 && i < BR_SB_MAX_PEERS; i++)
    if (br_sb_peer_name (v->sb, i)[0])
      r = br_sb_set_peer_gen (v->sb, i, 0);
  if (r == 0)
    br_crashpoint ("volume-lost-history-wiped");
  if (r == 0)
    r = br_sb_set_flags (v->sb, BR_SB_FRESH, BR_SB_CONSISTENT);
  return r;
}

/* Open V: the scoreboard first (so that "this disk is new" is recorded
 * before the disk exists), then the disk; then one sync of the disk, so
 * that whatever an earlier process left in the page cache is durable
 * before any bit is cleared on its account (bits.c C5: until a sync has
 * succeeded, sync_done is 0 and no region counts as durable here). */
static int
open_volume (struct br_engine *e, struct br_volume *v,
             const struct br_volume_cfg *vc, char *err, size_t errlen)
{
  char path[4096], disk[4096];
  struct stat st;
  uint64_t gen;
  int r;

  v->e = e;
  v->cfg = vc;
  v->size = vc->size;
  v->gran_shift = __builtin_ctz (vc->granularity);
  v->nregions = (vc->size + vc->granularity - 1) / vc->granularity;
  br_rangelock_init (&v->locks);
  br_mutex_init (&v->gen_lock);
  v->last_seq = calloc (v->nregions, sizeof *v->last_seq);
  v->last_write_ms = calloc (v->nregions, sizeof *v->last_write_ms);
  v->fail_seq = calloc (v->nregions, sizeof *v->fail_seq);
  v->written_gen = calloc (v->nregions, sizeof *v->written_gen);
  if (!v->last_seq || !v->last_write_ms || !v->fail_seq || !v->written_gen)
    return -ENOMEM;
  if (br_config_disk_path (e->cfg, e->self, vc->name, disk, sizeof disk) < 0 ||
      (size_t) snprintf (path, sizeof path, "%s/%s.meta", e->self->data_dir,
                         vc->name) >= sizeof path)
    return -ENAMETOOLONG;
  r = br_sb_open (path, vc->size, vc->granularity, e->self->name, &v->sb,
                  err, errlen);
  if (r < 0)
    return r;
  if (!br_sb_was_clean (v->sb))
    br_warn ("%s: not shut down cleanly; regions marked in its scoreboard "
             "will be resynced", vc->name);
  if (stat (disk, &st) < 0 && errno == ENOENT &&
      !(br_sb_flags (v->sb) & BR_SB_FRESH) && (r = mark_lost (v, disk)) < 0) {
    snprintf (err, errlen, "%s: cannot record that the disk is new: %s",
              vc->name, br_strerror (-r));
    return r;
  }
  br_crashpoint ("volume-fresh-marked");
  r = br_disk_open (disk, vc->size, &v->disk, err, errlen);
  if (r < 0)
    return r;
  br_crashpoint ("volume-disk-created");
  /* A primary takes a new generation every time it starts: whatever it
   * writes from now on is a history its peers can only have by syncing
   * from it, while they still match the old one (its base for them). */
  if (e->role == BR_ROLE_PRIMARY) {
    br_wire_random (&gen, sizeof gen);
    if ((r = br_sb_set_gen (v->sb, gen | 1)) < 0)
      return r;
  }
  if ((r = br__volume_sync (v)) < 0)
    br_warn ("%s: sync of %s failed: %s; no bit is cleared until a sync of "
             "this disk succeeds", vc->name, disk, br_strerror (-r));
  return 0;
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
      br_mutex_init (&g->lock);
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

/* Primary role: a copy that is not consistent (a resync into it did not
 * complete) would serve a mix of old and new data (promote's rule P6). */
static int
check_consistent (struct br_engine *e, char *err, size_t errlen)
{
  for (size_t i = 0; i < e->n_vols; i++)
    if (!(br_sb_flags (e->vols[i].sb) & BR_SB_CONSISTENT)) {
      snprintf (err, errlen, "%s is inconsistent on node %s (a resync into "
                "it has not completed): it cannot serve as the primary; "
                "start this node as a replica to finish the resync, or "
                "with force=true to serve it anyway",
                e->vols[i].cfg->name, e->self->name);
      return -EUCLEAN;
    }
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

int
br_engine_open (const struct br_engine_opts *opts, br_engine **out,
                char *err, size_t errlen)
{
  struct br_engine *e = calloc (1, sizeof *e);
  int r;

  if (e == NULL)
    return -ENOMEM;
  atomic_init (&e->role, opts->role);
  atomic_init (&e->role_busy, false);
  pthread_mutex_init (&e->clients_lock, NULL);
  e->can_serve = opts->can_serve;
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
  r = br_tls_ctx_init (&e->tls, e->cfg, e->self, e->secret, e->secret_len,
                       err, errlen);
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
  if (r == 0 && e->role == BR_ROLE_PRIMARY && !opts->force)
    r = check_consistent (e, err, errlen);
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
  br__bits_sync_tick (e);
}

static void
on_stop (uv_async_t *a)
{
  struct br_engine *e = a->data;

  for (size_t gi = 0; gi < e->n_groups; gi++)
    for (size_t pi = 0; pi < e->groups[gi].n_peers; pi++)
      br__peer_close (e->groups[gi].peers[pi]);
  br__replica_stop (e);
  br__events_stop (e);          /* the last events, then "end" */
  br__control_stop (e);
  br__metrics_file_stop (e);
  br__tasks_stop (e);
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

  r = br__tasks_start (e);
  if (r == 0)
    r = br__events_start (e);
  if (r == 0)
    r = br__control_start (e);
  if (r == 0)
    r = br__metrics_file_start (e);
  if (r == 0 && e->role == BR_ROLE_REPLICA)
    r = br__replica_start (e);
  if (r < 0) {
    on_stop (&e->stop);
    uv_run (&e->loop, UV_RUN_DEFAULT);
    uv_loop_close (&e->loop);
    br__metrics_file_final (e, false);
    return r;
  }
  for (size_t gi = 0; gi < e->n_groups; gi++)
    for (size_t pi = 0; pi < e->groups[gi].n_peers; pi++)
      br__peer_start (e->groups[gi].peers[pi]);
  e->started_loop = true;         /* peers added from now on start at once */
  if (e->role == BR_ROLE_REPLICA)
    br__relay_resume (e);
  r = uv_thread_create (&e->thread, run_loop, e);
  if (r < 0) {
    br_error ("cannot start the loop thread: %s", uv_strerror (r));
    on_stop (&e->stop);
    uv_run (&e->loop, UV_RUN_DEFAULT);
    uv_loop_close (&e->loop);
    br__metrics_file_final (e, false);
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
  br__metrics_file_final (e, true);     /* the peers are stopped now */
  if (uv_loop_close (&e->loop) < 0)
    br_error ("internal error: libuv handles left open at shutdown");
  e->started = false;
}

/* After the loop has stopped: make every disk durable, and only then
 * clear the bits that wait for nothing else (the activity window does not
 * matter when no write can follow) and mark the scoreboards clean.  A disk
 * that cannot be synced keeps its bits and leaves its scoreboard not
 * clean (I2: no bit clears before this copy is durable). */
static void
close_volumes (struct br_engine *e)
{
  for (size_t gi = 0; gi < e->n_groups; gi++) {
    struct br_group *g = &e->groups[gi];
    bool synced = true;

    for (size_t vi = 0; vi < g->n_vols; vi++) {
      struct br_volume *v = g->vols[vi];
      int r = v->disk ? br__volume_sync (v) : -EIO;

      if (r < 0) {
        br_error ("%s: final sync failed: %s; its scoreboard keeps every "
                  "bit", v->cfg->name, br_strerror (-r));
        synced = false;
      }
    }
    br_mutex_lock (&g->lock);
    for (size_t pi = 0; synced && pi < g->n_peers; pi++)
      br__bits_scan (g->peers[pi], true);
    br_mutex_unlock (&g->lock);
    for (size_t vi = 0; vi < g->n_vols; vi++) {
      struct br_volume *v = g->vols[vi];

      if (v->sb)
        br_sb_close (v->sb, synced);
      v->sb = NULL;
    }
  }
  br_crashpoint ("engine-scoreboards-closed");
}

void
br_engine_close (br_engine *e)
{
  if (e == NULL)
    return;
  br_engine_stop (e);
  br__events_free (e);
  if (e->groups)
    close_volumes (e);
  for (size_t i = 0; i < e->n_retired; i++)   /* they point to groups */
    br__peer_free (e->retired[i]);
  free (e->retired);
  for (size_t gi = 0; gi < e->n_groups; gi++) {
    struct br_group *g = &e->groups[gi];

    for (size_t pi = 0; pi < g->n_peers; pi++)
      br__peer_free (g->peers[pi]);
    free (g->vols);
    free (g->rw);
    br_mutex_destroy (&g->lock);
    pthread_cond_destroy (&g->cond);
  }
  free (e->groups);
  for (size_t i = 0; i < e->n_vols; i++) {
    struct br_volume *v = &e->vols[i];

    if (v->sb)                  /* opened, but never in a group */
      br_sb_close (v->sb, false);
    br_disk_close (v->disk);
    br_rangelock_destroy (&v->locks);
    free (v->last_seq);
    free (v->last_write_ms);
    free (v->fail_seq);
    free (v->written_gen);
  }
  free (e->vols);
  br_tls_ctx_close (&e->tls);
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
br_engine_control_path (const br_engine *e)
{
  return e->control_path;
}

const char *
br_engine_user (const br_engine *e)
{
  return e->cfg->user;
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
