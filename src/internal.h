/* blockrelay — engine internals shared by group.c, peer.c, replica.c,
 * engine.c and control.c.  Not installed; not used by the plugin.
 *
 * Objects and who owns them
 * -------------------------
 *   br_engine  1 ── n br_group      (volumes with the same `group:`)
 *   br_group   1 ── n br_volume     (wire volume id = index in the group)
 *   br_group   1 ── n br_peer       (downstream nodes; one TCP connection
 *                                    per (group, peer), so the stream order
 *                                    is the group's sequence order)
 *   br_rec     a replicated operation (WRITE / ZERO / FLUSH) with its
 *              frame header encoded once and its data copied once; shared
 *              by the queues of every peer of the group (refcounted).
 *
 * Locks (in this order; never the other way round)
 * ------------------------------------------------
 *   1. volume region stripes (rangelock.h)
 *   2. group->lock: sequence numbers, last_seq[], every peer's queue,
 *      watermarks and state.  group->cond is broadcast whenever a
 *      watermark moves or a peer changes state.
 * The loop thread takes the group lock for short, non-blocking sections
 * and only ever trylocks region stripes.  Disk I/O and msync never happen
 * under the group lock.
 */
#ifndef BR_INTERNAL_H
#define BR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <uv.h>

#include "config.h"
#include "disk.h"
#include "engine.h"
#include "rangelock.h"
#include "scoreboard.h"
#include "wire.h"

#define BR_MAX_PEERS BR_SB_MAX_PEERS

/* ---- records and per-peer FIFOs (group.c) ---- */

struct br_rec {
  atomic_uint refs;
  struct br_frame_hdr h;            /* type, flags, volume, seq, offset ... */
  uint8_t hdr[BR_WIRE_HDR_SIZE];    /* h encoded */
  uint64_t bytes;                   /* range covered (WRITE/ZERO), else 0 */
  uint32_t born_ms;                 /* br__now_ms at creation (lag) */
  bool adopted;                     /* payload is a malloc'd buffer of its
                                       own, freed with the record */
  uint8_t *payload;                 /* h.length bytes: data[] or adopted */
  uint8_t data[];
};

struct br_rec *br__rec_new (uint8_t type, uint16_t flags, uint32_t volume,
                            uint64_t seq, uint64_t offset, uint64_t bytes,
                            const void *data);
/* A WRITE record that takes BUF (malloc'd, LEN bytes, checksum SUM already
 * verified) instead of copying it: a relay forwards what it received. */
struct br_rec *br__rec_adopt (uint16_t flags, uint32_t volume,
                              uint64_t offset, uint32_t len, uint8_t *buf,
                              uint64_t sum);
/* Give R its sequence number and encode its frame header. */
void br__rec_seal (struct br_rec *r, uint64_t seq);
void br__rec_put (struct br_rec *r);

/* A growable ring of record pointers, in sequence order. */
struct br_fifo {
  struct br_rec **slot;
  size_t cap, head, len;
};
int br__fifo_push (struct br_fifo *f, struct br_rec *r);
struct br_rec *br__fifo_at (const struct br_fifo *f, size_t i);
struct br_rec *br__fifo_pop (struct br_fifo *f);
void br__fifo_truncate (struct br_fifo *f, size_t n);
void br__fifo_free (struct br_fifo *f);

/* ---- peers (peer.c): the primary's side of a link ----
 *
 * State diagram (transitions made by the named functions in peer.c):
 *
 *   LOGGING --reconnect timer--> CONNECTING --connected--> HANDSHAKE
 *      ^                                                    |  welcome ok
 *      |                                      dirty bits?   v
 *      +---- any error / EOF / refusal ---- SYNCING <--- yes-+-no--> REPLICATING
 *                                            |   bits reach 0 ---------^
 * A REFUSED handshake moves to FAILED and retries with the long backoff;
 * a split brain moves to FAILED and stays there (halted).
 *
 *   REPLICATING/SYNCING --async queue full, pull-ahead--> AHEAD
 *   AHEAD --queue drained--> SYNCING (bits taken as the out-of-sync set)
 */
enum br_peer_state {
  BR_PEER_LOGGING,       /* not connected: writes only set bits */
  BR_PEER_CONNECTING,
  BR_PEER_HANDSHAKE,
  BR_PEER_SYNCING,       /* connected; resyncing dirty regions + live writes */
  BR_PEER_REPLICATING,   /* connected; bits only for unacknowledged writes */
  BR_PEER_FAILED,        /* refused or hard error; retried slowly */
  BR_PEER_AHEAD,         /* connected, async queue overflowed (pull-ahead):
                            live writes only set bits until it drains */
};
const char *br__peer_state_name (enum br_peer_state s);

struct br_group;

struct br_peer {
  struct br_group *g;
  int idx;                          /* index in g->peers */
  const struct br_node_cfg *node;
  const struct br_link_cfg *link;
  enum br_mode mode;
  enum br_congestion congestion;    /* the link's, or pull-ahead for an
                                       async child of a relay by default */

  /* Under g->lock (state is also read racily, with atomics, as a hint). */
  enum br_peer_state state;
  uint64_t epoch;                   /* bumps on every connection loss */
  time_t since;                     /* when state was entered */
  char last_error[256];
  struct br_fifo q;                 /* enqueued, not yet durable */
  size_t n_sent;                    /* q[0 .. n_sent) handed to uv_write */
  uint64_t queued_bytes;            /* data bytes in q (not yet durable) */
  uint64_t queue_limit;
  uint64_t start_seq;               /* stream starts after this seq */
  uint64_t applied, durable;        /* watermarks from the peer's ACKs */
  /* Resync (SYNCING): oos[v] is this peer's out-of-sync set for volume v,
   * a copy of the scoreboard bits taken when the connection came up.  A
   * region in it is cleared only by a durable RESYNC record of it, never
   * by a live write that covered part of it. */
  uint64_t **oos;
  uint64_t oos_count;               /* regions still in oos[] */
  size_t resync_vol;                /* cursor: next volume and region */
  uint64_t resync_region;
  uint64_t resync_bytes_sent;
  uint64_t resync_total;            /* regions in oos at the snapshot */
  uint64_t resync_start_ms;         /* uv_now at the snapshot */
  uint64_t sent_bytes;
  bool halted;                      /* split brain: no reconnecting */
  bool must_drop;                   /* a writer could not queue: the loop
                                       thread drops the connection */

  /* Loop thread only. */
  uv_tcp_t tcp;
  bool tcp_open;
  uv_connect_t creq;
  uv_getaddrinfo_t gai;
  uv_timer_t timer;                 /* reconnect backoff */
  uint64_t backoff_ms;
  struct br_wire_reader rd;
  uint8_t nonce[BR_WIRE_NONCE_SIZE];
  unsigned writes_in_flight;
  uint64_t last_rx_ms;              /* uv_now of the last frame received */
  uint64_t last_tx_ms;              /* uv_now of the last frame sent */
  uint64_t state_ms;                /* uv_now when CONNECTING/HANDSHAKE began */
  double tokens, resync_tokens;     /* rate limits (bytes) */
  uint64_t tokens_ms;               /* uv_now of the last refill */
  uint64_t **held;                  /* per volume: regions in sync whose
                                       bit is kept for now (bits.c) */
  uint64_t *n_held;                 /* per volume */
  uint64_t held_scan_ms;
};

/* ---- volumes and groups ---- */

struct br_engine;

struct br_volume {
  struct br_engine *e;
  const struct br_volume_cfg *cfg;
  struct br_group *g;
  uint32_t id;                      /* index in g->vols */
  uint64_t size;
  uint32_t gran_shift;              /* region = offset >> gran_shift */
  uint64_t nregions;
  br_disk *disk;
  br_scoreboard *sb;
  int slot[BR_MAX_PEERS];           /* scoreboard slot of g->peers[i] */
  uint32_t slot_mask;               /* all of them */
  uint64_t *last_seq;               /* per region, under g->lock */
  uint32_t *last_write_ms;          /* per region (br__now_ms), g->lock */
  struct br_rangelock locks;
};

struct br_group {
  struct br_engine *e;
  char *name;
  struct br_volume **vols;
  size_t n_vols;
  struct br_peer *peers[BR_MAX_PEERS];
  size_t n_peers;

  pthread_mutex_t lock;
  pthread_cond_t cond;              /* writers waiting for queue space */
  unsigned space_waiters;
  struct br_waiter *waiters;        /* writers waiting for peers (group.c) */
  uint64_t next_seq;                /* last sequence number assigned */
  struct br_replica_session *upstream; /* replica role: the live session */
  /* The node whose writes this group's stream carries: this node for the
   * primary; for a replica, the origin named by its first upstream (then
   * fixed: its peers are its children in the tree rooted there).  Empty
   * until then.  Loop thread. */
  char origin[BR_NAME_MAX + 1];
  bool applying;                    /* an upstream session's apply thread
                                       runs (loop thread) */
  atomic_bool cancel;               /* relay: the upstream session is
                                       closing; writers stop waiting */
  struct br_relay_wait *rw;         /* relay: a ring of pending waits, */
  size_t rw_cap, rw_head, rw_len;   /* in up_seq order, under lock */
};

/* A relay's record that its sync peers have not acknowledged yet: the
 * upstream is not told UP_SEQ is applied (or durable) until they have, or
 * have lost the connection they had (group.c, br__relay_hold). */
struct br_relay_wait {
  uint64_t up_seq;                  /* in the upstream's stream */
  uint64_t seq;                     /* in this group's stream */
  uint32_t mask;                    /* sync peers that got it */
  bool durable;                     /* FUA / FLUSH: wait for durable */
  uint64_t epochs[BR_MAX_PEERS];
};

struct br_replica;
struct br_control;

struct br_engine {
  struct br_config *cfg;
  const struct br_node_cfg *self;
  enum br_role role;
  char *control_path;
  uint8_t *secret;                  /* NULL: no authentication */
  size_t secret_len;

  struct br_volume *vols;
  size_t n_vols;
  struct br_group *groups;
  size_t n_groups;

  uv_loop_t loop;
  uv_thread_t thread;
  bool started;
  bool started_loop;                /* the loop is initialised (peers can
                                       be started) */
  uv_async_t wakeup;                /* records were queued */
  uv_async_t stop;
  uv_timer_t tick;                  /* housekeeping: retries, resync */
  atomic_bool wake_pending;
  bool assume_clean;                /* a new replica starts in sync */
  struct br_replica *replica;       /* replica role */
  struct br_peer **retired;         /* relay peers dropped when the origin
                                       changed; freed at close */
  size_t n_retired;
  struct br_control *control;
  time_t started_at;
};

/* group.c */
uint64_t br__region (const struct br_volume *v, uint64_t off);
/* A relay's apply thread (replica.c) passes what it applies from upstream
 * through the write path, to forward it to the group's peers.  WRITE /
 * ZERO with H's flags (FUA, MAY_TRIM, RESYNC); a WRITE's *PAYLOAD (malloc'd)
 * may be taken by the record (then *PAYLOAD is NULL); FLUSH only forwards and
 * waits (the replica's sync thread makes its own disk durable); SYNCED
 * forwards the generation to every peer that is in sync with this copy.
 * Return 0, -errno, or -ECANCELED once g->cancel is set. */
int br__relay_write (struct br_volume *v, const struct br_frame_hdr *h,
                     uint8_t **payload);
int br__relay_flush (struct br_volume *v, uint64_t up_seq);
void br__relay_synced (struct br_volume *v, uint64_t gen);
/* Group lock held: queue SYNCED (V now in sync at GEN) to P; false if it
 * could not be queued (P is then dropped and reconnects). */
bool br__queue_synced (struct br_peer *p, struct br_volume *v, uint64_t gen);
/* Group lock held: the first upstream sequence number whose sync peers
 * have not all acknowledged it (UINT64_MAX: none); the upstream's ACK
 * watermarks stay below it.  br__relay_reset forgets every pending wait
 * (a new upstream session). */
uint64_t br__relay_hold (struct br_group *g);
void br__relay_reset (struct br_group *g);
/* Group lock held: wake the writers waiting for a sequence number at or
 * below UPTO (a watermark moved), or all of them (a peer changed state). */
void br__group_notify (struct br_group *g, uint64_t upto);
void br__group_notify_all (struct br_group *g);

/* bits.c (group lock held) */
#define BR_CLEAR_HOLD_MS 30000    /* activity window: see bits.c */
#define BR_CLEAR_SCAN_MS 500
uint32_t br__now_ms (void);
int br__bits_init (struct br_peer *p);
void br__bits_free (struct br_peer *p);
void br__bits_note_write (struct br_volume *v, uint64_t first, uint64_t last,
                          uint64_t seq);
void br__bits_scan (struct br_peer *p, bool no_window);
void br__bits_mark_out_of_sync (struct br_volume *v, uint64_t first,
                                uint64_t last);
void br__group_clear_durable (struct br_group *g, struct br_peer *p);
bool br__oos_test (const struct br_peer *p, uint32_t vol, uint64_t rg);
void br__wake (struct br_engine *e);

/* engine.c (loop thread, or at open) */
/* Replica role: can G relay for ORIGIN?  0, or -EBUSY with the reason in
 * ERR when G relays for another origin with other children while an
 * upstream session is applying. */
int br__relay_check (struct br_group *g, const char *origin, char *err,
                     size_t errlen);
/* Replica role: G relays for ORIGIN from now on: its children in the tree
 * rooted at ORIGIN become its peers and start connecting (peers of an
 * earlier origin that are not children now are retired; new ones get a
 * full sync).  Recorded in the scoreboards, so that a restarted relay
 * resumes forwarding before its upstream is back (br_engine_start). */
int br__relay_start (struct br_group *g, const char *origin, char *err,
                     size_t errlen);

/* peer.c (loop thread) */
int br__peer_init (struct br_group *g, int idx, const struct br_node_cfg *n,
                   const struct br_link_cfg *l);
void br__peer_start (struct br_peer *p);
void br__peer_flush_queue (struct br_peer *p);
void br__peer_refill (struct br_peer *p);     /* rate-limit buckets */
void br__peer_fail (struct br_peer *p, const char *msg);

/* resync.c (group lock NOT held, loop thread; br__resync_snapshot and
 * br__resync_done with the group lock held) */
int br__resync_snapshot (struct br_peer *p);
void br__resync_done (struct br_peer *p);
void br__resync_step (struct br_peer *p);
void br__peer_set_state (struct br_peer *p, enum br_peer_state s);
void br__peer_tick (struct br_peer *p);
void br__peer_close (struct br_peer *p);
void br__peer_free (struct br_peer *p);

/* replica.c (loop thread) */
int br__replica_start (struct br_engine *e);
void br__replica_stop (struct br_engine *e);
/* A peer of group G acknowledged or was lost: a relay's upstream may be
 * owed a new ACK (nothing to do without an upstream session). */
void br__replica_kick (struct br_group *g);
/* For the control socket: one running upstream session. */
struct br_upstream_info {
  const char *peer, *group, *addr, *error;
  uint64_t applied, durable;        /* watermarks as last computed */
  uint64_t rx_bytes;                /* received on the connection */
  uint64_t pending_bytes;           /* received, not yet applied */
};
void br__replica_foreach (struct br_engine *e,
                          void (*fn) (void *arg,
                                      const struct br_upstream_info *u),
                          void *arg);

/* control.c (loop thread) */
int br__control_start (struct br_engine *e);
void br__control_stop (struct br_engine *e);

#endif
