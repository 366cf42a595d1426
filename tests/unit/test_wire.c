/* blockrelay — unit tests for the wire protocol v2 codec (src/wire.c). */
#include "wire.h"

#include <check.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

/* ---- Helpers ---- */

/* Deterministic PRNG for the fuzz loops (not crypto). */
static uint64_t
rnd (uint64_t *s)
{
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static void
set32 (uint8_t *p, uint32_t v)
{
  v = htobe32 (v);
  memcpy (p, &v, 4);
}

static void
set64 (uint8_t *p, uint64_t v)
{
  v = htobe64 (v);
  memcpy (p, &v, 8);
}

/* Recompute header_sum after patching raw header bytes. */
static void
rehash (uint8_t *b)
{
  set32 (b + 48, XXH32 (b, 48, 0));
}

/* A valid header of TYPE (payload, if any, is PAYLOAD of its length). */
static struct br_frame_hdr
valid_hdr (uint8_t type, const uint8_t *payload, uint32_t len)
{
  struct br_frame_hdr h = {
    .version = BR_WIRE_VERSION, .type = type, .volume = 3, .seq = 77,
  };

  switch (type) {
  case BR_T_WRITE:
    h.flags = BR_F_FUA | BR_F_RESYNC;
    h.offset = 4096;
    break;
  case BR_T_ZERO:
    h.flags = BR_F_MAY_TRIM;
    h.offset = 8192;
    h.count = 65536;
    break;
  case BR_T_ACK:
    h.count = 70;
    break;
  case BR_T_ERROR:
    h.count = EIO;
    break;
  case BR_T_SYNCED:
    h.count = 0x5eed;             /* a generation: never 0 */
    break;
  case BR_T_HASH:
    h.flags = BR_F_VERIFY;
    h.offset = 65536;
    h.count = 65536;
    break;
  }
  h.length = len;
  h.payload_sum = len ? br_wire_checksum (payload, len) : 0;
  return h;
}

/* Payload length a valid frame of TYPE uses in these tests. */
static uint32_t
test_len (uint8_t type)
{
  switch (type) {
  case BR_T_HELLO: case BR_T_WELCOME: return 100;
  case BR_T_AUTH: return BR_WIRE_MAC_SIZE;
  case BR_T_WRITE: return 1024;
  case BR_T_ERROR: return 20;
  case BR_T_HASH: return BR_WIRE_HASH_SIZE;
  case BR_T_DIFFER: return 24;
  case BR_T_BITMAP: return 16;
  default: return 0;
  }
}

static uint8_t pattern[4096];

static void __attribute__ ((constructor))
init_pattern (void)
{
  for (size_t i = 0; i < sizeof pattern; i++)
    pattern[i] = (uint8_t) (i * 31 + 7);
}

static void
encode_valid (uint8_t type, uint8_t out[BR_WIRE_HDR_SIZE])
{
  struct br_frame_hdr h = valid_hdr (type, pattern, test_len (type));
  br_wire_encode_hdr (&h, out);
}

static void
expect_refused (const uint8_t *b, const char *want)
{
  struct br_frame_hdr h;
  const char *reason = NULL;

  ck_assert_int_eq (br_wire_decode_hdr (b, &h, &reason), -EBADMSG);
  ck_assert_ptr_nonnull (reason);
  ck_assert_str_eq (reason, want);
}

/* Encode H with raw patches applied afterwards by the caller. */
static void
refuse_hdr (const struct br_frame_hdr *h, const char *want)
{
  uint8_t b[BR_WIRE_HDR_SIZE];

  br_wire_encode_hdr (h, b);
  expect_refused (b, want);
}

/* H and PAYLOAD (h->length bytes) encode, decode and check. */
static void
accept_frame (const struct br_frame_hdr *h, const uint8_t *payload)
{
  uint8_t b[BR_WIRE_HDR_SIZE];
  struct br_frame_hdr d;
  const char *reason = NULL;

  br_wire_encode_hdr (h, b);
  ck_assert_int_eq (br_wire_decode_hdr (b, &d, &reason), 0);
  ck_assert_int_eq (br_wire_check_payload (&d, payload, &reason), 0);
}

static void
fill_vol (struct br_wire_vol *v, unsigned i)
{
  memset (v, 0xAA, sizeof *v);  /* garbage after the NUL must not leak */
  snprintf (v->name, sizeof v->name, "vol%u", i);
  v->size = (uint64_t) (i + 1) << 30;
  v->granularity = 65536;
  v->flags = i & 3;
  v->gen = 0x0102030405060708ull + i;
  v->peer_gen = 0x1112131415161718ull + i;
  v->owed = 7 + i;
  for (unsigned k = 0; k < BR_WIRE_HISTORY; k++)
    v->history[k] = k == 5 ? 0 : 0x2100u + 16 * i + k;
}

static void
fill_hello (struct br_hello *m, uint32_t n)
{
  memset (m, 0, sizeof *m);
  m->proto_min = 1;
  m->proto_max = 3;
  strcpy (m->from, "site-a");
  strcpy (m->to, "site-b");
  strcpy (m->group, "db");
  strcpy (m->origin, "site-a");
  m->flags = BR_HELLO_RELAY;
  for (unsigned i = 0; i < BR_WIRE_NONCE_SIZE; i++)
    m->nonce[i] = (uint8_t) (i + 1);
  m->n_volumes = n;
  for (uint32_t i = 0; i < n; i++)
    fill_vol (&m->vols[i], i);
}

static void
fill_welcome (struct br_welcome *m, uint32_t n)
{
  memset (m, 0, sizeof *m);
  m->proto = 1;
  m->status = BR_WELCOME_OK;
  strcpy (m->node, "site-b");
  for (unsigned i = 0; i < BR_WIRE_NONCE_SIZE; i++)
    m->nonce[i] = (uint8_t) (0x80 + i);
  for (unsigned i = 0; i < BR_WIRE_MAC_SIZE; i++)
    m->mac[i] = (uint8_t) (0x40 + i);
  m->n_volumes = n;
  for (uint32_t i = 0; i < n; i++)
    fill_vol (&m->vols[i], i);
}

static void
vols_eq (const struct br_wire_vol *a, const struct br_wire_vol *b)
{
  ck_assert_str_eq (a->name, b->name);
  ck_assert_uint_eq (a->size, b->size);
  ck_assert_uint_eq (a->granularity, b->granularity);
  ck_assert_uint_eq (a->flags, b->flags);
  ck_assert_uint_eq (a->gen, b->gen);
  ck_assert_uint_eq (a->peer_gen, b->peer_gen);
  ck_assert_uint_eq (a->owed, b->owed);
  for (unsigned k = 0; k < BR_WIRE_HISTORY; k++)
    ck_assert_uint_eq (a->history[k], b->history[k]);
}

static uint8_t hs_buf[BR_WIRE_HANDSHAKE_MAX + 16];
#define HV ((size_t) BR_WIRE_HELLO_SIZE (0))   /* HELLO's first volume */

static int
encoded_hello (struct br_hello *m, uint32_t n)
{
  fill_hello (m, n);
  int len = br_wire_encode_hello (m, hs_buf, sizeof hs_buf);
  ck_assert_int_eq (len, (int) BR_WIRE_HELLO_SIZE (n));
  return len;
}

static void
expect_hello_refused (size_t len, const char *want)
{
  static struct br_hello out;
  const char *reason = NULL;

  ck_assert_int_eq (br_wire_decode_hello (hs_buf, len, &out, &reason),
                    -EBADMSG);
  ck_assert_str_eq (reason, want);
}

/* Build a stream of N valid frames (types cycling) into BUF; returns len. */
static size_t
build_stream (uint8_t *buf, unsigned n, uint64_t *seed)
{
  static const uint8_t types[] = { BR_T_WRITE, BR_T_ZERO, BR_T_FLUSH,
                                   BR_T_ACK, BR_T_PING, BR_T_ERROR,
                                   BR_T_AUTH };
  size_t len = 0;

  for (unsigned i = 0; i < n; i++) {
    uint8_t type = types[(seed ? rnd (seed) : i) % sizeof types];
    uint32_t plen = test_len (type);
    const uint8_t *payload = pattern + (i * 512) % 2048;
    struct br_frame_hdr h = valid_hdr (type, payload, plen);

    h.seq = i;
    br_wire_encode_hdr (&h, buf + len);
    len += BR_WIRE_HDR_SIZE;
    memcpy (buf + len, payload, plen);
    len += plen;
  }
  return len;
}

/* ---- Header ---- */

START_TEST (test_hdr_roundtrip)
{
  uint8_t type = (uint8_t) _i;
  uint32_t len = test_len (type);
  struct br_frame_hdr h = valid_hdr (type, pattern, len), d;
  uint8_t b[BR_WIRE_HDR_SIZE];
  const char *reason = NULL;

  h.seq = 0xfedcba9876543210ull;
  h.volume = 0x01020304;
  br_wire_encode_hdr (&h, b);
  ck_assert_uint_eq (b[0], 'B');
  ck_assert_uint_eq (b[3], 'Y');
  ck_assert_uint_eq (b[16], 0xfe);              /* big-endian seq */
  ck_assert_int_eq (br_wire_decode_hdr (b, &d, &reason), 0);
  ck_assert_uint_eq (d.version, BR_WIRE_VERSION);
  ck_assert_uint_eq (d.type, type);
  ck_assert_uint_eq (d.flags, h.flags);
  ck_assert_uint_eq (d.volume, h.volume);
  ck_assert_uint_eq (d.length, len);
  ck_assert_uint_eq (d.seq, h.seq);
  ck_assert_uint_eq (d.offset, h.offset);
  ck_assert_uint_eq (d.count, h.count);
  ck_assert_uint_eq (d.payload_sum, h.payload_sum);
  ck_assert_int_eq (br_wire_check_payload (&d, pattern, &reason), 0);
}
END_TEST

START_TEST (test_hdr_version_zero_means_current)
{
  struct br_frame_hdr h = valid_hdr (BR_T_PING, NULL, 0), d;
  uint8_t b[BR_WIRE_HDR_SIZE];
  const char *reason;

  h.version = 0;
  br_wire_encode_hdr (&h, b);
  ck_assert_int_eq (br_wire_decode_hdr (b, &d, &reason), 0);
  ck_assert_uint_eq (d.version, BR_WIRE_VERSION);
}
END_TEST

START_TEST (test_hdr_bad_magic)
{
  uint8_t b[BR_WIRE_HDR_SIZE];

  encode_valid (BR_T_PING, b);
  b[0] = 'X';
  rehash (b);
  expect_refused (b, "bad magic");
}
END_TEST

START_TEST (test_hdr_bad_version)
{
  struct br_frame_hdr h = valid_hdr (BR_T_PING, NULL, 0);

  h.version = BR_WIRE_VERSION + 1;
  refuse_hdr (&h, "unsupported version");
  h.version = BR_WIRE_VERSION - 1;    /* v1: HELLO without the origin */
  refuse_hdr (&h, "unsupported version");
}
END_TEST

START_TEST (test_hdr_unknown_type)
{
  struct br_frame_hdr h = valid_hdr (BR_T_PING, NULL, 0);

  h.type = 0;
  refuse_hdr (&h, "unknown frame type");
  h.type = BR_T_BITMAP + 1;
  refuse_hdr (&h, "unknown frame type");
  h.type = 255;
  refuse_hdr (&h, "unknown frame type");
}
END_TEST

START_TEST (test_hdr_bad_reserved)
{
  uint8_t b[BR_WIRE_HDR_SIZE];

  encode_valid (BR_T_FLUSH, b);
  b[55] = 1;                    /* reserved is not covered by header_sum */
  expect_refused (b, "reserved field not zero");
}
END_TEST

START_TEST (test_hdr_checksum_mismatch)
{
  uint8_t b[BR_WIRE_HDR_SIZE];

  encode_valid (BR_T_WRITE, b);
  b[20] ^= 0x10;                /* a bit of seq */
  expect_refused (b, "header checksum mismatch");
  encode_valid (BR_T_WRITE, b);
  b[49] ^= 0x01;                /* the checksum itself */
  expect_refused (b, "header checksum mismatch");
}
END_TEST

START_TEST (test_hdr_flags_not_allowed)
{
  struct br_frame_hdr h = valid_hdr (BR_T_WRITE, pattern, 1024);

  h.flags = BR_F_MAY_TRIM;      /* trim makes no sense on WRITE */
  refuse_hdr (&h, "flags not allowed for type");
  h.flags = 0x0008;             /* unknown bit */
  refuse_hdr (&h, "flags not allowed for type");
  h = valid_hdr (BR_T_FLUSH, NULL, 0);
  h.flags = BR_F_FUA;
  refuse_hdr (&h, "flags not allowed for type");
  h = valid_hdr (BR_T_ZERO, NULL, 0);
  h.flags = BR_F_FUA | BR_F_MAY_TRIM | BR_F_RESYNC | 0x8000;
  refuse_hdr (&h, "flags not allowed for type");
}
END_TEST

START_TEST (test_hdr_payload_too_large)
{
  struct br_frame_hdr h = valid_hdr (BR_T_WRITE, pattern, 1024);

  h.length = BR_WIRE_MAX_PAYLOAD + 1;
  refuse_hdr (&h, "payload too large for type");
  h.length = UINT32_MAX;
  refuse_hdr (&h, "payload too large for type");
  h = valid_hdr (BR_T_HELLO, pattern, 100);
  h.length = BR_WIRE_HANDSHAKE_MAX + 1;
  refuse_hdr (&h, "payload too large for type");
  h = valid_hdr (BR_T_ERROR, pattern, 20);
  h.length = BR_WIRE_MSG_MAX + 1;
  refuse_hdr (&h, "payload too large for type");
  h = valid_hdr (BR_T_AUTH, pattern, BR_WIRE_MAC_SIZE);
  h.length = BR_WIRE_MAC_SIZE + 1;
  refuse_hdr (&h, "payload too large for type");
}
END_TEST

START_TEST (test_hdr_max_write_accepted)
{
  struct br_frame_hdr h = valid_hdr (BR_T_WRITE, pattern, 1024), d;
  uint8_t b[BR_WIRE_HDR_SIZE];
  const char *reason;

  h.length = BR_WIRE_MAX_PAYLOAD;
  br_wire_encode_hdr (&h, b);
  ck_assert_int_eq (br_wire_decode_hdr (b, &d, &reason), 0);
}
END_TEST

START_TEST (test_hdr_empty_payload_refused)
{
  static const uint8_t types[] = { BR_T_WRITE, BR_T_HELLO, BR_T_WELCOME,
                                   BR_T_ERROR, BR_T_AUTH };

  for (size_t i = 0; i < sizeof types; i++) {
    struct br_frame_hdr h = valid_hdr (types[i], NULL, 0);
    refuse_hdr (&h, "payload too small for type");
  }
}
END_TEST

START_TEST (test_hdr_short_auth_refused)
{
  struct br_frame_hdr h = valid_hdr (BR_T_AUTH, pattern, BR_WIRE_MAC_SIZE - 1);

  refuse_hdr (&h, "payload too small for type");
}
END_TEST

START_TEST (test_hdr_payload_not_allowed)
{
  static const uint8_t types[] = { BR_T_ZERO, BR_T_FLUSH, BR_T_ACK,
                                   BR_T_PING, BR_T_PONG, BR_T_SYNCED };

  for (size_t i = 0; i < sizeof types; i++) {
    struct br_frame_hdr h = valid_hdr (types[i], pattern, 8);
    refuse_hdr (&h, "payload not allowed for type");
  }
}
END_TEST

START_TEST (test_hdr_sum_without_payload)
{
  struct br_frame_hdr h = valid_hdr (BR_T_ACK, NULL, 0);

  h.payload_sum = 1;
  refuse_hdr (&h, "payload checksum set without payload");
}
END_TEST

START_TEST (test_hdr_zero_count_bounds)
{
  struct br_frame_hdr h = valid_hdr (BR_T_ZERO, NULL, 0), d;
  uint8_t b[BR_WIRE_HDR_SIZE];
  const char *reason;

  h.count = 0;
  refuse_hdr (&h, "zero count is 0");
  h.count = BR_WIRE_MAX_ZERO + 1;
  refuse_hdr (&h, "zero count too large");
  h.count = BR_WIRE_MAX_ZERO;
  br_wire_encode_hdr (&h, b);
  ck_assert_int_eq (br_wire_decode_hdr (b, &d, &reason), 0);
}
END_TEST

START_TEST (test_payload_checksum_mismatch)
{
  uint8_t buf[1024];
  struct br_frame_hdr h = valid_hdr (BR_T_WRITE, pattern, sizeof buf);
  const char *reason = NULL;

  memcpy (buf, pattern, sizeof buf);
  ck_assert_int_eq (br_wire_check_payload (&h, buf, &reason), 0);
  buf[700] ^= 0x80;
  ck_assert_int_eq (br_wire_check_payload (&h, buf, &reason), -EBADMSG);
  ck_assert_str_eq (reason, "payload checksum mismatch");
  ck_assert_int_eq (br_wire_check_payload (&h, NULL, &reason), -EBADMSG);
}
END_TEST

/* ---- Range ---- */

static void
expect_range (uint8_t type, uint64_t offset, uint64_t len, uint64_t size,
              const char *want)
{
  struct br_frame_hdr h = valid_hdr (type, NULL, 0);
  const char *reason = NULL;

  h.offset = offset;
  if (type == BR_T_WRITE)
    h.length = (uint32_t) len;
  else
    h.count = len;
  if (want == NULL)
    ck_assert_int_eq (br_wire_check_range (&h, size, &reason), 0);
  else {
    ck_assert_int_eq (br_wire_check_range (&h, size, &reason), -EBADMSG);
    ck_assert_str_eq (reason, want);
  }
}

START_TEST (test_range_ok)
{
  expect_range (BR_T_WRITE, 0, 4096, 1 << 20, NULL);
  expect_range (BR_T_WRITE, (1 << 20) - 512, 512, 1 << 20, NULL);
  expect_range (BR_T_ZERO, 0, 1 << 20, 1 << 20, NULL);
  expect_range (BR_T_HASH, (1 << 20) - 65536, 65536, 1 << 20, NULL);
}
END_TEST

START_TEST (test_range_unaligned)
{
  /* NBD clients may write at byte granularity: accepted within bounds. */
  expect_range (BR_T_WRITE, 100, 512, 1 << 20, NULL);
  expect_range (BR_T_WRITE, 512, 513, 1 << 20, NULL);
  expect_range (BR_T_ZERO, 1, 512, 1 << 20, NULL);
  expect_range (BR_T_WRITE, (1 << 20) - 1, 2, 1 << 20,
                "range past end of volume");
}
END_TEST

START_TEST (test_range_past_end)
{
  expect_range (BR_T_WRITE, 1 << 20, 512, 1 << 20, "range past end of volume");
  expect_range (BR_T_WRITE, (1 << 20) - 512, 1024, 1 << 20,
                "range past end of volume");
  expect_range (BR_T_ZERO, 0, (1 << 20) + 512, 1 << 20,
                "range past end of volume");
  expect_range (BR_T_HASH, (1 << 20) - 4096, 65536, 1 << 20,
                "range past end of volume");
}
END_TEST

START_TEST (test_range_overflow)
{
  expect_range (BR_T_WRITE, UINT64_MAX - 511, 1024, UINT64_MAX,
                "range overflows");
  expect_range (BR_T_ZERO, UINT64_MAX - 511, 1024, UINT64_MAX,
                "range overflows");
}
END_TEST

START_TEST (test_range_empty)
{
  expect_range (BR_T_ZERO, 0, 0, 1 << 20, "empty range");
}
END_TEST

/* ---- Handshake ---- */

START_TEST (test_hello_roundtrip)
{
  static struct br_hello in, out;
  uint32_t n = _i ? BR_WIRE_MAX_VOLUMES : 1;
  const char *reason = NULL;
  int len = encoded_hello (&in, n);

  ck_assert_int_le (len, BR_WIRE_HANDSHAKE_MAX);
  ck_assert_int_eq (br_wire_decode_hello (hs_buf, len, &out, &reason), 0);
  ck_assert_uint_eq (out.proto_min, 1);
  ck_assert_uint_eq (out.proto_max, 3);
  ck_assert_str_eq (out.from, "site-a");
  ck_assert_str_eq (out.to, "site-b");
  ck_assert_str_eq (out.group, "db");
  ck_assert_str_eq (out.origin, "site-a");
  ck_assert_mem_eq (out.nonce, in.nonce, BR_WIRE_NONCE_SIZE);
  ck_assert_uint_eq (out.n_volumes, n);
  for (uint32_t i = 0; i < n; i++)
    vols_eq (&out.vols[i], &in.vols[i]);
  /* The 0xAA garbage after each name did not reach the wire. */
  ck_assert_uint_eq (hs_buf[HV + 5], 0);
}
END_TEST

START_TEST (test_welcome_roundtrip)
{
  static struct br_welcome in, out;
  uint32_t n = _i ? BR_WIRE_MAX_VOLUMES : 1;
  const char *reason = NULL;
  int len;

  fill_welcome (&in, n);
  strcpy (in.message, "welcome aboard");
  len = br_wire_encode_welcome (&in, hs_buf, sizeof hs_buf);
  ck_assert_int_eq (len, (int) BR_WIRE_WELCOME_SIZE (n));
  ck_assert_int_le (len, BR_WIRE_HANDSHAKE_MAX);
  ck_assert_int_eq (br_wire_decode_welcome (hs_buf, len, &out, &reason), 0);
  ck_assert_uint_eq (out.proto, 1);
  ck_assert_uint_eq (out.status, BR_WELCOME_OK);
  ck_assert_str_eq (out.node, "site-b");
  ck_assert_str_eq (out.message, "welcome aboard");
  ck_assert_mem_eq (out.nonce, in.nonce, BR_WIRE_NONCE_SIZE);
  ck_assert_mem_eq (out.mac, in.mac, BR_WIRE_MAC_SIZE);
  ck_assert_uint_eq (out.n_volumes, n);
  for (uint32_t i = 0; i < n; i++)
    vols_eq (&out.vols[i], &in.vols[i]);
}
END_TEST

START_TEST (test_welcome_refused_without_volumes)
{
  static struct br_welcome in, out;
  const char *reason = NULL;
  int len;

  fill_welcome (&in, 0);
  in.status = BR_WELCOME_REFUSED;
  strcpy (in.message, "unknown group");
  len = br_wire_encode_welcome (&in, hs_buf, sizeof hs_buf);
  ck_assert_int_eq (len, (int) BR_WIRE_WELCOME_SIZE (0));
  ck_assert_int_eq (br_wire_decode_welcome (hs_buf, len, &out, &reason), 0);
  ck_assert_uint_eq (out.status, BR_WELCOME_REFUSED);
  ck_assert_str_eq (out.message, "unknown group");
  /* ... but an OK welcome must list volumes. */
  in.status = BR_WELCOME_OK;
  ck_assert_int_eq (br_wire_encode_welcome (&in, hs_buf, sizeof hs_buf),
                    -EINVAL);
}
END_TEST

START_TEST (test_handshake_encode_nospace)
{
  static struct br_hello h;
  static struct br_welcome w;

  fill_hello (&h, 2);
  ck_assert_int_eq (br_wire_encode_hello (&h, hs_buf,
                                          BR_WIRE_HELLO_SIZE (2) - 1),
                    -ENOSPC);
  fill_welcome (&w, 2);
  ck_assert_int_eq (br_wire_encode_welcome (&w, hs_buf, 100), -ENOSPC);
}
END_TEST

START_TEST (test_handshake_encode_invalid)
{
  static struct br_hello h;

  fill_hello (&h, 1);
  h.n_volumes = BR_WIRE_MAX_VOLUMES + 1;
  ck_assert_int_eq (br_wire_encode_hello (&h, hs_buf, sizeof hs_buf), -EINVAL);
  fill_hello (&h, 1);
  memset (h.to, 'x', sizeof h.to);           /* unterminated */
  ck_assert_int_eq (br_wire_encode_hello (&h, hs_buf, sizeof hs_buf), -EINVAL);
}
END_TEST

START_TEST (test_hello_truncated)
{
  static struct br_hello m;
  int len = encoded_hello (&m, 2);

  expect_hello_refused (len - 1, "handshake length mismatch");
  expect_hello_refused (100, "handshake too short");
  expect_hello_refused (0, "handshake too short");
}
END_TEST

START_TEST (test_hello_oversized)
{
  static struct br_hello m;
  int len = encoded_hello (&m, 2);

  hs_buf[len] = 0;
  expect_hello_refused (len + 1, "handshake length mismatch");
  expect_hello_refused (len + BR_WIRE_VOL_SIZE,
                        "handshake length mismatch");
}
END_TEST

START_TEST (test_hello_bad_volume_count)
{
  static struct br_hello m;
  int len = encoded_hello (&m, 1);

  set32 (hs_buf + 4, 0);
  expect_hello_refused (len, "bad volume count");
  set32 (hs_buf + 4, BR_WIRE_MAX_VOLUMES + 1);
  expect_hello_refused (len, "bad volume count");
  set32 (hs_buf + 4, UINT32_MAX);
  expect_hello_refused (len, "bad volume count");
}
END_TEST

START_TEST (test_hello_unterminated_name)
{
  static struct br_hello m;
  int len = encoded_hello (&m, 1);

  memset (hs_buf + 136, 'g', BR_WIRE_NAME_MAX);     /* group */
  expect_hello_refused (len, "group name not terminated");
  len = encoded_hello (&m, 1);
  memset (hs_buf + 232, 'o', BR_WIRE_NAME_MAX);     /* origin */
  expect_hello_refused (len, "origin name not terminated");
  len = encoded_hello (&m, 1);
  memset (hs_buf + 232, 0, BR_WIRE_NAME_MAX);
  expect_hello_refused (len, "empty origin name");
  len = encoded_hello (&m, 1);
  memset (hs_buf + HV, 'v', BR_WIRE_NAME_MAX);     /* volume 0 name */
  expect_hello_refused (len, "volume name not terminated");
}
END_TEST

START_TEST (test_hello_empty_name)
{
  static struct br_hello m;
  int len = encoded_hello (&m, 1);

  memset (hs_buf + 8, 0, BR_WIRE_NAME_MAX);         /* from */
  expect_hello_refused (len, "empty from name");
  len = encoded_hello (&m, 1);
  memset (hs_buf + 72, 0, BR_WIRE_NAME_MAX);        /* to */
  expect_hello_refused (len, "empty to name");
  len = encoded_hello (&m, 1);
  memset (hs_buf + HV, 0, BR_WIRE_NAME_MAX);       /* volume name */
  expect_hello_refused (len, "empty volume name");
}
END_TEST

START_TEST (test_hello_garbage_after_nul)
{
  static struct br_hello m;
  int len = encoded_hello (&m, 1);

  hs_buf[8 + 40] = 'z';                            /* after "site-a\0" */
  expect_hello_refused (len, "name field not zero padded");
}
END_TEST

START_TEST (test_hello_bad_proto_range)
{
  static struct br_hello m;
  int len = encoded_hello (&m, 1);

  hs_buf[1] = 4;                                   /* min 4 > max 3 */
  expect_hello_refused (len, "bad protocol version range");
  hs_buf[1] = 0;                                   /* min 0 */
  expect_hello_refused (len, "bad protocol version range");
}
END_TEST

START_TEST (test_hello_bad_volume_values)
{
  static struct br_hello m;
  int len = encoded_hello (&m, 2);

  set64 (hs_buf + HV + 64, 1000);                 /* size not sectors */
  expect_hello_refused (len, "bad volume size");
  len = encoded_hello (&m, 2);
  set32 (hs_buf + HV + 72, 0);                    /* granularity 0 */
  expect_hello_refused (len, "bad volume granularity");
  set32 (hs_buf + HV + 72, 65536 + 512);          /* not a power of 2 */
  expect_hello_refused (len, "bad volume granularity");
  len = encoded_hello (&m, 2);
  memcpy (hs_buf + HV + BR_WIRE_VOL_SIZE, "vol0", 4);           /* vol1 -> vol0 */
  expect_hello_refused (len, "duplicate volume name");
}
END_TEST

START_TEST (test_welcome_malformed)
{
  static struct br_welcome in, out;
  const char *reason = NULL;
  int len;

  fill_welcome (&in, 1);
  len = br_wire_encode_welcome (&in, hs_buf, sizeof hs_buf);
  ck_assert_int_gt (len, 0);
  hs_buf[3] = 7;                                   /* status */
  ck_assert_int_eq (br_wire_decode_welcome (hs_buf, len, &out, &reason),
                    -EBADMSG);
  ck_assert_str_eq (reason, "unknown welcome status");
  hs_buf[3] = 0;
  memset (hs_buf + 136, 'm', BR_WIRE_MSG_MAX);     /* message */
  ck_assert_int_eq (br_wire_decode_welcome (hs_buf, len, &out, &reason),
                    -EBADMSG);
  ck_assert_str_eq (reason, "message not terminated");
  memset (hs_buf + 136, 0, BR_WIRE_MSG_MAX);
  memset (hs_buf + 8, 0, BR_WIRE_NAME_MAX);        /* node */
  ck_assert_int_eq (br_wire_decode_welcome (hs_buf, len, &out, &reason),
                    -EBADMSG);
  ck_assert_str_eq (reason, "empty node name");
  ck_assert_int_eq (br_wire_decode_welcome (hs_buf, len - 1, &out, &reason),
                    -EBADMSG);
  ck_assert_str_eq (reason, "handshake length mismatch");
}
END_TEST

/* Random mutations of a valid HELLO never crash, and whatever decodes
 * re-encodes to exactly the same bytes (one canonical encoding). */
START_TEST (test_handshake_garbled)
{
  static struct br_hello m, d;
  static uint8_t again[BR_WIRE_HANDSHAKE_MAX];
  uint64_t seed = 0x5eed1234abcdull;
  int len = encoded_hello (&m, 3), accepted = 0, refused = 0;
  uint8_t orig[BR_WIRE_HELLO_SIZE (3)];

  memcpy (orig, hs_buf, len);
  for (int i = 0; i < 20000; i++) {
    const char *reason = NULL;
    size_t n = len;

    memcpy (hs_buf, orig, len);
    for (int k = 1 + rnd (&seed) % 4; k > 0; k--)
      hs_buf[rnd (&seed) % len] = (uint8_t) rnd (&seed);
    if (rnd (&seed) % 8 == 0)
      n = rnd (&seed) % sizeof hs_buf;
    if (br_wire_decode_hello (hs_buf, n, &d, &reason) == 0) {
      ck_assert_int_eq (br_wire_encode_hello (&d, again, sizeof again),
                        (int) n);
      ck_assert_mem_eq (again, hs_buf, n);
      accepted++;
    }
    else {
      ck_assert_ptr_nonnull (reason);
      refused++;
    }
  }
  ck_assert_int_gt (accepted, 0);
  ck_assert_int_gt (refused, 0);
}
END_TEST

/* ---- Stream reader ---- */

/* Feed BUF in chunks of CHUNK bytes (0: random sizes from SEED) and check
 * the frames built by build_stream (BUF, N, NULL) come out in order. */
static void
read_stream (const uint8_t *buf, size_t len, unsigned n, size_t chunk)
{
  struct br_wire_reader r;
  size_t pos = 0;
  unsigned got = 0;

  br_wire_reader_init (&r);
  while (pos < len) {
    size_t want = chunk < len - pos ? chunk : len - pos, used = 0;
    const char *reason = NULL;
    int ret = br_wire_reader_feed (&r, buf + pos, want, &used, &reason);

    ck_assert_int_ge (ret, 0);
    ck_assert_uint_le (used, want);
    pos += used;
    if (ret == 0)
      ck_assert_uint_eq (used, want);
    else {
      ck_assert_uint_eq (r.hdr.seq, got);
      if (r.hdr.length)
        ck_assert_uint_eq (br_wire_checksum (r.payload, r.hdr.length),
                           r.hdr.payload_sum);
      got++;
      if (got % 2) {
        uint8_t *p = br_wire_reader_take (&r);
        free (p);
      }
      else
        br_wire_reader_next (&r);
    }
  }
  ck_assert_uint_eq (got, n);
  ck_assert_uint_eq (r.hdr_have, 0);
  br_wire_reader_reset (&r);
}

/* Zero-copy receiving: after the header, the reader offers its payload
 * buffer; bytes placed there and fed are taken without a copy, and the
 * frame still has its checksum verified. */
START_TEST (test_reader_space_zero_copy)
{
  uint8_t payload[8192], hdr[BR_WIRE_HDR_SIZE], *where = NULL;
  struct br_wire_reader r;
  struct br_frame_hdr h;
  const char *reason = NULL;
  size_t used, n;

  for (size_t i = 0; i < sizeof payload; i++)
    payload[i] = (uint8_t) (i * 7);
  h = valid_hdr (BR_T_WRITE, payload, sizeof payload);
  br_wire_encode_hdr (&h, hdr);
  br_wire_reader_init (&r);
  ck_assert_uint_eq (br_wire_reader_space (&r, &where), 0);
  ck_assert_int_eq (br_wire_reader_feed (&r, hdr, sizeof hdr, &used,
                                         &reason), 0);
  n = br_wire_reader_space (&r, &where);
  ck_assert_uint_eq (n, sizeof payload);
  memcpy (where, payload, 100);           /* "received" in place */
  ck_assert_int_eq (br_wire_reader_feed (&r, where, 100, &used, &reason), 0);
  ck_assert_uint_eq (br_wire_reader_space (&r, &where), sizeof payload - 100);
  memcpy (where, payload + 100, sizeof payload - 100);
  where[5] ^= 1;                          /* corrupted in place: refused */
  ck_assert_int_eq (br_wire_reader_feed (&r, where, sizeof payload - 100,
                                         &used, &reason), -EBADMSG);
  br_wire_reader_reset (&r);

  br_wire_reader_feed (&r, hdr, sizeof hdr, &used, &reason);
  n = br_wire_reader_space (&r, &where);
  memcpy (where, payload, n);
  ck_assert_int_eq (br_wire_reader_feed (&r, where, n, &used, &reason), 1);
  ck_assert_mem_eq (r.payload, payload, sizeof payload);
  ck_assert_uint_eq (br_wire_reader_space (&r, &where), 0);
  br_wire_reader_reset (&r);
}
END_TEST

START_TEST (test_reader_byte_at_a_time)
{
  static uint8_t buf[64 * 1024];
  size_t len = build_stream (buf, 14, NULL);

  read_stream (buf, len, 14, 1);
}
END_TEST

START_TEST (test_reader_many_frames_one_buffer)
{
  static uint8_t buf[64 * 1024];
  size_t len = build_stream (buf, 14, NULL);

  read_stream (buf, len, 14, len);
}
END_TEST

START_TEST (test_reader_odd_chunks)
{
  static uint8_t buf[64 * 1024];
  size_t len = build_stream (buf, 14, NULL);

  read_stream (buf, len, 14, 57);
  read_stream (buf, len, 14, 1000);
}
END_TEST

START_TEST (test_reader_ready_frame_is_sticky)
{
  uint8_t buf[2 * BR_WIRE_HDR_SIZE];
  struct br_frame_hdr h = valid_hdr (BR_T_PING, NULL, 0);
  struct br_wire_reader r;
  const char *reason;
  size_t used;

  br_wire_encode_hdr (&h, buf);
  br_wire_encode_hdr (&h, buf + BR_WIRE_HDR_SIZE);
  br_wire_reader_init (&r);
  ck_assert_int_eq (br_wire_reader_feed (&r, buf, sizeof buf, &used,
                                         &reason), 1);
  ck_assert_uint_eq (used, BR_WIRE_HDR_SIZE);
  ck_assert_ptr_null (r.payload);
  /* Not released yet: still ready, nothing consumed. */
  ck_assert_int_eq (br_wire_reader_feed (&r, buf + used, sizeof buf - used,
                                         &used, &reason), 1);
  ck_assert_uint_eq (used, 0);
  br_wire_reader_reset (&r);
}
END_TEST

START_TEST (test_reader_bad_header_mid_stream)
{
  static uint8_t buf[64 * 1024];
  size_t len = build_stream (buf, 6, NULL), pos = 0, used;
  struct br_wire_reader r;
  const char *reason = NULL;
  int ret, got = 0;
  size_t third;

  /* Corrupt the third frame's header (offset of frame 2). */
  {
    struct br_wire_reader scan;
    br_wire_reader_init (&scan);
    for (int i = 0; i < 2; i++) {
      ck_assert_int_eq (br_wire_reader_feed (&scan, buf + pos, len - pos,
                                             &used, &reason), 1);
      pos += used;
      br_wire_reader_next (&scan);
    }
    br_wire_reader_reset (&scan);
    third = pos;
  }
  buf[third + 10] ^= 0xff;

  br_wire_reader_init (&r);
  pos = 0;
  while ((ret = br_wire_reader_feed (&r, buf + pos, 7, &used, &reason)) >= 0) {
    pos += used;
    if (ret == 1) {
      got++;
      br_wire_reader_next (&r);
    }
  }
  ck_assert_int_eq (ret, -EBADMSG);
  ck_assert_str_eq (reason, "header checksum mismatch");
  ck_assert_int_eq (got, 2);
  /* The failure is sticky, even across next(). */
  br_wire_reader_next (&r);
  ck_assert_int_eq (br_wire_reader_feed (&r, buf, len, &used, &reason),
                    -EBADMSG);
  ck_assert_uint_eq (used, 0);
  /* reset() revives it. */
  br_wire_reader_reset (&r);
  ck_assert_int_eq (br_wire_reader_feed (&r, buf, len, &used, &reason), 1);
  br_wire_reader_reset (&r);
}
END_TEST

START_TEST (test_reader_payload_checksum_mismatch)
{
  static uint8_t buf[4096];
  size_t len = build_stream (buf, 1, NULL), used;  /* frame 0 is a WRITE */
  struct br_wire_reader r;
  const char *reason = NULL;

  buf[len - 1] ^= 1;
  br_wire_reader_init (&r);
  ck_assert_int_eq (br_wire_reader_feed (&r, buf, len, &used, &reason),
                    -EBADMSG);
  ck_assert_str_eq (reason, "payload checksum mismatch");
  ck_assert_ptr_null (r.payload);
  br_wire_reader_reset (&r);
}
END_TEST

/* Garbage and mutated streams: never crash, never overrun (ASan), and
 * every frame returned passes header and payload validation. */
START_TEST (test_reader_fuzz)
{
  static uint8_t buf[8192];
  uint64_t seed = 0x0123456789abcdefull;
  unsigned frames = 0, refused = 0;

  for (int iter = 0; iter < 100000; iter++) {
    struct br_wire_reader r;
    size_t len, pos = 0;
    int mode = iter % 4;

    if (mode == 0) {                    /* pure garbage */
      len = 1 + rnd (&seed) % 400;
      for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t) rnd (&seed);
    }
    else if (mode == 1) {               /* garbage header that checksums */
      len = BR_WIRE_HDR_SIZE + rnd (&seed) % 200;
      for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t) rnd (&seed);
      set32 (buf, BR_WIRE_MAGIC);
      buf[4] = 1;
      buf[5] = 1 + rnd (&seed) % 10;
      buf[6] = 0;
      buf[7] = rnd (&seed) % 8;
      set32 (buf + 12, rnd (&seed) % 64);
      if (rnd (&seed) % 2)
        memset (buf + 40, 0, 8);
      memset (buf + 52, 0, 4);
      rehash (buf);
    }
    else {                              /* valid stream, then damaged */
      len = build_stream (buf, 1 + rnd (&seed) % 4, &seed);
      if (mode == 2)
        for (int k = 1 + rnd (&seed) % 3; k > 0; k--)
          buf[rnd (&seed) % len] ^= (uint8_t) (1 + rnd (&seed) % 255);
      else
        len = 1 + rnd (&seed) % len;
    }

    br_wire_reader_init (&r);
    while (pos < len) {
      size_t chunk = 1 + rnd (&seed) % 100, used = 0;
      const char *reason = NULL;
      int ret;

      if (chunk > len - pos)
        chunk = len - pos;
      ret = br_wire_reader_feed (&r, buf + pos, chunk, &used, &reason);
      ck_assert_uint_le (used, chunk);
      pos += used;
      if (ret < 0) {
        ck_assert_int_eq (ret, -EBADMSG);
        ck_assert_ptr_nonnull (reason);
        refused++;
        break;
      }
      if (ret == 1) {
        struct br_frame_hdr h;
        ck_assert_int_eq (br_wire_decode_hdr (r.hdrbuf, &h, &reason), 0);
        ck_assert_uint_eq (h.length, r.hdr.length);
        if (r.hdr.length)
          ck_assert_uint_eq (br_wire_checksum (r.payload, r.hdr.length),
                             r.hdr.payload_sum);
        else
          ck_assert_uint_eq (r.hdr.payload_sum, 0);
        frames++;
        br_wire_reader_next (&r);
      }
    }
    br_wire_reader_reset (&r);
  }
  ck_assert_uint_gt (frames, 1000);
  ck_assert_uint_gt (refused, 1000);
}
END_TEST

/* ---- Authentication ---- */

static const uint8_t secret[] = "correct horse battery staple";
static const uint8_t nc[BR_WIRE_NONCE_SIZE] = { 1, 2, 3, 4 };
static const uint8_t ns[BR_WIRE_NONCE_SIZE] = { 9, 8, 7, 6 };

START_TEST (test_auth_right_secret)
{
  uint8_t mac[BR_WIRE_MAC_SIZE], zero[BR_WIRE_MAC_SIZE] = { 0 };

  br_wire_auth_mac (secret, sizeof secret, "server", nc, ns, mac);
  ck_assert_mem_ne (mac, zero, sizeof mac);
  ck_assert (br_wire_auth_verify (secret, sizeof secret, "server", nc, ns,
                                  mac));
}
END_TEST

START_TEST (test_auth_wrong_secret)
{
  static const uint8_t other[] = "correct horse battery stapler";
  uint8_t mac[BR_WIRE_MAC_SIZE];

  br_wire_auth_mac (secret, sizeof secret, "client", ns, nc, mac);
  ck_assert (!br_wire_auth_verify (other, sizeof other, "client", ns, nc,
                                   mac));
  ck_assert (!br_wire_auth_verify (secret, sizeof secret - 1, "client", ns,
                                   nc, mac));
}
END_TEST

START_TEST (test_auth_swapped_nonces)
{
  uint8_t mac[BR_WIRE_MAC_SIZE];

  br_wire_auth_mac (secret, sizeof secret, "server", nc, ns, mac);
  ck_assert (!br_wire_auth_verify (secret, sizeof secret, "server", ns, nc,
                                   mac));
}
END_TEST

START_TEST (test_auth_role_bound)
{
  uint8_t mac[BR_WIRE_MAC_SIZE];

  /* A server MAC cannot be replayed as the client's AUTH. */
  br_wire_auth_mac (secret, sizeof secret, "server", nc, ns, mac);
  ck_assert (!br_wire_auth_verify (secret, sizeof secret, "client", nc, ns,
                                   mac));
}
END_TEST

START_TEST (test_auth_no_secret)
{
  uint8_t mac[BR_WIRE_MAC_SIZE], zero[BR_WIRE_MAC_SIZE] = { 0 };

  memset (mac, 0x55, sizeof mac);
  br_wire_auth_mac (NULL, 0, "server", nc, ns, mac);
  ck_assert_mem_eq (mac, zero, sizeof mac);
  ck_assert (br_wire_auth_verify (NULL, 0, "server", nc, ns, mac));
  /* A node with a secret refuses the all-zero MAC. */
  ck_assert (!br_wire_auth_verify (secret, sizeof secret, "server", nc, ns,
                                   mac));
}
END_TEST

START_TEST (test_random_nonces_differ)
{
  uint8_t a[BR_WIRE_NONCE_SIZE], b[BR_WIRE_NONCE_SIZE];

  br_wire_random (a, sizeof a);
  br_wire_random (b, sizeof b);
  ck_assert_mem_ne (a, b, sizeof a);
}
END_TEST

/* ---- Main ---- */

/* v3: the generation views and flags travel; bad ones are refused. */
START_TEST (test_hello_v3_fields)
{
  static struct br_hello m, out;
  const char *reason = NULL;
  int len = encoded_hello (&m, 2);

  ck_assert_int_eq (br_wire_decode_hello (hs_buf, len, &out, &reason), 0);
  ck_assert_uint_eq (out.flags, BR_HELLO_RELAY);
  len = encoded_hello (&m, 2);
  set32 (hs_buf + 296, 0x8);                       /* unknown flag */
  expect_hello_refused (len, "unknown HELLO flags");
  len = encoded_hello (&m, 2);
  set32 (hs_buf + 300, 1);                         /* reserved */
  expect_hello_refused (len, "reserved field not zero");
  len = encoded_hello (&m, 2);
  set64 (hs_buf + HV + BR_WIRE_VOL_SIZE + 80, 0);  /* vol1 gen 0 */
  expect_hello_refused (len, "volume generation is 0");
}
END_TEST

START_TEST (test_synced_gen_zero_refused)
{
  struct br_frame_hdr h = valid_hdr (BR_T_SYNCED, NULL, 0);

  h.count = 0;
  refuse_hdr (&h, "SYNCED with generation 0");
}
END_TEST

START_TEST (test_resync_marker)
{
  struct br_frame_hdr h = valid_hdr (BR_T_RESYNC, NULL, 0), d;
  uint8_t b[BR_WIRE_HDR_SIZE];
  const char *reason = NULL;

  br_wire_encode_hdr (&h, b);
  ck_assert_int_eq (br_wire_decode_hdr (b, &d, &reason), 0);
  ck_assert_uint_eq (d.type, BR_T_RESYNC);
  h.flags = BR_F_RESYNC;
  refuse_hdr (&h, "flags not allowed for type");
}
END_TEST

/* HASH: a fixed-size payload, a bounded count, exactly one purpose. */
START_TEST (test_hash_frame_rules)
{
  uint8_t sum[BR_WIRE_HASH_SIZE];
  struct br_frame_hdr h;

  br_wire_region_hash (pattern, sizeof pattern, sum);
  h = valid_hdr (BR_T_HASH, sum, sizeof sum);
  h.count = 0;
  refuse_hdr (&h, "hash count out of range");
  h.count = BR_WIRE_MAX_PAYLOAD + 1ull;
  refuse_hdr (&h, "hash count out of range");
  h.count = 65536;
  h.flags = BR_F_RESYNC | BR_F_VERIFY;
  refuse_hdr (&h, "HASH needs exactly one of RESYNC, VERIFY");
  h.flags = 0;
  refuse_hdr (&h, "HASH needs exactly one of RESYNC, VERIFY");
  h.flags = BR_F_FUA;
  refuse_hdr (&h, "flags not allowed for type");
  h = valid_hdr (BR_T_HASH, pattern, 8);
  refuse_hdr (&h, "payload too small for type");
  h = valid_hdr (BR_T_HASH, pattern, 32);
  refuse_hdr (&h, "payload too large for type");
}
END_TEST

/* The region hash is XXH3-128 in canonical form: equal content, equal
 * hash; one changed byte anywhere, another hash. */
START_TEST (test_region_hash)
{
  uint8_t a[BR_WIRE_HASH_SIZE], b[BR_WIRE_HASH_SIZE], buf[4096];

  memcpy (buf, pattern, sizeof buf);
  br_wire_region_hash (pattern, sizeof pattern, a);
  br_wire_region_hash (buf, sizeof buf, b);
  ck_assert_mem_eq (a, b, sizeof a);
  for (size_t i = 0; i < sizeof buf; i += 511) {
    buf[i] ^= 1;
    br_wire_region_hash (buf, sizeof buf, b);
    ck_assert (memcmp (a, b, sizeof a) != 0);
    buf[i] ^= 1;
  }
  br_wire_region_hash (pattern, sizeof pattern - 1, b);
  ck_assert (memcmp (a, b, sizeof a) != 0);
}
END_TEST

/* DIFFER: 1 .. BR_WIRE_DIFFER_MAX seqs, big-endian, whole entries only. */
START_TEST (test_differ_frame)
{
  uint64_t seqs[BR_WIRE_DIFFER_MAX];
  uint8_t buf[8 * BR_WIRE_DIFFER_MAX];
  struct br_frame_hdr h;

  for (size_t i = 0; i < BR_WIRE_DIFFER_MAX; i++)
    seqs[i] = 0x0102030405060708ull + i;
  br_wire_put_seqs (seqs, BR_WIRE_DIFFER_MAX, buf);
  ck_assert_uint_eq (buf[0], 0x01);
  ck_assert_uint_eq (buf[7], 0x08);
  for (size_t i = 0; i < BR_WIRE_DIFFER_MAX; i++)
    ck_assert_uint_eq (br_wire_get_seq (buf, i), seqs[i]);
  h = valid_hdr (BR_T_DIFFER, buf, sizeof buf);
  accept_frame (&h, buf);
  h = valid_hdr (BR_T_DIFFER, buf, 12);
  refuse_hdr (&h, "DIFFER length not a multiple of 8");
  h = valid_hdr (BR_T_DIFFER, buf, sizeof buf);
  h.length = sizeof buf + 8;
  refuse_hdr (&h, "payload too large for type");
  h = valid_hdr (BR_T_DIFFER, NULL, 0);
  refuse_hdr (&h, "payload too small for type");
}
END_TEST

/* BITMAP: whole 64-bit words, from a region that starts a word; empty
 * only as the LAST one. */
START_TEST (test_bitmap_frame)
{
  uint8_t buf[BR_WIRE_BITMAP_MAX + 8];
  struct br_frame_hdr h;

  memset (buf, 0xa5, sizeof buf);
  h = valid_hdr (BR_T_BITMAP, buf, BR_WIRE_BITMAP_MAX);
  h.offset = 128;
  accept_frame (&h, buf);
  h = valid_hdr (BR_T_BITMAP, NULL, 0);
  h.flags = BR_F_LAST;
  accept_frame (&h, NULL);
  h = valid_hdr (BR_T_BITMAP, NULL, 0);
  refuse_hdr (&h, "empty BITMAP that is not the last");
  h = valid_hdr (BR_T_BITMAP, buf, 12);
  refuse_hdr (&h, "BITMAP length not a multiple of 8");
  h = valid_hdr (BR_T_BITMAP, buf, 8);
  h.offset = 65;
  refuse_hdr (&h, "BITMAP offset not a multiple of 64");
  h = valid_hdr (BR_T_BITMAP, buf, BR_WIRE_BITMAP_MAX + 8);
  refuse_hdr (&h, "payload too large for type");
  h = valid_hdr (BR_T_BITMAP, buf, 8);
  h.flags = BR_F_RESYNC;
  refuse_hdr (&h, "flags not allowed for type");
}
END_TEST

static Suite *
wire_suite (void)
{
  Suite *s = suite_create ("wire");
  TCase *tc;

  tc = tcase_create ("header");
  tcase_add_loop_test (tc, test_hdr_roundtrip, BR_T_HELLO, BR_T_BITMAP + 1);
  tcase_add_test (tc, test_bitmap_frame);
  tcase_add_test (tc, test_hash_frame_rules);
  tcase_add_test (tc, test_region_hash);
  tcase_add_test (tc, test_differ_frame);
  tcase_add_test (tc, test_hdr_version_zero_means_current);
  tcase_add_test (tc, test_hdr_bad_magic);
  tcase_add_test (tc, test_hdr_bad_version);
  tcase_add_test (tc, test_hdr_unknown_type);
  tcase_add_test (tc, test_synced_gen_zero_refused);
  tcase_add_test (tc, test_resync_marker);
  tcase_add_test (tc, test_hdr_bad_reserved);
  tcase_add_test (tc, test_hdr_checksum_mismatch);
  tcase_add_test (tc, test_hdr_flags_not_allowed);
  tcase_add_test (tc, test_hdr_payload_too_large);
  tcase_add_test (tc, test_hdr_max_write_accepted);
  tcase_add_test (tc, test_hdr_empty_payload_refused);
  tcase_add_test (tc, test_hdr_short_auth_refused);
  tcase_add_test (tc, test_hdr_payload_not_allowed);
  tcase_add_test (tc, test_hdr_sum_without_payload);
  tcase_add_test (tc, test_hdr_zero_count_bounds);
  tcase_add_test (tc, test_payload_checksum_mismatch);
  suite_add_tcase (s, tc);

  tc = tcase_create ("range");
  tcase_add_test (tc, test_range_ok);
  tcase_add_test (tc, test_range_unaligned);
  tcase_add_test (tc, test_range_past_end);
  tcase_add_test (tc, test_range_overflow);
  tcase_add_test (tc, test_range_empty);
  suite_add_tcase (s, tc);

  tc = tcase_create ("handshake");
  tcase_add_loop_test (tc, test_hello_roundtrip, 0, 2);
  tcase_add_loop_test (tc, test_welcome_roundtrip, 0, 2);
  tcase_add_test (tc, test_welcome_refused_without_volumes);
  tcase_add_test (tc, test_handshake_encode_nospace);
  tcase_add_test (tc, test_handshake_encode_invalid);
  tcase_add_test (tc, test_hello_truncated);
  tcase_add_test (tc, test_hello_oversized);
  tcase_add_test (tc, test_hello_bad_volume_count);
  tcase_add_test (tc, test_hello_unterminated_name);
  tcase_add_test (tc, test_hello_empty_name);
  tcase_add_test (tc, test_hello_garbage_after_nul);
  tcase_add_test (tc, test_hello_bad_proto_range);
  tcase_add_test (tc, test_hello_bad_volume_values);
  tcase_add_test (tc, test_hello_v3_fields);
  tcase_add_test (tc, test_welcome_malformed);
  tcase_add_test (tc, test_handshake_garbled);
  suite_add_tcase (s, tc);

  tc = tcase_create ("reader");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_reader_byte_at_a_time);
  tcase_add_test (tc, test_reader_space_zero_copy);
  tcase_add_test (tc, test_reader_many_frames_one_buffer);
  tcase_add_test (tc, test_reader_odd_chunks);
  tcase_add_test (tc, test_reader_ready_frame_is_sticky);
  tcase_add_test (tc, test_reader_bad_header_mid_stream);
  tcase_add_test (tc, test_reader_payload_checksum_mismatch);
  tcase_add_test (tc, test_reader_fuzz);
  suite_add_tcase (s, tc);

  tc = tcase_create ("auth");
  tcase_add_test (tc, test_auth_right_secret);
  tcase_add_test (tc, test_auth_wrong_secret);
  tcase_add_test (tc, test_auth_swapped_nonces);
  tcase_add_test (tc, test_auth_role_bound);
  tcase_add_test (tc, test_auth_no_secret);
  tcase_add_test (tc, test_random_nonces_differ);
  suite_add_tcase (s, tc);

  return s;
}


int
main (void)
{
  SRunner *sr = srunner_create (wire_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
