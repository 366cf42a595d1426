/* blockrelay — engine internals shared by group.c, peer.c, replica.c,
 * engine.c, control.c and metrics.c.  Not installed; not used by the
 * plugin.
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
 * under the group lock, and never on the loop thread: what needs the disk
 * (resync reads, marking a full sync, recording a peer's generation,
 * syncing a volume, preparing a relay) is posted to the engine's task
 * thread (tasks.c).  Functions documented "group lock held" assert it in
 * debug builds (BR_ASSERT_LOCKED).
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
#include "peerfsm.h"
#include "disk.h"
#include "engine.h"
#include "events.h"
#include "metrics.h"
#include "rangelock.h"
#include "scoreboard.h"
#include "tls.h"
#include "util.h"
#include "verdict.h"
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
  bool differs;                     /* HASH: the peer said its copy differs
                                       (DIFFER; group lock).  A HASH record
                                       is queued to one peer only. */
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
/* A HASH record (FLAGS: BR_F_RESYNC or BR_F_VERIFY) of the LEN bytes at
 * OFFSET whose content is BUF: bytes = LEN, the region hash as payload. */
struct br_rec *br__rec_hash (uint16_t flags, uint32_t volume,
                             uint64_t offset, const void *buf, uint64_t len);
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

/* ---- peers: the upstream side of a link ----
 * States, events and the transition table are in peerfsm.h/peerfsm.c;
 * br__peer_event() is the only function that changes p->state. */
struct br_group;

struct br_peer {
  struct br_group *g;
  int idx;                          /* index in g->peers */
  const struct br_node_cfg *node;
  const struct br_link_cfg *link;
  enum br_mode mode;
  enum br_congestion congestion;    /* the link's, or pull-ahead for an
                                       async child of a relay by default */

  /* Under g->lock (state is also read racily, with atomics, as a hint).
   * state changes only in br__peer_event (peerfsm.c); q, n_sent,
   * queued_bytes and resync_inflight only in queue.c. */
  enum br_peer_state state;
  uint64_t epoch;                   /* bumps on every connection loss */
  time_t since;                     /* when state was entered */
  char last_error[256];
  struct br_fifo q;                 /* enqueued, not yet durable */
  size_t n_sent;                    /* q[0 .. n_sent) handed to uv_write */
  uint64_t queued_bytes;            /* data bytes in q (not yet durable) */
  uint64_t resync_inflight;         /* RESYNC records in q */
  uint64_t queue_limit;
  uint64_t start_seq;               /* stream starts after this seq */
  uint64_t applied, durable;        /* watermarks from the peer's ACKs */
  /* Resync (SYNCING): oos[v] is this peer's out-of-sync set for volume v,
   * a copy of the scoreboard bits taken when the connection came up.  A
   * region in it is cleared only by a durable RESYNC record of it, never
   * by a live write that covered part of it. */
  uint64_t **oos;
  uint64_t oos_count;               /* regions still in oos[] */
  uint64_t **hashed;                /* per volume: regions sent as a HASH
                                       in this resync (resync.c R7) */
  bool resync_checksum;             /* this resync hashes first (R7) */
  bool checksum_asked;              /* `blockrelay resync --checksum`:
                                       until the next resync completes */
  uint64_t resync_hashed_regions;   /* HASH records queued (cumulative) */
  uint64_t resync_differ_regions;   /* of those, the peer's copy differed */
  size_t resync_vol;                /* cursor: next volume and region */
  uint64_t resync_region;
  uint64_t resync_bytes_sent;
  uint64_t resync_total;            /* regions in oos at the snapshot */
  uint64_t resync_start_ms;         /* uv_now at the snapshot */
  uint64_t sent_bytes;
  /* Counted by queue.c when the peer has made a WRITE or ZERO record
   * durable (metrics.c): its range, the record, and RESYNC ones apart. */
  uint64_t replicated_bytes, replicated_writes, resync_replicated_bytes;
  atomic_bool must_drop;            /* a writer could not queue (DROP):
                                       the loop thread closes the socket */

  /* Loop thread only. */
  uv_tcp_t tcp;
  bool tcp_open;
  struct br_tls *tls;               /* this connection's TLS, or NULL */
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
  bool resync_busy;                 /* a resync batch is on the task
                                       thread (resync.c) */
  bool welcome_busy;                /* the handshake waits for a full-sync
                                       mark on the task thread (peer.c) */
  uint64_t **held;                  /* per volume: regions in sync whose
                                       bit is kept for now (bits.c) */
  uint64_t *n_held;                 /* per volume */
  uint64_t held_scan_ms;
  uint64_t errors[BR_ERR_N_KINDS];  /* by kind, where detected (metrics.h;
                                       br__peer_error) */
  struct br_verify *verify;         /* the last verify job (verify.c) */
  /* Split brain and failback (loop thread). */
  uint64_t discard_vols;            /* resolve: the operator discards the
                                       peer's changes of these volumes */
  uint64_t take_vols;               /* HANDSHAKE: the verdict takes the
                                       peer's bitmap of these volumes:
                                       BITMAP frames expected */
  uint64_t full_vols;               /* HANDSHAKE: these need a full sync */
  uint64_t **taken;                 /* per volume: the bitmap received */
  uint64_t *taken_count, *taken_want;  /* per volume: regions got, owed */
  bool bitmap_wait;                 /* HANDSHAKE: BITMAP frames expected */
  uint64_t taken_regions;           /* taken from its bitmaps (cumulative) */
  char last_verdict[256];           /* the last handshake's verdicts, per
                                       volume ("vol0: resync by rule 3"),
                                       for status */
  char verdict[512];                /* loop thread: the handshake's
                                       verdicts in words, the reason of
                                       SYNC_NEEDED / IN_SYNC (events.c) */
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
  uint64_t *fail_seq;               /* per region, under g->lock: the seq
                                       of the last write that failed on
                                       this disk after its record was
                                       queued (only a RESYNC record newer
                                       than it brings the region in sync) */
  struct br_rangelock locks;
  /* Local durability (bits.c C5): a sync of this disk takes generation
   * ++sync_started before its fdatasync and raises sync_done to it after;
   * a write that completed when sync_started was K is durable here once
   * sync_done > K.  written_gen[r] is that K for region r's last write
   * (written under the region's stripe). */
  _Atomic uint64_t sync_started, sync_done;
  uint64_t *written_gen;
  atomic_bool want_sync;            /* bits wait for a local sync */
  /* An origin's copy parted from a peer (BR_FX_APART): the next write
   * takes a new generation first, durably (group.c apart_gen), under
   * gen_lock. */
  atomic_bool new_gen_due;
  struct br_mutex gen_lock;
  bool sync_busy;                   /* loop thread: a sync task is posted */
  uint64_t sync_ms;                 /* loop thread: uv_now of the last */
};

struct br_group {
  struct br_engine *e;
  char *name;
  struct br_volume **vols;
  size_t n_vols;
  struct br_peer *peers[BR_MAX_PEERS];
  size_t n_peers;

  struct br_mutex lock;
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
                                       runs or has not exited yet (loop
                                       thread) */
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
  _Atomic enum br_role role;        /* changed by promote and demote only
                                       (role.c, loop thread) */
  char *control_path;
  uint8_t *secret;                  /* NULL: no authentication */
  size_t secret_len;
  struct br_tls_ctx tls;            /* link TLS contexts (tls.h) */

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
  struct br_tasks *tasks;           /* the task thread (tasks.c) */
  struct br_metrics_file *metrics_file; /* the node's metrics-file writer
                                       (metrics-file.c), or NULL */
  struct br_events *events;         /* the event bus (events.c), or NULL */
  time_t started_at;
  /* Roles (role.c). */
  bool can_serve;                   /* an NBD front end (the plugin) */
  atomic_bool role_busy;            /* a promotion is on the task thread */
  char role_error[600];             /* loop: the last failed change */
  pthread_mutex_t clients_lock;     /* clients, and role vs. attach */
  unsigned clients;                 /* NBD connections open */
};

static inline enum br_role
br__engine_role (const struct br_engine *e)
{
  return atomic_load (&e->role);
}

/* ---- queue.c: a peer's queue, the one owner of q, n_sent, queued_bytes
 * and resync_inflight (group lock held for all of them) ---- */
/* Append R (taking a reference).  -ENOMEM: nothing changed. */
int br__queue_push (struct br_peer *p, struct br_rec *r);
/* Retire the records the peer has made durable (seq <= p->durable), in
 * order; FN (if not NULL) sees each before it is released. */
void br__queue_retire (struct br_peer *p,
                       void (*fn) (struct br_peer *p, struct br_rec *r,
                                   void *arg), void *arg);
/* Drop the records not handed to the socket yet (pull-ahead). */
void br__queue_drop_unsent (struct br_peer *p);
/* Drop every record (the connection is over). */
void br__queue_clear (struct br_peer *p);
/* The record of seq SEQ among those handed to the socket and not yet
 * retired, or NULL. */
struct br_rec *br__queue_find_sent (const struct br_peer *p, uint64_t seq);
/* The records [n_sent, n_sent + n) are handed to the socket. */
void br__queue_sent (struct br_peer *p, size_t n);
/* Queue the RESYNC marker (BR_FX_RESYNC_BEGIN); false if it could not be
 * (the peer is then dropped: must_drop). */
bool br__queue_resync_begin (struct br_peer *p);
/* Queue SYNCED (V now in sync at GEN) to P; false as above. */
bool br__queue_synced (struct br_peer *p, struct br_volume *v, uint64_t gen);

/* ---- peerfsm.c ---- */
/* Group lock held: apply EV to P (F1-F3 in peerfsm.c).  False, with an
 * internal error logged (and an assertion in debug builds), if the table
 * does not allow EV in P's state. */
bool br__peer_event (struct br_peer *p, enum br_peer_event ev);
/* The same, with the reason of the change in words (its log line and its
 * event, events.c) instead of the event's own. */
bool br__peer_event_why (struct br_peer *p, enum br_peer_event ev,
                         const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* Racy read of the state (a hint for writers outside the lock). */
static inline enum br_peer_state
br__peer_state (const struct br_peer *p)
{
  return __atomic_load_n (&p->state, __ATOMIC_ACQUIRE);
}

/* ---- group.c: the write path ---- */
uint64_t br__region (const struct br_volume *v, uint64_t off);
/* What a relay's apply thread passes to the write path (NULL for the
 * primary's clients). */
struct br_relay_in {
  uint64_t up_seq;                  /* in the upstream's stream */
  uint8_t **payload;                /* WRITE: its buffer, which the record
                                       takes instead of copying it */
  uint64_t sum;                     /* its checksum, verified on receipt */
};
/* Which sync peers must acknowledge a record, with their epochs. */
struct br_wait {
  uint64_t seq;
  uint32_t mask;
  uint64_t epochs[BR_MAX_PEERS];
};
/* Steps 1-5 of group.c's write path for a WRITE or ZERO; W says whom to
 * wait for.  0, -errno (local failure, logged), -ECANCELED (relay). */
int br__write_path (struct br_volume *v, uint8_t type, uint16_t flags,
                    const void *buf, size_t count, uint64_t off,
                    const struct br_relay_in *ri, struct br_wait *w);
/* A FLUSH record in the stream (RELAY: the relay's sync thread syncs the
 * disk, else it is synced here).  0 or -errno. */
int br__flush_path (struct br_volume *v, bool relay, struct br_wait *w);
/* Step 6: wait for the peers of W (applied, or DURABLE); FLUSH: the
 * promise of a FLUSH in each peer state (group.c).  0, -EIO, -ECANCELED. */
int br__wait_for_peers (struct br_group *g, const struct br_wait *w,
                        bool durable, bool flush, bool relay);
/* Group lock held: wake the writers waiting for a sequence number at or
 * below UPTO (a watermark moved), or all of them (a peer changed state). */
void br__group_notify (struct br_group *g, uint64_t upto);
/* Group lock held (BR_FX_APART): a peer that received records is gone;
 * on the origin, every volume's next write takes a new generation. */
void br__group_apart (struct br_group *g);
void br__group_notify_all (struct br_group *g);
/* Make V's disk durable and advance its sync generations (C5).  Any
 * thread but the loop thread.  0 or -errno. */
int br__volume_sync (struct br_volume *v);
void br__wake (struct br_engine *e);

/* ---- relay.c: a replica that forwards (cascade) ---- */
int br__relay_write (struct br_volume *v, const struct br_frame_hdr *h,
                     uint8_t **payload);
int br__relay_flush (struct br_volume *v, uint64_t up_seq);
void br__relay_synced (struct br_volume *v, uint64_t gen);
void br__relay_resync_begin (struct br_group *g);
/* Group lock held: lower *APPLIED and *DURABLE (the watermarks a relay
 * reports upstream) below the first upstream record its sync peers have
 * not acknowledged.  br__relay_reset forgets every pending wait. */
void br__relay_hold (struct br_group *g, uint64_t *applied,
                     uint64_t *durable);
void br__relay_reset (struct br_group *g);
/* Can G relay for ORIGIN?  0, or -EBUSY with the reason in ERR when G
 * relays for another origin with other children while an upstream session
 * is applying. */
int br__relay_check (struct br_group *g, const char *origin, char *err,
                     size_t errlen);
/* G relays for ORIGIN from now on: its children in the tree rooted at
 * ORIGIN become its peers.  Three steps, so that the loop thread never
 * touches the disk: br__relay_plan (loop thread: what changes; *OUT is
 * NULL when nothing does), br__relay_prepare (task thread: scoreboard
 * slots, full-sync marks of new children, the origin recorded durably),
 * br__relay_commit (loop thread: old peers retired, new ones published
 * and started; frees the plan).  br__relay_start does all three on the
 * calling thread, before the loop runs (engine open and start). */
struct br_relay_plan;
int br__relay_plan (struct br_group *g, const char *origin,
                    struct br_relay_plan **out, char *err, size_t errlen);
int br__relay_prepare (struct br_relay_plan *plan, char *err, size_t errlen);
void br__relay_commit (struct br_relay_plan *plan);
void br__relay_plan_free (struct br_relay_plan *plan);
/* Stop and retire every peer of G (a demotion); false: out of memory. */
bool br__relay_retire (struct br_group *g);
int br__relay_start (struct br_group *g, const char *origin, char *err,
                     size_t errlen);
/* Replica role, at start: resume relaying for the recorded origin. */
void br__relay_resume (struct br_engine *e);

/* ---- bits.c: when a bit may clear (I2; group lock held) ---- */
/* The rule (pure; C1-C5 in bits.c). */
enum br_clear { BR_CLEAR_NOW, BR_CLEAR_HOLD, BR_CLEAR_KEEP };
struct br_clear_in {
  uint64_t last_seq;                /* the region's last write */
  uint64_t durable;                 /* the peer's durable watermark */
  bool out_of_sync;                 /* in the peer's out-of-sync set */
  bool stripe_busy;                 /* a writer holds the region's stripe */
  bool local_durable;               /* the last write is durable here */
  uint32_t age_ms;                  /* since the region's last write */
  uint32_t window_ms;               /* settings activity-window */
  bool no_window;                   /* clean stop: ignore the window */
};
enum br_clear br_clear_rule (const struct br_clear_in *in);
/* True when C5 is the only condition that holds the region: a local sync
 * would let its bit clear.  (A region held by C3 or C4 gains nothing from
 * a sync now; asking for one anyway put an fdatasync a second on the write
 * path of every busy volume.) */
bool br_clear_wants_sync (const struct br_clear_in *in);
/* A durable RESYNC record of seq REC_SEQ brings a region in sync only if
 * it was read after the region's last local write failure (FAIL_SEQ) and,
 * for a HASH, the peer did not report its copy as differing (DIFFERS). */
bool br_resync_clears (uint64_t rec_seq, uint64_t fail_seq, bool differs);
#define BR_CLEAR_SCAN_MS 500      /* held regions looked at again */
uint32_t br__now_ms (void);
int br__bits_init (struct br_peer *p);
void br__bits_free (struct br_peer *p);
void br__bits_note_write (struct br_volume *v, uint64_t first, uint64_t last,
                          uint64_t seq);
/* After a local write of regions FIRST..LAST completed (stripes held). */
void br__bits_note_written (struct br_volume *v, uint64_t first,
                            uint64_t last);
void br__bits_scan (struct br_peer *p, bool no_window);
void br__bits_mark_out_of_sync (struct br_volume *v, uint64_t first,
                                uint64_t last, uint64_t seq);
/* Region RG of volume VOL is to be resent to P (its bit is set durably
 * already): out of its held set, into its out-of-sync set. */
void br__bits_resync_region (struct br_peer *p, uint32_t vol, uint64_t rg);
/* P's durable watermark moved: retire records, clear what I2 allows. */
void br__group_clear_durable (struct br_group *g, struct br_peer *p);
/* Loop thread: post a sync of every volume whose bits wait for one. */
void br__bits_sync_tick (struct br_engine *e);
bool br__oos_test (const struct br_peer *p, uint32_t vol, uint64_t rg);
/* Region RG of V is dirty for P: its bit is set and not merely held. */
bool br__bits_dirty (const struct br_peer *p, const struct br_volume *v,
                     uint64_t rg);

/* ---- tasks.c: the task thread (disk work for the loop thread) ---- */
/* Loop thread (or before the loop runs).  WORK runs on the task thread,
 * in posting order; DONE then runs on the loop thread with CANCELLED false, or with CANCELLED true (WORK not run)
 * when the engine stops first.  -ENOMEM: nothing was posted. */
int br__task_post (struct br_engine *e, void (*work) (void *arg),
                   void (*done) (void *arg, bool cancelled), void *arg);
int br__tasks_start (struct br_engine *e);
void br__tasks_stop (struct br_engine *e);     /* loop thread, at stop */

/* ---- handshake.c (pure checks of both sides) ---- */
/* The handshake's volume entry for V as seen by the peer in SLOT (-1: no
 * slot yet): name, geometry, flags and the generation view (verdict.h). */
void br__vol_view (const struct br_volume *v, int slot,
                   struct br_wire_vol *out);
/* Volume I of P's group as P's upstream side sends it (br__vol_view with
 * BR_VOL_DISCARD_PEER when the operator discards P's changes). */
void br__peer_vol_view (const struct br_peer *p, size_t i,
                        struct br_wire_vol *out);
/* The verdict for one volume: SRC sends to DST. */
struct br_verdict br__vol_verdict (const struct br_wire_vol *src,
                                   const struct br_wire_vol *dst,
                                   uint32_t hello_flags);
/* The HELLO flags P's upstream side sends. */
uint32_t br__hello_flags (const struct br_peer *p);
/* Upstream: true (with WHY) if the accepting WELCOME W does not describe
 * exactly P's group. */
bool br__welcome_problem (const struct br_peer *p, const struct br_welcome *w,
                          char *why, size_t len);
/* Downstream: BR_WELCOME_OK (with *G and W's volumes filled, and in
 * *TAKE the volumes whose verdict takes this side's bitmap: BITMAP frames
 * follow AUTH) if HELLO M may start a session, else the refusal status
 * with WHY. */
uint16_t br__hello_problem (struct br_engine *e, const struct br_hello *m,
                            struct br_group **g, struct br_welcome *w,
                            uint64_t *take, char *why, size_t len);

/* ---- peer.c (loop thread) ---- */
int br__peer_init (struct br_group *g, int idx, const struct br_node_cfg *n,
                   const struct br_link_cfg *l);
void br__peer_start (struct br_peer *p);
void br__peer_flush_queue (struct br_peer *p);
void br__peer_refill (struct br_peer *p);     /* rate-limit buckets */
void br__peer_fail (struct br_peer *p, const char *msg);
/* The connection is over (EOF, timeout, refusal, bad frame...): event EV,
 * the message logged and kept as last_error, the socket closed, and a
 * reconnect scheduled; bits stay set. */
void br__peer_lost (struct br_peer *p, enum br_peer_event ev,
                    const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* The same, counted as an error of KIND (metrics.h) whatever EV and the
 * state say (br__peer_lost counts LOST, ERROR and SPLIT_BRAIN by them). */
void br__peer_lost_as (struct br_peer *p, enum br_peer_event ev,
                       enum br_err_kind kind, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));
/* Send a small control frame (HELLO, AUTH, PING); 0 or a libuv error. */
int br__peer_send_frame (struct br_peer *p, uint8_t type,
                         const void *payload, uint32_t len);
/* peer-handshake.c: the replica's WELCOME, judged (I6); its BITMAP
 * frames when the verdict takes its bitmap (H4); forget a handshake's
 * BITMAP state (the connection is over). */
void br__peer_on_welcome (struct br_peer *p, const uint8_t *payload,
                          uint32_t len);
void br__peer_on_bitmap (struct br_peer *p, const struct br_frame_hdr *h,
                         const uint8_t *payload);
void br__peer_bitmap_reset (struct br_peer *p);
void br__peer_tick (struct br_peer *p);
/* The operator (control socket, loop thread): pause P (PAUSE: connection
 * closed, no retry, writes logged; -EBUSY if halted) or resume it
 * (RESUME, then connect; -EINVAL if not paused). */
int br__peer_pause (struct br_peer *p);
int br__peer_resume (struct br_peer *p);
/* Loop thread: P was handed back to LOGGING by the operator (resume,
 * resolve): connect now. */
void br__peer_reconnect (struct br_peer *p);
void br__peer_close (struct br_peer *p);
void br__peer_free (struct br_peer *p);

/* ---- resync.c ---- */
/* A batch of regions read on the task thread (one at a time, under its
 * stripe lock) and queued to P as records, shared by resync and verify.
 * MAKE builds a region's record from its content; QUEUE (group lock held,
 * the batch's epoch checked) queues it or says the batch stops there;
 * FINISH runs on the loop thread after (or instead of) the work, and the
 * batch is then freed. */
#define BR_REGION_BATCH 32
struct br_region_batch {
  struct br_peer *p;
  uint64_t epoch;
  size_t n, done;                   /* items; how many were queued */
  int err;
  struct br_rec *(*make) (struct br_region_batch *b, size_t i,
                          struct br_volume *v, uint64_t off,
                          const uint8_t *buf, uint64_t len);
  bool (*queue) (struct br_region_batch *b, size_t i, struct br_rec *r);
  void (*finish) (struct br_region_batch *b, bool cancelled);
  void *arg;
  struct { uint32_t vol; uint64_t rg; bool hash; } item[BR_REGION_BATCH];
};
/* Post B to the task thread; -ENOMEM: not posted (B is the caller's). */
int br__region_batch_post (struct br_region_batch *b);
/* Group lock held: the out-of-sync set becomes the scoreboard's bits. */
int br__resync_snapshot (struct br_peer *p);
/* Group lock held: walk the set from the start again; FRESH (a new
 * resync of a peer that was replicating): nothing hashed yet, and the
 * link's method (or the operator's --checksum) applies. */
void br__resync_restart (struct br_peer *p, bool fresh);
/* Loop thread (the operator: blockrelay resync, verify --repair): mark
 * regions of P out of sync durably (task thread), then resync them: the
 * regions in MAP (one bit per region of volume VOL; taken, freed here),
 * or with MAP NULL every region of every volume.  CHECKSUM: hash first
 * (R7).  0 or -ENOMEM (nothing done). */
int br__resync_request (struct br_peer *p, uint32_t vol, uint64_t *map,
                        bool checksum);
/* Group lock held (BR_FX_SYNCED): one SYNCED per volume. */
void br__resync_done (struct br_peer *p);
/* Loop thread: queue more resync records (reads on the task thread). */
void br__resync_step (struct br_peer *p);

/* ---- verify.c: online verify of a peer's copy (V1-V5 there) ---- */
enum br_verify_state {
  BR_VERIFY_NONE, BR_VERIFY_RUNNING, BR_VERIFY_DONE, BR_VERIFY_FAILED,
};
const char *br_verify_state_name (enum br_verify_state s);
struct br_range { uint64_t offset, length; };
/* What the last job of a peer says (br__verify_info). */
struct br_verify_info {
  enum br_verify_state state;       /* NONE: no job yet */
  const char *volume;
  uint64_t total, compared, skipped, n_differ;  /* regions */
  bool repair, repaired;            /* asked; the resync was requested */
  uint64_t elapsed_ms;
  char error[256];
  struct br_range *ranges;          /* differing, merged; free() it */
  size_t n_ranges;
};
/* Loop thread: start verifying V on P.  0; -EBUSY (one is running),
 * -EAGAIN (P is not replicating) or -ENOMEM, with the reason in ERR. */
int br__verify_start (struct br_peer *p, struct br_volume *v, bool repair,
                      char *err, size_t errlen);
/* Loop thread: queue more of the job's hashes, or finish it (tick, ACK). */
void br__verify_step (struct br_peer *p);
/* Group lock held (bits.c): a verify's HASH record retired. */
void br__verify_retired (struct br_peer *p, struct br_rec *r);
/* Group lock held (metrics.c, status): the last job's regions, regions
 * looked at, differing ones, and 1 if it runs (all 0: no job, or with V
 * not NULL, a job of another volume). */
void br__verify_progress (struct br_peer *p, const struct br_volume *v,
                          uint64_t *total, uint64_t *done, uint64_t *differ,
                          uint64_t *running);
/* Loop thread: a copy of the last job's state.  0 or -ENOMEM. */
int br__verify_info (struct br_peer *p, struct br_verify_info *out);
void br__verify_free (struct br_peer *p);

/* ---- replica.c (loop thread) ---- */
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

/* ---- metrics.c (loop thread, or after the loop stopped) ---- */
/* Loop thread: count an error of KIND on P's link. */
static inline void
br__peer_error (struct br_peer *p, enum br_err_kind kind)
{
  p->errors[kind]++;
}
/* What `blockrelay status` and the metrics say about peer P for volume V
 * (group lock held). */
struct br_peer_figures {
  uint64_t dirty_bytes;             /* dirty regions, held ones excluded */
  uint64_t resync_left_bytes;       /* in the out-of-sync set (SYNCING) */
  uint64_t lag_bytes;               /* queue, plus dirty unless replicating */
  double lag_seconds;               /* age of the oldest of it */
};
void br__peer_figures (struct br_peer *p, struct br_volume *v,
                       struct br_peer_figures *out);
int br__metrics_collect (struct br_engine *e, struct br_metrics_snap *s);
void br__metrics_snap_free (struct br_metrics_snap *s);
/* The whole text (br_metrics_format of a fresh snapshot); 0 or -ENOMEM. */
int br__metrics_text (struct br_engine *e, char **out, size_t *len);

/* ---- metrics-file.c: the node's metrics-file, rewritten every
 * metrics-interval (loop thread; the writes run on the task thread) ---- */
int br__metrics_file_start (struct br_engine *e);
void br__metrics_file_stop (struct br_engine *e);
/* After the loop has stopped: write the file once more (WRITE: a clean
 * stop; not after a failed start), on this thread, and free the writer. */
void br__metrics_file_final (struct br_engine *e, bool write);

/* ---- role.c (loop thread): promote and demote (P1-P6, D1-D4) ---- */
/* 0 (a promotion finishes on the task thread: role_busy until then), or
 * -EALREADY / -EBUSY / -EPERM / -ENOMEM with the reason in WHY. */
int br__role_promote (struct br_engine *e, bool force, char *why,
                      size_t len);
int br__role_demote (struct br_engine *e, bool force, char *why, size_t len);
unsigned br__engine_clients (struct br_engine *e);

/* ---- control.c (loop thread) ---- */
int br__control_start (struct br_engine *e);
void br__control_stop (struct br_engine *e);
/* A reply {"ok": false, "error": MESSAGE} (jansson). */
struct json_t;
struct json_t *br__control_fail (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));
/* A request line parsed (br__control_parse, pure: no engine state). */
enum br_control_cmd {
  BR_CTL_STATUS, BR_CTL_METRICS, BR_CTL_PAUSE, BR_CTL_RESUME, BR_CTL_VERIFY,
  BR_CTL_VERIFY_STATUS, BR_CTL_RESYNC, BR_CTL_PROMOTE, BR_CTL_DEMOTE,
  BR_CTL_RESOLVE,
};
struct br_control_req {
  enum br_control_cmd cmd;
  struct json_t *json;          /* the request; the strings point into it */
  const char *peer, *group, *volume;    /* NULL when absent */
  int repair, checksum;
};
/* NULL with *R filled (json_decref (R->json) when done), or the refusal
 * to answer (bad JSON, no "cmd", an unknown command, missing or mistyped
 * arguments) with nothing held in *R. */
struct json_t *br__control_parse (const char *line,
                                  struct br_control_req *r);
/* control-role.c: {"cmd": "promote"|"demote", "force": BOOL} (PROMOTE
 * true for promote) and {"cmd": "resolve", "volume": V, "discard":
 * NODE}. */
struct json_t *br__control_role (struct br_engine *e, struct json_t *req,
                                 bool promote);
struct json_t *br__control_resolve (struct br_engine *e, struct json_t *req);

#endif
