/* blockrelay — the persistent scoreboard of one volume (see scoreboard.c).
 *
 * One metadata file per volume, memory-mapped: a 4 KiB header followed by
 * one dirty bitmap per peer slot.  Bit R of slot P set means "region R of
 * this volume may differ between this node and peer P".  Layout, byte
 * offsets and endianness are in scoreboard.c and docs/formats.md.
 *
 * Thread rules: br_sb_mark() may be called from any number of threads at
 * once; br_sb_clear(), br_sb_test(), br_sb_count() and br_sb_next_set() may
 * run concurrently with it (all bit operations are atomic word operations).
 * Header setters take an internal lock.
 */
#ifndef BR_SCOREBOARD_H
#define BR_SCOREBOARD_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define BR_SB_MAX_PEERS 8
#define BR_SB_PEER_NAME_MAX 48      /* including the NUL */
#define BR_SB_HISTORY 8             /* earlier generations remembered */

/* Header flags. */
#define BR_SB_CLEAN       0x1u /* closed cleanly: no write was in flight */
#define BR_SB_CONSISTENT  0x2u /* this copy is a consistent image */
#define BR_SB_FRESH       0x4u /* never synced and never written: holds
                                  nothing anyone could lose (full sync) */

typedef struct br_scoreboard br_scoreboard;

/* Open or create the scoreboard at PATH for a volume of VOLUME_SIZE bytes
 * with regions of GRANULARITY bytes (power of two).  NODE is this node's
 * name, recorded in the header.  A new file gets a random volume UUID, a
 * random nonzero current generation, the CONSISTENT flag and empty bitmaps.
 * An existing file must match magic, version, size and granularity;
 * otherwise this fails with a message saying which and both values.
 * Opening clears the CLEAN flag durably (so a crash leaves it clear) after
 * recording whether it was set (br_sb_was_clean).
 * Returns 0 or -errno with a message in ERR. */
int br_sb_open (const char *path, uint64_t volume_size, uint32_t granularity,
                const char *node, br_scoreboard **out,
                char *err, size_t errlen);
/* Sync everything, set the CLEAN flag if CLEAN is true, unmap, close. */
void br_sb_close (br_scoreboard *sb, bool clean);

uint64_t br_sb_nregions (const br_scoreboard *sb);
uint32_t br_sb_granularity (const br_scoreboard *sb);
bool br_sb_was_clean (const br_scoreboard *sb);

/* The slot for peer node PEER: found by name, or allocated (durably) in the
 * first free slot.  Returns the slot (0 .. BR_SB_MAX_PEERS-1) or -ENOSPC. */
int br_sb_peer_slot (br_scoreboard *sb, const char *peer);

/* The slot of PEER if it has one (no allocation, no I/O): 0 ..
 * BR_SB_MAX_PEERS-1, or -ENOENT. */
int br_sb_find_slot (const br_scoreboard *sb, const char *peer);

/* I1: set the bits of every region overlapping [OFFSET, OFFSET+LEN) in every
 * slot of SLOT_MASK, and return only when all of them are on durable
 * storage.  Concurrent callers share msync calls (group commit); a caller
 * whose bits were all already set and durable returns without a syscall.
 * Returns 0 or -errno (msync failure). */
int br_sb_mark (br_scoreboard *sb, uint32_t slot_mask,
                uint64_t offset, uint64_t len);
/* Set every bit of SLOT (full sync), durably. */
int br_sb_mark_all (br_scoreboard *sb, int slot);
/* Clear region R of SLOT lazily (no msync).  Returns true if it was set.
 * The caller guarantees I2 (the peer has the region durable and no newer
 * write to it is in flight). */
bool br_sb_clear (br_scoreboard *sb, int slot, uint64_t region);
bool br_sb_test (const br_scoreboard *sb, int slot, uint64_t region);
/* Number of set bits in SLOT (maintained, O(1)). */
uint64_t br_sb_count (const br_scoreboard *sb, int slot);
/* First set bit at or after FROM in SLOT, or -1. */
int64_t br_sb_next_set (const br_scoreboard *sb, int slot, uint64_t from);
/* msync the whole file. */
int br_sb_sync (br_scoreboard *sb);

/* Header fields (durable when the setter returns 0). */
void br_sb_uuid (const br_scoreboard *sb, uint8_t out[16]);
uint64_t br_sb_gen (const br_scoreboard *sb);
/* Setting a new generation pushes the old one into the history. */
int br_sb_set_gen (br_scoreboard *sb, uint64_t gen);
/* The last BR_SB_HISTORY generations before the current one, in no
 * particular order, 0 = empty. */
void br_sb_history (const br_scoreboard *sb, uint64_t out[BR_SB_HISTORY]);
/* GEN is the current generation or one of the last BR_SB_HISTORY. */
bool br_sb_gen_known (const br_scoreboard *sb, uint64_t gen);
/* Forget the history (the copy's content was lost). */
int br_sb_forget_history (br_scoreboard *sb);
uint32_t br_sb_flags (const br_scoreboard *sb);
int br_sb_set_flags (br_scoreboard *sb, uint32_t set, uint32_t clear);
/* The generation this node and peer SLOT were last known in sync at. */
uint64_t br_sb_peer_gen (const br_scoreboard *sb, int slot);
int br_sb_set_peer_gen (br_scoreboard *sb, int slot, uint64_t gen);
const char *br_sb_peer_name (const br_scoreboard *sb, int slot); /* "" if free */
/* Replica: the node whose stream this copy last relayed ("" = none), so a
 * restarted relay forwards to its children before its upstream is back. */
void br_sb_origin (const br_scoreboard *sb, char *buf, size_t len);
int br_sb_set_origin (br_scoreboard *sb, const char *origin);

/* Group-commit statistics (for status output and tests).  Added to the
 * original interface. */
struct br_sb_stats {
  uint64_t msync_rounds;        /* msyncs issued by br_sb_mark() */
  uint64_t slow_marks;          /* marks that took the lock (the others
                                   found their bits set and durable) */
};
void br_sb_get_stats (const br_scoreboard *sb, struct br_sb_stats *out);

/* Reading a scoreboard file offline (tools such as br-powercut): the whole
 * file is read into memory and checked for consistency; nothing is locked,
 * mapped or changed.  Returns 0 or -errno with a message. */
typedef struct br_sb_image br_sb_image;
int br_sb_image_load (const char *path, br_sb_image **out,
                      char *err, size_t errlen);
void br_sb_image_free (br_sb_image *im);
uint64_t br_sb_image_volume_size (const br_sb_image *im);
uint32_t br_sb_image_granularity (const br_sb_image *im);
uint64_t br_sb_image_nregions (const br_sb_image *im);
/* The slot named PEER, or -ENOENT. */
int br_sb_image_slot (const br_sb_image *im, const char *peer);
bool br_sb_image_test (const br_sb_image *im, int slot, uint64_t region);
uint64_t br_sb_image_count (const br_sb_image *im, int slot);

/* Crash simulation (tests): with BLOCKRELAY_CRASHSIM=1 in the environment
 * at br_sb_open(), the durable image of the file is kept in the shadow
 * "<path>.crashsim", updated by every successful msync; a clean close
 * (everything synced) removes it.  A leftover shadow that differs from the
 * file (the process stopped and no simulated power cut was replayed)
 * makes br_sb_open() fail with -EUCLEAN and a message.  See crashsim.h and
 * docs/operations.md. */

#endif
