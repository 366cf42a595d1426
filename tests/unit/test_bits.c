/* Unit tests: when a scoreboard bit may clear (bits.c br_clear_rule, I2)
 * and when a RESYNC record brings a region back in sync
 * (br_resync_clears).  One row per condition C1-C5 and their interplay,
 * and whether the region asks for a local sync (br_clear_wants_sync). */
#include <check.h>

#include "check-main.h"

#include "internal.h"

enum { NOW = BR_CLEAR_NOW, HOLD = BR_CLEAR_HOLD, KEEP = BR_CLEAR_KEEP };

struct row {
  const char *what;
  struct br_clear_in in;
  int want;
  bool sync;                    /* br_clear_wants_sync */
};

/* last_seq, durable, out_of_sync, stripe_busy, local_durable, age_ms,
 * window_ms, no_window */
#define IN(ls, d, oos, busy, local, age, win, nowin) \
  { .last_seq = (ls), .durable = (d), .out_of_sync = (oos), \
    .stripe_busy = (busy), .local_durable = (local), .age_ms = (age), \
    .window_ms = (win), .no_window = (nowin) }

static const struct row rows[] = {
  { "all conditions hold", IN (5, 5, 0, 0, 1, 100, 50, 0), NOW, 0 },
  { "durable past the last write", IN (5, 9, 0, 0, 1, 100, 50, 0), NOW, 0 },
  { "C1: a newer write is not durable",
    IN (6, 5, 0, 0, 1, 100, 50, 0), KEEP, 0 },
  { "C1 beats every hold reason", IN (6, 5, 0, 1, 0, 0, 50, 0), KEEP, 0 },
  { "C2: out of sync", IN (5, 5, 1, 0, 1, 100, 50, 0), KEEP, 0 },
  { "C2 even at a clean stop", IN (5, 5, 1, 0, 1, 100, 50, 1), KEEP, 0 },
  { "C3: a writer holds the stripe", IN (5, 5, 0, 1, 1, 100, 50, 0), HOLD, 0 },
  { "C3 even at a clean stop", IN (5, 5, 0, 1, 1, 100, 50, 1), HOLD, 0 },
  { "C4: written within the window", IN (5, 5, 0, 0, 1, 10, 50, 0), HOLD, 0 },
  { "C4 ignored at a clean stop", IN (5, 5, 0, 0, 1, 10, 50, 1), NOW, 0 },
  { "C4 with a window of 0", IN (5, 5, 0, 0, 1, 0, 0, 0), NOW, 0 },
  { "C5: this copy not durable yet", IN (5, 5, 0, 0, 0, 100, 50, 0), HOLD, 1 },
  { "C5 even at a clean stop", IN (5, 5, 0, 0, 0, 100, 50, 1), HOLD, 1 },
  { "C5 with a window of 0", IN (5, 5, 0, 0, 0, 100, 0, 0), HOLD, 1 },
  { "never written in this run", IN (0, 0, 0, 0, 1, 100, 50, 0), NOW, 0 },
  /* A sync is asked for only when C5 alone holds the region. */
  { "C5 and C4: the window first", IN (5, 5, 0, 0, 0, 10, 50, 0), HOLD, 0 },
  { "C5 and C3: the writer first", IN (5, 5, 0, 1, 0, 100, 50, 0), HOLD, 0 },
  { "C5 and C1: kept, no sync", IN (6, 5, 0, 0, 0, 100, 50, 0), KEEP, 0 },
  { "C5 and C2: kept, no sync", IN (5, 5, 1, 0, 0, 100, 50, 0), KEEP, 0 },
  { "C5 and C4 at a clean stop", IN (5, 5, 0, 0, 0, 10, 50, 1), HOLD, 1 },
};

START_TEST (test_clear_rule)
{
  const struct row *r = &rows[_i];

  ck_assert_msg ((int) br_clear_rule (&r->in) == r->want, "%s: got %d, "
                 "expected %d", r->what, br_clear_rule (&r->in), r->want);
  ck_assert_msg (br_clear_wants_sync (&r->in) == r->sync,
                 "%s: wants a sync: got %d, expected %d", r->what,
                 br_clear_wants_sync (&r->in), r->sync);
}
END_TEST

START_TEST (test_resync_clears)
{
  /* No failure: any RESYNC record counts. */
  ck_assert (br_resync_clears (1, 0));
  /* A record read before the region's local write failed does not
   * (bug: it left the peer holding data this disk refused). */
  ck_assert (!br_resync_clears (5, 10));
  ck_assert (!br_resync_clears (10, 10));
  /* One read after the failure does. */
  ck_assert (br_resync_clears (11, 10));
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("bits");
  TCase *tc = tcase_create ("rule");

  tcase_add_loop_test (tc, test_clear_rule, 0, sizeof rows / sizeof rows[0]);
  tcase_add_test (tc, test_resync_clears);
  suite_add_tcase (s, tc);
  return br_check_run (s);
}
