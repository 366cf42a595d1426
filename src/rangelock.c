/* blockrelay — striped region locks.  See rangelock.h for the rules. */
#include "rangelock.h"

#include <assert.h>

void
br_rangelock_init (struct br_rangelock *l)
{
  for (unsigned i = 0; i < BR_RANGELOCK_STRIPES; i++)
    pthread_mutex_init (&l->stripe[i], NULL);
}

void
br_rangelock_destroy (struct br_rangelock *l)
{
  for (unsigned i = 0; i < BR_RANGELOCK_STRIPES; i++)
    pthread_mutex_destroy (&l->stripe[i]);
}

/* The stripes of FIRST..LAST as up to two ascending runs [a0,a1] [b0,b1];
 * returns the number of runs. */
static int
stripe_runs (uint64_t first, uint64_t last, unsigned run[2][2])
{
  const unsigned n = BR_RANGELOCK_STRIPES;
  unsigned s0, s1;

  assert (first <= last);
  if (last - first + 1 >= n) {
    run[0][0] = 0;
    run[0][1] = n - 1;
    return 1;
  }
  s0 = first % n;
  s1 = last % n;
  if (s0 <= s1) {
    run[0][0] = s0;
    run[0][1] = s1;
    return 1;
  }
  /* Wraps: [0, s1] comes before [s0, n-1] in stripe order. */
  run[0][0] = 0;
  run[0][1] = s1;
  run[1][0] = s0;
  run[1][1] = n - 1;
  return 2;
}

void
br_rangelock_lock (struct br_rangelock *l, uint64_t first, uint64_t last)
{
  unsigned run[2][2];
  int n = stripe_runs (first, last, run);

  for (int r = 0; r < n; r++)
    for (unsigned i = run[r][0]; i <= run[r][1]; i++)
      pthread_mutex_lock (&l->stripe[i]);
}

void
br_rangelock_unlock (struct br_rangelock *l, uint64_t first, uint64_t last)
{
  unsigned run[2][2];
  int n = stripe_runs (first, last, run);

  for (int r = n - 1; r >= 0; r--)
    for (unsigned i = run[r][1] + 1; i-- > run[r][0];)
      pthread_mutex_unlock (&l->stripe[i]);
}

bool
br_rangelock_trylock (struct br_rangelock *l, uint64_t region)
{
  return pthread_mutex_trylock (&l->stripe[region % BR_RANGELOCK_STRIPES])
    == 0;
}
