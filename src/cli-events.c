/* blockrelay — the CLI's event stream.
 *
 *   blockrelay events [--now] [--count N] [--timeout SECS]
 *                     (--config FILE --node NAME | --socket PATH [--node
 *                     NAME])
 *
 * Sends {"cmd":"events"} (with "now": true for --now) to the node's
 * control socket and copies every line the node writes to stdout as it
 * arrives, one JSON object a line, flushed line by line (events.c writes
 * them: peer-state, resync-progress, verify-progress, verify-done, error;
 * with --now first the current state of every peer and now-done).  The
 * node's first line, its answer, is not printed: a refusal is printed on
 * stderr, and with --node a socket that answers for another node is an
 * error.
 *
 * Exit status: 0 when the node ends the stream cleanly (its "end" line:
 * it is shutting down), after --count lines or at --timeout; 1 when the
 * node goes away without an "end" (killed, or the connection broke), when
 * it dropped this stream because it was read too slowly ("overflow"), or
 * when stdout cannot be written; 2 for usage errors, a node that cannot
 * be reached or refuses.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define LINE_MAX_BYTES (1u << 20)   /* a node's line is far shorter */

static double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A connected socket to PATH, with the request sent; -1 after a message. */
static int
open_stream (const char *path, bool now)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  json_t *req = json_pack ("{s:s, s:b}", "cmd", "events", "now", now);
  char *line = req ? json_dumps (req, JSON_COMPACT) : NULL;
  size_t len = line ? strlen (line) : 0;
  int fd = -1;

  json_decref (req);
  if (line == NULL) {
    fprintf (stderr, "blockrelay events: out of memory\n");
    return -1;
  }
  if (strlen (path) >= sizeof sa.sun_path) {
    fprintf (stderr, "blockrelay: socket path too long: %s\n", path);
    goto fail;
  }
  strcpy (sa.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
    fprintf (stderr, "blockrelay: cannot reach %s: %s (is the node "
             "running?)\n", path, strerror (errno));
    goto fail;
  }
  line[len++] = '\n';           /* json_dumps' NUL */
  if (send (fd, line, len, MSG_NOSIGNAL) != (ssize_t) len) {
    fprintf (stderr, "blockrelay: %s: %s\n", path, strerror (errno));
    goto fail;
  }
  free (line);
  return fd;

 fail:
  if (fd >= 0)
    close (fd);
  free (line);
  return -1;
}

/* The node's answer (its first line): 0 if it subscribed us, else 2 after
 * a message. */
static int
check_answer (const char *sock, const char *node, const char *line)
{
  json_error_t jerr;
  json_t *a = json_loads (line, 0, &jerr);
  const char *who = json_string_value (json_object_get (a, "node"));
  int rc = 2;

  if (a == NULL)
    fprintf (stderr, "blockrelay: bad answer from %s: %s\n", sock,
             jerr.text);
  else if (!json_is_true (json_object_get (a, "ok")))
    fprintf (stderr, "blockrelay events: %s\n",
             json_string_value (json_object_get (a, "error")));
  else if (who == NULL)
    fprintf (stderr, "blockrelay events: %s answered without a node name "
             "(an older version?)\n", sock);
  else if (node && strcmp (who, node) != 0)
    fprintf (stderr, "blockrelay events: %s answers for node '%s', not "
             "'%s'\n", sock, who, node);
  else
    rc = 0;
  json_decref (a);
  return rc;
}

/* The "type" of the event LINE, or "" when it has none. */
static const char *
line_type (const char *line, char *buf, size_t len)
{
  json_t *o = json_loads (line, 0, NULL);
  const char *t = json_string_value (json_object_get (o, "type"));

  snprintf (buf, len, "%s", t ? t : "");
  json_decref (o);
  return buf;
}

/* Copy the stream on FD to stdout; the exit status. */
static int
follow (int fd, const char *sock, const char *node, long count,
        double timeout)
{
  double deadline = timeout > 0 ? now_s () + timeout : 0;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  bool answered = false, ended = false, overflowed = false;
  long printed = 0;
  int rc = -1;

  while (rc < 0) {
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int ms = -1;
    ssize_t n;
    char *nl, *start;

    if (deadline) {
      double left = deadline - now_s ();
      if (left <= 0) {
        rc = 0;                         /* --timeout */
        break;
      }
      ms = (int) (left * 1000) + 1;
    }
    n = poll (&pfd, 1, ms);
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0)
      continue;                         /* the deadline, checked above */
    if (cap - len < 65536) {
      char *nb = cap + 65536 > LINE_MAX_BYTES + 65536 ? NULL
                 : realloc (buf, cap + 65536);
      if (nb == NULL) {
        fprintf (stderr, "blockrelay events: a line from %s is too long\n",
                 sock);
        rc = 1;
        break;
      }
      buf = nb;
      cap += 65536;
    }
    n = read (fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (!answered) {
        fprintf (stderr, "blockrelay events: %s closed the connection "
                 "without an answer\n", sock);
        rc = 2;
      }
      else if (ended && len == 0)
        rc = 0;
      else if (overflowed) {
        fprintf (stderr, "blockrelay events: this reader was too slow: the "
                 "node dropped the stream (overflow); events were lost\n");
        rc = 1;
      }
      else {
        fprintf (stderr, "blockrelay events: the node at %s went away%s%s\n",
                 sock, n < 0 ? ": " : "", n < 0 ? strerror (errno) : "");
        rc = 1;
      }
      break;
    }
    len += n;
    buf[len] = '\0';
    start = buf;
    while (rc < 0 && (nl = memchr (start, '\n', len - (start - buf)))) {
      char type[32];

      *nl = '\0';
      if (!answered) {
        if ((rc = check_answer (sock, node, start)) != 0)
          break;
        rc = -1;
        answered = true;
      }
      else {
        line_type (start, type, sizeof type);
        ended |= strcmp (type, "end") == 0;
        overflowed |= strcmp (type, "overflow") == 0;
        if (printf ("%s\n", start) < 0 || fflush (stdout) == EOF) {
          rc = 1;                       /* the reader went away */
          break;
        }
        if (count && ++printed >= count)
          rc = 0;
      }
      start = nl + 1;
    }
    memmove (buf, start, len - (start - buf));
    len -= start - buf;
  }
  free (buf);
  return rc;
}

int
cli_events (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "node", required_argument, NULL, 'n' },
    { "socket", required_argument, NULL, 's' },
    { "now", no_argument, NULL, 'o' },
    { "count", required_argument, NULL, 'N' },
    { "timeout", required_argument, NULL, 't' },
    { NULL, 0, NULL, 0 },
  };
  const char *config = NULL, *node = NULL, *sock = NULL;
  struct br_config *cfg = NULL;
  bool now = false;
  double timeout = 0;
  long count = 0;
  char *end;
  int c, fd, rc;

  while ((c = getopt_long (argc, argv, "c:n:s:N:t:", longopts, NULL)) != -1)
    switch (c) {
    case 'c': config = optarg; break;
    case 'n': node = optarg; break;
    case 's': sock = optarg; break;
    case 'o': now = true; break;
    case 'N':
      count = strtol (optarg, &end, 10);
      if (end == optarg || *end || count < 1) {
        fprintf (stderr, "blockrelay events: --count '%s' is not a positive "
                 "number\n", optarg);
        return 2;
      }
      break;
    case 't':
      timeout = strtod (optarg, &end);
      if (end == optarg || *end || !(timeout > 0 && timeout <= 86400 * 366)) {
        fprintf (stderr, "blockrelay events: --timeout '%s' is not a "
                 "positive number of seconds\n", optarg);
        return 2;
      }
      break;
    default: return cli_usage (stderr, 2);
    }
  if (optind != argc) {
    fprintf (stderr, "blockrelay events: unexpected argument '%s'\n",
             argv[optind]);
    return 2;
  }
  if (!sock && (sock = cli_node_socket (config, node, &cfg)) == NULL)
    return 2;
  signal (SIGPIPE, SIG_IGN);            /* a closed stdout: EPIPE, exit 1 */
  setvbuf (stdout, NULL, _IOLBF, 0);
  fd = open_stream (sock, now);
  if (fd < 0)
    rc = 2;
  else {
    rc = follow (fd, sock, node, count, timeout);
    close (fd);
  }
  br_config_free (cfg);
  return rc;
}
