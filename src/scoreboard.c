/* blockrelay — the persistent scoreboard of one volume.
 *
 * On-disk layout (format version 2; version 1 files are upgraded at
 * open).  All header integers are little-endian
 * fixed width; the file is BR_SB_HDR_SIZE + nslots * bitmap_bytes long.
 *
 *   offset  size  field
 *        0     8  magic           "BRSCORE1"
 *        8     4  version         2
 *       12     4  header_size     4096 (offset of the first bitmap)
 *       16     8  volume_size     bytes
 *       24     4  granularity     bytes per region, a power of two
 *       28     4  nslots          peer slots = BR_SB_MAX_PEERS (8)
 *       32     8  nregions        ceil(volume_size / granularity)
 *       40     4  flags           BR_SB_CLEAN 0x1, BR_SB_CONSISTENT 0x2,
 *                                  BR_SB_FRESH 0x4
 *       44     4  history_next    v2: the history slot the next change of
 *                                 generation overwrites (mod 8); v1: 0
 *       48    16  uuid            volume UUID, random at creation
 *       64     8  gen             current generation, random nonzero at
 *                                 creation
 *       72    64  node            this node's name, NUL-padded
 *      136   512  peers[8]        64 bytes each:
 *                   +0  48  name  peer node name, NUL-padded; "" = free
 *                   +48  8  gen   generation last known in sync
 *                   +56  4  flags BR_SB_PEER_USED 0x1
 *                   +60  4  reserved
 *      648    64  history[8]      earlier generations of this copy, 0 =
 *                                 empty: a ring (v2) written one aligned
 *                                 8-byte entry at a time, never moved (v1
 *                                 kept them newest first with memmove,
 *                                 which a concurrent msync or writeback
 *                                 could catch half done)
 *      712    64  origin          replica: the primary whose stream this
 *                                 copy last relayed, NUL-padded; "" =
 *                                 none (older files have 0 here)
 *      776  3320  padding         0
 *     4096        bitmap of slot i at 4096 + i * bitmap_bytes, where
 *                 bitmap_bytes = ceil(nregions / 8) rounded up to 4096.
 *                 Little-endian u64 words: region r is bit r % 64 of word
 *                 r / 64.  Bits at and after nregions are 0.
 *
 * Design
 * ------
 * The file is mapped MAP_SHARED in one piece.  Bitmap words are only ever
 * changed with atomic read-modify-write builtins.  Endianness: a bitmap
 * mask is converted with htole64() before it is applied to a raw word;
 * byte swapping is a permutation of bits, so AND, OR and popcount on the
 * raw word are correct on either host and cost nothing on little-endian.
 *
 * Invariants:
 *  S1 (= I1) When br_sb_mark() returns 0, every bit it was asked to set is
 *     set in the file on stable storage (msync(MS_SYNC) has returned after
 *     the bit was set in memory).
 *  S2 set_ticket is incremented, under `lock`, before the bits of a mark
 *     that found any bit clear are OR-ed in (in the same critical section).
 *     Hence a thread that sees a bit set (acquire load) also sees a
 *     set_ticket at least as new as the one of the mark that set it.  (With
 *     a lock-free "OR, then increment", a second marker could find the bit
 *     set before its ticket exists and return on a stale durable: a hole
 *     in S1.  Marks that set new bits must msync anyway, so the lock costs
 *     them nothing; marks of already-set bits never take it.)
 *  S3 durable <= set_ticket.  durable = T means every mark holding a ticket
 *     <= T has its bits on stable storage: the syncer reads its target
 *     under `lock` (so every mark with a ticket <= target has finished its
 *     OR), and only then calls msync.
 *  S4 Bits found set at open are made durable (msync of the whole file)
 *     before br_sb_open() returns, so durable = set_ticket = 0 is true.
 *  S5 count[s] equals the number of set bits of slot s (adjusted with the
 *     exact number of bits each atomic OR/AND changed).
 *  S6 After an msync failure the file's state is unknown (the kernel may
 *     have dropped the dirty pages), so sync_err is sticky: every later
 *     mark that needs a sync fails with it, and close does not set CLEAN.
 *  S7 The file has no holes (it is written in full at creation), so msync
 *     never allocates: a full file system cannot turn a store into SIGBUS.
 *
 * Group commit (state under `lock`: syncing, cv; set_ticket and durable
 * are atomics written under `lock` and read lock-free; sync_err is an
 * atomic set once by the first failing msync, header msyncs included):
 *   fast path   all requested bits already set (acquire loads) and
 *               durable >= set_ticket: return, no lock, no syscall.
 *   slow path   lock; if some bit was clear: T = ++set_ticket, OR the bits
 *               in, need = T; else need = set_ticket.  While durable < need:
 *               if a sync is in flight, wait on cv; else become the syncer:
 *               target = set_ticket, syncing = 1, unlock, msync, lock,
 *               durable = max(durable, target) or sync_err = -errno,
 *               syncing = 0, broadcast.  Every caller that arrived during a
 *               round joins the next one, so N concurrent marks cost about
 *               two msyncs, not N.
 * Clears are lazy (atomic AND, no msync): a crash may resurrect a cleared
 * bit, which only costs a needless resync.
 *
 * Lock rules: `lock` (group commit) and `hlock` (header fields) are never
 * held together.  msync of the bitmaps runs without any lock; header
 * setters hold hlock across the msync of the header page (they are rare and
 * must be ordered); header getters take no lock (atomic loads of aligned
 * words), so no reader waits for a setter's msync: both are in
 * scoreboard-header.c.  The file is also flock()ed so a second process
 * cannot open the same scoreboard.
 *
 * Crash simulation (BLOCKRELAY_CRASHSIM=1 at open): sb->cs is the shadow of
 * crashsim.c and every msync goes through br_cs_shadow_msync, which
 * records what it made durable (taking its own leaf lock inside hlock when
 * a header setter msyncs); NULL otherwise, one branch per msync.  The byte
 * layout's structs are in scoreboard-disk.h (shared with the offline
 * reader, scoreboard-image.c).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "scoreboard.h"
#include "scoreboard-disk.h"
#include "crashsim.h"
#include "log.h"
#include "util.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scoreboard-int.h"


/* ---- bitmap words ---------------------------------------------------- */

static bool
valid (const br_scoreboard *sb, int slot, uint64_t region)
{
  return br__sb_slot_ok (slot) && region < sb->nregions;
}

/* Native mask of the bits of word W that fall in regions [R0, R1]. */
static uint64_t
word_mask (uint64_t w, uint64_t r0, uint64_t r1)
{
  uint64_t lo = w * 64 > r0 ? 0 : r0 % 64;
  uint64_t hi = w * 64 + 63 < r1 ? 63 : r1 % 64;

  return (~0ull >> (63 - hi)) & (~0ull << lo);
}

static bool
all_set (br_scoreboard *sb, uint32_t slots, uint64_t r0, uint64_t r1)
{
  for (int s = 0; s < BR_SB_MAX_PEERS; s++) {
    if (!(slots & (1u << s)))
      continue;
    for (uint64_t w = r0 / 64; w <= r1 / 64; w++) {
      uint64_t m = htole64 (word_mask (w, r0, r1));

      if ((__atomic_load_n (&sb->bits[s][w], __ATOMIC_ACQUIRE) & m) != m)
        return false;
    }
  }
  return true;
}

static void
set_bits (br_scoreboard *sb, uint32_t slots, uint64_t r0, uint64_t r1)
{
  for (int s = 0; s < BR_SB_MAX_PEERS; s++) {
    uint64_t added = 0;

    if (!(slots & (1u << s)))
      continue;
    for (uint64_t w = r0 / 64; w <= r1 / 64; w++) {
      uint64_t m = htole64 (word_mask (w, r0, r1));
      uint64_t old = __atomic_fetch_or (&sb->bits[s][w], m, __ATOMIC_ACQ_REL);

      added += (uint64_t) __builtin_popcountll (m & ~old);
    }
    if (added)
      __atomic_add_fetch (&sb->count[s], added, __ATOMIC_RELAXED);
  }
}

/* ---- syncing ----------------------------------------------------------- */

/* msync the first LEN bytes.  Any failure is recorded in sync_err (S6):
 * write-back errors are reported per file, not per range, so a failed
 * header msync may be the only report of a lost bitmap page. */
static int
msync_raw (void *map, size_t len, void *unused)
{
  return msync (map, len, MS_SYNC) == 0 ? 0 : -errno;
}

int
br__sb_msync (br_scoreboard *sb, size_t len)
{
  int r, none = 0;

  /* Crash simulation: the shadow records what this msync made durable. */
  r = __builtin_expect (sb->cs != NULL, 0)
    ? br_cs_shadow_msync (sb->cs, sb->map, len, BR_SB_HDR_SIZE, msync_raw,
                          NULL)
    : msync_raw (sb->map, len, NULL);
  if (r == 0)
    return 0;
  br_error ("scoreboard %s: msync: %s", sb->path, br_strerror (-r));
  __atomic_compare_exchange_n (&sb->sync_err, &none, r, false,
                               __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return r;
}

/* Under sb->lock: wait until durable >= NEED, syncing if nobody is. */
static int
commit_locked (br_scoreboard *sb, uint64_t need)
{
  while (__atomic_load_n (&sb->durable, __ATOMIC_ACQUIRE) < need) {
    uint64_t target;
    int r;

    if ((r = __atomic_load_n (&sb->sync_err, __ATOMIC_ACQUIRE)) < 0)
      return r;
    if (sb->syncing) {
      pthread_cond_wait (&sb->cv, &sb->lock);
      continue;
    }
    sb->syncing = true;
    target = __atomic_load_n (&sb->set_ticket, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock (&sb->lock);
    r = br__sb_msync (sb, sb->map_len);
    __atomic_add_fetch (&sb->msync_rounds, 1, __ATOMIC_RELAXED);
    br_debug (BR_DEBUG_SB, "scoreboard %s: msync round to ticket %" PRIu64
              ": %d", sb->path, target, r);
    pthread_mutex_lock (&sb->lock);
    sb->syncing = false;
    if (r == 0 && target > __atomic_load_n (&sb->durable, __ATOMIC_RELAXED))
      __atomic_store_n (&sb->durable, target, __ATOMIC_RELEASE);
    pthread_cond_broadcast (&sb->cv);
  }
  return 0;
}

int
br_sb_mark (br_scoreboard *sb, uint32_t slot_mask,
            uint64_t offset, uint64_t len)
{
  uint64_t r0, r1, need;
  int r;

  if (slot_mask >> BR_SB_MAX_PEERS || offset > sb->volume_size
      || len > sb->volume_size - offset)
    return -EINVAL;
  if (len == 0 || slot_mask == 0)
    return 0;
  r0 = offset >> sb->shift;
  r1 = (offset + len - 1) >> sb->shift;

  if (all_set (sb, slot_mask, r0, r1)) {
    /* S2: the ticket of whoever set these bits is visible now. */
    need = __atomic_load_n (&sb->set_ticket, __ATOMIC_ACQUIRE);
    if (__atomic_load_n (&sb->durable, __ATOMIC_ACQUIRE) >= need)
      return 0;
    pthread_mutex_lock (&sb->lock);
    need = __atomic_load_n (&sb->set_ticket, __ATOMIC_RELAXED);
  }
  else {
    pthread_mutex_lock (&sb->lock);
    need = __atomic_add_fetch (&sb->set_ticket, 1, __ATOMIC_ACQ_REL);
    set_bits (sb, slot_mask, r0, r1);
  }
  __atomic_add_fetch (&sb->slow_marks, 1, __ATOMIC_RELAXED);
  r = commit_locked (sb, need);
  pthread_mutex_unlock (&sb->lock);
  return r;
}

int
br_sb_mark_all (br_scoreboard *sb, int slot)
{
  return br__sb_slot_ok (slot)
    ? br_sb_mark (sb, 1u << slot, 0, sb->volume_size) : -EINVAL;
}

bool
br_sb_clear (br_scoreboard *sb, int slot, uint64_t region)
{
  uint64_t m, old;

  if (!valid (sb, slot, region))
    return false;
  m = htole64 (1ull << (region % 64));
  old = __atomic_fetch_and (&sb->bits[slot][region / 64], ~m,
                            __ATOMIC_ACQ_REL);
  if (!(old & m))
    return false;
  __atomic_sub_fetch (&sb->count[slot], 1, __ATOMIC_RELAXED);
  return true;
}

bool
br_sb_test (const br_scoreboard *sb, int slot, uint64_t region)
{
  if (!valid (sb, slot, region))
    return false;
  return (__atomic_load_n (&sb->bits[slot][region / 64], __ATOMIC_ACQUIRE)
          & htole64 (1ull << (region % 64))) != 0;
}

uint64_t
br_sb_count (const br_scoreboard *sb, int slot)
{
  return br__sb_slot_ok (slot)
    ? __atomic_load_n (&sb->count[slot], __ATOMIC_RELAXED) : 0;
}

int64_t
br_sb_next_set (const br_scoreboard *sb, int slot, uint64_t from)
{
  if (!valid (sb, slot, from))
    return -1;
  for (uint64_t w = from / 64; w < sb->nwords; w++) {
    uint64_t v = le64toh (__atomic_load_n (&sb->bits[slot][w],
                                           __ATOMIC_ACQUIRE));

    if (w == from / 64)
      v &= ~0ull << (from % 64);
    if (v) {
      uint64_t r = w * 64 + (uint64_t) __builtin_ctzll (v);

      return r < sb->nregions ? (int64_t) r : -1;
    }
  }
  return -1;
}

int
br_sb_sync (br_scoreboard *sb)
{
  uint64_t target;
  int r;

  pthread_mutex_lock (&sb->lock);
  target = __atomic_load_n (&sb->set_ticket, __ATOMIC_ACQUIRE);
  pthread_mutex_unlock (&sb->lock);
  r = br__sb_msync (sb, sb->map_len);
  pthread_mutex_lock (&sb->lock);
  if (r == 0 && target > __atomic_load_n (&sb->durable, __ATOMIC_RELAXED))
    __atomic_store_n (&sb->durable, target, __ATOMIC_RELEASE);
  pthread_mutex_unlock (&sb->lock);
  return r;
}

uint64_t
br_sb_nregions (const br_scoreboard *sb)
{
  return sb->nregions;
}

uint32_t
br_sb_granularity (const br_scoreboard *sb)
{
  return sb->granularity;
}

bool
br_sb_was_clean (const br_scoreboard *sb)
{
  return sb->was_clean;
}

void
br_sb_get_stats (const br_scoreboard *sb, struct br_sb_stats *out)
{
  out->msync_rounds = __atomic_load_n (&sb->msync_rounds, __ATOMIC_RELAXED);
  out->slow_marks = __atomic_load_n (&sb->slow_marks, __ATOMIC_RELAXED);
}

/* ---- open, create, close ----------------------------------------------- */

#define FAIL(e, ...) do {                                               \
    r = (e);                                                            \
    br_seterr (err, errlen, __VA_ARGS__);                                  \
    goto fail;                                                          \
  } while (0)

/* Build the file complete as PATH.tmp (header H, zeroed bitmaps: S7),
 * then rename it into place, so a crash never leaves a half-made
 * scoreboard.  Returns a locked fd, -EEXIST if PATH appeared meanwhile,
 * or -errno with a message. */
static int
create_file (const char *path, uint64_t file_size,
             const struct br_sb_header_disk *h, char *err, size_t errlen)
{
  char tmp[4096];
  int fd = -1, r;

  if (snprintf (tmp, sizeof tmp, "%s.tmp", path) >= (int) sizeof tmp)
    FAIL (-ENAMETOOLONG, "scoreboard %s: path too long", path);
  if ((fd = open (tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
    FAIL (-errno, "scoreboard %s: cannot create %s: %s", path, tmp,
          br_strerror (-r));
  if (flock (fd, LOCK_EX | LOCK_NB) < 0) {
    close (fd);                 /* another process is creating it */
    fd = -1;
    FAIL (-EBUSY, "scoreboard %s: being created by another process", path);
  }
  if (ftruncate (fd, 0) < 0 || ftruncate (fd, (off_t) file_size) < 0)
    r = -errno;
  else if ((r = br_pwrite_full (fd, h, sizeof *h, 0)) == 0
           && (r = br_pwrite_full (fd, NULL, file_size - sizeof *h,
                               sizeof *h)) == 0
           && fdatasync (fd) < 0)
    r = -errno;
  if (r < 0)
    FAIL (r, "scoreboard %s: cannot write %s: %s", path, tmp, br_strerror (-r));
  if (renameat2 (AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
    r = -errno;
    if (r == -EINVAL || r == -ENOSYS)   /* no RENAME_NOREPLACE here */
      r = rename (tmp, path) < 0 ? -errno : 0;
    if (r == -EEXIST)
      goto fail;
    if (r < 0)
      FAIL (r, "scoreboard %s: rename from %s: %s", path, tmp,
            br_strerror (-r));
  }
  if ((r = br_fsync_parent_dir (path)) < 0)
    FAIL (r, "scoreboard %s: fsync of its directory: %s", path,
          br_strerror (-r));
  br_info ("scoreboard %s: created (%" PRIu64 " bytes)", path, file_size);
  return fd;

 fail:
  if (fd >= 0) {
    unlink (tmp);
    close (fd);
  }
  return r;
}

/* Check the header H read from PATH against the expected geometry. */
int
br__sb_validate (const char *path, const struct br_sb_header_disk *h,
                 uint64_t volume_size, uint32_t granularity,
                 uint64_t nregions, uint64_t file_size, uint64_t actual_size,
                 char *err, size_t errlen)
{
  int r;
#define CHECK(what, got, want) do {                                     \
    if ((uint64_t) (got) != (uint64_t) (want))                          \
      FAIL (-EINVAL, "scoreboard %s: %s is %" PRIu64 " in the file but " \
            "%" PRIu64 " was expected", path, what, (uint64_t) (got),   \
            (uint64_t) (want));                                         \
  } while (0)

  if (memcmp (h->magic, BR_SB_MAGIC, 8) != 0)
    FAIL (-EINVAL, "scoreboard %s: bad magic (not a blockrelay scoreboard, "
          "or corrupt)", path);
  if (le32toh (h->version) != 1)
    CHECK ("format version", le32toh (h->version), BR_SB_VERSION);
  CHECK ("header size", le32toh (h->header_size), BR_SB_HDR_SIZE);
  CHECK ("number of peer slots", le32toh (h->nslots), BR_SB_MAX_PEERS);
  CHECK ("volume size", le64toh (h->volume_size), volume_size);
  CHECK ("granularity", le32toh (h->granularity), granularity);
  CHECK ("number of regions", le64toh (h->nregions), nregions);
  CHECK ("file size", actual_size, file_size);
  for (int i = 0; i < BR_SB_MAX_PEERS; i++)
    if (!memchr (h->peers[i].name, '\0', BR_SB_PEER_NAME_MAX))
      FAIL (-EINVAL, "scoreboard %s: peer slot %d is corrupt", path, i);
  return 0;
#undef CHECK
 fail:
  return r;
}

/* Open PATH locked, creating it from H if absent.  Returns fd or -errno. */
static int
open_file (const char *path, uint64_t file_size, struct br_sb_header_disk *h,
           char *err, size_t errlen)
{
  uint64_t gen = 0;
  int fd, r;

  for (int tries = 0; tries < 3; tries++) {
    if ((fd = open (path, O_RDWR | O_CLOEXEC)) >= 0) {
      if (flock (fd, LOCK_EX | LOCK_NB) == 0)
        return fd;
      r = errno == EWOULDBLOCK ? -EBUSY : -errno;
      close (fd);
      FAIL (r, "scoreboard %s: %s", path, r == -EBUSY
            ? "in use by another process" : br_strerror (-r));
    }
    if (errno != ENOENT)
      break;
    if (getrandom (h->uuid, sizeof h->uuid, 0) != (ssize_t) sizeof h->uuid)
      break;
    while (gen == 0)
      if (getrandom (&gen, sizeof gen, 0) != (ssize_t) sizeof gen)
        goto out;
    h->gen = htole64 (gen);
    if ((fd = create_file (path, file_size, h, err, errlen)) != -EEXIST)
      return fd;
  }
 out:
  FAIL (-errno, "scoreboard %s: %s", path, br_strerror (-r));
 fail:
  return r;
}

void
br__sb_geometry (uint64_t volume_size, uint32_t granularity,
                 uint64_t *nregions, uint64_t *bitmap_bytes,
                 uint64_t *file_size)
{
  *nregions = volume_size / granularity + (volume_size % granularity != 0);
  *bitmap_bytes = ((*nregions + 7) / 8 + BR_SB_HDR_SIZE - 1)
    / BR_SB_HDR_SIZE * BR_SB_HDR_SIZE;
  *file_size = BR_SB_HDR_SIZE + BR_SB_MAX_PEERS * *bitmap_bytes;
}

uint64_t
br__sb_count_bits (const uint64_t *words, uint64_t nregions)
{
  uint64_t n = 0, nwords = (nregions + 63) / 64;

  for (uint64_t w = 0; w < nwords; w++) {
    uint64_t v = le64toh (words[w]);

    if (w == nwords - 1 && nregions % 64)
      v &= ~0ull >> (64 - nregions % 64);     /* ignore padding bits */
    n += (uint64_t) __builtin_popcountll (v);
  }
  return n;
}

/* SYNCED: the file is durable as it is (crash simulation: no shadow is
 * needed any more). */
static void
sb_free (br_scoreboard *sb, bool synced)
{
  br_cs_shadow_close (sb->cs, synced);
  if (sb->map) {
    munmap (sb->map, sb->map_len);
    pthread_mutex_destroy (&sb->lock);
    pthread_mutex_destroy (&sb->hlock);
    pthread_cond_destroy (&sb->cv);
  }
  if (sb->fd >= 0)
    close (sb->fd);
  free (sb->path);
  free (sb);
}

/* The header of a new file for this geometry (open_file adds the uuid and
 * the generation). */
static void
new_header (struct br_sb_header_disk *h, uint64_t volume_size,
            uint32_t granularity, uint64_t nregions, const char *node)
{
  memset (h, 0, sizeof *h);
  memcpy (h->magic, BR_SB_MAGIC, 8);
  h->version = htole32 (BR_SB_VERSION);
  h->header_size = htole32 (BR_SB_HDR_SIZE);
  h->volume_size = htole64 (volume_size);
  h->granularity = htole32 (granularity);
  h->nslots = htole32 (BR_SB_MAX_PEERS);
  h->nregions = htole64 (nregions);
  h->flags = htole32 (BR_SB_CLEAN | BR_SB_CONSISTENT | BR_SB_FRESH);
  memcpy (h->node, node, strlen (node));
}

/* Map the validated file of SB and set up its in-memory state. */
static int
map_file (br_scoreboard *sb, uint64_t file_size, uint64_t volume_size,
          uint32_t granularity, uint64_t nregions, uint64_t bitmap_bytes,
          char *err, size_t errlen)
{
  sb->map = mmap (NULL, file_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                  sb->fd, 0);
  if (sb->map == MAP_FAILED) {
    int r = -errno;

    sb->map = NULL;
    br_seterr (err, errlen, "scoreboard %s: mmap: %s", sb->path,
               br_strerror (-r));
    return r;
  }
  sb->map_len = file_size;
  sb->hdr = (struct br_sb_header_disk *) sb->map;
  sb->volume_size = volume_size;
  sb->granularity = granularity;
  sb->shift = (unsigned) __builtin_ctz (granularity);
  sb->nregions = nregions;
  sb->nwords = (nregions + 63) / 64;
  pthread_mutex_init (&sb->lock, NULL);
  pthread_mutex_init (&sb->hlock, NULL);
  pthread_cond_init (&sb->cv, NULL);
  for (int s = 0; s < BR_SB_MAX_PEERS; s++) {
    sb->bits[s] = (uint64_t *) (sb->map + BR_SB_HDR_SIZE + s * bitmap_bytes);
    sb->count[s] = br__sb_count_bits (sb->bits[s], nregions);
  }
  return 0;
}

/* The mapped header becomes this process's: a version 1 file is
 * upgraded, CLEAN is recorded and cleared, NODE is the writer; then
 * everything is made durable (S4).  Nothing else runs yet: plain stores. */
static int
adopt_header (br_scoreboard *sb, const char *node, char *err, size_t errlen)
{
  struct br_sb_header_disk *h = sb->hdr;
  int r;

  /* Version 1 kept the history newest first: as a ring, the next entry
   * to overwrite is the first empty one, or the oldest (the last). */
  if (le32toh (h->version) == 1) {
    uint32_t n = 0;

    while (n < BR_SB_HISTORY && h->history[n] != 0)
      n++;
    h->history_next = htole32 (n < BR_SB_HISTORY ? n : BR_SB_HISTORY - 1);
    h->version = htole32 (BR_SB_VERSION);
    br_info ("scoreboard %s: upgraded from format version 1", sb->path);
  }
  sb->was_clean = (le32toh (h->flags) & BR_SB_CLEAN) != 0;
  h->flags = htole32 (le32toh (h->flags) & ~BR_SB_CLEAN);
  if (strncmp (h->node, node, BR_SB_NODE_MAX) != 0) {
    br_warn ("scoreboard %s: was written by node '%.*s', now opened by '%s'",
             sb->path, BR_SB_NODE_MAX, h->node, node);
    memset (h->node, 0, BR_SB_NODE_MAX);
    memcpy (h->node, node, strlen (node));
  }
  if ((r = br__sb_msync (sb, sb->map_len)) < 0)
    br_seterr (err, errlen, "scoreboard %s: msync: %s", sb->path,
               br_strerror (-r));
  return r;
}

int
br_sb_open (const char *path, uint64_t volume_size, uint32_t granularity,
            const char *node, br_scoreboard **out, char *err, size_t errlen)
{
  struct br_sb_header_disk h;
  br_scoreboard *sb;
  uint64_t nregions, bitmap_bytes, file_size;
  struct stat st;
  int r;

  *out = NULL;
  node = node ? node : "";
  if (volume_size == 0 || granularity == 0
      || (granularity & (granularity - 1)) || strlen (node) >= BR_SB_NODE_MAX) {
    br_seterr (err, errlen, "scoreboard %s: invalid volume size %" PRIu64
            ", granularity %" PRIu32 " or node name '%s'", path, volume_size,
            granularity, node);
    return -EINVAL;
  }
  br__sb_geometry (volume_size, granularity, &nregions, &bitmap_bytes,
                   &file_size);
  if (nregions > (1ull << 40)) {
    br_seterr (err, errlen, "scoreboard %s: %" PRIu64 " regions of %" PRIu32
            " bytes is too many; use a larger granularity", path, nregions,
            granularity);
    return -EINVAL;
  }
  if (!(sb = calloc (1, sizeof *sb)) || !(sb->path = strdup (path))) {
    free (sb);
    return -ENOMEM;
  }

  new_header (&h, volume_size, granularity, nregions, node);
  if ((sb->fd = open_file (path, file_size, &h, err, errlen)) < 0) {
    r = sb->fd;
    goto fail;
  }
  if (fstat (sb->fd, &st) < 0)
    FAIL (-errno, "scoreboard %s: fstat: %s", path, br_strerror (-r));
  if (!S_ISREG (st.st_mode) || (uint64_t) st.st_size < sizeof h)
    FAIL (-EINVAL, "scoreboard %s: not a scoreboard (%s of %" PRIu64
          " bytes)", path, S_ISREG (st.st_mode) ? "a file" : "not a file",
          (uint64_t) st.st_size);
  if (br_pread_full (sb->fd, &h, sizeof h, 0) < 0)
    FAIL (-EIO, "scoreboard %s: cannot read the header", path);
  if ((r = br__sb_validate (path, &h, volume_size, granularity, nregions,
                            file_size, (uint64_t) st.st_size, err,
                            errlen)) < 0)
    goto fail;
  if ((r = br_cs_mode (err, errlen)) > 0)
    r = br_cs_shadow_open (path, sb->fd, file_size, &sb->cs, err, errlen);
  if (r < 0
      || (r = map_file (sb, file_size, volume_size, granularity, nregions,
                        bitmap_bytes, err, errlen)) < 0
      || (r = adopt_header (sb, node, err, errlen)) < 0)
    goto fail;
  br_debug (BR_DEBUG_SB, "scoreboard %s: opened, %" PRIu64 " regions of %"
            PRIu32 " bytes, %s", path, nregions, granularity,
            sb->was_clean ? "clean" : "not closed cleanly");
  *out = sb;
  return 0;

 fail:
  sb_free (sb, false);
  return r;
}

void
br_sb_close (br_scoreboard *sb, bool clean)
{
  bool synced;

  if (!sb)
    return;
  synced = br_sb_sync (sb) == 0;
  if (synced && clean
      && !__atomic_load_n (&sb->sync_err, __ATOMIC_ACQUIRE)
      && br_sb_set_flags (sb, BR_SB_CLEAN, 0) < 0)
    br_error ("scoreboard %s: could not record the clean shutdown",
              sb->path);
  sb_free (sb, synced && !__atomic_load_n (&sb->sync_err, __ATOMIC_ACQUIRE));
}

