/* blockrelay — libFuzzer target: the frame decoder and the handshake
 * parsers (src/wire.c), fed as the receiving side of a connection feeds
 * them.
 *
 * Input layout
 * ------------
 *   byte 0      mode: bit 0 the side (0: replica, the server, which reads
 *               HELLO, AUTH and the stream; 1: peer, the client, which
 *               reads WELCOME, BITMAP, ACK, DIFFER, ERROR, PONG); bit 1
 *               a secret is configured (AUTH is then checked for real and
 *               never passes, so the replica stays on the handshake
 *               bound); bit 2 fix the checksums up (see below); bit 3
 *               zero-copy receiving (br_wire_reader_space) where offered
 *   bytes 1..3  seed of the split points
 *   bytes 4..   the byte stream of the connection
 *
 * The stream is fed to a struct br_wire_reader in pieces whose lengths
 * come from the seed (1 byte up to a few KiB), as a socket would hand
 * them over.  With bit 2 the harness first walks the stream as a frame
 * sequence and rewrites each frame's header checksum (and the payload
 * checksum of a payload that is all there) so that the fuzzer gets past
 * XXH32 / XXH3 and into the per-type rules; without it the checksums are
 * the fuzzer's own, which exercises the refusals.
 *
 * The reader's bound is the real readers': BR_WIRE_HANDSHAKE_MAX until
 * the replica has accepted AUTH (replica.c, replica-handshake.c), always
 * for the peer (peer.c P5).  A refused frame "closes the connection": the
 * reader is reset and the rest of the input is a new connection.
 *
 * Every frame the reader returns goes through what the receiver does with
 * its type: br_wire_decode_hello / _welcome (and, as an oracle, the
 * re-encoding must give back the same bytes: the decoders accept only
 * canonical encodings), br_wire_auth_verify, br_wire_check_range against
 * the volumes of the last HELLO or WELCOME (or a few fixed sizes),
 * br_wire_get_seq over a DIFFER, the BITMAP bounds of peer-handshake.c,
 * br_escape_text of an ERROR.  The header is re-encoded and compared too.
 * Everything allocated is freed before returning (leak detection is on).
 *
 * Built with -DBR_FUZZ_WRITE_SEEDS it is instead a program that writes the
 * seed corpus (valid frames of every type, a handshake of each side, and
 * truncated and oversized ones) into the directory given as argument:
 *   fuzz-frame-seeds fuzz/corpus/frame
 */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "util.h"
#include "wire.h"

#define PREFIX 4
#define MODE_PEER 0x1u
#define MODE_SECRET 0x2u
#define MODE_FIXUP 0x4u
#define MODE_ZEROCOPY 0x8u

static const uint8_t secret[] = "fuzz-secret";

struct rx {
  unsigned mode;
  bool authed;                  /* replica: AUTH accepted */
  uint8_t client_nonce[BR_WIRE_NONCE_SIZE];
  uint8_t server_nonce[BR_WIRE_NONCE_SIZE];
  uint32_t n_vols;
  uint64_t vol_size[BR_WIRE_MAX_VOLUMES];
  uint32_t vol_gran[BR_WIRE_MAX_VOLUMES];
  uint64_t last_seq;
};

static uint32_t
get_be32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
    | (uint32_t) p[2] << 8 | p[3];
}

static void
put_be32 (uint8_t *p, uint32_t v)
{
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static void
put_be64 (uint8_t *p, uint64_t v)
{
  put_be32 (p, v >> 32);
  put_be32 (p + 4, (uint32_t) v);
}

/* Rewrite the checksums of every frame in BUF (see the top comment). */
static void
fix_checksums (uint8_t *buf, size_t len)
{
  size_t off = 0;

  while (len - off >= BR_WIRE_HDR_SIZE) {
    uint8_t *h = buf + off;
    uint32_t plen = get_be32 (h + 12);

    if (plen > 0 && plen <= len - off - BR_WIRE_HDR_SIZE)
      put_be64 (h + 40, br_wire_checksum (h + BR_WIRE_HDR_SIZE, plen));
    put_be32 (h + 48, XXH32 (h, 48, 0));
    if (plen > len - off - BR_WIRE_HDR_SIZE)
      break;
    off += BR_WIRE_HDR_SIZE + plen;
  }
}

static void
learn_vols (struct rx *x, const struct br_wire_vol *v, uint32_t n)
{
  x->n_vols = n;
  for (uint32_t i = 0; i < n; i++) {
    x->vol_size[i] = v[i].size;
    x->vol_gran[i] = v[i].granularity;
  }
}

static void
on_hello (struct rx *x, const uint8_t *payload, uint32_t len)
{
  static struct br_hello m;      /* large: off the stack */
  static uint8_t again[BR_WIRE_HANDSHAKE_MAX];
  const char *reason = NULL;
  int n;

  if (br_wire_decode_hello (payload, len, &m, &reason) < 0) {
    assert (reason != NULL);
    return;
  }
  n = br_wire_encode_hello (&m, again, sizeof again);
  assert (n == (int) len);
  assert (memcmp (again, payload, len) == 0);
  memcpy (x->client_nonce, m.nonce, BR_WIRE_NONCE_SIZE);
  learn_vols (x, m.vols, m.n_volumes);
}

static void
on_welcome (struct rx *x, const uint8_t *payload, uint32_t len)
{
  static struct br_welcome m;
  static uint8_t again[BR_WIRE_HANDSHAKE_MAX];
  const char *reason = NULL;
  int n;

  if (br_wire_decode_welcome (payload, len, &m, &reason) < 0) {
    assert (reason != NULL);
    return;
  }
  n = br_wire_encode_welcome (&m, again, sizeof again);
  assert (n == (int) len);
  assert (memcmp (again, payload, len) == 0);
  (void) br_wire_auth_verify (x->mode & MODE_SECRET ? secret : NULL,
                              sizeof secret - 1, "server", x->client_nonce,
                              m.nonce, m.mac);
  memcpy (x->server_nonce, m.nonce, BR_WIRE_NONCE_SIZE);
  learn_vols (x, m.vols, m.n_volumes);
}

/* The byte range of a WRITE / ZERO / HASH, as replica.c queue_op checks
 * it, against the announced volume (or fixed sizes before a handshake). */
static void
check_range (struct rx *x, const struct br_frame_hdr *h)
{
  static const uint64_t sizes[] = { 512, 1u << 20, UINT64_MAX };
  const char *reason = NULL;

  if (x->n_vols > 0) {
    if (h->volume >= x->n_vols)
      return;                   /* "frame names volume N of M" */
    if (br_wire_check_range (h, x->vol_size[h->volume], &reason) < 0)
      assert (reason != NULL);
  }
  else
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      if (br_wire_check_range (h, sizes[i], &reason) < 0)
        assert (reason != NULL);
  if (h->seq > x->last_seq)
    x->last_seq = h->seq;
}

/* The bounds of a BITMAP as br__peer_on_bitmap checks them. */
static void
on_bitmap (struct rx *x, const struct br_frame_hdr *h, const uint8_t *payload)
{
  uint64_t words = h->length / 8, nwords, nregions, set = 0;

  if (h->volume >= x->n_vols || x->vol_gran[h->volume] == 0)
    return;
  nregions = (x->vol_size[h->volume] + x->vol_gran[h->volume] - 1)
    / x->vol_gran[h->volume];
  nwords = (nregions + 63) / 64;
  if (h->offset / 64 > nwords || words > nwords - h->offset / 64)
    return;
  for (uint64_t i = 0; i < words; i++) {
    uint64_t word;

    memcpy (&word, payload + 8 * i, sizeof word);
    word = le64toh (word);
    if (h->offset / 64 + i == nwords - 1 && nregions % 64 &&
        (word >> (nregions % 64)) != 0)
      return;
    set += (uint64_t) __builtin_popcountll (word);
  }
  (void) (set == h->count);
}

static void
on_frame (struct rx *x, struct br_wire_reader *r)
{
  const struct br_frame_hdr *h = &r->hdr;
  uint8_t again[BR_WIRE_HDR_SIZE];
  char esc[BR_ESCAPED_SIZE (BR_WIRE_MSG_MAX)];
  uint64_t sum = 0;
  const char *reason = NULL;

  /* The reader's promises. */
  assert (h->length == 0 || r->payload != NULL);
  assert (r->max_payload == 0 || h->length <= r->max_payload);
  assert (br_wire_check_payload (h, r->payload, &reason) == 0);
  br_wire_encode_hdr (h, again);
  assert (memcmp (again, r->hdrbuf, BR_WIRE_HDR_SIZE) == 0);

  switch (h->type) {
  case BR_T_HELLO:
    on_hello (x, r->payload, h->length);
    break;
  case BR_T_WELCOME:
    on_welcome (x, r->payload, h->length);
    break;
  case BR_T_AUTH:
    assert (h->length == BR_WIRE_MAC_SIZE);
    if (!(x->mode & MODE_PEER) &&
        br_wire_auth_verify (x->mode & MODE_SECRET ? secret : NULL,
                             sizeof secret - 1, "client", x->server_nonce,
                             x->client_nonce, r->payload))
      x->authed = true;
    break;
  case BR_T_WRITE:
  case BR_T_ZERO:
  case BR_T_HASH:
    check_range (x, h);
    break;
  case BR_T_ERROR:
    br_escape_text (esc, sizeof esc, (const char *) r->payload, h->length);
    br_escape_text (esc, 40, (const char *) r->payload, h->length);
    break;
  case BR_T_DIFFER:
    assert (h->length % 8 == 0 && h->length / 8 <= BR_WIRE_DIFFER_MAX);
    for (size_t i = 0; i < h->length / 8; i++)
      sum += br_wire_get_seq (r->payload, i);
    (void) sum;
    break;
  case BR_T_BITMAP:
    on_bitmap (x, h, r->payload);
    break;
  default:
    break;
  }

  /* The bound the real readers set for what follows. */
  if (!(x->mode & MODE_PEER) && x->authed)
    r->max_payload = 0;         /* authenticated: full-size frames */
}

/* A split seed: 24 bits of state of a tiny xorshift. */
static uint32_t
next_rand (uint32_t *s)
{
  uint32_t v = *s;

  v ^= v << 13;
  v ^= v >> 17;
  v ^= v << 5;
  return *s = v;
}

static size_t
piece_len (uint32_t *s)
{
  uint32_t v = next_rand (s);

  switch (v & 3) {
  case 0: return 1 + (v >> 8) % 8;
  case 1: return 1 + (v >> 8) % 64;
  case 2: return 1 + (v >> 8) % 1024;
  default: return 1 + (v >> 8) % 16384;
  }
}

static void
new_connection (struct rx *x, struct br_wire_reader *r, unsigned mode)
{
  memset (x, 0, sizeof *x);
  x->mode = mode;
  memset (x->server_nonce, 0x5a, sizeof x->server_nonce);
  br_wire_reader_reset (r);
  r->max_payload = BR_WIRE_HANDSHAKE_MAX;       /* until authenticated */
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct br_wire_reader r;
  struct rx x;
  uint8_t *buf, *where;
  size_t len, off = 0;
  uint32_t seed;
  unsigned mode;

  if (size < PREFIX)
    return 0;
  mode = data[0];
  seed = (uint32_t) data[1] << 16 | (uint32_t) data[2] << 8 | data[3];
  seed = seed * 2654435761u + 1;  /* never 0: xorshift would stick */
  len = size - PREFIX;
  buf = malloc (len ? len : 1);
  if (buf == NULL)
    return 0;
  memcpy (buf, data + PREFIX, len);
  if (mode & MODE_FIXUP)
    fix_checksums (buf, len);

  br_wire_reader_init (&r);
  new_connection (&x, &r, mode);
  while (off < len) {
    size_t n = piece_len (&seed), used = 0, room;
    const char *reason = NULL;
    int rc;

    if (n > len - off)
      n = len - off;
    /* Zero-copy receiving: the socket writes straight into the payload
     * buffer, and those same bytes are fed. */
    if ((mode & MODE_ZEROCOPY) &&
        (room = br_wire_reader_space (&r, &where)) > 0) {
      if (n > room)
        n = room;
      memcpy (where, buf + off, n);
      rc = br_wire_reader_feed (&r, where, n, &used, &reason);
    }
    else
      rc = br_wire_reader_feed (&r, buf + off, n, &used, &reason);
    assert (used <= n);
    off += used;
    if (rc == 1) {
      on_frame (&x, &r);
      if (next_rand (&seed) & 1)
        br_wire_reader_next (&r);
      else
        free (br_wire_reader_take (&r));
      /* A frame-ready reader consumes nothing; the next frame's bytes
       * have not been fed yet, so nothing is lost. */
    }
    else if (rc == -EBADMSG) {
      assert (reason != NULL);
      /* Sticky until reset: a second feed must refuse too. */
      if (off < len) {
        size_t u2 = 1;
        int again = br_wire_reader_feed (&r, buf + off, len - off, &u2,
                                         &reason);
        assert (again == -EBADMSG && u2 == 0);
        (void) again;
      }
      new_connection (&x, &r, mode);
    }
    else if (rc == -ENOMEM)
      break;
    else
      assert (rc == 0 && used == n);
  }
  br_wire_reader_reset (&r);

  /* The handshake decoders on the raw bytes too, without a frame around
   * them: the cheapest path into their checks. */
  if (len > 0 && len <= BR_WIRE_HANDSHAKE_MAX) {
    new_connection (&x, &r, mode);
    if (mode & MODE_PEER)
      on_welcome (&x, buf, len);
    else
      on_hello (&x, buf, len);
    br_wire_reader_reset (&r);
  }
  free (buf);
  return 0;
}

#ifdef BR_FUZZ_WRITE_SEEDS
/* ---- The seed corpus generator ---- */

static const char *seed_dir;

static uint8_t stream[2 * BR_WIRE_HANDSHAKE_MAX + 65536];
static size_t stream_len;

static void
add_frame (uint8_t type, uint16_t flags, uint32_t volume, uint64_t seq,
           uint64_t offset, uint64_t count, const void *payload,
           uint32_t len)
{
  struct br_frame_hdr h = {
    .version = BR_WIRE_VERSION, .type = type, .flags = flags,
    .volume = volume, .length = len, .seq = seq, .offset = offset,
    .count = count, .payload_sum = len ? br_wire_checksum (payload, len) : 0,
  };

  assert (stream_len + BR_WIRE_HDR_SIZE + len <= sizeof stream);
  br_wire_encode_hdr (&h, stream + stream_len);
  if (len)
    memcpy (stream + stream_len + BR_WIRE_HDR_SIZE, payload, len);
  stream_len += BR_WIRE_HDR_SIZE + len;
}

/* Write MODE, a split seed and the first LEN bytes of the stream (all of
 * it when LEN is SIZE_MAX); start a new stream. */
static void
write_seed (const char *name, unsigned mode, size_t len)
{
  char path[4096];
  uint8_t prefix[PREFIX] = { (uint8_t) mode, 0x12, 0x34, 0x56 };
  FILE *fp;

  if (len > stream_len)
    len = stream_len;
  snprintf (path, sizeof path, "%s/%s", seed_dir, name);
  fp = fopen (path, "wb");
  if (fp == NULL || fwrite (prefix, 1, PREFIX, fp) != PREFIX ||
      fwrite (stream, 1, len, fp) != len || fclose (fp) != 0) {
    perror (path);
    exit (1);
  }
  stream_len = 0;
}

static void
fill_vol (struct br_wire_vol *v, const char *name, uint64_t size)
{
  memset (v, 0, sizeof *v);
  snprintf (v->name, sizeof v->name, "%s", name);
  v->size = size;
  v->granularity = 65536;
  v->gen = 0x1234;
  v->peer_gen = 0x1200;
  v->owed = 3;
  v->history[0] = 0x1200;
}

int
main (int argc, char **argv)
{
  static struct br_hello hello;
  static struct br_welcome welcome;
  static uint8_t hs[BR_WIRE_HANDSHAKE_MAX];
  uint8_t mac[BR_WIRE_MAC_SIZE], hash[BR_WIRE_HASH_SIZE], data[4096];
  uint8_t seqs[8 * 3], bitmap[16];
  uint64_t seqv[3] = { 7, 9, 12 }, word;
  int n;

  if (argc != 2) {
    fprintf (stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  seed_dir = argv[1];

  hello.proto_min = 1;
  hello.proto_max = BR_WIRE_VERSION;
  strcpy (hello.from, "site-a");
  strcpy (hello.to, "site-b");
  strcpy (hello.group, "db");
  strcpy (hello.origin, "site-a");
  memset (hello.nonce, 0x11, sizeof hello.nonce);
  hello.flags = BR_HELLO_RELAY;
  hello.n_volumes = 2;
  fill_vol (&hello.vols[0], "vol0", 1u << 20);
  fill_vol (&hello.vols[1], "wal0", 1u << 19);

  welcome.proto = BR_WIRE_VERSION;
  welcome.status = BR_WELCOME_OK;
  strcpy (welcome.node, "site-b");
  memset (welcome.nonce, 0x5a, sizeof welcome.nonce);
  welcome.n_volumes = 2;
  fill_vol (&welcome.vols[0], "vol0", 1u << 20);
  fill_vol (&welcome.vols[1], "wal0", 1u << 19);

  memset (mac, 0, sizeof mac);
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t) (i * 7);
  br_wire_region_hash (data, sizeof data, hash);
  br_wire_put_seqs (seqv, 3, seqs);
  word = htole64 (0x5ull);
  memcpy (bitmap, &word, 8);
  word = 0;
  memcpy (bitmap + 8, &word, 8);

  /* The replica's side: a whole session, then each frame alone. */
  n = br_wire_encode_hello (&hello, hs, sizeof hs);
  assert (n > 0);
  add_frame (BR_T_HELLO, 0, 0, 0, 0, 0, hs, n);
  add_frame (BR_T_AUTH, 0, 0, 0, 0, 0, mac, sizeof mac);
  add_frame (BR_T_WRITE, BR_F_FUA, 0, 1, 4096, 0, data, sizeof data);
  add_frame (BR_T_ZERO, BR_F_MAY_TRIM, 1, 2, 0, 65536, NULL, 0);
  add_frame (BR_T_FLUSH, 0, 0, 3, 0, 0, NULL, 0);
  add_frame (BR_T_RESYNC, 0, 0, 4, 0, 0, NULL, 0);
  add_frame (BR_T_HASH, BR_F_RESYNC, 0, 5, 0, 4096, hash, sizeof hash);
  add_frame (BR_T_HASH, BR_F_VERIFY, 1, 6, 8192, 4096, hash, sizeof hash);
  add_frame (BR_T_WRITE, BR_F_RESYNC, 1, 7, 0, 0, data, 512);
  add_frame (BR_T_SYNCED, 0, 0, 8, 0, 0x1235, NULL, 0);
  add_frame (BR_T_PING, 0, 0, 9, 0, 0, NULL, 0);
  write_seed ("replica-session", 0, SIZE_MAX);

  n = br_wire_encode_hello (&hello, hs, sizeof hs);
  add_frame (BR_T_HELLO, 0, 0, 0, 0, 0, hs, n);
  write_seed ("hello", 0, SIZE_MAX);
  n = br_wire_encode_hello (&hello, hs, sizeof hs);
  add_frame (BR_T_HELLO, 0, 0, 0, 0, 0, hs, n);
  write_seed ("hello-truncated", 0, BR_WIRE_HDR_SIZE + 100);
  add_frame (BR_T_AUTH, 0, 0, 0, 0, 0, mac, sizeof mac);
  write_seed ("auth", 0, SIZE_MAX);
  add_frame (BR_T_AUTH, 0, 0, 0, 0, 0, mac, sizeof mac);
  write_seed ("auth-secret", MODE_SECRET, SIZE_MAX);
  add_frame (BR_T_WRITE, 0, 0, 1, 0, 0, data, sizeof data);
  write_seed ("write", MODE_ZEROCOPY, SIZE_MAX);
  add_frame (BR_T_WRITE, 0, 0, 1, 0, 0, data, sizeof data);
  write_seed ("write-truncated", 0, BR_WIRE_HDR_SIZE + 1000);
  add_frame (BR_T_ZERO, BR_F_FUA, 0, 1, 512, 1024, NULL, 0);
  write_seed ("zero", 0, SIZE_MAX);
  add_frame (BR_T_HASH, BR_F_RESYNC, 0, 1, 0, 65536, hash, sizeof hash);
  write_seed ("hash", 0, SIZE_MAX);
  add_frame (BR_T_FLUSH, 0, 0, 1, 0, 0, NULL, 0);
  add_frame (BR_T_SYNCED, 0, 1, 2, 0, 99, NULL, 0);
  add_frame (BR_T_RESYNC, 0, 0, 3, 0, 0, NULL, 0);
  add_frame (BR_T_PING, 0, 0, 4, 0, 0, NULL, 0);
  write_seed ("control-frames", 0, SIZE_MAX);

  /* The peer's side. */
  n = br_wire_encode_welcome (&welcome, hs, sizeof hs);
  assert (n > 0);
  add_frame (BR_T_WELCOME, 0, 0, 0, 0, 0, hs, n);
  add_frame (BR_T_BITMAP, 0, 0, 0, 0, 2, bitmap, 8);
  add_frame (BR_T_BITMAP, BR_F_LAST, 1, 0, 64, 0, bitmap + 8, 8);
  add_frame (BR_T_ACK, 0, 0, 0, 0, 0, NULL, 0);
  add_frame (BR_T_ACK, 0, 0, 5, 0, 3, NULL, 0);
  add_frame (BR_T_DIFFER, 0, 0, 0, 0, 0, seqs, sizeof seqs);
  add_frame (BR_T_PONG, 0, 0, 9, 0, 0, NULL, 0);
  add_frame (BR_T_ERROR, 0, 0, 6, 0, EIO, "disk \x1b[31mfailed\n", 18);
  write_seed ("peer-session", MODE_PEER, SIZE_MAX);

  n = br_wire_encode_welcome (&welcome, hs, sizeof hs);
  add_frame (BR_T_WELCOME, 0, 0, 0, 0, 0, hs, n);
  write_seed ("welcome", MODE_PEER | MODE_ZEROCOPY, SIZE_MAX);
  welcome.status = BR_WELCOME_REFUSED;
  welcome.n_volumes = 0;
  strcpy (welcome.message, "no such group");
  n = br_wire_encode_welcome (&welcome, hs, sizeof hs);
  assert (n > 0);
  add_frame (BR_T_WELCOME, 0, 0, 0, 0, 0, hs, n);
  write_seed ("welcome-refused", MODE_PEER, SIZE_MAX);
  add_frame (BR_T_BITMAP, BR_F_LAST, 0, 0, 0, 0, NULL, 0);
  write_seed ("bitmap-empty-last", MODE_PEER, SIZE_MAX);
  add_frame (BR_T_DIFFER, 0, 0, 0, 0, 0, seqs, 8);
  write_seed ("differ", MODE_PEER, SIZE_MAX);
  add_frame (BR_T_ERROR, 0, 0, 0, 0, ENOSPC, "no space", 8);
  write_seed ("error", MODE_PEER, SIZE_MAX);

  /* Oversized: a WRITE past the handshake bound before AUTH, and a header
   * announcing more than BR_WIRE_MAX_PAYLOAD (checksums fixed up). */
  add_frame (BR_T_WRITE, 0, 0, 1, 0, 0, stream + sizeof stream - 20000,
             20000);
  write_seed ("write-over-handshake-bound", 0, SIZE_MAX);
  add_frame (BR_T_WRITE, 0, 0, 1, 0, 0, NULL, 0);
  put_be32 (stream + 12, BR_WIRE_MAX_PAYLOAD + 1);
  write_seed ("write-too-large", MODE_FIXUP, SIZE_MAX);
  add_frame (BR_T_ERROR, 0, 0, 0, 0, 0, NULL, 0);
  put_be32 (stream + 12, BR_WIRE_MSG_MAX + 1);
  write_seed ("error-too-large", MODE_PEER | MODE_FIXUP, SIZE_MAX);

  /* The raw handshake payloads, for the direct decoder path. */
  welcome.status = BR_WELCOME_OK;
  welcome.n_volumes = 1;
  n = br_wire_encode_welcome (&welcome, stream, sizeof stream);
  stream_len = n;
  write_seed ("raw-welcome", MODE_PEER, SIZE_MAX);
  n = br_wire_encode_hello (&hello, stream, sizeof stream);
  stream_len = n;
  write_seed ("raw-hello", 0, SIZE_MAX);
  return 0;
}
#endif
