/* blockrelay — the event bus and the peer state change log.
 *
 * What
 * ----
 * `blockrelay events` (cli-events.c) sends {"cmd":"events"} (with
 * "now": true for --now) to a node's control socket.  The client's
 * connection then stays open: the answer {"ok":true,"node":...} comes
 * first, then one JSON object a line for every event, until the client
 * goes away or the engine stops.  Types (br_event_json, the pure part at
 * the top of this file; docs/operations.md lists the fields):
 *
 *   peer-state       a peer changed state: from, to, the fsm event and
 *                    the reason (with --now, first one line per peer with
 *                    "from": null, then now-done)
 *   resync-progress  each syncing peer about once a second, and once more
 *                    when its resync completes (left_bytes 0)
 *   verify-progress  each running verify about once a second
 *   verify-done      a verify finished (identical or differ) or failed
 *   error            an error counted on a peer's link (metrics.h kinds)
 *   overflow         this subscriber missed events; the node closes it
 *   end              the node stops; the node closes it
 *
 * The same function that queues a peer-state event also writes the one
 * log line of the change (br__events_peer_changed, called by
 * br__peer_event only): "peer b (group db): replicating -> logging:
 * connection closed by peer; logging writes until it is back".  A change
 * that takes the peer down from a connected state (a loss, an error, a
 * split brain, a writer's drop) is a warning, every other change is info.
 *
 * Invariants
 * ----------
 *   E1. A producer never blocks and never calls libuv except
 *       uv_async_send: it appends a copy of the event to a bounded queue
 *       under the bus lock and wakes the loop thread (still under the
 *       lock, so never after br__events_stop has closed the handle),
 *       which alone builds the JSON and writes to the subscribers.  With
 *       no subscriber, producing costs one atomic load.
 *   E2. Every event gets a sequence number and its time under the bus
 *       lock; times never go back in the stream (a clock stepped back
 *       repeats the last time).  Events reach every subscriber in that
 *       order.
 *   E3. A subscriber sees exactly the events that follow its
 *       subscription: for each group, the sequence number current when
 *       its state was read (under the group lock, by which every
 *       peer-state event of the group is queued) is remembered, and older
 *       events of the group are not written to it.  So a --now snapshot
 *       is never followed by a change it already shows.
 *   E4. Bounded memory: at most QUEUE_MAX events queued (more are lost:
 *       every subscriber gets an overflow line and is closed), and a
 *       subscriber whose unwritten output would pass SUB_MAX (1 MiB) gets
 *       one overflow line and is closed once that line is out, or
 *       ENDING_MS after it, whichever comes first.
 *   E5. A subscriber is a control-socket client: control.c's list owns
 *       its handle, so br__control_stop still closes everything.  It is
 *       freed once unsubscribed (its handle closing) and every write of
 *       it has called back.
 *
 * Locks: the bus lock is a leaf (nothing is taken under it); producers
 * may hold a group lock when they take it (peer-state events are made
 * with it held), the loop thread takes a group lock and then the bus lock
 * to read a group's sequence number.  The log line is written under the
 * group lock, like the engine's other log lines (log.c: a formatted write
 * to stderr, or nbdkit's log).
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "events.h"
#include "log.h"
#include "util.h"

#define QUEUE_MAX 4096              /* events queued for the loop thread */
#define SUB_MAX (1u << 20)          /* unwritten bytes of a subscriber */
#define ENDING_MS 5000              /* an overflowed subscriber's last
                                       line gets this long */
#define PROGRESS_MS 1000

/* ---- the JSON of an event (pure) ---- */

const char *
br_event_type_name (enum br_event_type t)
{
  static const char *const names[BR_EVENT_N_TYPES] = {
    [BR_EVENT_PEER_STATE] = "peer-state",
    [BR_EVENT_RESYNC_PROGRESS] = "resync-progress",
    [BR_EVENT_VERIFY_PROGRESS] = "verify-progress",
    [BR_EVENT_VERIFY_DONE] = "verify-done",
    [BR_EVENT_ERROR] = "error",
    [BR_EVENT_NOW_DONE] = "now-done",
    [BR_EVENT_OVERFLOW] = "overflow",
    [BR_EVENT_END] = "end",
  };
  return (unsigned) t < BR_EVENT_N_TYPES ? names[t] : "?";
}

void
br_event_time (int64_t ms, char *buf, size_t len)
{
  time_t s = (time_t) (ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  struct tm tm;
  char day[32];

  gmtime_r (&s, &tm);
  strftime (day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf (buf, len, "%s.%03dZ", day, (int) (ms - (int64_t) s * 1000));
}

static json_int_t
jint (uint64_t v)
{
  return v > (uint64_t) INT64_MAX ? INT64_MAX : (json_int_t) v;
}

json_t *
br_event_json (const struct br_event *ev)
{
  char when[40];
  json_t *o, *more;

  if ((unsigned) ev->type >= BR_EVENT_N_TYPES || ev->node == NULL)
    return NULL;
  br_event_time (ev->time_ms, when, sizeof when);
  o = json_pack ("{s:s, s:s, s:s}", "time", when, "node", ev->node,
                 "type", br_event_type_name (ev->type));
  if (o == NULL)
    return NULL;
  switch (ev->type) {
  case BR_EVENT_PEER_STATE:
    more = json_pack ("{s:s, s:s, s:s?, s:s, s:s?, s:s}",
                      "group", ev->group, "peer", ev->peer,
                      "from", ev->from, "to", ev->to, "event", ev->event,
                      "reason", ev->text);
    break;
  case BR_EVENT_RESYNC_PROGRESS:
    more = json_pack ("{s:s, s:s, s:I, s:I, s:I, s:I}",
                      "group", ev->group, "peer", ev->peer,
                      "done_bytes", jint (ev->done_bytes),
                      "total_bytes", jint (ev->total_bytes),
                      "left_bytes", jint (ev->left_bytes),
                      "rate_bytes_per_s", jint (ev->rate_bytes_per_s));
    break;
  case BR_EVENT_VERIFY_PROGRESS:
    more = json_pack ("{s:s, s:s, s:s, s:I, s:I, s:I}",
                      "group", ev->group, "volume", ev->volume,
                      "peer", ev->peer,
                      "total_regions", jint (ev->total_regions),
                      "done_regions", jint (ev->done_regions),
                      "differ_regions", jint (ev->differ_regions));
    break;
  case BR_EVENT_VERIFY_DONE:
    more = json_pack ("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:b, s:s}",
                      "group", ev->group, "volume", ev->volume,
                      "peer", ev->peer,
                      "total_regions", jint (ev->total_regions),
                      "done_regions", jint (ev->done_regions),
                      "differ_regions", jint (ev->differ_regions),
                      "result", ev->result, "repair", ev->repair,
                      "error", ev->text);
    break;
  case BR_EVENT_ERROR:
    more = json_pack ("{s:s, s:s, s:s, s:s}", "group", ev->group,
                      "peer", ev->peer, "kind", ev->kind,
                      "message", ev->text);
    break;
  case BR_EVENT_OVERFLOW:
  case BR_EVENT_END:
    more = json_pack ("{s:s}", "message", ev->text);
    break;
  default:
    more = json_object ();
  }
  if (more == NULL || json_object_update (o, more) < 0) {
    json_decref (more);
    json_decref (o);
    return NULL;
  }
  json_decref (more);
  return o;
}

/* ---- the bus ---- */

struct item {
  struct item *next;
  uint64_t seq;
  long gi;                          /* its group's index, or -1 */
  struct br_event ev;
};

struct br_event_sub {
  struct br_events *bus;            /* NULL: the engine has no bus */
  struct br_event_sub *prev, *next; /* on bus->subs while listed */
  uv_stream_t *s;
  void (*close) (void *arg);
  void *arg;
  uint64_t *skip;                   /* per group: events up to this seq
                                       came before the subscription (E3) */
  unsigned writes;                  /* uv_write calls not called back */
  bool listed;
  bool ending;                      /* its last line is written (E4) */
  uint64_t ending_ms;
  bool gone;                        /* unsubscribed: freed at writes 0 */
};

struct br_events {
  struct br_engine *e;
  struct br_mutex lock;             /* a leaf; guards the fields below */
  bool open;                        /* the async handle can be sent to */
  struct item *head, **tailp;
  size_t len;
  bool lost;                        /* an event was dropped (E4) */
  uint64_t seq;                     /* of the last event queued */
  int64_t last_ms;                  /* its time (E2) */
  atomic_uint n_subs;               /* listed subscribers (written under
                                       the lock, read as a hint) */
  /* Loop thread only. */
  uv_async_t async;
  uv_timer_t timer;
  struct br_event_sub *subs;
};

static __thread const char *why_now;

static int64_t
wall_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bus lock held: the time of the next line (E2). */
static int64_t
stamp (struct br_events *b)
{
  int64_t now = wall_ms ();

  if (now < b->last_ms)
    now = b->last_ms;
  b->last_ms = now;
  return now;
}

static long
group_index (const struct br_group *g)
{
  return (long) (g - g->e->groups);
}

/* Any thread (E1): queue a copy of EV (its time and seq are set here). */
static void
push (struct br_events *b, long gi, const struct br_event *ev)
{
  struct item *it;

  if (b == NULL || atomic_load (&b->n_subs) == 0)
    return;
  it = malloc (sizeof *it);
  br_mutex_lock (&b->lock);
  if (!b->open || atomic_load (&b->n_subs) == 0) {
    br_mutex_unlock (&b->lock);
    free (it);
    return;
  }
  if (it == NULL || b->len >= QUEUE_MAX) {
    b->lost = true;
    free (it);
  }
  else {
    it->next = NULL;
    it->gi = gi;
    it->ev = *ev;
    it->ev.time_ms = stamp (b);
    it->seq = ++b->seq;
    *b->tailp = it;
    b->tailp = &it->next;
    b->len++;
  }
  uv_async_send (&b->async);    /* under the lock: never after the close */
  br_mutex_unlock (&b->lock);
}

/* ---- subscribers (loop thread) ---- */

struct wreq {
  uv_write_t req;
  struct br_event_sub *sub;
  bool last;                        /* the stream ends after this line */
  char text[];
};

static void
sub_free (struct br_event_sub *sub)
{
  free (sub->skip);
  free (sub);
}

/* End SUB's stream: control.c closes the client, which unsubscribes it
 * (SUB may be freed on return). */
static void
sub_close (struct br_event_sub *sub)
{
  if (!sub->gone)
    sub->close (sub->arg);
}

static void
on_written (uv_write_t *req, int status)
{
  struct wreq *w = (struct wreq *) req;
  struct br_event_sub *sub = w->sub;
  bool last = w->last;

  free (w);
  sub->writes--;
  if (sub->gone) {
    if (sub->writes == 0)
      sub_free (sub);
    return;
  }
  if (status < 0 || last)
    sub_close (sub);
}

/* Write LEN bytes of TEXT and a newline to SUB.  0, or a negative error
 * (the subscriber is then to be closed). */
static int
sub_write (struct br_event_sub *sub, const char *text, size_t len, bool last)
{
  struct wreq *w = malloc (sizeof *w + len + 1);
  uv_buf_t buf;
  int r;

  if (w == NULL)
    return -ENOMEM;
  w->sub = sub;
  w->last = last;
  memcpy (w->text, text, len);
  w->text[len] = '\n';
  buf = uv_buf_init (w->text, len + 1);
  sub->writes++;
  r = uv_write (&w->req, sub->s, &buf, 1, on_written);
  if (r < 0) {
    sub->writes--;
    free (w);
  }
  return r;
}

static int
sub_write_json (struct br_event_sub *sub, json_t *o, bool last)
{
  char *text = o ? json_dumps (o, JSON_COMPACT) : NULL;
  int r = text ? sub_write (sub, text, strlen (text), last) : -ENOMEM;

  free (text);
  json_decref (o);
  return r;
}

/* SUB's last line: overflow or end (E4).  It is closed once the line is
 * out (on_written), or by the timer ENDING_MS later. */
static void
sub_end (struct br_event_sub *sub, enum br_event_type type, const char *msg)
{
  struct br_events *b = sub->bus;
  struct br_event ev = { .type = type, .node = b->e->self->name };

  if (sub->ending)
    return;
  sub->ending = true;
  sub->ending_ms = uv_now (&b->e->loop);
  br_mutex_lock (&b->lock);
  ev.time_ms = stamp (b);
  br_mutex_unlock (&b->lock);
  snprintf (ev.text, sizeof ev.text, "%s", msg);
  if (sub_write_json (sub, br_event_json (&ev), true) < 0)
    sub_close (sub);
}

static void
overflow (struct br_event_sub *sub, const char *why)
{
  br_warn ("events: a subscriber of node %s %s; its stream is closed",
           sub->bus->e->self->name, why);
  sub_end (sub, BR_EVENT_OVERFLOW, "events were lost: this reader was too "
           "slow, or the node's event queue overflowed; subscribe again "
           "(with --now for the current states)");
}

/* Write the queued events to every subscriber that is to see them. */
static void
drain (struct br_events *b)
{
  struct item *list, *next;
  bool lost;

  br_mutex_lock (&b->lock);
  list = b->head;
  b->head = NULL;
  b->tailp = &b->head;
  b->len = 0;
  lost = b->lost;
  b->lost = false;
  br_mutex_unlock (&b->lock);

  for (struct item *it = list; it; it = next) {
    json_t *o = br_event_json (&it->ev);
    char *text = o ? json_dumps (o, JSON_COMPACT) : NULL;
    size_t len = text ? strlen (text) : 0;
    struct br_event_sub *sub, *snext;

    next = it->next;
    json_decref (o);
    if (text == NULL)
      lost = true;
    for (sub = b->subs; text && sub; sub = snext) {
      snext = sub->next;
      if (sub->ending || (it->gi >= 0 && it->seq <= sub->skip[it->gi]))
        continue;
      if (uv_stream_get_write_queue_size (sub->s) + len + 1 > SUB_MAX)
        overflow (sub, "read too slowly (1 MiB of events unread)");
      else if (sub_write (sub, text, len, false) < 0)
        sub_close (sub);
    }
    free (text);
    free (it);
  }
  if (lost)
    for (struct br_event_sub *sub = b->subs, *snext; sub; sub = snext) {
      snext = sub->next;
      overflow (sub, "missed events (the node's event queue was full)");
    }
}

static void
on_async (uv_async_t *a)
{
  drain (a->data);
}

/* ---- the figures of progress events (group lock held) ---- */

static void
peer_event_base (struct br_event *ev, enum br_event_type type,
                 const struct br_peer *p)
{
  memset (ev, 0, offsetof (struct br_event, text));
  ev->text[0] = '\0';
  ev->type = type;
  ev->node = p->g->e->self->name;
  ev->group = p->g->name;
  ev->peer = p->node->name;
}

/* P's resync so far (SYNCING): regions in the out-of-sync set are exact
 * bytes; those done are counted in regions, as bytes of the group's
 * granularity (the mean region size when its volumes differ). */
static void
resync_figures (struct br_peer *p, bool final, struct br_event *ev)
{
  struct br_group *g = p->g;
  uint64_t left = 0, left_rg = final ? 0 : p->oos_count, total_rg;
  uint64_t size = 0, nreg = 0, rgbytes, now, done;
  bool uniform = true;

  BR_ASSERT_LOCKED (&g->lock);
  for (size_t i = 0; i < g->n_vols; i++) {
    struct br_volume *v = g->vols[i];
    uint64_t n = 0;

    if (!final && p->oos)
      for (uint64_t w = 0; w < (v->nregions + 63) / 64; w++)
        n += __builtin_popcountll (p->oos[i][w]);
    left += n << v->gran_shift;
    size += v->size;
    nreg += v->nregions;
    uniform &= v->gran_shift == g->vols[0]->gran_shift;
  }
  rgbytes = uniform && g->n_vols ? (uint64_t) 1 << g->vols[0]->gran_shift
    : nreg ? size / nreg : 0;
  total_rg = p->resync_total > left_rg ? p->resync_total : left_rg;
  done = (total_rg - left_rg) * rgbytes;
  now = uv_now (&g->e->loop);
  peer_event_base (ev, BR_EVENT_RESYNC_PROGRESS, p);
  ev->done_bytes = done;
  ev->left_bytes = left;
  ev->total_bytes = done + left;
  ev->rate_bytes_per_s = now > p->resync_start_ms
    ? done * 1000 / (now - p->resync_start_ms) : 0;
}

static void
on_progress (uv_timer_t *t)
{
  struct br_events *b = t->data;
  struct br_engine *e = b->e;
  uint64_t now = uv_now (&e->loop);

  for (struct br_event_sub *sub = b->subs, *snext; sub; sub = snext) {
    snext = sub->next;
    if (sub->ending && now - sub->ending_ms >= ENDING_MS)
      sub_close (sub);
  }
  if (atomic_load (&b->n_subs) == 0)
    return;
  for (size_t gi = 0; gi < e->n_groups; gi++) {
    struct br_group *g = &e->groups[gi];

    for (size_t pi = 0; pi < g->n_peers; pi++) {
      struct br_peer *p = g->peers[pi];
      struct br_event ev;

      br_mutex_lock (&g->lock);
      if (p->state == BR_PEER_SYNCING && p->oos) {
        resync_figures (p, false, &ev);
        push (b, (long) gi, &ev);
      }
      for (size_t vi = 0; vi < g->n_vols; vi++) {
        uint64_t total, done, differ, running;

        br__verify_progress (p, g->vols[vi], &total, &done, &differ,
                             &running);
        if (!running)
          continue;
        peer_event_base (&ev, BR_EVENT_VERIFY_PROGRESS, p);
        ev.volume = g->vols[vi]->cfg->name;
        ev.total_regions = total;
        ev.done_regions = done;
        ev.differ_regions = differ;
        push (b, (long) gi, &ev);
      }
      br_mutex_unlock (&g->lock);
    }
  }
}

/* ---- producers ---- */

void
br__events_set_why (const char *why)
{
  why_now = why;
}

void
br__events_verdict (struct br_peer *p, const struct br_volume *v,
                    const struct br_verdict *vd)
{
  size_t n = strlen (p->verdict);

  snprintf (p->verdict + n, sizeof p->verdict - n, "%s%s: %s by rule %d (%s)",
            n ? "; " : "", v->cfg->name, br_verdict_action_name (vd->action),
            vd->rule, vd->why);
}

/* The reason of P's change by EV, when its caller gave none.  p->verdict
 * is the loop thread's: read only for the events the loop thread makes. */
static void
reason (struct br_peer *p, enum br_peer_event ev, char *buf, size_t len)
{
  const char *verdict = "handshake done";

  if ((ev == BR_EV_SYNC_NEEDED || ev == BR_EV_IN_SYNC) && p->verdict[0])
    verdict = p->verdict;
  switch (ev) {
  case BR_EV_CONNECT:
    snprintf (buf, len, "connecting to %s:%s", p->node->host, p->node->port);
    break;
  case BR_EV_CONNECTED:
    snprintf (buf, len, "connected to %s:%s, HELLO sent", p->node->host,
              p->node->port);
    break;
  case BR_EV_SYNC_NEEDED:
    snprintf (buf, len, "%.440s; %llu regions to resync", verdict,
              (unsigned long long) p->oos_count);
    break;
  case BR_EV_IN_SYNC:
    snprintf (buf, len, "%.440s; nothing to resync", verdict);
    break;
  case BR_EV_RESYNC_DONE:
    snprintf (buf, len, "resync complete");
    break;
  case BR_EV_DIVERGED:
    snprintf (buf, len, "a local write failed after its record was queued: "
              "its regions are resent");
    break;
  case BR_EV_CONGESTED:
    snprintf (buf, len, "queue full, pulling ahead (writes are tracked and "
              "resynced when the link drains)");
    break;
  case BR_EV_DRAINED:
    snprintf (buf, len, "what was sent before the queue filled is durable: "
              "resyncing the regions written since");
    break;
  case BR_EV_STOP:
    snprintf (buf, len, "shutting down");
    break;
  case BR_EV_PAUSE:
    snprintf (buf, len, "paused by the operator");
    break;
  case BR_EV_RESUME:
    snprintf (buf, len, "resumed by the operator");
    break;
  case BR_EV_RESYNC:
    snprintf (buf, len, "resync requested by the operator");
    break;
  default:                      /* LOST, DROP, ERROR, SPLIT_BRAIN */
    snprintf (buf, len, "%s", p->last_error[0] ? p->last_error
              : br_peer_event_name (ev));
  }
}

void
br__events_peer_changed (struct br_peer *p, enum br_peer_state from,
                         enum br_peer_state to, enum br_peer_event ev)
{
  struct br_group *g = p->g;
  struct br_events *b = g->e->events;
  struct br_event e;
  long gi = group_index (g);

  BR_ASSERT_LOCKED (&g->lock);
  peer_event_base (&e, BR_EVENT_PEER_STATE, p);
  e.from = br_peer_state_name (from);
  e.to = br_peer_state_name (to);
  e.event = br_peer_event_name (ev);
  if (why_now)
    snprintf (e.text, sizeof e.text, "%s", why_now);
  else
    reason (p, ev, e.text, sizeof e.text);
  if (ev == BR_EV_SYNC_NEEDED || ev == BR_EV_IN_SYNC)
    p->verdict[0] = '\0';       /* used */

  if (br_peer_state_down (to) && !br_peer_state_down (from) &&
      ev != BR_EV_PAUSE && ev != BR_EV_STOP)
    br_warn ("peer %s (group %s): %s -> %s: %s; %s", p->node->name, g->name,
             e.from, e.to, e.text, to == BR_PEER_HALTED
             ? "writes are logged until an operator chooses a side"
             : "logging writes until it is back");
  else
    br_info ("peer %s (group %s): %s -> %s: %s", p->node->name, g->name,
             e.from, e.to, e.text);

  if (ev == BR_EV_RESYNC_DONE) {
    struct br_event fin;

    resync_figures (p, true, &fin);
    push (b, gi, &fin);
  }
  push (b, gi, &e);
}

void
br__events_error (struct br_peer *p, enum br_err_kind kind, const char *msg)
{
  struct br_event ev;

  peer_event_base (&ev, BR_EVENT_ERROR, p);
  ev.kind = br_err_kind_name (kind);
  snprintf (ev.text, sizeof ev.text, "%s", msg);
  push (p->g->e->events, group_index (p->g), &ev);
}

void
br__events_verify_done (struct br_peer *p, const struct br_volume *v,
                        bool failed, uint64_t done, uint64_t differ,
                        bool repair, const char *error)
{
  struct br_event ev;

  BR_ASSERT_LOCKED (&p->g->lock);
  peer_event_base (&ev, BR_EVENT_VERIFY_DONE, p);
  ev.volume = v->cfg->name;
  ev.total_regions = v->nregions;
  ev.done_regions = done;
  ev.differ_regions = differ;
  ev.result = failed ? "failed" : differ ? "differ" : "identical";
  ev.repair = repair;
  snprintf (ev.text, sizeof ev.text, "%s", failed && error ? error : "");
  push (p->g->e->events, group_index (p->g), &ev);
}

/* ---- subscribing (control.c, loop thread) ---- */

/* E3: SUB's starting point in every group, and with NOW the current
 * state of every peer as peer-state lines ("from": null), then now-done.
 * 0 or a negative error. */
static int
start_stream (struct br_events *b, struct br_event_sub *sub, bool now)
{
  struct br_engine *e = b->e;
  size_t n = 0, k = 0;
  struct br_event *snap = NULL;
  int r = 0;

  for (size_t gi = 0; gi < e->n_groups; gi++)
    n += e->groups[gi].n_peers;
  if (now && n && (snap = calloc (n, sizeof *snap)) == NULL)
    return -ENOMEM;
  br_mutex_lock (&b->lock);
  atomic_fetch_add (&b->n_subs, 1);     /* producers queue from here on */
  br_mutex_unlock (&b->lock);
  for (size_t gi = 0; gi < e->n_groups; gi++) {
    struct br_group *g = &e->groups[gi];

    br_mutex_lock (&g->lock);
    br_mutex_lock (&b->lock);
    sub->skip[gi] = b->seq;
    br_mutex_unlock (&b->lock);
    for (size_t pi = 0; snap && pi < g->n_peers && k < n; pi++, k++) {
      struct br_peer *p = g->peers[pi];

      peer_event_base (&snap[k], BR_EVENT_PEER_STATE, p);
      snap[k].to = br_peer_state_name (p->state);
      snprintf (snap[k].text, sizeof snap[k].text, "%s", p->last_error);
    }
    br_mutex_unlock (&g->lock);
  }
  /* Listed now, so that an error below is undone by unsubscribing. */
  sub->listed = true;
  sub->next = b->subs;
  if (b->subs)
    b->subs->prev = sub;
  b->subs = sub;
  for (size_t i = 0; now && r == 0 && i <= k; i++) {
    struct br_event done = { .type = BR_EVENT_NOW_DONE, .node = e->self->name };
    struct br_event *ev = i < k ? &snap[i] : &done;

    br_mutex_lock (&b->lock);
    ev->time_ms = stamp (b);
    br_mutex_unlock (&b->lock);
    r = sub_write_json (sub, br_event_json (ev), false);
  }
  free (snap);
  return r;
}

int
br__events_subscribe (struct br_engine *e, const char *line,
                      uv_stream_t *s, void (*close) (void *arg), void *arg,
                      struct br_event_sub **out)
{
  json_t *req = json_loads (line, 0, NULL);
  const char *cmd = NULL, *bad = NULL;
  struct br_event_sub *sub;
  json_error_t jerr;
  int now = 0, r;

  *out = NULL;
  if (req == NULL || json_unpack (req, "{s:s}", "cmd", &cmd) < 0 ||
      strcmp (cmd, "events") != 0) {
    json_decref (req);
    return 0;
  }
  if (json_unpack_ex (req, &jerr, JSON_STRICT, "{s:s, s?b}", "cmd", &cmd,
                      "now", &now) < 0)
    bad = "bad request: events takes only \"now\": true or false";
  else if (e->events == NULL)
    bad = "this node has no event bus";
  json_decref (req);
  sub = calloc (1, sizeof *sub);
  if (sub == NULL ||
      (sub->skip = calloc (e->n_groups + 1, sizeof *sub->skip)) == NULL) {
    free (sub);
    return -ENOMEM;
  }
  sub->bus = e->events;
  sub->s = s;
  sub->close = close;
  sub->arg = arg;
  *out = sub;
  if (bad) {
    /* Answered like any refused request; closed once it is out. */
    sub->ending = true;
    if (sub_write_json (sub, json_pack ("{s:b, s:s}", "ok", 0, "error", bad),
                        true) < 0)
      return -ENOMEM;
    return 1;
  }
  r = sub_write_json (sub, json_pack ("{s:b, s:s, s:b}", "ok", 1, "node",
                                      e->self->name, "now", now), false);
  if (r == 0)
    r = start_stream (e->events, sub, now);
  return r < 0 ? r : 1;
}

void
br__events_unsubscribe (struct br_event_sub *sub)
{
  struct br_events *b = sub->bus;

  if (sub->listed) {
    if (sub->prev)
      sub->prev->next = sub->next;
    else
      b->subs = sub->next;
    if (sub->next)
      sub->next->prev = sub->prev;
    sub->listed = false;
    br_mutex_lock (&b->lock);
    atomic_fetch_sub (&b->n_subs, 1);
    br_mutex_unlock (&b->lock);
  }
  sub->gone = true;
  if (sub->writes == 0)
    sub_free (sub);
}

/* ---- life cycle ---- */

int
br__events_start (struct br_engine *e)
{
  struct br_events *b = calloc (1, sizeof *b);

  if (b == NULL)
    return -ENOMEM;
  b->e = e;
  br_mutex_init (&b->lock);
  b->tailp = &b->head;
  atomic_init (&b->n_subs, 0);
  uv_async_init (&e->loop, &b->async, on_async);
  b->async.data = b;
  uv_timer_init (&e->loop, &b->timer);
  b->timer.data = b;
  uv_timer_start (&b->timer, on_progress, PROGRESS_MS, PROGRESS_MS);
  b->open = true;
  e->events = b;
  return 0;
}

void
br__events_stop (struct br_engine *e)
{
  struct br_events *b = e->events;

  if (b == NULL || !b->open)
    return;
  drain (b);                    /* the peers' last changes (STOP) */
  for (struct br_event_sub *sub = b->subs, *snext; sub; sub = snext) {
    snext = sub->next;
    sub_end (sub, BR_EVENT_END, "the node is shutting down");
  }
  br_mutex_lock (&b->lock);
  b->open = false;
  br_mutex_unlock (&b->lock);
  uv_close ((uv_handle_t *) &b->async, NULL);
  uv_close ((uv_handle_t *) &b->timer, NULL);
}

void
br__events_free (struct br_engine *e)
{
  struct br_events *b = e->events;

  if (b == NULL)
    return;
  for (struct item *it = b->head, *next; it; it = next) {
    next = it->next;
    free (it);
  }
  br_mutex_destroy (&b->lock);
  free (b);
  e->events = NULL;
}
