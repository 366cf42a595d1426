/* blockrelay — small helpers shared by the engine's modules.  See util.h.
 *
 * br_escape_text() works in two passes over the (bounded) input: the
 * length of the whole escaped text first, so that it knows before writing
 * whether the "..." marker is needed and can stop at the last escape that
 * leaves room for it.  One function, escape_byte(), says how a byte is
 * written, for both passes. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
br_seterr (char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if (!err || errlen == 0)
    return;
  va_start (ap, fmt);
  vsnprintf (err, errlen, fmt, ap);
  va_end (ap);
}

const char *
br_strerror (int errnum)
{
  const char *d = strerrordesc_np (errnum);

  return d ? d : "unknown error";
}

/* The escape of byte C into E (at least 4 bytes); returns its length. */
static size_t
escape_byte (unsigned char c, char *e)
{
  static const char hex[] = "0123456789abcdef";

  if (c == '\\') {
    e[0] = e[1] = '\\';
    return 2;
  }
  if (c >= 0x20 && c < 0x7f) {
    e[0] = c;
    return 1;
  }
  e[0] = '\\';
  e[1] = 'x';
  e[2] = hex[c >> 4];
  e[3] = hex[c & 15];
  return 4;
}

const char *
br_escape_text (char *buf, size_t size, const char *text, size_t len)
{
  static const char more[] = "...";
  const size_t more_len = sizeof more - 1;
  size_t i, n, out = 0, total = 0, room;
  bool cut;
  char e[4];

  if (size == 0)
    return buf;
  len = strnlen (text, len);
  for (i = 0; i < len && total < size; i++)
    total += escape_byte (text[i], e);
  cut = total >= size;          /* it does not fit with its NUL */
  /* The bytes for escapes: all of them, or what leaves room for "...". */
  room = !cut ? total : size - 1 > more_len ? size - 1 - more_len : 0;
  for (i = 0; i < len; i++) {
    n = escape_byte (text[i], e);
    if (out + n > room)
      break;
    memcpy (buf + out, e, n);
    out += n;
  }
  if (cut) {
    n = size - 1 - out < more_len ? size - 1 - out : more_len;
    memcpy (buf + out, more, n);
    out += n;
  }
  buf[out] = '\0';
  return buf;
}

int
br_pread_full (int fd, void *buf, size_t len, uint64_t off)
{
  uint8_t *p = buf;

  while (len > 0) {
    ssize_t n = pread (fd, p, len, (off_t) off);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? -errno : -EIO;
    p += n;
    len -= (size_t) n;
    off += (uint64_t) n;
  }
  return 0;
}

int
br_pwrite_full (int fd, const void *buf, size_t len, uint64_t off)
{
  static const uint8_t zeros[65536];
  const uint8_t *p = buf;

  while (len > 0) {
    size_t n = p || len < sizeof zeros ? len : sizeof zeros;
    ssize_t w = pwrite (fd, p ? (const void *) p : zeros, n, (off_t) off);

    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return w < 0 ? -errno : -EIO;
    if (p)
      p += w;
    len -= (size_t) w;
    off += (uint64_t) w;
  }
  return 0;
}

int
br_fsync_parent_dir (const char *path)
{
  char *copy = strdup (path);
  int fd, r = 0;

  if (!copy)
    return -ENOMEM;
  fd = open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync (fd) < 0)
    r = -errno;
  if (fd >= 0)
    close (fd);
  free (copy);
  return r;
}

void
br_crashpoint (const char *name)
{
  const char *want = getenv ("BLOCKRELAY_CRASHPOINT");

  if (want && strcmp (want, name) == 0) {
    fprintf (stderr, "blockrelay: crash point %s reached: exiting\n", name);
    _exit (99);
  }
}
