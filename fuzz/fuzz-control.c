/* blockrelay — libFuzzer target: the control socket's request parser
 * (br__control_parse in src/control.c).
 *
 * The input is what a client writes to the control socket.  It is cut as
 * control.c's on_read() cuts it: a request is at most REQUEST_MAX - 1
 * bytes (a longer one without a newline is dropped unanswered), ends at
 * the first newline (or at the end of the input: EOF) and, being handed
 * over as a C string, at the first NUL.  Then it goes through
 * br__control_parse(), the pure half of handle_request(): the JSON, the
 * command and its arguments, with every refusal of a malformed request.
 *
 * Checked: a refusal is {"ok": false, "error": TEXT} and can be written
 * out (json_dumps, as answer() does); an accepted request holds the
 * arguments its handler relies on (non-NULL peer / volume strings).  The
 * arguments of promote, demote and resolve are unpacked here as
 * control-role.c unpacks them, and {"cmd": "events"} as events.c's
 * br__events_subscribe() does (strictly), since those run without the
 * engine's state too.  Every JSON value is freed before returning.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"

#define REQUEST_MAX 4096                /* as in control.c */

/* The arguments control-role.c and events.c read, with their formats. */
static void
other_arguments (const struct br_control_req *r)
{
  const char *name = NULL, *node = NULL;
  int force = 0;

  switch (r->cmd) {
  case BR_CTL_PROMOTE:
  case BR_CTL_DEMOTE:
    (void) json_unpack (r->json, "{s?b}", "force", &force);
    break;
  case BR_CTL_RESOLVE:
    if (json_unpack (r->json, "{s:s, s:s}", "volume", &name, "discard",
                     &node) == 0)
      assert (name && node);
    break;
  default:
    break;
  }
}

static void
events_request (const char *line)
{
  json_t *req = json_loads (line, 0, NULL);
  const char *cmd = NULL;
  json_error_t jerr;
  int now = 0;

  if (req && json_unpack (req, "{s:s}", "cmd", &cmd) == 0 &&
      strcmp (cmd, "events") == 0)
    (void) json_unpack_ex (req, &jerr, JSON_STRICT, "{s:s, s?b}", "cmd",
                           &cmd, "now", &now);
  json_decref (req);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char line[REQUEST_MAX];
  struct br_control_req r;
  const uint8_t *nl = memchr (data, '\n', size);
  size_t len;
  json_t *reply;

  /* on_read: a newline within the buffer's REQUEST_MAX - 1 bytes ends the
   * request; else the client's EOF does, if it came before the buffer
   * filled up (and it sent something); else the client is closed. */
  if (nl && (size_t) (nl - data) < REQUEST_MAX - 1)
    len = nl - data;
  else if (!nl && size > 0 && size <= REQUEST_MAX - 1)
    len = size;
  else
    return 0;
  memcpy (line, data, len);
  line[len] = '\0';

  events_request (line);
  reply = br__control_parse (line, &r);
  if (reply) {
    const char *error = NULL;
    int ok = 1;
    char *text;

    assert (r.json == NULL);
    assert (json_unpack (reply, "{s:b, s:s}", "ok", &ok, "error",
                         &error) == 0);
    assert (!ok && error && error[0]);
    text = json_dumps (reply, JSON_COMPACT);
    assert (text != NULL && strchr (text, '\n') == NULL);
    free (text);
    json_decref (reply);
    return 0;
  }
  assert (json_is_object (r.json));
  switch (r.cmd) {
  case BR_CTL_PAUSE:
  case BR_CTL_RESUME:
  case BR_CTL_RESYNC:
    assert (r.peer != NULL && r.volume == NULL);
    break;
  case BR_CTL_VERIFY:
  case BR_CTL_VERIFY_STATUS:
    assert (r.peer != NULL && r.volume != NULL && r.group == NULL);
    break;
  default:
    assert (r.peer == NULL && r.volume == NULL && r.group == NULL);
    other_arguments (&r);
    break;
  }
  json_decref (r.json);
  return 0;
}
