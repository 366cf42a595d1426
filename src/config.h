/* blockrelay — the topology file.
 *
 * One YAML file, identical on every node, declares the volumes, the nodes
 * and the links between them.  br_config_load() parses it with libyaml and
 * validates it completely; every error names file:line:column and what is
 * wrong.  The loaded structure is immutable and may be shared by threads.
 *
 *   settings:                      # optional
 *     granularity: 64K             # default region size for volumes: a
 *                                  # power of two, 4K .. 32M (a dirty
 *                                  # region is resynced in one frame,
 *                                  # at most BR_WIRE_MAX_PAYLOAD)
 *     queue-size: 64M              # default async queue bound per link
 *     secret-file: /etc/br.key     # optional shared secret (HMAC auth,
 *                                  # and the key of tls: psk); mode 0600
 *     tls: off                     # default of every link's tls: off |
 *                                  # psk | cert (TLS 1.3, src/tls.c)
 *     tls-ca: ca.pem               # CA certificates (tls: cert)
 *     heartbeat: 1s                # idle link probe interval
 *     heartbeat-timeout: 5s        # no frame for this long: peer lost
 *     reconnect-min: 100ms         # reconnect backoff, doubling up to
 *     reconnect-max: 5s            #   this bound
 *     activity-window: 30s         # a region's dirty bit stays set this
 *                                  # long after its last write, so a
 *                                  # region being rewritten needs no new
 *                                  # msync; 0 = clear as soon as the peer
 *                                  # has it durably; at most 1h (after a
 *                                  # crash, regions written within the
 *                                  # window are resynced as well)
 *     metrics-interval: 15s        # how often a node's metrics-file is
 *                                  # rewritten, 1s .. 1h
 *     max-connections: 64          # connections a listener holds at once;
 *                                  # more are accepted and closed at once
 *     handshake-timeout: 10s       # HELLO and AUTH must be done by then
 *     user: blockrelay             # blockrelayd drops to this user (and
 *                                  # its groups) once its sockets are bound
 *   volumes:
 *     - {name: vol0, size: 1G, group: db, granularity: 64K}
 *   nodes:
 *     - name: site-a
 *       address: 127.0.0.1:10901   # host:port the node's blockrelayd listens on
 *       data-dir: /var/lib/br/a    # relative paths: relative to the file
 *       control: /run/br-a.sock    # optional; default <data-dir>/control.sock
 *       disks: {vol0: /dev/loop3}  # optional per-volume backing override;
 *                                  # default <data-dir>/<volume>.img
 *       metrics-file: /var/lib/node_exporter/textfile/br-a.prom
 *                                  # optional: the node's metrics in the
 *                                  # Prometheus text format, rewritten
 *                                  # every metrics-interval (a temporary
 *                                  # file renamed over it: atomic) for
 *                                  # node_exporter's textfile collector.
 *                                  # Per node, not in settings: the file
 *                                  # is the same on every node, and nodes
 *                                  # sharing a host need distinct paths
 *       tls-cert: a.crt            # tls: cert: this node's certificate
 *       tls-key: a.key             #   (its name is a DNS SAN or the CN)
 *                                  #   and private key, PEM
 *   links:
 *     - between: [site-a, site-b]
 *       mode: sync                 # sync | async
 *       rate: 50M                  # bytes/s cap for all traffic, 0 = none
 *       queue-size: 64M            # async queue bound
 *       on-peer-loss: log          # sync links: log | block | fail
 *       block-timeout: 30s         # with block: then continue as log
 *       resync-rate: 100M          # bytes/s cap for resync, 0 = none
 *       on-congestion: block       # async links: block | pull-ahead
 *                                  # (default: block at the primary,
 *                                  # pull-ahead at a relay, so an async
 *                                  # hop never holds up its upstream)
 *       resync: full               # full | checksum: a dirty region is
 *                                  # first sent as a hash, and its data
 *                                  # only if the peer's copy differs
 *       after-split-brain: discard-zero-changes
 *                                  # | disconnect: when both sides were
 *                                  # primary apart, resync a receiver
 *                                  # that wrote nothing (verdict rule 13)
 *       tls: psk                   # off | psk (key from secret-file) |
 *                                  # cert (tls-ca, tls-cert, tls-key);
 *                                  # default settings.tls
 *
 * Sizes accept a plain byte count or a suffix K, M, G, T (powers of 1024,
 * optionally followed by "i" or "iB" / "B").
 */
#ifndef BR_CONFIG_H
#define BR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define BR_NAME_MAX 63          /* names of volumes, nodes, groups */
#define BR_DEFAULT_GRANULARITY (64 * 1024)
#define BR_DEFAULT_QUEUE_SIZE (64 * 1024 * 1024)

enum br_mode { BR_MODE_SYNC, BR_MODE_ASYNC };

/* What a sync link does to writes while its peer is lost. */
enum br_loss_policy {
  BR_LOSS_LOG,      /* default: writes complete locally, tracked in bits */
  BR_LOSS_BLOCK,    /* writes wait for the peer (up to block-timeout),
                       then complete as with log */
  BR_LOSS_FAIL,     /* writes fail with EIO */
};

/* How a link resyncs its dirty regions. */
enum br_resync_method {
  BR_RESYNC_FULL,           /* default: send every dirty region's data */
  BR_RESYNC_CHECKSUM,       /* send a hash first; data only if it differs */
};

/* What a link does about a split brain on its own (verdict rule 13). */
enum br_after_sb {
  BR_AFTER_SB_DISCARD_ZERO, /* default: a receiver with no changes since
                               both were in sync is resynced */
  BR_AFTER_SB_DISCARD_NONE, /* disconnect: always wait for an operator */
};

/* How a link's connections are protected (tls.h). */
enum br_tls_mode {
  BR_TLS_OFF,               /* default: plain TCP (HMAC auth if a secret) */
  BR_TLS_PSK,               /* TLS 1.3 with a key derived from the secret */
  BR_TLS_CERT,              /* TLS 1.3 with certificates from tls-ca */
};

/* What an async link does when its queue is full. */
enum br_congestion {
  BR_CONGESTION_BLOCK,      /* default: writers wait for room */
  BR_CONGESTION_PULL_AHEAD, /* drop the peer's queue, keep the bits, resync
                               once the link has drained */
};

struct br_volume_cfg {
  char *name;
  uint64_t size;                /* bytes, > 0, multiple of 512 */
  uint32_t granularity;         /* bytes, power of two, 4K .. 32M
                                   (BR_WIRE_MAX_PAYLOAD: a region is
                                   resynced in one frame) */
  char *group;                  /* group name; defaults to the volume name */
  int line, column;             /* where it was declared (1-based) */
};

struct br_disk_cfg {
  char *volume;                 /* a volume name */
  char *path;                   /* absolute */
};

struct br_node_cfg {
  char *name;
  char *host;                   /* as written: "127.0.0.1", "::1", "site-b" */
  char *port;                   /* decimal string, 1..65535 */
  char *data_dir;               /* absolute */
  char *control;                /* absolute path of the control socket */
  char *metrics_file;           /* absolute, or NULL: no metrics file */
  struct br_disk_cfg *disks;
  size_t n_disks;
  char *tls_cert, *tls_key;     /* absolute, or NULL */
  int line, column;
};

struct br_link_cfg {
  char *a, *b;                  /* node names, a != b */
  enum br_mode mode;
  uint64_t rate;                /* bytes per second, 0 = unlimited */
  uint64_t queue_size;          /* async queue bound in bytes */
  enum br_loss_policy on_peer_loss;   /* on-peer-loss: log|block|fail */
  uint64_t block_timeout_ms;    /* block-timeout, default 30s */
  uint64_t resync_rate;         /* resync-rate, bytes/s, 0 = unlimited */
  enum br_congestion on_congestion;   /* on-congestion: block|pull-ahead */
  int on_congestion_set;        /* written in the file (else: block at the
                                   primary, pull-ahead at a relay) */
  enum br_resync_method resync; /* resync: full|checksum */
  enum br_after_sb after_sb;    /* after-split-brain */
  enum br_tls_mode tls;         /* tls, default settings.tls */
  int line, column;
};

struct br_config {
  char *path;                   /* the file as given */
  uint32_t granularity;         /* settings.granularity */
  uint64_t queue_size;          /* settings.queue-size */
  char *secret_file;            /* settings.secret-file or NULL */
  enum br_tls_mode tls;         /* settings.tls, default off */
  char *tls_ca;                 /* settings.tls-ca, absolute, or NULL */
  uint64_t heartbeat_ms;        /* settings.heartbeat, default 1s */
  uint64_t heartbeat_timeout_ms;/* settings.heartbeat-timeout, default 5s */
  uint64_t reconnect_min_ms;    /* settings.reconnect-min, default 100ms */
  uint64_t reconnect_max_ms;    /* settings.reconnect-max, default 5s */
  uint64_t activity_window_ms;  /* settings.activity-window, default 30s,
                                   0 .. 1h; 0 = clear when durable */
  uint64_t metrics_interval_ms; /* settings.metrics-interval, default 15s,
                                   1s .. 1h */
  uint32_t max_connections;     /* settings.max-connections, default 64:
                                   connections a listener holds at once */
  uint64_t handshake_timeout_ms;/* settings.handshake-timeout, default 10s:
                                   HELLO+AUTH must be done by then */
  char *user;                   /* settings.user or NULL: blockrelayd drops
                                   to this user once its sockets are bound */
  struct br_volume_cfg *volumes;
  size_t n_volumes;
  struct br_node_cfg *nodes;
  size_t n_nodes;
  struct br_link_cfg *links;
  size_t n_links;
};

/* Parse and validate PATH.  On success returns 0 and stores a new config in
 * *OUT.  On failure returns -1 and writes "PATH:LINE:COL: message" (or
 * "PATH: message" when there is no position, e.g. the file cannot be read)
 * into ERR.  Validation covers: unknown keys, duplicate keys, missing
 * required fields, values of the wrong kind (not a mapping / sequence /
 * scalar), bad sizes and modes, duplicate volume and node names, links that
 * name unknown nodes or the same node twice, duplicate links, bad addresses,
 * disks naming unknown volumes, and the flow check of br_topology_check
 * (links that make the flow ambiguous). */
int br_config_load (const char *path, struct br_config **out,
                    char *err, size_t errlen);
/* The same from the LEN bytes of BUF, the contents of the file PATH
 * (which is not read: it names the file in messages and is the base of
 * relative paths).  br_config_load reads the file and calls this. */
int br_config_load_buffer (const char *path, const char *buf, size_t len,
                           struct br_config **out, char *err, size_t errlen);
void br_config_free (struct br_config *cfg);

/* Lookups; NULL when absent. */
const struct br_node_cfg *br_config_node (const struct br_config *cfg,
                                          const char *name);
const struct br_volume_cfg *br_config_volume (const struct br_config *cfg,
                                              const char *name);
/* The link between nodes A and B in either order, or NULL. */
const struct br_link_cfg *br_config_link (const struct br_config *cfg,
                                          const char *a, const char *b);
/* The backing path of VOLUME on NODE (the disks: override or
 * <data-dir>/<volume>.img) into BUF.  Returns 0, or -1 if it does not fit. */
int br_config_disk_path (const struct br_config *cfg,
                         const struct br_node_cfg *node, const char *volume,
                         char *buf, size_t len);
/* ---- The flow of data (topology.c) ----
 * Data flows away from the primary (the ORIGIN) along the shortest-path
 * tree over the undirected links. */

/* T1 of topology.c for every possible origin: no node with two equally
 * near neighbours towards the origin.  Returns 0,
 * or -1 with "PATH:LINE:COL: message" in ERR.  br_config_load calls it. */
int br_topology_check (const struct br_config *cfg, char *err, size_t errlen);
/* The nodes NODE forwards to when ORIGIN is primary, with the link to each,
 * into OUT/LINKS (at most MAX).  Returns the count, -ENOENT for an unknown
 * name, -E2BIG if there are more than MAX. */
int br_topology_children (const struct br_config *cfg, const char *origin,
                          const char *node, const struct br_node_cfg **out,
                          const struct br_link_cfg **links, size_t max);
/* The node NODE receives from when ORIGIN is primary; NULL for the origin
 * itself or an unknown name. */
const char *br_topology_parent (const struct br_config *cfg,
                                const char *origin, const char *node);

/* Parse a size with optional suffix; returns 0 or -1.  Exposed for tests
 * and for command-line options. */
int br_parse_size (const char *s, uint64_t *out);
/* Parse a duration: an integer with a unit ms, s, m or h (a plain number
 * means seconds) into milliseconds; returns 0 or -1. */
int br_parse_duration (const char *s, uint64_t *out_ms);

#endif
