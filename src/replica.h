/* blockrelay — the replica's session, shared by replica.c (the loop
 * thread: connections, handshake, validation, ACKs) and apply.c (the
 * apply and sync threads of each session).  Not installed.
 *
 * Lock rules: s->lock protects the op queue, the watermarks and the error
 * shared between the loop thread and the session's two threads.  The loop
 * thread never does disk I/O and never joins a thread that has not
 * exited: the threads tell it when they have (threads_exited, notify).
 */
#ifndef BR_REPLICA_H
#define BR_REPLICA_H

#include "internal.h"

struct op {
  struct op *next;
  struct br_frame_hdr h;
  uint8_t *payload;
};

/* HELLO -> AUTH -> STARTING (authenticated; waiting for the group's
 * previous session to end and for the relay's scoreboards) -> RUNNING ->
 * CLOSING (threads stopping) -> freed when both handles have closed. */
enum sess_state { S_HELLO, S_AUTH, S_STARTING, S_RUNNING, S_CLOSING };

struct br_replica_session {
  struct br_replica *rep;
  struct br_replica_session *next;
  uv_tcp_t tcp;
  struct br_tls *tls;               /* NULL: plain TCP (or not known yet) */
  bool first_read;                  /* the first bytes came: TLS decided */
  uv_async_t notify;                /* apply thread -> loop: send ACK */
  int handles_open;
  struct br_wire_reader rd;
  enum sess_state st;
  struct br_group *g;
  char peer[BR_WIRE_NAME_MAX];
  char origin[BR_WIRE_NAME_MAX];    /* whose writes the stream carries */
  char addr[64];
  uint8_t client_nonce[BR_WIRE_NONCE_SIZE];
  uint8_t server_nonce[BR_WIRE_NONCE_SIZE];
  uint64_t take_vols;               /* the verdict takes our bitmap for
                                       the upstream of these volumes:
                                       BITMAP frames follow AUTH */
  uint64_t last_seq;                /* last seq received (R2) */
  uint64_t last_rx_ms;              /* uv_now of the last bytes received */
  uint64_t accepted_ms;             /* uv_now at accept: HELLO and AUTH are
                                       due within handshake-timeout */
  bool reading;
  uint64_t rx_bytes;

  /* Shared with the apply thread, under lock. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_t thread, syncer;
  pthread_cond_t sync_cond;
  bool stop, sync_req;
  int threads_started;              /* loop thread */
  atomic_int threads_exited;        /* each thread adds 1 as it returns */
  bool owns_group;                  /* loop: this session set g->applying */
  bool task_busy;                   /* loop: a relay plan is on the task
                                       thread */
  bool closing_handles;             /* loop: uv_close was called */
  atomic_bool *dirty;               /* per volume: written, not synced */
  struct op *head, *tail;
  uint64_t queued;                  /* payload bytes waiting */
  uint64_t applied, durable;
  /* Seqs of HASH records whose range differs here, in stream order: the
   * apply thread appends one before it publishes applied past it, and the
   * loop thread sends them in DIFFER frames before any ACK (R6). */
  uint64_t *differ;
  size_t n_differ, cap_differ;
  int error;                        /* errno of a failed apply, R3 */
  uint64_t error_seq;
  char errmsg[256];

  /* Loop thread: the ACK in flight. */
  uv_write_t ack_req;
  bool ack_busy, error_sent;
  uint64_t sent_applied, sent_durable;
  uint8_t ack_frame[BR_WIRE_HDR_SIZE + BR_WIRE_MSG_MAX];
  uint64_t differ_sent;             /* DIFFER seqs sent (metrics) */

  /* Apply thread only: HASH compares read into this. */
  uint8_t *hash_buf;
  size_t hash_cap;
};

struct br_replica {
  struct br_engine *e;
  uv_tcp_t listener;
  uv_timer_t heartbeat;             /* drops silent upstreams */
  bool stopping;
  int handles_open;                 /* at stop: listener, timer, sessions;
                                       freed when all have closed */
  struct br_replica_session *sessions;
  uint32_t n_sessions;              /* on the list, CLOSING included: at
                                       most settings.max-connections */
  uint64_t refused_log_ms;          /* last "too many connections" line */
  uint64_t refused_quiet;           /* refused since that line */
};

/* replica.c (loop thread). */
/* Close S with a logged reason: stop reading, tell its threads to stop;
 * the handles close once they have exited (R5).  Idempotent. */
void br__rsession_close (struct br_replica_session *s, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
/* CLOSING: join the exited threads, release the group, close handles. */
void br__rsession_finish_close (struct br_replica_session *s);
/* Send an ACK with the session's current watermarks. */
void br__rsession_send_ack (struct br_replica_session *s);

/* replica-handshake.c (loop thread): HELLO, WELCOME, AUTH, and starting
 * a session once the group is free. */
void br__rsession_on_hello (struct br_replica_session *s,
                            const uint8_t *payload, uint32_t len);
void br__rsession_on_auth (struct br_replica_session *s, const uint8_t *mac);
/* Start the session of group G that waits for it (STARTING), if any. */
void br__replica_start_pending (struct br_replica *rep, struct br_group *g);

/* apply.c: the session's threads (started by replica.c once the session
 * is authenticated and the group free; stopped by setting s->stop; each
 * adds 1 to threads_exited and wakes the loop thread as it returns). */
void *br__apply_thread (void *arg);
void *br__sync_thread (void *arg);

#endif
