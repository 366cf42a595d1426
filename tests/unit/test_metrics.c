/* Unit tests: the Prometheus text of a metrics snapshot (metrics.c), label
 * escaping, and how a connection loss is counted (br_loss_kind). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-main.h"
#include "metrics.h"

START_TEST (test_escape)
{
  char buf[64];

  ck_assert_uint_eq (br_metrics_escape (buf, sizeof buf, "plain"), 5);
  ck_assert_str_eq (buf, "plain");
  br_metrics_escape (buf, sizeof buf, "a\\b\"c\nd");
  ck_assert_str_eq (buf, "a\\\\b\\\"c\\nd");
  /* Too small: cut, NUL-terminated, the length needed returned. */
  ck_assert_uint_eq (br_metrics_escape (buf, 4, "\"\"\""), 6);
  ck_assert_str_eq (buf, "\\\"");
  ck_assert_uint_eq (br_metrics_escape (buf, 0, "xyz"), 3);
}
END_TEST

static struct br_metrics_volume vols[] = {
  { .name = "vol0", .group = "g\"1\n", .size = 1 << 20, .consistent = true,
    .disk_errors = 2 },
};
static struct br_metrics_dirty dirty[] = {
  { .volume = "vol0", .group = "g\"1\n", .peer = "b\\x",
    .dirty_bytes = 65536, .resync_remaining_bytes = 0 },
};
static struct br_metrics_peer peers[] = {
  { .group = "g\"1\n", .peer = "b\\x", .mode = "sync",
    .state = BR_PEER_REPLICATING, .replicated_bytes = 12345,
    .replicated_writes = 7, .queue_bytes = 4096, .queue_records = 1,
    .queue_limit_bytes = 1 << 26, .lag_bytes = 4096, .lag_seconds = 1.5,
    .errors = { [BR_ERR_BAD_FRAME] = 3 } },
};
static const struct br_metrics_snap snap = {
  .node = "a", .role = "primary", .start_time = 1700000000,
  .vols = vols, .n_vols = 1, .dirty = dirty, .n_dirty = 1,
  .peers = peers, .n_peers = 1,
};

static char *
text_of (const struct br_metrics_snap *s)
{
  char *out = NULL;
  size_t len = 0;

  ck_assert_int_eq (br_metrics_format (s, &out, &len), 0);
  ck_assert_uint_eq (strlen (out), len);
  return out;
}

/* M1: every sample's family has one HELP and one TYPE line before it;
 * names, types and suffixes follow the conventions. */
START_TEST (test_families)
{
  char *text = text_of (&snap), *save = NULL, *line;
  char help[64][96] = { { 0 } }, type[64][96] = { { 0 } };
  int n_help = 0, n_type = 0, samples = 0;

  for (line = strtok_r (text, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save)) {
    char name[96], kind[16];
    if (sscanf (line, "# HELP %95s", name) == 1) {
      for (int i = 0; i < n_help; i++)
        ck_assert_str_ne (help[i], name);
      ck_assert_int_lt (n_help, 64);
      strcpy (help[n_help++], name);
      ck_assert_msg (strncmp (name, "blockrelay_", 11) == 0, "%s", name);
      continue;
    }
    if (sscanf (line, "# TYPE %95s %15s", name, kind) == 2) {
      ck_assert_str_eq (help[n_help - 1], name);   /* right after HELP */
      ck_assert_msg (strcmp (kind, "gauge") == 0 ||
                     strcmp (kind, "counter") == 0, "%s", kind);
      ck_assert_msg ((strcmp (kind, "counter") == 0) ==
                     (strstr (name, "_total") != NULL), "%s", name);
      strcpy (type[n_type++], name);
      continue;
    }
    ck_assert_msg (line[0] != '#', "%s", line);
    /* A sample: its family is the last TYPE seen. */
    ck_assert_int_gt (n_type, 0);
    ck_assert_msg (strncmp (line, type[n_type - 1],
                            strlen (type[n_type - 1])) == 0 &&
                   strchr ("{ ", line[strlen (type[n_type - 1])]),
                   "%s after TYPE %s", line, type[n_type - 1]);
    samples++;
  }
  ck_assert_int_eq (n_help, n_type);
  ck_assert_int_gt (samples, 20);
  free (text);
}
END_TEST

/* M2 and M4, and the values. */
START_TEST (test_values)
{
  char *text = text_of (&snap);
  const char *labels = "node=\"a\",group=\"g\\\"1\\n\",peer=\"b\\\\x\"";
  char want[512];

  ck_assert_ptr_null (strstr (text, "g\"1\n"));   /* never raw */
  snprintf (want, sizeof want, "\nblockrelay_peer_state{%s,state="
            "\"replicating\"} 1\n", labels);
  ck_assert_ptr_nonnull (strstr (text, want));
  snprintf (want, sizeof want, "\nblockrelay_peer_state{%s,state="
            "\"logging\"} 0\n", labels);
  ck_assert_ptr_nonnull (strstr (text, want));
  snprintf (want, sizeof want, "\nblockrelay_peer_connected{%s} 1\n", labels);
  ck_assert_ptr_nonnull (strstr (text, want));
  snprintf (want, sizeof want, "\nblockrelay_replicated_bytes_total{%s} "
            "12345\n", labels);
  ck_assert_ptr_nonnull (strstr (text, want));
  snprintf (want, sizeof want, "\nblockrelay_errors_total{%s,kind="
            "\"bad_frame\"} 3\n", labels);
  ck_assert_ptr_nonnull (strstr (text, want));
  snprintf (want, sizeof want, "\nblockrelay_lag_seconds{%s} 1.500\n",
            labels);
  ck_assert_ptr_nonnull (strstr (text, want));
  ck_assert_ptr_nonnull (strstr (text, "\nblockrelay_dirty_bytes{node=\"a\","
                                 "group=\"g\\\"1\\n\",volume=\"vol0\","
                                 "peer=\"b\\\\x\"} 65536\n"));
  ck_assert_ptr_nonnull (strstr (text, "\nblockrelay_disk_errors_total{"
                                 "node=\"a\",group=\"g\\\"1\\n\",volume="
                                 "\"vol0\"} 2\n"));
  /* Exactly one state is 1. */
  int ones = 0;
  for (const char *p = text; (p = strstr (p, "\nblockrelay_peer_state{"));
       p++)
    ones += strstr (p, "} 1\n") == strchr (p, '}');
  ck_assert_int_eq (ones, 1);
  free (text);
}
END_TEST

/* An empty node (no volumes, no peers): headers only, still valid. */
START_TEST (test_empty)
{
  struct br_metrics_snap s = { .node = "z", .role = "replica" };
  char *text = text_of (&s);

  ck_assert_ptr_nonnull (strstr (text, "blockrelay_node_info{node=\"z\","
                                 "role=\"replica\"} 1\n"));
  ck_assert_ptr_nonnull (strstr (text, "# TYPE blockrelay_errors_total "
                                 "counter\n"));
  free (text);
}
END_TEST

START_TEST (test_loss_kind)
{
  static const struct {
    enum br_peer_event ev;
    enum br_peer_state st;
    enum br_err_kind kind;
  } rows[] = {
    { BR_EV_LOST, BR_PEER_CONNECTING, BR_ERR_CONNECT_FAILED },
    { BR_EV_LOST, BR_PEER_HANDSHAKE, BR_ERR_CONNECTION_LOST },
    { BR_EV_LOST, BR_PEER_REPLICATING, BR_ERR_CONNECTION_LOST },
    { BR_EV_LOST, BR_PEER_SYNCING, BR_ERR_CONNECTION_LOST },
    { BR_EV_LOST, BR_PEER_LOGGING, BR_ERR_N_KINDS },
    { BR_EV_ERROR, BR_PEER_HANDSHAKE, BR_ERR_HANDSHAKE_REFUSED },
    { BR_EV_ERROR, BR_PEER_REPLICATING, BR_ERR_BAD_FRAME },
    { BR_EV_SPLIT_BRAIN, BR_PEER_HANDSHAKE, BR_ERR_SPLIT_BRAIN },
    { BR_EV_PAUSE, BR_PEER_REPLICATING, BR_ERR_N_KINDS },
    { BR_EV_STOP, BR_PEER_REPLICATING, BR_ERR_N_KINDS },
  };

  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    ck_assert_msg (br_loss_kind (rows[i].ev, rows[i].st) == rows[i].kind,
                   "row %zu", i);
  for (int k = 0; k < BR_ERR_N_KINDS; k++)
    ck_assert_str_ne (br_err_kind_name (k), "unknown");
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("metrics");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_escape);
  tcase_add_test (tc, test_families);
  tcase_add_test (tc, test_values);
  tcase_add_test (tc, test_empty);
  tcase_add_test (tc, test_loss_kind);
  suite_add_tcase (s, tc);
  return br_check_run (s);
}
