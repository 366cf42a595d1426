/* Unit tests for src/disk.c (the volume layer). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-tmpdir.h"
#include "disk.h"

#define MiB (1024 * 1024)

static char tmpdir[64];
static char errbuf[512];

static void
setup (void)
{
  br_check_mkdtemp (tmpdir, sizeof tmpdir, "disk");
  errbuf[0] = '\0';
  unsetenv ("BLOCKRELAY_FAULTS");
}

static void
teardown (void)
{
  br_check_rmtree (tmpdir);
}

static const char *
tpath (const char *name)
{
  static char p[4][256];
  static int i;

  i = (i + 1) % 4;
  snprintf (p[i], sizeof p[i], "%s/%s", tmpdir, name);
  return p[i];
}

static br_disk *
must_open (const char *path, uint64_t size)
{
  br_disk *d = NULL;
  int r = br_disk_open (path, size, &d, errbuf, sizeof errbuf);

  ck_assert_msg (r == 0, "open %s: %d %s", path, r, errbuf);
  return d;
}

static void
fill (unsigned char *buf, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    buf[i] = (unsigned char) (seed + i * 7 + (i >> 9));
}

static bool
is_zero (const unsigned char *buf, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (buf[i])
      return false;
  return true;
}

START_TEST (test_create_sparse)
{
  const char *p = tpath ("vol.img");
  struct stat st;
  br_disk *d = must_open (p, 64 * MiB);

  ck_assert_int_eq (stat (p, &st), 0);
  ck_assert_uint_eq (st.st_size, 64 * MiB);
  ck_assert_uint_eq (st.st_mode & 0777, 0600);
  ck_assert_msg (st.st_blocks < 64, "not sparse: %ld blocks",
                 (long) st.st_blocks);
  ck_assert_uint_eq (br_disk_size (d), 64 * MiB);
  ck_assert (!br_disk_is_blockdev (d));
  ck_assert_str_eq (br_disk_path (d), p);
  br_disk_close (d);
}
END_TEST

START_TEST (test_reopen_keeps_data)
{
  const char *p = tpath ("vol.img");
  unsigned char in[4096], out[4096];
  br_disk *d = must_open (p, MiB);

  fill (in, sizeof in, 3);
  ck_assert_int_eq (br_disk_pwrite (d, in, sizeof in, 8192), 0);
  br_disk_close (d);
  d = must_open (p, MiB);
  ck_assert_int_eq (br_disk_pread (d, out, sizeof out, 8192), 0);
  ck_assert_mem_eq (in, out, sizeof in);
  br_disk_close (d);
}
END_TEST

START_TEST (test_size_mismatch)
{
  const char *p = tpath ("vol.img");
  br_disk *d = must_open (p, MiB);
  struct stat st;

  br_disk_close (d);
  d = (br_disk *) 1;
  ck_assert_int_eq (br_disk_open (p, 2 * MiB, &d, errbuf, sizeof errbuf),
                    -EINVAL);
  ck_assert_ptr_null (d);
  ck_assert_msg (strstr (errbuf, "1048576") && strstr (errbuf, "2097152")
                 && strstr (errbuf, p), "message: %s", errbuf);
  ck_assert_int_eq (stat (p, &st), 0);
  ck_assert_uint_eq (st.st_size, MiB);     /* never resized */
}
END_TEST

START_TEST (test_not_file_or_device)
{
  br_disk *d;

  ck_assert_int_eq (br_disk_open (tmpdir, MiB, &d, errbuf, sizeof errbuf),
                    -EISDIR);
  ck_assert_msg (strstr (errbuf, tmpdir), "message: %s", errbuf);
}
END_TEST

START_TEST (test_rw_roundtrip)
{
  static unsigned char in[3 * MiB + 777], out[sizeof in];
  br_disk *d = must_open (tpath ("vol.img"), 8 * MiB);

  fill (in, sizeof in, 11);
  ck_assert_int_eq (br_disk_pwrite (d, in, sizeof in, 12345), 0);
  ck_assert_int_eq (br_disk_pread (d, out, sizeof out, 12345), 0);
  ck_assert_mem_eq (in, out, sizeof in);
  ck_assert_int_eq (br_disk_pread (d, out, 12345, 0), 0);
  ck_assert (is_zero (out, 12345));
  br_disk_close (d);
}
END_TEST

START_TEST (test_out_of_range)
{
  unsigned char buf[512] = { 0 };
  br_disk *d = must_open (tpath ("vol.img"), MiB);

  ck_assert_int_eq (br_disk_pwrite (d, buf, 512, MiB - 256), -EINVAL);
  ck_assert_int_eq (br_disk_pread (d, buf, 512, MiB), -EINVAL);
  ck_assert_int_eq (br_disk_pread (d, buf, 1, UINT64_MAX), -EINVAL);
  ck_assert_int_eq (br_disk_zero (d, 2, MiB - 1, false), -EINVAL);
  ck_assert_int_eq (br_disk_pread (d, buf, 512, MiB - 512), 0);
  br_disk_close (d);
}
END_TEST

/* Write a pattern, zero an unaligned range inside it, check the range
 * reads as zeros and the bytes around it are intact. */
static void
check_zero (br_disk *d, bool may_trim)
{
  static unsigned char in[2 * MiB], out[sizeof in];
  const uint64_t base = 4096, zoff = 4096 + 1000, zlen = MiB + 5000;

  fill (in, sizeof in, 5);
  ck_assert_int_eq (br_disk_pwrite (d, in, sizeof in, base), 0);
  ck_assert_int_eq (br_disk_zero (d, zlen, zoff, may_trim), 0);
  ck_assert_int_eq (br_disk_pread (d, out, sizeof out, base), 0);
  ck_assert_mem_eq (out, in, zoff - base);
  ck_assert (is_zero (out + (zoff - base), zlen));
  ck_assert_mem_eq (out + (zoff - base) + zlen, in + (zoff - base) + zlen,
                    sizeof in - (zoff - base) - zlen);
}

START_TEST (test_zero_no_trim)
{
  br_disk *d = must_open (tpath ("vol.img"), 8 * MiB);

  check_zero (d, false);
  br_disk_close (d);
}
END_TEST

START_TEST (test_zero_trim_reads_zero)
{
  br_disk *d = must_open (tpath ("vol.img"), 8 * MiB);

  check_zero (d, true);
  br_disk_close (d);
}
END_TEST

START_TEST (test_zero_trim_deallocates)
{
  static unsigned char in[4 * MiB];
  const char *p = tpath ("vol.img");
  br_disk *d = must_open (p, 8 * MiB);
  struct stat before, after;

  fill (in, sizeof in, 9);
  ck_assert_int_eq (br_disk_pwrite (d, in, sizeof in, 0), 0);
  ck_assert_int_eq (br_disk_flush (d), 0);
  ck_assert_int_eq (stat (p, &before), 0);
  ck_assert_int_eq (br_disk_zero (d, sizeof in, 0, true), 0);
  ck_assert_int_eq (stat (p, &after), 0);
  ck_assert_msg (after.st_blocks + 4 * MiB / 512 / 2 <= before.st_blocks,
                 "blocks %ld -> %ld", (long) before.st_blocks,
                 (long) after.st_blocks);
  ck_assert_int_eq (br_disk_pread (d, in, sizeof in, 0), 0);
  ck_assert (is_zero (in, sizeof in));
  br_disk_close (d);
}
END_TEST

START_TEST (test_zero_no_trim_keeps_allocation)
{
  static unsigned char in[MiB];
  const char *p = tpath ("vol.img");
  br_disk *d = must_open (p, 8 * MiB);
  struct stat before, after;

  fill (in, sizeof in, 9);
  ck_assert_int_eq (br_disk_pwrite (d, in, sizeof in, 0), 0);
  ck_assert_int_eq (br_disk_flush (d), 0);
  ck_assert_int_eq (stat (p, &before), 0);
  ck_assert_int_eq (br_disk_zero (d, sizeof in, 0, false), 0);
  ck_assert_int_eq (stat (p, &after), 0);
  ck_assert_int_ge (after.st_blocks, before.st_blocks);
  br_disk_close (d);
}
END_TEST

/* tmpfs has no FALLOC_FL_ZERO_RANGE: the write-zeros fallback is used. */
START_TEST (test_zero_fallback_tmpfs)
{
  char shm[] = "/dev/shm/br-disk-XXXXXX";
  int fd = mkstemp (shm);
  br_disk *d;

  if (fd < 0) {
    fprintf (stderr, "SKIP: no /dev/shm\n");
    return;
  }
  close (fd);
  unlink (shm);
  d = must_open (shm, 8 * MiB);
  check_zero (d, false);
  check_zero (d, true);
  br_disk_close (d);
  unlink (shm);
}
END_TEST

START_TEST (test_flush)
{
  unsigned char buf[4096] = { 1 };
  br_disk *d = must_open (tpath ("vol.img"), MiB);

  ck_assert_int_eq (br_disk_pwrite (d, buf, sizeof buf, 0), 0);
  ck_assert_int_eq (br_disk_flush (d), 0);
  ck_assert_int_eq (br_disk_flush (d), 0);
  br_disk_close (d);
}
END_TEST

START_TEST (test_fault_write_after)
{
  unsigned char buf[512] = { 7 };
  br_disk *d;

  setenv ("BLOCKRELAY_FAULTS", "write:EIO:after=2", 1);
  d = must_open (tpath ("vol.img"), MiB);
  ck_assert_int_eq (br_disk_pwrite (d, buf, sizeof buf, 0), 0);
  ck_assert_int_eq (br_disk_pwrite (d, buf, sizeof buf, 512), 0);
  ck_assert_int_eq (br_disk_pwrite (d, buf, sizeof buf, 1024), -EIO);
  ck_assert_int_eq (br_disk_pwrite (d, buf, sizeof buf, 1536), -EIO);
  /* Other operations are unaffected; the failed write did nothing. */
  ck_assert_int_eq (br_disk_pread (d, buf, sizeof buf, 1024), 0);
  ck_assert (is_zero (buf, sizeof buf));
  ck_assert_int_eq (br_disk_flush (d), 0);
  br_disk_close (d);
}
END_TEST

START_TEST (test_fault_path_filter)
{
  unsigned char buf[512] = { 0 };
  br_disk *a, *b;

  setenv ("BLOCKRELAY_FAULTS", "write:ENOSPC:path=victim", 1);
  a = must_open (tpath ("bystander.img"), MiB);
  b = must_open (tpath ("victim.img"), MiB);
  ck_assert_int_eq (br_disk_pwrite (a, buf, sizeof buf, 0), 0);
  ck_assert_int_eq (br_disk_pwrite (b, buf, sizeof buf, 0), -ENOSPC);
  br_disk_close (a);
  br_disk_close (b);
}
END_TEST

START_TEST (test_fault_other_ops)
{
  unsigned char buf[512];
  br_disk *d;

  setenv ("BLOCKRELAY_FAULTS", "sync:EIO,zero:ENOSPC:after=1:path=x.img,"
          "read:EIO:after=3,write:EIO:path=elsewhere", 1);
  d = must_open (tpath ("x.img"), MiB);
  ck_assert_int_eq (br_disk_flush (d), -EIO);
  ck_assert_int_eq (br_disk_zero (d, 512, 0, false), 0);
  ck_assert_int_eq (br_disk_zero (d, 512, 0, true), -ENOSPC);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq (br_disk_pread (d, buf, sizeof buf, 0), 0);
  ck_assert_int_eq (br_disk_pread (d, buf, sizeof buf, 0), -EIO);
  br_disk_close (d);
}
END_TEST

/* The after=N counter is exact under concurrency. */
struct fault_worker { br_disk *d; int ok, failed; };

static void *
fault_writer (void *arg)
{
  struct fault_worker *w = arg;
  unsigned char buf[512] = { 0 };

  for (int i = 0; i < 500; i++) {
    int r = br_disk_pwrite (w->d, buf, sizeof buf, (uint64_t) i * 512);

    if (r == 0)
      w->ok++;
    else if (r == -EIO)
      w->failed++;
  }
  return NULL;
}

START_TEST (test_fault_counter_threads)
{
  struct fault_worker w[8];
  pthread_t t[8];
  int ok = 0, failed = 0;
  br_disk *d;

  setenv ("BLOCKRELAY_FAULTS", "write:EIO:after=1000", 1);
  d = must_open (tpath ("vol.img"), MiB);
  for (int i = 0; i < 8; i++) {
    w[i] = (struct fault_worker) { .d = d };
    ck_assert_int_eq (pthread_create (&t[i], NULL, fault_writer, &w[i]), 0);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join (t[i], NULL);
    ok += w[i].ok;
    failed += w[i].failed;
  }
  ck_assert_int_eq (ok, 1000);
  ck_assert_int_eq (failed, 3000);
  br_disk_close (d);
}
END_TEST

START_TEST (test_fault_bad_spec)
{
  static const char *bad[] = { "write", "write:EBADF", "frob:EIO",
    "write:EIO:after=x", "write:EIO:after=-1", "write:EIO:bogus=1" };
  br_disk *d;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    setenv ("BLOCKRELAY_FAULTS", bad[i], 1);
    errbuf[0] = '\0';
    ck_assert_int_eq (br_disk_open (tpath ("vol.img"), MiB, &d, errbuf,
                                    sizeof errbuf), -EINVAL);
    ck_assert_msg (strstr (errbuf, "BLOCKRELAY_FAULTS"), "%s: %s", bad[i],
                   errbuf);
    ck_assert_int_eq (access (tpath ("vol.img"), F_OK), -1);
  }
}
END_TEST

/* A loop device over a sparse file; "" when it cannot be made (not root,
 * no loop support), in which case the test is skipped.  LOOPFD keeps it
 * open with LO_FLAGS_AUTOCLEAR set, so the device goes away when the test
 * process exits, even if an assertion fails half way. */
static char loopdev[64];
static int loopfd = -1;

static bool
make_loop (uint64_t size)
{
  char cmd[512];
  FILE *f;
  int fd = open (tpath ("backing.img"), O_RDWR | O_CREAT, 0600);

  loopdev[0] = '\0';
  if (fd < 0 || ftruncate (fd, (off_t) size) < 0)
    return false;
  close (fd);
  snprintf (cmd, sizeof cmd, "losetup -f --show %s 2>/dev/null",
            tpath ("backing.img"));
  f = popen (cmd, "r");
  if (!f)
    return false;
  if (!fgets (loopdev, sizeof loopdev, f))
    loopdev[0] = '\0';
  if (pclose (f) != 0 || strncmp (loopdev, "/dev/", 5) != 0) {
    loopdev[0] = '\0';
    fprintf (stderr, "SKIP: losetup is not available (not root?)\n");
    return false;
  }
  loopdev[strcspn (loopdev, "\n")] = '\0';
  loopfd = open (loopdev, O_RDWR | O_CLOEXEC);
  if (loopfd >= 0) {
    struct loop_info64 info;

    if (ioctl (loopfd, LOOP_GET_STATUS64, &info) == 0) {
      info.lo_flags |= LO_FLAGS_AUTOCLEAR;
      ioctl (loopfd, LOOP_SET_STATUS64, &info);
    }
  }
  return true;
}

static void
drop_loop (void)
{
  char cmd[128];

  if (loopfd >= 0)
    close (loopfd);               /* autoclear detaches it ... */
  loopfd = -1;
  if (loopdev[0]) {               /* ... unless it could not be set */
    snprintf (cmd, sizeof cmd, "losetup -d %s 2>/dev/null", loopdev);
    if (system (cmd) != 0) {
      /* already detached by autoclear */
    }
  }
}

START_TEST (test_blockdev)
{
  static unsigned char in[MiB], out[MiB];
  br_disk *d;

  if (!make_loop (16 * MiB))
    return;
  ck_assert_int_eq (br_disk_open (loopdev, 8 * MiB, &d, errbuf,
                                  sizeof errbuf), -EINVAL);
  ck_assert_msg (strstr (errbuf, "16777216") && strstr (errbuf, "8388608"),
                 "message: %s", errbuf);
  d = must_open (loopdev, 16 * MiB);
  ck_assert (br_disk_is_blockdev (d));
  fill (in, sizeof in, 1);
  ck_assert_int_eq (br_disk_pwrite (d, in, sizeof in, 4096 + 3), 0);
  ck_assert_int_eq (br_disk_flush (d), 0);
  ck_assert_int_eq (br_disk_pread (d, out, sizeof out, 4096 + 3), 0);
  ck_assert_mem_eq (in, out, sizeof in);
  check_zero (d, false);
  check_zero (d, true);
  ck_assert_int_eq (br_disk_zero (d, 100, 5 * MiB + 7, true), 0);
  br_disk_close (d);
  drop_loop ();
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("disk");
  TCase *tc = tcase_create ("disk");
  SRunner *sr;
  int failed;

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_create_sparse);
  tcase_add_test (tc, test_reopen_keeps_data);
  tcase_add_test (tc, test_size_mismatch);
  tcase_add_test (tc, test_not_file_or_device);
  tcase_add_test (tc, test_rw_roundtrip);
  tcase_add_test (tc, test_out_of_range);
  tcase_add_test (tc, test_zero_no_trim);
  tcase_add_test (tc, test_zero_trim_reads_zero);
  tcase_add_test (tc, test_zero_trim_deallocates);
  tcase_add_test (tc, test_zero_no_trim_keeps_allocation);
  tcase_add_test (tc, test_zero_fallback_tmpfs);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_fault_write_after);
  tcase_add_test (tc, test_fault_path_filter);
  tcase_add_test (tc, test_fault_other_ops);
  tcase_add_test (tc, test_fault_counter_threads);
  tcase_add_test (tc, test_fault_bad_spec);
  tcase_add_test (tc, test_blockdev);
  suite_add_tcase (s, tc);
  sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? 1 : 0;
}
