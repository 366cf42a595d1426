/* blockrelayd — the replicator daemon.
 *
 *   blockrelayd --config FILE --node NAME [--pidfile FILE] [--control PATH]
 *               [--debug FLAGS] [--user NAME]
 *
 * Runs in the foreground (it is meant for a service manager or a container
 * sidecar).  It listens on the node's address, applies what its upstream
 * sends and acknowledges it.  The pidfile is written once the listening
 * and control sockets are open: tests and service managers wait for it.
 * At the same point it tells systemd READY=1 (sd_notify; a no-op without
 * $NOTIFY_SOCKET), so blockrelayd@.service is Type=notify, and STOPPING=1
 * when a signal starts the shutdown.
 * With --user NAME (or settings.user; the option wins), started as root,
 * it becomes NAME once the listener and the control socket are bound and
 * the disks and scoreboards are open, before the pidfile and READY=1
 * (privdrop.c): a daemon that says it is ready is already unprivileged.
 * SIGTERM or SIGINT stop it cleanly: the loop closes every connection, the
 * apply threads finish the record in hand, disks are synced and the
 * scoreboards are closed clean.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "engine.h"
#include "log.h"
#include "privdrop.h"

static void
usage (FILE *fp)
{
  fprintf (fp,
           "usage: blockrelayd --config FILE --node NAME [options]\n"
           "\n"
           "Receive replicated volumes from an upstream node and apply them.\n"
           "\n"
           "  -c, --config FILE    topology file (same on every node)\n"
           "  -n, --node NAME      this node's name in the topology\n"
           "  -p, --pidfile FILE   write the pid here once ready\n"
           "  -s, --control PATH   control socket (default: from the topology)\n"
           "  -d, --debug FLAGS    debug output: wire,peer,sb,io or all\n"
           "  -u, --user NAME      run as NAME once the sockets are bound\n"
           "                       (as root only; default: settings.user)\n"
           "  -h, --help           this text\n");
}

static int
write_pidfile (const char *path)
{
  char tmp[4096];
  FILE *fp;

  if ((size_t) snprintf (tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
    return -1;
  fp = fopen (tmp, "w");
  if (fp == NULL)
    return -1;
  fprintf (fp, "%d\n", (int) getpid ());
  if (fclose (fp) != 0 || rename (tmp, path) < 0)
    return -1;
  return 0;
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "node", required_argument, NULL, 'n' },
    { "pidfile", required_argument, NULL, 'p' },
    { "control", required_argument, NULL, 's' },
    { "debug", required_argument, NULL, 'd' },
    { "user", required_argument, NULL, 'u' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct br_engine_opts opts = { .role = BR_ROLE_REPLICA };
  const char *pidfile = NULL, *user = NULL;
  char err[1024] = "";
  br_engine *e;
  sigset_t set;
  int c, sig, r;

  while ((c = getopt_long (argc, argv, "c:n:p:s:d:u:h", longopts, NULL)) != -1)
    switch (c) {
    case 'c': opts.config_path = optarg; break;
    case 'n': opts.node = optarg; break;
    case 'p': pidfile = optarg; break;
    case 's': opts.control_path = optarg; break;
    case 'u': user = optarg; break;
    case 'd': {
      long mask = br_debug_parse (optarg);
      if (mask < 0) {
        fprintf (stderr, "blockrelayd: unknown debug flag in '%s' "
                 "(known: wire, peer, sb, io, all)\n", optarg);
        return 2;
      }
      br_debug_flags |= mask;
      break;
    }
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  if (!opts.config_path || !opts.node || optind != argc) {
    usage (stderr);
    return 2;
  }

  /* Signals are taken synchronously by this thread; block them before the
   * loop thread starts so that it inherits the mask. */
  sigemptyset (&set);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGINT);
  pthread_sigmask (SIG_BLOCK, &set, NULL);
  signal (SIGPIPE, SIG_IGN);

  r = br_engine_open (&opts, &e, err, sizeof err);
  if (r < 0) {
    fprintf (stderr, "blockrelayd: %s\n", err);
    return 1;
  }
  r = br_engine_start (e);
  if (r < 0) {
    br_engine_close (e);
    return 1;
  }
  if (user == NULL)
    user = br_engine_user (e);
  if (user && br_drop_privileges (user, br_engine_control_path (e), err,
                                  sizeof err) < 0) {
    br_error ("%s", err);
    br_engine_close (e);
    return 1;
  }
  if (pidfile && write_pidfile (pidfile) < 0) {
    br_error ("cannot write %s: %s", pidfile, strerror (errno));
    br_engine_close (e);
    return 1;
  }
  br_info ("node %s ready (%zu volumes)", opts.node, br_engine_n_volumes (e));
  r = sd_notifyf (0, "READY=1\nSTATUS=node %s: %zu volumes",
                  opts.node, br_engine_n_volumes (e));
  if (r < 0)
    br_error ("cannot notify the service manager: %s", strerror (-r));

  while (sigwait (&set, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
    ;
  br_info ("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  sd_notify (0, "STOPPING=1");
  br_engine_close (e);
  if (pidfile)
    unlink (pidfile);
  return 0;
}
