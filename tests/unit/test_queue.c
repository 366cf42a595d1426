/* Unit tests: the per-peer record FIFO and the striped region locks. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static struct br_rec *
rec (uint64_t seq)
{
  struct br_rec *r = br__rec_new (BR_T_WRITE, 0, 0, 0, 4096, 8, "abcdefgh");
  br__rec_seal (r, seq);
  return r;
}

START_TEST (test_fifo_order_and_growth)
{
  struct br_fifo f = { 0 };

  /* Interleave pushes and pops so the ring wraps while it grows. */
  uint64_t next_pop = 1, next_push = 1;
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < 37; i++)
      ck_assert_int_eq (br__fifo_push (&f, rec (next_push++)), 0);
    for (int i = 0; i < 20; i++) {
      struct br_rec *r = br__fifo_pop (&f);
      ck_assert_ptr_nonnull (r);
      ck_assert_uint_eq (r->h.seq, next_pop++);
      br__rec_put (r);
    }
  }
  ck_assert_uint_eq (f.len, next_push - next_pop);
  for (size_t i = 0; i < f.len; i++)
    ck_assert_uint_eq (br__fifo_at (&f, i)->h.seq, next_pop + i);
  br__fifo_free (&f);
  ck_assert_uint_eq (f.len, 0);
  ck_assert_ptr_null (br__fifo_pop (&f));
}
END_TEST

START_TEST (test_rec_header_sealed)
{
  struct br_rec *r = rec (42);
  struct br_frame_hdr h;
  const char *reason = NULL;

  ck_assert_int_eq (br_wire_decode_hdr (r->hdr, &h, &reason), 0);
  ck_assert_uint_eq (h.seq, 42);
  ck_assert_uint_eq (h.offset, 4096);
  ck_assert_uint_eq (h.length, 8);
  ck_assert_int_eq (br_wire_check_payload (&h, r->data, &reason), 0);
  br__rec_put (r);
}
END_TEST

START_TEST (test_rec_refcount)
{
  struct br_rec *r = rec (1);

  atomic_fetch_add (&r->refs, 2);
  br__rec_put (r);
  br__rec_put (r);
  ck_assert_uint_eq (atomic_load (&r->refs), 1);
  br__rec_put (r);              /* freed here; ASan catches a double free */
}
END_TEST

/* Threads lock random, often wrapping ranges; each checks that nobody else
 * is inside any region it holds.  Deadlock shows up as a timeout. */
static struct br_rangelock locks;
static int owner[4 * BR_RANGELOCK_STRIPES];
static atomic_int violations;

static void *
hammer (void *arg)
{
  unsigned seed = (unsigned) (uintptr_t) arg;
  int me = (int) (uintptr_t) arg;

  for (int i = 0; i < 20000; i++) {
    uint64_t first = rand_r (&seed) % (4 * BR_RANGELOCK_STRIPES);
    uint64_t n = 1 + rand_r (&seed) % (i % 7 == 0 ? 400 : 8);
    uint64_t last = first + n - 1;
    if (last >= 4 * BR_RANGELOCK_STRIPES)
      last = 4 * BR_RANGELOCK_STRIPES - 1;
    br_rangelock_lock (&locks, first, last);
    for (uint64_t r = first; r <= last; r++) {
      if (__atomic_exchange_n (&owner[r], me, __ATOMIC_SEQ_CST) != 0)
        atomic_fetch_add (&violations, 1);
    }
    for (uint64_t r = first; r <= last; r++)
      __atomic_store_n (&owner[r], 0, __ATOMIC_SEQ_CST);
    br_rangelock_unlock (&locks, first, last);
  }
  return NULL;
}

START_TEST (test_rangelock_exclusion)
{
  pthread_t t[6];

  br_rangelock_init (&locks);
  for (uintptr_t i = 0; i < 6; i++)
    pthread_create (&t[i], NULL, hammer, (void *) (i + 1));
  for (int i = 0; i < 6; i++)
    pthread_join (t[i], NULL);
  ck_assert_int_eq (atomic_load (&violations), 0);
  br_rangelock_destroy (&locks);
}
END_TEST

START_TEST (test_rangelock_trylock)
{
  struct br_rangelock l;

  br_rangelock_init (&l);
  br_rangelock_lock (&l, BR_RANGELOCK_STRIPES - 2, BR_RANGELOCK_STRIPES + 1);
  /* Held: the two stripes at the end and the two at the start. */
  ck_assert (!br_rangelock_trylock (&l, BR_RANGELOCK_STRIPES - 1));
  ck_assert (!br_rangelock_trylock (&l, 2 * BR_RANGELOCK_STRIPES));
  ck_assert (br_rangelock_trylock (&l, 5));
  br_rangelock_unlock (&l, 5, 5);
  br_rangelock_unlock (&l, BR_RANGELOCK_STRIPES - 2, BR_RANGELOCK_STRIPES + 1);
  ck_assert (br_rangelock_trylock (&l, 0));
  br_rangelock_unlock (&l, 0, 0);
  br_rangelock_destroy (&l);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("queue");
  TCase *tc = tcase_create ("core");
  SRunner *sr;
  int failed;

  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_fifo_order_and_growth);
  tcase_add_test (tc, test_rec_header_sealed);
  tcase_add_test (tc, test_rec_refcount);
  tcase_add_test (tc, test_rangelock_exclusion);
  tcase_add_test (tc, test_rangelock_trylock);
  suite_add_tcase (s, tc);
  sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed != 0;
}
