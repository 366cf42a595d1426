/* blockrelay — recording what a power cut could lose (crash simulation).
 *
 * Design
 * ------
 * This file is the writing side of the simulation (the cut itself is in
 * crashsim-replay.c; the interface and the switch are in crashsim.h).  It
 * runs only when BLOCKRELAY_CRASHSIM=1 was set when a disk or scoreboard
 * was opened: disk.c and scoreboard.c keep a NULL pointer otherwise and
 * test it once per operation.
 *
 * Data disk: the journal "<disk>.crashsim".  Every write or zero first
 * appends undo records holding the range's pre-image (split into chunks of
 * at most BR_CS_CHUNK bytes; a chunk that was all zeros is a 'Z' record
 * without payload), then the disk operation runs, then a 'C' record says
 * it returned.  A sync appends 'B n' before fdatasync and 'E n' after it
 * succeeded.  Because the page cache survives a SIGKILL, so does the
 * journal: it is written with ordinary pwritev and never synced (it is a
 * test artifact, not a log that has to survive a real power loss).
 *
 * Invariants:
 *  J1 One write's pre-image read, its undo records, the disk write and its
 *     'C' all happen under the journal lock, so the writes of one disk are
 *     totally ordered in the journal and each pre-image is exactly the
 *     content the write replaced (concurrent writers are serialized: sim
 *     mode trades their parallelism for an unambiguous history; callers
 *     may issue overlapping writes).
 *  J2 'B' is appended under the same lock, so it never falls between a
 *     write's undo records and its 'C': a write whose 'C' precedes a 'B'
 *     returned before that fdatasync began, and is durable once 'E' of the
 *     same sync is in the journal (the replay rule, crashsim.h).  The
 *     fdatasync itself runs without the lock.
 *  J3 Records have a header checksum and a payload checksum; a record the
 *     process was killed in the middle of appending is the last one in the
 *     file (appends are serialized) and its write never started (undo
 *     records precede the write), so the replay ignores a torn tail.
 *  J4 Bounded: when a sync ends and no write completed since the newest
 *     durable 'B' (nothing volatile is left), the journal is truncated to
 *     its header; otherwise, once it is larger than compact_at, the records
 *     before that 'B' (all durable) are dropped by writing the rest to
 *     "<journal>.tmp" and renaming it over the journal (a SIGKILL leaves
 *     either file whole).  Positions are logical (pos - base + header), so
 *     tickets of syncs in flight stay valid across a compaction.  A disk
 *     that is never synced keeps every write volatile; its journal grows by
 *     the bytes written (as the page cache would hold them).
 *  J5 A journal error (ENOSPC on the journal's file system, say) is sticky:
 *     every later write and zero of the disk fails with it, so a broken
 *     simulation cannot pass a test silently.
 *
 * Scoreboard: the shadow "<meta>.crashsim" holds the durable image.  Each
 * msync through br_cs_shadow_msync copies the mapped range first (with
 * atomic loads: other threads set and clear bits meanwhile), msyncs, and
 * on success writes the copy into the shadow, so the shadow never holds a
 * bit that msync did not make durable (a copy taken after the msync could
 * hold bits set since, and hide an I1 violation).  The header page is
 * copied only by header msyncs, whose callers hold the header lock, and by
 * the first (whole-file) msync at open; header setters always msync the
 * header before they return, so the shadow's header lags by at most one
 * setter in progress.  The shadow lock serializes msyncs in sim mode, so
 * two copies can never be written back in the wrong order.
 *
 * Lock rules: the journal lock and the shadow lock are leaves (nothing is
 * acquired while one is held); the shadow lock is taken inside the
 * scoreboard's header lock.  The journal lock is held across the data
 * write of one operation (J1) but never across an fdatasync.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "crashsim.h"
#include "crashsim-format.h"
#include "log.h"
#include "util.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <xxhash.h>

int
br_cs_mode (char *err, size_t errlen)
{
  const char *v = getenv (BR_CS_ENV);

  if (v == NULL || *v == '\0' || strcmp (v, "0") == 0)
    return 0;
  if (strcmp (v, "1") == 0)
    return 1;
  br_seterr (err, errlen, "%s: bad value '%s' (expected 1 to simulate power "
             "loss, or 0)", BR_CS_ENV, v);
  return -EINVAL;
}

/* "<PATH><SUFFIX>" in a new string, or NULL. */
char *
br__cs_path (const char *path, const char *suffix)
{
  char *p;

  return asprintf (&p, "%s%s", path, suffix) < 0 ? NULL : p;
}

/* ---- format (crashsim-format.h) ---------------------------------------- */

static void
put32 (uint8_t *p, uint32_t v)
{
  v = htole32 (v);
  memcpy (p, &v, 4);
}

static void
put64 (uint8_t *p, uint64_t v)
{
  v = htole64 (v);
  memcpy (p, &v, 8);
}

static uint32_t
get32 (const uint8_t *p)
{
  uint32_t v;

  memcpy (&v, p, 4);
  return le32toh (v);
}

static uint64_t
get64 (const uint8_t *p)
{
  uint64_t v;

  memcpy (&v, p, 8);
  return le64toh (v);
}

uint32_t
br__cs_sum (const void *buf, size_t len)
{
  return XXH32 (buf, len, 0);
}

bool
br__cs_all_zero (const void *buf, size_t len)
{
  const uint8_t *p = buf;

  return len == 0 || (p[0] == 0 && memcmp (p, p + 1, len - 1) == 0);
}

void
br__cs_file_encode (uint8_t out[BR_CS_FILE_HDR], uint64_t disk_size)
{
  memset (out, 0, BR_CS_FILE_HDR);
  memcpy (out, BR_CS_MAGIC, 8);
  put32 (out + 8, BR_CS_VERSION);
  put32 (out + 12, BR_CS_FILE_HDR);
  put64 (out + 16, disk_size);
  put32 (out + 60, br__cs_sum (out, 60));
}

int
br__cs_file_decode (const uint8_t in[BR_CS_FILE_HDR], uint64_t *disk_size)
{
  if (memcmp (in, BR_CS_MAGIC, 8) != 0 || get32 (in + 8) != BR_CS_VERSION
      || get32 (in + 12) != BR_CS_FILE_HDR
      || get32 (in + 60) != br__cs_sum (in, 60))
    return -EINVAL;
  *disk_size = get64 (in + 16);
  return 0;
}

void
br__cs_rec_encode (uint8_t out[BR_CS_REC_HDR], uint32_t type, uint64_t id,
                   uint64_t off, uint64_t len, const void *payload)
{
  put32 (out, type);
  put32 (out + 4, payload ? (uint32_t) len : 0);
  put64 (out + 8, id);
  put64 (out + 16, off);
  put64 (out + 24, len);
  put32 (out + 32, payload ? br__cs_sum (payload, (size_t) len) : 0);
  put32 (out + 36, br__cs_sum (out, 36));
}

int
br__cs_rec_decode (const uint8_t in[BR_CS_REC_HDR], struct br_cs_rec *r)
{
  bool undo;

  if (get32 (in + 36) != br__cs_sum (in, 36))
    return -EINVAL;
  r->type = get32 (in);
  r->plen = get32 (in + 4);
  r->id = get64 (in + 8);
  r->off = get64 (in + 16);
  r->len = get64 (in + 24);
  r->psum = get32 (in + 32);
  undo = r->type == BR_CS_UNDO || r->type == BR_CS_ZERO;
  if (!undo && r->type != BR_CS_DONE && r->type != BR_CS_BEGIN
      && r->type != BR_CS_END)
    return -EINVAL;
  if (r->plen != (r->type == BR_CS_UNDO ? r->len : 0)
      || (undo && (r->len == 0 || r->len > BR_CS_CHUNK)))
    return -EINVAL;
  return 0;
}

/* ---- journal ------------------------------------------------------------ */

struct br_cs_journal {
  char *path;                   /* <disk>.crashsim */
  char *tmp;                    /* <disk>.crashsim.tmp (compaction) */
  int fd;
  int disk_fd;
  uint64_t size;                /* of the disk */
  pthread_mutex_t lock;
  uint8_t *buf;                 /* BR_CS_CHUNK bytes: pre-images */

  /* Under lock. */
  uint64_t end;                 /* logical position of the next record */
  uint64_t base;                /* logical position of the file's first */
  uint64_t rseq;                /* records appended (never reset) */
  uint64_t next_id, next_sync;
  uint64_t cur_id;              /* the write between begin and end */
  uint64_t last_c;              /* rseq of the newest 'C', 0 = none */
  uint64_t durable_b;           /* rseq of the newest 'B' with its 'E' */
  uint64_t durable_pos;         /* its position */
  uint64_t compact_at;          /* J4 */
  int err;                      /* sticky, J5 */
};

static uint64_t
file_off (const br_cs_journal *j, uint64_t pos)
{
  return BR_CS_FILE_HDR + pos - j->base;
}

/* Write all of IOV at OFF (retrying short writes).  0 or -errno. */
static int
pwritev_all (int fd, struct iovec *iov, int n, uint64_t off)
{
  while (n > 0) {
    ssize_t w = pwritev (fd, iov, n, (off_t) off);

    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return w < 0 ? -errno : -EIO;
    off += (uint64_t) w;
    while (n > 0 && (size_t) w >= iov->iov_len) {
      w -= (ssize_t) iov->iov_len;
      iov++, n--;
    }
    if (n > 0) {
      iov->iov_base = (char *) iov->iov_base + w;
      iov->iov_len -= (size_t) w;
    }
  }
  return 0;
}

/* Under lock: append one record.  0 or -errno (then sticky, J5). */
static int
append (br_cs_journal *j, uint32_t type, uint64_t id, uint64_t off,
        uint64_t len, const void *data)
{
  uint8_t h[BR_CS_REC_HDR];
  struct iovec iov[2];
  size_t plen = type == BR_CS_UNDO ? (size_t) len : 0;
  int r;

  if (j->err)
    return j->err;
  br__cs_rec_encode (h, type, id, off, len, plen ? data : NULL);
  iov[0] = (struct iovec) { h, sizeof h };
  iov[1] = (struct iovec) { (void *) data, plen };
  r = pwritev_all (j->fd, iov, plen ? 2 : 1, file_off (j, j->end));
  if (r < 0) {
    j->err = r;
    br_error ("crash simulation: cannot append to %s: %s (every later write "
              "of this disk fails)", j->path, br_strerror (-r));
    return r;
  }
  j->end += sizeof h + plen;
  j->rseq++;
  return 0;
}

/* Create PATH (truncated) holding only a journal header.  fd or -errno. */
static int
create_journal (const char *path, uint64_t size)
{
  uint8_t h[BR_CS_FILE_HDR];
  struct iovec iov = { h, sizeof h };
  int fd, r;

  fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  br__cs_file_encode (h, size);
  if ((r = pwritev_all (fd, &iov, 1, 0)) < 0) {
    close (fd);
    unlink (path);
    return r;
  }
  return fd;
}

int
br_cs_journal_open (const char *path, int disk_fd, uint64_t size,
                    bool created, br_cs_journal **out,
                    char *err, size_t errlen)
{
  br_cs_journal *j = calloc (1, sizeof *j);
  struct br_cs_stats st;
  const char *v;
  int r;

  *out = NULL;
  if (!j || !(j->path = br__cs_path (path, BR_CS_SUFFIX))
      || !(j->tmp = br__cs_path (path, BR_CS_SUFFIX ".tmp"))
      || !(j->buf = malloc (BR_CS_CHUNK))) {
    r = -ENOMEM;
    br_seterr (err, errlen, "%s: out of memory", path);
    goto fail;
  }
  j->fd = -1;
  j->disk_fd = disk_fd;
  j->size = size;
  j->compact_at = BR_CS_COMPACT_AT;
  if ((v = getenv (BR_CS_ENV "_COMPACT")) && *v)
    j->compact_at = strtoull (v, NULL, 0);      /* tests: small journals */
  unlink (j->tmp);              /* a compaction killed half-way */
  if (!created && access (j->path, F_OK) == 0) {
    r = br_cs_inspect (path, &st, err, errlen);
    if (r < 0)
      goto fail;
    if (st.volatile_writes > 0) {
      r = -EUCLEAN;
      br_seterr (err, errlen, "%s: the crash simulation journal %s holds %"
                 PRIu64 " writes that were not durable when the process "
                 "stopped (a simulated power cut not replayed yet): run "
                 "'br-powercut cut %s', or delete %s if no power cut "
                 "happened", path, j->path, st.volatile_writes, path,
                 j->path);
      goto fail;
    }
  }
  if ((j->fd = create_journal (j->path, size)) < 0) {
    r = j->fd;
    br_seterr (err, errlen, "%s: cannot create the crash simulation journal "
               "%s: %s", path, j->path, br_strerror (-r));
    goto fail;
  }
  pthread_mutex_init (&j->lock, NULL);
  br_info ("%s: simulating power loss (%s), journal %s", path, BR_CS_ENV,
           j->path);
  *out = j;
  return 0;

 fail:
  if (j) {
    free (j->buf);
    free (j->tmp);
    free (j->path);
  }
  free (j);
  return r;
}

void
br_cs_journal_close (br_cs_journal *j)
{
  if (!j)
    return;
  if (j->last_c > j->durable_b)
    br_warn ("crash simulation: %s kept: writes since the last fdatasync "
             "are not durable (a power cut would lose them)", j->path);
  else if (j->err == 0)
    unlink (j->path);
  close (j->fd);
  pthread_mutex_destroy (&j->lock);
  free (j->buf);
  free (j->tmp);
  free (j->path);
  free (j);
}

int
br_cs_write_begin (br_cs_journal *j, uint64_t off, uint64_t len)
{
  int r = 0;

  pthread_mutex_lock (&j->lock);
  j->cur_id = ++j->next_id;
  for (uint64_t done = 0; r == 0 && done < len; ) {
    size_t n = len - done < BR_CS_CHUNK ? (size_t) (len - done) : BR_CS_CHUNK;

    if ((r = j->err) < 0
        || (r = br_pread_full (j->disk_fd, j->buf, n, off + done)) < 0)
      break;
    r = append (j, br__cs_all_zero (j->buf, n) ? BR_CS_ZERO : BR_CS_UNDO,
                j->cur_id, off + done, n, j->buf);
    done += n;
  }
  if (r < 0) {
    br_error ("crash simulation: %s: recording the pre-image at %" PRIu64
              "+%" PRIu64 " failed: %s", j->path, off, len, br_strerror (-r));
    pthread_mutex_unlock (&j->lock);
  }
  return r;
}

void
br_cs_write_end (br_cs_journal *j)
{
  if (append (j, BR_CS_DONE, j->cur_id, 0, 0, NULL) == 0)
    j->last_c = j->rseq;
  pthread_mutex_unlock (&j->lock);
}

int
br_cs_sync_begin (br_cs_journal *j, struct br_cs_sync *t)
{
  int r;

  pthread_mutex_lock (&j->lock);
  t->n = ++j->next_sync;
  t->pos = j->end;
  r = append (j, BR_CS_BEGIN, t->n, 0, 0, NULL);
  t->rseq = j->rseq;
  pthread_mutex_unlock (&j->lock);
  return r;
}

/* Under lock: drop the records before the durable 'B' (J4) by copying the
 * rest into tmp and renaming it over the journal. */
static void
compact (br_cs_journal *j)
{
  uint64_t from = file_off (j, j->durable_pos), to = file_off (j, j->end);
  uint8_t h[BR_CS_FILE_HDR];
  struct iovec iov = { h, sizeof h };
  int fd, r = 0;

  fd = open (j->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    r = -errno;
    goto out;
  }
  br__cs_file_encode (h, j->size);
  r = pwritev_all (fd, &iov, 1, 0);
  for (uint64_t o = from; r == 0 && o < to; ) {
    size_t n = to - o < BR_CS_CHUNK ? (size_t) (to - o) : BR_CS_CHUNK;

    iov = (struct iovec) { j->buf, n };
    if ((r = br_pread_full (j->fd, j->buf, n, o)) == 0)
      r = pwritev_all (fd, &iov, 1, BR_CS_FILE_HDR + o - from);
    o += n;
  }
  if (r == 0 && rename (j->tmp, j->path) < 0)
    r = -errno;
 out:
  if (r < 0) {
    if (fd >= 0) {
      close (fd);
      unlink (j->tmp);
    }
    j->err = r;
    br_error ("crash simulation: compacting %s failed: %s", j->path,
              br_strerror (-r));
    return;
  }
  close (j->fd);
  j->fd = fd;
  br_debug (BR_DEBUG_IO, "crash simulation: %s compacted from %" PRIu64
            " to %" PRIu64 " bytes", j->path, to, to - from + BR_CS_FILE_HDR);
  j->base = j->durable_pos;
}

void
br_cs_sync_end (br_cs_journal *j, const struct br_cs_sync *t, bool ok)
{
  pthread_mutex_lock (&j->lock);
  if (ok && append (j, BR_CS_END, t->n, 0, 0, NULL) == 0
      && t->rseq > j->durable_b) {
    j->durable_b = t->rseq;
    j->durable_pos = t->pos;
  }
  if (j->err == 0 && j->last_c < j->durable_b && j->end > j->base) {
    /* Nothing volatile (no write is in flight: we hold the lock). */
    if (ftruncate (j->fd, BR_CS_FILE_HDR) < 0) {
      j->err = -errno;
      br_error ("crash simulation: cannot truncate %s: %s", j->path,
                br_strerror (errno));
    }
    j->base = j->end;
  }
  else if (j->err == 0 && j->durable_pos > j->base
           && j->end - j->base >= j->compact_at)
    compact (j);
  pthread_mutex_unlock (&j->lock);
}

/* ---- scoreboard shadow -------------------------------------------------- */

struct br_cs_shadow {
  char *path, *tmp;             /* <meta>.crashsim, and .tmp */
  int fd;                       /* -1 until the first msync */
  uint64_t size;
  uint64_t *snap;               /* SIZE bytes */
  pthread_mutex_t lock;
};

/* 1 if the files FD_A and FD_B (SIZE bytes each) are equal, 0 if not,
 * -errno. */
static int
same_content (int fd_a, int fd_b, uint64_t size)
{
  uint8_t *a = malloc (BR_CS_CHUNK), *b = malloc (BR_CS_CHUNK);
  int r = 1;

  if (!a || !b)
    r = -ENOMEM;
  for (uint64_t o = 0; r == 1 && o < size; o += BR_CS_CHUNK) {
    size_t n = size - o < BR_CS_CHUNK ? (size_t) (size - o) : BR_CS_CHUNK;
    int e = br_pread_full (fd_a, a, n, o);

    if (e == 0)
      e = br_pread_full (fd_b, b, n, o);
    r = e < 0 ? e : memcmp (a, b, n) == 0;
  }
  free (a);
  free (b);
  return r;
}

int
br_cs_shadow_open (const char *path, int fd, uint64_t size,
                   br_cs_shadow **out, char *err, size_t errlen)
{
  br_cs_shadow *s = calloc (1, sizeof *s);
  struct stat st;
  int r = 0, old;

  *out = NULL;
  if (!s || !(s->path = br__cs_path (path, BR_CS_SUFFIX))
      || !(s->tmp = br__cs_path (path, BR_CS_SUFFIX ".tmp"))
      || !(s->snap = malloc (size))) {
    r = -ENOMEM;
    br_seterr (err, errlen, "scoreboard %s: out of memory", path);
    goto fail;
  }
  s->fd = -1;
  s->size = size;
  unlink (s->tmp);
  if ((old = open (s->path, O_RDONLY | O_CLOEXEC)) >= 0) {
    r = fstat (old, &st) < 0 ? -errno
      : (uint64_t) st.st_size != size ? 0 : same_content (old, fd, size);
    close (old);
    if (r < 0) {
      br_seterr (err, errlen, "scoreboard %s: cannot read %s: %s", path,
                 s->path, br_strerror (-r));
      goto fail;
    }
    if (r == 0) {
      r = -EUCLEAN;
      br_seterr (err, errlen, "scoreboard %s: the crash simulation shadow %s "
                 "differs from it (a simulated power cut not replayed yet): "
                 "run 'br-powercut cut %s', or delete %s if no power cut "
                 "happened", path, s->path, path, s->path);
      goto fail;
    }
  }
  pthread_mutex_init (&s->lock, NULL);
  *out = s;
  return 0;

 fail:
  if (s) {
    free (s->snap);
    free (s->tmp);
    free (s->path);
  }
  free (s);
  return r;
}

/* Write the whole snapshot as tmp, rename it over the shadow. */
static int
shadow_create (br_cs_shadow *s)
{
  struct iovec iov = { s->snap, s->size };
  int fd, r;

  fd = open (s->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  r = pwritev_all (fd, &iov, 1, 0);
  if (r == 0 && rename (s->tmp, s->path) < 0)
    r = -errno;
  if (r < 0) {
    close (fd);
    unlink (s->tmp);
    return r;
  }
  s->fd = fd;
  return 0;
}

int
br_cs_shadow_msync (br_cs_shadow *s, void *map, size_t len, size_t hdr,
                    int (*msync_fn) (void *, size_t, void *), void *arg)
{
  const uint64_t *w = map;
  bool first;
  size_t from;
  int r;

  pthread_mutex_lock (&s->lock);
  first = s->fd < 0;
  if (first && len != s->size) {
    pthread_mutex_unlock (&s->lock);
    br_error ("crash simulation: %s: the first msync covers %zu of %" PRIu64
              " bytes", s->path, len, s->size);
    return -EINVAL;
  }
  from = first || len == hdr ? 0 : hdr;
  for (size_t i = from / 8; i < len / 8; i++)
    s->snap[i] = __atomic_load_n (&w[i], __ATOMIC_RELAXED);
  r = msync_fn (map, len, arg);
  if (r == 0) {
    struct iovec iov = { (uint8_t *) s->snap + from, len - from };

    r = first ? shadow_create (s) : pwritev_all (s->fd, &iov, 1, from);
    if (r < 0)
      br_error ("crash simulation: cannot write the shadow %s: %s", s->path,
                br_strerror (-r));
  }
  pthread_mutex_unlock (&s->lock);
  return r;
}

void
br_cs_shadow_close (br_cs_shadow *s, bool synced)
{
  if (!s)
    return;
  if (s->fd >= 0) {
    close (s->fd);
    if (synced)
      unlink (s->path);
  }
  pthread_mutex_destroy (&s->lock);
  free (s->snap);
  free (s->tmp);
  free (s->path);
  free (s);
}
