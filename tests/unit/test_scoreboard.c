/* Unit tests for src/scoreboard.c (the persistent dirty bitmaps). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check-tmpdir.h"
#include "log.h"
#include "scoreboard.h"

#define KiB 1024ull
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define GRAN (64 * KiB)

static char tmpdir[64];
static char sbpath[128];
static char errbuf[512];

static void
setup (void)
{
  br_check_mkdtemp (tmpdir, sizeof tmpdir, "sb");
  snprintf (sbpath, sizeof sbpath, "%s/vol0.sb", tmpdir);
  errbuf[0] = '\0';
}

static void
teardown (void)
{
  br_check_rmtree (tmpdir);
}

static br_scoreboard *
must_open (uint64_t size, uint32_t gran)
{
  br_scoreboard *sb = NULL;
  int r = br_sb_open (sbpath, size, gran, "site-a", &sb, errbuf,
                      sizeof errbuf);

  ck_assert_msg (r == 0, "open: %d %s", r, errbuf);
  return sb;
}

static int
try_open (uint64_t size, uint32_t gran)
{
  br_scoreboard *sb = NULL;
  int r;

  errbuf[0] = '\0';
  r = br_sb_open (sbpath, size, gran, "site-a", &sb, errbuf, sizeof errbuf);
  if (r == 0)
    br_sb_close (sb, true);
  else
    ck_assert_ptr_null (sb);
  return r;
}

static uint64_t
bitmap_bytes (uint64_t nregions)
{
  return ((nregions + 7) / 8 + 4095) / 4096 * 4096;
}

static void
pread_at (const char *path, void *buf, size_t len, off_t off)
{
  int fd = open (path, O_RDONLY);

  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (pread (fd, buf, len, off), (ssize_t) len);
  close (fd);
}

static void
pwrite_at (const char *path, const void *buf, size_t len, off_t off)
{
  int fd = open (path, O_WRONLY);

  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (pwrite (fd, buf, len, off), (ssize_t) len);
  close (fd);
}

START_TEST (test_create_layout)
{
  br_scoreboard *sb = must_open (GiB, GRAN);
  uint64_t nreg = GiB / GRAN, v64;
  uint32_t v32;
  char magic[8];
  struct stat st;
  char tmp[160];

  ck_assert_uint_eq (br_sb_nregions (sb), nreg);
  ck_assert_uint_eq (br_sb_granularity (sb), GRAN);
  ck_assert (br_sb_was_clean (sb));
  ck_assert_uint_eq (br_sb_flags (sb), BR_SB_CONSISTENT | BR_SB_FRESH);
  ck_assert_uint_ne (br_sb_gen (sb), 0);
  for (int s = 0; s < BR_SB_MAX_PEERS; s++) {
    ck_assert_uint_eq (br_sb_count (sb, s), 0);
    ck_assert_str_eq (br_sb_peer_name (sb, s), "");
  }
  ck_assert_int_eq (stat (sbpath, &st), 0);
  ck_assert_uint_eq (st.st_size, 4096 + 8 * bitmap_bytes (nreg));
  ck_assert_uint_eq (st.st_mode & 0777, 0600);
  snprintf (tmp, sizeof tmp, "%s.tmp", sbpath);
  ck_assert_int_eq (access (tmp, F_OK), -1);
  pread_at (sbpath, magic, 8, 0);
  ck_assert_mem_eq (magic, "BRSCORE1", 8);
  pread_at (sbpath, &v32, 4, 8);
  ck_assert_uint_eq (le32toh (v32), 2);
  pread_at (sbpath, &v64, 8, 16);
  ck_assert_uint_eq (le64toh (v64), GiB);
  pread_at (sbpath, &v32, 4, 24);
  ck_assert_uint_eq (le32toh (v32), GRAN);
  pread_at (sbpath, &v32, 4, 28);
  ck_assert_uint_eq (le32toh (v32), BR_SB_MAX_PEERS);
  pread_at (sbpath, &v64, 8, 32);
  ck_assert_uint_eq (le64toh (v64), nreg);
  pread_at (sbpath, &v64, 8, 64);
  ck_assert_uint_eq (le64toh (v64), br_sb_gen (sb));
  pread_at (sbpath, tmp, 7, 72);
  ck_assert_mem_eq (tmp, "site-a", 7);
  br_sb_close (sb, true);
}
END_TEST

START_TEST (test_reopen_preserves)
{
  br_scoreboard *sb = must_open (GiB, GRAN);
  uint8_t uuid1[16], uuid2[16];
  int b, c;

  br_sb_uuid (sb, uuid1);
  ck_assert_int_eq (br_sb_set_gen (sb, 0x1122334455667788ull), 0);
  b = br_sb_peer_slot (sb, "site-b");
  c = br_sb_peer_slot (sb, "site-c");
  ck_assert_int_eq (b, 0);
  ck_assert_int_eq (c, 1);
  ck_assert_int_eq (br_sb_set_peer_gen (sb, c, 42), 0);
  ck_assert_int_eq (br_sb_mark (sb, 1u << b, 3 * GRAN, 1), 0);
  ck_assert_int_eq (br_sb_mark (sb, 1u << c, GiB - 1, 1), 0);
  br_sb_close (sb, true);

  sb = must_open (GiB, GRAN);
  br_sb_uuid (sb, uuid2);
  ck_assert_mem_eq (uuid1, uuid2, 16);
  ck_assert_uint_eq (br_sb_gen (sb), 0x1122334455667788ull);
  ck_assert_str_eq (br_sb_peer_name (sb, 0), "site-b");
  ck_assert_str_eq (br_sb_peer_name (sb, 1), "site-c");
  ck_assert_int_eq (br_sb_peer_slot (sb, "site-c"), 1);
  ck_assert_uint_eq (br_sb_peer_gen (sb, 1), 42);
  ck_assert_uint_eq (br_sb_peer_gen (sb, 0), 0);
  ck_assert_uint_eq (br_sb_count (sb, 0), 1);
  ck_assert_uint_eq (br_sb_count (sb, 1), 1);
  ck_assert (br_sb_test (sb, 0, 3));
  ck_assert (br_sb_test (sb, 1, GiB / GRAN - 1));
  br_sb_close (sb, true);
}
END_TEST

START_TEST (test_size_mismatch)
{
  ck_assert_int_eq (try_open (GiB, GRAN), 0);
  ck_assert_int_eq (try_open (2 * GiB, GRAN), -EINVAL);
  ck_assert_msg (strstr (errbuf, sbpath) && strstr (errbuf, "volume size")
                 && strstr (errbuf, "1073741824")
                 && strstr (errbuf, "2147483648"), "message: %s", errbuf);
}
END_TEST

START_TEST (test_granularity_mismatch)
{
  ck_assert_int_eq (try_open (GiB, GRAN), 0);
  ck_assert_int_eq (try_open (GiB, 4096), -EINVAL);
  ck_assert_msg (strstr (errbuf, sbpath) && strstr (errbuf, "granularity")
                 && strstr (errbuf, "65536") && strstr (errbuf, "4096"),
                 "message: %s", errbuf);
}
END_TEST

START_TEST (test_bad_granularity_refused)
{
  ck_assert_int_eq (try_open (GiB, 3000), -EINVAL);
  ck_assert_int_eq (try_open (0, GRAN), -EINVAL);
  ck_assert_int_eq (access (sbpath, F_OK), -1);
}
END_TEST

START_TEST (test_corrupt_magic)
{
  ck_assert_int_eq (try_open (GiB, GRAN), 0);
  pwrite_at (sbpath, "XXXXXXXX", 8, 0);
  ck_assert_int_eq (try_open (GiB, GRAN), -EINVAL);
  ck_assert_msg (strstr (errbuf, sbpath) && strstr (errbuf, "magic"),
                 "message: %s", errbuf);
}
END_TEST

START_TEST (test_wrong_file_size)
{
  ck_assert_int_eq (try_open (GiB, GRAN), 0);
  ck_assert_int_eq (truncate (sbpath, 8192), 0);
  ck_assert_int_eq (try_open (GiB, GRAN), -EINVAL);
  ck_assert_msg (strstr (errbuf, "file size") && strstr (errbuf, "8192"),
                 "message: %s", errbuf);
  ck_assert_int_eq (truncate (sbpath, 100), 0);
  ck_assert_int_eq (try_open (GiB, GRAN), -EINVAL);
  ck_assert_msg (strstr (errbuf, "100 bytes"), "message: %s", errbuf);
}
END_TEST

/* A PATH.tmp left by a creation that crashed is replaced, not trusted. */
START_TEST (test_stale_tmp_replaced)
{
  char tmp[160];
  int fd;

  snprintf (tmp, sizeof tmp, "%s.tmp", sbpath);
  fd = open (tmp, O_WRONLY | O_CREAT, 0600);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (write (fd, "garbage", 7), 7);
  close (fd);
  ck_assert_int_eq (try_open (GiB, GRAN), 0);
  ck_assert_int_eq (access (tmp, F_OK), -1);
  ck_assert_int_eq (try_open (GiB, GRAN), 0);
}
END_TEST

START_TEST (test_second_open_busy)
{
  br_scoreboard *sb = must_open (GiB, GRAN);

  ck_assert_int_eq (try_open (GiB, GRAN), -EBUSY);
  ck_assert_msg (strstr (errbuf, "in use"), "message: %s", errbuf);
  br_sb_close (sb, true);
  ck_assert_int_eq (try_open (GiB, GRAN), 0);
}
END_TEST

/* Exactly regions [R0, R1] of SLOT are set. */
static void
assert_exact (br_scoreboard *sb, int slot, uint64_t r0, uint64_t r1)
{
  for (uint64_t r = 0; r < br_sb_nregions (sb); r++)
    ck_assert_msg (br_sb_test (sb, slot, r) == (r >= r0 && r <= r1),
                   "slot %d region %" PRIu64 " (want %" PRIu64 "..%" PRIu64
                   ")", slot, r, r0, r1);
  ck_assert_uint_eq (br_sb_count (sb, slot), r1 - r0 + 1);
}

static void
clear_all (br_scoreboard *sb, int slot)
{
  for (uint64_t r = 0; r < br_sb_nregions (sb); r++)
    br_sb_clear (sb, slot, r);
  ck_assert_uint_eq (br_sb_count (sb, slot), 0);
}

START_TEST (test_mark_partial_regions)
{
  /* 4 KiB regions, a 1 MiB + 100 byte volume: 257 regions, the last one
   * partial, so the last bitmap word is partial too. */
  static const struct { uint64_t off, len, r0, r1; } c[] = {
    { 0, 1, 0, 0 }, { 100, 1, 0, 0 }, { 4095, 1, 0, 0 }, { 4095, 2, 0, 1 },
    { 4096, 4096, 1, 1 }, { 4096, 4097, 1, 2 }, { 1000, 3 * 4096, 0, 3 },
    { 63 * 4096, 4096, 63, 63 }, { 63 * 4096 + 1, 4096, 63, 64 },
    { 60 * 4096 + 5, 70 * 4096, 60, 130 }, { 256 * 4096, 100, 256, 256 },
    { 255 * 4096 + 4095, 2, 255, 256 }, { 0, MiB + 100, 0, 256 },
  };
  br_scoreboard *sb = must_open (MiB + 100, 4096);

  ck_assert_uint_eq (br_sb_nregions (sb), 257);
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    ck_assert_int_eq (br_sb_mark (sb, 1u << 3, c[i].off, c[i].len), 0);
    assert_exact (sb, 3, c[i].r0, c[i].r1);
    ck_assert_uint_eq (br_sb_count (sb, 2), 0);
    ck_assert_uint_eq (br_sb_count (sb, 4), 0);
    clear_all (sb, 3);
  }
  br_sb_close (sb, true);
}
END_TEST

START_TEST (test_mark_bounds)
{
  br_scoreboard *sb = must_open (MiB, 4096);

  ck_assert_int_eq (br_sb_mark (sb, 1, MiB - 1, 2), -EINVAL);
  ck_assert_int_eq (br_sb_mark (sb, 1, MiB + 1, 0), -EINVAL);
  ck_assert_int_eq (br_sb_mark (sb, 1, UINT64_MAX, 2), -EINVAL);
  ck_assert_int_eq (br_sb_mark (sb, 1u << BR_SB_MAX_PEERS, 0, 1), -EINVAL);
  ck_assert_int_eq (br_sb_mark (sb, 1, 4096, 0), 0);
  ck_assert_int_eq (br_sb_mark (sb, 0, 4096, 4096), 0);
  ck_assert_uint_eq (br_sb_count (sb, 0), 0);
  ck_assert_int_eq (br_sb_mark_all (sb, BR_SB_MAX_PEERS), -EINVAL);
  ck_assert (!br_sb_clear (sb, 0, 256));
  ck_assert (!br_sb_test (sb, -1, 0));
  br_sb_close (sb, true);
}
END_TEST

START_TEST (test_mark_slot_mask)
{
  br_scoreboard *sb = must_open (MiB, 4096);

  ck_assert_int_eq (br_sb_mark (sb, 0x85, 8192, 8192), 0);
  for (int s = 0; s < BR_SB_MAX_PEERS; s++) {
    if (0x85 & (1u << s))
      assert_exact (sb, s, 2, 3);
    else
      ck_assert_uint_eq (br_sb_count (sb, s), 0);
  }
  br_sb_close (sb, true);
}
END_TEST

START_TEST (test_count_next_clear)
{
  br_scoreboard *sb = must_open (MiB, 4096);        /* 256 regions */

  ck_assert_int_eq (br_sb_next_set (sb, 1, 0), -1);
  ck_assert_int_eq (br_sb_mark (sb, 2, 5 * 4096, 1), 0);
  ck_assert_int_eq (br_sb_mark (sb, 2, 64 * 4096, 1), 0);
  ck_assert_int_eq (br_sb_mark (sb, 2, 255 * 4096, 4096), 0);
  ck_assert_uint_eq (br_sb_count (sb, 1), 3);
  ck_assert_int_eq (br_sb_next_set (sb, 1, 0), 5);
  ck_assert_int_eq (br_sb_next_set (sb, 1, 5), 5);
  ck_assert_int_eq (br_sb_next_set (sb, 1, 6), 64);
  ck_assert_int_eq (br_sb_next_set (sb, 1, 65), 255);
  ck_assert_int_eq (br_sb_next_set (sb, 1, 256), -1);
  ck_assert (br_sb_clear (sb, 1, 64));
  ck_assert (!br_sb_clear (sb, 1, 64));           /* already clear */
  ck_assert_uint_eq (br_sb_count (sb, 1), 2);
  ck_assert_int_eq (br_sb_next_set (sb, 1, 6), 255);
  ck_assert (br_sb_clear (sb, 1, 255));
  ck_assert_int_eq (br_sb_next_set (sb, 1, 6), -1);
  ck_assert_uint_eq (br_sb_count (sb, 0), 0);
  /* A clear reaches the file on sync/close. */
  br_sb_close (sb, true);
  sb = must_open (MiB, 4096);
  ck_assert_uint_eq (br_sb_count (sb, 1), 1);
  ck_assert_int_eq (br_sb_next_set (sb, 1, 0), 5);
  br_sb_close (sb, true);
}
END_TEST

START_TEST (test_mark_all)
{
  br_scoreboard *sb = must_open (MiB + 100, 4096);

  ck_assert_int_eq (br_sb_mark_all (sb, 6), 0);
  assert_exact (sb, 6, 0, 256);
  ck_assert_uint_eq (br_sb_count (sb, 5), 0);
  br_sb_close (sb, false);
  sb = must_open (MiB + 100, 4096);
  ck_assert_uint_eq (br_sb_count (sb, 6), 257);
  br_sb_close (sb, true);
}
END_TEST

START_TEST (test_fast_path_no_sync)
{
  br_scoreboard *sb = must_open (GiB, GRAN);
  struct br_sb_stats a, b;

  ck_assert_int_eq (br_sb_mark (sb, 3, 10 * GRAN, 5 * GRAN), 0);
  br_sb_get_stats (sb, &a);
  ck_assert_uint_ge (a.msync_rounds, 1);
  ck_assert_uint_eq (a.slow_marks, 1);
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq (br_sb_mark (sb, 1 + (i & 1), 11 * GRAN + i, 4096), 0);
  br_sb_get_stats (sb, &b);
  ck_assert_uint_eq (b.msync_rounds, a.msync_rounds);
  ck_assert_uint_eq (b.slow_marks, a.slow_marks);
  /* A new bit needs a new round. */
  ck_assert_int_eq (br_sb_mark (sb, 1, 15 * GRAN, 1), 0);
  br_sb_get_stats (sb, &b);
  ck_assert_uint_eq (b.msync_rounds, a.msync_rounds + 1);
  br_sb_close (sb, true);
}
END_TEST

START_TEST (test_peer_slots)
{
  br_scoreboard *sb = must_open (GiB, GRAN);
  char name[BR_SB_PEER_NAME_MAX + 8];

  for (int i = 0; i < BR_SB_MAX_PEERS; i++) {
    snprintf (name, sizeof name, "peer-%d", i);
    ck_assert_int_eq (br_sb_peer_slot (sb, name), i);
  }
  ck_assert_int_eq (br_sb_peer_slot (sb, "peer-5"), 5);
  ck_assert_int_eq (br_sb_peer_slot (sb, "one-too-many"), -ENOSPC);
  ck_assert_int_eq (br_sb_peer_slot (sb, ""), -EINVAL);
  memset (name, 'x', BR_SB_PEER_NAME_MAX);
  name[BR_SB_PEER_NAME_MAX] = '\0';
  ck_assert_int_eq (br_sb_peer_slot (sb, name), -EINVAL);
  br_sb_close (sb, false);
  sb = must_open (GiB, GRAN);
  ck_assert_str_eq (br_sb_peer_name (sb, 7), "peer-7");
  ck_assert_int_eq (br_sb_peer_slot (sb, "peer-3"), 3);
  ck_assert_int_eq (br_sb_peer_slot (sb, "one-too-many"), -ENOSPC);
  br_sb_close (sb, true);
}
END_TEST

START_TEST (test_was_clean)
{
  br_scoreboard *sb = must_open (GiB, GRAN);
  uint32_t flags;

  ck_assert (br_sb_was_clean (sb));
  pread_at (sbpath, &flags, 4, 40);
  ck_assert_uint_eq (le32toh (flags) & BR_SB_CLEAN, 0);    /* durably */
  br_sb_close (sb, false);
  sb = must_open (GiB, GRAN);
  ck_assert (!br_sb_was_clean (sb));
  br_sb_close (sb, true);
  pread_at (sbpath, &flags, 4, 40);
  ck_assert_uint_eq (le32toh (flags), BR_SB_CLEAN | BR_SB_CONSISTENT | BR_SB_FRESH);
  sb = must_open (GiB, GRAN);
  ck_assert (br_sb_was_clean (sb));
  ck_assert_uint_eq (br_sb_flags (sb), BR_SB_CONSISTENT | BR_SB_FRESH);
  br_sb_close (sb, true);
}
END_TEST

/* Every new generation pushes the old one into a bounded, persistent
 * history; forgetting clears it. */
START_TEST (test_generation_history)
{
  br_scoreboard *sb = must_open (GiB, GRAN);
  uint64_t first = br_sb_gen (sb), h0;

  ck_assert (br_sb_gen_known (sb, first));
  ck_assert (!br_sb_gen_known (sb, 0));
  for (uint64_t g = 1001; g <= 1000 + BR_SB_HISTORY; g++)
    ck_assert_int_eq (br_sb_set_gen (sb, g), 0);
  ck_assert (br_sb_gen_known (sb, first));          /* the 8th entry */
  ck_assert_int_eq (br_sb_set_gen (sb, 2000), 0);
  ck_assert (!br_sb_gen_known (sb, first));         /* pushed out */
  ck_assert (br_sb_gen_known (sb, 1001));
  ck_assert (br_sb_gen_known (sb, 2000));
  ck_assert_int_eq (br_sb_set_gen (sb, 2000), 0);   /* same: no push */
  pread_at (sbpath, &h0, 8, 648);
  ck_assert_uint_eq (le64toh (h0), 1000 + BR_SB_HISTORY);
  br_sb_close (sb, true);

  sb = must_open (GiB, GRAN);                       /* persistent */
  ck_assert (br_sb_gen_known (sb, 1001));
  ck_assert_int_eq (br_sb_forget_history (sb), 0);
  ck_assert (!br_sb_gen_known (sb, 1001));
  ck_assert (br_sb_gen_known (sb, 2000));
  br_sb_close (sb, true);
}
END_TEST

/* The history is a ring: br_sb_history returns the last BR_SB_HISTORY
 * generations, history_next (offset 44) names the entry the next one
 * overwrites, and both survive a reopen. */
START_TEST (test_history_ring)
{
  br_scoreboard *sb = must_open (GiB, GRAN);
  uint64_t h[BR_SB_HISTORY];
  uint32_t next;

  for (uint64_t g = 1; g <= 11; g++)
    ck_assert_int_eq (br_sb_set_gen (sb, 100 + g), 0);
  br_sb_close (sb, true);
  pread_at (sbpath, &next, 4, 44);
  /* The first generation and 101..110 were pushed: 11 entries, so the
   * ring wrapped once and the next one overwrites entry 3. */
  ck_assert_uint_eq (le32toh (next), 11 % BR_SB_HISTORY);
  sb = must_open (GiB, GRAN);
  ck_assert_uint_eq (br_sb_gen (sb), 111);
  br_sb_history (sb, h);
  for (int i = 0; i < BR_SB_HISTORY; i++) {
    bool seen = false;

    for (int j = 0; j < BR_SB_HISTORY; j++)
      seen |= h[j] == (uint64_t) (103 + i);
    ck_assert_msg (seen, "generation %d missing from the ring", 103 + i);
  }
  ck_assert (!br_sb_gen_known (sb, 102));
  br_sb_close (sb, true);
}
END_TEST

/* A version-1 file (history newest first, offset 44 reserved) is upgraded
 * at open: every remembered generation stays known, and the next push
 * overwrites the oldest entry, never the newest. */
START_TEST (test_v1_upgrade)
{
  br_scoreboard *sb = must_open (GiB, GRAN);
  uint64_t hist[BR_SB_HISTORY], h[BR_SB_HISTORY];
  uint32_t v1 = htole32 (1), zero = 0, version, next;

  br_sb_close (sb, true);
  for (int i = 0; i < BR_SB_HISTORY; i++)      /* newest (201) first */
    hist[i] = htole64 (201 + (uint64_t) i);
  pwrite_at (sbpath, &v1, 4, 8);
  pwrite_at (sbpath, &zero, 4, 44);
  pwrite_at (sbpath, hist, sizeof hist, 648);

  sb = must_open (GiB, GRAN);
  for (uint64_t g = 201; g < 201 + BR_SB_HISTORY; g++)
    ck_assert (br_sb_gen_known (sb, g));
  ck_assert_int_eq (br_sb_set_gen (sb, 300), 0);
  br_sb_history (sb, h);
  ck_assert (br_sb_gen_known (sb, 201));       /* the newest stays */
  ck_assert (!br_sb_gen_known (sb, 208));      /* the oldest went */
  br_sb_close (sb, true);
  pread_at (sbpath, &version, 4, 8);
  pread_at (sbpath, &next, 4, 44);
  ck_assert_uint_eq (le32toh (version), 2);
  ck_assert_uint_eq (le32toh (next), 0);       /* wrapped past entry 7 */
}
END_TEST

/* Header getters take no lock: readers race setters (run under TSan by
 * scripts/test.sh, which reports any plain access) and always see a whole
 * value, and both alternating generations stay known throughout. */
struct hdr_race { br_scoreboard *sb; int slot; };

static void *
hdr_setter (void *arg)
{
  struct hdr_race *r = arg;

  for (uint64_t i = 0; i < 400; i++) {
    ck_assert_int_eq (br_sb_set_gen (r->sb, i % 2 ? 0xa0a0 : 0xb0b0), 0);
    ck_assert_int_eq (br_sb_set_peer_gen (r->sb, r->slot,
                                          i % 2 ? 0xc0c0 : 0xd0d0), 0);
    ck_assert_int_eq (br_sb_set_flags (r->sb, i % 2 ? BR_SB_FRESH : 0,
                                       i % 2 ? 0 : BR_SB_FRESH), 0);
  }
  return NULL;
}

START_TEST (test_header_lockfree_readers)
{
  struct hdr_race r = { must_open (GiB, GRAN), 0 };
  pthread_t t;
  uint64_t h[BR_SB_HISTORY];

  r.slot = br_sb_peer_slot (r.sb, "site-b");
  ck_assert_int_ge (r.slot, 0);
  ck_assert_int_eq (br_sb_set_gen (r.sb, 0xa0a0), 0);
  ck_assert_int_eq (br_sb_set_gen (r.sb, 0xb0b0), 0);
  ck_assert_int_eq (br_sb_set_peer_gen (r.sb, r.slot, 0xd0d0), 0);
  ck_assert_int_eq (pthread_create (&t, NULL, hdr_setter, &r), 0);
  for (int i = 0; i < 20000; i++) {
    uint64_t g = br_sb_gen (r.sb), pg = br_sb_peer_gen (r.sb, r.slot);

    ck_assert (g == 0xa0a0 || g == 0xb0b0);
    ck_assert (pg == 0xc0c0 || pg == 0xd0d0);
    ck_assert (br_sb_gen_known (r.sb, 0xa0a0));
    ck_assert (br_sb_gen_known (r.sb, 0xb0b0));
    ck_assert_int_eq (br_sb_find_slot (r.sb, "site-b"), r.slot);
    ck_assert ((br_sb_flags (r.sb) & ~BR_SB_FRESH)
               == (BR_SB_CONSISTENT));
    br_sb_history (r.sb, h);
  }
  pthread_join (t, NULL);
  br_sb_close (r.sb, true);
}
END_TEST

START_TEST (test_header_setters_durable)
{
  br_scoreboard *sb = must_open (GiB, GRAN);
  uint64_t v;
  uint32_t f;
  int slot = br_sb_peer_slot (sb, "site-b");

  ck_assert_int_eq (br_sb_set_gen (sb, 77), 0);
  pread_at (sbpath, &v, 8, 64);
  ck_assert_uint_eq (le64toh (v), 77);
  ck_assert_int_eq (br_sb_set_flags (sb, 0, BR_SB_CONSISTENT | BR_SB_FRESH), 0);
  pread_at (sbpath, &f, 4, 40);
  ck_assert_uint_eq (le32toh (f), 0);
  ck_assert_uint_eq (br_sb_flags (sb), 0);
  ck_assert_int_eq (br_sb_set_peer_gen (sb, slot, 99), 0);
  pread_at (sbpath, &v, 8, 136 + slot * 64 + 48);
  ck_assert_uint_eq (le64toh (v), 99);
  ck_assert_int_eq (br_sb_set_peer_gen (sb, 8, 1), -EINVAL);
  br_sb_close (sb, true);
}
END_TEST

/* ---- concurrency ---------------------------------------------------- */

#define NTHREADS 8
#define NMARKS 10000
#define CVOL GiB

struct range { uint32_t slots, pad; uint64_t off, len; };

static void
random_range (unsigned *seed, struct range *rg)
{
  rg->slots = (uint32_t) (rand_r (seed) % 255 + 1);
  rg->off = ((uint64_t) rand_r (seed) << 15 ^ (uint64_t) rand_r (seed))
    % CVOL;
  rg->len = (uint64_t) rand_r (seed) % (8 * GRAN) + 1;
  if (rg->len > CVOL - rg->off)
    rg->len = CVOL - rg->off;
  rg->pad = 0;
}

struct worker {
  br_scoreboard *sb;
  unsigned seed;
  struct range *ranges;
  int err;
};

static void *
mark_worker (void *arg)
{
  struct worker *w = arg;

  for (int i = 0; i < NMARKS && !w->err; i++) {
    random_range (&w->seed, &w->ranges[i]);
    w->err = br_sb_mark (w->sb, w->ranges[i].slots, w->ranges[i].off,
                         w->ranges[i].len);
  }
  return NULL;
}

START_TEST (test_concurrent_mark)
{
  br_scoreboard *sb = must_open (CVOL, GRAN);
  uint64_t nreg = br_sb_nregions (sb);
  struct worker w[NTHREADS];
  pthread_t t[NTHREADS];
  uint8_t *want = calloc (BR_SB_MAX_PEERS, nreg);
  struct br_sb_stats st;

  ck_assert_ptr_nonnull (want);
  for (int i = 0; i < NTHREADS; i++) {
    w[i] = (struct worker) { .sb = sb, .seed = 1000u + (unsigned) i,
      .ranges = calloc (NMARKS, sizeof (struct range)) };
    ck_assert_ptr_nonnull (w[i].ranges);
    ck_assert_int_eq (pthread_create (&t[i], NULL, mark_worker, &w[i]), 0);
  }
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join (t[i], NULL);
    ck_assert_int_eq (w[i].err, 0);
    for (int j = 0; j < NMARKS; j++) {
      struct range *rg = &w[i].ranges[j];

      for (int s = 0; s < BR_SB_MAX_PEERS; s++)
        if (rg->slots & (1u << s))
          for (uint64_t r = rg->off / GRAN;
               r <= (rg->off + rg->len - 1) / GRAN; r++)
            want[s * nreg + r] = 1;
    }
    free (w[i].ranges);
  }
  for (int s = 0; s < BR_SB_MAX_PEERS; s++) {
    uint64_t n = 0;

    for (uint64_t r = 0; r < nreg; r++) {
      ck_assert_msg (br_sb_test (sb, s, r) == want[s * nreg + r],
                     "slot %d region %" PRIu64, s, r);
      n += want[s * nreg + r];
    }
    ck_assert_uint_eq (br_sb_count (sb, s), n);
  }
  br_sb_get_stats (sb, &st);
  ck_assert_msg (st.msync_rounds < st.slow_marks,
                 "no group commit: %" PRIu64 " msyncs for %" PRIu64
                 " slow marks", st.msync_rounds, st.slow_marks);
  fprintf (stderr, "concurrent mark: %d marks, %" PRIu64 " took the lock, "
           "%" PRIu64 " msyncs\n", NTHREADS * NMARKS, st.slow_marks,
           st.msync_rounds);
  free (want);
  br_sb_close (sb, true);
}
END_TEST

/* ---- crash simulation ------------------------------------------------- */

#define CRASH_ROUNDS 20
#define CRASH_THREADS 4

static int report_fd;

static void *
crash_worker (void *arg)
{
  br_scoreboard *sb = arg;
  unsigned seed = (unsigned) getpid () ^ (unsigned) (uintptr_t) &seed;

  for (;;) {
    struct range rg;

    random_range (&seed, &rg);
    if (br_sb_mark (sb, rg.slots, rg.off, rg.len) != 0)
      _exit (3);
    /* Only now is the write "issued": report it. */
    if (write (report_fd, &rg, sizeof rg) != (ssize_t) sizeof rg)
      _exit (4);
  }
  return NULL;
}

static void __attribute__ ((noreturn))
crash_child (int wfd)
{
  br_scoreboard *sb;
  pthread_t t;

  report_fd = wfd;
  if (br_sb_open (sbpath, CVOL, GRAN, "site-a", &sb, errbuf,
                  sizeof errbuf) != 0)
    _exit (2);
  for (int i = 1; i < CRASH_THREADS; i++)
    if (pthread_create (&t, NULL, crash_worker, sb) != 0)
      _exit (5);
  crash_worker (sb);
  _exit (0);
}

/* Read the bitmaps straight from the file, bypassing the mapping (and the
 * page cache when O_DIRECT works). */
static uint8_t *
read_file_direct (size_t *len)
{
  struct stat st;
  void *buf;
  int fd = open (sbpath, O_RDONLY | O_DIRECT);

  if (fd < 0 && errno == EINVAL)
    fd = open (sbpath, O_RDONLY);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (fstat (fd, &st), 0);
  *len = (size_t) st.st_size;
  ck_assert_int_eq (posix_memalign (&buf, 4096, *len), 0);
  ck_assert_int_eq (pread (fd, buf, *len, 0), (ssize_t) *len);
  close (fd);
  return buf;
}

static bool
raw_test (const uint8_t *file, int slot, uint64_t r)
{
  uint64_t nreg, word;

  memcpy (&nreg, file + 32, 8);
  nreg = le64toh (nreg);
  memcpy (&word, file + 4096 + slot * bitmap_bytes (nreg) + r / 64 * 8, 8);
  return (le64toh (word) >> (r % 64)) & 1;
}

static void
crash_rounds (bool direct)
{
  unsigned seed = (unsigned) time (NULL);
  uint64_t verified = 0;

  ck_assert_int_eq (try_open (CVOL, GRAN), 0);
  for (int round = 0; round < CRASH_ROUNDS; round++) {
    int p[2], status;
    pid_t pid;
    struct range rg;
    br_scoreboard *sb;
    uint8_t *file = NULL;
    size_t flen;

    ck_assert_int_eq (pipe (p), 0);
    fcntl (p[1], F_SETPIPE_SZ, 1 << 20);
    pid = fork ();
    ck_assert_int_ge (pid, 0);
    if (pid == 0) {
      close (p[0]);
      crash_child (p[1]);
    }
    close (p[1]);
    {
      /* Kill at a random point after the child's first durable mark (it
       * reports each on the pipe): a slow start (TSan) cannot make every
       * kill land before any mark and leave nothing to verify. */
      struct pollfd pfd = { .fd = p[0], .events = POLLIN };
      ck_assert_int_eq (poll (&pfd, 1, 30000), 1);
    }
    usleep ((useconds_t) (rand_r (&seed) % 20001));
    kill (pid, SIGKILL);
    ck_assert_int_eq (waitpid (pid, &status, 0), pid);
    ck_assert_msg (WIFSIGNALED (status), "child exited with %d",
                   WEXITSTATUS (status));

    if (direct)
      file = read_file_direct (&flen);
    sb = must_open (CVOL, GRAN);
    while (read (p[0], &rg, sizeof rg) == (ssize_t) sizeof rg) {
      for (int s = 0; s < BR_SB_MAX_PEERS; s++)
        if (rg.slots & (1u << s))
          for (uint64_t r = rg.off / GRAN;
               r <= (rg.off + rg.len - 1) / GRAN; r++) {
            ck_assert_msg (br_sb_test (sb, s, r), "round %d: slot %d region %"
                           PRIu64 " lost", round, s, r);
            if (direct)
              ck_assert_msg (raw_test (file, s, r), "round %d: slot %d "
                             "region %" PRIu64 " not on disk", round, s, r);
          }
      verified++;
    }
    close (p[0]);
    /* Start the next round from empty bitmaps. */
    for (int s = 0; s < BR_SB_MAX_PEERS; s++)
      clear_all (sb, s);
    br_sb_close (sb, true);
    free (file);
  }
  fprintf (stderr, "crash simulation%s: %" PRIu64 " marks verified over %d "
           "kills\n", direct ? " (on-disk bytes)" : "", verified,
           CRASH_ROUNDS);
  ck_assert_uint_gt (verified, 0);
}

START_TEST (test_crash_sigkill)
{
  crash_rounds (false);
}
END_TEST

START_TEST (test_crash_on_disk_bytes)
{
  crash_rounds (true);
}
END_TEST

/* Library messages are expected here (refused files...): show them only
 * with BR_TEST_LOG=1. */
static void
quiet_sink (enum br_log_level level, const char *msg)
{
  if (getenv ("BR_TEST_LOG"))
    fprintf (stderr, "[%d] %s\n", (int) level, msg);
}

int
main (void)
{
  Suite *s = suite_create ("scoreboard");
  TCase *tc = tcase_create ("scoreboard");
  SRunner *sr;
  int failed;

  br_log_set_sink (quiet_sink);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_create_layout);
  tcase_add_test (tc, test_reopen_preserves);
  tcase_add_test (tc, test_size_mismatch);
  tcase_add_test (tc, test_granularity_mismatch);
  tcase_add_test (tc, test_bad_granularity_refused);
  tcase_add_test (tc, test_corrupt_magic);
  tcase_add_test (tc, test_wrong_file_size);
  tcase_add_test (tc, test_stale_tmp_replaced);
  tcase_add_test (tc, test_second_open_busy);
  tcase_add_test (tc, test_mark_partial_regions);
  tcase_add_test (tc, test_mark_bounds);
  tcase_add_test (tc, test_mark_slot_mask);
  tcase_add_test (tc, test_count_next_clear);
  tcase_add_test (tc, test_mark_all);
  tcase_add_test (tc, test_fast_path_no_sync);
  tcase_add_test (tc, test_peer_slots);
  tcase_add_test (tc, test_was_clean);
  tcase_add_test (tc, test_header_setters_durable);
  tcase_add_test (tc, test_generation_history);
  tcase_add_test (tc, test_history_ring);
  tcase_add_test (tc, test_v1_upgrade);
  tcase_add_test (tc, test_header_lockfree_readers);
  tcase_add_test (tc, test_concurrent_mark);
  tcase_add_test (tc, test_crash_sigkill);
  tcase_add_test (tc, test_crash_on_disk_bytes);
  suite_add_tcase (s, tc);
  sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? 1 : 0;
}
