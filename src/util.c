/* blockrelay — small helpers shared by the engine's modules.  See util.h. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
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
