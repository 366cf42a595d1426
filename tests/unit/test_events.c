/* Unit tests: the JSON of an event (events.c, br_event_json) and its
 * time stamps (br_event_time).  ROWS gives, for each kind of event, the
 * struct and the exact object it must become (compared as JSON, so key
 * order does not matter but every key and value does); events missing a
 * field their type needs must give NULL, never a half object. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check-main.h"
#include "events.h"

START_TEST (test_time)
{
  static const struct { int64_t ms; const char *want; } rows[] = {
    { 0, "1970-01-01T00:00:00.000Z" },
    { 1, "1970-01-01T00:00:00.001Z" },
    { 999, "1970-01-01T00:00:00.999Z" },
    { 1700000000123, "2023-11-14T22:13:20.123Z" },
    { 1804182905007, "2027-03-04T17:55:05.007Z" },
    { 951782400000, "2000-02-29T00:00:00.000Z" },      /* a leap day */
  };
  char buf[40];

  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    br_event_time (rows[i].ms, buf, sizeof buf);
    ck_assert_msg (strcmp (buf, rows[i].want) == 0, "row %zu: %s, not %s",
                   i, buf, rows[i].want);
  }
}
END_TEST

#define T0 1700000000123          /* "2023-11-14T22:13:20.123Z" */

struct row {
  struct br_event ev;
  const char *want;                 /* the object, or NULL: refused */
};

static const struct row rows[] = {
  /* a transition */
  { { .type = BR_EVENT_PEER_STATE, .time_ms = T0, .node = "a",
      .group = "db", .peer = "b", .from = "replicating", .to = "logging",
      .event = "lost", .text = "connection closed by peer" },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"peer-state\",\"group\":\"db\",\"peer\":\"b\","
    "\"from\":\"replicating\",\"to\":\"logging\",\"event\":\"lost\","
    "\"reason\":\"connection closed by peer\"}" },
  /* a --now line: no transition, from and event null */
  { { .type = BR_EVENT_PEER_STATE, .time_ms = T0, .node = "a",
      .group = "db", .peer = "b", .to = "replicating" },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"peer-state\",\"group\":\"db\",\"peer\":\"b\","
    "\"from\":null,\"to\":\"replicating\",\"event\":null,\"reason\":\"\"}" },
  /* text from a peer is carried as it is (JSON escapes it) */
  { { .type = BR_EVENT_PEER_STATE, .time_ms = T0, .node = "a",
      .group = "db", .peer = "b", .from = "handshake", .to = "failed",
      .event = "error", .text = "refused: \"x\"\n\\" },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"peer-state\",\"group\":\"db\",\"peer\":\"b\","
    "\"from\":\"handshake\",\"to\":\"failed\",\"event\":\"error\","
    "\"reason\":\"refused: \\\"x\\\"\\n\\\\\"}" },
  { { .type = BR_EVENT_RESYNC_PROGRESS, .time_ms = T0, .node = "a",
      .group = "db", .peer = "b", .done_bytes = 1 << 20,
      .total_bytes = 3 << 20, .left_bytes = 2 << 20,
      .rate_bytes_per_s = 524288 },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"resync-progress\",\"group\":\"db\",\"peer\":\"b\","
    "\"done_bytes\":1048576,\"total_bytes\":3145728,"
    "\"left_bytes\":2097152,\"rate_bytes_per_s\":524288}" },
  /* counters past INT64_MAX are clamped, never negative */
  { { .type = BR_EVENT_RESYNC_PROGRESS, .time_ms = T0, .node = "a",
      .group = "db", .peer = "b", .done_bytes = UINT64_MAX },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"resync-progress\",\"group\":\"db\",\"peer\":\"b\","
    "\"done_bytes\":9223372036854775807,\"total_bytes\":0,"
    "\"left_bytes\":0,\"rate_bytes_per_s\":0}" },
  { { .type = BR_EVENT_VERIFY_PROGRESS, .time_ms = T0, .node = "a",
      .group = "db", .peer = "b", .volume = "vol0", .total_regions = 1024,
      .done_regions = 300, .differ_regions = 2 },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"verify-progress\",\"group\":\"db\",\"volume\":\"vol0\","
    "\"peer\":\"b\",\"total_regions\":1024,\"done_regions\":300,"
    "\"differ_regions\":2}" },
  { { .type = BR_EVENT_VERIFY_DONE, .time_ms = T0, .node = "a",
      .group = "db", .peer = "b", .volume = "vol0", .total_regions = 1024,
      .done_regions = 1024, .differ_regions = 3, .result = "differ",
      .repair = true },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"verify-done\",\"group\":\"db\",\"volume\":\"vol0\","
    "\"peer\":\"b\",\"total_regions\":1024,\"done_regions\":1024,"
    "\"differ_regions\":3,\"result\":\"differ\",\"repair\":true,"
    "\"error\":\"\"}" },
  { { .type = BR_EVENT_VERIFY_DONE, .time_ms = T0, .node = "a",
      .group = "db", .peer = "b", .volume = "vol0", .total_regions = 1024,
      .done_regions = 10, .result = "failed", .text = "connection lost" },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"verify-done\",\"group\":\"db\",\"volume\":\"vol0\","
    "\"peer\":\"b\",\"total_regions\":1024,\"done_regions\":10,"
    "\"differ_regions\":0,\"result\":\"failed\",\"repair\":false,"
    "\"error\":\"connection lost\"}" },
  { { .type = BR_EVENT_ERROR, .time_ms = T0, .node = "a", .group = "db",
      .peer = "b", .kind = "connect_failed",
      .text = "cannot connect to 127.0.0.1:1: connection refused" },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"error\",\"group\":\"db\",\"peer\":\"b\","
    "\"kind\":\"connect_failed\","
    "\"message\":\"cannot connect to 127.0.0.1:1: connection refused\"}" },
  { { .type = BR_EVENT_NOW_DONE, .time_ms = T0, .node = "a" },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"now-done\"}" },
  { { .type = BR_EVENT_OVERFLOW, .time_ms = T0, .node = "a",
      .text = "events were lost" },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"overflow\",\"message\":\"events were lost\"}" },
  { { .type = BR_EVENT_END, .time_ms = T0, .node = "a",
      .text = "the node is shutting down" },
    "{\"time\":\"2023-11-14T22:13:20.123Z\",\"node\":\"a\","
    "\"type\":\"end\",\"message\":\"the node is shutting down\"}" },
  /* refused: a field the type needs is missing, or no such type */
  { { .type = BR_EVENT_PEER_STATE, .time_ms = T0, .node = "a",
      .peer = "b", .to = "logging" }, NULL },
  { { .type = BR_EVENT_PEER_STATE, .time_ms = T0, .node = "a",
      .group = "db", .peer = "b" }, NULL },
  { { .type = BR_EVENT_ERROR, .time_ms = T0, .node = "a", .group = "db",
      .peer = "b" }, NULL },
  { { .type = BR_EVENT_VERIFY_DONE, .time_ms = T0, .node = "a",
      .group = "db", .peer = "b", .volume = "vol0" }, NULL },
  { { .type = BR_EVENT_NOW_DONE, .time_ms = T0 }, NULL },
  { { .type = BR_EVENT_N_TYPES, .time_ms = T0, .node = "a" }, NULL },
};

START_TEST (test_json)
{
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    json_t *got = br_event_json (&rows[i].ev), *want;
    char *text;

    if (rows[i].want == NULL) {
      ck_assert_msg (got == NULL, "row %zu: refused event gave an object",
                     i);
      continue;
    }
    want = json_loads (rows[i].want, 0, NULL);
    ck_assert_msg (want != NULL, "row %zu: bad expected JSON", i);
    ck_assert_msg (got != NULL, "row %zu: no object", i);
    text = json_dumps (got, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_msg (json_equal (got, want), "row %zu: got %s", i, text);
    /* one line: nothing in it may break the line */
    ck_assert_msg (strchr (text, '\n') == NULL, "row %zu: a newline", i);
    free (text);
    json_decref (got);
    json_decref (want);
  }
}
END_TEST

START_TEST (test_type_names)
{
  static const char *const want[BR_EVENT_N_TYPES] = {
    "peer-state", "resync-progress", "verify-progress", "verify-done",
    "error", "now-done", "overflow", "end",
  };

  for (int t = 0; t < BR_EVENT_N_TYPES; t++)
    ck_assert_str_eq (br_event_type_name (t), want[t]);
  ck_assert_str_eq (br_event_type_name (BR_EVENT_N_TYPES), "?");
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("events");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_time);
  tcase_add_test (tc, test_json);
  tcase_add_test (tc, test_type_names);
  suite_add_tcase (s, tc);
  return br_check_run (s);
}
