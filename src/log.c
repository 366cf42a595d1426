/* blockrelay — logging sink and debug flags.  See log.h. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

unsigned br_debug_flags;

static void
default_sink (enum br_log_level level, const char *msg)
{
  static const char *names[] = { "error", "warning", "info", "debug" };
  struct timespec ts;
  struct tm tm;
  char when[32];

  clock_gettime (CLOCK_REALTIME, &ts);
  localtime_r (&ts.tv_sec, &tm);
  strftime (when, sizeof when, "%H:%M:%S", &tm);
  fprintf (stderr, "%s.%03ld blockrelay[%d] %s: %s\n", when,
           ts.tv_nsec / 1000000, (int) getpid (), names[level], msg);
}

static br_log_sink sink = default_sink;

void
br_log_set_sink (br_log_sink s)
{
  sink = s ? s : default_sink;
}

void
br_vlog (enum br_log_level level, const char *fmt, va_list ap)
{
  char msg[1024];

  vsnprintf (msg, sizeof msg, fmt, ap);
  sink (level, msg);
}

void
br_log (enum br_log_level level, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  br_vlog (level, fmt, ap);
  va_end (ap);
}

long
br_debug_parse (const char *names)
{
  static const struct { const char *name; unsigned flag; } table[] = {
    { "wire", BR_DEBUG_WIRE }, { "peer", BR_DEBUG_PEER },
    { "sb", BR_DEBUG_SB }, { "io", BR_DEBUG_IO },
    { "all", ~0u },
  };
  long mask = 0;
  const char *p = names;

  while (*p) {
    size_t n = strcspn (p, ",");
    size_t i;

    for (i = 0; i < sizeof table / sizeof table[0]; i++)
      if (strlen (table[i].name) == n && strncasecmp (p, table[i].name, n) == 0)
        break;
    if (i == sizeof table / sizeof table[0])
      return -1;
    mask |= table[i].flag;
    p += n;
    if (*p == ',')
      p++;
  }
  return mask;
}
