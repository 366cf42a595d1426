/* Unit tests: the decision of a role change (role.c P1-P6, D1-D4), one
 * row per rule and the rows each rule must not swallow.  Every row is a
 * set of facts the loop thread can gather; the expected result and the
 * rule named in the reason come from role.c's header comment. */
#include <check.h>

#include "check-main.h"
#include <errno.h>
#include <string.h>

#include "role.h"

/* Rows leave the facts they do not use zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define PRI BR_ROLE_PRIMARY
#define REP BR_ROLE_REPLICA

struct row {
  const char *what;
  enum br_role_op op;
  struct br_role_facts f;
  int want;                         /* 0 or -errno */
  const char *rule;                 /* the reason starts with it */
};

static const struct row rows[] = {
  /* promote */
  { "a replica with a front end, nothing in the way", BR_ROLE_PROMOTE,
    { .role = REP, .can_serve = true }, 0, NULL },
  { "primary already", BR_ROLE_PROMOTE,
    { .role = PRI, .can_serve = true, .busy = true }, -EALREADY, "P1" },
  { "a promotion under way", BR_ROLE_PROMOTE,
    { .role = REP, .can_serve = true, .busy = true }, -EBUSY, "P2" },
  { "blockrelayd: no NBD front end", BR_ROLE_PROMOTE,
    { .role = REP, .upstream = "a", .group = "g" }, -EPERM, "P3" },
  { "the old primary is connected", BR_ROLE_PROMOTE,
    { .role = REP, .can_serve = true, .upstream = "a", .group = "g",
      .inconsistent = "vol0", .force = true }, -EPERM, "P4" },
  { "... --force does not override it", BR_ROLE_PROMOTE,
    { .role = REP, .can_serve = true, .upstream = "a", .group = "g",
      .force = true }, -EPERM, "P4" },
  { "an upstream session still closing", BR_ROLE_PROMOTE,
    { .role = REP, .can_serve = true, .starting = true, .group = "g",
      .inconsistent = "vol0" }, -EBUSY, "P5" },
  { "an inconsistent copy", BR_ROLE_PROMOTE,
    { .role = REP, .can_serve = true, .inconsistent = "vol0" }, -EPERM,
    "P6" },
  { "an inconsistent copy, forced", BR_ROLE_PROMOTE,
    { .role = REP, .can_serve = true, .inconsistent = "vol0",
      .force = true }, 0, NULL },
  { "NBD clients do not matter to a promotion", BR_ROLE_PROMOTE,
    { .role = REP, .can_serve = true, .clients = 3, .lagging = "b" }, 0,
    NULL },
  /* demote */
  { "a primary, nothing in the way", BR_ROLE_DEMOTE,
    { .role = PRI, .can_serve = true }, 0, NULL },
  { "a replica already", BR_ROLE_DEMOTE,
    { .role = REP, .clients = 2 }, -EALREADY, "D1" },
  { "a promotion under way", BR_ROLE_DEMOTE,
    { .role = PRI, .busy = true, .clients = 1 }, -EBUSY, "D2" },
  { "clients connected", BR_ROLE_DEMOTE,
    { .role = PRI, .clients = 1, .lagging = "b", .group = "g" }, -EPERM,
    "D3" },
  { "... --force does not override them", BR_ROLE_DEMOTE,
    { .role = PRI, .clients = 1, .force = true }, -EPERM, "D3" },
  { "a peer still acknowledging", BR_ROLE_DEMOTE,
    { .role = PRI, .lagging = "b", .group = "g" }, -EBUSY, "D4" },
  { "a peer still acknowledging, forced", BR_ROLE_DEMOTE,
    { .role = PRI, .lagging = "b", .group = "g", .force = true }, 0, NULL },
  { "an inconsistent copy does not stop a demotion", BR_ROLE_DEMOTE,
    { .role = PRI, .inconsistent = "vol0", .upstream = "x" }, 0, NULL },
};

START_TEST (test_rows)
{
  const struct row *r = &rows[_i];
  struct br_role_facts f = r->f;
  char why[512] = "";
  int got;

  f.node = "n1";
  got = br_role_check (r->op, &f, why, sizeof why);
  ck_assert_msg (got == r->want, "%s: got %d (%s), expected %d", r->what,
                 got, why, r->want);
  if (r->rule)
    ck_assert_msg (strncmp (why, r->rule, strlen (r->rule)) == 0 &&
                   why[strlen (r->rule)] == ':',
                   "%s: reason '%s' does not start with %s:", r->what, why,
                   r->rule);
}
END_TEST

/* The reason names what to act on. */
START_TEST (test_reasons_name_things)
{
  struct br_role_facts f = { .node = "site-b", .role = REP,
                             .can_serve = true, .upstream = "site-a",
                             .group = "db" };
  char why[512];

  ck_assert_int_eq (br_role_check (BR_ROLE_PROMOTE, &f, why, sizeof why),
                    -EPERM);
  ck_assert_ptr_nonnull (strstr (why, "site-a"));
  ck_assert_ptr_nonnull (strstr (why, "db"));
  f = (struct br_role_facts) { .node = "site-b", .role = REP,
                               .can_serve = true, .inconsistent = "wal0" };
  br_role_check (BR_ROLE_PROMOTE, &f, why, sizeof why);
  ck_assert_ptr_nonnull (strstr (why, "wal0"));
  ck_assert_ptr_nonnull (strstr (why, "--force"));
  f = (struct br_role_facts) { .node = "site-a", .role = PRI, .clients = 2 };
  br_role_check (BR_ROLE_DEMOTE, &f, why, sizeof why);
  ck_assert_ptr_nonnull (strstr (why, "2 NBD client"));
}
END_TEST

/* Every rule is reached by some row. */
START_TEST (test_every_rule_covered)
{
  static const char *const rules[] = { "P1", "P2", "P3", "P4", "P5", "P6",
                                       "D1", "D2", "D3", "D4" };

  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
    bool seen = false;

    for (size_t j = 0; j < sizeof rows / sizeof rows[0]; j++)
      seen |= rows[j].rule && strcmp (rows[j].rule, rules[i]) == 0;
    ck_assert_msg (seen, "rule %s has no row", rules[i]);
  }
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("role");
  TCase *tc = tcase_create ("rules");

  tcase_add_loop_test (tc, test_rows, 0, sizeof rows / sizeof rows[0]);
  tcase_add_test (tc, test_reasons_name_things);
  tcase_add_test (tc, test_every_rule_covered);
  suite_add_tcase (s, tc);
  return br_check_run (s);
}
