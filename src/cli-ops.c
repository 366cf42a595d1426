/* blockrelay — the CLI's commands that act on a peer's copy: verify and
 * resync.
 *
 *   blockrelay verify VOLUME --peer NODE [--repair]
 *                     (--config FILE --node NAME | --socket PATH)
 *   blockrelay resync --peer NODE [--group G] [--checksum]
 *                     (--config FILE --node NAME | --socket PATH)
 *
 * verify starts a job on the node upstream of NODE ("verify"), then polls
 * its progress ("verify-status": the control socket is the readiness
 * signal) until it is done: a progress bar on a terminal, a plain line
 * about once a second otherwise, both on stderr; the result on stdout.
 * Exit status 0: identical, 1: regions differ, 2: an error (the job could
 * not start, failed, or the node went away).
 *
 * resync marks every region of the peer's groups out of sync and resyncs
 * them; --checksum sends hashes first, and data only where they differ.
 * pause and resume ask the node to stop replicating to a downstream peer
 * (the peer's state becomes "paused": no connection, writes tracked in its
 * bitmap) and to start again (it reconnects and resyncs what changed).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define POLL_MS 100
#define LINE_EVERY_MS 1000

static int64_t
jint (json_t *o, const char *key)
{
  return json_integer_value (json_object_get (o, key));
}

static const char *
jstr (json_t *o, const char *key)
{
  const char *s = json_string_value (json_object_get (o, key));
  return s ? s : "";
}

static uint64_t
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One progress report of status ST: a bar redrawn in place on a terminal,
 * else a line. */
static void
progress (json_t *st, bool tty, bool last)
{
  int64_t total = jint (st, "regions");
  int64_t done = jint (st, "compared") + jint (st, "skipped");
  int64_t ms = jint (st, "elapsed_ms");
  double pct = total ? 100.0 * done / total : 100;

  if (tty) {
    char bar[64];
    double rate = ms ? done * (double) jint (st, "granularity") * 1000 / ms
                     : 0;

    cli_bar (bar, sizeof bar, pct / 100);
    fprintf (stderr, "\r%s %lld/%lld regions, %.1f MiB/s", bar,
             (long long) done, (long long) total, rate / (1 << 20));
    if (rate > 0 && done < total)
      fprintf (stderr, ", ETA %.0fs  ",
               (total - done) * (double) jint (st, "granularity") / rate);
    else
      fprintf (stderr, "            ");
    if (last)
      fputc ('\n', stderr);
  }
  else
    fprintf (stderr, "verify %s on %s: %lld/%lld regions\n",
             jstr (st, "volume"), jstr (st, "peer"), (long long) done,
             (long long) total);
}

/* The result of a finished job on stdout; the exit status. */
static int
report (json_t *st)
{
  int64_t differ = jint (st, "differ");
  json_t *r;
  size_t i;

  if (differ == 0)
    printf ("%s on %s: identical (%lld regions compared, %lld skipped as "
            "dirty)\n", jstr (st, "volume"), jstr (st, "peer"),
            (long long) jint (st, "compared"),
            (long long) jint (st, "skipped"));
  else
    printf ("%s on %s: %lld regions differ (%lld regions compared, %lld "
            "skipped as dirty)\n", jstr (st, "volume"), jstr (st, "peer"),
            (long long) differ, (long long) jint (st, "compared"),
            (long long) jint (st, "skipped"));
  json_array_foreach (json_object_get (st, "ranges"), i, r)
    printf ("differ %lld %lld\n",
            (long long) json_integer_value (json_array_get (r, 0)),
            (long long) json_integer_value (json_array_get (r, 1)));
  if (differ && json_is_true (json_object_get (st, "repaired")))
    printf ("repair: %lld regions marked out of sync for %s; resync "
            "started\n", (long long) differ, jstr (st, "peer"));
  else if (differ && json_is_true (json_object_get (st, "repair"))) {
    fprintf (stderr, "blockrelay verify: the repair could not start: %s\n",
             jstr (st, "error"));
    return 2;
  }
  return differ ? 1 : 0;
}

/* Poll the job on SOCK until it is no longer running; its exit status. */
static int
follow (const char *sock, const char *vol, const char *peer)
{
  bool tty = isatty (STDERR_FILENO);
  uint64_t last_line = 0;
  struct timespec nap = { 0, POLL_MS * 1000000L };

  for (;;) {
    json_t *req = json_pack ("{s:s, s:s, s:s}", "cmd", "verify-status",
                             "volume", vol, "peer", peer);
    json_t *st = req ? cli_ask_json (sock, req, false) : NULL;
    const char *state;
    int rc;

    json_decref (req);
    if (st == NULL) {
      fprintf (stderr, "blockrelay verify: lost the node while verifying\n");
      return 2;
    }
    if (!json_is_true (json_object_get (st, "ok"))) {
      fprintf (stderr, "blockrelay verify: %s\n", jstr (st, "error"));
      json_decref (st);
      return 2;
    }
    state = jstr (st, "state");
    if (strcmp (state, "running") == 0) {
      if (tty || now_ms () - last_line >= LINE_EVERY_MS) {
        progress (st, tty, false);
        last_line = now_ms ();
      }
      json_decref (st);
      nanosleep (&nap, NULL);   /* polling the control socket */
      continue;
    }
    if (strcmp (state, "done") == 0) {
      progress (st, tty, true);
      rc = report (st);
    }
    else {
      if (tty)
        fputc ('\n', stderr);
      fprintf (stderr, "blockrelay verify: %s\n",
               strcmp (state, "failed") == 0 ? jstr (st, "error")
               : "the verify was replaced by another one");
      rc = 2;
    }
    json_decref (st);
    return rc;
  }
}

int
cli_verify (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "node", required_argument, NULL, 'n' },
    { "socket", required_argument, NULL, 's' },
    { "peer", required_argument, NULL, 'p' },
    { "repair", no_argument, NULL, 'r' },
    { NULL, 0, NULL, 0 },
  };
  const char *config = NULL, *node = NULL, *sock = NULL, *peer = NULL;
  const char *vol = NULL;
  struct br_config *cfg = NULL;
  bool repair = false;
  json_t *req, *reply;
  int c, rc;

  while ((c = getopt_long (argc, argv, "c:n:s:p:r", longopts, NULL)) != -1)
    switch (c) {
    case 'c': config = optarg; break;
    case 'n': node = optarg; break;
    case 's': sock = optarg; break;
    case 'p': peer = optarg; break;
    case 'r': repair = true; break;
    default: return cli_usage (stderr, 2);
    }
  if (optind < argc)
    vol = argv[optind++];
  if (optind != argc) {
    fprintf (stderr, "blockrelay verify: unexpected argument '%s'\n",
             argv[optind]);
    return 2;
  }
  if (!vol) {
    fprintf (stderr, "blockrelay verify: give the VOLUME to verify\n");
    return 2;
  }
  if (!peer) {
    fprintf (stderr, "blockrelay verify: give --peer NODE\n");
    return 2;
  }
  if (!sock && (sock = cli_node_socket (config, node, &cfg)) == NULL)
    return 2;
  req = json_pack ("{s:s, s:s, s:s, s:b}", "cmd", "verify", "volume", vol,
                   "peer", peer, "repair", repair);
  reply = req ? cli_ask_json (sock, req, false) : NULL;
  json_decref (req);
  if (reply == NULL)
    rc = 2;
  else if (!json_is_true (json_object_get (reply, "ok"))) {
    fprintf (stderr, "blockrelay verify: %s\n", jstr (reply, "error"));
    rc = 2;
  }
  else
    rc = follow (sock, vol, peer);
  json_decref (reply);
  br_config_free (cfg);
  return rc;
}

/* blockrelay pause|resume|resync --peer NODE [--group G] [--checksum]
 * (--config F --node N | --socket PATH): the node acts on its peer NODE in
 * every group (or G), all or nothing. */
int
cli_peer_command (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "node", required_argument, NULL, 'n' },
    { "socket", required_argument, NULL, 's' },
    { "peer", required_argument, NULL, 'p' },
    { "group", required_argument, NULL, 'g' },
    { "checksum", no_argument, NULL, 'k' },
    { NULL, 0, NULL, 0 },
  };
  const char *verb = argv[0], *config = NULL, *node = NULL, *sock = NULL;
  const char *peer = NULL, *group = NULL;
  bool resync = strcmp (verb, "resync") == 0, checksum = false;
  struct br_config *cfg = NULL;
  json_t *req, *reply, *p;
  size_t i;
  int c, rc = 0;

  while ((c = getopt_long (argc, argv, "c:n:s:p:g:k", longopts, NULL)) != -1)
    switch (c) {
    case 'c': config = optarg; break;
    case 'n': node = optarg; break;
    case 's': sock = optarg; break;
    case 'p': peer = optarg; break;
    case 'g': group = optarg; break;
    case 'k': checksum = true; break;
    default: return cli_usage (stderr, 2);
    }
  if (checksum && !resync) {
    fprintf (stderr, "blockrelay %s: --checksum is an option of resync\n",
             verb);
    return 2;
  }
  if (!peer || optind != argc) {
    fprintf (stderr, "blockrelay %s: give --peer NODE\n", verb);
    return 2;
  }
  if (!sock && (sock = cli_node_socket (config, node, &cfg)) == NULL)
    return config && node ? 1 : 2;
  req = json_pack ("{s:s, s:s, s:s*, s:b}", "cmd", verb, "peer", peer,
                   "group", group, "checksum", checksum);
  reply = req ? cli_ask_json (sock, req, false) : NULL;
  json_decref (req);
  if (reply == NULL)
    rc = 1;
  else if (!json_is_true (json_object_get (reply, "ok"))) {
    fprintf (stderr, "blockrelay %s: %s\n", verb, jstr (reply, "error"));
    rc = 1;
  }
  else
    json_array_foreach (json_object_get (reply, "peers"), i, p) {
      printf ("peer %s of group %s: ", jstr (p, "peer"), jstr (p, "group"));
      if (resync)
        printf ("resync started (%s)\n", jstr (p, "method"));
      else
        printf ("%s\n", jstr (p, "state"));
    }
  json_decref (reply);
  br_config_free (cfg);
  return rc;
}
