/* blockrelay — wire protocol v3 codec (see wire.c and docs/formats.md).
 *
 * Every message is a frame: a fixed 56-byte big-endian header followed by
 * LENGTH bytes of payload.
 *
 *   off size field
 *    0   4   magic        0x42524C59 ("BRLY")
 *    4   1   version      3
 *    5   1   type         enum br_frame_type
 *    6   2   flags        BR_F_*
 *    8   4   volume       index into the handshake's volume list
 *   12   4   length       payload bytes, <= BR_WIRE_MAX_PAYLOAD
 *   16   8   seq          sequence number in the group's stream
 *   24   8   offset       byte offset in the volume
 *   32   8   count        ZERO, HASH: bytes covered; ACK: durable
 *                            watermark
 *   40   8   payload_sum  XXH3-64 of the payload, 0 when length is 0
 *   48   4   header_sum   XXH32 (seed 0) of bytes 0..47
 *   52   4   reserved     must be 0
 *
 * The codec is pure (no I/O, no allocation except in the stream reader) and
 * validates everything it can without knowing the volume: magic, version,
 * type, flags allowed for the type, reserved bits, header checksum, payload
 * length bounds per type, payload checksum, and handshake contents.  The
 * receiver also calls br_wire_check_range() with the volume size (I7).
 */
#ifndef BR_WIRE_H
#define BR_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BR_WIRE_MAGIC 0x42524C59u
#define BR_WIRE_VERSION 5      /* 2: HELLO carries the origin; 3: the
                                  generation views (history, owed) and
                                  HELLO flags, RESYNC; 4: HASH, DIFFER;
                                  5: BITMAP, discard flags */
#define BR_WIRE_HDR_SIZE 56
#define BR_WIRE_MAX_PAYLOAD (32u * 1024 * 1024) /* largest WRITE payload */
#define BR_WIRE_MAX_VOLUMES 64                  /* per handshake */
#define BR_WIRE_NAME_MAX 64                     /* fixed name fields */
#define BR_WIRE_NONCE_SIZE 32
#define BR_WIRE_MAC_SIZE 32
#define BR_WIRE_MSG_MAX 1024                    /* ERROR / refusal text */
#define BR_WIRE_SECTOR 512      /* WRITE / ZERO offset and length alignment */
#define BR_WIRE_MAX_ZERO (1ull << 40)           /* largest ZERO count (1 TiB) */
#define BR_WIRE_HASH_SIZE 16                    /* HASH payload: XXH3-128 */
#define BR_WIRE_DIFFER_MAX 128                  /* seqs in one DIFFER */
#define BR_WIRE_BITMAP_MAX 8192                 /* BITMAP payload bytes */
/* Encoded handshake sizes (layouts in wire.c and docs/formats.md). */
#define BR_WIRE_VOL_SIZE 168                    /* one volume entry */
#define BR_WIRE_HISTORY 8                       /* generations per entry */
#define BR_WIRE_HELLO_SIZE(n) (304 + (size_t) (n) * BR_WIRE_VOL_SIZE)
#define BR_WIRE_WELCOME_SIZE(n) (1160 + (size_t) (n) * BR_WIRE_VOL_SIZE)

enum br_frame_type {
  BR_T_HELLO = 1,   /* client -> server: struct br_hello */
  BR_T_WELCOME = 2, /* server -> client: struct br_welcome */
  BR_T_AUTH = 3,    /* client -> server: MAC over the server nonce */
  BR_T_WRITE = 4,   /* data; flags FUA, RESYNC */
  BR_T_ZERO = 5,    /* no payload; count = bytes; flags FUA, MAY_TRIM, RESYNC */
  BR_T_FLUSH = 6,   /* make everything up to seq durable, then ACK */
  BR_T_ACK = 7,     /* server -> client: seq = applied, count = durable */
  BR_T_ERROR = 8,   /* either way: count = errno, payload = message text */
  BR_T_PING = 9,    /* heartbeat; answered by PONG with the same seq */
  BR_T_PONG = 10,
  BR_T_SYNCED = 11, /* client -> server, in the stream: every region of
                       `volume` is now in sync; count = the generation the
                       replica adopts (it marks itself consistent);
                       nonzero */
  BR_T_RESYNC = 12, /* client -> server, in the stream: a resync of the
                       group starts here; the replica marks every volume
                       inconsistent before it applies what follows */
  BR_T_HASH = 13,   /* client -> server, in the stream: payload = the
                       sender's br_wire_region_hash of [offset, offset +
                       count); the receiver compares its own copy as of
                       this point of the stream; flags RESYNC (checksum
                       resync) or VERIFY */
  BR_T_DIFFER = 14, /* server -> client: payload = 1..BR_WIRE_DIFFER_MAX
                       big-endian u64 seqs of HASH records whose range
                       differs here; always sent before the ACK that
                       covers them */
  BR_T_BITMAP = 15, /* server -> client, after AUTH and before the stream,
                       for each volume whose verdict takes the server's
                       bitmap (verdict.h take_owed): payload = 64-bit
                       little-endian words of the server's bitmap for the
                       client, offset = the region of bit 0 of the first
                       word (a multiple of 64); count = regions set in the
                       payload.  The last BITMAP of the handshake has flag
                       LAST (its payload may be empty); then count = the
                       regions set in all of them for that volume */
};

#define BR_F_FUA      0x0001u
#define BR_F_MAY_TRIM 0x0002u
#define BR_F_RESYNC   0x0004u
#define BR_F_VERIFY   0x0008u    /* HASH: asked by `blockrelay verify` */
#define BR_F_LAST     0x0010u    /* BITMAP: the last one of the handshake */

struct br_frame_hdr {
  uint8_t version;
  uint8_t type;
  uint16_t flags;
  uint32_t volume;
  uint32_t length;
  uint64_t seq;
  uint64_t offset;
  uint64_t count;
  uint64_t payload_sum;
};

/* Encode H into OUT, computing header_sum (and writing magic, reserved).
 * h->version 0 is written as BR_WIRE_VERSION.  The caller sets payload_sum
 * (br_wire_checksum of the payload, or 0 when length is 0). */
void br_wire_encode_hdr (const struct br_frame_hdr *h,
                         uint8_t out[BR_WIRE_HDR_SIZE]);
/* Decode and validate a header.  Returns 0, or -EBADMSG with *REASON set to
 * a static string naming the problem ("bad magic", "header checksum
 * mismatch", "payload too large for type", ...). */
int br_wire_decode_hdr (const uint8_t in[BR_WIRE_HDR_SIZE],
                        struct br_frame_hdr *h, const char **reason);
/* XXH3-64 of BUF. */
uint64_t br_wire_checksum (const void *buf, size_t len);
/* The content hash of a region, as HASH carries it: XXH3-128 of BUF in
 * canonical (big-endian) form. */
void br_wire_region_hash (const void *buf, size_t len,
                          uint8_t out[BR_WIRE_HASH_SIZE]);
/* DIFFER payloads: put N seqs (1 .. BR_WIRE_DIFFER_MAX) into OUT (8 * N
 * bytes); get seq I of a validated payload. */
void br_wire_put_seqs (const uint64_t *seqs, size_t n, uint8_t *out);
uint64_t br_wire_get_seq (const uint8_t *payload, size_t i);
/* Check the payload against h->payload_sum.  0 or -EBADMSG + reason. */
int br_wire_check_payload (const struct br_frame_hdr *h, const void *payload,
                           const char **reason);
/* For WRITE / ZERO / HASH: the byte range is non-empty, does not overflow and
 * lies inside a volume of VOLUME_SIZE (any alignment: NBD clients may
 * write single bytes).  0 or -EBADMSG + reason. */
int br_wire_check_range (const struct br_frame_hdr *h, uint64_t volume_size,
                         const char **reason);

/* ---- Handshake ---- */

struct br_wire_vol {
  char name[BR_WIRE_NAME_MAX];     /* NUL-terminated, non-empty */
  uint64_t size;
  uint32_t granularity;
  uint32_t flags;                  /* BR_SB_* flags of the sender's copy */
  uint64_t gen;                    /* sender's current generation */
  uint64_t peer_gen;               /* generation the sender was last in
                                      sync with the receiver at (its base) */
  uint64_t owed;                   /* regions set in the sender's bitmap
                                      for the receiver */
  uint64_t history[BR_WIRE_HISTORY]; /* sender's earlier generations */
};

/* HELLO flags. */
#define BR_HELLO_ASSUME_CLEAN 0x1u /* a new receiver is taken as in sync */
#define BR_HELLO_RELAY 0x2u        /* the sender forwards another node's
                                      stream (it is not the origin) */
#define BR_HELLO_DISCARD_ZERO 0x4u /* the link's after-split-brain is
                                      discard-zero-changes */
/* Volume entry flags besides the BR_SB_* flags of the sender's copy. */
#define BR_VOL_DISCARD_PEER 0x100u /* the sender's operator discards the
                                      receiver's changes (resolve) */

struct br_hello {                  /* client (upstream) -> server */
  uint16_t proto_min, proto_max;
  char from[BR_WIRE_NAME_MAX];     /* sending node */
  char to[BR_WIRE_NAME_MAX];       /* node it wants to reach */
  char group[BR_WIRE_NAME_MAX];    /* replication group of this connection */
  uint8_t nonce[BR_WIRE_NONCE_SIZE];
  char origin[BR_WIRE_NAME_MAX];   /* node whose writes the stream carries */
  uint32_t flags;                  /* BR_HELLO_* */
  uint32_t n_volumes;              /* 1 .. BR_WIRE_MAX_VOLUMES */
  struct br_wire_vol vols[BR_WIRE_MAX_VOLUMES];
};

enum br_welcome_status {
  BR_WELCOME_OK = 0,
  BR_WELCOME_REFUSED = 1,          /* message says why */
  BR_WELCOME_SPLIT_BRAIN = 2,      /* the histories diverged: no retrying
                                      until an operator chooses a side */
};

struct br_welcome {                /* server -> client */
  uint16_t proto;                  /* chosen version */
  uint16_t status;                 /* enum br_welcome_status */
  char node[BR_WIRE_NAME_MAX];     /* the server's node name */
  uint8_t nonce[BR_WIRE_NONCE_SIZE];
  uint8_t mac[BR_WIRE_MAC_SIZE];   /* HMAC(secret, "server", client nonce,
                                      server nonce); zero without a secret */
  char message[BR_WIRE_MSG_MAX];   /* refusal reason, NUL-terminated */
  uint32_t n_volumes;              /* same order as the HELLO's */
  struct br_wire_vol vols[BR_WIRE_MAX_VOLUMES];
};

/* Encode into BUF of LEN bytes; return the payload size, -ENOSPC, or
 * -EINVAL if M itself would be refused by the decoder. */
int br_wire_encode_hello (const struct br_hello *m, uint8_t *buf, size_t len);
int br_wire_encode_welcome (const struct br_welcome *m, uint8_t *buf,
                            size_t len);
/* Decode and validate (names NUL-terminated and non-empty, counts in range,
 * exact length).  0 or -EBADMSG + reason. */
int br_wire_decode_hello (const uint8_t *buf, size_t len, struct br_hello *m,
                          const char **reason);
int br_wire_decode_welcome (const uint8_t *buf, size_t len,
                            struct br_welcome *m, const char **reason);
/* Upper bound of an encoded HELLO or WELCOME payload. */
#define BR_WIRE_HANDSHAKE_MAX 16384

/* Authentication (libsodium HMAC-SHA-256).  ROLE is "server" or "client";
 * the MAC covers ROLE, then NONCE_A, then NONCE_B. */
void br_wire_auth_mac (const uint8_t *secret, size_t secret_len,
                       const char *role,
                       const uint8_t nonce_a[BR_WIRE_NONCE_SIZE],
                       const uint8_t nonce_b[BR_WIRE_NONCE_SIZE],
                       uint8_t mac[BR_WIRE_MAC_SIZE]);
bool br_wire_auth_verify (const uint8_t *secret, size_t secret_len,
                          const char *role,
                          const uint8_t nonce_a[BR_WIRE_NONCE_SIZE],
                          const uint8_t nonce_b[BR_WIRE_NONCE_SIZE],
                          const uint8_t mac[BR_WIRE_MAC_SIZE]);
void br_wire_random (void *buf, size_t len);

/* ---- Stream reader ---- */

/* Reassembles frames from a byte stream.  Feed it whatever the socket gave;
 * each call consumes bytes up to the end of at most one frame.  Payloads
 * live in a buffer owned by the reader until taken. */
struct br_wire_reader {
  uint8_t hdrbuf[BR_WIRE_HDR_SIZE];
  size_t hdr_have;
  struct br_frame_hdr hdr;         /* valid once hdr_have == HDR_SIZE */
  uint8_t *payload;                /* malloc'd, hdr.length bytes */
  size_t payload_have;
  uint32_t max_payload;            /* if nonzero, a lower payload bound set
                                      by the owner (e.g. until the peer has
                                      authenticated) */
};

void br_wire_reader_init (struct br_wire_reader *r);
void br_wire_reader_reset (struct br_wire_reader *r);   /* frees payload */
/* Consume from DATA/LEN; *USED gets the bytes consumed.  Returns 1 when a
 * complete, validated frame (header and payload checksum) is ready in
 * r->hdr / r->payload, 0 when more bytes are needed (all of LEN consumed),
 * -EBADMSG (+ reason) for a bad frame, -ENOMEM.  After 1, call
 * br_wire_reader_next() (or take the payload) before feeding again (until
 * then feed returns 1 and consumes nothing).  After -EBADMSG the reader
 * stays failed until br_wire_reader_reset(): close the connection. */
int br_wire_reader_feed (struct br_wire_reader *r, const uint8_t *data,
                         size_t len, size_t *used, const char **reason);
/* Zero-copy receiving: when a frame's payload is partly read, the bytes
 * still missing can be received straight into *WHERE; returns how many
 * (0: none pending, receive elsewhere).  Then feed those same bytes (the
 * reader sees they are already in place and does not copy them). */
size_t br_wire_reader_space (struct br_wire_reader *r, uint8_t **where);
/* Take ownership of the payload (may be NULL when length is 0) and get
 * ready for the next frame. */
uint8_t *br_wire_reader_take (struct br_wire_reader *r);
void br_wire_reader_next (struct br_wire_reader *r);

#endif
