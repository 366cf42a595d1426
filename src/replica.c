/* blockrelay — the downstream side of a link (blockrelayd).
 *
 * The loop thread accepts connections from upstream nodes, validates every
 * frame (I7), and hands writes to one apply thread per session (apply.c),
 * which applies them to the local disks strictly in stream order (I3) and
 * reports two watermarks back in ACK frames:
 *
 *   applied  every record with seq <= applied has been written (pwrite);
 *   durable  every record with seq <= durable is on stable storage.
 *
 * A sync thread per session makes data durable on FLUSH, on FUA, after
 * SYNC_BYTES, and at most SYNC_MS after any write (apply.c).
 *
 * Session states (loop thread):
 *
 *   HELLO --valid HELLO--> AUTH --valid AUTH--> STARTING --> RUNNING
 *     |                     |                     |            |
 *     +-- refused: WELCOME(refused), then close --+-- error, EOF, timeout,
 *                                                     replaced --> CLOSING
 *
 *   (HELLO, AUTH and STARTING are in replica-handshake.c.)
 *   STARTING: authenticated and the group's upstream; waits until the
 *   group's previous session has ended (its threads exited) and, for a
 *   relay, until its peers' scoreboards are prepared on the task thread;
 *   frames that arrive meanwhile are validated and queued.
 *   CLOSING: the threads are told to stop; when both have exited (they
 *   say so through `notify`) they are joined at no cost, the group is
 *   free for the next session, and the handles are closed.
 *
 * Invariants:
 *   R1. Nothing from a connection is applied before its handshake and
 *       authentication succeeded.
 *   R2. A frame is applied only after its header, payload checksum,
 *       volume index, byte range and sequence number (strictly increasing)
 *       were checked; any violation closes that connection only, with a
 *       logged reason.
 *   R2b. Bounds on what an unauthenticated connection may cost: at most
 *       settings.max-connections sessions at once (one more is accepted
 *       and closed at once; the log says so at most once a second), a
 *       handshake payload of at most BR_WIRE_HANDSHAKE_MAX until AUTH
 *       succeeded, and HELLO+AUTH within settings.handshake-timeout of
 *       the accept ("handshake timeout"), however slowly it trickles
 *       bytes (the heartbeat timeout applies from AUTH on).  Once
 *       authenticated, frames are at most BR_WIRE_MAX_PAYLOAD and reading
 *       pauses while READ_PAUSE_BYTES wait to be applied.
 *   R3. A disk error stops the session's applying at that record: the
 *       record and everything after it are never acknowledged; an ERROR
 *       frame tells the upstream why (apply.c).
 *   R4. At most one session per group applies.  A HELLO from the group's
 *       upstream node while a session runs does not disturb it: only
 *       once the new connection has authenticated does it replace the old
 *       one (an unauthenticated HELLO cannot tear down a live link).  One
 *       from another node is refused.
 *   R5. The loop thread never blocks: no disk I/O (the relay's scoreboard
 *       work is a task) and no join of a thread that has not exited.
 *   R6. A HASH record is compared with this copy after everything before
 *       it in the stream is applied (apply.c); the seq of one that differs
 *       reaches the upstream in a DIFFER frame before any ACK whose
 *       watermarks cover it, so the upstream knows the verdict of every
 *       HASH before it retires it.
 */
#include "replica.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define READ_PAUSE_BYTES (64u * 1024 * 1024)

/* ---- sending ACK / ERROR (loop thread) ---- */

static void on_alloc (uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read (uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void
on_ack_written (uv_write_t *req, int status)
{
  struct br_replica_session *s = req->data;

  s->ack_busy = false;
  if (status < 0) {
    if (status != UV_ECANCELED)
      br__rsession_close (s, "send failed: %s", uv_strerror (status));
    return;
  }
  br__rsession_send_ack (s);
}

/* Send one frame from s->ack_frame (one at a time; coalesces ACKs). */
static void
write_ack_frame (struct br_replica_session *s, const struct br_frame_hdr *h,
                 const void *payload)
{
  uv_buf_t buf;

  br_wire_encode_hdr (h, s->ack_frame);
  if (h->length && payload)     /* else already in place (DIFFER) */
    memcpy (s->ack_frame + BR_WIRE_HDR_SIZE, payload, h->length);
  buf = uv_buf_init ((char *) s->ack_frame, BR_WIRE_HDR_SIZE + h->length);
  s->ack_req.data = s;
  s->ack_busy = true;
  if (br_tls_write (s->tls, (uv_stream_t *) &s->tcp, &s->ack_req, &buf, 1,
                on_ack_written) < 0) {
    s->ack_busy = false;
    br__rsession_close (s, "cannot send");
  }
}

void
br__rsession_send_ack (struct br_replica_session *s)
{
  struct br_frame_hdr h = { .version = BR_WIRE_VERSION };
  uint64_t applied, durable, queued;
  size_t n_differ;
  int error;

  if (s->ack_busy || (s->st != S_RUNNING && s->st != S_STARTING))
    return;
  pthread_mutex_lock (&s->lock);
  applied = s->applied;
  durable = s->durable;
  error = s->error;
  queued = s->queued;
  n_differ = s->n_differ;
  pthread_mutex_unlock (&s->lock);
  if (s->g->n_peers) {
    /* A relay: not before its sync peers have it (relay.c). */
    br_mutex_lock (&s->g->lock);
    br__relay_hold (s->g, &applied, &durable);
    br_mutex_unlock (&s->g->lock);
  }

  if (!s->reading && queued < READ_PAUSE_BYTES / 2) {
    s->reading = true;
    uv_read_start ((uv_stream_t *) &s->tcp, on_alloc, on_read);
  }
  if (n_differ > 0) {
    /* R6: the watermarks above were read after these were appended. */
    uint64_t seqs[BR_WIRE_DIFFER_MAX];
    size_t n;

    pthread_mutex_lock (&s->lock);
    n = s->n_differ < BR_WIRE_DIFFER_MAX ? s->n_differ : BR_WIRE_DIFFER_MAX;
    memcpy (seqs, s->differ, n * sizeof *seqs);
    memmove (s->differ, s->differ + n, (s->n_differ - n) * sizeof *seqs);
    s->n_differ -= n;
    pthread_mutex_unlock (&s->lock);
    h.type = BR_T_DIFFER;
    h.length = n * 8;
    br_wire_put_seqs (seqs, n, s->ack_frame + BR_WIRE_HDR_SIZE);
    h.payload_sum = br_wire_checksum (s->ack_frame + BR_WIRE_HDR_SIZE,
                                      h.length);
    s->differ_sent += n;
    write_ack_frame (s, &h, NULL);
    return;
  }
  if (error && !s->error_sent) {
    h.type = BR_T_ERROR;
    h.seq = s->error_seq;
    h.count = (uint64_t) error;
    h.length = strlen (s->errmsg);
    h.payload_sum = br_wire_checksum (s->errmsg, h.length);
    s->error_sent = true;
    write_ack_frame (s, &h, s->errmsg);
    return;
  }
  if (applied == s->sent_applied && durable == s->sent_durable)
    return;
  h.type = BR_T_ACK;
  h.seq = applied;
  h.count = durable;
  s->sent_applied = applied;
  s->sent_durable = durable;
  write_ack_frame (s, &h, NULL);
}

static void
on_notify (uv_async_t *a)
{
  struct br_replica_session *s = a->data;

  if (s->st == S_CLOSING)
    br__rsession_finish_close (s);
  else
    br__rsession_send_ack (s);
}

void
br__replica_kick (struct br_group *g)
{
  if (g->upstream && g->upstream->st == S_RUNNING)
    br__rsession_send_ack (g->upstream);
}

/* ---- closing ---- */

/* At shutdown the replica object outlives every handle that points to it:
 * the listener, the heartbeat timer and each session drop one reference
 * when their close callbacks have run. */
static void
replica_release (struct br_replica *rep)
{
  if (rep->stopping && --rep->handles_open == 0)
    free (rep);
}

static void
on_handle_closed (uv_handle_t *h)
{
  struct br_replica_session *s = h->data;
  struct br_replica_session **pp;
  struct br_replica *rep = s->rep;
  struct op *o;

  if (--s->handles_open > 0)
    return;
  for (pp = &rep->sessions; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  while ((o = s->head) != NULL) {
    s->head = o->next;
    free (o->payload);
    free (o);
  }
  br_wire_reader_reset (&s->rd);
  br_tls_free (s->tls);
  rep->n_sessions--;
  pthread_mutex_destroy (&s->lock);
  pthread_cond_destroy (&s->cond);
  pthread_cond_destroy (&s->sync_cond);
  free (s->dirty);
  free (s->differ);
  free (s->hash_buf);
  free (s);
  replica_release (rep);
}

/* CLOSING: once the threads have exited and no task refers to S, release
 * the group and close the handles (R5). */
void
br__rsession_finish_close (struct br_replica_session *s)
{
  struct br_group *g = s->g;

  if (s->closing_handles || s->task_busy ||
      atomic_load (&s->threads_exited) < s->threads_started)
    return;
  if (s->threads_started > 0) {
    pthread_join (s->thread, NULL);       /* both have returned */
    if (s->threads_started > 1)
      pthread_join (s->syncer, NULL);
    s->threads_started = 0;
  }
  s->closing_handles = true;
  uv_close ((uv_handle_t *) &s->notify, on_handle_closed);
  if (!uv_is_closing ((uv_handle_t *) &s->tcp))
    uv_close ((uv_handle_t *) &s->tcp, on_handle_closed);
  if (s->owns_group) {
    s->owns_group = false;
    g->applying = false;
    if (!s->rep->stopping)
      br__replica_start_pending (s->rep, g);
  }
}

void
br__rsession_close (struct br_replica_session *s, const char *fmt, ...)
{
  char msg[256];
  va_list ap;

  if (s->st == S_CLOSING)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (s->st == S_RUNNING || s->st == S_STARTING)
    br_warn ("connection from %s (group %s) closed: %s", s->peer,
             s->g->name, msg);
  else
    br_warn ("connection from %s closed during handshake: %s", s->addr, msg);
  if (s->g && s->g->upstream == s)
    s->g->upstream = NULL;
  s->st = S_CLOSING;
  uv_read_stop ((uv_stream_t *) &s->tcp);
  if (s->threads_started > 0) {
    /* A relay's apply thread may be waiting for its own peers, whose
     * acknowledgements this (loop) thread handles: release it first. */
    atomic_store (&s->g->cancel, true);
    br_mutex_lock (&s->g->lock);
    br__group_notify_all (s->g);
    br_mutex_unlock (&s->g->lock);
  }
  pthread_mutex_lock (&s->lock);
  s->stop = true;
  pthread_cond_signal (&s->cond);
  pthread_cond_signal (&s->sync_cond);
  pthread_mutex_unlock (&s->lock);
  br__rsession_finish_close (s);
}

/* ---- receiving ---- */

/* R2: validate a data frame and queue it for the apply thread.  Takes the
 * payload.  Returns false (and closes) on a bad frame. */
static bool
queue_op (struct br_replica_session *s, const struct br_frame_hdr *h,
          uint8_t *payload)
{
  const char *reason;
  struct op *o;

  if (h->volume >= s->g->n_vols) {
    br__rsession_close (s, "frame names volume %u of %zu", h->volume,
                        s->g->n_vols);
    goto bad;
  }
  if ((h->type == BR_T_WRITE || h->type == BR_T_ZERO ||
       h->type == BR_T_HASH) &&
      br_wire_check_range (h, s->g->vols[h->volume]->size, &reason) < 0) {
    br__rsession_close (s, "bad frame seq %llu: %s",
                        (unsigned long long) h->seq, reason);
    goto bad;
  }
  if (h->seq <= s->last_seq) {       /* also refuses seq 0 */
    br__rsession_close (s, "sequence went from %llu to %llu",
                        (unsigned long long) s->last_seq,
                        (unsigned long long) h->seq);
    goto bad;
  }
  o = malloc (sizeof *o);
  if (o == NULL) {
    br__rsession_close (s, "out of memory");
    goto bad;
  }
  o->next = NULL;
  o->h = *h;
  o->payload = payload;
  pthread_mutex_lock (&s->lock);
  if (s->last_seq == 0)
    s->applied = s->durable = h->seq - 1; /* the stream starts here */
  s->last_seq = h->seq;
  if (s->tail)
    s->tail->next = o;
  else
    s->head = o;
  s->tail = o;
  s->queued += h->length;
  if (s->queued > READ_PAUSE_BYTES && s->reading) {
    uv_read_stop ((uv_stream_t *) &s->tcp);
    s->reading = false;
  }
  pthread_cond_signal (&s->cond);
  pthread_mutex_unlock (&s->lock);
  return true;
 bad:
  free (payload);
  return false;
}

static bool
on_frame (struct br_replica_session *s, const struct br_frame_hdr *h,
          uint8_t *payload)
{
  br_debug (BR_DEBUG_WIRE, "<- %s type %u seq %llu off %llu len %u",
            s->peer[0] ? s->peer : s->addr, h->type,
            (unsigned long long) h->seq, (unsigned long long) h->offset,
            h->length);
  switch (s->st) {
  case S_HELLO:
    if (h->type != BR_T_HELLO)
      br__rsession_close (s, "expected HELLO, got frame type %u", h->type);
    else
      br__rsession_on_hello (s, payload, h->length);
    break;
  case S_AUTH:
    if (h->type != BR_T_AUTH)
      br__rsession_close (s, "expected AUTH, got frame type %u", h->type);
    else
      br__rsession_on_auth (s, payload);
    break;
  case S_STARTING:
  case S_RUNNING:
    switch (h->type) {
    case BR_T_WRITE: case BR_T_ZERO: case BR_T_FLUSH: case BR_T_SYNCED:
    case BR_T_RESYNC: case BR_T_HASH:
      return queue_op (s, h, payload);
    case BR_T_PING:
      /* Answered in order with ACKs: simply re-send the watermarks. */
      s->sent_applied = UINT64_MAX;
      br__rsession_send_ack (s);
      break;
    default:
      br__rsession_close (s, "unexpected frame type %u", h->type);
    }
    break;
  case S_CLOSING:
    break;
  }
  free (payload);
  return s->st != S_CLOSING;
}

/* Receive a WRITE's payload straight into its buffer when one is pending
 * (saves a copy of every replicated byte); otherwise into a scratch
 * buffer. */
static void
on_alloc (uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  static __thread char rbuf[256 * 1024];
  struct br_replica_session *s = h->data;
  uint8_t *where;
  size_t n = br_wire_reader_space (&s->rd, &where);

  (void) suggested;
  if (n >= 4096 && s->first_read && s->tls == NULL) {
    buf->base = (char *) where;
    buf->len = n;
    return;
  }
  buf->base = rbuf;
  buf->len = sizeof rbuf;
}

/* Frames from N plaintext bytes at DATA (which may be the reader's own
 * payload buffer: on_alloc). */
static void
feed (struct br_replica_session *s, const uint8_t *data, size_t n)
{
  size_t off = 0;

  while (off < n && s->st != S_CLOSING) {
    const char *reason = NULL;
    size_t used;
    int r = br_wire_reader_feed (&s->rd, data + off, n - off, &used,
                                 &reason);

    off += used;
    if (r < 0) {
      br__rsession_close (s, "bad frame: %s",
                          reason ? reason : br_strerror (-r));
      return;
    }
    if (r == 0)
      break;
    struct br_frame_hdr h = s->rd.hdr;
    if (!on_frame (s, &h, br_wire_reader_take (&s->rd)))
      return;
  }
}

/* TLS: decrypt what came; the plaintext goes straight into a pending
 * payload's buffer when there is room for a whole record's worth. */
static void
feed_tls (struct br_replica_session *s, const void *data, size_t n)
{
  static __thread uint8_t plain[64 * 1024];
  struct br_tls *t = s->tls;
  ssize_t got = 0;

  if (br_tls_push (t, data, n) < 0) {
    br__rsession_close (s, "%s", br_tls_error (t));
    return;
  }
  while (s->st != S_CLOSING) {
    uint8_t *where;
    size_t room = br_wire_reader_space (&s->rd, &where);

    if (room < 16384) {
      where = plain;
      room = sizeof plain;
    }
    if ((got = br_tls_pull (t, where, room)) <= 0)
      break;
    feed (s, where, got);
  }
  if (got < 0 && s->st != S_CLOSING)
    br__rsession_close (s, "%s", br_tls_error (t));
}

/* The first byte tells TLS from plain frames (tls.h); whether that is
 * what the link wants is checked on HELLO. */
static bool
start_tls (struct br_replica_session *s, uint8_t first)
{
  struct br_engine *e = s->rep->e;

  s->first_read = true;
  if (!br_tls_is_hello_byte (first))
    return true;
  if (e->tls.server == NULL) {
    br__rsession_close (s, "a TLS connection, but no link of node %s uses "
                        "tls", e->self->name);
    return false;
  }
  if ((s->tls = br_tls_server (&e->tls, (uv_stream_t *) &s->tcp)) == NULL) {
    br__rsession_close (s, "cannot start TLS: out of memory");
    return false;
  }
  return true;
}

static void
on_read (uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
  struct br_replica_session *s = stream->data;

  if (nread < 0) {
    if (nread == UV_EOF && s->st == S_AUTH)
      br__rsession_close (s, "closed by %s before AUTH: it did not accept "
                          "this node's WELCOME (a different shared "
                          "secret?); see its log", s->peer);
    else
      br__rsession_close (s, "%s", nread == UV_EOF ? "closed by peer"
                          : uv_strerror ((int) nread));
    return;
  }
  if (nread == 0)
    return;
  s->rx_bytes += nread;
  s->last_rx_ms = uv_now (&s->rep->e->loop);
  if (!s->first_read && !start_tls (s, (uint8_t) buf->base[0]))
    return;
  if (s->tls)
    feed_tls (s, buf->base, nread);
  else
    feed (s, (const uint8_t *) buf->base, nread);
}

static void
free_on_close (uv_handle_t *h)
{
  free (h->data);
}

static void
peer_name (uv_tcp_t *tcp, char *buf, size_t len)
{
  struct sockaddr_storage ss;
  int sslen = sizeof ss;
  char host[48] = "?";

  if (uv_tcp_getpeername (tcp, (struct sockaddr *) &ss, &sslen) == 0) {
    if (ss.ss_family == AF_INET6)
      uv_ip6_name ((struct sockaddr_in6 *) &ss, host, sizeof host);
    else
      uv_ip4_name ((struct sockaddr_in *) &ss, host, sizeof host);
  }
  snprintf (buf, len, "%s", host);
}

/* R2b: one connection too many is accepted (so it leaves the backlog)
 * and closed at once, with one log line a second at most. */
static void
refuse_connection (struct br_replica *rep, uv_stream_t *server)
{
  uv_tcp_t *t = malloc (sizeof *t);
  uint64_t now = uv_now (&rep->e->loop);
  char addr[64] = "?";

  if (t == NULL)
    return;
  uv_tcp_init (&rep->e->loop, t);
  t->data = t;
  if (uv_accept (server, (uv_stream_t *) t) == 0)
    peer_name (t, addr, sizeof addr);
  uv_close ((uv_handle_t *) t, free_on_close);
  rep->refused_quiet++;
  if (rep->refused_log_ms != 0 && now - rep->refused_log_ms < 1000)
    return;
  br_warn ("too many connections: refused one from %s (%llu refused since "
           "the last such line): %u open, settings max-connections is %u",
           addr, (unsigned long long) rep->refused_quiet, rep->n_sessions,
           rep->e->cfg->max_connections);
  rep->refused_log_ms = now ? now : 1;
  rep->refused_quiet = 0;
}

static void
on_connection (uv_stream_t *server, int status)
{
  struct br_replica *rep = server->data;
  struct br_replica_session *s;

  if (status < 0) {
    br_error ("accept failed: %s", uv_strerror (status));
    return;
  }
  if (rep->n_sessions >= rep->e->cfg->max_connections) {
    refuse_connection (rep, server);
    return;
  }
  s = calloc (1, sizeof *s);
  if (s == NULL)
    return;
  s->rep = rep;
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->cond, NULL);
  pthread_cond_init (&s->sync_cond, NULL);
  br_wire_reader_init (&s->rd);
  s->rd.max_payload = BR_WIRE_HANDSHAKE_MAX;  /* until authenticated */
  uv_tcp_init (&rep->e->loop, &s->tcp);
  uv_async_init (&rep->e->loop, &s->notify, on_notify);
  s->tcp.data = s->notify.data = s;
  s->handles_open = 2;
  s->next = rep->sessions;
  rep->sessions = s;
  rep->n_sessions++;
  snprintf (s->addr, sizeof s->addr, "?");
  if (uv_accept (server, (uv_stream_t *) &s->tcp) < 0) {
    br__rsession_close (s, "accept failed");
    return;
  }
  peer_name (&s->tcp, s->addr, sizeof s->addr);
  uv_tcp_nodelay (&s->tcp, 1);
  s->last_rx_ms = s->accepted_ms = uv_now (&rep->e->loop);
  s->reading = true;
  uv_read_start ((uv_stream_t *) &s->tcp, on_alloc, on_read);
}

/* ---- life cycle ---- */

/* An upstream sends at least a PING every heartbeat interval; one silent
 * for heartbeat-timeout is gone (a cut link sends no RST).  Before AUTH
 * the bound is the handshake timeout instead, counted from the accept
 * (R2b): a connection that trickles a byte now and then is no upstream.
 * The timer runs every heartbeat interval, so either fires up to one
 * interval late. */
static void
on_heartbeat (uv_timer_t *t)
{
  struct br_replica *rep = t->data;
  uint64_t now = uv_now (&rep->e->loop);
  uint64_t limit = rep->e->cfg->heartbeat_timeout_ms;
  uint64_t hs_limit = rep->e->cfg->handshake_timeout_ms;
  struct br_replica_session *s, *next;

  for (s = rep->sessions; s; s = next) {
    next = s->next;
    if (s->st == S_HELLO || s->st == S_AUTH) {
      if (now - s->accepted_ms > hs_limit)
        br__rsession_close (s, "handshake timeout: no %s within %llu ms "
                            "(settings handshake-timeout)",
                            s->st == S_HELLO ? "complete HELLO" : "AUTH",
                            (unsigned long long) hs_limit);
    }
    else if (s->st != S_CLOSING && now - s->last_rx_ms > limit)
      br__rsession_close (s, "heartbeat timeout: nothing received for %llu ms",
                          (unsigned long long) (now - s->last_rx_ms));
  }
}

int
br__replica_start (struct br_engine *e)
{
  struct br_replica *rep = calloc (1, sizeof *rep);
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
  struct addrinfo *res;
  int err;

  if (rep == NULL)
    return -ENOMEM;
  rep->e = e;
  err = getaddrinfo (e->self->host, e->self->port, &hints, &res);
  if (err) {
    br_error ("cannot resolve %s: %s", e->self->host, gai_strerror (err));
    free (rep);
    return -EINVAL;
  }
  uv_tcp_init (&e->loop, &rep->listener);
  rep->listener.data = rep;
  err = uv_tcp_bind (&rep->listener, res->ai_addr, 0);
  freeaddrinfo (res);
  if (err == 0)
    err = uv_listen ((uv_stream_t *) &rep->listener, 16, on_connection);
  if (err < 0) {
    br_error ("cannot listen on %s:%s: %s", e->self->host, e->self->port,
              uv_strerror (err));
    /* Freed in the close callback: this may run inside the loop (a
     * demotion), where the loop cannot be run again. */
    uv_close ((uv_handle_t *) &rep->listener, free_on_close);
    return err;
  }
  uv_timer_init (&e->loop, &rep->heartbeat);
  rep->heartbeat.data = rep;
  uv_timer_start (&rep->heartbeat, on_heartbeat, e->cfg->heartbeat_ms,
                  e->cfg->heartbeat_ms);
  e->replica = rep;
  return 0;
}

static void
on_listener_closed (uv_handle_t *h)
{
  replica_release (h->data);
}

void
br__replica_stop (struct br_engine *e)
{
  struct br_replica *rep = e->replica;
  struct br_replica_session *s, *next;

  if (rep == NULL)
    return;
  for (s = rep->sessions; s; s = next) {
    next = s->next;
    br__rsession_close (s, "shutting down");
  }
  uv_timer_stop (&rep->heartbeat);
  rep->stopping = true;
  for (s = rep->sessions; s; s = s->next)
    rep->handles_open++;          /* each frees its reference when closed */
  rep->handles_open += 2;
  uv_close ((uv_handle_t *) &rep->heartbeat, on_listener_closed);
  uv_close ((uv_handle_t *) &rep->listener, on_listener_closed);
  e->replica = NULL;
}

/* Status of the upstream sessions for the control socket: calls FN for
 * each running session. */
void
br__replica_foreach (struct br_engine *e,
                     void (*fn) (void *arg, const struct br_upstream_info *u),
                     void *arg)
{
  if (e->replica == NULL)
    return;
  for (struct br_replica_session *s = e->replica->sessions; s; s = s->next) {
    struct br_upstream_info u;
    char err[256];

    if (s->st != S_RUNNING && s->st != S_STARTING)  /* no group before */
      continue;
    u = (struct br_upstream_info) { .peer = s->peer, .group = s->g->name,
                                    .addr = s->addr,
                                    .rx_bytes = s->rx_bytes };
    pthread_mutex_lock (&s->lock);
    u.applied = s->applied;
    u.durable = s->durable;
    u.pending_bytes = s->queued;
    snprintf (err, sizeof err, "%s", s->error ? s->errmsg : "");
    pthread_mutex_unlock (&s->lock);
    u.error = err;
    fn (arg, &u);
  }
}
