/* blockrelay — simulated power loss for the volume and scoreboard layers
 * (see crashsim.c for the recording side and crashsim-replay.c for the
 * cut).
 *
 * A SIGKILL keeps the page cache, so killing a process never loses a write
 * that the kernel accepted.  With BLOCKRELAY_CRASHSIM=1 in the environment
 * of a process that opens disks and scoreboards (nbdkit with the plugin,
 * blockrelayd), every open regular-file disk keeps a side journal
 * "<disk>.crashsim" and every scoreboard a shadow "<meta>.crashsim"; both
 * are plain files written with pwrite, so they survive a SIGKILL as well.
 * After the process is killed, br_cs_cut() (the br-powercut tool) turns
 * the disk and the scoreboard into what a power cut at that instant could
 * have left: everything not yet fdatasync'ed or msync'ed is lost, wholly or
 * (torn) sector by sector.
 *
 * Switch values: unset, "" or "0" = off; "1" = on; anything else is an
 * error at open (so a typo never silently disables the simulation).  Off
 * costs one predictable branch per disk operation and per msync.
 *
 * Journal format (all integers little-endian; see crashsim.c):
 *   file header (64 bytes)  magic "BRCSJNL1", version, header size, disk
 *                           size, XXH32 of bytes 0..59
 *   records (40-byte header + payload), in the order they happened:
 *     'U' ID OFF LEN + LEN bytes   undo: pre-image of part of write ID
 *     'Z' ID OFF LEN               undo: that pre-image was all zeros
 *     'C' ID                       write ID returned (completed)
 *     'B' N / 'E' N                fdatasync number N began / succeeded
 * Replay rule: a write is durable iff its 'C' precedes the 'B' of a sync
 * whose 'E' is present; every other write is volatile.
 *
 * Shadow format: a byte copy of the scoreboard file as durable storage
 * holds it (updated by every successful msync).
 */
#ifndef BR_CRASHSIM_H
#define BR_CRASHSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BR_CS_ENV "BLOCKRELAY_CRASHSIM"
#define BR_CS_SUFFIX ".crashsim"
#define BR_CS_SECTOR 512u

/* 1 if BLOCKRELAY_CRASHSIM asks for the simulation, 0 if not, -EINVAL
 * (with a message naming the value) if it is malformed. */
int br_cs_mode (char *err, size_t errlen);

/* ---- recording (disk.c, scoreboard.c) ---------------------------------- */

typedef struct br_cs_journal br_cs_journal;
typedef struct br_cs_shadow br_cs_shadow;

/* Start the journal of the disk PATH (a regular file of SIZE bytes open as
 * DISK_FD).  A leftover journal that a power cut would change (a volatile
 * write) refuses the open with a message telling to run br-powercut; one
 * that holds nothing volatile is discarded.  CREATED: the disk file was
 * just created (a leftover journal belongs to a file that is gone).
 * Returns 0 or -errno with a message. */
int br_cs_journal_open (const char *path, int disk_fd, uint64_t size,
                        bool created, br_cs_journal **out,
                        char *err, size_t errlen);
/* Remove the journal if nothing in it is volatile, else keep it (a cut
 * can still lose those writes); free. */
void br_cs_journal_close (br_cs_journal *j);
/* Around one write or zero of [OFF, OFF+LEN) of the disk: begin takes the
 * journal lock and appends the range's pre-image; end appends 'C' and
 * drops the lock (called whatever the operation returned, once begin
 * returned 0).  Returns 0 or -errno (nothing may be written then). */
int br_cs_write_begin (br_cs_journal *j, uint64_t off, uint64_t len);
void br_cs_write_end (br_cs_journal *j);
/* Around one fdatasync: begin appends 'B' and fills the sync's ticket;
 * end appends 'E' if OK, then truncates or compacts the journal. */
struct br_cs_sync {
  uint64_t n;                   /* sync number */
  uint64_t rseq;                /* record number of its 'B' */
  uint64_t pos;                 /* journal position of its 'B' */
};
int br_cs_sync_begin (br_cs_journal *j, struct br_cs_sync *t);
void br_cs_sync_end (br_cs_journal *j, const struct br_cs_sync *t, bool ok);

/* The shadow of the scoreboard PATH (open as FD, SIZE bytes).  Same rule
 * for a leftover shadow as for a journal (it refuses the open if it
 * differs from the file).  The shadow file itself is written by the first
 * br_cs_shadow_msync, which must cover the whole file. */
int br_cs_shadow_open (const char *path, int fd, uint64_t size,
                       br_cs_shadow **out, char *err, size_t errlen);
/* msync(MAP, LEN) through MSYNC_FN, recording in the shadow what it made
 * durable: the content of MAP when the call began (words are read with
 * atomic loads; the header page [0, HDR) only when LEN == HDR, where the
 * caller holds the lock of the header fields, or on the first call).
 * Returns what MSYNC_FN returned, or -errno if the shadow write failed. */
int br_cs_shadow_msync (br_cs_shadow *s, void *map, size_t len, size_t hdr,
                        int (*msync_fn) (void *, size_t, void *),
                        void *arg);
/* SYNCED: the file is durable as it is (the last msync covered all of
 * it): remove the shadow.  Otherwise keep it.  Free. */
void br_cs_shadow_close (br_cs_shadow *s, bool synced);

/* ---- replay (br-powercut, unit tests) ---------------------------------- */

struct br_cs_stats {
  bool scoreboard;              /* the file was a scoreboard shadow */
  uint64_t records;             /* journal records */
  uint64_t writes, volatile_writes;
  uint64_t volatile_bytes;      /* bytes whose newest version is volatile */
  uint64_t sectors;             /* sectors holding a volatile version */
  uint64_t rolled_back;         /* ... that ended at their durable content */
  uint64_t intermediate;        /* ... at a volatile version, not the last */
  uint64_t kept;                /* ... at their newest (current) content */
};

/* Apply a simulated power cut to TARGET (a disk image or a .meta file;
 * its journal or shadow is TARGET.crashsim) and delete the journal or
 * shadow.  TORN false: every volatile write is lost.  TORN true: each
 * 512-byte sector independently ends at one of the versions it went
 * through since it was last durable, chosen with a generator seeded from
 * SEED and the file's name.  -ENOENT if there is nothing to replay. */
int br_cs_cut (const char *target, bool torn, uint64_t seed,
               struct br_cs_stats *st, char *err, size_t errlen);
/* What a cut of TARGET would lose (nothing is changed).  Returns 0 (ST
 * filled) or -errno with a message. */
int br_cs_inspect (const char *target, struct br_cs_stats *st,
                   char *err, size_t errlen);

/* I1 check: every region (META's granularity) where IMAGE_A and IMAGE_B
 * differ has its bit set in META's bitmap for PEER.  REPORT(region, arg)
 * is called for each region that differs without a bit.  Returns 0 with
 * *DIFFER and *UNCOVERED filled, or -errno with a message. */
int br_cs_cover (const char *image_a, const char *meta, const char *peer,
                 const char *image_b, uint64_t *differ, uint64_t *bits,
                 uint64_t *uncovered,
                 void (*report) (uint64_t region, uint64_t gran, void *),
                 void *arg, char *err, size_t errlen);

#endif
