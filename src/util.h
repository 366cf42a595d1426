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

/* Text from outside (a peer's node names, refusal messages and ERROR
 * payloads) made safe for a log line or a terminal.  TEXT ends at its
 * first NUL byte or after LEN bytes, whichever comes first.  Each byte of
 * it is copied into BUF as itself if it is printable ASCII (0x20..0x7e)
 * other than backslash; a backslash becomes "\\" and every other byte
 * "\xNN" (two lower-case hex digits), so the result is printable ASCII
 * and the original can be read back from it.  BUF (SIZE bytes) is always
 * NUL-terminated when SIZE > 0.  Text that does not fit is cut before an
 * escape, never inside one, and ends in "..." (as much of it as fits);
 * a buffer of BR_ESCAPED_SIZE (LEN) bytes never cuts.  Returns BUF, for
 * use as a printf argument. */
#define BR_ESCAPED_SIZE(len) (4 * (size_t) (len) + 1)
const char *br_escape_text (char *buf, size_t size, const char *text,
                            size_t len);

/* fsync the directory holding PATH, so a file created or renamed in it
 * survives a crash.  Returns 0 or -errno. */
int br_fsync_parent_dir (const char *path);

#endif
