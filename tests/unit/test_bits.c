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

/* br_resync_clears: one row per case. */
static const struct {
  const char *what;
  uint64_t rec_seq, fail_seq;
  bool differs, clears;
} resync_rows[] = {
  { "no failure: any RESYNC record counts", 1, 0, false, true },
  /* A record read before the region's local write failed does not (bug:
   * it left the peer holding data this disk refused). */
  { "read before the failure", 5, 10, false, false },
  { "read at the failure", 10, 10, false, false },
  { "read after the failure", 11, 10, false, true },
  /* A checksum resync's HASH that the peer said differs: the region's
   * data must still be sent (bug: the bit cleared with the copies
   * different). */
  { "hash differs", 11, 0, true, false },
  { "hash differs, read before a failure", 5, 10, true, false },
  { "hash matched, read before a failure", 5, 10, false, false },
};

START_TEST (test_resync_clears)
{
  ck_assert_msg (br_resync_clears (resync_rows[_i].rec_seq,
                                   resync_rows[_i].fail_seq,
                                   resync_rows[_i].differs)
                 == resync_rows[_i].clears, "%s", resync_rows[_i].what);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("bits");
  TCase *tc = tcase_create ("rule");

  tcase_add_loop_test (tc, test_clear_rule, 0, sizeof rows / sizeof rows[0]);
  tcase_add_loop_test (tc, test_resync_clears, 0,
                       sizeof resync_rows / sizeof resync_rows[0]);
  suite_add_tcase (s, tc);
  return br_check_run (s);
}
