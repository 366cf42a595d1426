/* blockrelay — per-region locks (striped).
 *
 * I3 needs a region's "read for resync + enqueue" and a live write to the
 * same region to exclude each other.  A lock per region would cost memory
 * proportional to the volume, so regions hash onto BR_RANGELOCK_STRIPES
 * mutexes (region % STRIPES).  A range of regions maps onto a run of
 * consecutive stripes (wrapping at most once), which br_rangelock_lock()
 * takes in ascending stripe order, so two lockers can never deadlock.
 *
 * Lock order: stripes before the group lock.  The loop thread only ever
 * uses br_rangelock_trylock(), so it never waits for a writer.
 */
#ifndef BR_RANGELOCK_H
#define BR_RANGELOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define BR_RANGELOCK_STRIPES 256

struct br_rangelock {
  pthread_mutex_t stripe[BR_RANGELOCK_STRIPES];
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
