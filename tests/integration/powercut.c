/* br-powercut: simulated power cuts for the crash-simulation tests.
 *
 *   br-powercut cut [--torn SEED] PATH...
 *   br-powercut inspect PATH...
 *   br-powercut cover IMAGE_A META_A PEER IMAGE_B [META_B PEER_B]
 *   br-powercut bits META PEER
 *
 * Design
 * ------
 * A thin command line over src/crashsim-replay.c (the replay and the I1
 * check, shared with the unit tests) and the scoreboard's offline reader.
 * PATH is a data directory (every "*.crashsim" in it: the journals of its
 * disk images and the shadows of its scoreboards), a disk image or a
 * .meta file (its "<PATH>.crashsim"), or the .crashsim file itself.
 *
 * cut      applies a power cut at the instant the process stopped (the
 *          process must be dead) and deletes the journal or shadow.
 *          Without --torn every write not yet durable is lost; with --torn
 *          each 512-byte sector ends at a random one of its versions since
 *          it was last durable (seeded by SEED and the file's name).  One
 *          summary line per file.
 * inspect  the same summary of what a cut would lose, changing nothing.
 * cover    the I1 check after a cut: every region where IMAGE_A and
 *          IMAGE_B differ has its bit set in META_A's bitmap for PEER, or,
 *          given META_B and PEER_B, in META_B's bitmap for PEER_B (a
 *          failback resyncs the union of both bitmaps: verdict rule 3).
 *          Lists the regions that differ without a bit and exits 1 if any.
 * bits     the number of set bits of PEER in META and the regions.
 *
 * Exit status: 0 ok, 1 cover found an uncovered region, 2 error or usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crashsim.h"
#include "scoreboard.h"
#include "util.h"

static char err[1024];

static void
usage (void)
{
  fprintf (stderr,
           "usage: br-powercut cut [--torn SEED] PATH...\n"
           "       br-powercut inspect PATH...\n"
           "       br-powercut cover IMAGE_A META_A PEER IMAGE_B [META_B PEER_B]\n"
           "       br-powercut bits META PEER\n");
  exit (2);
}

static void
summary (const char *target, const struct br_cs_stats *st, bool torn)
{
  if (st->scoreboard)
    printf ("%s: scoreboard, %" PRIu64 " sectors not durable: %" PRIu64
            " rolled back, %" PRIu64 " kept%s\n", target, st->sectors,
            st->rolled_back, st->kept, torn ? " (torn)" : "");
  else
    printf ("%s: %" PRIu64 " records, %" PRIu64 " writes, %" PRIu64
            " volatile (%" PRIu64 " bytes in %" PRIu64 " sectors): %" PRIu64
            " sectors rolled back, %" PRIu64 " at an intermediate version, %"
            PRIu64 " kept the newest%s\n", target, st->records, st->writes,
            st->volatile_writes, st->volatile_bytes, st->sectors,
            st->rolled_back, st->intermediate, st->kept,
            torn ? " (torn)" : "");
}

/* Cut or inspect one file; TARGET may name the .crashsim itself. */
static int
one (const char *path, bool dry, bool torn, uint64_t seed)
{
  size_t n = strlen (path), sl = strlen (BR_CS_SUFFIX);
  char *target = strdup (path);
  struct br_cs_stats st;
  int r;

  if (!target)
    return -ENOMEM;
  if (n > sl && strcmp (path + n - sl, BR_CS_SUFFIX) == 0)
    target[n - sl] = '\0';
  r = dry ? br_cs_inspect (target, &st, err, sizeof err)
    : br_cs_cut (target, torn, seed, &st, err, sizeof err);
  if (r == 0)
    summary (target, &st, torn);
  else if (r == -ENOENT)
    printf ("%s: nothing to replay (%s)\n", target, err);
  else
    fprintf (stderr, "br-powercut: %s\n", err);
  free (target);
  return r == -ENOENT ? 0 : r;
}

static int
by_name (const struct dirent **a, const struct dirent **b)
{
  return strcmp ((*a)->d_name, (*b)->d_name);
}

static int
keep_crashsim (const struct dirent *e)
{
  size_t n = strlen (e->d_name), sl = strlen (BR_CS_SUFFIX);

  return n > sl && strcmp (e->d_name + n - sl, BR_CS_SUFFIX) == 0;
}

/* Every .crashsim in DIR, in name order. */
static int
dir (const char *d, bool dry, bool torn, uint64_t seed)
{
  struct dirent **list;
  int n = scandir (d, &list, keep_crashsim, by_name), r = 0;

  if (n < 0) {
    fprintf (stderr, "br-powercut: %s: %s\n", d, br_strerror (errno));
    return -errno;
  }
  if (n == 0)
    printf ("%s: nothing to replay (no *%s)\n", d, BR_CS_SUFFIX);
  for (int i = 0; i < n; i++) {
    char *p;

    if (r == 0 && asprintf (&p, "%s/%s", d, list[i]->d_name) >= 0) {
      r = one (p, dry, torn, seed);
      free (p);
    }
    free (list[i]);
  }
  free (list);
  return r;
}

static int
cmd_cut (int argc, char **argv, bool dry)
{
  bool torn = false;
  uint64_t seed = 0;
  int i = 0, r = 0;

  if (!dry && argc >= 2 && strcmp (argv[0], "--torn") == 0) {
    char *end;

    errno = 0;
    seed = strtoull (argv[1], &end, 0);
    if (errno || *end || end == argv[1])
      usage ();
    torn = true;
    i = 2;
  }
  if (i >= argc)
    usage ();
  for (; r == 0 && i < argc; i++) {
    struct stat st;

    if (stat (argv[i], &st) == 0 && S_ISDIR (st.st_mode))
      r = dir (argv[i], dry, torn, seed);
    else
      r = one (argv[i], dry, torn, seed);
  }
  return r < 0 ? 2 : 0;
}

static void
report (uint64_t region, uint64_t gran, void *arg)
{
  printf ("  region %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64 ") differs and "
          "its bit is clear\n", region, region * gran,
          (region + 1) * gran - 1);
}

/* The second bitmap of `cover` (NULL: none), and what it leaves. */
struct cover_ctx {
  br_sb_image *im;
  int slot;
  uint64_t uncovered;
};

static void
report_union (uint64_t region, uint64_t gran, void *arg)
{
  struct cover_ctx *c = arg;

  if (c->im && br_sb_image_test (c->im, c->slot, region))
    return;
  c->uncovered++;
  report (region, gran, NULL);
}

static int
cmd_cover (int argc, char **argv)
{
  struct cover_ctx c = { .im = NULL };
  uint64_t differ, bits, uncovered, bits2 = 0;
  int r;

  if (argc != 4 && argc != 6)
    usage ();
  if (argc == 6) {
    if (br_sb_image_load (argv[4], &c.im, err, sizeof err) < 0) {
      fprintf (stderr, "br-powercut: %s\n", err);
      return 2;
    }
    if ((c.slot = br_sb_image_slot (c.im, argv[5])) < 0) {
      fprintf (stderr, "br-powercut: %s: no peer slot named '%s'\n",
               argv[4], argv[5]);
      br_sb_image_free (c.im);
      return 2;
    }
    bits2 = br_sb_image_count (c.im, c.slot);
  }
  r = br_cs_cover (argv[0], argv[1], argv[2], argv[3], &differ, &bits,
                   &uncovered, report_union, &c, err, sizeof err);
  br_sb_image_free (c.im);
  if (r < 0) {
    fprintf (stderr, "br-powercut: %s\n", err);
    return 2;
  }
  printf ("cover %s vs %s, bits of %s in %s", argv[0], argv[3], argv[2],
          argv[1]);
  if (argc == 6)
    printf (" and of %s in %s (%" PRIu64 " set)", argv[5], argv[4], bits2);
  printf (": %" PRIu64 " regions differ, %" PRIu64 " bits set, %" PRIu64
          " differing regions without a bit%s\n", differ, bits, c.uncovered,
          c.uncovered ? " (I1 VIOLATED)" : "");
  return c.uncovered ? 1 : 0;
}

static int
cmd_bits (int argc, char **argv)
{
  br_sb_image *im;
  int64_t first = -1;
  uint64_t n;
  int slot;

  if (argc != 2)
    usage ();
  if (br_sb_image_load (argv[0], &im, err, sizeof err) < 0) {
    fprintf (stderr, "br-powercut: %s\n", err);
    return 2;
  }
  if ((slot = br_sb_image_slot (im, argv[1])) < 0) {
    fprintf (stderr, "br-powercut: %s: no peer slot named '%s'\n", argv[0],
             argv[1]);
    br_sb_image_free (im);
    return 2;
  }
  n = br_sb_image_nregions (im);
  printf ("%s: %" PRIu64 " of %" PRIu64 " regions of %" PRIu32 " bytes set "
          "for %s (slot %d)\n", argv[0], br_sb_image_count (im, slot), n,
          br_sb_image_granularity (im), argv[1], slot);
  for (uint64_t r = 0; r <= n; r++) {
    bool set = r < n && br_sb_image_test (im, slot, r);

    if (set && first < 0)
      first = (int64_t) r;
    else if (!set && first >= 0) {
      if ((uint64_t) first == r - 1)
        printf ("  %" PRId64 "\n", first);
      else
        printf ("  %" PRId64 "-%" PRIu64 "\n", first, r - 1);
      first = -1;
    }
  }
  br_sb_image_free (im);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    usage ();
  if (strcmp (argv[1], "cut") == 0)
    return cmd_cut (argc - 2, argv + 2, false);
  if (strcmp (argv[1], "inspect") == 0)
    return cmd_cut (argc - 2, argv + 2, true);
  if (strcmp (argv[1], "cover") == 0)
    return cmd_cover (argc - 2, argv + 2);
  if (strcmp (argv[1], "bits") == 0)
    return cmd_bits (argc - 2, argv + 2);
  usage ();
}
