/* blockrelay — the upstream side of a link: connection, handshake,
 * sending the group's stream, acknowledgements, heartbeat.
 *
 * Everything here runs on the engine's loop thread, except that the queue,
 * the watermarks and the state are shared with writers under the group
 * lock.  States change only through br__peer_event (peerfsm.c, which
 * holds the diagram); this file makes these events:
 *
 *   CONNECT        start_connect()       (reconnect timer)
 *   CONNECTED      on_connect()          (HELLO sent)
 *   SYNC_NEEDED    finish_handshake()    (peer-handshake.c: the verdict
 *                                         left dirty regions)
 *   IN_SYNC        finish_handshake()    (nothing dirty)
 *   SPLIT_BRAIN    on_welcome()          (peer-handshake.c: verdict, or
 *                                         the replica says so)
 *   LOST / ERROR   peer_lost()           (EOF, timeouts, bad frames,
 *                                         refusals, peer errors)
 *   DRAINED        br__peer_tick()       (pull-ahead: sent part durable)
 *
 * The handshake (I6): HELLO, sent here on connect, carries this side's
 * generation view of every volume (verdict.h); the answer, WELCOME, is
 * judged in peer-handshake.c.
 *
 * Invariants kept here:
 *   P1. The records of a connection are written to the socket in queue
 *       order, which is sequence order (uv_write preserves submission
 *       order on one stream).
 *   P2. A record stays in the queue (holding its data) until the peer's
 *       durable watermark passes it; only then can its bits be cleared.
 *   P3. On connection loss every queued record is dropped without
 *       clearing any bit, and the epoch moves so sync waiters return
 *       (BR_FX_END): what they wrote stays tracked in the bitmap (I5).
 *   P4. ACK watermarks are validated: they never move backwards and never
 *       pass the last sequence number sent (I7).
 *   P5. Nothing from the peer is trusted before it is validated: frames
 *       are capped at BR_WIRE_HANDSHAKE_MAX (a replica sends nothing
 *       larger), WELCOME must name the node, protocol, volumes, sizes and
 *       granularities this side expects, and the peer's text is escaped
 *       before it is logged.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define BATCH_MAX_RECS 256
#define BATCH_MAX_BYTES (16u * 1024 * 1024)
#define WRITES_IN_FLIGHT_MAX 4

static void start_connect (struct br_peer *p);
static void flush_queue (struct br_peer *p);

/* ---- connection loss ---- */

static void
on_reconnect_timer (uv_timer_t *t)
{
  start_connect (t->data);
}

/* Bounded exponential backoff: reconnect-min, doubling to reconnect-max;
 * after an error (FAILED) at least reconnect-max.  A halted peer (split
 * brain) is not retried: an operator decides; nor is a paused one. */
static void
schedule_reconnect (struct br_peer *p)
{
  const struct br_config *cfg = p->g->e->cfg;
  uint64_t ms = p->backoff_ms ? p->backoff_ms : cfg->reconnect_min_ms;

  if (p->state == BR_PEER_HALTED || p->state == BR_PEER_PAUSED)
    return;
  if (p->state == BR_PEER_FAILED && ms < cfg->reconnect_max_ms)
    ms = cfg->reconnect_max_ms;
  p->backoff_ms = ms * 2 > cfg->reconnect_max_ms ? cfg->reconnect_max_ms
                                                 : ms * 2;
  uv_timer_start (&p->timer, on_reconnect_timer, ms, 0);
}

static void
on_tcp_closed (uv_handle_t *h)
{
  struct br_peer *p = h->data;

  br_tls_free (p->tls);         /* queued writes: UV_ECANCELED */
  p->tls = NULL;
  p->tcp_open = false;
  if (!uv_is_closing ((uv_handle_t *) &p->timer))
    schedule_reconnect (p);
}

static void peer_lost_v (struct br_peer *p, enum br_peer_event ev,
                         enum br_err_kind kind, const char *fmt, va_list ap)
  __attribute__ ((format (printf, 4, 0)));

/* P3: drop the connection with EV (LOST, ERROR or SPLIT_BRAIN), keep
 * every bit. */
void
br__peer_lost (struct br_peer *p, enum br_peer_event ev, const char *fmt,
               ...)
{
  va_list ap;

  va_start (ap, fmt);
  peer_lost_v (p, ev, br_loss_kind (ev, p->state), fmt, ap);
  va_end (ap);
}

void
br__peer_lost_as (struct br_peer *p, enum br_peer_event ev,
                  enum br_err_kind kind, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  peer_lost_v (p, ev, kind, fmt, ap);
  va_end (ap);
}

static void
peer_lost_v (struct br_peer *p, enum br_peer_event ev, enum br_err_kind kind,
             const char *fmt, va_list ap)
{
  struct br_group *g = p->g;
  char msg[256];

  vsnprintf (msg, sizeof msg, fmt, ap);
  if (kind < BR_ERR_N_KINDS) {
    br__peer_error (p, kind);
    br__events_error (p, kind, msg);
  }

  br_mutex_lock (&g->lock);
  snprintf (p->last_error, sizeof p->last_error, "%s", msg);
  br__peer_event (p, ev);       /* logs the change, with MSG as reason */
  br_mutex_unlock (&g->lock);
  br__replica_kick (g);       /* waits on this peer are over (logged) */

  br_wire_reader_reset (&p->rd);
  if (p->tcp_open && !uv_is_closing ((uv_handle_t *) &p->tcp))
    uv_close ((uv_handle_t *) &p->tcp, on_tcp_closed);
  else if (!p->tcp_open && !uv_is_closing ((uv_handle_t *) &p->timer))
    schedule_reconnect (p);
}

/* ---- sending ---- */

struct send_req {
  uv_write_t req;
  struct br_peer *p;
  size_t n;
  struct br_rec **recs;
  uv_buf_t *bufs;
};

static void
free_send_req (struct send_req *s)
{
  for (size_t i = 0; i < s->n; i++)
    br__rec_put (s->recs[i]);
  free (s->recs);
  free (s->bufs);
  free (s);
}

static void
on_written (uv_write_t *req, int status)
{
  struct send_req *s = (struct send_req *) req;
  struct br_peer *p = s->p;

  free_send_req (s);
  p->writes_in_flight--;
  if (status < 0) {
    if (status != UV_ECANCELED)
      br__peer_lost (p, BR_EV_LOST, "send failed: %s", uv_strerror (status));
    return;
  }
  flush_queue (p);
}

/* Send a small control frame (HELLO, AUTH, PING) with an owned payload. */
int
br__peer_send_frame (struct br_peer *p, uint8_t type, const void *payload,
                     uint32_t len)
{
  struct br_rec *r = br__rec_new (BR_T_WRITE, 0, 0, 0, 0, len, payload);
  struct send_req *s;

  if (r == NULL)
    return -ENOMEM;
  r->h.type = type;
  r->bytes = 0;
  br__rec_seal (r, 0);
  s = calloc (1, sizeof *s);
  if (s == NULL || !(s->recs = malloc (sizeof *s->recs)) ||
      !(s->bufs = malloc (2 * sizeof *s->bufs))) {
    if (s)
      free (s->recs);
    free (s);
    br__rec_put (r);
    return -ENOMEM;
  }
  s->p = p;
  s->n = 1;
  s->recs[0] = r;
  s->bufs[0] = uv_buf_init ((char *) r->hdr, BR_WIRE_HDR_SIZE);
  s->bufs[1] = uv_buf_init ((char *) r->payload, len);
  p->writes_in_flight++;
  p->last_tx_ms = uv_now (&p->g->e->loop);
  int err = br_tls_write (p->tls, (uv_stream_t *) &p->tcp, &s->req, s->bufs,
                          2, on_written);
  if (err < 0) {
    p->writes_in_flight--;
    free_send_req (s);
  }
  return err;
}

/* ---- rate limits (token buckets, loop thread) ----
 *
 * `rate` caps every byte sent on the link; `resync-rate` caps resync data
 * on top of it.  Buckets refill continuously and may go negative by one
 * batch, so the average rate is exact; a burst is at most 1/10 s worth. */

void
br__peer_refill (struct br_peer *p)
{
  uint64_t now = uv_now (&p->g->e->loop);
  double dt = (now - p->tokens_ms) / 1000.0;
  const struct br_link_cfg *l = p->link;

  p->tokens_ms = now;
  if (l->rate) {
    p->tokens += dt * l->rate;
    if (p->tokens > l->rate / 10.0 + 65536)
      p->tokens = l->rate / 10.0 + 65536;
  }
  if (l->resync_rate) {
    p->resync_tokens += dt * l->resync_rate;
    if (p->resync_tokens > l->resync_rate / 10.0 + 65536)
      p->resync_tokens = l->resync_rate / 10.0 + 65536;
  }
}

/* P1: hand the next batch of queued records to uv_write. */
static void
flush_queue (struct br_peer *p)
{
  struct br_group *g = p->g;
  size_t max_bytes = BATCH_MAX_BYTES;

  if (p->link->rate) {
    br__peer_refill (p);
    if (p->tokens <= 0)
      return;                   /* the tick tries again */
    max_bytes = p->link->rate / 50 + 1;
  }
  while (p->writes_in_flight < WRITES_IN_FLIGHT_MAX) {
    struct send_req *s;
    size_t n = 0, bytes = 0, nb = 0;

    br_mutex_lock (&g->lock);
    if (!(br_peer_state_queues (p->state) || p->state == BR_PEER_AHEAD) ||
        p->n_sent == p->q.len) {
      br_mutex_unlock (&g->lock);
      return;
    }
    while (p->n_sent + n < p->q.len && n < BATCH_MAX_RECS &&
           bytes < max_bytes)
      bytes += br__fifo_at (&p->q, p->n_sent + n++)->h.length +
        BR_WIRE_HDR_SIZE;
    s = calloc (1, sizeof *s);
    if (s) {
      s->recs = malloc (n * sizeof *s->recs);
      s->bufs = malloc (2 * n * sizeof *s->bufs);
    }
    if (s == NULL || s->recs == NULL || s->bufs == NULL) {
      br_mutex_unlock (&g->lock);
      if (s) {
        free (s->recs);
        free (s->bufs);
      }
      free (s);
      br__peer_lost (p, BR_EV_LOST, "out of memory sending");
      return;
    }
    for (size_t i = 0; i < n; i++) {
      struct br_rec *r = br__fifo_at (&p->q, p->n_sent + i);

      atomic_fetch_add (&r->refs, 1);
      s->recs[i] = r;
      s->bufs[nb++] = uv_buf_init ((char *) r->hdr, BR_WIRE_HDR_SIZE);
      if (r->h.length)
        s->bufs[nb++] = uv_buf_init ((char *) r->payload, r->h.length);
      br_debug (BR_DEBUG_WIRE, "-> %s type %u seq %llu off %llu len %u",
                p->node->name, r->h.type, (unsigned long long) r->h.seq,
                (unsigned long long) r->h.offset, r->h.length);
    }
    s->n = n;
    s->p = p;
    br__queue_sent (p, n);
    p->sent_bytes += bytes;
    br_mutex_unlock (&g->lock);
    p->last_tx_ms = uv_now (&g->e->loop);
    if (p->link->rate) {
      p->tokens -= bytes;
      if (p->tokens <= 0)
        max_bytes = 0;
    }

    p->writes_in_flight++;
    int err = br_tls_write (p->tls, (uv_stream_t *) &p->tcp, &s->req,
                            s->bufs, nb, on_written);
    if (err < 0) {
      p->writes_in_flight--;
      free_send_req (s);
      br__peer_lost (p, BR_EV_LOST, "send failed: %s", uv_strerror (err));
      return;
    }
    if (max_bytes == 0)
      return;                   /* out of tokens */
  }
}

void
br__peer_fail (struct br_peer *p, const char *msg)
{
  br__peer_lost (p, BR_EV_ERROR, "%s", msg);
}

void
br__peer_flush_queue (struct br_peer *p)
{
  if (p->tcp_open)
    flush_queue (p);
}

/* ---- receiving ---- */

static void
on_ack (struct br_peer *p, const struct br_frame_hdr *h)
{
  struct br_group *g = p->g;
  uint64_t last_sent;

  if (h->seq == 0 && h->count == 0)
    return;                     /* a heartbeat answer before any record */
  br_mutex_lock (&g->lock);
  last_sent = p->n_sent ? br__fifo_at (&p->q, p->n_sent - 1)->h.seq
                        : p->durable;
  if (h->seq < p->applied || h->count < p->durable ||
      h->count > h->seq || (h->seq > last_sent && h->seq > p->applied)) {
    br_mutex_unlock (&g->lock);
    br__peer_lost (p, BR_EV_ERROR, "bad ACK (applied %llu durable %llu)",
                   (unsigned long long) h->seq, (unsigned long long) h->count);
    return;
  }
  p->applied = h->seq;
  if (h->count > p->durable) {
    p->durable = h->count;
    br__group_clear_durable (g, p);
  }
  br__group_notify (g, p->applied);
  br_mutex_unlock (&g->lock);
  br__replica_kick (g);       /* the upstream's ACK may have been held */
  if (p->state == BR_PEER_SYNCING)
    br__resync_step (p);
  br__verify_step (p);
}

/* DIFFER: the peer's copy of the range of each named HASH record differs
 * from ours.  Each seq must name a HASH sent on this connection and not
 * retired yet (the peer sends DIFFER before the ACK that covers it, R6 of
 * replica.c); anything else is a broken peer.  The verdict is used when
 * the record retires (bits.c). */
static void
on_differ (struct br_peer *p, const struct br_frame_hdr *h,
           const uint8_t *payload)
{
  struct br_group *g = p->g;
  size_t n = h->length / 8;

  br_mutex_lock (&g->lock);
  for (size_t i = 0; i < n; i++) {
    uint64_t seq = br_wire_get_seq (payload, i);
    struct br_rec *r = br__queue_find_sent (p, seq);

    if (r == NULL || r->h.type != BR_T_HASH || r->differs) {
      br_mutex_unlock (&g->lock);
      br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME,
                        "DIFFER names seq %llu, which is not a hash in "
                        "flight", (unsigned long long) seq);
      return;
    }
    r->differs = true;
    if (r->h.flags & BR_F_RESYNC)
      p->resync_differ_regions++;
  }
  br_mutex_unlock (&g->lock);
}

static void
on_frame (struct br_peer *p, const struct br_frame_hdr *h,
          const uint8_t *payload)
{
  char esc[BR_ESCAPED_SIZE (BR_WIRE_MSG_MAX)];

  br_debug (BR_DEBUG_WIRE, "<- %s type %u seq %llu count %llu",
            p->node->name, h->type, (unsigned long long) h->seq,
            (unsigned long long) h->count);
  if (p->state == BR_PEER_HANDSHAKE && p->bitmap_wait) {
    if (h->type != BR_T_BITMAP)
      br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME,
                        "expected BITMAP, got frame type %u", h->type);
    else
      br__peer_on_bitmap (p, h, payload);
    return;
  }
  if (p->state == BR_PEER_HANDSHAKE && !p->welcome_busy) {
    if (h->type != BR_T_WELCOME)
      br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME,
                        "expected WELCOME, got frame type %u", h->type);
    else
      br__peer_on_welcome (p, payload, h->length);
    return;
  }
  switch (h->type) {
  case BR_T_ACK:
    if (p->state == BR_PEER_HANDSHAKE && (h->seq || h->count))
      br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME,
                        "ACK before the stream started");
    else
      on_ack (p, h);
    break;
  case BR_T_ERROR:
    br_escape_text (esc, sizeof esc, (const char *) payload, h->length);
    br_error ("peer %s (group %s) failed seq %llu: %s (%s)", p->node->name,
              p->g->name, (unsigned long long) h->seq, esc,
              br_strerror ((int) h->count));
    br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_PEER_ERROR,
                      "peer error: %s", esc);
    break;
  case BR_T_PONG:
    break;
  case BR_T_DIFFER:
    if (p->state == BR_PEER_HANDSHAKE)
      br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME,
                        "DIFFER before the stream started");
    else
      on_differ (p, h, payload);
    break;
  default:
    br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME,
                      "unexpected frame type %u", h->type);
  }
}

static void
on_alloc (uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  static __thread char rbuf[65536];

  buf->base = rbuf;
  buf->len = sizeof rbuf;
}

/* Frames from N plaintext bytes at DATA.  False once the connection was
 * dropped. */
static bool
feed (struct br_peer *p, const uint8_t *data, size_t n)
{
  size_t off = 0;

  while (off < n) {
    const char *reason = NULL;
    size_t used;
    int r;

    if (br_peer_state_down (p->state)) {
      /* A writer dropped the connection (DROP): nothing more from it. */
      br__peer_lost (p, BR_EV_LOST, "%s", p->last_error);
      return false;
    }
    r = br_wire_reader_feed (&p->rd, data + off, n - off, &used, &reason);
    off += used;
    if (r < 0) {
      br_error ("peer %s: bad frame: %s", p->node->name,
                reason ? reason : br_strerror (-r));
      br__peer_lost_as (p, BR_EV_ERROR, BR_ERR_BAD_FRAME,
                        "bad frame from peer: %s",
                        reason ? reason : br_strerror (-r));
      return false;
    }
    if (r == 0)
      break;
    struct br_frame_hdr h = p->rd.hdr;
    uint8_t *payload = br_wire_reader_take (&p->rd);
    uint64_t epoch = p->epoch;
    on_frame (p, &h, payload);
    free (payload);
    if (p->epoch != epoch || !p->tcp_open ||
        uv_is_closing ((uv_handle_t *) &p->tcp))
      return false;             /* the connection was dropped */
  }
  return true;
}

/* TLS: decrypt what came and feed the plaintext. */
static void
feed_tls (struct br_peer *p, const void *data, size_t n)
{
  static __thread uint8_t plain[65536];
  struct br_tls *t = p->tls;
  ssize_t got;

  if (br_tls_push (t, data, n) < 0) {
    br__peer_lost (p, BR_EV_LOST, "%s", br_tls_error (t));
    return;
  }
  while ((got = br_tls_pull (t, plain, sizeof plain)) > 0)
    if (!feed (p, plain, got))
      return;
  if (got < 0)
    br__peer_lost (p, BR_EV_LOST, "%s", br_tls_error (t));
}

static void
on_read (uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
  struct br_peer *p = stream->data;

  if (nread < 0) {
    br__peer_lost (p, BR_EV_LOST, "%s%s",
                   p->tls && !br_tls_ready (p->tls)
                   ? "TLS handshake failed: " : "",
                   nread == UV_EOF ? "connection closed by peer"
                   : uv_strerror ((int) nread));
    return;
  }
  if (nread == 0)
    return;
  p->last_rx_ms = uv_now (&p->g->e->loop);
  if (p->tls)
    feed_tls (p, buf->base, nread);
  else
    feed (p, (const uint8_t *) buf->base, nread);
}

/* ---- connecting ---- */

static void
on_connect (uv_connect_t *req, int status)
{
  struct br_peer *p = req->data;
  struct br_group *g = p->g;
  struct br_hello *hello;
  uint8_t *buf;
  int len;

  if (status < 0) {
    br__peer_lost (p, BR_EV_LOST, "cannot connect to %s:%s: %s", p->node->host,
                   p->node->port, uv_strerror (status));
    return;
  }
  uv_tcp_nodelay (&p->tcp, 1);
  uv_tcp_keepalive (&p->tcp, 1, 10);
  if (p->link->tls != BR_TLS_OFF &&
      (p->tls = br_tls_client (&g->e->tls, p->link->tls, p->node->name,
                               (uv_stream_t *) &p->tcp)) == NULL) {
    br__peer_lost (p, BR_EV_LOST, "cannot start TLS to %s", p->node->name);
    return;
  }

  hello = calloc (1, sizeof *hello);
  buf = malloc (BR_WIRE_HANDSHAKE_MAX);
  if (hello == NULL || buf == NULL) {
    free (hello);
    free (buf);
    br__peer_lost (p, BR_EV_LOST, "out of memory");
    return;
  }
  hello->proto_min = hello->proto_max = BR_WIRE_VERSION;
  snprintf (hello->from, sizeof hello->from, "%s", g->e->self->name);
  snprintf (hello->to, sizeof hello->to, "%s", p->node->name);
  snprintf (hello->group, sizeof hello->group, "%s", g->name);
  snprintf (hello->origin, sizeof hello->origin, "%s", g->origin);
  hello->flags = br__hello_flags (p);
  br_wire_random (p->nonce, sizeof p->nonce);
  memcpy (hello->nonce, p->nonce, sizeof p->nonce);
  hello->n_volumes = g->n_vols;
  for (size_t i = 0; i < g->n_vols; i++)
    br__peer_vol_view (p, i, &hello->vols[i]);
  len = br_wire_encode_hello (hello, buf, BR_WIRE_HANDSHAKE_MAX);
  free (hello);
  br_mutex_lock (&g->lock);
  br__peer_event (p, BR_EV_CONNECTED);
  br_mutex_unlock (&g->lock);
  br_wire_reader_reset (&p->rd);
  p->rd.max_payload = BR_WIRE_HANDSHAKE_MAX;          /* P5 */
  p->welcome_busy = false;
  br__peer_bitmap_reset (p);
  if (len < 0 ||
      uv_read_start ((uv_stream_t *) &p->tcp, on_alloc, on_read) < 0 ||
      br__peer_send_frame (p, BR_T_HELLO, buf, len) < 0)
    br__peer_lost (p, BR_EV_LOST, "cannot start the handshake");
  free (buf);
}

static void
connect_to (struct br_peer *p, const struct sockaddr *addr)
{
  int err = uv_tcp_init (&p->g->e->loop, &p->tcp);

  if (err == 0) {
    p->tcp_open = true;
    p->tcp.data = p;
    p->creq.data = p;
    err = uv_tcp_connect (&p->creq, &p->tcp, addr, on_connect);
  }
  if (err < 0)
    br__peer_lost (p, BR_EV_LOST, "cannot connect to %s:%s: %s", p->node->host,
                   p->node->port, uv_strerror (err));
}

static void
on_resolved (uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  struct br_peer *p = req->data;

  if (status < 0) {
    br__peer_lost (p, BR_EV_LOST, "cannot resolve %s: %s", p->node->host,
                   uv_strerror (status));
    return;
  }
  if (p->state != BR_PEER_PAUSED)      /* paused while resolving */
    connect_to (p, res->ai_addr);
  uv_freeaddrinfo (res);
}

static void
start_connect (struct br_peer *p)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
  int err;

  if (p->tcp_open || p->state == BR_PEER_HALTED ||
      p->state == BR_PEER_PAUSED)
    return;
  br_mutex_lock (&p->g->lock);
  br__peer_event (p, BR_EV_CONNECT);
  br_mutex_unlock (&p->g->lock);
  p->state_ms = uv_now (&p->g->e->loop);
  /* A numeric address needs no resolver (and no libuv threadpool). */
  {
    union { struct sockaddr sa; struct sockaddr_in in;
            struct sockaddr_in6 in6; } a;
    int port = atoi (p->node->port);
    if (uv_ip4_addr (p->node->host, port, &a.in) == 0 ||
        uv_ip6_addr (p->node->host, port, &a.in6) == 0) {
      connect_to (p, &a.sa);
      return;
    }
  }
  p->gai.data = p;
  err = uv_getaddrinfo (&p->g->e->loop, &p->gai, on_resolved, p->node->host,
                        p->node->port, &hints);
  if (err < 0)
    br__peer_lost (p, BR_EV_LOST, "cannot resolve %s: %s", p->node->host,
                   uv_strerror (err));
}

/* ---- life cycle ---- */

int
br__peer_init (struct br_group *g, int idx, const struct br_node_cfg *n,
               const struct br_link_cfg *l)
{
  struct br_peer *p = calloc (1, sizeof *p);

  if (p == NULL)
    return -ENOMEM;
  p->g = g;
  p->idx = idx;
  p->node = n;
  p->link = l;
  p->mode = l->mode;
  p->congestion = l->on_congestion;
  p->queue_limit = l->queue_size;
  p->state = BR_PEER_LOGGING;
  p->since = time (NULL);
  atomic_init (&p->must_drop, false);
  br_wire_reader_init (&p->rd);
  g->peers[idx] = p;
  return 0;
}

void
br__peer_start (struct br_peer *p)
{
  uv_timer_init (&p->g->e->loop, &p->timer);
  p->timer.data = p;
  start_connect (p);
}

/* ---- the operator: pause and resume ---- */

/* Loop thread.  The connection (if any) is closed like a lost one (P3:
 * every bit kept) and no reconnection is tried until br__peer_resume.
 * -EBUSY when the peer is halted: a split brain is resolved first. */
int
br__peer_pause (struct br_peer *p)
{
  enum br_peer_state st = br__peer_state (p);

  /* Only the loop thread makes a peer HALTED, so ST stays pausable. */
  if (br_peer_next (st, BR_EV_PAUSE) == BR_PEER_INVALID)
    return -EBUSY;
  if (st == BR_PEER_PAUSED)
    return 0;
  uv_timer_stop (&p->timer);
  br__peer_lost (p, BR_EV_PAUSE, "paused by the operator");
  return 0;
}

/* Loop thread: back to LOGGING and connect now; the handshake's verdict
 * resyncs what was written while paused.  -EINVAL if it is not paused. */
int
br__peer_resume (struct br_peer *p)
{
  struct br_group *g = p->g;

  br_mutex_lock (&g->lock);
  if (p->state != BR_PEER_PAUSED) {
    br_mutex_unlock (&g->lock);
    return -EINVAL;
  }
  br__peer_event (p, BR_EV_RESUME);
  snprintf (p->last_error, sizeof p->last_error, "resumed by the operator");
  br_mutex_unlock (&g->lock);
  br__peer_reconnect (p);
  return 0;
}

void
br__peer_reconnect (struct br_peer *p)
{
  p->backoff_ms = 0;
  if (!p->tcp_open)
    start_connect (p);          /* else on_tcp_closed reconnects */
}

/* Heartbeat: probe an idle connection, and give up on one that has been
 * silent for heartbeat-timeout (a cut link sends no RST), or that has not
 * finished connecting and the handshake in that time. */
static void
heartbeat (struct br_peer *p, enum br_peer_state st)
{
  const struct br_config *cfg = p->g->e->cfg;
  uint64_t now = uv_now (&p->g->e->loop);

  if (st == BR_PEER_CONNECTING || st == BR_PEER_HANDSHAKE) {
    if (p->tcp_open && now - p->state_ms > cfg->heartbeat_timeout_ms)
      br__peer_lost (p, BR_EV_LOST, "no answer from %s:%s within %llu ms",
                     p->node->host, p->node->port,
                     (unsigned long long) cfg->heartbeat_timeout_ms);
    return;
  }
  if (now - p->last_rx_ms > cfg->heartbeat_timeout_ms) {
    br__peer_lost (p, BR_EV_LOST,
                   "heartbeat timeout: nothing received for %llu ms",
                   (unsigned long long) (now - p->last_rx_ms));
    return;
  }
  if (now - p->last_tx_ms >= cfg->heartbeat_ms ||
      now - p->last_rx_ms >= cfg->heartbeat_ms)
    if (br__peer_send_frame (p, BR_T_PING, NULL, 0) < 0)
      br__peer_lost (p, BR_EV_LOST, "cannot send a heartbeat");
}

void
br__peer_tick (struct br_peer *p)
{
  struct br_group *g = p->g;
  enum br_peer_state st;
  char why[sizeof p->last_error];

  br_mutex_lock (&g->lock);
  if (uv_now (&g->e->loop) - p->held_scan_ms >= BR_CLEAR_SCAN_MS) {
    p->held_scan_ms = uv_now (&g->e->loop);
    br__bits_scan (p, false);
  }
  /* pull-ahead: once what was sent before the overflow is durable on the
   * peer, everything still dirty becomes the out-of-sync set. */
  if (p->state == BR_PEER_AHEAD && p->q.len == 0 &&
      br__resync_snapshot (p) == 0)
    br__peer_event (p, BR_EV_DRAINED);
  st = p->state;
  snprintf (why, sizeof why, "%s", p->last_error[0] ? p->last_error
            : "cannot queue records");
  br_mutex_unlock (&g->lock);

  if (atomic_exchange (&p->must_drop, false)) {
    br__peer_lost (p, BR_EV_LOST, "%s", why);
    return;
  }
  br__verify_step (p);          /* also ends a job whose peer is gone */
  if (!p->tcp_open || br_peer_state_down (st))
    return;
  heartbeat (p, st);
  if (!p->tcp_open || uv_is_closing ((uv_handle_t *) &p->tcp))
    return;
  if (st == BR_PEER_SYNCING)
    br__resync_step (p);
  if (p->link->rate)
    flush_queue (p);            /* the bucket has refilled since */
}

/* Loop thread, at shutdown: close the handles (the loop then runs until
 * their close callbacks have fired).  Bits are left as they are: the
 * engine clears what it may once the disks are synced (engine.c). */
void
br__peer_close (struct br_peer *p)
{
  uv_timer_stop (&p->timer);
  if (!uv_is_closing ((uv_handle_t *) &p->timer))
    uv_close ((uv_handle_t *) &p->timer, NULL);
  if (p->tcp_open && !uv_is_closing ((uv_handle_t *) &p->tcp))
    uv_close ((uv_handle_t *) &p->tcp, on_tcp_closed);
  br_mutex_lock (&p->g->lock);
  br__peer_event (p, BR_EV_STOP);
  snprintf (p->last_error, sizeof p->last_error, "shutting down");
  br_mutex_unlock (&p->g->lock);
}

void
br__peer_free (struct br_peer *p)
{
  if (p == NULL)
    return;
  br__fifo_free (&p->q);
  br_wire_reader_reset (&p->rd);
  if (p->oos)
    for (size_t i = 0; i < p->g->n_vols; i++) {
      free (p->oos[i]);
      free (p->hashed[i]);
    }
  free (p->oos);
  free (p->hashed);
  br__verify_free (p);
  br__bits_free (p);
  br__peer_bitmap_reset (p);
  free (p);
}
