/* blockrelay — per-region locks (striped).
 *
 * I3 needs a region's "read for resync + enqueue" and a live write to the
 * same region to exclude each other.  A lock per region would cost memory
 * proportional to the volume, so regions hash onto BR_RANGELOCK_STRIPES
 * stripes (region % STRIPES), kept as a bitmap of held stripes under one
 * mutex.  br_rangelock_lock() waits until every stripe of its range is free
 * and takes them all at once, so lockers can never deadlock on each other
 * however their ranges overlap.
 *
 * Lock order: stripes before the group lock (the internal mutex is held
 * only inside these functions).  The loop thread only ever
 * uses br_rangelock_trylock(), so it never waits for a writer.
 */
#ifndef BR_RANGELOCK_H
#define BR_RANGELOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define BR_RANGELOCK_STRIPES 256

struct br_rangelock {
  pthread_mutex_t lock;
  pthread_cond_t freed;
  unsigned waiters;
  uint64_t held[BR_RANGELOCK_STRIPES / 64];
};

void br_rangelock_init (struct br_rangelock *l);
void br_rangelock_destroy (struct br_rangelock *l);
/* Lock / unlock every stripe covering regions FIRST..LAST (inclusive). */
void br_rangelock_lock (struct br_rangelock *l, uint64_t first, uint64_t last);
void br_rangelock_unlock (struct br_rangelock *l, uint64_t first,
                          uint64_t last);
/* Try to lock the stripe of one region. */
bool br_rangelock_trylock (struct br_rangelock *l, uint64_t region);

#endif
