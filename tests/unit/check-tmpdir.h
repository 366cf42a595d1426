/* A temporary directory per test (a check fixture): made by setup,
 * removed with everything in it by teardown. */
#ifndef BR_CHECK_TMPDIR_H
#define BR_CHECK_TMPDIR_H

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Make /tmp/br-NAME-XXXXXX into DIR (LEN bytes); fails the test if it
 * cannot. */
static inline void
br_check_mkdtemp (char *dir, size_t len, const char *name)
{
  ck_assert_int_lt (snprintf (dir, len, "/tmp/br-%s-XXXXXX", name), len);
  ck_assert_ptr_nonnull (mkdtemp (dir));
}

static inline int
br_check__rm_one (const char *p, const struct stat *st, int flag,
                  struct FTW *ftw)
{
  (void) st, (void) flag, (void) ftw;
  return remove (p);
}

/* Remove DIR and everything under it (symlinks are not followed). */
static inline void
br_check_rmtree (const char *dir)
{
  nftw (dir, br_check__rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
