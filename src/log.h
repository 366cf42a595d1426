/* blockrelay — logging shared by the engine, the daemon and the plugin.
 *
 * The engine never writes to stderr directly: it calls br_log(), which hands
 * the formatted message to a sink.  The daemon installs a sink that prints a
 * timestamped line; the nbdkit plugin installs one that forwards errors to
 * nbdkit_error() and the rest to nbdkit_debug().  The sink must be set before
 * any thread that logs is started and is not changed afterwards.
 *
 * Debug output is split into flags so that it can be switched on per area
 * (nbdkit: -D blockrelay.wire=1; blockrelayd: --debug wire).
 */
#ifndef BR_LOG_H
#define BR_LOG_H

#include <stdarg.h>

enum br_log_level { BR_LOG_ERROR, BR_LOG_WARN, BR_LOG_INFO, BR_LOG_DEBUG };

enum br_debug_flag {
  BR_DEBUG_WIRE = 1u << 0,   /* every frame sent and received */
  BR_DEBUG_PEER = 1u << 1,   /* peer state changes, handshakes */
  BR_DEBUG_SB = 1u << 2,     /* scoreboard set / clear / msync */
  BR_DEBUG_IO = 1u << 3,     /* local disk I/O */
};

typedef void (*br_log_sink) (enum br_log_level level, const char *msg);

extern unsigned br_debug_flags;

void br_log_set_sink (br_log_sink sink);
void br_log (enum br_log_level level, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
void br_vlog (enum br_log_level level, const char *fmt, va_list ap);

#define br_error(...) br_log (BR_LOG_ERROR, __VA_ARGS__)
#define br_warn(...) br_log (BR_LOG_WARN, __VA_ARGS__)
#define br_info(...) br_log (BR_LOG_INFO, __VA_ARGS__)
#define br_debug(flag, ...)                                  \
  do {                                                       \
    if (br_debug_flags & (flag)) br_log (BR_LOG_DEBUG, __VA_ARGS__); \
  } while (0)

/* Parse a comma-separated list of flag names ("wire,peer" or "all").
 * Returns the mask, or -1 if a name is unknown. */
long br_debug_parse (const char *names);

#endif
