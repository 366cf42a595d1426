/* blockrelay — the scalar value parsers of the topology loader.  See
 * config-parse.h; the public br_parse_size() and br_parse_duration() of
 * config.h are thin wrappers over the same functions.
 *
 * Numbers are unsigned decimal integers without sign, spaces, or
 * underscores; anything after the digits must be a known suffix, and a
 * value that does not fit in 64 bits (before or after scaling) is an error
 * rather than a wrapped number.
 *
 * Paths are resolved lexically (no file system access beyond getcwd()), so
 * a config names the same files whether or not they exist yet.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1           /* asprintf */
#endif

#include "config-parse.h"

#include "config.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NAME_CHARS \
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define STR_(x) #x
#define STR(x) STR_ (x)

#define TOO_LARGE "is too large"

/* Read the decimal digits at the start of S into *V; returns the first
 * byte after them, or NULL on overflow. */
static const char *
digits (const char *s, uint64_t *v)
{
  *v = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    unsigned d = *s - '0';
    if (*v > (UINT64_MAX - d) / 10)
      return NULL;
    *v = *v * 10 + d;
  }
  return s;
}

static bool
is_letter (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Sizes. */

const char *
br__size_problem (const char *s, uint64_t *out)
{
  static const char garbage[] =
    "is not a size (expected bytes with an optional K, M, G or T suffix)";
  uint64_t v, mult = 1;
  const char *p;

  if (*s == '\0')
    return "is empty";
  if (*s == '-')
    return "is negative";
  if (*s < '0' || *s > '9')
    return garbage;
  if (!(p = digits (s, &v)))
    return TOO_LARGE;
  switch (*p) {
  case 'K': case 'k': mult = UINT64_C (1) << 10; break;
  case 'M': case 'm': mult = UINT64_C (1) << 20; break;
  case 'G': case 'g': mult = UINT64_C (1) << 30; break;
  case 'T': case 't': mult = UINT64_C (1) << 40; break;
  }
  if (mult > 1) {
    p++;
    if (*p == 'i' || *p == 'I')
      p++;
  }
  if (*p == 'B' || *p == 'b')
    p++;
  if (*p != '\0')
    return garbage;
  if (v > UINT64_MAX / mult)
    return TOO_LARGE;
  *out = v * mult;
  return NULL;
}

int
br_parse_size (const char *s, uint64_t *out)
{
  uint64_t v;

  if (!s || br__size_problem (s, &v))
    return -1;
  *out = v;
  return 0;
}

/* Durations. */

static const struct {
  const char *unit;
  uint64_t ms;
} units[] = {
  { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 },
  { "h", 60 * 60 * 1000 },
};

const char *
br__duration_problem (const char *s, uint64_t *out_ms)
{
  static const char garbage[] =
    "is not a duration (expected an integer with a unit ms, s, m or h)";
  uint64_t v;
  const char *p, *q;
  size_t i;

  if (*s == '\0')
    return "is empty";
  if (*s == '-')
    return "is negative";
  if (*s < '0' || *s > '9')
    return garbage;
  if (!(p = digits (s, &v)))
    return TOO_LARGE;
  for (i = 0; i < sizeof units / sizeof units[0]; i++)
    if (strcmp (p, units[i].unit) == 0)
      break;
  if (i == sizeof units / sizeof units[0]) {
    for (q = p; is_letter (*q); q++)
      ;
    return *q == '\0' ? "has an unknown unit (expected ms, s, m or h)"
      : garbage;
  }
  if (v > UINT64_MAX / units[i].ms)
    return TOO_LARGE;
  *out_ms = v * units[i].ms;
  return NULL;
}

int
br_parse_duration (const char *s, uint64_t *out_ms)
{
  uint64_t v;

  if (!s || br__duration_problem (s, &v))
    return -1;
  *out_ms = v;
  return 0;
}

void
br__format_duration (uint64_t ms, char *buf, size_t len)
{
  size_t i;

  /* The units from the largest down to "s", else "ms"; zero is "0s". */
  for (i = sizeof units / sizeof units[0] - 1; i > 2; i--)
    if (ms % units[i].ms == 0 && ms != 0)
      break;
  if (ms % units[i].ms != 0)
    i = 1;
  snprintf (buf, len, "%llu%s", (unsigned long long) (ms / units[i].ms),
            units[i].unit);
}

/* Names. */

const char *
br__name_problem (const char *s)
{
  size_t len = strlen (s);

  if (len == 0)
    return "is empty";
  if (len > BR_NAME_MAX)
    return "is longer than " STR (BR_NAME_MAX) " characters";
  if (strspn (s, NAME_CHARS) != len)
    return "contains a character other than A-Z a-z 0-9 . _ -";
  return NULL;
}

/* Addresses. */

static const char *
port_problem (const char *port, unsigned *out, char *why, size_t len)
{
  uint64_t v;
  const char *end;

  if (*port == '\0') {
    snprintf (why, len, " has no port (expected host:port)");
    return why;
  }
  end = digits (port, &v);
  if (!end || *end != '\0' || v < 1 || v > 65535) {
    snprintf (why, len, ": port '%s' is not a number in 1..65535", port);
    return why;
  }
  *out = v;
  return NULL;
}

const char *
br__address_problem (const char *s, struct br__address *addr,
                     char *why, size_t len)
{
  char v6[INET6_ADDRSTRLEN];
  struct in6_addr in6;
  const char *host, *end;
  size_t n;

  if (s[0] == '[') {
    host = s + 1;
    end = strchr (host, ']');
    if (!end || end[1] != ':') {
      snprintf (why, len, " is not [IPv6]:port");
      return why;
    }
    n = end - host;
    if (n < sizeof v6) {
      memcpy (v6, host, n);
      v6[n] = '\0';
    }
    if (n == 0 || n >= sizeof v6 || inet_pton (AF_INET6, v6, &in6) != 1) {
      snprintf (why, len, ": '%.*s' is not an IPv6 address", (int) n, host);
      return why;
    }
    end++;
  }
  else {
    host = s;
    if (!(end = strrchr (s, ':'))) {
      snprintf (why, len, " has no port (expected host:port)");
      return why;
    }
    n = end - host;
    if (memchr (host, ':', n)) {
      snprintf (why, len, ": write an IPv6 address in brackets, as "
                "[::1]:port");
      return why;
    }
    if (n == 0) {
      snprintf (why, len, " has no host");
      return why;
    }
    if (strspn (host, NAME_CHARS) < n) {
      snprintf (why, len, ": host '%.*s' is not a valid host name or IPv4 "
                "address", (int) n, host);
      return why;
    }
  }
  if (port_problem (end + 1, &addr->port, why, len))
    return why;
  addr->host = host;
  addr->host_len = n;
  return NULL;
}

/* Enumerations. */

int
br__enum_value (const char *s, const char *const names[])
{
  int i;

  for (i = 0; names[i]; i++)
    if (strcmp (names[i], s) == 0)
      return i;
  return -1;
}

void
br__enum_list (const char *const names[], char *buf, size_t len)
{
  size_t i, n = 0;

  buf[0] = '\0';
  for (i = 0; names[i] && n < len; i++)
    n += snprintf (buf + n, len - n, "%s%s",
                   i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
}

/* Paths. */

/* Drop empty and "." components of absolute path P: "/a//./b/" -> "/a/b". */
static void
tidy_path (char *p)
{
  char *r = p, *w = p;
  size_t len;

  while (*r) {
    while (*r == '/')
      r++;
    len = strcspn (r, "/");
    if (len == 1 && r[0] == '.') {
      r++;
      continue;
    }
    if (len == 0)
      break;
    *w++ = '/';
    memmove (w, r, len);
    w += len;
    r += len;
  }
  if (w == p)
    *w++ = '/';
  *w = '\0';
}

/* REL made absolute against DIR (ignored when REL is absolute). */
char *
br__absolute_path (const char *dir, const char *rel)
{
  char *p;

  if (rel[0] == '/')
    p = strdup (rel);
  else if (asprintf (&p, "%s/%s", dir, rel) == -1)
    p = NULL;
  if (p)
    tidy_path (p);
  return p;
}

char *
br__config_dir (const char *path)
{
  char *cwd = NULL, *p;

  if (path[0] == '/')
    p = strdup (path);
  else if (!(cwd = getcwd (NULL, 0)) ||
           asprintf (&p, "%s/%s", cwd, path) == -1)
    p = NULL;
  free (cwd);
  if (p) {
    *strrchr (p, '/') = '\0';
    tidy_path (p);
  }
  return p;
}
