/* blockrelay — TLS 1.3 on replication links (OpenSSL through memory BIOs).
 *
 * A link with `tls: psk` or `tls: cert` (config.h) runs TLS 1.3 inside its
 * TCP connection, below the blockrelay frames: HELLO, WELCOME, AUTH and
 * the stream are all encrypted.  libuv owns the socket; OpenSSL never
 * sees it.  Ciphertext read from the socket is pushed into the session
 * (br_tls_push), plaintext pulled out (br_tls_pull) and fed to the frame
 * reader; plaintext writes are encrypted and handed to uv_write
 * (br_tls_write), with the caller's request and callback.
 *
 * Contexts (one set per node, built at start from the topology):
 *   client PSK   offers the key BLAKE2b("blockrelay tls psk", secret)
 *                under this node's name as identity; accepts no
 *                certificate (an empty trust store), so a server that
 *                ignores the key cannot fall back to an unauthenticated
 *                certificate handshake;
 *   client cert  this node's tls-cert/tls-key, verifies the server
 *                against tls-ca and its name against the peer node's
 *                name (SAN or CN);
 *   server       whichever of the two this node's links need: the PSK
 *                callback, and/or its certificate; asks for (and
 *                verifies against tls-ca) a client certificate.
 * The server cannot know which link a connection belongs to before HELLO,
 * so it tells TLS from plain TCP by the first byte (a TLS handshake record
 * starts with 22; a frame with the magic's first byte) and, on HELLO,
 * checks that the connection used what the link says, and that the TLS
 * identity (PSK identity or certificate name) is the HELLO's node
 * (br_tls_check_peer).
 *
 * Invariants:
 *   T1. No plaintext reaches the socket before the handshake finished:
 *       writes made earlier (the client's HELLO) are queued in order and
 *       encrypted once it has.
 *   T2. Every br_tls_write calls its callback exactly once: when the
 *       ciphertext was written (or failed), or with UV_ECANCELED from
 *       br_tls_free for writes still queued by T1.
 *   T3. Writes reach the socket in call order (one uv_write each, on one
 *       stream).
 *   T4. TLS 1.3 only; no session tickets, no renegotiation.
 *
 * Threads: a session is used by the loop thread only.  Contexts are
 * immutable after br_tls_ctx_init.  Errors: negative errno, with the
 * reason (OpenSSL's, verification's) in br_tls_error.
 */
#ifndef BR_TLS_H
#define BR_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

struct br_tls_ctx {
  void *client_psk;             /* SSL_CTX *, or NULL: no psk link */
  void *client_cert;            /* SSL_CTX *, or NULL: no cert link */
  void *server;                 /* SSL_CTX *, or NULL: no tls link */
  uint8_t psk[32];
  char identity[BR_NAME_MAX + 1];
};

/* Build the contexts node SELF needs for its links in CFG (none if no
 * link of it uses TLS).  SECRET is the secret file's content (psk).
 * Reads the certificate and key files. */
int br_tls_ctx_init (struct br_tls_ctx *c, const struct br_config *cfg,
                     const struct br_node_cfg *self, const uint8_t *secret,
                     size_t secret_len, char *err, size_t errlen);
void br_tls_ctx_close (struct br_tls_ctx *c);

/* True if BYTE, the first of a connection, starts a TLS handshake. */
bool br_tls_is_hello_byte (uint8_t byte);

struct br_tls;

/* A client session to node PEER over STREAM with MODE (psk or cert), or a
 * server session; the client's handshake starts at once.  NULL: out of
 * memory, or no context for MODE. */
struct br_tls *br_tls_client (const struct br_tls_ctx *c,
                              enum br_tls_mode mode, const char *peer,
                              uv_stream_t *stream);
struct br_tls *br_tls_server (const struct br_tls_ctx *c,
                              uv_stream_t *stream);
/* T2: queued writes are called back with UV_ECANCELED.  NULL is a no-op. */
void br_tls_free (struct br_tls *t);

/* Ciphertext from the socket; drives the handshake and sends what it
 * produces.  0, or negative errno (br_tls_error says why). */
int br_tls_push (struct br_tls *t, const void *data, size_t len);
/* Up to CAP bytes of plaintext into BUF: their count, 0 when there is no
 * more for now, or negative errno (-EPIPE: the peer closed the session). */
ssize_t br_tls_pull (struct br_tls *t, void *buf, size_t cap);

/* uv_write, through T when it is not NULL (T1-T3). */
int br_tls_write (struct br_tls *t, uv_stream_t *stream, uv_write_t *req,
                  const uv_buf_t bufs[], unsigned nbufs, uv_write_cb cb);

const char *br_tls_error (const struct br_tls *t);
/* The handshake has finished. */
bool br_tls_ready (const struct br_tls *t);
/* After the handshake (else ""): "TLSv1.3 TLS_AES_256_GCM_SHA384 psk" and the like. */
void br_tls_describe (const struct br_tls *t, char *buf, size_t len);
/* HELLO's check on the server: the session used MODE and its identity is
 * node NAME.  0, or -EACCES with the reason in WHY. */
int br_tls_check_peer (const struct br_tls *t, enum br_tls_mode mode,
                       const char *name, char *why, size_t whylen);

#endif
