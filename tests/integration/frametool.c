/* br-frametool — send malformed (or valid) frames to a blockrelayd.
 *
 *   br-frametool HOST PORT SCENARIO [options]
 *
 * Connects to the replica server at HOST:PORT, plays SCENARIO (one class of
 * bad input, see the table below, or "valid") and prints what happened.
 * Exit status: 0 when the server behaved as expected for the scenario (it
 * closed the connection, or sent a refusal; for "valid", it acknowledged
 * the data as durable), 1 when it did not, 2 on a usage or connection error.
 *
 * Frames are built with the engine's own codec (src/wire.h) and then, for
 * the malformed scenarios, damaged byte by byte.  Sockets are blocking with
 * SO_RCVTIMEO / SO_SNDTIMEO of 10 s so that the tool never hangs.
 *
 * Scenarios that need a handshake send HELLO as --from to --to for --group
 * with one volume (--volume, --size, --granularity), read the WELCOME and
 * send an AUTH with a zero MAC (no shared secret configured).
 *
 * Data written by the scenarios (so that a test can check the image):
 *   valid          PATTERN (see fill_pattern) at offset 0, 4096 bytes
 *   truncated      would write 0xEE bytes at 1 MiB        (must not land)
 *   bad-payload-sum would write 0xEE bytes at 2 MiB       (must not land)
 *   seq-backwards  zeros at 3 MiB (seq 10, accepted), then 0xEE bytes
 *                  at 3 MiB (seq 5, must not land)
 *   out-of-range   0xEE bytes straddling the end of the volume
 *   seq-zero       zeros at 4 MiB, twice with seq 0 (must be refused)
 *   bad-volume     would write 0xEE bytes at 5 MiB of volume index 1
 *   write-before-auth would write 0xEE bytes at 6 MiB
 *   zero-out-of-range a ZERO straddling the end of the volume
 * Everything but the valid pattern must therefore leave the image zero.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "wire.h"

#include <xxhash.h>

#define TIMEOUT_S 10
#define BLOCK 4096
#define BAD_BYTE 0xEE

static const char *prog = "br-frametool";
static const char *scenario;

static struct {
  const char *host, *port;
  const char *from, *to, *group, *volume;
  uint64_t size;
  uint32_t granularity;
  uint64_t gen;
  const char *pattern_file;
} opt = {
  .gen = 0x0b5e55ed,
  .from = "a", .to = "b", .group = "vol0", .volume = "vol0",
  .granularity = 64 * 1024,
};

static void __attribute__ ((format (printf, 1, 2)))
say (const char *fmt, ...)
{
  va_list ap;

  printf ("%s: %s: ", prog, scenario);
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  putchar ('\n');
  fflush (stdout);
}

/* The known pattern of the "valid" scenario: not constant, so that a
 * shifted or partial write shows. */
static void
fill_pattern (uint8_t *buf, size_t len)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t) ((i * 7 + (i >> 8) * 13 + 0x5a) & 0xff);
}

/* ---- socket helpers ---- */

static int
connect_server (void)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
  struct addrinfo *res, *ai;
  struct timeval tv = { .tv_sec = TIMEOUT_S };
  int fd = -1, err;

  err = getaddrinfo (opt.host, opt.port, &hints, &res);
  if (err) {
    fprintf (stderr, "%s: %s:%s: %s\n", prog, opt.host, opt.port,
             gai_strerror (err));
    exit (2);
  }
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket (ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                 ai->ai_protocol);
    if (fd < 0)
      continue;
    if (connect (fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    err = errno;
    close (fd);
    fd = -1;
    errno = err;
  }
  freeaddrinfo (res);
  if (fd < 0) {
    fprintf (stderr, "%s: connect %s:%s: %s\n", prog, opt.host, opt.port,
             strerror (errno));
    exit (2);
  }
  if (setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
    perror ("setsockopt");
    exit (2);
  }
  return fd;
}

/* Send all of BUF.  Returns 0, or -errno (EPIPE / ECONNRESET when the
 * server has already closed: not an error for the malformed scenarios). */
static int
send_all (int fd, const void *buf, size_t len)
{
  const uint8_t *p = buf;

  while (len > 0) {
    ssize_t n = send (fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t) n;
  }
  return 0;
}

/* Send a header (H encoded, then damaged by MANGLE if given) and LEN bytes
 * of PAYLOAD. */
static int
send_frame (int fd, const struct br_frame_hdr *h, const void *payload,
            size_t len, void (*mangle) (uint8_t *hdr))
{
  uint8_t hdr[BR_WIRE_HDR_SIZE];
  int err;

  br_wire_encode_hdr (h, hdr);
  if (mangle)
    mangle (hdr);
  err = send_all (fd, hdr, sizeof hdr);
  if (err == 0 && len > 0)
    err = send_all (fd, payload, len);
  if (err)
    say ("send: %s (the server may have closed already)", strerror (-err));
  return err;
}

enum rx { RX_FRAME, RX_CLOSED, RX_TIMEOUT, RX_BADFRAME };

/* Read the next frame into R (caller frees with br_wire_reader_next /
 * take).  Bytes after the frame stay in the tool's buffer. */
static uint8_t rxbuf[65536];
static size_t rx_off, rx_len;

static enum rx
read_frame (int fd, struct br_wire_reader *r)
{
  for (;;) {
    if (rx_off < rx_len) {
      const char *reason = NULL;
      size_t used;
      int ret = br_wire_reader_feed (r, rxbuf + rx_off, rx_len - rx_off,
                                     &used, &reason);
      rx_off += used;
      if (ret == 1)
        return RX_FRAME;
      if (ret < 0) {
        say ("the server sent a bad frame: %s",
             reason ? reason : strerror (-ret));
        return RX_BADFRAME;
      }
    }
    ssize_t n = recv (fd, rxbuf, sizeof rxbuf, 0);
    if (n == 0) {
      say ("server closed the connection (EOF)");
      return RX_CLOSED;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        say ("no answer within %d s", TIMEOUT_S);
        return RX_TIMEOUT;
      }
      say ("server closed the connection (%s)", strerror (errno));
      return RX_CLOSED;
    }
    rx_off = 0;
    rx_len = (size_t) n;
  }
}

/* Print a frame the server sent. */
static void
show_frame (const struct br_wire_reader *r)
{
  const struct br_frame_hdr *h = &r->hdr;

  switch (h->type) {
  case BR_T_ACK:
    say ("got ACK applied=%llu durable=%llu", (unsigned long long) h->seq,
         (unsigned long long) h->count);
    break;
  case BR_T_ERROR:
    say ("got ERROR seq %llu errno %llu: %.*s", (unsigned long long) h->seq,
         (unsigned long long) h->count, (int) h->length,
         (const char *) r->payload);
    break;
  case BR_T_WELCOME: {
    struct br_welcome w;
    const char *reason;
    if (br_wire_decode_welcome (r->payload, h->length, &w, &reason) < 0)
      say ("got an undecodable WELCOME: %s", reason);
    else
      say ("got WELCOME status %u from %s: %s", w.status, w.node,
           w.message[0] ? w.message : "(no message)");
    break;
  }
  default:
    say ("got frame type %u seq %llu", h->type, (unsigned long long) h->seq);
  }
}

/* The server must close the connection, possibly after some frames (ACKs
 * of earlier valid frames, an ERROR, a refusal).  True if it did. */
static bool
expect_close (int fd)
{
  struct br_wire_reader r;
  bool closed = false;

  br_wire_reader_init (&r);
  for (;;) {
    enum rx x = read_frame (fd, &r);
    if (x == RX_FRAME) {
      show_frame (&r);
      br_wire_reader_next (&r);
      continue;
    }
    closed = x == RX_CLOSED;
    break;
  }
  br_wire_reader_reset (&r);
  return closed;
}

/* ---- frames ---- */

static void
make_hello (struct br_hello *m)
{
  memset (m, 0, sizeof *m);
  m->proto_min = BR_WIRE_VERSION;
  m->proto_max = BR_WIRE_VERSION;
  snprintf (m->from, sizeof m->from, "%s", opt.from);
  snprintf (m->to, sizeof m->to, "%s", opt.to);
  snprintf (m->group, sizeof m->group, "%s", opt.group);
  snprintf (m->origin, sizeof m->origin, "%s", opt.from);
  br_wire_random (m->nonce, sizeof m->nonce);
  m->n_volumes = 1;
  snprintf (m->vols[0].name, sizeof m->vols[0].name, "%s", opt.volume);
  m->vols[0].size = opt.size;
  m->vols[0].granularity = opt.granularity;
  m->vols[0].gen = opt.gen;       /* a generation: never 0 on the wire */
}

/* Encode M into BUF; the header into H. */
static size_t
encode_hello (const struct br_hello *m, uint8_t *buf, struct br_frame_hdr *h)
{
  int len = br_wire_encode_hello (m, buf, BR_WIRE_HANDSHAKE_MAX);

  if (len < 0) {
    fprintf (stderr, "%s: cannot encode HELLO: %s (check --size, "
             "--granularity and the names)\n", prog, strerror (-len));
    exit (2);
  }
  memset (h, 0, sizeof *h);
  h->type = BR_T_HELLO;
  h->length = (uint32_t) len;
  h->payload_sum = br_wire_checksum (buf, (size_t) len);
  return (size_t) len;
}

static int
send_hello (int fd, const struct br_hello *m)
{
  static uint8_t buf[BR_WIRE_HANDSHAKE_MAX];
  struct br_frame_hdr h;
  size_t len = encode_hello (m, buf, &h);

  return send_frame (fd, &h, buf, len, NULL);
}

/* Read the WELCOME that answers a HELLO.  Returns 1 for OK, 0 for a
 * refusal (message in W), -1 for anything else. */
static int
read_welcome (int fd, struct br_welcome *w)
{
  struct br_wire_reader r;
  const char *reason;
  int ret = -1;

  br_wire_reader_init (&r);
  if (read_frame (fd, &r) != RX_FRAME)
    goto out;
  if (r.hdr.type != BR_T_WELCOME) {
    show_frame (&r);
    say ("expected a WELCOME");
    goto out;
  }
  if (br_wire_decode_welcome (r.payload, r.hdr.length, w, &reason) < 0) {
    say ("bad WELCOME: %s", reason);
    goto out;
  }
  if (w->status == BR_WELCOME_OK) {
    say ("WELCOME ok from node %s", w->node);
    ret = 1;
  }
  else {
    say ("WELCOME refused by node %s: %s", w->node, w->message);
    ret = 0;
  }
 out:
  br_wire_reader_reset (&r);
  return ret;
}

/* HELLO, WELCOME (must be OK), AUTH with a zero MAC.  Exits 1 if the
 * server refuses: the scenario could not even start. */
static void
handshake (int fd)
{
  struct br_hello m;
  struct br_welcome *w = malloc (sizeof *w);
  uint8_t mac[BR_WIRE_MAC_SIZE] = { 0 };
  struct br_frame_hdr h = { .type = BR_T_AUTH, .length = sizeof mac };

  if (w == NULL)
    abort ();
  make_hello (&m);
  if (send_hello (fd, &m) < 0 || read_welcome (fd, w) != 1) {
    say ("FAIL: handshake did not succeed");
    exit (1);
  }
  free (w);
  h.payload_sum = br_wire_checksum (mac, sizeof mac);
  if (send_frame (fd, &h, mac, sizeof mac, NULL) < 0) {
    say ("FAIL: cannot send AUTH");
    exit (1);
  }
}

static int
send_write (int fd, uint64_t seq, uint64_t offset, const uint8_t *data,
            uint32_t len)
{
  struct br_frame_hdr h = {
    .type = BR_T_WRITE, .seq = seq, .offset = offset, .length = len,
    .payload_sum = br_wire_checksum (data, len),
  };

  return send_frame (fd, &h, data, len, NULL);
}

/* ---- header manglers ---- */

static void
mangle_magic (uint8_t *hdr)
{
  hdr[0] ^= 0xff;               /* header_sum is not recomputed: the magic
                                   must be checked first anyway */
}

static void
mangle_header_sum (uint8_t *hdr)
{
  hdr[48 + 3] ^= 0x01;          /* header_sum field, last byte */
}

/* ---- scenarios ---- */

static int
verdict (bool ok, const char *expected)
{
  say ("%s: %s", ok ? "ok" : "FAIL", expected);
  return ok ? 0 : 1;
}

static int
do_garbage (int fd)
{
  uint8_t buf[BLOCK];

  br_wire_random (buf, sizeof buf);
  if (buf[0] == 0x42)           /* never a valid magic, however unlikely */
    buf[0] = 0x00;
  say ("sending %zu random bytes", sizeof buf);
  send_all (fd, buf, sizeof buf);
  return verdict (expect_close (fd), "server closed the connection");
}

/* A valid HELLO frame sent with header version VERSION (0: the right one)
 * and then damaged by MANGLE (if given). */
static int
do_bad_hello_hdr (int fd, void (*mangle) (uint8_t *), uint8_t version)
{
  static uint8_t buf[BR_WIRE_HANDSHAKE_MAX];
  struct br_hello m;
  struct br_frame_hdr h;
  size_t len;

  make_hello (&m);
  len = encode_hello (&m, buf, &h);
  h.version = version;
  say ("sending a HELLO frame with a damaged header");
  send_frame (fd, &h, buf, len, mangle);
  return verdict (expect_close (fd), "server closed the connection");
}

static int
do_unknown_type (int fd)
{
  struct br_frame_hdr h = { .type = 99, .seq = 1 };

  say ("sending a frame of type 99");
  send_frame (fd, &h, NULL, 0, NULL);
  return verdict (expect_close (fd), "server closed the connection");
}

static int
do_oversized (int fd)
{
  struct br_frame_hdr h = {
    .type = BR_T_WRITE, .seq = 1, .length = BR_WIRE_MAX_PAYLOAD + 1,
    .payload_sum = 1,
  };
  uint8_t some[BLOCK];

  memset (some, BAD_BYTE, sizeof some);
  say ("sending a WRITE header announcing %u bytes (limit %u)", h.length,
       BR_WIRE_MAX_PAYLOAD);
  /* Header plus the start of a payload: the server must not wait for, or
   * allocate, the rest. */
  send_frame (fd, &h, some, sizeof some, NULL);
  return verdict (expect_close (fd), "server closed the connection");
}

static int
do_truncated (int fd)
{
  uint8_t data[BLOCK];
  struct br_frame_hdr h = {
    .type = BR_T_WRITE, .seq = 1, .offset = 1 << 20, .length = sizeof data,
  };
  struct br_hello m;
  struct br_welcome *w;
  int ok;

  handshake (fd);
  memset (data, BAD_BYTE, sizeof data);
  h.payload_sum = br_wire_checksum (data, sizeof data);
  say ("sending a WRITE header for %u bytes, then 100 bytes, then closing",
       h.length);
  send_frame (fd, &h, data, 100, NULL);
  close (fd);

  /* The server must cope: a new connection still gets a WELCOME. */
  fd = connect_server ();
  rx_off = rx_len = 0;
  w = malloc (sizeof *w);
  if (w == NULL)
    abort ();
  make_hello (&m);
  say ("reconnected, sending HELLO");
  ok = send_hello (fd, &m) == 0 && read_welcome (fd, w) == 1;
  free (w);
  close (fd);
  return verdict (ok, "server still answers a HELLO");
}

static int
do_bad_payload_sum (int fd)
{
  uint8_t data[BLOCK];
  struct br_frame_hdr h = {
    .type = BR_T_WRITE, .seq = 1, .offset = 2 << 20, .length = sizeof data,
  };

  handshake (fd);
  memset (data, BAD_BYTE, sizeof data);
  h.payload_sum = br_wire_checksum (data, sizeof data) ^ 1;
  say ("sending a WRITE whose payload checksum is wrong");
  send_frame (fd, &h, data, sizeof data, NULL);
  return verdict (expect_close (fd), "server closed the connection");
}

static int
do_write_before_hello (int fd)
{
  uint8_t data[BLOCK];

  memset (data, BAD_BYTE, sizeof data);
  say ("sending a valid WRITE as the first frame");
  send_write (fd, 1, 0, data, sizeof data);
  return verdict (expect_close (fd), "server closed the connection");
}

/* HELLO changed by FIX; the server must refuse it with a WELCOME.  If
 * WANT1 / WANT2 are given, the message must contain them. */
static int
do_bad_hello (int fd, void (*fix) (struct br_hello *), const char *want1,
              const char *want2)
{
  struct br_hello m;
  struct br_welcome *w = malloc (sizeof *w);
  int r;
  bool ok;

  if (w == NULL)
    abort ();
  make_hello (&m);
  fix (&m);
  say ("sending HELLO from %s to %s for group %s, volume %s of %llu bytes, "
       "granularity %u", m.from, m.to, m.group, m.vols[0].name,
       (unsigned long long) m.vols[0].size, m.vols[0].granularity);
  if (send_hello (fd, &m) < 0) {
    free (w);
    return verdict (false, "a WELCOME with status REFUSED");
  }
  r = read_welcome (fd, w);
  ok = r == 0;
  if (ok) {
    printf ("%s\n", w->message);      /* the refusal, on a line of its own */
    if (want1 && !strstr (w->message, want1)) {
      say ("the message does not name %s", want1);
      ok = false;
    }
    if (want2 && !strstr (w->message, want2)) {
      say ("the message does not name %s", want2);
      ok = false;
    }
    if (!expect_close (fd)) {
      say ("the server did not close after refusing");
      ok = false;
    }
  }
  free (w);
  return verdict (ok, "a WELCOME with status REFUSED");
}

static void
fix_wrong_node (struct br_hello *m)
{
  snprintf (m->to, sizeof m->to, "not-%s", opt.to);
}

static void
fix_unknown_from (struct br_hello *m)
{
  snprintf (m->from, sizeof m->from, "stranger");
}

static void
fix_unknown_group (struct br_hello *m)
{
  snprintf (m->group, sizeof m->group, "no-such-group");
}

static void
fix_wrong_size (struct br_hello *m)
{
  m->vols[0].size += 1 << 20;
}

static void
fix_wrong_granularity (struct br_hello *m)
{
  m->vols[0].granularity *= 2;
}

static int
do_out_of_range (int fd)
{
  uint8_t data[BLOCK];
  uint64_t offset = opt.size - sizeof data / 2;

  handshake (fd);
  memset (data, BAD_BYTE, sizeof data);
  say ("sending a WRITE of %zu bytes at offset %llu (volume has %llu)",
       sizeof data, (unsigned long long) offset,
       (unsigned long long) opt.size);
  send_write (fd, 1, offset, data, sizeof data);
  return verdict (expect_close (fd), "server closed the connection");
}

static int
do_seq_backwards (int fd)
{
  static uint8_t zeros[BLOCK];
  uint8_t data[BLOCK];

  handshake (fd);
  memset (data, BAD_BYTE, sizeof data);
  say ("sending WRITE seq 10 (zeros at 3 MiB), then WRITE seq 5 (0x%02x "
       "bytes at 3 MiB)", BAD_BYTE);
  if (send_write (fd, 10, 3 << 20, zeros, sizeof zeros) == 0)
    send_write (fd, 5, 3 << 20, data, sizeof data);
  return verdict (expect_close (fd), "server closed the connection");
}

/* Sequence numbers start at 1 (the primary's first record is seq 1): a
 * frame with seq 0 must be refused, and so must a repeated seq.  Both
 * writes carry zeros, so that the image stays checkable either way: the
 * verdict comes from the server's behaviour alone. */
static int
do_seq_zero (int fd)
{
  static uint8_t zeros[BLOCK];

  handshake (fd);
  say ("sending WRITE seq 0 (zeros at 4 MiB), then WRITE seq 0 again");
  if (send_write (fd, 0, 4 << 20, zeros, sizeof zeros) == 0)
    send_write (fd, 0, 4 << 20, zeros, sizeof zeros);
  return verdict (expect_close (fd), "server closed the connection");
}

/* A WRITE naming a volume index the handshake did not declare. */
static int
do_bad_volume (int fd)
{
  uint8_t data[BLOCK];
  struct br_frame_hdr h = {
    .type = BR_T_WRITE, .volume = 1, .seq = 1, .offset = 5 << 20,
    .length = sizeof data,
  };

  handshake (fd);
  memset (data, BAD_BYTE, sizeof data);
  h.payload_sum = br_wire_checksum (data, sizeof data);
  say ("sending a WRITE for volume index 1 (the handshake declared 1 "
       "volume)");
  send_frame (fd, &h, data, sizeof data, NULL);
  return verdict (expect_close (fd), "server closed the connection");
}

/* HELLO as the real upstream, WELCOME, then an AUTH that does not know
 * the secret: refused, and (R4) a live session of that upstream must not
 * have been disturbed by the HELLO (the test checks that). */
static int
do_auth_bad_mac (int fd)
{
  uint8_t mac[BR_WIRE_MAC_SIZE];
  struct br_frame_hdr h = { .type = BR_T_AUTH, .length = sizeof mac };
  struct br_hello m;
  struct br_welcome *w = malloc (sizeof *w);

  if (w == NULL)
    abort ();
  make_hello (&m);
  if (send_hello (fd, &m) < 0 || read_welcome (fd, w) != 1) {
    free (w);
    return verdict (false, "handshake");
  }
  free (w);
  br_wire_random (mac, sizeof mac);
  h.payload_sum = br_wire_checksum (mac, sizeof mac);
  say ("sending an AUTH with a MAC that does not know the secret");
  send_frame (fd, &h, mac, sizeof mac, NULL);
  return verdict (expect_close (fd), "server closed the connection");
}

/* A SYNCED record naming generation 0 (no generation): refused. */
static int
do_synced_gen_zero (int fd)
{
  uint8_t hdr[BR_WIRE_HDR_SIZE];
  struct br_frame_hdr h = { .type = BR_T_SYNCED, .seq = 1, .count = 1 };

  handshake (fd);
  say ("sending SYNCED with generation 0");
  /* The codec refuses to decode it; encode it right, then patch the count
   * to 0 and the header checksum with it. */
  br_wire_encode_hdr (&h, hdr);
  memset (hdr + 32, 0, 8);
  {
    uint32_t sum = XXH32 (hdr, 48, 0);
    hdr[48] = sum >> 24; hdr[49] = sum >> 16; hdr[50] = sum >> 8; hdr[51] = sum;
  }
  send_all (fd, hdr, sizeof hdr);
  return verdict (expect_close (fd), "server closed the connection");
}

/* HELLO, WELCOME, then a WRITE instead of the AUTH. */
static int
do_write_before_auth (int fd)
{
  uint8_t data[BLOCK];
  struct br_hello m;
  struct br_welcome *w = malloc (sizeof *w);

  if (w == NULL)
    abort ();
  make_hello (&m);
  if (send_hello (fd, &m) < 0 || read_welcome (fd, w) != 1) {
    free (w);
    return verdict (false, "handshake");
  }
  free (w);
  memset (data, BAD_BYTE, sizeof data);
  say ("sending a WRITE (0x%02x bytes at 6 MiB) instead of AUTH", BAD_BYTE);
  send_write (fd, 1, 6 << 20, data, sizeof data);
  return verdict (expect_close (fd), "server closed the connection");
}

/* A ZERO whose offset + count is past the end of the volume. */
static int
do_zero_out_of_range (int fd)
{
  struct br_frame_hdr h = {
    .type = BR_T_ZERO, .seq = 1, .offset = opt.size - BLOCK,
    .count = 2 * BLOCK,
  };

  handshake (fd);
  say ("sending a ZERO of %llu bytes at offset %llu (volume has %llu)",
       (unsigned long long) h.count, (unsigned long long) h.offset,
       (unsigned long long) opt.size);
  send_frame (fd, &h, NULL, 0, NULL);
  return verdict (expect_close (fd), "server closed the connection");
}

static int
do_valid (int fd)
{
  uint8_t data[BLOCK];
  struct br_frame_hdr flush = { .type = BR_T_FLUSH, .seq = 2 };
  struct br_wire_reader r;
  bool ok = false;

  fill_pattern (data, sizeof data);
  if (opt.pattern_file) {
    FILE *fp = fopen (opt.pattern_file, "wb");
    if (!fp || fwrite (data, 1, sizeof data, fp) != sizeof data ||
        fclose (fp) != 0) {
      perror (opt.pattern_file);
      exit (2);
    }
  }
  handshake (fd);
  say ("sending WRITE seq 1 of %zu bytes at offset 0, FLUSH seq 2",
       sizeof data);
  if (send_write (fd, 1, 0, data, sizeof data) < 0 ||
      send_frame (fd, &flush, NULL, 0, NULL) < 0)
    return verdict (false, "ACK with durable >= 2");

  br_wire_reader_init (&r);
  while (read_frame (fd, &r) == RX_FRAME) {
    show_frame (&r);
    if (r.hdr.type == BR_T_ACK && r.hdr.count >= 2) {
      ok = true;
      break;
    }
    if (r.hdr.type != BR_T_ACK)
      break;
    br_wire_reader_next (&r);
  }
  br_wire_reader_reset (&r);
  return verdict (ok, "ACK with durable >= 2");
}

/* ---- main ---- */

static const char *const scenarios[] = {
  "garbage", "bad-magic", "bad-version", "bad-header-sum", "unknown-type",
  "oversized", "truncated", "bad-payload-sum", "write-before-hello",
  "hello-wrong-node", "hello-unknown-from", "hello-unknown-group",
  "hello-wrong-size", "hello-wrong-granularity", "out-of-range",
  "seq-backwards", "seq-zero", "bad-volume", "write-before-auth",
  "zero-out-of-range", "auth-bad-mac", "synced-gen-zero", "valid", NULL,
};

static int
usage (FILE *fp, int code)
{
  fprintf (fp,
           "usage: %s HOST PORT SCENARIO [options]\n"
           "\n"
           "options:\n"
           "  --from NAME          sending node (default a)\n"
           "  --to NAME            node to reach (default b)\n"
           "  --group NAME         replication group (default vol0)\n"
           "  --volume NAME        the group's single volume (default vol0)\n"
           "  --size SIZE          its size (required by handshake "
           "scenarios)\n"
           "  --granularity SIZE   its granularity (default 64K)\n"
           "  --pattern FILE       valid: also write the data sent to FILE\n"
           "  --gen HEX            the generation the HELLO claims (default 0b5e55ed)\n"
           "\n"
           "scenarios:", prog);
  for (size_t i = 0; scenarios[i]; i++)
    fprintf (fp, "%s%s", i % 6 ? " " : "\n  ", scenarios[i]);
  fprintf (fp, "\n");
  return code;
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "from", required_argument, NULL, 'f' },
    { "to", required_argument, NULL, 't' },
    { "group", required_argument, NULL, 'g' },
    { "volume", required_argument, NULL, 'v' },
    { "size", required_argument, NULL, 's' },
    { "granularity", required_argument, NULL, 'G' },
    { "pattern", required_argument, NULL, 'p' },
    { "gen", required_argument, NULL, 'n' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  uint64_t v;
  int c, fd, rc;
  size_t i;

  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'f': opt.from = optarg; break;
    case 't': opt.to = optarg; break;
    case 'g': opt.group = optarg; break;
    case 'v': opt.volume = optarg; break;
    case 's':
      if (br_parse_size (optarg, &opt.size) < 0 || opt.size == 0) {
        fprintf (stderr, "%s: bad --size '%s'\n", prog, optarg);
        return 2;
      }
      break;
    case 'G':
      if (br_parse_size (optarg, &v) < 0 || v == 0 || v > UINT32_MAX) {
        fprintf (stderr, "%s: bad --granularity '%s'\n", prog, optarg);
        return 2;
      }
      opt.granularity = (uint32_t) v;
      break;
    case 'p': opt.pattern_file = optarg; break;
    case 'n':
      opt.gen = strtoull (optarg, NULL, 16);
      if (opt.gen == 0) {
        fprintf (stderr, "%s: bad --gen '%s' (hex, nonzero)\n", prog, optarg);
        return 2;
      }
      break;
    case 'h': return usage (stdout, 0);
    default: return usage (stderr, 2);
    }
  }
  if (argc - optind != 3)
    return usage (stderr, 2);
  opt.host = argv[optind];
  opt.port = argv[optind + 1];
  scenario = argv[optind + 2];
  for (i = 0; scenarios[i] && strcmp (scenarios[i], scenario) != 0; i++)
    ;
  if (!scenarios[i]) {
    fprintf (stderr, "%s: unknown scenario '%s'\n", prog, scenario);
    return usage (stderr, 2);
  }
  /* Every scenario but the header-level ones builds a valid HELLO. */
  if (opt.size == 0 &&
      strcmp (scenario, "garbage") != 0 &&
      strcmp (scenario, "unknown-type") != 0 &&
      strcmp (scenario, "oversized") != 0 &&
      strcmp (scenario, "write-before-hello") != 0) {
    fprintf (stderr, "%s: scenario %s needs --size\n", prog, scenario);
    return 2;
  }
  signal (SIGPIPE, SIG_IGN);

  fd = connect_server ();
  if (strcmp (scenario, "garbage") == 0)
    rc = do_garbage (fd);
  else if (strcmp (scenario, "bad-magic") == 0)
    rc = do_bad_hello_hdr (fd, mangle_magic, 0);
  else if (strcmp (scenario, "bad-version") == 0)
    rc = do_bad_hello_hdr (fd, NULL, BR_WIRE_VERSION + 1);
  else if (strcmp (scenario, "bad-header-sum") == 0)
    rc = do_bad_hello_hdr (fd, mangle_header_sum, 0);
  else if (strcmp (scenario, "unknown-type") == 0)
    rc = do_unknown_type (fd);
  else if (strcmp (scenario, "oversized") == 0)
    rc = do_oversized (fd);
  else if (strcmp (scenario, "truncated") == 0)
    return do_truncated (fd);   /* closes FD itself */
  else if (strcmp (scenario, "bad-payload-sum") == 0)
    rc = do_bad_payload_sum (fd);
  else if (strcmp (scenario, "write-before-hello") == 0)
    rc = do_write_before_hello (fd);
  else if (strcmp (scenario, "hello-wrong-node") == 0)
    rc = do_bad_hello (fd, fix_wrong_node, NULL, NULL);
  else if (strcmp (scenario, "hello-unknown-from") == 0)
    rc = do_bad_hello (fd, fix_unknown_from, NULL, NULL);
  else if (strcmp (scenario, "hello-unknown-group") == 0)
    rc = do_bad_hello (fd, fix_unknown_group, NULL, NULL);
  else if (strcmp (scenario, "hello-wrong-size") == 0) {
    char here[32], there[32];
    snprintf (here, sizeof here, "%llu", (unsigned long long) opt.size);
    snprintf (there, sizeof there, "%llu",
              (unsigned long long) opt.size + (1 << 20));
    rc = do_bad_hello (fd, fix_wrong_size, here, there);
  }
  else if (strcmp (scenario, "hello-wrong-granularity") == 0)
    rc = do_bad_hello (fd, fix_wrong_granularity, NULL, NULL);
  else if (strcmp (scenario, "out-of-range") == 0)
    rc = do_out_of_range (fd);
  else if (strcmp (scenario, "seq-backwards") == 0)
    rc = do_seq_backwards (fd);
  else if (strcmp (scenario, "seq-zero") == 0)
    rc = do_seq_zero (fd);
  else if (strcmp (scenario, "bad-volume") == 0)
    rc = do_bad_volume (fd);
  else if (strcmp (scenario, "write-before-auth") == 0)
    rc = do_write_before_auth (fd);
  else if (strcmp (scenario, "auth-bad-mac") == 0)
    rc = do_auth_bad_mac (fd);
  else if (strcmp (scenario, "synced-gen-zero") == 0)
    rc = do_synced_gen_zero (fd);
  else if (strcmp (scenario, "zero-out-of-range") == 0)
    rc = do_zero_out_of_range (fd);
  else
    rc = do_valid (fd);
  close (fd);
  return rc;
}
