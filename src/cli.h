/* blockrelay — what the CLI's files share (cli.c, cli-ops.c,
 * cli-role.c, cli-events.c).  Not
 * installed.  Every command returns its exit status; errors are printed
 * on stderr as one line each. */
#ifndef BR_CLI_H
#define BR_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "config.h"

/* The usage text on FP; returns CODE. */
int cli_usage (FILE *fp, int code);
/* Send REQ (one JSON object) to the control socket PATH; the answer, or
 * NULL with a message on stderr (none if QUIET). */
json_t *cli_ask_json (const char *path, json_t *req, bool quiet);
/* The control socket of NODE in CONFIG (*CFG keeps the loaded file, to be
 * freed with br_config_free); NULL with a message on stderr. */
const char *cli_node_socket (const char *config, const char *node,
                             struct br_config **cfg);

/* A progress bar "[###...]  45.0%" of FRAC (0..1) into BUF. */
void cli_bar (char *buf, size_t len, double frac);

/* cli-ops.c */
int cli_verify (int argc, char **argv);
/* pause, resume and resync: ARGV[0] is the verb. */
int cli_peer_command (int argc, char **argv);

/* cli-role.c: promote and demote (ARGV[0] is the verb), resolve. */
int cli_role (int argc, char **argv);
int cli_resolve (int argc, char **argv);

/* cli-events.c: blockrelay events */
int cli_events (int argc, char **argv);

#endif
