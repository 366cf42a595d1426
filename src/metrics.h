/* blockrelay — metrics in the Prometheus text exposition format.
 *
 * A snapshot (plain values and names, no engine pointers) is taken on the
 * loop thread (metrics.c, br__metrics_collect) and turned into text by
 * br_metrics_format(), a pure function unit-tested in
 * tests/unit/test_metrics.c.  The same text answers the control socket's
 * {"cmd":"metrics"} (blockrelay metrics) and is written periodically to
 * a node's metrics-file (metrics-file.c) for node_exporter's textfile
 * collector.  Every series is listed in docs/operations.md ("Metrics").
 */
#ifndef BR_METRICS_H
#define BR_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peerfsm.h"

/* Errors by kind (blockrelay_errors_total{kind=...}), counted per peer
 * where they are detected (peer.c, peer-handshake.c). */
enum br_err_kind {
  BR_ERR_CONNECT_FAILED,        /* connect or resolve failed (LOST while
                                   CONNECTING) */
  BR_ERR_CONNECTION_LOST,       /* an established connection or handshake
                                   ended: EOF, reset, timeout, send error */
  BR_ERR_HANDSHAKE_REFUSED,     /* the peer refused us, authentication
                                   failed, or its WELCOME does not match */
  BR_ERR_SPLIT_BRAIN,           /* the generation verdict halted the peer */
  BR_ERR_BAD_FRAME,             /* a frame that fails validation (I7) */
  BR_ERR_PEER_ERROR,            /* the peer reported an error (ERROR) */
  BR_ERR_LOCAL_IO,              /* local disk work for this peer failed */
  BR_ERR_N_KINDS
};
const char *br_err_kind_name (enum br_err_kind k);
/* The kind a connection loss by EV in state ST counts as, or
 * BR_ERR_N_KINDS for none (br__peer_lost; the callers that know better,
 * e.g. a bad frame during the handshake or a peer's ERROR, name the kind
 * with br__peer_lost_as).  Pure. */
enum br_err_kind br_loss_kind (enum br_peer_event ev, enum br_peer_state st);

struct br_metrics_volume {
  const char *name, *group;
  uint64_t size;
  bool consistent;
  uint64_t disk_errors;         /* failed reads, writes, syncs, zeroes */
};

/* One (volume, peer) pair. */
struct br_metrics_dirty {
  const char *volume, *group, *peer;
  uint64_t dirty_bytes;         /* as status' dirty_bytes */
  uint64_t resync_remaining_bytes;      /* as status' resync_left_bytes */
};

struct br_metrics_peer {
  const char *group, *peer, *mode;
  enum br_peer_state state;
  uint64_t replicated_bytes;    /* WRITE and ZERO ranges made durable */
  uint64_t replicated_writes;   /* WRITE and ZERO records made durable */
  uint64_t resync_replicated_bytes;     /* the RESYNC ones among them */
  uint64_t resync_sent_bytes;   /* sent by the current (or last) resync */
  uint64_t sent_bytes;          /* handed to the socket, frames' data */
  uint64_t queue_bytes, queue_records, queue_limit_bytes;
  uint64_t acked_seq, durable_seq;
  uint64_t lag_bytes;
  double lag_seconds;
  uint64_t errors[BR_ERR_N_KINDS];
  uint64_t resync_hashed_regions, resync_differ_regions;
  /* The peer's last verify (blockrelay verify): regions of its volume,
   * looked at so far (compared or skipped), found differing, and 1 while
   * it runs. */
  uint64_t verify_regions, verify_done_regions, verify_differ_regions;
  uint64_t verify_running;
};

/* Replica role: a running upstream session. */
struct br_metrics_upstream {
  const char *group, *upstream;
  uint64_t received_bytes;      /* on this session's connection */
  uint64_t pending_bytes;       /* received, not yet applied */
  uint64_t applied_seq, durable_seq;
};

struct br_metrics_snap {
  const char *node, *role;
  double start_time;            /* seconds since the epoch */
  struct br_metrics_volume *vols;
  size_t n_vols;
  struct br_metrics_dirty *dirty;
  size_t n_dirty;
  struct br_metrics_peer *peers;
  size_t n_peers;
  struct br_metrics_upstream *ups;
  size_t n_ups;
};

/* The text of S in the exposition format (0.0.4): every family has its
 * # HELP and # TYPE lines, label values are escaped (\\, \", \n).  *OUT
 * is malloc'd and NUL-terminated.  0 or -ENOMEM. */
int br_metrics_format (const struct br_metrics_snap *s, char **out,
                       size_t *len);

/* Append VALUE escaped as a label value (backslash, double quote and
 * newline) to BUF of SIZE bytes; the length it needs (like snprintf). */
size_t br_metrics_escape (char *buf, size_t size, const char *value);

#endif
