/* blockrelay — the scoreboard's private state, shared by its two files:
 * scoreboard.c (bitmaps, group commit, open and close) and
 * scoreboard-header.c (the header fields with setters, the peer slots).
 *
 * Lock rules (the design comment in scoreboard.c has the invariants):
 * `lock` guards the group commit, `hlock` serializes the header's setters;
 * the two are never held together.  No other file may include this one.
 */
#ifndef BLOCKRELAY_SCOREBOARD_INT_H
#define BLOCKRELAY_SCOREBOARD_INT_H

#include "scoreboard.h"
#include "scoreboard-disk.h"
#include "crashsim.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct br_scoreboard {
  char *path;
  int fd;
  uint8_t *map;
  size_t map_len;
  struct br_sb_header_disk *hdr;        /* = map */
  uint64_t *bits[BR_SB_MAX_PEERS];      /* raw little-endian words */
  uint64_t volume_size, nregions, nwords;
  uint32_t granularity;
  unsigned shift;                       /* log2 (granularity) */
  bool was_clean;

  uint64_t count[BR_SB_MAX_PEERS];      /* atomic, S5 */
  uint64_t set_ticket;                  /* atomic, S2 */
  uint64_t durable;                     /* atomic, S3 */
  uint64_t msync_rounds, slow_marks;    /* atomic, statistics */

  pthread_mutex_t lock;                 /* group commit */
  pthread_cond_t cv;
  bool syncing;
  int sync_err;                         /* atomic, sticky, S6 */

  pthread_mutex_t hlock;                /* header fields */
  br_cs_shadow *cs;                     /* crash simulation, or NULL */
};
static inline bool
br__sb_slot_ok (int slot)
{
  return slot >= 0 && slot < BR_SB_MAX_PEERS;
}

/* msync the first LEN bytes of the mapping (through the crash simulation
 * when it is on).  A failure is logged and made sticky in sync_err (S6).
 * Returns 0 or -errno. */
int br__sb_msync (br_scoreboard *sb, size_t len);

#endif /* BLOCKRELAY_SCOREBOARD_INT_H */
