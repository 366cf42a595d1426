/* blockrelay — the local backing store of one volume.
 *
 * Design
 * ------
 * A volume is stored in a regular file (sparse, created on first open) or in
 * a block device (a partition, an LV, a loop device).  Either way it is one
 * descriptor opened O_RDWR and used only with positional I/O (pread, pwrite,
 * fallocate, ioctl), so any number of threads may share a br_disk without
 * locking: there is no file offset and no mutable state except the fault
 * counters, which are atomics.
 *
 * Sizes are never changed behind the operator's back: a file or device of
 * the wrong size is an error that names both sizes.  Every I/O is bounds
 * checked against the volume size (-EINVAL outside it).
 *
 * Durability: writes go through the page cache; br_disk_flush() is
 * fdatasync(), which also flushes the device's volatile write cache.
 *
 * Zeroing (NBD WRITE_ZEROES / TRIM):
 *   file, may_trim     fallocate(PUNCH_HOLE|KEEP_SIZE)   (deallocates)
 *   file               fallocate(ZERO_RANGE|KEEP_SIZE)
 *   block device, may_trim
 *                      fallocate(PUNCH_HOLE|KEEP_SIZE), which the kernel
 *                      implements as "write zeroes, unmapping allowed" and
 *                      refuses unless the device guarantees zeroes; then
 *                      BLKDISCARD if BLKDISCARDZEROES says discarded blocks
 *                      read back as zeros; then BLKZEROOUT
 *   block device       BLKZEROOUT (the kernel does not unmap for it)
 * Block device ioctls need logical-block alignment: the unaligned head and
 * tail of a range are written as zeros.  Whenever the kernel answers
 * EOPNOTSUPP, ENOTTY, ENOSYS (or EINVAL for an ioctl the device rejects) the
 * next method is tried, ending with plain writes from a static zero buffer,
 * so a zero request always reads back as zeros when it returns 0.
 *
 * Fault injection (BLOCKRELAY_FAULTS, format in disk.h) is parsed once at
 * open; rules whose path= filter does not match this disk are dropped then.
 * A faulted operation fails before touching the disk.
 *
 * Crash simulation (BLOCKRELAY_CRASHSIM=1 at open, regular files only; a
 * block device with the switch on is refused at open): d->cs is the
 * journal of crashsim.c.  Every write and zero then runs between
 * br_cs_write_begin (pre-image recorded, journal lock taken) and
 * br_cs_write_end, and every flush between br_cs_sync_begin/end; the
 * writes of one disk are serialized then (J1 in crashsim.c).  Off, d->cs
 * is NULL and costs one branch per operation.  The fault check comes
 * first, so a faulted operation records nothing.
 *
 * Errors: every function returns 0 or -errno; errno is saved before cleanup
 * calls (close, unlink) that could overwrite it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "disk.h"
#include "crashsim.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

enum fault_op { OP_READ, OP_WRITE, OP_SYNC, OP_ZERO, OP_COUNT };

struct fault {
  enum fault_op op;
  int err;                      /* positive errno */
  uint64_t after;
  uint64_t seen;                /* matching ops so far (atomic) */
};

struct br_disk {
  char *path;
  int fd;
  uint64_t size;
  bool blockdev;
  unsigned lbs;                 /* logical block size (block devices) */
  bool discard_zeroes;          /* BLKDISCARDZEROES */
  struct fault *faults;
  size_t nfaults;
  bool created;                 /* this open created the file */
  br_cs_journal *cs;            /* crash simulation, or NULL */
  atomic_uint_fast64_t errors;  /* failed I/O calls (br_disk_errors) */
};

#define ZERO_CHUNK (256 * 1024)
static const char zero_buf[ZERO_CHUNK];

/* Parse BLOCKRELAY_FAULTS for the disk at PATH.  Returns 0 or -EINVAL. */
static int
parse_faults (const char *path, br_disk *d, char *err, size_t errlen)
{
  static const char *ops[OP_COUNT] = { "read", "write", "sync", "zero" };
  const char *env = getenv ("BLOCKRELAY_FAULTS");
  char *copy, *rule, *save = NULL;
  int r = 0;

  if (!env || !*env)
    return 0;
  copy = strdup (env);
  if (!copy)
    return -ENOMEM;
  for (rule = strtok_r (copy, ",", &save); rule;
       rule = strtok_r (NULL, ",", &save)) {
    struct fault f = { .op = OP_COUNT };
    char *tok, *save2 = NULL, *whole = strdup (rule);
    const char *filter = NULL;
    int i, field = 0;

    if (!whole) {
      r = -ENOMEM;
      break;
    }
    for (tok = strtok_r (rule, ":", &save2); tok;
         tok = strtok_r (NULL, ":", &save2), field++) {
      if (field == 0) {
        for (i = 0; i < OP_COUNT; i++)
          if (strcmp (tok, ops[i]) == 0)
            f.op = (enum fault_op) i;
        if (f.op == OP_COUNT)
          goto bad;
      }
      else if (field == 1) {
        if (strcmp (tok, "EIO") == 0)
          f.err = EIO;
        else if (strcmp (tok, "ENOSPC") == 0)
          f.err = ENOSPC;
        else
          goto bad;
      }
      else if (strncmp (tok, "after=", 6) == 0) {
        char *end;

        errno = 0;
        f.after = strtoull (tok + 6, &end, 10);
        if (errno || end == tok + 6 || *end || tok[6] == '-')
          goto bad;
      }
      else if (strncmp (tok, "path=", 5) == 0 && tok[5])
        filter = tok + 5;
      else
        goto bad;
    }
    if (field < 2)
      goto bad;
    if (!filter || strstr (path, filter)) {
      struct fault *n = realloc (d->faults, (d->nfaults + 1) * sizeof *n);

      if (!n) {
        free (whole);
        r = -ENOMEM;
        break;
      }
      d->faults = n;
      d->faults[d->nfaults++] = f;
      br_debug (BR_DEBUG_IO, "%s: fault injection rule '%s'", path, whole);
    }
    free (whole);
    continue;
  bad:
    br_seterr (err, errlen, "BLOCKRELAY_FAULTS: bad rule '%s' (expected "
            "OP:ERRNO[:after=N][:path=SUBSTR] with OP read|write|sync|zero "
            "and ERRNO EIO|ENOSPC)", whole);
    free (whole);
    r = -EINVAL;
    break;
  }
  free (copy);
  return r;
}

/* 0, or -errno if an injected fault fires for OP. */
static int
fault (br_disk *d, enum fault_op op)
{
  size_t i;
  int r = 0;

  for (i = 0; i < d->nfaults; i++) {
    struct fault *f = &d->faults[i];

    if (f->op != op)
      continue;
    if (__atomic_fetch_add (&f->seen, 1, __ATOMIC_RELAXED) >= f->after
        && r == 0)
      r = -f->err;
  }
  if (r)
    br_debug (BR_DEBUG_IO, "%s: injected fault: %s", d->path, br_strerror (-r));
  return r;
}

/* Open PATH, creating a sparse file of SIZE if absent.  Returns fd or
 * -errno; *CREATED tells whether we made it. */
static int
open_or_create (const char *path, uint64_t size, bool *created,
                char *err, size_t errlen)
{
  int fd, e;

  *created = false;
  for (;;) {
    fd = open (path, O_RDWR | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT)
      break;
    fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
      continue;                 /* lost a race with another creator */
    if (fd >= 0) {
      *created = true;
      if (ftruncate (fd, (off_t) size) < 0) {
        e = errno;
        close (fd);
        unlink (path);
        br_seterr (err, errlen, "%s: cannot size new file to %" PRIu64
                " bytes: %s", path, size, br_strerror (e));
        return -e;
      }
      e = br_fsync_parent_dir (path);
      if (e < 0) {
        close (fd);
        unlink (path);
        br_seterr (err, errlen, "%s: fsync of the directory: %s", path,
                br_strerror (-e));
        return e;
      }
    }
    break;
  }
  if (fd < 0) {
    e = errno;
    br_seterr (err, errlen, "%s: %s", path, br_strerror (e));
    return -e;
  }
  return fd;
}

/* The opened D is a regular file or a block device of exactly d->size
 * bytes (a block device's sector size and discard behaviour recorded). */
static int
check_size (br_disk *d, char *err, size_t errlen)
{
  struct stat st;
  uint64_t actual;
  int r;

  if (fstat (d->fd, &st) < 0) {
    r = -errno;
    br_seterr (err, errlen, "%s: fstat: %s", d->path, br_strerror (-r));
    return r;
  }
  if (S_ISREG (st.st_mode))
    actual = (uint64_t) st.st_size;
  else if (S_ISBLK (st.st_mode)) {
    int lbs = 0, dz = 0;

    d->blockdev = true;
    if (ioctl (d->fd, BLKGETSIZE64, &actual) < 0) {
      r = -errno;
      br_seterr (err, errlen, "%s: BLKGETSIZE64: %s", d->path,
                 br_strerror (-r));
      return r;
    }
    d->lbs = ioctl (d->fd, BLKSSZGET, &lbs) == 0 && lbs > 0 ? (unsigned) lbs
      : 512;
    d->discard_zeroes = ioctl (d->fd, BLKDISCARDZEROES, &dz) == 0 && dz;
  }
  else {
    br_seterr (err, errlen, "%s: not a regular file or block device",
               d->path);
    return -EINVAL;
  }
  if (actual != d->size) {
    br_seterr (err, errlen, "%s: %s is %" PRIu64 " bytes but the volume is %"
               PRIu64 " bytes (refusing to resize it)", d->path,
               d->blockdev ? "block device" : "file", actual, d->size);
    return -EINVAL;
  }
  return 0;
}

int
br_disk_open (const char *path, uint64_t size, br_disk **out,
              char *err, size_t errlen)
{
  br_disk *d;
  bool created = false;
  int r, e;

  *out = NULL;
  if (size > (uint64_t) INT64_MAX) {
    br_seterr (err, errlen, "%s: size %" PRIu64 " is too large", path, size);
    return -EINVAL;
  }
  d = calloc (1, sizeof *d);
  if (!d || !(d->path = strdup (path))) {
    free (d);
    br_seterr (err, errlen, "%s: out of memory", path);
    return -ENOMEM;
  }
  d->fd = -1;
  d->size = size;
  r = parse_faults (path, d, err, errlen);
  if (r < 0) {
    if (r == -ENOMEM)
      br_seterr (err, errlen, "%s: out of memory", path);
    goto fail;
  }

  r = open_or_create (path, size, &created, err, errlen);
  if (r < 0)
    goto fail;
  d->fd = r;
  if ((r = check_size (d, err, errlen)) < 0)
    goto fail;
  if ((r = br_cs_mode (err, errlen)) > 0 && d->blockdev) {
    r = -ENOTSUP;
    br_seterr (err, errlen, "%s: %s=1 simulates power loss on regular "
               "files only, not on a block device", path, BR_CS_ENV);
  }
  else if (r > 0)
    r = br_cs_journal_open (path, d->fd, size, created, &d->cs, err,
                            errlen);
  if (r < 0)
    goto fail;
  br_debug (BR_DEBUG_IO, "%s: opened %s of %" PRIu64 " bytes%s", path,
            d->blockdev ? "block device" : "file", size,
            created ? " (created)" : "");
  d->created = created;
  *out = d;
  return 0;

 fail:
  e = r;
  if (d->fd >= 0)
    close (d->fd);
  if (created)
    unlink (path);
  free (d->faults);
  free (d->path);
  free (d);
  return e;
}

bool
br_disk_created (const br_disk *d)
{
  return d->created;
}

void
br_disk_close (br_disk *d)
{
  if (!d)
    return;
  br_cs_journal_close (d->cs);
  if (d->fd >= 0)
    close (d->fd);
  free (d->faults);
  free (d->path);
  free (d);
}

uint64_t
br_disk_size (const br_disk *d)
{
  return d->size;
}

bool
br_disk_is_blockdev (const br_disk *d)
{
  return d->blockdev;
}

const char *
br_disk_path (const br_disk *d)
{
  return d->path;
}

static bool
in_bounds (const br_disk *d, size_t count, uint64_t offset)
{
  return offset <= d->size && count <= d->size - offset;
}

static int
disk_pread_op (br_disk *d, void *buf, size_t count, uint64_t offset)
{
  int r;

  if (!in_bounds (d, count, offset))
    return -EINVAL;
  if ((r = fault (d, OP_READ)) < 0)
    return r;
  return br_pread_full (d->fd, buf, count, offset);  /* -EIO: truncated */
}

/* Write without the fault check (also used by the zero fallback). */
static int
write_all (br_disk *d, const void *buf, size_t count, uint64_t offset)
{
  return br_pwrite_full (d->fd, buf, count, offset);
}

static int
sim_pwrite (br_disk *d, const void *buf, size_t count, uint64_t offset)
{
  int r = br_cs_write_begin (d->cs, offset, count);

  if (r < 0)
    return r;
  r = write_all (d, buf, count, offset);
  br_cs_write_end (d->cs);
  return r;
}

static int
disk_pwrite_op (br_disk *d, const void *buf, size_t count, uint64_t offset)
{
  int r;

  if (!in_bounds (d, count, offset))
    return -EINVAL;
  if ((r = fault (d, OP_WRITE)) < 0)
    return r;
  if (__builtin_expect (d->cs != NULL, 0))
    return sim_pwrite (d, buf, count, offset);
  return write_all (d, buf, count, offset);
}

static int
datasync (br_disk *d)
{
  while (fdatasync (d->fd) < 0) {
    if (errno != EINTR)
      return -errno;
  }
  return 0;
}

static int
sim_flush (br_disk *d)
{
  struct br_cs_sync t;
  int r = br_cs_sync_begin (d->cs, &t);

  if (r < 0)
    return r;
  r = datasync (d);
  br_cs_sync_end (d->cs, &t, r == 0);
  return r;
}

static int
disk_flush_op (br_disk *d)
{
  int r;

  if ((r = fault (d, OP_SYNC)) < 0)
    return r;
  if (__builtin_expect (d->cs != NULL, 0))
    return sim_flush (d);
  return datasync (d);
}

static int
write_zeros (br_disk *d, uint64_t count, uint64_t offset)
{
  while (count > 0) {
    size_t n = count < ZERO_CHUNK ? (size_t) count : ZERO_CHUNK;
    int r = write_all (d, zero_buf, n, offset);

    if (r < 0)
      return r;
    count -= n;
    offset += n;
  }
  return 0;
}

/* Does ERRNO mean "this method is not available here, try the next"? */
static bool
unsupported (int e, bool ioctl_call)
{
  return e == EOPNOTSUPP || e == ENOTTY || e == ENOSYS
    || (ioctl_call && e == EINVAL);
}

/* Try fallocate MODE; 1 if unsupported, 0 or -errno otherwise. */
static int
try_fallocate (br_disk *d, int mode, uint64_t count, uint64_t offset)
{
  while (fallocate (d->fd, mode, (off_t) offset, (off_t) count) < 0) {
    if (errno == EINTR)
      continue;
    if (unsupported (errno, false))
      return 1;
    return -errno;
  }
  return 0;
}

static int
try_ioctl (br_disk *d, unsigned long req, uint64_t count, uint64_t offset)
{
  uint64_t range[2] = { offset, count };

  while (ioctl (d->fd, req, range) < 0) {
    if (errno == EINTR)
      continue;
    if (unsupported (errno, true))
      return 1;
    return -errno;
  }
  return 0;
}

static int
zero_blockdev (br_disk *d, uint64_t count, uint64_t offset, bool may_trim)
{
  uint64_t end = offset + count;
  uint64_t a = (offset + d->lbs - 1) / d->lbs * d->lbs;
  uint64_t b = end / d->lbs * d->lbs;
  int r = 1;

  if (a >= b)                   /* no whole logical block inside */
    return write_zeros (d, count, offset);
  if (a > offset && (r = write_zeros (d, a - offset, offset)) < 0)
    return r;
  if (b < end && (r = write_zeros (d, end - b, b)) < 0)
    return r;
  r = 1;
  if (may_trim) {
    r = try_fallocate (d, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                       b - a, a);
    if (r == 1 && d->discard_zeroes)
      r = try_ioctl (d, BLKDISCARD, b - a, a);
  }
  if (r == 1)
    r = try_ioctl (d, BLKZEROOUT, b - a, a);
  if (r == 1)
    r = write_zeros (d, b - a, a);
  return r;
}

/* A regular file: punch a hole, or zero the range, or write zeros. */
static int
zero_file (br_disk *d, size_t count, uint64_t offset, bool may_trim)
{
  int r = 1;

  if (may_trim)
    r = try_fallocate (d, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                       count, offset);
  if (r == 1)
    r = try_fallocate (d, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                       count, offset);
  if (r == 1)
    r = write_zeros (d, count, offset);
  return r;
}

static int
sim_zero (br_disk *d, size_t count, uint64_t offset, bool may_trim)
{
  int r = br_cs_write_begin (d->cs, offset, count);

  if (r < 0)
    return r;
  r = zero_file (d, count, offset, may_trim);
  br_cs_write_end (d->cs);
  return r;
}

static int
disk_zero_op (br_disk *d, size_t count, uint64_t offset, bool may_trim)
{
  int r;

  if (!in_bounds (d, count, offset))
    return -EINVAL;
  if ((r = fault (d, OP_ZERO)) < 0)
    return r;
  if (count == 0)
    return 0;
  if (d->blockdev)
    return zero_blockdev (d, count, offset, may_trim);
  if (__builtin_expect (d->cs != NULL, 0))
    return sim_zero (d, count, offset, may_trim);
  return zero_file (d, count, offset, may_trim);
}

/* The entry points: each failure is counted (br_disk_errors, the
 * local_io errors of the metrics). */
static int
counted (br_disk *d, int r)
{
  if (r < 0)
    atomic_fetch_add_explicit (&d->errors, 1, memory_order_relaxed);
  return r;
}

int
br_disk_pread (br_disk *d, void *buf, size_t count, uint64_t offset)
{
  return counted (d, disk_pread_op (d, buf, count, offset));
}

int
br_disk_pwrite (br_disk *d, const void *buf, size_t count, uint64_t offset)
{
  return counted (d, disk_pwrite_op (d, buf, count, offset));
}

int
br_disk_flush (br_disk *d)
{
  return counted (d, disk_flush_op (d));
}

int
br_disk_zero (br_disk *d, size_t count, uint64_t offset, bool may_trim)
{
  return counted (d, disk_zero_op (d, count, offset, may_trim));
}

uint64_t
br_disk_errors (const br_disk *d)
{
  return atomic_load_explicit (&((br_disk *) d)->errors,
                               memory_order_relaxed);
}
