/* blockrelay — unit tests for the flow of data (src/topology.c).
 *
 * Each test loads a small topology from a temporary file and asks who
 * forwards to whom for a given primary: the star, the chain, the mesh
 * (the same file with each node as primary), a mixed tree, and the
 * refusal of links that make the flow ambiguous (a square), reported at
 * the link's line and column.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char path[64];

static void
setup (void)
{
  int fd;

  strcpy (path, "/tmp/br-test-topo-XXXXXX");
  fd = mkstemp (path);
  ck_assert_int_ge (fd, 0);
  close (fd);
}

static void
teardown (void)
{
  unlink (path);
}

/* NODES: names "a" ... ; LINKS: YAML lines for links. */
static struct br_config *
load_topo (const char *nodes, const char *links, char *err, size_t errlen)
{
  FILE *fp = fopen (path, "w");
  struct br_config *cfg = NULL;
  int port = 10901;

  ck_assert_ptr_nonnull (fp);
  fprintf (fp, "volumes:\n  - {name: vol0, size: 1G}\nnodes:\n");
  for (const char *n = nodes; *n; n++)
    fprintf (fp, "  - {name: %c, address: 127.0.0.1:%d, data-dir: %c}\n",
             *n, port++, *n);
  fprintf (fp, "links:\n%s", links);
  ck_assert_int_eq (fclose (fp), 0);
  if (br_config_load (path, &cfg, err, errlen) < 0)
    return NULL;
  return cfg;
}

static struct br_config *
load_ok (const char *nodes, const char *links)
{
  char err[1024];
  struct br_config *cfg = load_topo (nodes, links, err, sizeof err);

  ck_assert_msg (cfg != NULL, "load failed: %s", err);
  return cfg;
}

/* The children of NODE with ORIGIN primary, as a string of names in
 * file order ("" for none). */
static const char *
children (const struct br_config *cfg, const char *origin, const char *node)
{
  static char buf[16];
  const struct br_node_cfg *out[8];
  const struct br_link_cfg *links[8];
  int n = br_topology_children (cfg, origin, node, out, links, 8);

  ck_assert_int_ge (n, 0);
  for (int i = 0; i < n; i++) {
    buf[i] = out[i]->name[0];
    /* the link returned is the one between NODE and the child */
    ck_assert_ptr_eq (links[i], br_config_link (cfg, node, out[i]->name));
  }
  buf[n] = '\0';
  return buf;
}

START_TEST (test_star)
{
  struct br_config *cfg = load_ok ("abcd",
    "  - {between: [a, b], mode: sync}\n"
    "  - {between: [a, c], mode: async}\n"
    "  - {between: [d, a], mode: async}\n");

  ck_assert_str_eq (children (cfg, "a", "a"), "bcd");
  ck_assert_str_eq (children (cfg, "a", "b"), "");
  ck_assert_ptr_null (br_topology_parent (cfg, "a", "a"));
  ck_assert_str_eq (br_topology_parent (cfg, "a", "d"), "a");
  /* b as primary: a relays to c and d. */
  ck_assert_str_eq (children (cfg, "b", "b"), "a");
  ck_assert_str_eq (children (cfg, "b", "a"), "cd");
  br_config_free (cfg);
}
END_TEST

START_TEST (test_chain)
{
  struct br_config *cfg = load_ok ("abcd",
    "  - {between: [a, b], mode: sync}\n"
    "  - {between: [c, b], mode: async}\n"
    "  - {between: [c, d], mode: async, rate: 20M}\n");

  ck_assert_str_eq (children (cfg, "a", "a"), "b");
  ck_assert_str_eq (children (cfg, "a", "b"), "c");
  ck_assert_str_eq (children (cfg, "a", "c"), "d");
  ck_assert_str_eq (children (cfg, "a", "d"), "");
  ck_assert_str_eq (br_topology_parent (cfg, "a", "c"), "b");
  /* the other way round */
  ck_assert_str_eq (children (cfg, "d", "b"), "a");
  ck_assert_str_eq (br_topology_parent (cfg, "d", "a"), "b");
  /* from the middle: both directions */
  ck_assert_str_eq (children (cfg, "c", "c"), "bd");
  ck_assert_str_eq (children (cfg, "c", "b"), "a");
  br_config_free (cfg);
}
END_TEST

START_TEST (test_mesh)
{
  struct br_config *cfg = load_ok ("abc",
    "  - {between: [a, b], mode: sync}\n"
    "  - {between: [a, c], mode: async}\n"
    "  - {between: [b, c], mode: async}\n");

  /* Whichever node is primary, it sends to both others; nobody relays. */
  ck_assert_str_eq (children (cfg, "a", "a"), "bc");
  ck_assert_str_eq (children (cfg, "b", "b"), "ac");
  ck_assert_str_eq (children (cfg, "c", "c"), "ab");
  ck_assert_str_eq (children (cfg, "a", "b"), "");
  ck_assert_str_eq (children (cfg, "b", "c"), "");
  ck_assert_str_eq (children (cfg, "c", "a"), "");
  br_config_free (cfg);
}
END_TEST

START_TEST (test_mixed_tree)
{
  /* a star at a, with b relaying to d and d to e */
  struct br_config *cfg = load_ok ("abcde",
    "  - {between: [a, b], mode: sync}\n"
    "  - {between: [a, c], mode: async}\n"
    "  - {between: [b, d], mode: async, rate: 50M}\n"
    "  - {between: [d, e], mode: async}\n");

  ck_assert_str_eq (children (cfg, "a", "a"), "bc");
  ck_assert_str_eq (children (cfg, "a", "b"), "d");
  ck_assert_str_eq (children (cfg, "a", "d"), "e");
  ck_assert_str_eq (children (cfg, "a", "c"), "");
  br_config_free (cfg);
}
END_TEST

START_TEST (test_unlinked_node)
{
  /* c has no link: it receives nothing, and the file is valid. */
  struct br_config *cfg = load_ok ("abc",
    "  - {between: [a, b], mode: sync}\n");

  ck_assert_str_eq (children (cfg, "a", "a"), "b");
  ck_assert_ptr_null (br_topology_parent (cfg, "a", "c"));
  br_config_free (cfg);
}
END_TEST

START_TEST (test_square_is_ambiguous)
{
  char err[1024], want[128];
  struct br_config *cfg = load_topo ("abcd",
    "  - {between: [a, b], mode: sync}\n"
    "  - {between: [b, c], mode: async}\n"
    "  - {between: [c, d], mode: async}\n"
    "  - {between: [d, a], mode: async}\n", err, sizeof err);

  /* With a as primary, c is two hops away through b and through d: the
   * link c-d (line 11, the first to reach c a second time) is named. */
  ck_assert_ptr_null (cfg);
  snprintf (want, sizeof want, "%s:11:5: ", path);
  ck_assert_msg (strncmp (err, want, strlen (want)) == 0,
                 "error '%s' not at 11:5", err);
  ck_assert_msg (strstr (err, "ambiguous") && strstr (err, "with a as "
                 "primary, c is 2 hops away"), "message: %s", err);
}
END_TEST

START_TEST (test_unknown_names)
{
  struct br_config *cfg = load_ok ("ab",
    "  - {between: [a, b], mode: sync}\n");
  const struct br_node_cfg *out[1];
  const struct br_link_cfg *links[1];

  ck_assert_int_eq (br_topology_children (cfg, "x", "a", out, links, 1),
                    -ENOENT);
  ck_assert_int_eq (br_topology_children (cfg, "b", "a", out, links, 0),
                    0);
  ck_assert_int_eq (br_topology_children (cfg, "a", "a", out, links, 0),
                    -E2BIG);
  br_config_free (cfg);
}
END_TEST

static Suite *
topology_suite (void)
{
  Suite *s = suite_create ("topology");
  TCase *tc = tcase_create ("flow");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_star);
  tcase_add_test (tc, test_chain);
  tcase_add_test (tc, test_mesh);
  tcase_add_test (tc, test_mixed_tree);
  tcase_add_test (tc, test_unlinked_node);
  tcase_add_test (tc, test_square_is_ambiguous);
  tcase_add_test (tc, test_unknown_names);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (topology_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
