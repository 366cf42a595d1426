/* blockrelay — the CLI's role commands: promote, demote and resolve.
 *
 *   blockrelay promote [--force] [--timeout SECONDS]
 *   blockrelay demote [--force] [--timeout SECONDS]
 *   blockrelay resolve VOLUME --discard NODE
 *                      (each with --config FILE --node NAME | --socket PATH)
 *
 * promote and demote ask the node (role.c rules P1-P6, D1-D4): a refusal
 * that may pass (EBUSY: an upstream session still closing, a peer still
 * acknowledging) is asked again every 100 ms until --timeout (default 30
 * s); once accepted, the command polls status (the control socket is the
 * readiness signal) until the node has the role with no change under way.
 * Asking a node for the role it has is not an error.  Exit status 0 done,
 * 1 refused or timed out (one line on stderr), 2 usage.
 *
 * resolve runs on the node whose data is kept and names its peer whose
 * changes since the split are discarded (control-role.c).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define POLL_MS 100

static const char *
str (json_t *o, const char *key)
{
  const char *s = json_string_value (json_object_get (o, key));

  return s ? s : "";
}

static double
now_s (void)
{
  struct timespec t;

  clock_gettime (CLOCK_MONOTONIC, &t);
  return (double) t.tv_sec + t.tv_nsec / 1e9;
}

static void
nap (void)
{
  struct timespec d = { 0, POLL_MS * 1000000L };

  nanosleep (&d, NULL);         /* polling the control socket */
}

/* After an accepted promote: wait for the node to finish it. */
static int
wait_role (const char *sock, const char *verb, const char *want,
           double deadline)
{
  for (;;) {
    json_t *req = json_pack ("{s:s}", "cmd", "status");
    json_t *st = req ? cli_ask_json (sock, req, false) : NULL;
    int rc = -1;

    json_decref (req);
    if (st == NULL)
      return 1;
    if (json_object_get (st, "role_error") &&
        !json_is_null (json_object_get (st, "role_error"))) {
      fprintf (stderr, "blockrelay %s: %s\n", verb, str (st, "role_error"));
      rc = 1;
    }
    else if (strcmp (str (st, "role"), want) == 0 &&
             json_is_null (json_object_get (st, "role_change")))
      rc = 0;
    json_decref (st);
    if (rc >= 0)
      return rc;
    if (now_s () > deadline) {
      fprintf (stderr, "blockrelay %s: the node is not %s after the "
               "timeout\n", verb, want);
      return 1;
    }
    nap ();
  }
}

int
cli_role (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "node", required_argument, NULL, 'n' },
    { "socket", required_argument, NULL, 's' },
    { "force", no_argument, NULL, 'f' },
    { "timeout", required_argument, NULL, 't' },
    { NULL, 0, NULL, 0 },
  };
  const char *verb = argv[0], *config = NULL, *node = NULL, *sock = NULL;
  const char *want = strcmp (verb, "promote") == 0 ? "primary" : "replica";
  struct br_config *cfg = NULL;
  double timeout = 30, deadline;
  bool force = false;
  char *end;
  int c, rc = 1;

  while ((c = getopt_long (argc, argv, "c:n:s:ft:", longopts, NULL)) != -1)
    switch (c) {
    case 'c': config = optarg; break;
    case 'n': node = optarg; break;
    case 's': sock = optarg; break;
    case 'f': force = true; break;
    case 't':
      timeout = strtod (optarg, &end);
      if (*end || end == optarg || timeout < 0 || timeout > 86400) {
        fprintf (stderr, "blockrelay %s: --timeout takes 0 to 86400 "
                 "seconds, not '%s'\n", verb, optarg);
        return 2;
      }
      break;
    default: return cli_usage (stderr, 2);
    }
  if (optind != argc)
    return cli_usage (stderr, 2);
  if (!sock && (sock = cli_node_socket (config, node, &cfg)) == NULL)
    return config && node ? 1 : 2;
  deadline = now_s () + timeout;
  for (;;) {
    json_t *req = json_pack ("{s:s, s:b}", "cmd", verb, "force", force);
    json_t *reply = req ? cli_ask_json (sock, req, false) : NULL;
    const char *err = reply ? str (reply, "errno") : "";

    json_decref (req);
    if (reply == NULL)
      break;
    if (json_is_true (json_object_get (reply, "ok"))) {
      if (node && strcmp (str (reply, "node"), node) != 0) {
        fprintf (stderr, "blockrelay %s: %s answers for node '%s', not "
                 "'%s'\n", verb, sock, str (reply, "node"), node);
        json_decref (reply);
        break;
      }
      json_decref (reply);
      rc = wait_role (sock, verb, want, deadline);
      if (rc == 0)
        printf ("node %s: %s\n", node ? node : sock, want);
      break;
    }
    if (strcmp (err, "EALREADY") == 0) {
      printf ("%s\n", str (reply, "error"));
      json_decref (reply);
      rc = 0;
      break;
    }
    if (strcmp (err, "EBUSY") != 0 || now_s () > deadline) {
      fprintf (stderr, "blockrelay %s: %s\n", verb, str (reply, "error"));
      json_decref (reply);
      break;
    }
    json_decref (reply);
    nap ();
  }
  br_config_free (cfg);
  return rc;
}

int
cli_resolve (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "node", required_argument, NULL, 'n' },
    { "socket", required_argument, NULL, 's' },
    { "discard", required_argument, NULL, 'd' },
    { NULL, 0, NULL, 0 },
  };
  const char *config = NULL, *node = NULL, *sock = NULL, *discard = NULL;
  struct br_config *cfg = NULL;
  json_t *req, *reply;
  int c, rc = 1;

  while ((c = getopt_long (argc, argv, "c:n:s:d:", longopts, NULL)) != -1)
    switch (c) {
    case 'c': config = optarg; break;
    case 'n': node = optarg; break;
    case 's': sock = optarg; break;
    case 'd': discard = optarg; break;
    default: return cli_usage (stderr, 2);
    }
  if (optind != argc - 1 || discard == NULL) {
    fprintf (stderr, "blockrelay resolve: give VOLUME and --discard NODE\n");
    return 2;
  }
  if (!sock && (sock = cli_node_socket (config, node, &cfg)) == NULL)
    return config && node ? 1 : 2;
  req = json_pack ("{s:s, s:s, s:s}", "cmd", "resolve", "volume",
                   argv[optind], "discard", discard);
  reply = req ? cli_ask_json (sock, req, false) : NULL;
  json_decref (req);
  if (reply == NULL)
    ;
  else if (!json_is_true (json_object_get (reply, "ok")))
    fprintf (stderr, "blockrelay resolve: %s\n", str (reply, "error"));
  else {
    printf ("%s: the changes of %s are discarded; it resyncs from this "
            "node (peer %s is %s)\n", argv[optind], discard, discard,
            str (reply, "state"));
    rc = 0;
  }
  json_decref (reply);
  br_config_free (cfg);
  return rc;
}
