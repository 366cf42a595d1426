/* blockrelay — the replication engine's public interface.
 *
 * One engine per process serves every volume of one node.  The nbdkit
 * plugin opens it with the PRIMARY role and calls the br_volume_* I/O
 * functions from nbdkit's worker threads; blockrelayd opens it with the
 * REPLICA role, in which it listens for an upstream node and applies what
 * it receives.  Both roles share the same volumes, scoreboards, groups,
 * peers and control socket.
 *
 * Life cycle:  br_engine_open  (config, disks, scoreboards; no threads)
 *           -> br_engine_start (the libuv loop thread: sockets, timers)
 *           -> br_engine_stop  (loop thread joined; no more I/O accepted)
 *           -> br_engine_close (scoreboards closed clean, disks closed).
 * nbdkit forks when it daemonizes, so the plugin calls open in .get_ready
 * and start in .after_fork.
 *
 * All functions return 0 or a negative errno unless said otherwise.
 */
#ifndef BR_ENGINE_H
#define BR_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct br_engine br_engine;
typedef struct br_volume br_volume;

enum br_role { BR_ROLE_PRIMARY, BR_ROLE_REPLICA };

struct br_engine_opts {
  const char *config_path;
  const char *node;
  enum br_role role;
  const char *control_path;     /* overrides the node's control socket */
  bool assume_clean;            /* primary: treat a new (never synced)
                                   replica as identical: no full sync */
  bool can_serve;               /* an NBD front end serves the volumes
                                   (the plugin): promote is possible */
  bool force;                   /* primary: start even if a copy is
                                   inconsistent */
};

int br_engine_open (const struct br_engine_opts *opts, br_engine **out,
                    char *err, size_t errlen);
int br_engine_start (br_engine *e);
void br_engine_stop (br_engine *e);
void br_engine_close (br_engine *e);

/* The current role (promote and demote change it at run time). */
enum br_role br_engine_role (const br_engine *e);
/* The NBD front end: a client connection opens (-EROFS while this node is
 * not primary: nothing is served) or closes.  Demote is refused while
 * one is open.  Thread-safe. */
int br_engine_client_attach (br_engine *e);
void br_engine_client_detach (br_engine *e);

size_t br_engine_n_volumes (const br_engine *e);
/* The control socket's path; settings.user (NULL when not set). */
const char *br_engine_control_path (const br_engine *e);
const char *br_engine_user (const br_engine *e);
br_volume *br_engine_volume (br_engine *e, size_t i);
br_volume *br_engine_find_volume (br_engine *e, const char *name);

const char *br_volume_name (const br_volume *v);
uint64_t br_volume_size (const br_volume *v);

/* The primary's data path (group.c).  Thread-safe. */
int br_volume_pread (br_volume *v, void *buf, size_t count, uint64_t off);
int br_volume_pwrite (br_volume *v, const void *buf, size_t count,
                      uint64_t off, bool fua);
int br_volume_zero (br_volume *v, size_t count, uint64_t off, bool may_trim,
                    bool fua);
int br_volume_flush (br_volume *v);

#endif
