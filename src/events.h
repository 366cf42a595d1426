/* blockrelay — the event bus: every peer state change, resync and verify
 * progress and error as JSON lines for `blockrelay events` (events.c).
 *
 * Two parts:
 *   - br_event and br_event_json(): one event as plain values (names are
 *     pointers to strings that live as long as the engine, the reason is
 *     copied) and its JSON object.  Pure; unit-tested in
 *     tests/unit/test_events.c.
 *   - the bus (br__events_*): producers anywhere in the engine append
 *     events to a bounded queue; the loop thread writes them to the
 *     control-socket clients that asked {"cmd":"events"}.  The rules are
 *     at the top of events.c.
 */
#ifndef BR_EVENTS_H
#define BR_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "metrics.h"            /* enum br_err_kind */
#include "peerfsm.h"

enum br_event_type {
  BR_EVENT_PEER_STATE,          /* a peer changed state (or --now) */
  BR_EVENT_RESYNC_PROGRESS,     /* a syncing peer, about once a second,
                                   and once when its resync completes */
  BR_EVENT_VERIFY_PROGRESS,     /* a running verify, about once a second */
  BR_EVENT_VERIFY_DONE,         /* a verify finished or failed */
  BR_EVENT_ERROR,               /* an error counted on a peer's link */
  BR_EVENT_NOW_DONE,            /* --now: the current states are listed */
  BR_EVENT_OVERFLOW,            /* events were lost; the stream ends */
  BR_EVENT_END,                 /* the node stops; the stream ends */
  BR_EVENT_N_TYPES
};

#define BR_EVENT_TEXT_MAX 512

struct br_event {
  enum br_event_type type;
  int64_t time_ms;              /* milliseconds since the epoch (UTC) */
  const char *node;             /* this node */
  const char *group, *peer, *volume;
  /* peer-state: FROM is NULL in a --now line (no transition), and so is
   * EVENT. */
  const char *from, *to, *event;
  /* resync-progress */
  uint64_t done_bytes, total_bytes, left_bytes, rate_bytes_per_s;
  /* verify-progress, verify-done */
  uint64_t total_regions, done_regions, differ_regions;
  const char *result;           /* verify-done: identical, differ, failed */
  bool repair;                  /* verify-done: --repair was asked */
  /* error */
  const char *kind;             /* br_err_kind_name() */
  /* peer-state: the reason; error, overflow, end: the message;
   * verify-done: the error of a failed verify ("" otherwise) */
  char text[BR_EVENT_TEXT_MAX];
};

const char *br_event_type_name (enum br_event_type t);
/* MS (milliseconds since the epoch) as RFC 3339 UTC with milliseconds,
 * "2026-12-04T19:55:05.123Z", into BUF (at least 25 bytes). */
void br_event_time (int64_t ms, char *buf, size_t len);
/* The JSON object of EV: "time", "node", "type" and the fields of its
 * type (docs/operations.md, "Events").  NULL if out of memory or if a
 * field its type needs is NULL. */
json_t *br_event_json (const struct br_event *ev);

/* ---- the bus (engine internals; rules in events.c) ---- */

struct br_engine;
struct br_peer;
struct br_volume;
struct br_event_sub;
struct br_verdict;

/* engine.c: the bus of E, started with the loop (before the loop thread
 * runs), stopped on the loop thread before the control socket (the events
 * still queued are written, then an "end" line), freed at close. */
int br__events_start (struct br_engine *e);
void br__events_stop (struct br_engine *e);
void br__events_free (struct br_engine *e);

/* peerfsm.c, from br__peer_event only (group lock held): P went FROM ->
 * TO (FROM != TO) by EV.  Logs the one line of the change, with its
 * reason, and queues a peer-state event. */
void br__events_peer_changed (struct br_peer *p, enum br_peer_state from,
                              enum br_peer_state to, enum br_peer_event ev);
/* The reason br__peer_event_why (peerfsm.c) gives for the change it
 * makes on this thread (NULL: none, the event's own reason applies). */
void br__events_set_why (const char *why);

/* peer-handshake.c (loop thread): the verdict VD for volume V of P's
 * handshake, in words, appended to the reason of the change that ends the
 * handshake (SYNC_NEEDED or IN_SYNC: "vol0: resync by rule 7 (same
 * generation)"). */
void br__events_verdict (struct br_peer *p, const struct br_volume *v,
                         const struct br_verdict *vd);

/* peer.c: an error of KIND was counted on P's link (loop thread). */
void br__events_error (struct br_peer *p, enum br_err_kind kind,
                       const char *msg);

/* verify.c (group lock held): the verify of V on P ended: FAILED (with
 * ERROR) or done, DONE regions looked at and DIFFER of them differing. */
void br__events_verify_done (struct br_peer *p, const struct br_volume *v,
                             bool failed, uint64_t done, uint64_t differ,
                             bool repair, const char *error);

/* control.c (loop thread): LINE is a client's request on stream S.  If it
 * is {"cmd":"events"} (with "now": BOOL), the client becomes a subscriber:
 * *OUT is set, 1 is returned, and the bus writes to S from now on; it
 * calls CLOSE (ARG) when the stream must end (an overflow, a write error,
 * a bad request once answered).  0: another command.  -ENOMEM: the client
 * is to be closed.  br__events_unsubscribe: the client's handle is being
 * closed (by CLOSE or otherwise); nothing is written to it any more. */
int br__events_subscribe (struct br_engine *e, const char *line,
                          uv_stream_t *s, void (*close) (void *arg),
                          void *arg, struct br_event_sub **out);
void br__events_unsubscribe (struct br_event_sub *sub);

#endif
