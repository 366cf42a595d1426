/* blockrelay — the scalar value parsers of the topology loader.
 *
 * Internal to config.c (and config-parse.c, which also holds the public
 * br_parse_size() and br_parse_duration() of config.h).  These functions
 * know nothing of YAML, files or positions: each checks one value as
 * written and either stores it and returns NULL, or returns a phrase
 * saying what is wrong.  The phrase is written to follow "LABEL 'VALUE' "
 * (e.g. "is negative"); config.c prefixes "PATH:LINE:COL: LABEL 'VALUE' ",
 * or "PATH:LINE:COL: LABEL " when the value is empty.  Returned phrases
 * are string constants unless said otherwise.  The path helpers at the end
 * resolve relative paths against the file's directory.
 */
#ifndef BR_CONFIG_PARSE_H
#define BR_CONFIG_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* A byte count with an optional K, M, G or T suffix (see config.h). */
const char *br__size_problem (const char *s, uint64_t *out);

/* An integer with a unit ms, s, m or h, or a plain integer of seconds,
 * stored in milliseconds.  Zero is accepted; callers that need a positive
 * duration check for it. */
const char *br__duration_problem (const char *s, uint64_t *out_ms);

/* A volume, node or group name: 1..BR_NAME_MAX of [A-Za-z0-9._-]. */
const char *br__name_problem (const char *s);

/* A node address, "host:port" or "[IPv6]:port".  On success returns NULL
 * and points *HOST (HOST_LEN bytes, not terminated) into S and stores the
 * port in 1..65535.  On failure returns WHY, into which it has written the
 * text that follows "LABEL 'S'": it starts with a space or with ": ". */
struct br__address {
  const char *host;
  size_t host_len;
  unsigned port;
};
const char *br__address_problem (const char *s, struct br__address *addr,
                                 char *why, size_t len);

/* The index of S in the NULL-terminated list NAMES (exact match), or -1. */
int br__enum_value (const char *s, const char *const names[]);
/* "a, b or c" into BUF, for "LABEL 'S' is not a, b or c". */
void br__enum_list (const char *const names[], char *buf, size_t len);

/* REL made absolute against the absolute directory DIR (REL as is when it
 * is absolute), with empty and "." components dropped, lexically: no
 * symlinks are followed and ".." is kept.  A new string, or NULL. */
char *br__absolute_path (const char *dir, const char *rel);
/* The absolute directory of the file PATH (relative to the working
 * directory), tidied likewise.  A new string, or NULL with errno set. */
char *br__config_dir (const char *path);

/* MS written back in the largest unit that divides it: "5s", "250ms". */
void br__format_duration (uint64_t ms, char *buf, size_t len);

#endif
