/* Unit tests: the generation verdict (verdict.c), one case per rule and
 * the cases each rule must not swallow.  Every row is an input the
 * handshake can produce; the expected action and rule come from the rule
 * list in verdict.c's header comment. */
#include <check.h>

#include "check-main.h"
#include <string.h>

#include "verdict.h"

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
};

/* src and dst: gen, history (first entries), base, owed, flags. */
#define V(gen_, h0, h1, base_, owed_, flags_) \
  { .gen = (gen_), .history = { (h0), (h1) }, .base = (base_), \
    .owed = (owed_), .flags = (flags_) }

static const struct row rows[] = {
  { "receiver owes the sender: it was upstream",
    { V (G2, G1, 0, G1, 0, CO), V (G1, 0, 0, G1, 5, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 1 },
  { "receiver owes but is fresh: rule 1 does not apply",
    { V (G2, G1, 0, 0, 0, CO), V (G9, 0, 0, 0, 5, FR | CO), false, false },
    BR_VERDICT_FULL_SYNC, 4 },
  { "new receiver, assume-clean",
    { V (G2, G1, 0, 0, 3, CO), V (G9, 0, 0, 0, 0, FR | CO), false, true },
    BR_VERDICT_ASSUMED, 2 },
  { "new receiver of a new relay",
    { V (G3, 0, 0, 0, 0, FR | CO), V (G9, 0, 0, 0, 0, FR | CO), true, false },
    BR_VERDICT_RESYNC, 3 },
  { "new receiver of a new primary (not a relay): full sync",
    { V (G3, 0, 0, 0, 0, FR | CO), V (G9, 0, 0, 0, 0, FR | CO), false, false },
    BR_VERDICT_FULL_SYNC, 4 },
  { "new receiver of a relay holding data",
    { V (G3, 0, 0, 0, 0, CO), V (G9, 0, 0, 0, 0, FR | CO), true, false },
    BR_VERDICT_FULL_SYNC, 4 },
  { "same generation",
    { V (G2, G1, 0, G1, 7, CO), V (G2, G1, 0, G2, 0, 0), false, false },
    BR_VERDICT_RESYNC, 7 },
  { "same generation, assume-clean does not matter",
    { V (G2, 0, 0, 0, 0, CO), V (G2, 0, 0, 0, 0, CO), false, true },
    BR_VERDICT_RESYNC, 7 },
  { "receiver where the sender last synced it (primary restarted)",
    { V (G2, G1, 0, G1, 0, CO), V (G1, 0, 0, G1, 0, CO), false, false },
    BR_VERDICT_RESYNC, 8 },
  { "receiver at the base, even if the history lost it",
    { V (G3, G2, 0, G1, 0, CO), V (G1, 0, 0, G1, 0, CO), false, false },
    BR_VERDICT_RESYNC, 8 },
  { "receiver at an earlier generation, sender synced it before",
    { V (G3, G2, G1, G1, 0, CO), V (G2, G1, 0, 0, 0, CO), false, false },
    BR_VERDICT_RESYNC, 9 },
  { "... and the receiver's own record of that generation: rule 8",
    { V (G3, G2, G1, G1, 0, CO), V (G2, G1, 0, G2, 0, CO), false, false },
    BR_VERDICT_RESYNC, 8 },
  { "receiver at a generation the sender took over and never synced it",
    { V (G3, G2, 0, 0, 0, CO), V (G2, 0, 0, 0, 0, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 10 },
  { "new relay, receiver holds data: wait",
    { V (G3, 0, 0, 0, 0, FR | CO), V (G2, 0, 0, 0, 0, CO), true, false },
    BR_VERDICT_WAIT, 5 },
  { "sender's disk was lost, receiver holds data",
    { V (G3, 0, 0, 0, 0, FR), V (G2, G1, 0, G1, 0, CO), false, false },
    BR_VERDICT_DST_AHEAD, 6 },
  { "a fresh sender's base does not count (lost disk: history wiped)",
    { V (G3, 0, 0, G2, 0, FR), V (G2, 0, 0, G2, 0, CO), false, false },
    BR_VERDICT_DST_AHEAD, 6 },
  { "fresh sender, receiver at its generation: it sent DST everything",
    { V (G2, G1, 0, 0, 0, FR), V (G2, 0, 0, G2, 0, CO), false, false },
    BR_VERDICT_RESYNC, 7 },
  { "fresh sender restarted before the receiver's SYNCED was recorded",
    { V (G3, G2, 0, 0, 0, FR), V (G2, 0, 0, G2, 0, CO), false, false },
    BR_VERDICT_RESYNC, 8 },
  { "sender restarted before the receiver's SYNCED was recorded",
    { V (G3, G2, 0, 0, 0, CO), V (G2, 0, 0, G2, 0, CO), false, false },
    BR_VERDICT_RESYNC, 8 },
  { "the receiver's base counts only for a generation of the sender",
    { V (G3, G2, 0, 0, 0, CO), V (G9, 0, 0, G9, 0, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 11 },
  { "a fresh sender with a receiver at an unknown base: ahead",
    { V (G3, G2, 0, 0, 0, FR), V (G9, 0, 0, G9, 0, CO), false, false },
    BR_VERDICT_DST_AHEAD, 6 },
  { "fresh sender, receiver at an unrelated generation",
    { V (G3, G2, 0, 0, 0, FR), V (G9, G1, 0, G1, 0, CO), false, false },
    BR_VERDICT_DST_AHEAD, 6 },
  { "sender lost its disk, assume-clean does not overwrite data",
    { V (G3, 0, 0, 0, 0, FR), V (G2, 0, 0, 0, 0, CO), false, true },
    BR_VERDICT_DST_AHEAD, 6 },
  { "unrelated generations",
    { V (G3, G2, 0, G2, 0, CO), V (G9, G1, 0, G1, 0, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 11 },
  { "receiver was written as a primary since its last sync",
    { V (G2, G1, 0, G1, 0, CO), V (G9, G1, 0, G1, 0, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 11 },
  { "a history entry of 0 matches nothing",
    { V (G3, 0, 0, 0, 0, CO), V (G9, 0, 0, 0, 0, CO), false, false },
    BR_VERDICT_SPLIT_BRAIN, 11 },
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
