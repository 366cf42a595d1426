/* blockrelay — the local backing store of one volume (see disk.c). */
#ifndef BR_DISK_H
#define BR_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef struct br_disk br_disk;

/* Open PATH as the backing store of a volume of SIZE bytes.  A regular file
 * that does not exist is created sparse at SIZE; an existing regular file
 * or a block device must be exactly SIZE bytes, otherwise this fails with a
 * message naming both sizes.  Returns 0 or -errno; ERR gets a message. */
int br_disk_open (const char *path, uint64_t size, br_disk **out,
                  char *err, size_t errlen);
void br_disk_close (br_disk *d);

uint64_t br_disk_size (const br_disk *d);
bool br_disk_is_blockdev (const br_disk *d);
/* True if br_disk_open() created the file (it did not exist). */
bool br_disk_created (const br_disk *d);
const char *br_disk_path (const br_disk *d);

/* All return 0 or -errno; partial transfers are retried internally.
 * Thread-safe: they use positional I/O on one descriptor. */
int br_disk_pread (br_disk *d, void *buf, size_t count, uint64_t offset);
int br_disk_pwrite (br_disk *d, const void *buf, size_t count,
                    uint64_t offset);
int br_disk_flush (br_disk *d);              /* fdatasync */
/* How many of the I/O calls above (pread, pwrite, flush, zero) failed. */
uint64_t br_disk_errors (const br_disk *d);
/* Make [offset, offset+count) read back as zeros.  MAY_TRIM allows
 * deallocation (punch hole / BLKDISCARD with zeroing guarantee); otherwise
 * FALLOC_FL_ZERO_RANGE / BLKZEROOUT; falls back to writing zeros. */
int br_disk_zero (br_disk *d, size_t count, uint64_t offset, bool may_trim);

/* Fault injection for tests (issue 3 extends it): when the environment
 * variable BLOCKRELAY_FAULTS is set at open time, e.g.
 *   BLOCKRELAY_FAULTS="write:EIO:after=100,sync:ENOSPC"
 * matching operations fail with that errno.  Documented in docs/operations.md.
 *
 * Format: a comma-separated list of rules, each
 *   OP:ERRNO[:after=N][:path=SUBSTR]
 *   OP      read | write | sync | zero   (sync = br_disk_flush)
 *   ERRNO   EIO | ENOSPC                 (the op returns -EIO / -ENOSPC)
 *   after=N the first N matching operations on this disk succeed, every
 *           later one fails (default 0: all fail)
 *   path=S  the rule applies only to disks whose path contains S (S cannot
 *           contain ':' or ',')
 * The options may come in either order.  A failing operation does nothing
 * (no byte is transferred).  Each open disk keeps its own counters (atomic,
 * so concurrent operations are counted exactly once).  When several rules
 * match one operation, the first one that fires decides the errno.  A
 * malformed value makes br_disk_open() fail with -EINVAL and a message, so
 * a typo in a test never silently disables the fault. */

/* Crash simulation for tests: when BLOCKRELAY_CRASHSIM=1 is set at open
 * time, a regular-file disk records in "<path>.crashsim" what a power cut
 * could lose: the pre-image of every write and zero, their completion and
 * every fdatasync (format in crashsim.h); `br-powercut cut` replays a cut.
 * Writes and zeros of one disk are serialized in this mode.  Unset, "" or
 * "0" is off (one branch per operation, nothing else); any other value
 * makes br_disk_open() fail with -EINVAL; a block device with the switch
 * on fails with -ENOTSUP (unsupported).  Opening a disk whose journal
 * still holds a write that was not durable (the process stopped and no
 * cut was replayed) fails with -EUCLEAN and a message saying to run
 * br-powercut; a journal with nothing volatile is discarded.  Closing with
 * everything synced removes the journal.  Documented in
 * docs/operations.md. */

#endif
