/* Unit tests: the generation verdict (verdict.c), one case per rule and
 * the cases each rule must not swallow.  Every row is an input the
 * handshake can produce; the expected action and rule come from the rule
 * list in verdict.c's header comment. */
#include <check.h>

#include "check-main.h"
#include <string.h>

#include "verdict.h"

/* Rows leave the fields they do not use (discard flags, take) zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define G1 0x1111u
#define G2 0x2222u
#define G3 0x3333u
#define G9 0x9999u

#define FR BR_SB_FRESH
#define CO BR_SB_CONSISTENT

struct row {
  const char *what;
  struct br_verdict_in in;
  enum br_verdict_action action;
  int rule;
  bool take;                        /* expected take_owed */
};

/* src and dst: gen, history (first entries), base, owed, flags. */
#define V(gen_, h0, h1, base_, owed_, flags_) \
  { .gen = (gen_), .history = { (h0), (h1) }, .base = (base_), \
    .owed = (owed_), .flags = (flags_) }

static const struct row rows[] = {
  { "receiver owes the sender: it was upstream, at another generation",
    { V (G2, G1, 0, G1, 0, CO), V (G3, G1, 0, G1, 5, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 4 },
  { "receiver owes but is fresh: rule 4 does not apply",
    { V (G2, G1, 0, 0, 0, CO), V (G9, 0, 0, 0, 5, FR | CO), false, false },
    BR_VERDICT_FULL_SYNC, 7 },
  { "new receiver, assume-clean",
    { V (G2, G1, 0, 0, 3, CO), V (G9, 0, 0, 0, 0, FR | CO), false, true },
    BR_VERDICT_ASSUMED, 5 },
  { "new receiver of a new relay",
    { V (G3, 0, 0, 0, 0, FR | CO), V (G9, 0, 0, 0, 0, FR | CO), true, false },
    BR_VERDICT_RESYNC, 6 },
  { "new receiver of a new primary (not a relay): full sync",
    { V (G3, 0, 0, 0, 0, FR | CO), V (G9, 0, 0, 0, 0, FR | CO), false, false },
    BR_VERDICT_FULL_SYNC, 7 },
  { "new receiver of a relay holding data",
    { V (G3, 0, 0, 0, 0, CO), V (G9, 0, 0, 0, 0, FR | CO), true, false },
    BR_VERDICT_FULL_SYNC, 7 },
  { "same generation",
    { V (G2, G1, 0, G1, 7, CO), V (G2, G1, 0, G2, 0, 0), false, false },
    BR_VERDICT_RESYNC, 10 },
  { "same generation, assume-clean does not matter",
    { V (G2, 0, 0, 0, 0, CO), V (G2, 0, 0, 0, 0, CO), false, true },
    BR_VERDICT_RESYNC, 10 },
  { "receiver where the sender last synced it (primary restarted)",
    { V (G2, G1, 0, G1, 0, CO), V (G1, 0, 0, G1, 0, CO), false, false },
    BR_VERDICT_RESYNC, 11 },
  { "receiver at the base, even if the history lost it",
    { V (G3, G2, 0, G1, 0, CO), V (G1, 0, 0, G1, 0, CO), false, false },
    BR_VERDICT_RESYNC, 11 },
  { "receiver at an earlier generation, sender synced it before",
    { V (G3, G2, G1, G1, 0, CO), V (G2, G1, 0, 0, 0, CO), false, false },
    BR_VERDICT_RESYNC, 12 },
  { "... and the receiver's own record of that generation: rule 11",
    { V (G3, G2, G1, G1, 0, CO), V (G2, G1, 0, G2, 0, CO), false, false },
    BR_VERDICT_RESYNC, 11 },
  { "receiver at a generation the sender took over and never synced it",
    { V (G3, G2, 0, 0, 0, CO), V (G2, 0, 0, 0, 0, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 14 },
  { "new relay, receiver holds data: wait",
    { V (G3, 0, 0, 0, 0, FR | CO), V (G2, 0, 0, 0, 0, CO), true, false },
    BR_VERDICT_WAIT, 8 },
  { "sender's disk was lost, receiver holds data",
    { V (G3, 0, 0, 0, 0, FR), V (G2, G1, 0, G1, 0, CO), false, false },
    BR_VERDICT_DST_AHEAD, 9 },
  { "a fresh sender's base does not count (lost disk: history wiped)",
    { V (G3, 0, 0, G2, 0, FR), V (G2, 0, 0, G2, 0, CO), false, false },
    BR_VERDICT_DST_AHEAD, 9 },
  { "fresh sender, receiver at its generation: it sent DST everything",
    { V (G2, G1, 0, 0, 0, FR), V (G2, 0, 0, G2, 0, CO), false, false },
    BR_VERDICT_RESYNC, 10 },
  { "fresh sender restarted before the receiver's SYNCED was recorded",
    { V (G3, G2, 0, 0, 0, FR), V (G2, 0, 0, G2, 0, CO), false, false },
    BR_VERDICT_RESYNC, 11 },
  { "sender restarted before the receiver's SYNCED was recorded",
    { V (G3, G2, 0, 0, 0, CO), V (G2, 0, 0, G2, 0, CO), false, false },
    BR_VERDICT_RESYNC, 11 },
  { "the receiver's base counts only for a generation of the sender",
    { V (G3, G2, 0, 0, 0, CO), V (G9, 0, 0, G9, 0, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 15 },
  { "a fresh sender with a receiver at an unknown base: ahead",
    { V (G3, G2, 0, 0, 0, FR), V (G9, 0, 0, G9, 0, CO), false, false },
    BR_VERDICT_DST_AHEAD, 9 },
  { "fresh sender, receiver at an unrelated generation",
    { V (G3, G2, 0, 0, 0, FR), V (G9, G1, 0, G1, 0, CO), false, false },
    BR_VERDICT_DST_AHEAD, 9 },
  { "sender lost its disk, assume-clean does not overwrite data",
    { V (G3, 0, 0, 0, 0, FR), V (G2, 0, 0, 0, 0, CO), false, true },
    BR_VERDICT_DST_AHEAD, 9 },
  { "unrelated generations",
    { V (G3, G2, 0, G2, 0, CO), V (G9, G1, 0, G1, 0, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 15 },
  { "receiver was written as a primary since its last sync",
    { V (G2, G1, 0, G1, 0, CO), V (G9, G1, 0, G1, 0, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 15 },
  { "a history entry of 0 matches nothing",
    { V (G3, 0, 0, 0, 0, CO), V (G9, 0, 0, 0, 0, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 15 },
  /* Resolve (rules 1-2): the operator discards the receiver's changes. */
  { "discard the receiver, both record the same base: both bitmaps",
    { V (G3, G1, 0, G1, 4, CO), V (G9, G1, 0, G1, 6, CO), false, false,
      .discard_dst = true },
    BR_VERDICT_RESYNC, 1, true },
  { "discard the receiver, even at the sender's generation",
    { V (G3, G1, 0, G1, 0, CO), V (G3, G1, 0, G1, 2, CO), false, false,
      .discard_dst = true },
    BR_VERDICT_RESYNC, 1, true },
  { "discard the receiver, bases differ: full sync",
    { V (G3, G1, 0, G1, 4, CO), V (G9, G2, 0, G2, 6, CO), false, false,
      .discard_dst = true },
    BR_VERDICT_FULL_SYNC, 2 },
  { "discard the receiver, sender never synced it: full sync",
    { V (G3, G1, 0, 0, 0, CO), V (G9, G1, 0, 0, 6, CO), false, false,
      .discard_dst = true },
    BR_VERDICT_FULL_SYNC, 2 },
  { "discard a fresh receiver: the fresh rules (full sync by 7)",
    { V (G3, G1, 0, 0, 0, CO), V (G9, 0, 0, 0, 0, FR | CO), false, false,
      .discard_dst = true },
    BR_VERDICT_FULL_SYNC, 7 },
  /* Failback (rule 3): the old primary returns as the promoted one's
   * replica, still at the generation it was promoted from. */
  { "old primary at the generation the sender was promoted from",
    { V (G2, G1, 0, G1, 0, CO), V (G1, 0, 0, G1, 5, CO), false, false },
    BR_VERDICT_RESYNC, 3, true },
  { "old primary, sender's history lost it: not a failback",
    { V (G2, G3, 0, G1, 0, CO), V (G1, 0, 0, G1, 5, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 4 },
  { "old primary wrote after the loss (new generation): split brain",
    { V (G2, G1, 0, G1, 0, CO), V (G3, G1, 0, G1, 5, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 4 },
  { "owed but the sender never synced it: split brain",
    { V (G2, G1, 0, 0, 0, CO), V (G1, 0, 0, 0, 5, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 4 },
  /* after-split-brain: discard-zero-changes (rule 13). */
  { "receiver started as a primary, never written: zero changes",
    { V (G2, G1, 0, G1, 0, CO), V (G9, G1, 0, G1, 0, CO), false, false,
      .discard_zero = true },
    BR_VERDICT_RESYNC, 13 },
  { "zero changes, but a relay sends: split brain",
    { V (G2, G1, 0, G1, 0, CO), V (G9, G1, 0, G1, 0, CO), true, false,
      .discard_zero = true },
    BR_VERDICT_SPLIT_BRAIN, 15 },
  { "zero changes, but bases differ: split brain",
    { V (G2, G1, 0, G1, 0, CO), V (G9, G3, 0, G3, 0, CO), false, false,
      .discard_zero = true },
    BR_VERDICT_SPLIT_BRAIN, 15 },
  { "zero changes, took over and never synced: split brain",
    { V (G3, G2, 0, 0, 0, CO), V (G2, 0, 0, 0, 0, CO), false, false,
      .discard_zero = true },
    BR_VERDICT_SPLIT_BRAIN, 14 },
};

START_TEST (test_rows)
{
  const struct row *r = &rows[_i];
  struct br_verdict v = br_gen_verdict (&r->in);

  ck_assert_msg (v.action == r->action && v.rule == r->rule,
                 "%s: got %s by rule %d, expected %s by rule %d", r->what,
                 br_verdict_action_name (v.action), v.rule,
                 br_verdict_action_name (r->action), r->rule);
  ck_assert_ptr_nonnull (v.why);
  ck_assert_msg (v.take_owed == r->take, "%s: take_owed %d, expected %d",
                 r->what, v.take_owed, r->take);
}
END_TEST

/* Every rule is exercised by some row. */
START_TEST (test_every_rule_covered)
{
  bool seen[BR_VERDICT_RULES + 1] = { false };

  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    seen[br_gen_verdict (&rows[i].in).rule] = true;
  for (int n = 1; n <= BR_VERDICT_RULES; n++)
    ck_assert_msg (seen[n], "rule %d has no test row", n);
}
END_TEST

/* The verdict never depends on anything but its input: both sides of a
 * handshake compute it from the same exchanged views. */
START_TEST (test_pure)
{
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    struct br_verdict_in copy = rows[i].in;
    struct br_verdict a = br_gen_verdict (&rows[i].in);
    struct br_verdict b = br_gen_verdict (&copy);
    ck_assert_int_eq (a.action, b.action);
    ck_assert_int_eq (a.rule, b.rule);
  }
}
END_TEST

START_TEST (test_stops)
{
  ck_assert (br_verdict_stops (BR_VERDICT_SPLIT_BRAIN));
  ck_assert (br_verdict_stops (BR_VERDICT_DST_AHEAD));
  ck_assert (!br_verdict_stops (BR_VERDICT_RESYNC));
  ck_assert (!br_verdict_stops (BR_VERDICT_FULL_SYNC));
  ck_assert (!br_verdict_stops (BR_VERDICT_ASSUMED));
  ck_assert (!br_verdict_stops (BR_VERDICT_WAIT));
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("verdict");
  TCase *tc = tcase_create ("rules");

  tcase_add_loop_test (tc, test_rows, 0, sizeof rows / sizeof rows[0]);
  tcase_add_test (tc, test_every_rule_covered);
  tcase_add_test (tc, test_pure);
  tcase_add_test (tc, test_stops);
  suite_add_tcase (s, tc);
  return br_check_run (s);
}
