/* blockrelay — the primary's side of a link: connection, handshake,
 * sending the group's stream, acknowledgements, and resync.
 *
 * Everything here runs on the engine's loop thread, except that the queue,
 * the watermarks and the state are shared with writers under the group
 * lock (see internal.h for the lock order and the state diagram).
 *
 * Transitions and the function that makes each one:
 *
 *   LOGGING/FAILED -> CONNECTING    start_connect()      (reconnect timer)
 *   CONNECTING     -> HANDSHAKE     on_connect()         (HELLO sent)
 *   HANDSHAKE      -> SYNCING       on_welcome()         (peer has dirty bits)
 *   HANDSHAKE      -> REPLICATING   on_welcome()         (no dirty bits)
 *   SYNCING        -> REPLICATING   br__resync_step()    (resync.c: set
 *                                                          empty and durable)
 *   any            -> LOGGING       peer_lost()          (error, EOF)
 *   HANDSHAKE      -> FAILED        on_welcome()         (refused)
 *   any            -> FAILED        peer_lost(.., true)  (peer reported error)
 *
 * Invariants kept here:
 *   P1. The records of a connection are written to the socket in queue
 *       order, which is sequence order (uv_write preserves submission
 *       order on one stream).
 *   P2. A record stays in the queue (holding its data) until the peer's
 *       durable watermark passes it; only then can its bits be cleared.
 *   P3. On connection loss every queued record is dropped without
 *       clearing any bit, and the epoch moves so sync waiters return: what
 *       they wrote stays tracked in the bitmap (logging mode, I5).
 *   P4. ACK watermarks are validated: they never move backwards and never
 *       pass the last sequence number sent (I7).
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

const char *
br__peer_state_name (enum br_peer_state s)
{
  switch (s) {
  case BR_PEER_LOGGING: return "logging";
  case BR_PEER_CONNECTING: return "connecting";
  case BR_PEER_HANDSHAKE: return "handshake";
  case BR_PEER_SYNCING: return "syncing";
  case BR_PEER_REPLICATING: return "replicating";
  case BR_PEER_FAILED: return "failed";
  case BR_PEER_AHEAD: return "ahead";
  }
  return "?";
}

/* Under the group lock. */
void
br__peer_set_state (struct br_peer *p, enum br_peer_state s)
{
  if (p->state != s)
    br_debug (BR_DEBUG_PEER, "peer %s group %s: %s -> %s", p->node->name,
              p->g->name, br__peer_state_name (p->state),
              br__peer_state_name (s));
  __atomic_store_n (&p->state, s, __ATOMIC_RELAXED);
  p->since = time (NULL);
  br__group_notify_all (p->g);
}

static void start_connect (struct br_peer *p);
static void flush_queue (struct br_peer *p);

/* ---- connection loss ---- */

static void
on_reconnect_timer (uv_timer_t *t)
{
  start_connect (t->data);
}

/* Bounded exponential backoff: reconnect-min, doubling to reconnect-max.
 * A halted peer (split brain) is not retried: an operator decides. */
static void
schedule_reconnect (struct br_peer *p)
{
  const struct br_config *cfg = p->g->e->cfg;
  uint64_t ms = p->backoff_ms ? p->backoff_ms : cfg->reconnect_min_ms;

  if (p->halted)
    return;
  p->backoff_ms = ms * 2 > cfg->reconnect_max_ms ? cfg->reconnect_max_ms
                                                 : ms * 2;
  uv_timer_start (&p->timer, on_reconnect_timer, ms, 0);
}

static void
on_tcp_closed (uv_handle_t *h)
{
  struct br_peer *p = h->data;

  p->tcp_open = false;
  if (!uv_is_closing ((uv_handle_t *) &p->timer))
    schedule_reconnect (p);
}

/* P3: drop the connection, keep every bit. */
static void
peer_lost (struct br_peer *p, bool failed, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static void
peer_lost (struct br_peer *p, bool failed, const char *fmt, ...)
{
  struct br_group *g = p->g;
  char msg[256];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);

  pthread_mutex_lock (&g->lock);
  if (p->state != BR_PEER_LOGGING && p->state != BR_PEER_FAILED)
    br_warn ("peer %s (group %s): %s; logging writes until it is back",
             p->node->name, g->name, msg);
  snprintf (p->last_error, sizeof p->last_error, "%s", msg);
  p->epoch++;
  br__fifo_free (&p->q);
  p->n_sent = 0;
  p->queued_bytes = 0;
  br__peer_set_state (p, failed ? BR_PEER_FAILED : BR_PEER_LOGGING);
  pthread_mutex_unlock (&g->lock);
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
      peer_lost (p, false, "send failed: %s", uv_strerror (status));
    return;
  }
  flush_queue (p);
}

/* Send a small control frame (HELLO, AUTH) with an owned payload. */
static int
send_frame (struct br_peer *p, uint8_t type, const void *payload,
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
  int err = uv_write (&s->req, (uv_stream_t *) &p->tcp, s->bufs, 2,
                      on_written);
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

    pthread_mutex_lock (&g->lock);
    if (!(p->state == BR_PEER_REPLICATING || p->state == BR_PEER_SYNCING ||
          p->state == BR_PEER_AHEAD) ||
        p->n_sent == p->q.len) {
      pthread_mutex_unlock (&g->lock);
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
      pthread_mutex_unlock (&g->lock);
      if (s) {
        free (s->recs);
        free (s->bufs);
      }
      free (s);
      peer_lost (p, false, "out of memory sending");
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
    p->n_sent += n;
    p->sent_bytes += bytes;
    pthread_mutex_unlock (&g->lock);
    p->last_tx_ms = uv_now (&g->e->loop);
    if (p->link->rate) {
      p->tokens -= bytes;
      if (p->tokens <= 0)
        max_bytes = 0;
    }

    p->writes_in_flight++;
    int err = uv_write (&s->req, (uv_stream_t *) &p->tcp, s->bufs, nb,
                        on_written);
    if (err < 0) {
      p->writes_in_flight--;
      free_send_req (s);
      peer_lost (p, false, "send failed: %s", uv_strerror (err));
      return;
    }
    if (max_bytes == 0)
      return;                   /* out of tokens */
  }
}

void
br__peer_fail (struct br_peer *p, const char *msg)
{
  peer_lost (p, true, "%s", msg);
}

void
br__peer_flush_queue (struct br_peer *p)
{
  if (p->tcp_open)
    flush_queue (p);
}

/* ---- receiving ---- */

/* I6: compare generation identifiers and decide, per volume, whether the
 * peer is in sync with us or behind us (resync the bits: our generation,
 * one of our earlier ones, or the one we last synced it at), new (full
 * sync, unless assume-clean),
 * or divergent (split brain: stop, overwrite nothing, never retry).
 * Returns 0, or -1 after dropping the connection. */
static int
decide_direction (struct br_peer *p, const struct br_welcome *w)
{
  struct br_group *g = p->g;

  for (size_t i = 0; i < g->n_vols; i++) {
    struct br_volume *v = g->vols[i];
    const struct br_wire_vol *wv = &w->vols[i];
    int slot = v->slot[p->idx];
    uint64_t ours = br_sb_gen (v->sb), base = br_sb_peer_gen (v->sb, slot);

    /* The peer holds our generation, or the one we last synced it at:
     * the bitmap has tracked every difference since. */
    if (wv->gen == ours || (base != 0 && wv->gen == base))
      continue;
    /* An earlier generation of ours.  If we synced this peer before, its
     * bitmap has tracked every difference since; if we never did (we took
     * that generation over as a replica, and this node is primary now),
     * nothing here tracked what the peer received meanwhile: full sync. */
    if (br_sb_gen_known (v->sb, wv->gen)) {
      if (base != 0)
        continue;
      br_warn ("%s: peer %s holds generation %016llx, an earlier one of "
               "this copy, but was never synced from here: full sync of "
               "%llu bytes", v->cfg->name, p->node->name,
               (unsigned long long) wv->gen, (unsigned long long) v->size);
      if (br_sb_mark_all (v->sb, slot) < 0) {
        peer_lost (p, true, "cannot mark %s for a full sync", v->cfg->name);
        return -1;
      }
      continue;
    }
    /* A relay that holds nothing yet (its own full sync from upstream has
     * not finished) cannot judge a peer that holds data: wait until it
     * has adopted its upstream's generation, then compare again. */
    if (g->e->role == BR_ROLE_REPLICA && (br_sb_flags (v->sb) & BR_SB_FRESH) &&
        !(wv->flags & BR_SB_FRESH)) {
      peer_lost (p, false, "this copy of %s is new and not yet synced from "
                 "upstream; %s holds data: waiting", v->cfg->name,
                 p->node->name);
      return -1;
    }
    if (wv->flags & BR_SB_FRESH) {
      if (g->e->assume_clean) {
        br_info ("%s: peer %s is new; assume-clean: treating it as in sync",
                 v->cfg->name, p->node->name);
        continue;
      }
      /* A relay that is new itself has nothing to send yet: everything
       * it will hold arrives from upstream through the write path, which
       * marks it for this peer and forwards it. */
      if (g->e->role == BR_ROLE_REPLICA &&
          (br_sb_flags (v->sb) & BR_SB_FRESH)) {
        br_info ("%s: peer %s is new, and so is this copy: it gets what "
                 "arrives from upstream", v->cfg->name, p->node->name);
        continue;
      }
      br_info ("%s: peer %s is new: full sync of %llu bytes", v->cfg->name,
               p->node->name, (unsigned long long) v->size);
      if (br_sb_mark_all (v->sb, slot) < 0) {
        peer_lost (p, true, "cannot mark %s for a full sync", v->cfg->name);
        return -1;
      }
      continue;
    }
    p->halted = true;
    br_error ("split brain on volume %s: node %s is at generation %016llx, "
              "node %s at %016llx (they last synced at %016llx); both "
              "were written independently, so replication stops and "
              "neither copy is overwritten until an operator chooses a side",
              v->cfg->name, g->e->self->name, (unsigned long long) ours,
              p->node->name, (unsigned long long) wv->gen,
              (unsigned long long) base);
    peer_lost (p, true, "split brain on %s: %s (gen %016llx) and %s (gen "
               "%016llx) diverged; replication stopped", v->cfg->name,
               g->e->self->name, (unsigned long long) ours, p->node->name,
               (unsigned long long) wv->gen);
    return -1;
  }
  return 0;
}

static void
on_welcome (struct br_peer *p, const uint8_t *payload, uint32_t len)
{
  struct br_group *g = p->g;
  struct br_engine *e = g->e;
  struct br_welcome *w = malloc (sizeof *w);
  const char *reason;
  uint8_t mac[BR_WIRE_MAC_SIZE];
  bool dirty = false;

  if (w == NULL) {
    peer_lost (p, false, "out of memory");
    return;
  }
  if (br_wire_decode_welcome (payload, len, w, &reason) < 0) {
    peer_lost (p, true, "bad WELCOME: %s", reason);
    goto out;
  }
  if (w->status != BR_WELCOME_OK) {
    br_error ("peer %s refused group %s: %s", p->node->name, g->name,
              w->message);
    if (w->status == BR_WELCOME_SPLIT_BRAIN)
      p->halted = true;
    peer_lost (p, true, "refused: %s", w->message);
    goto out;
  }
  if (strcmp (w->node, p->node->name) != 0) {
    peer_lost (p, true, "expected node %s, reached %s", p->node->name,
               w->node);
    goto out;
  }
  if (e->secret) {
    if (!br_wire_auth_verify (e->secret, e->secret_len, "server", p->nonce,
                              w->nonce, w->mac)) {
      peer_lost (p, true, "authentication failed: %s does not know the "
                 "shared secret", p->node->name);
      goto out;
    }
    br_wire_auth_mac (e->secret, e->secret_len, "client", w->nonce,
                      p->nonce, mac);
  }
  else
    memset (mac, 0, sizeof mac);
  if (send_frame (p, BR_T_AUTH, mac, sizeof mac) < 0) {
    peer_lost (p, false, "cannot send AUTH");
    goto out;
  }

  if (w->n_volumes != g->n_vols) {
    peer_lost (p, true, "WELCOME lists %u volumes, expected %zu",
               w->n_volumes, g->n_vols);
    goto out;
  }
  if (decide_direction (p, w) < 0)
    goto out;

  pthread_mutex_lock (&g->lock);
  p->start_seq = p->applied = p->durable = g->next_seq;
  p->n_sent = 0;
  p->backoff_ms = 0;
  p->last_error[0] = '\0';
  if (br__resync_snapshot (p) < 0) {
    pthread_mutex_unlock (&g->lock);
    peer_lost (p, false, "out of memory");
    goto out;
  }
  dirty = p->oos_count > 0;
  if (dirty)
    br__peer_set_state (p, BR_PEER_SYNCING);
  else
    br__resync_done (p);
  pthread_mutex_unlock (&g->lock);
  br_info ("peer %s (group %s): connected, %s", p->node->name, g->name,
           dirty ? "resyncing dirty regions" : "in sync");
  if (dirty)
    br__resync_step (p);
  else
    flush_queue (p);
 out:
  free (w);
}

static void
on_ack (struct br_peer *p, const struct br_frame_hdr *h)
{
  struct br_group *g = p->g;
  uint64_t last_sent;

  if (h->seq == 0 && h->count == 0)
    return;                     /* a heartbeat answer before any record */
  pthread_mutex_lock (&g->lock);
  last_sent = p->n_sent ? br__fifo_at (&p->q, p->n_sent - 1)->h.seq
                        : p->durable;
  if (h->seq < p->applied || h->count < p->durable ||
      h->count > h->seq || (h->seq > last_sent && h->seq > p->applied)) {
    pthread_mutex_unlock (&g->lock);
    peer_lost (p, true, "bad ACK (applied %llu durable %llu)",
               (unsigned long long) h->seq, (unsigned long long) h->count);
    return;
  }
  p->applied = h->seq;
  if (h->count > p->durable) {
    p->durable = h->count;
    br__group_clear_durable (g, p);
  }
  br__group_notify (g, p->applied);
  pthread_mutex_unlock (&g->lock);
  br__replica_kick (g);       /* the upstream's ACK may have been held */
  if (p->state == BR_PEER_SYNCING)
    br__resync_step (p);
}

static void
on_frame (struct br_peer *p, const struct br_frame_hdr *h,
          const uint8_t *payload)
{
  br_debug (BR_DEBUG_WIRE, "<- %s type %u seq %llu count %llu",
            p->node->name, h->type, (unsigned long long) h->seq,
            (unsigned long long) h->count);
  if (p->state == BR_PEER_HANDSHAKE) {
    if (h->type != BR_T_WELCOME)
      peer_lost (p, true, "expected WELCOME, got frame type %u", h->type);
    else
      on_welcome (p, payload, h->length);
    return;
  }
  switch (h->type) {
  case BR_T_ACK:
    on_ack (p, h);
    break;
  case BR_T_ERROR:
    br_error ("peer %s (group %s) failed seq %llu: %.*s (%s)",
              p->node->name, p->g->name, (unsigned long long) h->seq,
              (int) h->length, (const char *) payload,
              br_strerror ((int) h->count));
    peer_lost (p, true, "peer error: %.*s", (int) h->length,
               (const char *) payload);
    break;
  case BR_T_PONG:
    break;
  default:
    peer_lost (p, true, "unexpected frame type %u", h->type);
  }
}

static void
on_alloc (uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  static __thread char rbuf[65536];

  buf->base = rbuf;
  buf->len = sizeof rbuf;
}

static void
on_read (uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
  struct br_peer *p = stream->data;
  size_t off = 0;

  if (nread < 0) {
    peer_lost (p, false, "%s", nread == UV_EOF ? "connection closed by peer"
               : uv_strerror ((int) nread));
    return;
  }
  if (nread > 0)
    p->last_rx_ms = uv_now (&p->g->e->loop);
  while (off < (size_t) nread) {
    const char *reason = NULL;
    size_t used;
    int r = br_wire_reader_feed (&p->rd, (uint8_t *) buf->base + off,
                                 nread - off, &used, &reason);

    off += used;
    if (r < 0) {
      br_error ("peer %s: bad frame: %s", p->node->name,
                reason ? reason : br_strerror (-r));
      peer_lost (p, true, "bad frame from peer: %s",
                 reason ? reason : br_strerror (-r));
      return;
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
      return;                   /* the connection was dropped */
  }
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
    peer_lost (p, false, "cannot connect to %s:%s: %s", p->node->host,
               p->node->port, uv_strerror (status));
    return;
  }
  uv_tcp_nodelay (&p->tcp, 1);
  uv_tcp_keepalive (&p->tcp, 1, 10);

  hello = calloc (1, sizeof *hello);
  buf = malloc (BR_WIRE_HANDSHAKE_MAX);
  if (hello == NULL || buf == NULL) {
    free (hello);
    free (buf);
    peer_lost (p, false, "out of memory");
    return;
  }
  hello->proto_min = hello->proto_max = BR_WIRE_VERSION;
  snprintf (hello->from, sizeof hello->from, "%s", g->e->self->name);
  snprintf (hello->to, sizeof hello->to, "%s", p->node->name);
  snprintf (hello->group, sizeof hello->group, "%s", g->name);
  snprintf (hello->origin, sizeof hello->origin, "%s", g->origin);
  br_wire_random (p->nonce, sizeof p->nonce);
  memcpy (hello->nonce, p->nonce, sizeof p->nonce);
  hello->n_volumes = g->n_vols;
  for (size_t i = 0; i < g->n_vols; i++) {
    struct br_volume *v = g->vols[i];
    struct br_wire_vol *w = &hello->vols[i];

    snprintf (w->name, sizeof w->name, "%s", v->cfg->name);
    w->size = v->size;
    w->granularity = (uint32_t) 1 << v->gran_shift;
    w->flags = br_sb_flags (v->sb);
    w->gen = br_sb_gen (v->sb);
    w->peer_gen = br_sb_peer_gen (v->sb, v->slot[p->idx]);
  }
  len = br_wire_encode_hello (hello, buf, BR_WIRE_HANDSHAKE_MAX);
  free (hello);
  pthread_mutex_lock (&g->lock);
  br__peer_set_state (p, BR_PEER_HANDSHAKE);
  pthread_mutex_unlock (&g->lock);
  br_wire_reader_reset (&p->rd);
  if (len < 0 ||
      uv_read_start ((uv_stream_t *) &p->tcp, on_alloc, on_read) < 0 ||
      send_frame (p, BR_T_HELLO, buf, len) < 0)
    peer_lost (p, false, "cannot start the handshake");
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
    peer_lost (p, false, "cannot connect to %s:%s: %s", p->node->host,
               p->node->port, uv_strerror (err));
}

static void
on_resolved (uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  struct br_peer *p = req->data;

  if (status < 0) {
    peer_lost (p, false, "cannot resolve %s: %s", p->node->host,
               uv_strerror (status));
    return;
  }
  connect_to (p, res->ai_addr);
  uv_freeaddrinfo (res);
}

static void
start_connect (struct br_peer *p)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
  int err;

  if (p->tcp_open || p->halted)
    return;
  pthread_mutex_lock (&p->g->lock);
  br__peer_set_state (p, BR_PEER_CONNECTING);
  pthread_mutex_unlock (&p->g->lock);
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
    peer_lost (p, false, "cannot resolve %s: %s", p->node->host,
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
      peer_lost (p, false, "no answer from %s:%s within %llu ms",
                 p->node->host, p->node->port,
                 (unsigned long long) cfg->heartbeat_timeout_ms);
    return;
  }
  if (now - p->last_rx_ms > cfg->heartbeat_timeout_ms) {
    peer_lost (p, false, "heartbeat timeout: nothing received for %llu ms",
               (unsigned long long) (now - p->last_rx_ms));
    return;
  }
  if (now - p->last_tx_ms >= cfg->heartbeat_ms ||
      now - p->last_rx_ms >= cfg->heartbeat_ms)
    if (send_frame (p, BR_T_PING, NULL, 0) < 0)
      peer_lost (p, false, "cannot send a heartbeat");
}

void
br__peer_tick (struct br_peer *p)
{
  struct br_group *g = p->g;
  enum br_peer_state st;
  bool drained;

  pthread_mutex_lock (&g->lock);
  st = p->state;
  if (uv_now (&g->e->loop) - p->held_scan_ms >= BR_CLEAR_SCAN_MS) {
    p->held_scan_ms = uv_now (&g->e->loop);
    br__bits_scan (p, false);
  }
  /* pull-ahead: once what was sent before the overflow is durable on the
   * peer, everything still dirty becomes the out-of-sync set. */
  drained = st == BR_PEER_AHEAD && p->q.len == 0;
  if (drained && br__resync_snapshot (p) == 0)
    br__peer_set_state (p, st = BR_PEER_SYNCING);
  pthread_mutex_unlock (&g->lock);

  if (p->must_drop) {
    p->must_drop = false;
    peer_lost (p, false, "%s", p->last_error[0] ? p->last_error
               : "cannot queue records");
    return;
  }
  if (!p->tcp_open || st == BR_PEER_LOGGING || st == BR_PEER_FAILED)
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
 * their close callbacks have fired). */
void
br__peer_close (struct br_peer *p)
{
  uv_timer_stop (&p->timer);
  uv_close ((uv_handle_t *) &p->timer, NULL);
  if (p->tcp_open && !uv_is_closing ((uv_handle_t *) &p->tcp))
    uv_close ((uv_handle_t *) &p->tcp, on_tcp_closed);
  pthread_mutex_lock (&p->g->lock);
  br__bits_scan (p, true);      /* clean stop: release the activity window */
  p->epoch++;
  br__peer_set_state (p, BR_PEER_LOGGING);
  snprintf (p->last_error, sizeof p->last_error, "shutting down");
  pthread_mutex_unlock (&p->g->lock);
}

void
br__peer_free (struct br_peer *p)
{
  if (p == NULL)
    return;
  br__fifo_free (&p->q);
  br_wire_reader_reset (&p->rd);
  if (p->oos)
    for (size_t i = 0; i < p->g->n_vols; i++)
      free (p->oos[i]);
  free (p->oos);
  br__bits_free (p);
  free (p);
}
