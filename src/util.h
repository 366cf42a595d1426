/* blockrelay — small helpers shared by the engine's modules. */
#ifndef BR_UTIL_H
#define BR_UTIL_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

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

/* Test hook: with BLOCKRELAY_CRASHPOINT=NAME in the environment the
 * process dies at once (_exit (99), nothing flushed, no atexit: a crash)
 * when it reaches the point named NAME.  The points are listed in
 * docs/operations.md.  Costs a getenv at each (rare) point otherwise. */
void br_crashpoint (const char *name);

/* Read or write all LEN bytes at OFF, retrying short transfers and EINTR.
 * 0, -errno, or -EIO when the file ends first (a read) or a write makes no
 * progress.  br_pwrite_full with BUF NULL writes zeros. */
int br_pread_full (int fd, void *buf, size_t len, uint64_t off);
int br_pwrite_full (int fd, const void *buf, size_t len, uint64_t off);

/* fsync the directory holding PATH, so a file created or renamed in it
 * survives a crash.  Returns 0 or -errno. */
int br_fsync_parent_dir (const char *path);

/* A mutex whose holder is known in debug builds, so that a function
 * documented "lock held" can assert it (BR_ASSERT_LOCKED).  Release
 * builds (NDEBUG) keep only the pthread mutex: no cost.  Condition waits
 * go through br_cond_wait / br_cond_timedwait, which keep the holder
 * right across the wait. */
struct br_mutex {
  pthread_mutex_t m;
#ifndef NDEBUG
  atomic_ulong owner;               /* pthread_self () of the holder, or 0 */
#endif
};

static inline void
br_mutex_init (struct br_mutex *l)
{
  pthread_mutex_init (&l->m, NULL);
#ifndef NDEBUG
  atomic_init (&l->owner, 0);
#endif
}

static inline void
br_mutex_destroy (struct br_mutex *l)
{
  pthread_mutex_destroy (&l->m);
}

static inline void
br__mutex_own (struct br_mutex *l, bool own)
{
#ifndef NDEBUG
  atomic_store_explicit (&l->owner, own ? (unsigned long) pthread_self () : 0,
                         memory_order_relaxed);
#else
  (void) l;
  (void) own;
#endif
}

static inline void
br_mutex_lock (struct br_mutex *l)
{
  pthread_mutex_lock (&l->m);
  br__mutex_own (l, true);
}

static inline void
br_mutex_unlock (struct br_mutex *l)
{
  br__mutex_own (l, false);
  pthread_mutex_unlock (&l->m);
}

static inline void
br_cond_wait (pthread_cond_t *c, struct br_mutex *l)
{
  br__mutex_own (l, false);
  pthread_cond_wait (c, &l->m);
  br__mutex_own (l, true);
}

static inline int
br_cond_timedwait (pthread_cond_t *c, struct br_mutex *l,
                   const struct timespec *ts)
{
  int r;

  br__mutex_own (l, false);
  r = pthread_cond_timedwait (c, &l->m, ts);
  br__mutex_own (l, true);
  return r;
}

#ifndef NDEBUG
#define BR_ASSERT_LOCKED(l)                                             \
  assert (atomic_load_explicit (&(l)->owner, memory_order_relaxed)      \
          == (unsigned long) pthread_self ())
#else
#define BR_ASSERT_LOCKED(l) ((void) 0)
#endif

#endif
