/* nbdkit-blockrelay-plugin — serve a node's replicated volumes over NBD.
 *
 *   nbdkit nbdkit-blockrelay-plugin.so config=FILE node=NAME [control=PATH]
 *          [role=primary|replica] [force=BOOL] [assume-clean=BOOL]
 *
 * This file is only the adaptor: each callback translates to one engine
 * call (src/engine.h).  The engine holds every piece of replication logic
 * and is shared with blockrelayd.
 *
 * Life cycle: .get_ready opens the engine (config, disks, scoreboards) so
 * that errors stop nbdkit before it daemonizes; .after_fork starts the
 * engine's libuv thread (threads do not survive fork); .cleanup stops and
 * closes it.  Each volume is an export named after it; the default export
 * is the first volume.
 *
 * Roles: with role=replica the node starts as a replica (the engine
 * listens for an upstream, like blockrelayd) and refuses NBD clients
 * until `blockrelay promote`; `blockrelay demote` turns it back (refused
 * while a client is connected).  .open attaches a client to the engine,
 * .close detaches it (src/role.c).
 *
 * Thread model PARALLEL: the engine's write path is thread-safe, and flush
 * is global across connections (a FLUSH waits for every write already
 * replied to, on the local disk and every sync peer), so can_multi_conn
 * is advertised honestly.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "log.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* -D blockrelay.FLAG=1 */
NBDKIT_DLL_PUBLIC int blockrelay_debug_wire;
NBDKIT_DLL_PUBLIC int blockrelay_debug_peer;
NBDKIT_DLL_PUBLIC int blockrelay_debug_sb;
NBDKIT_DLL_PUBLIC int blockrelay_debug_io;

static char *config_path;
static char *node_name;
static char *control_path;
static bool assume_clean;
static bool force;
static enum br_role role = BR_ROLE_PRIMARY;
static br_engine *engine;

static void
sink (enum br_log_level level, const char *msg)
{
  switch (level) {
  case BR_LOG_ERROR: nbdkit_error ("%s", msg); break;
  case BR_LOG_WARN: nbdkit_error ("warning: %s", msg); break;
  default: nbdkit_debug ("%s", msg); break;
  }
}

static void
br_unload (void)
{
  free (config_path);
  free (node_name);
  free (control_path);
}

static int
br_config (const char *key, const char *value)
{
  char **slot;

  if (strcmp (key, "config") == 0)
    slot = &config_path;
  else if (strcmp (key, "node") == 0)
    slot = &node_name;
  else if (strcmp (key, "control") == 0)
    slot = &control_path;
  else if (strcmp (key, "assume-clean") == 0 || strcmp (key, "force") == 0) {
    int r = nbdkit_parse_bool (value);
    if (r < 0)
      return -1;
    if (key[0] == 'a')
      assume_clean = r;
    else
      force = r;
    return 0;
  }
  else if (strcmp (key, "role") == 0) {
    if (strcmp (value, "primary") == 0)
      role = BR_ROLE_PRIMARY;
    else if (strcmp (value, "replica") == 0)
      role = BR_ROLE_REPLICA;
    else {
      nbdkit_error ("role must be primary or replica, not '%s'", value);
      return -1;
    }
    return 0;
  }
  else {
    nbdkit_error ("unknown parameter '%s' (see --help)", key);
    return -1;
  }
  free (*slot);
  *slot = slot == &config_path ? nbdkit_absolute_path (value)
                               : strdup (value);
  if (*slot == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  return 0;
}

static int
br_config_complete (void)
{
  if (config_path == NULL || node_name == NULL) {
    nbdkit_error ("you must give config=FILE and node=NAME");
    return -1;
  }
  return 0;
}

#define br_config_help \
  "config=FILE      (required) The topology file (YAML), same on every node.\n" \
  "node=NAME        (required) This node's name in the topology.\n" \
  "control=PATH                Control socket (default: from the topology).\n" \
  "assume-clean=BOOL           A new (never synced) replica is taken as\n" \
  "                            identical: no full sync.  Only for a pair\n" \
  "                            created empty together.\n" \
  "role=primary|replica        Start as the primary (default) or as a\n" \
  "                            replica that serves nothing until\n" \
  "                            `blockrelay promote`.\n" \
  "force=BOOL                  Start as the primary even if a copy is\n" \
  "                            inconsistent (an unfinished resync).\n" \
  "Exports: one per volume, named after it; the default is the first.\n" \
  "Debug flags: -D blockrelay.wire=1 -D blockrelay.peer=1 " \
  "-D blockrelay.sb=1 -D blockrelay.io=1"

static int
br_get_ready (void)
{
  struct br_engine_opts opts = {
    .config_path = config_path, .node = node_name,
    .role = role, .control_path = control_path,
    .assume_clean = assume_clean, .can_serve = true, .force = force,
  };
  char err[1024] = "";

  br_log_set_sink (sink);
  br_debug_flags = (blockrelay_debug_wire ? BR_DEBUG_WIRE : 0) |
    (blockrelay_debug_peer ? BR_DEBUG_PEER : 0) |
    (blockrelay_debug_sb ? BR_DEBUG_SB : 0) |
    (blockrelay_debug_io ? BR_DEBUG_IO : 0);
  if (br_engine_open (&opts, &engine, err, sizeof err) < 0) {
    nbdkit_error ("%s", err);
    return -1;
  }
  return 0;
}

static int
br_after_fork (void)
{
  if (br_engine_start (engine) < 0) {
    nbdkit_error ("cannot start the replication engine");
    return -1;
  }
  return 0;
}

static void
br_cleanup (void)
{
  br_engine_close (engine);
  engine = NULL;
}

static int
br_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  for (size_t i = 0; i < br_engine_n_volumes (engine); i++)
    if (nbdkit_add_export (exports,
                           br_volume_name (br_engine_volume (engine, i)),
                           NULL) < 0)
      return -1;
  return 0;
}

static const char *
br_default_export (int readonly, int is_tls)
{
  return br_volume_name (br_engine_volume (engine, 0));
}

static void *
br_open (int readonly)
{
  const char *name = nbdkit_export_name ();
  br_volume *v;

  if (name == NULL || *name == '\0')
    v = br_engine_volume (engine, 0);
  else if ((v = br_engine_find_volume (engine, name)) == NULL) {
    nbdkit_error ("no volume named '%s' on node %s", name, node_name);
    errno = ENOENT;
    return NULL;
  }
  if (br_engine_client_attach (engine) < 0) {
    nbdkit_error ("node %s is a replica: it serves no client until "
                  "`blockrelay promote` makes it the primary", node_name);
    errno = EROFS;
    return NULL;
  }
  return v;
}

static void
br_close (void *handle)
{
  br_engine_client_detach (engine);
}

static int64_t
br_get_size (void *handle)
{
  return br_volume_size (handle);
}

static int
br_can_multi_conn (void *handle)
{
  return 1;
}

static int
br_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
br_can_flush (void *handle)
{
  return 1;
}

static int
br_can_trim (void *handle)
{
  return 1;
}

static int
br_can_zero (void *handle)
{
  return 1;
}

/* Engine calls return -errno; nbdkit wants -1 with errno set. */
static int
ret (int r)
{
  if (r < 0) {
    errno = -r;
    return -1;
  }
  return 0;
}

static int
br_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
          uint32_t flags)
{
  return ret (br_volume_pread (handle, buf, count, offset));
}

static int
br_pwrite (void *handle, const void *buf, uint32_t count, uint64_t offset,
           uint32_t flags)
{
  return ret (br_volume_pwrite (handle, buf, count, offset,
                                flags & NBDKIT_FLAG_FUA));
}

static int
br_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  return ret (br_volume_zero (handle, count, offset,
                              flags & NBDKIT_FLAG_MAY_TRIM,
                              flags & NBDKIT_FLAG_FUA));
}

/* Trim is replicated as a zero that may deallocate, so every copy reads
 * back the same bytes. */
static int
br_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  return ret (br_volume_zero (handle, count, offset, true,
                              flags & NBDKIT_FLAG_FUA));
}

static int
br_flush (void *handle, uint32_t flags)
{
  return ret (br_volume_flush (handle));
}

static struct nbdkit_plugin plugin = {
  .name = "blockrelay",
  .longname = "blockrelay replicated volumes",
  .version = "0.1.0",
  .description = "Serve replicated volumes; writes are mirrored to peers",
  .unload = br_unload,
  .config = br_config,
  .config_complete = br_config_complete,
  .config_help = br_config_help,
  .magic_config_key = "config",
  .get_ready = br_get_ready,
  .after_fork = br_after_fork,
  .cleanup = br_cleanup,
  .list_exports = br_list_exports,
  .default_export = br_default_export,
  .open = br_open,
  .close = br_close,
  .get_size = br_get_size,
  .can_multi_conn = br_can_multi_conn,
  .can_fua = br_can_fua,
  .can_flush = br_can_flush,
  .can_trim = br_can_trim,
  .can_zero = br_can_zero,
  .pread = br_pread,
  .pwrite = br_pwrite,
  .zero = br_zero,
  .trim = br_trim,
  .flush = br_flush,
  .errno_is_preserved = 1,     /* ret() sets errno just before -1 */
};

NBDKIT_REGISTER_PLUGIN (plugin)
