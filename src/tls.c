/* blockrelay — TLS 1.3 on replication links: OpenSSL sessions over memory
 * BIOs, driven by the libuv loop.  The design, the contexts and the
 * invariants T1-T4 are in tls.h.
 *
 * Data flow of one session:
 *
 *   socket --on_read--> br_tls_push --BIO_write--> rbio --SSL--> br_tls_pull
 *   br_tls_write --SSL_write--> wbio --flush_out--> uv_write --> socket
 *
 * Small buffers of one br_tls_write (frame headers) are gathered into one
 * TLS record with the next ones, so a batch of frames is not one AEAD
 * record per header.  Everything SSL produced goes out in one uv_write per
 * call, the caller's callback on the last (T2, T3).
 */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "log.h"

#define TLS_HANDSHAKE_TYPE 22
#define GATHER_MAX 16384        /* one TLS record of plaintext */
#define SMALL_BUF 4096          /* gathered rather than written alone */

struct pending {                /* T1: a write made before the handshake */
  struct pending *next;
  uv_write_t *req;
  uv_write_cb cb;
  size_t len;
  uint8_t data[];
};

struct br_tls {
  SSL *ssl;
  BIO *rbio, *wbio;             /* owned by ssl */
  uv_stream_t *stream;
  bool server, done;
  enum br_tls_mode mode;        /* the client's; the server's after psk_cb */
  char psk_identity[BR_NAME_MAX + 1];
  struct pending *head, **tail;
  uint8_t gather[GATHER_MAX];
  char err[256];
};

struct out_req {                /* ciphertext on its way to the socket */
  uv_write_t req;
  uv_write_t *user;
  uv_write_cb cb;
  uint8_t data[];
};

/* ---- errors ---- */

/* Set T's reason from OpenSSL's error queue and the verification result. */
static int
fail (struct br_tls *t, const char *what)
{
  unsigned long e = ERR_get_error ();
  const char *ossl = e ? ERR_reason_error_string (e) : NULL;
  long v = SSL_get_verify_result (t->ssl);

  ERR_clear_error ();
  if (v != X509_V_OK)
    snprintf (t->err, sizeof t->err, "TLS %s failed: certificate: %s", what,
              X509_verify_cert_error_string (v));
  else
    snprintf (t->err, sizeof t->err, "TLS %s failed: %s", what,
              ossl ? ossl : "protocol error");
  return -EPROTO;
}

bool
br_tls_ready (const struct br_tls *t)
{
  return t->done;
}

const char *
br_tls_error (const struct br_tls *t)
{
  return t->err;
}

/* ---- contexts ---- */

static unsigned
psk_client_cb (SSL *ssl, const char *hint, char *identity,
               unsigned max_identity, unsigned char *psk, unsigned max_psk)
{
  const struct br_tls_ctx *c = SSL_CTX_get_app_data (SSL_get_SSL_CTX (ssl));

  (void) hint;
  if (strlen (c->identity) + 1 > max_identity || sizeof c->psk > max_psk)
    return 0;
  memcpy (identity, c->identity, strlen (c->identity) + 1);
  memcpy (psk, c->psk, sizeof c->psk);
  return sizeof c->psk;
}

static unsigned
psk_server_cb (SSL *ssl, const char *identity, unsigned char *psk,
               unsigned max_psk)
{
  const struct br_tls_ctx *c = SSL_CTX_get_app_data (SSL_get_SSL_CTX (ssl));
  struct br_tls *t = SSL_get_app_data (ssl);

  if (c->identity[0] == '\0' || sizeof c->psk > max_psk ||
      strlen (identity) > BR_NAME_MAX)
    return 0;                   /* no psk link here: refused */
  snprintf (t->psk_identity, sizeof t->psk_identity, "%s", identity);
  t->mode = BR_TLS_PSK;
  memcpy (psk, c->psk, sizeof c->psk);
  return sizeof c->psk;
}

static SSL_CTX *
new_ctx (const struct br_tls_ctx *c, bool server)
{
  SSL_CTX *ctx = SSL_CTX_new (server ? TLS_server_method ()
                              : TLS_client_method ());

  if (ctx == NULL)
    return NULL;
  SSL_CTX_set_min_proto_version (ctx, TLS1_3_VERSION);        /* T4 */
  SSL_CTX_set_num_tickets (ctx, 0);
  /* AES-GCM first: with AES-NI it is the fastest (a psk session needs a
   * SHA-256 suite). */
  SSL_CTX_set_ciphersuites (ctx, "TLS_AES_128_GCM_SHA256:"
                            "TLS_AES_256_GCM_SHA384:"
                            "TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_options (ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode (ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_app_data (ctx, (void *) c);
  return ctx;
}

static int
load_cert (SSL_CTX *ctx, const struct br_config *cfg,
           const struct br_node_cfg *self, char *err, size_t errlen)
{
  const char *what = cfg->tls_ca;

  if (SSL_CTX_load_verify_locations (ctx, cfg->tls_ca, NULL) == 1) {
    what = self->tls_cert;
    if (SSL_CTX_use_certificate_chain_file (ctx, self->tls_cert) == 1) {
      what = self->tls_key;
      if (SSL_CTX_use_PrivateKey_file (ctx, self->tls_key,
                                       SSL_FILETYPE_PEM) == 1) {
        what = "the key";
        if (SSL_CTX_check_private_key (ctx) == 1)
          return 0;
      }
    }
  }
  {
    unsigned long e = ERR_peek_last_error ();
    const char *why = e ? ERR_reason_error_string (e) : NULL;

    snprintf (err, errlen, "%s: %s", what, why ? why : "cannot be loaded");
  }
  ERR_clear_error ();
  return -EINVAL;
}

int
br_tls_ctx_init (struct br_tls_ctx *c, const struct br_config *cfg,
                 const struct br_node_cfg *self, const uint8_t *secret,
                 size_t secret_len, char *err, size_t errlen)
{
  static const char label[] = "blockrelay tls psk";
  bool psk = false, cert = false;
  SSL_CTX *ctx;

  memset (c, 0, sizeof *c);
  for (size_t i = 0; i < cfg->n_links; i++) {
    const struct br_link_cfg *l = &cfg->links[i];

    if (strcmp (l->a, self->name) != 0 && strcmp (l->b, self->name) != 0)
      continue;
    psk |= l->tls == BR_TLS_PSK;
    cert |= l->tls == BR_TLS_CERT;
  }
  if (!psk && !cert)
    return 0;
  if (psk) {
    if (secret == NULL) {
      snprintf (err, errlen, "tls: psk needs the secret file");
      return -EINVAL;
    }
    crypto_generichash (c->psk, sizeof c->psk, secret, secret_len,
                        (const uint8_t *) label, sizeof label - 1);
    snprintf (c->identity, sizeof c->identity, "%s", self->name);
    if ((ctx = new_ctx (c, false)) == NULL)
      goto nomem;
    c->client_psk = ctx;
    SSL_CTX_set_psk_client_callback (ctx, psk_client_cb);
    /* An empty trust store: a certificate handshake cannot succeed. */
    SSL_CTX_set_verify (ctx, SSL_VERIFY_PEER, NULL);
  }
  if ((ctx = new_ctx (c, true)) == NULL)
    goto nomem;
  c->server = ctx;
  if (psk)
    SSL_CTX_set_psk_server_callback (ctx, psk_server_cb);
  if (cert) {
    if (load_cert (ctx, cfg, self, err, errlen) < 0)
      goto fail;
    /* Asked for and verified when sent; br_tls_check_peer requires one
     * on a cert link (a psk handshake has none). */
    SSL_CTX_set_verify (ctx, SSL_VERIFY_PEER, NULL);
    if ((ctx = new_ctx (c, false)) == NULL)
      goto nomem;
    c->client_cert = ctx;
    if (load_cert (ctx, cfg, self, err, errlen) < 0)
      goto fail;
    SSL_CTX_set_verify (ctx, SSL_VERIFY_PEER, NULL);
  }
  return 0;
 nomem:
  snprintf (err, errlen, "tls: out of memory");
 fail:
  br_tls_ctx_close (c);
  return -EINVAL;
}

void
br_tls_ctx_close (struct br_tls_ctx *c)
{
  SSL_CTX_free (c->client_psk);
  SSL_CTX_free (c->client_cert);
  SSL_CTX_free (c->server);
  sodium_memzero (c->psk, sizeof c->psk);
  c->client_psk = c->client_cert = c->server = NULL;
}

bool
br_tls_is_hello_byte (uint8_t byte)
{
  return byte == TLS_HANDSHAKE_TYPE;
}

/* ---- sessions ---- */

static struct br_tls *
new_session (SSL_CTX *ctx, uv_stream_t *stream, bool server)
{
  struct br_tls *t;

  if (ctx == NULL || (t = calloc (1, sizeof *t)) == NULL)
    return NULL;
  t->ssl = SSL_new (ctx);
  t->rbio = BIO_new (BIO_s_mem ());
  t->wbio = BIO_new (BIO_s_mem ());
  if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
    BIO_free (t->rbio);
    BIO_free (t->wbio);
    SSL_free (t->ssl);
    free (t);
    return NULL;
  }
  BIO_set_mem_eof_return (t->rbio, -1);       /* empty: retry, not EOF */
  SSL_set_bio (t->ssl, t->rbio, t->wbio);
  SSL_set_app_data (t->ssl, t);
  t->stream = stream;
  t->server = server;
  t->tail = &t->head;
  return t;
}

static void
on_out_written (uv_write_t *req, int status)
{
  struct out_req *o = (struct out_req *) req;

  if (o->cb)
    o->cb (o->user, status);
  free (o);
}

/* Send what SSL has produced; USER's CB is called once it is written (or
 * at once, from here, if nothing was produced and CB is set — never the
 * case for a plaintext write). */
static int
flush_out (struct br_tls *t, uv_write_t *user, uv_write_cb cb)
{
  size_t n = BIO_ctrl_pending (t->wbio);
  struct out_req *o;
  uv_buf_t b;
  int err;

  if (n == 0)
    return cb ? -EIO : 0;
  if ((o = malloc (sizeof *o + n)) == NULL)
    return -ENOMEM;
  if (BIO_read (t->wbio, o->data, (int) n) != (int) n) {
    free (o);
    return -EIO;
  }
  o->user = user;
  o->cb = cb;
  b = uv_buf_init ((char *) o->data, n);
  err = uv_write (&o->req, t->stream, &b, 1, on_out_written);
  if (err < 0)
    free (o);
  return err;
}

struct br_tls *
br_tls_client (const struct br_tls_ctx *c, enum br_tls_mode mode,
               const char *peer, uv_stream_t *stream)
{
  struct br_tls *t = new_session (mode == BR_TLS_PSK ? c->client_psk
                                  : c->client_cert, stream, false);

  if (t == NULL)
    return NULL;
  t->mode = mode;
  if (mode == BR_TLS_CERT) {
    /* The server's certificate must name the node we dial. */
    SSL_set_hostflags (t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host (t->ssl, peer);
  }
  SSL_set_connect_state (t->ssl);
  if (SSL_do_handshake (t->ssl) != -1 ||
      SSL_get_error (t->ssl, -1) != SSL_ERROR_WANT_READ ||
      flush_out (t, NULL, NULL) < 0) {
    ERR_clear_error ();
    br_tls_free (t);
    return NULL;
  }
  return t;
}

struct br_tls *
br_tls_server (const struct br_tls_ctx *c, uv_stream_t *stream)
{
  struct br_tls *t = new_session (c->server, stream, true);

  if (t == NULL)
    return NULL;
  t->mode = BR_TLS_CERT;        /* psk_server_cb says otherwise */
  SSL_set_accept_state (t->ssl);
  return t;
}

void
br_tls_free (struct br_tls *t)
{
  struct pending *p;

  if (t == NULL)
    return;
  while ((p = t->head) != NULL) {
    t->head = p->next;
    p->cb (p->req, UV_ECANCELED);
    free (p);
  }
  SSL_free (t->ssl);
  free (t);
}

/* ---- writing ---- */

/* Encrypt LEN bytes (a memory BIO takes all: no partial writes). */
static int
seal (struct br_tls *t, const void *data, size_t len)
{
  size_t done;

  if (len && SSL_write_ex (t->ssl, data, len, &done) != 1)
    return fail (t, "write");
  return 0;
}

static int
encrypt_write (struct br_tls *t, uv_write_t *req, const uv_buf_t bufs[],
               unsigned nbufs, uv_write_cb cb)
{
  size_t g = 0;

  for (unsigned i = 0; i < nbufs; i++) {
    if (bufs[i].len < SMALL_BUF && g + bufs[i].len <= sizeof t->gather) {
      memcpy (t->gather + g, bufs[i].base, bufs[i].len);
      g += bufs[i].len;
      continue;
    }
    if (seal (t, t->gather, g) < 0 || seal (t, bufs[i].base, bufs[i].len) < 0)
      return -EPROTO;
    g = 0;
  }
  if (seal (t, t->gather, g) < 0)
    return -EPROTO;
  return flush_out (t, req, cb);
}

int
br_tls_write (struct br_tls *t, uv_stream_t *stream, uv_write_t *req,
              const uv_buf_t bufs[], unsigned nbufs, uv_write_cb cb)
{
  struct pending *p;
  size_t len = 0, off = 0;

  if (t == NULL)
    return uv_write (req, stream, bufs, nbufs, cb);
  if (t->done)
    return encrypt_write (t, req, bufs, nbufs, cb);
  for (unsigned i = 0; i < nbufs; i++)            /* T1 */
    len += bufs[i].len;
  if ((p = malloc (sizeof *p + len)) == NULL)
    return -ENOMEM;
  for (unsigned i = 0; i < nbufs; i++) {
    memcpy (p->data + off, bufs[i].base, bufs[i].len);
    off += bufs[i].len;
  }
  p->next = NULL;
  p->req = req;
  p->cb = cb;
  p->len = len;
  *t->tail = p;
  t->tail = &p->next;
  return 0;
}

/* ---- reading ---- */

static int
handshake_done (struct br_tls *t)
{
  struct pending *p;

  t->done = true;
  while ((p = t->head) != NULL) {                 /* T1, in order */
    uv_buf_t b = uv_buf_init ((char *) p->data, p->len);
    int err;

    t->head = p->next;
    if (t->head == NULL)
      t->tail = &t->head;
    err = encrypt_write (t, p->req, &b, 1, p->cb);
    if (err < 0) {
      p->cb (p->req, err);
      free (p);
      return err;
    }
    free (p);
  }
  return 0;
}

int
br_tls_push (struct br_tls *t, const void *data, size_t len)
{
  int r;

  ERR_clear_error ();           /* SSL_get_error reads this thread's queue */
  if (len > 0 && BIO_write (t->rbio, data, (int) len) != (int) len) {
    snprintf (t->err, sizeof t->err, "TLS: out of memory");
    return -ENOMEM;
  }
  if (t->done)
    return 0;
  r = SSL_do_handshake (t->ssl);
  if (r == 1) {
    if (flush_out (t, NULL, NULL) < 0)
      return -EIO;
    return handshake_done (t);
  }
  if (SSL_get_error (t->ssl, r) == SSL_ERROR_WANT_READ)
    return flush_out (t, NULL, NULL);
  r = fail (t, "handshake");
  flush_out (t, NULL, NULL);                      /* the alert */
  return r;
}

ssize_t
br_tls_pull (struct br_tls *t, void *buf, size_t cap)
{
  size_t n;
  int r;

  if (!t->done)
    return 0;
  ERR_clear_error ();
  r = SSL_read_ex (t->ssl, buf, cap, &n);
  if (r == 1)
    return (ssize_t) n;
  switch (SSL_get_error (t->ssl, r)) {
  case SSL_ERROR_WANT_READ:
    return flush_out (t, NULL, NULL);             /* post-handshake */
  case SSL_ERROR_ZERO_RETURN:
    snprintf (t->err, sizeof t->err, "TLS session closed by peer");
    return -EPIPE;
  default:
    return fail (t, "read");
  }
}

/* ---- identity ---- */

void
br_tls_describe (const struct br_tls *t, char *buf, size_t len)
{
  if (!t->done) {
    snprintf (buf, len, "%s", "");
    return;
  }
  snprintf (buf, len, "%s %s %s", SSL_get_version (t->ssl),
            SSL_get_cipher_name (t->ssl),
            t->mode == BR_TLS_PSK ? "psk" : "cert");
}

int
br_tls_check_peer (const struct br_tls *t, enum br_tls_mode mode,
                   const char *name, char *why, size_t whylen)
{
  X509 *cert;
  int ok;

  if (t == NULL || mode == BR_TLS_OFF) {
    if (t == NULL && mode == BR_TLS_OFF)
      return 0;
    snprintf (why, whylen, "the link to %s is %s, but this connection %s",
              name, mode == BR_TLS_OFF ? "plain TCP (tls: off)"
              : mode == BR_TLS_PSK ? "TLS (tls: psk)" : "TLS (tls: cert)",
              t ? "uses TLS" : "does not use TLS");
    return -EACCES;
  }
  if (mode != t->mode) {
    snprintf (why, whylen, "the link to %s is tls: %s, but this connection "
              "used %s", name, mode == BR_TLS_PSK ? "psk" : "cert",
              t->mode == BR_TLS_PSK ? "a pre-shared key" : "certificates");
    return -EACCES;
  }
  if (mode == BR_TLS_PSK) {
    if (strcmp (t->psk_identity, name) == 0)
      return 0;
    snprintf (why, whylen, "TLS identity '%s' is not node %s",
              t->psk_identity, name);
    return -EACCES;
  }
  cert = SSL_get1_peer_certificate (t->ssl);
  if (cert == NULL) {
    snprintf (why, whylen, "node %s sent no TLS certificate", name);
    return -EACCES;
  }
  ok = SSL_get_verify_result (t->ssl) == X509_V_OK &&
    X509_check_host (cert, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                     NULL) == 1;
  X509_free (cert);
  if (ok)
    return 0;
  snprintf (why, whylen, "the TLS certificate is not one of node %s",
            name);
  return -EACCES;
}
