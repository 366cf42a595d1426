/* blockrelay — striped region locks.  See rangelock.h for the rules.
 *
 * The held stripes are a bitmap under one mutex; a locker takes all the
 * stripes of its range at once or waits on the condition variable, so no
 * thread ever holds some stripes while waiting for others.
 */
#include "rangelock.h"

#include <assert.h>
#include <string.h>

#define WORDS (BR_RANGELOCK_STRIPES / 64)

void
br_rangelock_init (struct br_rangelock *l)
{
  pthread_mutex_init (&l->lock, NULL);
  pthread_cond_init (&l->freed, NULL);
  l->waiters = 0;
  memset (l->held, 0, sizeof l->held);
}

void
br_rangelock_destroy (struct br_rangelock *l)
{
  pthread_mutex_destroy (&l->lock);
  pthread_cond_destroy (&l->freed);
}

/* The stripes of regions FIRST..LAST as a bitmap. */
static void
stripe_mask (uint64_t first, uint64_t last, uint64_t mask[WORDS])
{
  assert (first <= last);
  memset (mask, 0, WORDS * sizeof *mask);
  if (last - first + 1 >= BR_RANGELOCK_STRIPES) {
    memset (mask, 0xff, WORDS * sizeof *mask);
    return;
  }
  for (uint64_t r = first; r <= last; r++) {
    unsigned s = r % BR_RANGELOCK_STRIPES;
    mask[s / 64] |= UINT64_C (1) << (s % 64);
  }
}

static bool
any_held (const struct br_rangelock *l, const uint64_t mask[WORDS])
{
  for (unsigned i = 0; i < WORDS; i++)
    if (l->held[i] & mask[i])
      return true;
  return false;
}

void
br_rangelock_lock (struct br_rangelock *l, uint64_t first, uint64_t last)
{
  uint64_t mask[WORDS];

  stripe_mask (first, last, mask);
  pthread_mutex_lock (&l->lock);
  while (any_held (l, mask)) {
    l->waiters++;
    pthread_cond_wait (&l->freed, &l->lock);
    l->waiters--;
  }
  for (unsigned i = 0; i < WORDS; i++)
    l->held[i] |= mask[i];
  pthread_mutex_unlock (&l->lock);
}

void
br_rangelock_unlock (struct br_rangelock *l, uint64_t first, uint64_t last)
{
  uint64_t mask[WORDS];

  stripe_mask (first, last, mask);
  pthread_mutex_lock (&l->lock);
  for (unsigned i = 0; i < WORDS; i++) {
    assert ((l->held[i] & mask[i]) == mask[i]);
    l->held[i] &= ~mask[i];
  }
  if (l->waiters)
    pthread_cond_broadcast (&l->freed);
  pthread_mutex_unlock (&l->lock);
}

bool
br_rangelock_trylock (struct br_rangelock *l, uint64_t region)
{
  unsigned s = region % BR_RANGELOCK_STRIPES;
  uint64_t bit = UINT64_C (1) << (s % 64);
  bool got;

  pthread_mutex_lock (&l->lock);
  got = !(l->held[s / 64] & bit);
  if (got)
    l->held[s / 64] |= bit;
  pthread_mutex_unlock (&l->lock);
  return got;
}
