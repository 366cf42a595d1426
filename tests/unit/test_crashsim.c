/* Unit tests for the crash simulation (src/crashsim.c, crashsim-replay.c,
 * and its hooks in disk.c and scoreboard.c).
 *
 * A "crash" is a child process that does the I/O and then SIGKILLs itself,
 * leaving journals and shadows as a killed nbdkit or blockrelayd would; the
 * parent then replays the cut and checks what is left. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-tmpdir.h"
#include "crashsim.h"
#include "disk.h"
#include "scoreboard.h"

#define KiB 1024u
#define MiB (1024u * KiB)
#define DISK (4 * MiB)
#define BLK (4 * KiB)

static char tmpdir[64], img[128], jpath[128], meta[128], shadow[128];
static char errbuf[1024];

static void
setup (void)
{
  br_check_mkdtemp (tmpdir, sizeof tmpdir, "cs");
  snprintf (img, sizeof img, "%s/vol0.img", tmpdir);
  snprintf (jpath, sizeof jpath, "%s/vol0.img.crashsim", tmpdir);
  snprintf (meta, sizeof meta, "%s/vol0.meta", tmpdir);
  snprintf (shadow, sizeof shadow, "%s/vol0.meta.crashsim", tmpdir);
  setenv (BR_CS_ENV, "1", 1);
  unsetenv (BR_CS_ENV "_COMPACT");
  unsetenv ("BLOCKRELAY_FAULTS");
}

static void
teardown (void)
{
  br_check_rmtree (tmpdir);
}

static bool
exists (const char *p)
{
  return access (p, F_OK) == 0;
}

static br_disk *
open_disk (void)
{
  br_disk *d = NULL;
  int r = br_disk_open (img, DISK, &d, errbuf, sizeof errbuf);

  ck_assert_msg (r == 0, "open %s: %d %s", img, r, errbuf);
  return d;
}

/* Block content: every byte is V (0 = zeros). */
static void
put (br_disk *d, uint64_t off, size_t len, int v)
{
  static unsigned char buf[256 * KiB];

  ck_assert_uint_le (len, sizeof buf);
  memset (buf, v, len);
  ck_assert_int_eq (br_disk_pwrite (d, buf, len, off), 0);
}

/* Every byte of the image in [OFF, OFF+LEN) is V. */
static bool
holds (uint64_t off, size_t len, int v)
{
  unsigned char *buf = malloc (len);
  int fd = open (img, O_RDONLY);
  bool ok = fd >= 0 && pread (fd, buf, len, off) == (ssize_t) len;

  for (size_t i = 0; ok && i < len; i++)
    ok = buf[i] == v;
  close (fd);
  free (buf);
  return ok;
}

/* Run FN in a child that then dies of SIGKILL (no close, no exit). */
static void
crash_after (void (*fn) (void))
{
  pid_t pid = fork ();
  int status;

  ck_assert_int_ge (pid, 0);
  if (pid == 0) {
    fn ();
    kill (getpid (), SIGKILL);
    _exit (99);
  }
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert_msg (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL,
                 "child status %d (an assertion failed in it?)", status);
}

static struct br_cs_stats
cut (bool torn, uint64_t seed)
{
  struct br_cs_stats st;
  int r = br_cs_cut (img, torn, seed, &st, errbuf, sizeof errbuf);

  ck_assert_msg (r == 0, "cut: %d %s", r, errbuf);
  ck_assert (!exists (jpath));
  return st;
}

static void
copy_file (const char *from, const char *to)
{
  char cmd[512];

  snprintf (cmd, sizeof cmd, "cp --sparse=always '%s' '%s'", from, to);
  ck_assert_int_eq (system (cmd), 0);
}

/* ---- switch ------------------------------------------------------------- */

START_TEST (test_off_creates_nothing)
{
  br_scoreboard *sb;
  br_disk *d;

  unsetenv (BR_CS_ENV);
  d = open_disk ();
  ck_assert_int_eq (br_sb_open (meta, DISK, 64 * KiB, "a", &sb, errbuf,
                                sizeof errbuf), 0);
  put (d, 0, BLK, 1);
  ck_assert_int_eq (br_disk_zero (d, BLK, BLK, true), 0);
  ck_assert_int_eq (br_sb_mark (sb, 1, 0, BLK), 0);
  ck_assert (!exists (jpath) && !exists (shadow));
  ck_assert_int_eq (br_disk_flush (d), 0);
  ck_assert (!exists (jpath) && !exists (shadow));
  br_sb_close (sb, true);
  br_disk_close (d);
  setenv (BR_CS_ENV, "0", 1);
  d = open_disk ();
  put (d, 0, BLK, 2);
  ck_assert (!exists (jpath));
  br_disk_close (d);
}
END_TEST

START_TEST (test_bad_value_refused)
{
  br_scoreboard *sb;
  br_disk *d;

  setenv (BR_CS_ENV, "yes", 1);
  ck_assert_int_eq (br_disk_open (img, DISK, &d, errbuf, sizeof errbuf),
                    -EINVAL);
  ck_assert_msg (strstr (errbuf, "yes"), "message: %s", errbuf);
  ck_assert_int_eq (br_sb_open (meta, DISK, 64 * KiB, "a", &sb, errbuf,
                                sizeof errbuf), -EINVAL);
}
END_TEST

START_TEST (test_clean_close_removes)
{
  br_scoreboard *sb;
  br_disk *d = open_disk ();

  ck_assert (exists (jpath));
  ck_assert_int_eq (br_sb_open (meta, DISK, 64 * KiB, "a", &sb, errbuf,
                                sizeof errbuf), 0);
  ck_assert (exists (shadow));
  put (d, 0, BLK, 1);
  ck_assert_int_eq (br_disk_flush (d), 0);
  br_sb_close (sb, true);
  br_disk_close (d);
  ck_assert (!exists (jpath) && !exists (shadow));
}
END_TEST

/* ---- data disk ---------------------------------------------------------- */

static void
synced_then_not (void)
{
  br_disk *d = open_disk ();

  put (d, 0, 64 * KiB, 1);            /* durable */
  put (d, 64 * KiB, 8 * KiB, 2);      /* durable */
  ck_assert_int_eq (br_disk_flush (d), 0);
  put (d, 128 * KiB, 64 * KiB, 3);    /* volatile, over zeros */
  put (d, 4 * KiB, 4 * KiB, 4);       /* volatile, over write 1 */
  put (d, 4 * KiB, 4 * KiB, 5);       /* and again */
  ck_assert_int_eq (br_disk_zero (d, 8 * KiB, 64 * KiB, true), 0);
}

START_TEST (test_unsynced_lost)
{
  struct br_cs_stats st;

  crash_after (synced_then_not);
  ck_assert (holds (4 * KiB, 4 * KiB, 5));     /* the page cache kept it */
  ck_assert_int_eq (br_cs_inspect (img, &st, errbuf, sizeof errbuf), 0);
  ck_assert_uint_eq (st.writes, 4);           /* the flush truncated it */
  ck_assert_uint_eq (st.volatile_writes, 4);
  st = cut (false, 0);
  ck_assert_uint_eq (st.volatile_bytes, (64 + 4 + 8) * KiB);
  ck_assert_uint_eq (st.rolled_back, st.sectors);
  ck_assert (holds (0, 64 * KiB, 1));
  ck_assert (holds (64 * KiB, 8 * KiB, 2));
  ck_assert (holds (128 * KiB, 64 * KiB, 0));
  ck_assert (holds (192 * KiB, DISK - 192 * KiB, 0));
}
END_TEST

static void
unsynced (void)
{
  br_disk *d = open_disk ();

  put (d, 0, BLK, 7);
}

START_TEST (test_leftover_journal_refused)
{
  br_disk *d;

  crash_after (unsynced);
  ck_assert_int_eq (br_disk_open (img, DISK, &d, errbuf, sizeof errbuf),
                    -EUCLEAN);
  ck_assert_msg (strstr (errbuf, "br-powercut cut"), "message: %s", errbuf);
  /* Closing with a write not synced keeps the journal too. */
  cut (false, 0);
  ck_assert (holds (0, BLK, 0));
  d = open_disk ();
  put (d, 0, BLK, 8);
  br_disk_close (d);
  ck_assert (exists (jpath));
  ck_assert_int_eq (br_disk_open (img, DISK, &d, errbuf, sizeof errbuf),
                    -EUCLEAN);
}
END_TEST

static void
all_synced (void)
{
  br_disk *d = open_disk ();

  put (d, 0, BLK, 9);
  ck_assert_int_eq (br_disk_flush (d), 0);
}

START_TEST (test_leftover_durable_journal_discarded)
{
  crash_after (all_synced);
  ck_assert (exists (jpath));
  br_disk_close (open_disk ());
  ck_assert (!exists (jpath));
  ck_assert (holds (0, BLK, 9));
}
END_TEST

/* Versions 1 (durable), 2, 3, 4 of one 4K block; then one 512-byte write
 * (5) inside it. */
static void
versions (void)
{
  br_disk *d = open_disk ();

  put (d, 8 * KiB, BLK, 1);
  ck_assert_int_eq (br_disk_flush (d), 0);
  put (d, 8 * KiB, BLK, 2);
  put (d, 8 * KiB, BLK, 3);
  put (d, 8 * KiB, BLK, 4);
  put (d, 8 * KiB + 1024, 512, 5);
}

START_TEST (test_torn_versions)
{
  char save_img[160], save_jnl[160];
  unsigned seen[8][6] = { { 0 } };
  unsigned char buf[BLK];

  crash_after (versions);
  snprintf (save_img, sizeof save_img, "%s.save", img);
  snprintf (save_jnl, sizeof save_jnl, "%s.save", jpath);
  copy_file (img, save_img);
  copy_file (jpath, save_jnl);
  for (uint64_t seed = 1; seed <= 200; seed++) {
    int fd;

    copy_file (save_img, img);
    copy_file (save_jnl, jpath);
    cut (true, seed);
    fd = open (img, O_RDONLY);
    ck_assert_int_eq (pread (fd, buf, BLK, 8 * KiB), BLK);
    close (fd);
    for (int s = 0; s < 8; s++) {
      int v = buf[s * 512];

      for (int i = 0; i < 512; i++)
        ck_assert_msg (buf[s * 512 + i] == v, "seed %" PRIu64 ": sector %d "
                       "mixes versions", seed, s);
      ck_assert_msg (v >= 1 && v <= 4 + (s == 2), "seed %" PRIu64 ": sector "
                     "%d holds %d", seed, s, v);
      seen[s][v]++;
    }
    ck_assert (holds (0, 8 * KiB, 0) && holds (12 * KiB, 4 * KiB, 0));
  }
  /* Every version of every sector came up (uniform: 50 of 200 each). */
  for (int s = 0; s < 8; s++)
    for (int v = 1; v <= 4 + (s == 2); v++)
      ck_assert_msg (seen[s][v] > 10, "sector %d version %d: %u times", s, v,
                     seen[s][v]);
}
END_TEST

/* Writers on their own blocks and a flusher: a write that returned before
 * a flush began that succeeded survives the cut. */
#define THREADS 4
#define ROUNDS 300
#define NBLK 16

static uint64_t done_ctr[THREADS][NBLK];        /* atomic */
static uint64_t durable_ctr[THREADS][NBLK];     /* flusher's view */
static br_disk *shared;
static int stop_flag;                           /* atomic */

static void *
writer (void *arg)
{
  int t = (int) (intptr_t) arg;
  uint64_t buf[BLK / 8];

  for (uint64_t c = 1; c <= ROUNDS; c++) {
    int b = (int) (c * 7 % NBLK);
    uint64_t off = ((uint64_t) b * THREADS + (uint64_t) t) * BLK;

    for (size_t i = 0; i < BLK / 8; i++)
      buf[i] = c << 8 | (uint64_t) t;
    ck_assert_int_eq (br_disk_pwrite (shared, buf, BLK, off), 0);
    __atomic_store_n (&done_ctr[t][b], c, __ATOMIC_RELEASE);
  }
  return NULL;
}

static void *
flusher (void *arg)
{
  int fd = *(int *) arg;

  while (!__atomic_load_n (&stop_flag, __ATOMIC_ACQUIRE)) {
    uint64_t snap[THREADS][NBLK];

    for (int t = 0; t < THREADS; t++)
      for (int b = 0; b < NBLK; b++)
        snap[t][b] = __atomic_load_n (&done_ctr[t][b], __ATOMIC_ACQUIRE);
    ck_assert_int_eq (br_disk_flush (shared), 0);
    memcpy (durable_ctr, snap, sizeof snap);
    if (write (fd, snap, sizeof snap) != sizeof snap)
      abort ();
  }
  return NULL;
}

static int pipefd[2];

static void
concurrent (void)
{
  pthread_t w[THREADS], f;

  shared = open_disk ();
  pthread_create (&f, NULL, flusher, &pipefd[1]);
  for (int t = 0; t < THREADS; t++)
    pthread_create (&w[t], NULL, writer, (void *) (intptr_t) t);
  for (int t = 0; t < THREADS; t++)
    pthread_join (w[t], NULL);
  __atomic_store_n (&stop_flag, 1, __ATOMIC_RELEASE);
  pthread_join (f, NULL);
  put (shared, DISK - BLK, BLK, 1);     /* one volatile write at least */
}

START_TEST (test_concurrent_writers_sync)
{
  uint64_t snap[THREADS][NBLK] = { { 0 } }, got[BLK / 8];
  struct br_cs_stats st;
  ssize_t n;
  int fd;

  ck_assert_int_eq (pipe (pipefd), 0);
  ck_assert_int_eq (fcntl (pipefd[0], F_SETPIPE_SZ, 1 << 20) > 0, 1);
  setenv (BR_CS_ENV "_COMPACT", "65536", 1);     /* compaction runs too */
  crash_after (concurrent);
  close (pipefd[1]);
  while ((n = read (pipefd[0], got, sizeof snap)) > 0) {
    ck_assert_int_eq (n, sizeof snap);
    memcpy (snap, got, sizeof snap);    /* the last durable snapshot */
  }
  close (pipefd[0]);
  st = cut (false, 0);
  ck_assert_uint_ge (st.volatile_writes, 1);
  fd = open (img, O_RDONLY);
  for (int t = 0; t < THREADS; t++)
    for (int b = 0; b < NBLK; b++) {
      uint64_t off = ((uint64_t) b * THREADS + (uint64_t) t) * BLK, c;

      ck_assert_int_eq (pread (fd, got, BLK, off), BLK);
      c = got[0] >> 8;
      for (size_t i = 0; i < BLK / 8; i++)
        ck_assert_uint_eq (got[i], got[0]);
      ck_assert_msg (c >= snap[t][b] && (c == 0 || (got[0] & 0xff) ==
                                         (uint64_t) t),
                     "thread %d block %d: holds %" PRIu64 ", durable was %"
                     PRIu64, t, b, c, snap[t][b]);
    }
  close (fd);
}
END_TEST

/* Overlapping writes from several threads, none synced: the cut must give
 * back the image as it was (no pre-image misattributed). */
static void *
overlapper (void *arg)
{
  int t = (int) (intptr_t) arg;
  static unsigned char bufs[THREADS][96 * KiB];

  for (int c = 0; c < 200; c++) {
    uint64_t off = (uint64_t) ((c * 13 + t * 5) % 40) * KiB;

    memset (bufs[t], 16 + t * 40 + c % 40, sizeof bufs[t]);
    ck_assert_int_eq (br_disk_pwrite (shared, bufs[t], sizeof bufs[t], off),
                      0);
  }
  return NULL;
}

static void
overlapping (void)
{
  pthread_t w[THREADS];

  shared = open_disk ();
  put (shared, 0, 160 * KiB, 3);
  ck_assert_int_eq (br_disk_flush (shared), 0);
  for (int t = 0; t < THREADS; t++)
    pthread_create (&w[t], NULL, overlapper, (void *) (intptr_t) t);
  for (int t = 0; t < THREADS; t++)
    pthread_join (w[t], NULL);
}

START_TEST (test_overlapping_writers)
{
  crash_after (overlapping);
  cut (false, 0);
  ck_assert (holds (0, 160 * KiB, 3));
  ck_assert (holds (160 * KiB, DISK - 160 * KiB, 0));
}
END_TEST

/* The journal's own interface, driven step by step: a write lands between
 * the 'B' and the 'E' of every sync, so something is always volatile and
 * the journal must be compacted (J4), not truncated. */
static void
journal_steps (void)
{
  struct br_cs_sync t;
  br_cs_journal *j;
  unsigned char buf[BLK];
  struct stat st;
  int fd = open (img, O_RDWR | O_CREAT, 0600);

  ck_assert_int_eq (ftruncate (fd, DISK), 0);
  ck_assert_int_eq (br_cs_journal_open (img, fd, DISK, true, &j, errbuf,
                                        sizeof errbuf), 0);
  for (int i = 1; i <= 200; i++) {
    ck_assert_int_eq (br_cs_sync_begin (j, &t), 0);
    memset (buf, i, sizeof buf);
    ck_assert_int_eq (br_cs_write_begin (j, (uint64_t) (i % 16) * BLK, BLK),
                      0);
    ck_assert_int_eq (pwrite (fd, buf, BLK, (i % 16) * BLK), BLK);
    br_cs_write_end (j);
    br_cs_sync_end (j, &t, fdatasync (fd) == 0);
    ck_assert_int_eq (stat (jpath, &st), 0);
    ck_assert_msg (st.st_size < 64 * KiB + 2 * (BLK + 200), "write %d: "
                   "journal of %jd bytes", i, (intmax_t) st.st_size);
  }
}

START_TEST (test_compaction)
{
  struct br_cs_stats st;

  setenv (BR_CS_ENV "_COMPACT", "65536", 1);
  crash_after (journal_steps);
  st = cut (false, 0);
  ck_assert_uint_eq (st.volatile_writes, 1);    /* write 200 */
  for (int b = 0; b < 16; b++) {
    int last = 192 + b <= 200 ? 192 + b : 176 + b;

    /* Write 200 (block 8) is lost: block 8 holds write 184. */
    ck_assert_msg (holds ((uint64_t) b * BLK, BLK, b == 8 ? 184 : last),
                   "block %d", b);
  }
}
END_TEST

/* ---- scoreboard --------------------------------------------------------- */

#define SBSIZE (64 * MiB)
#define SBGRAN (4 * KiB)     /* 16384 regions: 4 sectors of bitmap per slot */

static br_scoreboard *
open_sb (void)
{
  br_scoreboard *sb = NULL;
  int r = br_sb_open (meta, SBSIZE, SBGRAN, "a", &sb, errbuf, sizeof errbuf);

  ck_assert_msg (r == 0, "open %s: %d %s", meta, r, errbuf);
  return sb;
}

/* Region 3 marked (durable), 5 marked then cleared (lazily), 9000 set in
 * the page cache only (as the kernel could hold a store not yet msynced). */
static void
sb_ops (void)
{
  br_scoreboard *sb = open_sb ();
  int slot = br_sb_peer_slot (sb, "b"), fd;
  uint64_t word;

  ck_assert_int_eq (slot, 0);
  ck_assert_int_eq (br_sb_mark (sb, 1, 3 * SBGRAN, 1), 0);
  ck_assert_int_eq (br_sb_mark (sb, 1, 5 * SBGRAN, 1), 0);
  ck_assert (br_sb_clear (sb, slot, 5));
  fd = open (meta, O_RDWR);
  word = htole64 (1ull << (9000 % 64));
  ck_assert_int_eq (pwrite (fd, &word, 8, 4096 + 9000 / 64 * 8), 8);
  close (fd);
}

static br_sb_image *
load_meta (void)
{
  br_sb_image *im;

  ck_assert_int_eq (br_sb_image_load (meta, &im, errbuf, sizeof errbuf), 0);
  ck_assert_int_eq (br_sb_image_slot (im, "b"), 0);
  return im;
}

START_TEST (test_scoreboard_cut)
{
  char save_meta[160], save_shadow[160];
  unsigned outcomes[4] = { 0 };
  br_scoreboard *sb;
  br_sb_image *im;
  struct br_cs_stats st;

  crash_after (sb_ops);
  ck_assert_int_eq (br_sb_open (meta, SBSIZE, SBGRAN, "a", &sb, errbuf,
                                sizeof errbuf), -EUCLEAN);
  ck_assert_msg (strstr (errbuf, "br-powercut cut"), "message: %s", errbuf);
  snprintf (save_meta, sizeof save_meta, "%s.save", meta);
  snprintf (save_shadow, sizeof save_shadow, "%s.save", shadow);
  copy_file (meta, save_meta);
  copy_file (shadow, save_shadow);

  ck_assert_int_eq (br_cs_cut (meta, false, 0, &st, errbuf, sizeof errbuf),
                    0);
  ck_assert (st.scoreboard && st.sectors == 2 && st.rolled_back == 2);
  im = load_meta ();
  ck_assert (br_sb_image_test (im, 0, 3));
  ck_assert (br_sb_image_test (im, 0, 5));      /* the clear was lost */
  ck_assert (!br_sb_image_test (im, 0, 9000));  /* so was the store */
  br_sb_image_free (im);

  for (uint64_t seed = 1; seed <= 64; seed++) {
    copy_file (save_meta, meta);
    copy_file (save_shadow, shadow);
    ck_assert_int_eq (br_cs_cut (meta, true, seed, &st, errbuf,
                                 sizeof errbuf), 0);
    im = load_meta ();
    ck_assert (br_sb_image_test (im, 0, 3));    /* msynced: always there */
    outcomes[br_sb_image_test (im, 0, 5) * 2
             + br_sb_image_test (im, 0, 9000)]++;
    br_sb_image_free (im);
  }
  for (int o = 0; o < 4; o++)
    ck_assert_msg (outcomes[o] > 4, "outcome %d: %u of 64", o, outcomes[o]);
  ck_assert (!exists (shadow));
  br_sb_close (open_sb (), true);
  ck_assert (!exists (shadow));
}
END_TEST

/* Marks from several threads while header setters msync the header page
 * and a thread clears other regions: after the crash, every mark that
 * returned is set whatever the cut (S1 through the shadow). */
static br_scoreboard *shared_sb;

static void *
marker (void *arg)
{
  int t = (int) (intptr_t) arg, fd = pipefd[1];

  for (uint32_t i = 0; i < 300; i++) {
    uint32_t rg = (i * 2654435761u + (uint32_t) t * 977) % 8000;

    ck_assert_int_eq (br_sb_mark (shared_sb, 1, (uint64_t) rg * SBGRAN, 1),
                      0);
    ck_assert_int_eq (br_sb_mark (shared_sb, 1, (8000 + (uint64_t) rg) *
                                  SBGRAN, 1), 0);
    if (write (fd, &rg, sizeof rg) != sizeof rg)
      abort ();
  }
  return NULL;
}

static void *
churner (void *arg)
{
  for (uint64_t i = 1; !__atomic_load_n (&stop_flag, __ATOMIC_ACQUIRE); i++) {
    ck_assert_int_eq (br_sb_set_peer_gen (shared_sb, 0, i), 0);
    br_sb_clear (shared_sb, 0, 8000 + i % 8000);
  }
  return NULL;
}

static void
sb_concurrent (void)
{
  pthread_t w[THREADS], ch;

  shared_sb = open_sb ();
  ck_assert_int_eq (br_sb_peer_slot (shared_sb, "b"), 0);
  pthread_create (&ch, NULL, churner, NULL);
  for (int t = 0; t < THREADS; t++)
    pthread_create (&w[t], NULL, marker, (void *) (intptr_t) t);
  for (int t = 0; t < THREADS; t++)
    pthread_join (w[t], NULL);
  __atomic_store_n (&stop_flag, 1, __ATOMIC_RELEASE);
  pthread_join (ch, NULL);
}

START_TEST (test_scoreboard_concurrent)
{
  struct br_cs_stats st;
  br_sb_image *im;
  uint32_t rg;
  unsigned n = 0;

  ck_assert_int_eq (pipe (pipefd), 0);
  ck_assert_int_eq (fcntl (pipefd[0], F_SETPIPE_SZ, 1 << 20) > 0, 1);
  crash_after (sb_concurrent);
  close (pipefd[1]);
  ck_assert_int_eq (br_cs_cut (meta, true, 42, &st, errbuf, sizeof errbuf),
                    0);
  im = load_meta ();
  while (read (pipefd[0], &rg, sizeof rg) == sizeof rg) {
    ck_assert_msg (br_sb_image_test (im, 0, rg), "region %u lost", rg);
    n++;
  }
  ck_assert_uint_eq (n, THREADS * 300);
  close (pipefd[0]);
  br_sb_image_free (im);
}
END_TEST

/* ---- cover -------------------------------------------------------------- */

START_TEST (test_cover)
{
  uint64_t differ, bits, uncovered;
  char other[160];
  br_scoreboard *sb;
  br_disk *d;

  unsetenv (BR_CS_ENV);
  snprintf (other, sizeof other, "%s/b.img", tmpdir);
  d = open_disk ();
  put (d, 0, BLK, 1);
  br_disk_close (d);
  copy_file (img, other);
  d = open_disk ();
  put (d, 0, 1, 2);                             /* region 0 */
  put (d, 3 * 64 * KiB + 100, 10, 3);           /* region 3 */
  br_disk_close (d);
  sb = NULL;
  ck_assert_int_eq (br_sb_open (meta, DISK, 64 * KiB, "a", &sb, errbuf,
                                sizeof errbuf), 0);
  ck_assert_int_eq (br_sb_peer_slot (sb, "b"), 0);
  ck_assert_int_eq (br_sb_mark (sb, 1, 0, 1), 0);
  ck_assert_int_eq (br_sb_mark (sb, 1, 7 * 64 * KiB, 1), 0);
  br_sb_close (sb, true);
  ck_assert_int_eq (br_cs_cover (img, meta, "b", other, &differ, &bits,
                                 &uncovered, NULL, NULL, errbuf,
                                 sizeof errbuf), 0);
  ck_assert_uint_eq (differ, 2);
  ck_assert_uint_eq (bits, 2);
  ck_assert_uint_eq (uncovered, 1);             /* region 3 */
  ck_assert_int_eq (br_cs_cover (img, meta, "c", other, &differ, &bits,
                                 &uncovered, NULL, NULL, errbuf,
                                 sizeof errbuf), -ENOENT);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("crashsim");
  TCase *tc = tcase_create ("crashsim");
  SRunner *sr;
  int failed;

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_off_creates_nothing);
  tcase_add_test (tc, test_bad_value_refused);
  tcase_add_test (tc, test_clean_close_removes);
  tcase_add_test (tc, test_unsynced_lost);
  tcase_add_test (tc, test_leftover_journal_refused);
  tcase_add_test (tc, test_leftover_durable_journal_discarded);
  tcase_add_test (tc, test_torn_versions);
  tcase_add_test (tc, test_concurrent_writers_sync);
  tcase_add_test (tc, test_overlapping_writers);
  tcase_add_test (tc, test_compaction);
  tcase_add_test (tc, test_scoreboard_cut);
  tcase_add_test (tc, test_scoreboard_concurrent);
  tcase_add_test (tc, test_cover);
  suite_add_tcase (s, tc);
  sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? 1 : 0;
}
