/* blockrelay — small helpers shared by the engine's modules. */
#ifndef BR_UTIL_H
#define BR_UTIL_H

#include <stddef.h>

/* Format a message into ERR (if ERR is non-NULL and ERRLEN > 0). */
void br_seterr (char *err, size_t errlen, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* The English description of ERRNUM, without gettext: safe from any
 * thread at any time (strerror takes the locale lock, which a process
 * exiting under some runtimes was seen to deadlock on). */
const char *br_strerror (int errnum);

/* fsync the directory holding PATH, so a file created or renamed in it
 * survives a crash.  Returns 0 or -errno. */
int br_fsync_parent_dir (const char *path);

#endif
