/* The end of every unit test program: run suite S, exit status 0 only if
 * every test passed. */
#ifndef BR_CHECK_MAIN_H
#define BR_CHECK_MAIN_H

#include <check.h>

static inline int
br_check_run (Suite *s)
{
  SRunner *sr = srunner_create (s);
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? 1 : 0;
}

#endif
