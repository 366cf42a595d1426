/* blockrelay — the downstream side of a handshake and the start of a
 * session: HELLO validated and answered with WELCOME (or a refusal the
 * peer can read), AUTH verified, then the session takes its group once
 * the previous one has let go, prepares relaying on the task thread if its
 * origin is new, and starts its apply and sync threads.  The session
 * states are drawn in replica.c; this file moves a session from HELLO
 * through AUTH and STARTING to RUNNING.
 *
 * Rules (replica.c's R1, R4 and R5, where they are kept):
 *   R1. Nothing is applied before HELLO and AUTH succeeded: the reader's
 *       frame cap is lifted only in br__rsession_on_auth.
 *   R4. A live session is replaced only by a connection from the same
 *       node that has authenticated; an unauthenticated HELLO naming the
 *       upstream gets a WELCOME and nothing else.
 *   R5. The relay's scoreboard work runs on the task thread (relay_work);
 *       s->task_busy keeps the session from being freed meanwhile.
 *   R7. When the verdict takes this copy's bitmap for the upstream
 *       (failback, resolve), it is sent in BITMAP frames right after AUTH
 *       succeeded, before the first ACK (the upstream waits for them in
 *       its handshake); the bits stay set here until SYNCED (apply.c).
 *
 * Loop thread only.
 */
#include "replica.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

struct welcome_req {
  uv_write_t req;
  struct br_replica_session *s;
  bool refused;
  uint8_t frame[];
};

static void
on_welcome_written (uv_write_t *req, int status)
{
  struct welcome_req *w = (struct welcome_req *) req;
  struct br_replica_session *s = w->s;
  bool refused = w->refused;

  free (w);
  if (refused)
    br__rsession_close (s, "handshake refused");
  else if (status < 0 && status != UV_ECANCELED)
    br__rsession_close (s, "cannot send WELCOME: %s", uv_strerror (status));
}

/* Send a WELCOME; after a refusal, close once it has been written so the
 * peer gets the reason. */
static void
send_welcome (struct br_replica_session *s, const struct br_welcome *m)
{
  struct br_frame_hdr h = { .version = BR_WIRE_VERSION, .type = BR_T_WELCOME };
  struct welcome_req *w;
  uv_buf_t b;
  int len;

  w = malloc (sizeof *w + BR_WIRE_HDR_SIZE + BR_WIRE_HANDSHAKE_MAX);
  if (w == NULL) {
    br__rsession_close (s, "out of memory");
    return;
  }
  len = br_wire_encode_welcome (m, w->frame + BR_WIRE_HDR_SIZE,
                                BR_WIRE_HANDSHAKE_MAX);
  if (len < 0) {
    free (w);
    br__rsession_close (s, "cannot encode WELCOME");
    return;
  }
  h.length = len;
  h.payload_sum = br_wire_checksum (w->frame + BR_WIRE_HDR_SIZE, len);
  br_wire_encode_hdr (&h, w->frame);
  w->s = s;
  w->refused = m->status != BR_WELCOME_OK;
  b = uv_buf_init ((char *) w->frame, BR_WIRE_HDR_SIZE + len);
  if (br_tls_write (s->tls, (uv_stream_t *) &s->tcp, &w->req, &b, 1,
                on_welcome_written) < 0) {
    free (w);
    br__rsession_close (s, "cannot send WELCOME");
  }
}

static void
refuse_as (struct br_replica_session *s, struct br_welcome *w,
           uint16_t status, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));
#define refuse(s, w, ...) refuse_as (s, w, BR_WELCOME_REFUSED, __VA_ARGS__)

static void
refuse_as (struct br_replica_session *s, struct br_welcome *w,
           uint16_t status, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (w->message, sizeof w->message, fmt, ap);
  va_end (ap);
  br_error ("refusing %s (%s): %s", s->peer[0] ? s->peer : "?", s->addr,
            w->message);
  w->status = status;
  w->n_volumes = 0;
  send_welcome (s, w);
}

void
br__rsession_on_hello (struct br_replica_session *s, const uint8_t *payload,
                       uint32_t len)
{
  struct br_engine *e = s->rep->e;
  struct br_hello *m = malloc (sizeof *m);
  struct br_welcome *w = calloc (1, sizeof *w);
  char why[1024];
  const char *reason;
  struct br_group *g = NULL;
  uint16_t st;

  if (m == NULL || w == NULL) {
    br__rsession_close (s, "out of memory");
    goto out;
  }
  w->proto = BR_WIRE_VERSION;
  snprintf (w->node, sizeof w->node, "%s", e->self->name);
  if (br_wire_decode_hello (payload, len, m, &reason) < 0) {
    br__rsession_close (s, "bad HELLO: %s", reason);
    goto out;
  }
  /* Escaped: a name that needs escaping is no node of the topology and is
   * refused below; until then it is only logged. */
  br_escape_text (s->peer, sizeof s->peer, m->from, sizeof m->from);
  st = br__hello_problem (e, m, &g, w, &s->take_vols, why, sizeof why);
  if (st != BR_WELCOME_OK) {
    refuse_as (s, w, st, "%s", why);
    goto out;
  }
  /* The connection is protected the way the link says (tls.h). */
  if (br_tls_check_peer (s->tls, br_config_link (e->cfg, m->from,
                                                 e->self->name)->tls,
                         m->from, why, sizeof why) < 0) {
    refuse (s, w, "%s", why);
    goto out;
  }
  /* R4: a live session from the same node stays until this one has
   * authenticated (on_auth). */
  if (g->upstream && strcmp (g->upstream->peer, s->peer) != 0) {
    refuse (s, w, "group %s is already replicating from %s", g->name,
            g->upstream->peer);
    goto out;
  }
  s->g = g;
  snprintf (s->origin, sizeof s->origin, "%s", m->origin);
  memcpy (s->client_nonce, m->nonce, sizeof s->client_nonce);
  br_wire_random (s->server_nonce, sizeof s->server_nonce);
  memcpy (w->nonce, s->server_nonce, sizeof w->nonce);
  if (e->secret)
    br_wire_auth_mac (e->secret, e->secret_len, "server", s->client_nonce,
                      s->server_nonce, w->mac);
  w->status = BR_WELCOME_OK;
  s->st = S_AUTH;
  send_welcome (s, w);
 out:
  free (m);
  free (w);
}

/* ---- starting a session ---- */

static void
spawn_threads (struct br_replica_session *s)
{
  struct br_group *g = s->g;
  int err;

  atomic_store (&g->cancel, false);
  br__relay_reset (g);              /* waits of an earlier stream */
  err = pthread_create (&s->thread, NULL, br__apply_thread, s);
  if (err == 0) {
    s->threads_started = 1;
    err = pthread_create (&s->syncer, NULL, br__sync_thread, s);
    if (err == 0)
      s->threads_started = 2;
  }
  if (err) {
    br__rsession_close (s, "cannot start the apply threads: %s",
                        br_strerror (err));
    return;
  }
  s->st = S_RUNNING;
  br_info ("group %s: replicating from %s (%s)", g->name, s->peer, s->addr);
  br__rsession_send_ack (s);
}

struct relay_task {
  struct br_replica_session *s;
  struct br_relay_plan *plan;
  int err;
  char why[512];
};

static void
relay_work (void *arg)
{
  struct relay_task *t = arg;

  t->err = br__relay_prepare (t->plan, t->why, sizeof t->why);
}

static void
relay_done (void *arg, bool cancelled)
{
  struct relay_task *t = arg;
  struct br_replica_session *s = t->s;

  s->task_busy = false;
  if (cancelled || t->err < 0) {
    br__relay_plan_free (t->plan);
    if (!cancelled)
      br__rsession_close (s, "cannot relay: %s", t->why);
  }
  else
    br__relay_commit (t->plan);         /* durable already: publish */
  if (s->st == S_CLOSING)
    br__rsession_finish_close (s);
  else if (!cancelled && t->err == 0)
    spawn_threads (s);
  free (t);
}

/* S is authenticated and the group's upstream: take the group once its
 * previous session has let go of it (start_pending), prepare relaying on
 * the task thread if the origin is new, then start the threads. */
static void
try_start (struct br_replica_session *s)
{
  struct br_group *g = s->g;
  struct br_relay_plan *plan;
  struct relay_task *t;
  char why[512] = "";

  if (g->applying)
    return;                         /* start_pending calls again */
  if (br__relay_plan (g, s->origin, &plan, why, sizeof why) < 0) {
    br__rsession_close (s, "cannot relay: %s", why);
    return;
  }
  g->applying = true;
  s->owns_group = true;
  if (plan == NULL) {
    spawn_threads (s);
    return;
  }
  t = calloc (1, sizeof *t);
  if (t) {
    t->s = s;
    t->plan = plan;
    if (br__task_post (s->rep->e, relay_work, relay_done, t) == 0) {
      s->task_busy = true;
      return;
    }
  }
  free (t);
  br__relay_plan_free (plan);
  br__rsession_close (s, "cannot relay: out of memory or stopping");
}

void
br__replica_start_pending (struct br_replica *rep, struct br_group *g)
{
  for (struct br_replica_session *s = rep->sessions; s; s = s->next)
    if (s->st == S_STARTING && s->g == g && g->upstream == s) {
      try_start (s);
      return;
    }
}

/* ---- R7: this copy's bitmap for the upstream ---- */

struct bitmap_req {
  uv_write_t req;
  struct br_replica_session *s;
  uint8_t frames[];
};

static void
on_bitmap_written (uv_write_t *req, int status)
{
  struct bitmap_req *b = (struct bitmap_req *) req;
  struct br_replica_session *s = b->s;

  free (b);
  if (status < 0 && status != UV_ECANCELED)
    br__rsession_close (s, "cannot send BITMAP: %s", uv_strerror (status));
}

/* Append one BITMAP frame of N words at OUT; returns its size. */
static size_t
put_bitmap (uint8_t *out, uint32_t vol, uint64_t first_word,
            const uint64_t *words, size_t n, bool last)
{
  struct br_frame_hdr h = {
    .version = BR_WIRE_VERSION, .type = BR_T_BITMAP, .volume = vol,
    .flags = last ? BR_F_LAST : 0, .offset = first_word * 64,
    .length = (uint32_t) (n * 8),
  };

  for (size_t i = 0; i < n; i++) {
    uint64_t le = htole64 (words[i]);

    h.count += (uint64_t) __builtin_popcountll (words[i]);
    memcpy (out + BR_WIRE_HDR_SIZE + 8 * i, &le, 8);
  }
  h.payload_sum = n ? br_wire_checksum (out + BR_WIRE_HDR_SIZE, h.length) : 0;
  br_wire_encode_hdr (&h, out);
  return BR_WIRE_HDR_SIZE + h.length;
}

static int
send_bitmaps (struct br_replica_session *s)
{
  enum { CHUNK = BR_WIRE_BITMAP_MAX / 8 };
  struct br_group *g = s->g;
  uint64_t words[CHUNK];
  size_t cap = BR_WIRE_HDR_SIZE, len = 0;
  uint32_t last_vol = 0;
  struct bitmap_req *b;
  uv_buf_t buf;

  for (size_t i = 0; i < g->n_vols; i++)
    if (s->take_vols & (UINT64_C (1) << i)) {
      uint64_t nwords = (g->vols[i]->nregions + 63) / 64;
      cap += nwords * 8 + (nwords / CHUNK + 1) * BR_WIRE_HDR_SIZE;
    }
  b = malloc (sizeof *b + cap);
  if (b == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < g->n_vols; i++) {
    struct br_volume *v = g->vols[i];
    uint64_t nwords = (v->nregions + 63) / 64;
    int slot;

    if (!(s->take_vols & (UINT64_C (1) << i)))
      continue;
    last_vol = (uint32_t) i;
    slot = br_sb_find_slot (v->sb, s->peer);
    for (uint64_t w0 = 0; slot >= 0 && w0 < nwords; w0 += CHUNK) {
      size_t n = nwords - w0 < CHUNK ? nwords - w0 : CHUNK;
      int64_t rg = br_sb_next_set (v->sb, slot, w0 * 64);

      if (rg < 0)
        break;
      if ((uint64_t) rg >= (w0 + n) * 64)
        continue;                   /* nothing set in this chunk */
      memset (words, 0, n * 8);
      for (; rg >= 0 && (uint64_t) rg < (w0 + n) * 64;
           rg = br_sb_next_set (v->sb, slot, rg + 1))
        words[(rg / 64) - w0] |= UINT64_C (1) << (rg % 64);
      len += put_bitmap (b->frames + len, (uint32_t) i, w0, words, n, false);
    }
  }
  len += put_bitmap (b->frames + len, last_vol, 0, words, 0, true);
  b->s = s;
  buf = uv_buf_init ((char *) b->frames, len);
  if (br_tls_write (s->tls, (uv_stream_t *) &s->tcp, &b->req, &buf, 1,
                on_bitmap_written) < 0) {
    free (b);
    return -EIO;
  }
  br_info ("group %s: sent %s this copy's bitmap for it (its changes here "
           "are discarded)", g->name, s->peer);
  return 0;
}

void
br__rsession_on_auth (struct br_replica_session *s, const uint8_t *mac)
{
  struct br_engine *e = s->rep->e;
  struct br_group *g = s->g;

  if (br__engine_role (e) == BR_ROLE_PRIMARY) {
    br__rsession_close (s, "node %s was promoted during the handshake",
                        e->self->name);
    return;
  }
  if (e->secret &&
      !br_wire_auth_verify (e->secret, e->secret_len, "client",
                            s->server_nonce, s->client_nonce, mac)) {
    br__rsession_close (s, "authentication failed: %s does not know the "
                        "shared secret", s->peer);
    return;
  }
  if (g->upstream && g->upstream != s) {
    if (strcmp (g->upstream->peer, s->peer) != 0) {
      br__rsession_close (s, "group %s is already replicating from %s",
                          g->name, g->upstream->peer);
      return;
    }
    br__rsession_close (g->upstream, "replaced by a new connection from %s",
                        s->peer);
  }
  g->upstream = s;
  s->st = S_STARTING;
  s->rd.max_payload = 0;            /* authenticated: full-size frames */
  s->dirty = calloc (g->n_vols, sizeof *s->dirty);
  if (s->dirty == NULL) {
    br__rsession_close (s, "out of memory");
    return;
  }
  if (s->take_vols && send_bitmaps (s) < 0) {     /* R7 */
    br__rsession_close (s, "cannot send BITMAP");
    return;
  }
  try_start (s);
}
