/* blockrelay — the operator's command line.
 *
 *   blockrelay check-config FILE
 *   blockrelay status [--json] [--wait STATE] [--timeout SECS]
 *                     [--watch [--interval SECS] [--count N]]
 *                     (--config FILE --node NAME | --socket PATH)
 *   blockrelay pause|resume --peer NODE [--group G]
 *                     (--config FILE --node NAME | --socket PATH)
 *   blockrelay metrics (--config FILE --node NAME | --socket PATH [--node
 *                     NAME])
 *   blockrelay verify VOLUME --peer NODE [--repair] (...)   (cli-ops.c)
 *   blockrelay resync --peer NODE [--group G] [--checksum] (...)
 *   blockrelay events [--now] [--count N] [--timeout SECS] (...) (cli-events.c)
 *   (pause, resume, resync and verify are in cli-ops.c)
 *
 * check-config loads the file with the engine's loader and prints, for
 * every node that could be primary, who sends to whom (topology.c).
 *
 * status asks a node's process (nbdkit with the plugin, or blockrelayd)
 * over its control socket and prints a table, or the JSON as received.
 * --wait polls the socket until every peer of every volume is in STATE
 * (e.g. replicating) and every dirty count is 0 when STATE is
 * "replicating" — the readiness signal scripts use.  --watch asks again
 * every --interval seconds: a live view redrawn in place on a terminal
 * (progress bars for resync and verify), JSON lines with --json.
 *
 * metrics prints the node's metrics in the Prometheus text format (the
 * same text its metrics-file holds).  With --node, a socket that answers
 * for another node is an error: a scraper must not label one node's
 * figures with another's name.
 *
 * The errors in the table (a peer's last error, an upstream's error) may
 * hold a peer's words, e.g. its refusal message: they are printed through
 * br_escape_text(), so control characters cannot reach the terminal or
 * forge lines.  --json prints the answer as received (JSON escapes them).
 */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "config.h"
#include "util.h"

/* An error of the status table once escaped; longer ones are cut and
 * marked "..." (br_escape_text). */
#define ERROR_TEXT_MAX 1024

int
cli_usage (FILE *fp, int code)
{
  fprintf (fp,
           "usage: blockrelay COMMAND [options]\n"
           "\n"
           "commands:\n"
           "  check-config FILE      validate a topology file\n"
           "  status                 show a node's volumes and peers\n"
           "  events                 stream a node's state changes, progress and errors\n"
           "  pause --peer NODE      stop replicating to NODE (logged meanwhile)\n"
           "  resume --peer NODE     replicate to NODE again (resyncs what changed)\n"
           "  metrics                print a node's metrics (Prometheus text format)\n"
           "  verify VOLUME --peer NODE  compare NODE's copy of VOLUME with ours\n"
           "  resync --peer NODE     resync every region to NODE\n"
           "  promote                make this replica the primary (serves its volumes)\n"
           "  demote                 make this primary a replica\n"
           "  resolve VOLUME --discard NODE  end a split brain: NODE's changes are lost\n"
           "\n"
           "status options:\n"
           "  -c, --config FILE      topology file, with --node\n"
           "  -n, --node NAME        node to ask\n"
           "  -s, --socket PATH      control socket to ask instead\n"
           "  -j, --json             print JSON\n"
           "  -w, --wait STATE       wait until every peer is in STATE\n"
           "  -t, --timeout SECS     give up waiting after SECS (default 60)\n"
           "  -W, --watch            refresh every --interval (a live view)\n"
           "  -i, --interval SECS    --watch: seconds between refreshes (default 1)\n"
           "  -N, --count N          --watch: stop after N refreshes\n"
           "\n"
           "pause and resume options:\n"
           "  -c, --config FILE      topology file, with --node\n"
           "  -n, --node NAME        node whose peer it is\n"
           "  -s, --socket PATH      control socket to ask instead\n"
           "  -p, --peer NODE        the downstream peer\n"
           "  -g, --group GROUP      only in this group (default: every group)\n"
           "\n"
           "metrics options:\n"
           "  -c, --config FILE      topology file, with --node\n"
           "  -n, --node NAME        node to ask (with --socket: the node it must be)\n"
           "  -s, --socket PATH      control socket to ask instead\n"
           "\n"
           "events options (JSON lines; exit 0: stream ended, 1: node lost, 2: error):\n"
           "  -c, --config FILE      topology file, with --node\n"
           "  -n, --node NAME        node to ask (with --socket: the node it must be)\n"
           "  -s, --socket PATH      control socket to ask instead\n"
           "      --now              first the current state of every peer\n"
           "  -N, --count N          stop after N lines\n"
           "  -t, --timeout SECS     stop after SECS seconds\n"
           "\n"
           "verify options (exit 0: identical, 1: regions differ, 2: error):\n"
           "  -c, --config FILE      topology file, with --node\n"
           "  -n, --node NAME        node whose peer it is\n"
           "  -s, --socket PATH      control socket to ask instead\n"
           "  -p, --peer NODE        the downstream peer\n"
           "  -r, --repair           resync the regions that differ\n"
           "\n"
           "resync options:\n"
           "  -c, --config FILE      topology file, with --node\n"
           "  -n, --node NAME        node whose peer it is\n"
           "  -s, --socket PATH      control socket to ask instead\n"
           "  -p, --peer NODE        the downstream peer\n"
           "  -g, --group GROUP      only in this group (default: every group)\n"
           "  -k, --checksum         send hashes first, data only where they differ\n"
           "\n"
           "promote and demote options:\n"
           "  -c, --config FILE      topology file, with --node\n"
           "  -n, --node NAME        node to change\n"
           "  -s, --socket PATH      control socket to ask instead\n"
           "  -f, --force            promote an inconsistent copy; demote with peers behind\n"
           "  -t, --timeout SECS     keep asking while the node says busy (default 30)\n"
           "\n"
           "resolve options (run on the node whose data is kept):\n"
           "  -c, --config FILE      topology file, with --node\n"
           "  -n, --node NAME        node that keeps its data\n"
           "  -s, --socket PATH      control socket to ask instead\n"
           "  -d, --discard NODE     its peer whose changes are discarded\n");
  return code;
}

static void human_bytes (json_int_t n, char *buf, size_t len);

void
cli_bar (char *buf, size_t len, double frac)
{
  int width = 30, fill;

  if (frac < 0)
    frac = 0;
  if (frac > 1)
    frac = 1;
  fill = (int) (frac * width);
  if (len < (size_t) width + 12) {
    snprintf (buf, len, "%.1f%%", frac * 100);
    return;
  }
  buf[0] = '[';
  memset (buf + 1, '#', fill);
  memset (buf + 1 + fill, '.', width - fill);
  snprintf (buf + 1 + width, len - 1 - width, "] %5.1f%%", frac * 100);
}

/* "with a as primary: a -> b (sync); b -> c (async, 40.0 MiB/s)": who
 * sends to whom when ORIGIN serves the volumes (topology.c). */
static void
print_flow (const struct br_config *cfg, const char *origin)
{
  const char *sep = "";

  printf ("  with %s as primary:", origin);
  for (size_t i = 0; i < cfg->n_nodes; i++) {
    const struct br_node_cfg *kids[64];
    const struct br_link_cfg *links[64];
    int n = br_topology_children (cfg, origin, cfg->nodes[i].name, kids,
                                  links, 64);

    if (n <= 0)
      continue;
    printf ("%s %s ->", sep, cfg->nodes[i].name);
    for (int k = 0; k < n; k++) {
      char rate[32] = "";

      if (links[k]->rate) {
        human_bytes (links[k]->rate, rate, sizeof rate - 2);
        strcat (rate, "/s");
      }
      printf ("%s %s (%s%s%s)", k ? "," : "", kids[k]->name,
              links[k]->mode == BR_MODE_SYNC ? "sync" : "async",
              rate[0] ? ", " : "", rate);
    }
    sep = ";";
  }
  printf ("\n");
}

static int
cmd_check_config (int argc, char **argv)
{
  struct br_config *cfg;
  char err[1024];

  if (argc != 2)
    return cli_usage (stderr, 2);
  if (br_config_load (argv[1], &cfg, err, sizeof err) < 0) {
    fprintf (stderr, "%s\n", err);
    return 1;
  }
  printf ("%s: ok: %zu volumes, %zu nodes, %zu links\n", argv[1],
          cfg->n_volumes, cfg->n_nodes, cfg->n_links);
  for (size_t i = 0; i < cfg->n_nodes && cfg->n_links > 0; i++)
    print_flow (cfg, cfg->nodes[i].name);
  br_config_free (cfg);
  return 0;
}

json_t *
cli_ask_json (const char *path, json_t *req, bool quiet)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  char *line = NULL, *buf = NULL;
  size_t len = 0, cap = 0;
  json_error_t jerr;
  json_t *reply;
  int fd;

  if (strlen (path) >= sizeof sa.sun_path) {
    fprintf (stderr, "blockrelay: socket path too long: %s\n", path);
    return NULL;
  }
  strcpy (sa.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
    if (!quiet)
      fprintf (stderr, "blockrelay: cannot reach %s: %s (is the node "
               "running?)\n", path, strerror (errno));
    if (fd >= 0)
      close (fd);
    return NULL;
  }
  line = json_dumps (req, JSON_COMPACT);
  if (line == NULL || write (fd, line, strlen (line)) != (ssize_t) strlen (line)
      || write (fd, "\n", 1) != 1) {
    fprintf (stderr, "blockrelay: %s: %s\n", path, strerror (errno));
    free (line);
    close (fd);
    return NULL;
  }
  free (line);
  for (;;) {
    ssize_t n;
    if (cap - len < 4096) {
      char *nb = realloc (buf, cap += 65536);
      if (nb == NULL)
        break;
      buf = nb;
    }
    n = read (fd, buf + len, cap - len - 1);
    if (n <= 0)
      break;
    len += n;
  }
  close (fd);
  if (buf == NULL)
    return NULL;
  buf[len] = '\0';
  reply = json_loads (buf, 0, &jerr);
  free (buf);
  if (reply == NULL && !quiet)
    fprintf (stderr, "blockrelay: bad answer from %s: %s\n", path, jerr.text);
  return reply;
}

static json_t *
ask (const char *path, const char *cmd, bool quiet)
{
  json_t *req = json_pack ("{s:s}", "cmd", cmd), *reply;

  reply = req ? cli_ask_json (path, req, quiet) : NULL;
  json_decref (req);
  return reply;
}

static void
human_bytes (json_int_t n, char *buf, size_t len)
{
  static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  double v = n;
  int u = 0;

  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf (buf, len, "%lld B", (long long) n);
  else
    snprintf (buf, len, "%.1f %s", v, units[u]);
}

/* One line per group: where its writes come from and where they go. */
static void
print_topology (json_t *st)
{
  json_t *g, *d;
  size_t i, j;

  printf ("\n%-10s %-10s %-10s %s\n", "GROUP", "PRIMARY", "UPSTREAM",
          "DOWNSTREAM");
  json_array_foreach (json_object_get (st, "groups"), i, g) {
    const char *origin = json_string_value (json_object_get (g, "primary"));
    const char *up = json_string_value (json_object_get (g, "upstream"));
    char down[512] = "", upb[80];
    size_t len = 0;

    json_array_foreach (json_object_get (g, "downstream"), j, d) {
      if (len >= sizeof down)
        break;
      len += snprintf (down + len, sizeof down - len, "%s%s", j ? ", " : "",
                       json_string_value (d));
    }
    snprintf (upb, sizeof upb, "%s%s", up ? up : "-",
              up && !json_is_true (json_object_get (g, "connected"))
              ? " (away)" : "");
    printf ("%-10s %-10s %-10s %s%s\n",
            json_string_value (json_object_get (g, "name")),
            origin && *origin ? origin : "(none yet)", upb,
            down[0] ? down : "-",
            json_is_false (json_object_get (g, "consistent"))
            ? "   (group INCONSISTENT until its resync completes)" : "");
  }
}

/* One peer row of the table (J = its index in the volume's peers). */
static void
print_peer (json_t *v, json_t *p, size_t j, const char *size, time_t now)
{
  char dirty[32], queued[32], since[32], rate[32], lag[64], lagb[32];
  char safe[ERROR_TEXT_MAX];
  const char *err = json_string_value (json_object_get (p, "last_error"));
  json_int_t cap = json_integer_value (json_object_get (p, "rate"));
  json_t *verify;

  human_bytes (json_integer_value (json_object_get (p, "dirty_bytes")),
               dirty, sizeof dirty);
  human_bytes (json_integer_value (json_object_get (p, "queued_bytes")),
               queued, sizeof queued);
  snprintf (since, sizeof since, "%llds",
            (long long) (now - json_integer_value
                         (json_object_get (p, "since"))));
  if (cap) {
    human_bytes (cap, rate, sizeof rate - 2);
    strcat (rate, "/s");
  }
  else
    snprintf (rate, sizeof rate, "-");
  human_bytes (json_integer_value (json_object_get (p, "lag_bytes")),
               lagb, sizeof lagb);
  snprintf (lag, sizeof lag, "%s/%.1fs", lagb,
            json_real_value (json_object_get (p, "lag_seconds")));
  printf ("%-12s %-10s %-8s %-10s %-12s %-6s %-12s %-8s %10s %10s %12s %10s\n",
          j ? "" : json_string_value (json_object_get (v, "name")),
          j ? "" : json_string_value (json_object_get (v, "group")),
          j ? "" : json_string_value (json_object_get (v, "role")),
          j ? "" : size,
          json_string_value (json_object_get (p, "node")),
          json_string_value (json_object_get (p, "mode")),
          json_string_value (json_object_get (p, "state")), since,
          dirty, queued, rate, lag);
  if (err && *err)
    printf ("%-12s   last error: %s\n", "",
            br_escape_text (safe, sizeof safe, err, strlen (err)));
  if (!strcmp (json_string_value (json_object_get (p, "state")), "syncing")) {
    json_int_t total = json_integer_value (json_object_get
                                           (p, "resync_total_bytes"));
    json_int_t left = json_integer_value (json_object_get
                                          (p, "resync_left_bytes"));
    char bar[64], lb[32], rb[32];

    cli_bar (bar, sizeof bar, total ? 1.0 - (double) left / total : 0);
    human_bytes (left, lb, sizeof lb);
    human_bytes (json_integer_value (json_object_get (p, "resync_rate")),
                 rb, sizeof rb);
    printf ("%-12s   resync %s %s left at %s/s, eta %llds\n", "", bar, lb,
            rb, (long long) json_integer_value (json_object_get
                                                (p, "resync_eta")));
  }
  verify = json_object_get (p, "verify");
  if (verify && !strcmp (json_string_value (json_object_get (verify,
                                                             "state")),
                         "running")) {
    json_int_t total = json_integer_value (json_object_get (verify,
                                                            "regions"));
    json_int_t done = json_integer_value (json_object_get (verify, "done"));
    char bar[64];

    cli_bar (bar, sizeof bar, total ? (double) done / total : 0);
    printf ("%-12s   verify %s %lld/%lld regions, %lld differ\n", "", bar,
            (long long) done, (long long) total,
            (long long) json_integer_value (json_object_get (verify,
                                                             "differ")));
  }
}

static void
print_upstreams (json_t *ups)
{
  json_t *p;
  size_t i;

  if (json_array_size (ups) == 0)
    return;
  printf ("\n%-12s %-10s %-16s %-6s %12s %12s %12s %10s\n", "UPSTREAM",
          "GROUP", "ADDRESS", "MODE", "APPLIED-SEQ", "DURABLE-SEQ",
          "RECEIVED", "PENDING");
  json_array_foreach (ups, i, p) {
    char rx[32], pend[32], safe[ERROR_TEXT_MAX];
    const char *err = json_string_value (json_object_get (p, "error"));

    human_bytes (json_integer_value (json_object_get (p, "received_bytes")),
                 rx, sizeof rx);
    human_bytes (json_integer_value (json_object_get (p, "pending_bytes")),
                 pend, sizeof pend);
    printf ("%-12s %-10s %-16s %-6s %12lld %12lld %12s %10s\n",
            json_string_value (json_object_get (p, "node")),
            json_string_value (json_object_get (p, "group")),
            json_string_value (json_object_get (p, "address")),
            json_string_value (json_object_get (p, "mode")),
            (long long) json_integer_value (json_object_get (p,
                                                             "applied_seq")),
            (long long) json_integer_value (json_object_get (p,
                                                             "durable_seq")),
            rx, pend);
    if (err && *err)
      printf ("%-12s   error: %s\n", "",
              br_escape_text (safe, sizeof safe, err, strlen (err)));
  }
}

static void
print_table (json_t *st)
{
  json_t *vols = json_object_get (st, "volumes");
  json_t *v, *p;
  size_t i, j;
  time_t now = time (NULL);

  const char *change = json_string_value (json_object_get (st,
                                                          "role_change"));

  printf ("node %s (%s%s%s), pid %lld, up %llds, config %s\n",
          json_string_value (json_object_get (st, "node")),
          json_string_value (json_object_get (st, "role")),
          change ? ", " : "", change ? change : "",
          (long long) json_integer_value (json_object_get (st, "pid")),
          (long long) json_integer_value (json_object_get (st, "uptime")),
          json_string_value (json_object_get (st, "config")));
  print_topology (st);
  printf ("\n%-12s %-10s %-8s %-10s %-12s %-6s %-12s %-8s %10s %10s %12s %10s\n",
          "VOLUME", "GROUP", "ROLE", "SIZE", "PEER", "MODE", "STATE",
          "SINCE", "DIRTY", "QUEUED", "RATE", "LAG");
  json_array_foreach (vols, i, v) {
    char size[32];
    json_t *peers = json_object_get (v, "peers");

    human_bytes (json_integer_value (json_object_get (v, "size")), size,
                 sizeof size);
    if (json_array_size (peers) == 0)
      printf ("%-12s %-10s %-8s %-10s %-12s\n",
              json_string_value (json_object_get (v, "name")),
              json_string_value (json_object_get (v, "group")),
              json_string_value (json_object_get (v, "role")), size, "-");
    if (!json_is_true (json_object_get (v, "consistent")))
      printf ("%-12s   INCONSISTENT: a resync into this copy has not "
              "completed\n", "");
    json_array_foreach (peers, j, p)
      print_peer (v, p, j, size, now);
  }
  print_upstreams (json_object_get (st, "upstream"));
}

/* Is every peer of every volume in STATE (and clean, for replicating)? */
static bool
reached (json_t *st, const char *state)
{
  json_t *v, *p;
  size_t i, j;

  json_array_foreach (json_object_get (st, "volumes"), i, v)
    json_array_foreach (json_object_get (v, "peers"), j, p) {
      if (strcmp (json_string_value (json_object_get (p, "state")), state))
        return false;
      if (strcmp (state, "replicating") == 0 &&
          (json_integer_value (json_object_get (p, "dirty_bytes")) ||
           json_integer_value (json_object_get (p, "queued_bytes"))))
        return false;
    }
  return true;
}

const char *
cli_node_socket (const char *config, const char *node,
                 struct br_config **cfg)
{
  const struct br_node_cfg *n;
  char err[1024];

  if (!config || !node) {
    fprintf (stderr, "blockrelay: give --config and --node, or "
             "--socket\n");
    return NULL;
  }
  if (br_config_load (config, cfg, err, sizeof err) < 0) {
    fprintf (stderr, "%s\n", err);
    return NULL;
  }
  n = br_config_node (*cfg, node);
  if (n == NULL) {
    fprintf (stderr, "blockrelay: %s: no node named '%s'\n", config, node);
    br_config_free (*cfg);
    *cfg = NULL;
    return NULL;
  }
  return n->control;
}

/* --wait: poll SOCK until every peer is in STATE; the last status, or
 * NULL (after printing it) when TIMEOUT seconds passed first. */
static json_t *
wait_for (const char *sock, const char *state, double timeout)
{
  struct timespec t0, now, nap = { 0, 50 * 1000000 };
  json_t *st;

  clock_gettime (CLOCK_MONOTONIC, &t0);
  for (;;) {
    st = ask (sock, "status", true);
    if (st && reached (st, state))
      return st;
    clock_gettime (CLOCK_MONOTONIC, &now);
    if (now.tv_sec - t0.tv_sec + (now.tv_nsec - t0.tv_nsec) / 1e9 >
        timeout) {
      fprintf (stderr, "blockrelay: %s did not reach state '%s' within "
               "%gs\n", sock, state, timeout);
      if (st)
        print_table (st);
      json_decref (st);
      return NULL;
    }
    json_decref (st);
    nanosleep (&nap, NULL);     /* polling the control socket */
  }
}

/* --watch: the status every INTERVAL seconds (COUNT times, 0: until
 * interrupted or the node goes away): redrawn in place on a terminal, one
 * table after another otherwise, one JSON object a line with --json. */
static int
watch (const char *sock, bool json, double interval, long count)
{
  bool tty = isatty (STDOUT_FILENO);
  struct timespec nap = { (time_t) interval,
                          (long) ((interval - (time_t) interval) * 1e9) };

  for (long k = 0; count == 0 || k < count; k++) {
    json_t *st = ask (sock, "status", false);
    time_t now = time (NULL);
    char when[32];

    if (st == NULL)
      return 1;
    if (!json_is_true (json_object_get (st, "ok"))) {
      fprintf (stderr, "blockrelay: %s\n",
               json_string_value (json_object_get (st, "error")));
      json_decref (st);
      return 1;
    }
    strftime (when, sizeof when, "%H:%M:%S", localtime (&now));
    if (json) {
      char *line = json_dumps (st, JSON_COMPACT);
      if (line)
        puts (line);
      free (line);
    }
    else {
      if (tty)
        fputs ("\033[H\033[2J", stdout);  /* in place: home, clear */
      printf ("--- %s, every %gs%s ---\n", when, interval,
              tty ? " (Ctrl-C to stop)" : "");
      print_table (st);
    }
    json_decref (st);
    if (fflush (stdout) == EOF)
      return 1;                 /* the reader went away */
    if (count == 0 || k + 1 < count)
      nanosleep (&nap, NULL);   /* the refresh interval */
  }
  return 0;
}

static int
cmd_status (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "node", required_argument, NULL, 'n' },
    { "socket", required_argument, NULL, 's' },
    { "json", no_argument, NULL, 'j' },
    { "wait", required_argument, NULL, 'w' },
    { "timeout", required_argument, NULL, 't' },
    { "watch", no_argument, NULL, 'W' },
    { "interval", required_argument, NULL, 'i' },
    { "count", required_argument, NULL, 'N' },
    { NULL, 0, NULL, 0 },
  };
  const char *config = NULL, *node = NULL, *sock = NULL, *wait = NULL;
  bool json = false, watch_mode = false;
  double timeout = 60, interval = 1;
  long count = 0;
  char *end;
  struct br_config *cfg = NULL;
  json_t *st;
  int c, rc = 0;

  while ((c = getopt_long (argc, argv, "c:n:s:jw:t:Wi:N:", longopts,
                           NULL)) != -1)
    switch (c) {
    case 'c': config = optarg; break;
    case 'n': node = optarg; break;
    case 's': sock = optarg; break;
    case 'j': json = true; break;
    case 'w': wait = optarg; break;
    case 't': timeout = atof (optarg); break;
    case 'W': watch_mode = true; break;
    case 'i':
      interval = strtod (optarg, &end);
      if (end == optarg || *end || !(interval >= 0.1 && interval <= 3600)) {
        fprintf (stderr, "blockrelay status: --interval '%s' is not a number "
                 "of seconds from 0.1 to 3600\n", optarg);
        return 2;
      }
      break;
    case 'N':
      count = strtol (optarg, &end, 10);
      if (end == optarg || *end || count < 1) {
        fprintf (stderr, "blockrelay status: --count '%s' is not a positive "
                 "number\n", optarg);
        return 2;
      }
      break;
    default: return cli_usage (stderr, 2);
    }
  if (watch_mode && wait) {
    fprintf (stderr, "blockrelay status: --watch and --wait do not go "
             "together\n");
    return 2;
  }
  if (!sock && (sock = cli_node_socket (config, node, &cfg)) == NULL)
    return config && node ? 1 : 2;
  if (watch_mode) {
    rc = watch (sock, json, interval, count);
    br_config_free (cfg);
    return rc;
  }
  if (wait) {
    if ((st = wait_for (sock, wait, timeout)) == NULL) {
      br_config_free (cfg);
      return 1;
    }
  }
  else
    st = ask (sock, "status", false);
  if (st == NULL)
    rc = 1;
  else if (!json_is_true (json_object_get (st, "ok"))) {
    fprintf (stderr, "blockrelay: %s\n",
             json_string_value (json_object_get (st, "error")));
    rc = 1;
  }
  else if (json) {
    char *s = json_dumps (st, JSON_INDENT (2));
    puts (s);
    free (s);
  }
  else
    print_table (st);
  json_decref (st);
  br_config_free (cfg);
  return rc;
}

/* blockrelay metrics (--config F --node N | --socket PATH [--node N]) */
static int
cmd_metrics (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "node", required_argument, NULL, 'n' },
    { "socket", required_argument, NULL, 's' },
    { NULL, 0, NULL, 0 },
  };
  const char *config = NULL, *node = NULL, *sock = NULL, *text, *who;
  struct br_config *cfg = NULL;
  json_t *reply;
  int c, rc = 1;

  while ((c = getopt_long (argc, argv, "c:n:s:", longopts, NULL)) != -1)
    switch (c) {
    case 'c': config = optarg; break;
    case 'n': node = optarg; break;
    case 's': sock = optarg; break;
    default: return cli_usage (stderr, 2);
    }
  if (optind != argc) {
    fprintf (stderr, "blockrelay metrics: unexpected argument '%s'\n",
             argv[optind]);
    return 2;
  }
  if (!sock && (sock = cli_node_socket (config, node, &cfg)) == NULL)
    return config && node ? 1 : 2;
  reply = ask (sock, "metrics", false);
  text = json_string_value (json_object_get (reply, "text"));
  who = json_string_value (json_object_get (reply, "node"));
  if (reply == NULL)
    ;                           /* ask said why */
  else if (!json_is_true (json_object_get (reply, "ok")))
    fprintf (stderr, "blockrelay metrics: %s\n",
             json_string_value (json_object_get (reply, "error")));
  else if (text == NULL || who == NULL)
    fprintf (stderr, "blockrelay metrics: %s answered without metrics (an "
             "older version?)\n", sock);
  else if (node && strcmp (who, node) != 0)
    fprintf (stderr, "blockrelay metrics: %s answers for node '%s', not "
             "'%s'\n", sock, who, node);
  else if (fputs (text, stdout) == EOF || fflush (stdout) == EOF)
    fprintf (stderr, "blockrelay metrics: cannot write: %s\n",
             strerror (errno));
  else
    rc = 0;
  json_decref (reply);
  br_config_free (cfg);
  return rc;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    return cli_usage (stderr, 2);
  if (strcmp (argv[1], "check-config") == 0)
    return cmd_check_config (argc - 1, argv + 1);
  if (strcmp (argv[1], "status") == 0)
    return cmd_status (argc - 1, argv + 1);
  if (strcmp (argv[1], "pause") == 0 || strcmp (argv[1], "resume") == 0 ||
      strcmp (argv[1], "resync") == 0)
    return cli_peer_command (argc - 1, argv + 1);
  if (strcmp (argv[1], "metrics") == 0)
    return cmd_metrics (argc - 1, argv + 1);
  if (strcmp (argv[1], "verify") == 0)
    return cli_verify (argc - 1, argv + 1);
  if (strcmp (argv[1], "promote") == 0 || strcmp (argv[1], "demote") == 0)
    return cli_role (argc - 1, argv + 1);
  if (strcmp (argv[1], "resolve") == 0)
    return cli_resolve (argc - 1, argv + 1);
  if (strcmp (argv[1], "events") == 0)
    return cli_events (argc - 1, argv + 1);
  if (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0)
    return cli_usage (stdout, 0);
  fprintf (stderr, "blockrelay: unknown command '%s'\n", argv[1]);
  return cli_usage (stderr, 2);
}
