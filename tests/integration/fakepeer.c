/* br-fakepeer — a misbehaving replica, to test what an upstream node
 * trusts (P5 in src/peer.c).
 *
 *   br-fakepeer HOST PORT SCENARIO
 *
 * Listens on HOST:PORT, accepts one connection, reads its HELLO and
 * answers as SCENARIO says; then waits for the upstream to close the
 * connection.  Prints what it did and how long the upstream took.
 * Exit status: 0 when the upstream closed the connection within
 * CLOSE_S seconds, 1 when it did not (it trusted the answer), 2 on a
 * usage or socket error.
 *
 * Scenarios (the WELCOME echoes the HELLO's volumes, then one field is
 * wrong):
 *   welcome-wrong-size         the volume is 1 MiB larger
 *   welcome-wrong-granularity  twice the granularity
 *   welcome-wrong-name         another volume name
 *   welcome-wrong-proto        protocol 2 chosen
 *   welcome-wrong-node         the WELCOME names another node
 *   huge-frame                 instead of a WELCOME, a frame header that
 *                              announces a 32 MiB payload (and no payload)
 *   refusal-control-chars      a refusal whose message holds an escape
 *                              sequence and a newline (the upstream must
 *                              log it escaped)
 *
 * BITMAP scenarios (failback, verdict rule 3): the WELCOME says this copy
 * is at the upstream's base generation and owes it OWED regions, so the
 * upstream waits for its BITMAP frames after AUTH; they lie:
 *   bitmap-wrong-count         a frame whose count is not its bits
 *   bitmap-past-end            a frame starting past the volume's end
 *   bitmap-short               frames whose regions add up to less than
 *                              the WELCOME's owed
 *   bitmap-missing             an ACK where a BITMAP must come
 *   bitmap-bits-past-end       a bit set past the volume's last region
 */
#include <endian.h>
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

#define CLOSE_S 2
#define OWED 3

static const char *prog = "br-fakepeer";

static int
listen_on (const char *host, const char *port)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_PASSIVE };
  struct addrinfo *res;
  int fd, one = 1;

  if (getaddrinfo (host, port, &hints, &res) != 0) {
    fprintf (stderr, "%s: cannot resolve %s:%s\n", prog, host, port);
    exit (2);
  }
  fd = socket (res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 ||
      setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind (fd, res->ai_addr, res->ai_addrlen) < 0 || listen (fd, 1) < 0) {
    fprintf (stderr, "%s: listen %s:%s: %s\n", prog, host, port,
             strerror (errno));
    exit (2);
  }
  freeaddrinfo (res);
  printf ("%s: listening on %s:%s\n", prog, host, port);
  fflush (stdout);
  return fd;
}

static void
send_all (int fd, const void *buf, size_t len)
{
  const uint8_t *p = buf;

  while (len > 0) {
    ssize_t n = send (fd, p, len, MSG_NOSIGNAL);
    if (n <= 0)
      return;                   /* the upstream may have closed: fine */
    p += n;
    len -= (size_t) n;
  }
}

/* Read one frame; false on EOF or a bad frame. */
static bool
read_frame (int fd, struct br_wire_reader *r)
{
  static uint8_t buf[65536];

  for (;;) {
    ssize_t n = recv (fd, buf, sizeof buf, 0);
    size_t off = 0, used;
    const char *reason;

    if (n <= 0)
      return false;
    while (off < (size_t) n) {
      int ret = br_wire_reader_feed (r, buf + off, n - off, &used, &reason);
      off += used;
      if (ret < 0)
        return false;
      if (ret == 1)
        return true;            /* a HELLO: nothing follows before us */
    }
  }
}

/* Seconds until the upstream closes (EOF), or -1 after CLOSE_S. */
static double
wait_close (int fd)
{
  struct timeval tv = { .tv_sec = CLOSE_S };
  struct timespec t0, t1;
  uint8_t buf[4096];

  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  clock_gettime (CLOCK_MONOTONIC, &t0);
  for (;;) {
    ssize_t n = recv (fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
      break;
    if (n < 0 && errno == EAGAIN)
      return -1;
  }
  clock_gettime (CLOCK_MONOTONIC, &t1);
  return (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/* One BITMAP frame: WORDS (host order) from region FIRST, COUNT claimed. */
static void
send_bitmap (int fd, uint64_t first, const uint64_t *words, size_t n,
             uint64_t count, bool last)
{
  static uint8_t frame[BR_WIRE_HDR_SIZE + BR_WIRE_BITMAP_MAX];
  struct br_frame_hdr h = { .type = BR_T_BITMAP, .offset = first,
                            .count = count, .length = (uint32_t) (n * 8),
                            .flags = last ? BR_F_LAST : 0 };

  for (size_t i = 0; i < n; i++) {
    uint64_t le = htole64 (words[i]);
    memcpy (frame + BR_WIRE_HDR_SIZE + 8 * i, &le, 8);
  }
  h.payload_sum = n ? br_wire_checksum (frame + BR_WIRE_HDR_SIZE, h.length)
    : 0;
  br_wire_encode_hdr (&h, frame);
  send_all (fd, frame, BR_WIRE_HDR_SIZE + h.length);
}

static void
send_welcome (int fd, const struct br_welcome *w)
{
  static uint8_t frame[BR_WIRE_HDR_SIZE + BR_WIRE_HANDSHAKE_MAX];
  struct br_frame_hdr h = { .type = BR_T_WELCOME };
  int len = br_wire_encode_welcome (w, frame + BR_WIRE_HDR_SIZE,
                                    BR_WIRE_HANDSHAKE_MAX);

  if (len < 0) {
    fprintf (stderr, "%s: cannot encode the WELCOME\n", prog);
    exit (2);
  }
  h.length = (uint32_t) len;
  h.payload_sum = br_wire_checksum (frame + BR_WIRE_HDR_SIZE, len);
  br_wire_encode_hdr (&h, frame);
  send_all (fd, frame, BR_WIRE_HDR_SIZE + len);
}

int
main (int argc, char **argv)
{
  static struct br_hello m;
  static struct br_welcome w;
  struct br_wire_reader r;
  const char *scenario, *reason;
  int lfd, fd;
  double t;

  if (argc != 4) {
    fprintf (stderr, "usage: %s HOST PORT SCENARIO\n", prog);
    return 2;
  }
  scenario = argv[3];
  lfd = listen_on (argv[1], argv[2]);
  fd = accept (lfd, NULL, NULL);
  if (fd < 0) {
    perror ("accept");
    return 2;
  }
  br_wire_reader_init (&r);
  r.max_payload = BR_WIRE_HANDSHAKE_MAX;
  if (!read_frame (fd, &r) || r.hdr.type != BR_T_HELLO ||
      br_wire_decode_hello (r.payload, r.hdr.length, &m, &reason) < 0) {
    fprintf (stderr, "%s: no valid HELLO\n", prog);
    return 2;
  }
  br_wire_reader_reset (&r);
  printf ("%s: HELLO from %s for group %s\n", prog, m.from, m.group);

  w.proto = BR_WIRE_VERSION;
  w.status = BR_WELCOME_OK;
  snprintf (w.node, sizeof w.node, "%s", m.to);
  br_wire_random (w.nonce, sizeof w.nonce);
  w.n_volumes = m.n_volumes;
  memcpy (w.vols, m.vols, sizeof w.vols);
  for (uint32_t i = 0; i < w.n_volumes; i++) {
    w.vols[i].flags = 0;          /* a copy holding data, in sync */
    w.vols[i].peer_gen = w.vols[i].owed = 0;
  }
  if (strcmp (scenario, "welcome-wrong-size") == 0)
    w.vols[0].size += 1 << 20;
  else if (strcmp (scenario, "welcome-wrong-granularity") == 0)
    w.vols[0].granularity *= 2;
  else if (strcmp (scenario, "welcome-wrong-name") == 0)
    snprintf (w.vols[0].name, sizeof w.vols[0].name, "not-%.50s",
              m.vols[0].name);
  else if (strcmp (scenario, "welcome-wrong-proto") == 0)
    w.proto = 2;
  else if (strcmp (scenario, "welcome-wrong-node") == 0)
    snprintf (w.node, sizeof w.node, "not-%.50s", m.to);
  else if (strcmp (scenario, "refusal-control-chars") == 0) {
    w.status = BR_WELCOME_REFUSED;
    w.n_volumes = 0;
    snprintf (w.message, sizeof w.message,
              "EVIL\x1b[31m red\nFORGED LOG LINE\x07");
  }
  else if (strncmp (scenario, "bitmap-", 7) == 0) {
    /* Rule 3: at the upstream's base, owing it regions. */
    uint64_t nregions = m.vols[0].size / m.vols[0].granularity;
    uint64_t word = 0x7, ack_hdr_done = 0;

    if (m.vols[0].peer_gen == 0) {
      fprintf (stderr, "%s: the upstream has no base for us: no rule 3\n",
               prog);
      return 2;
    }
    w.vols[0].gen = m.vols[0].peer_gen;
    w.vols[0].peer_gen = m.vols[0].peer_gen;
    memset (w.vols[0].history, 0, sizeof w.vols[0].history);
    w.vols[0].flags = 0x2;          /* CONSISTENT */
    w.vols[0].owed = OWED;
    send_welcome (fd, &w);
    printf ("%s: sent the WELCOME (at the base, owing %d regions)\n", prog,
            OWED);
    if (strcmp (scenario, "bitmap-wrong-count") == 0)
      send_bitmap (fd, 0, &word, 1, OWED + 1, true);
    else if (strcmp (scenario, "bitmap-past-end") == 0)
      send_bitmap (fd, (nregions + 64) / 64 * 64 + 64, &word, 1, OWED, true);
    else if (strcmp (scenario, "bitmap-short") == 0) {
      word = 0x3;
      send_bitmap (fd, 0, &word, 1, 2, false);
      send_bitmap (fd, 0, NULL, 0, 0, true);
    }
    else if (strcmp (scenario, "bitmap-bits-past-end") == 0) {
      uint64_t last = (nregions - 1) / 64 * 64;

      word = (uint64_t) 1 << 63;
      if (nregions % 64 == 0) {
        fprintf (stderr, "%s: needs a volume whose regions are not a "
                 "multiple of 64\n", prog);
        return 2;
      }
      send_bitmap (fd, last, &word, 1, 1, true);
    }
    else if (strcmp (scenario, "bitmap-missing") == 0) {
      uint8_t hdr[BR_WIRE_HDR_SIZE];
      struct br_frame_hdr h = { .type = BR_T_ACK };

      br_wire_encode_hdr (&h, hdr);
      send_all (fd, hdr, sizeof hdr);
      ack_hdr_done = 1;
    }
    else {
      fprintf (stderr, "%s: unknown scenario %s\n", prog, scenario);
      return 2;
    }
    printf ("%s: sent %s\n", prog, ack_hdr_done ? "an ACK" : "the BITMAP");
    goto wait;
  }
  else if (strcmp (scenario, "huge-frame") == 0) {
    uint8_t hdr[BR_WIRE_HDR_SIZE];
    struct br_frame_hdr h = { .type = BR_T_WRITE, .seq = 1,
                              .length = BR_WIRE_MAX_PAYLOAD,
                              .payload_sum = 1 };
    br_wire_encode_hdr (&h, hdr);
    send_all (fd, hdr, sizeof hdr);
    printf ("%s: sent a header announcing %u payload bytes\n", prog,
            BR_WIRE_MAX_PAYLOAD);
    goto wait;
  }
  else {
    fprintf (stderr, "%s: unknown scenario %s\n", prog, scenario);
    return 2;
  }
  send_welcome (fd, &w);
  printf ("%s: sent the WELCOME (%s)\n", prog, scenario);
 wait:
  fflush (stdout);
  t = wait_close (fd);
  if (t < 0) {
    printf ("%s: FAIL: the upstream did not close within %d s\n", prog,
            CLOSE_S);
    return 1;
  }
  printf ("%s: ok: the upstream closed after %.3f s\n", prog, t);
  return 0;
}
