/* blockrelay — the control socket.
 *
 * A Unix stream socket (the node's `control:` path) on the loop thread.
 * Protocol: the client sends one JSON object on one line, e.g.
 * {"cmd":"status"}; the server answers with one JSON object on one line
 * and closes.  Every answer has "ok": true or "ok": false with "error".
 * JSON is built and parsed with jansson.
 *
 * The status snapshot and the metrics ({"cmd":"metrics"}: the Prometheus
 * text of metrics.c, as "text") take each group's lock briefly; they
 * never block on I/O.  "pause"/"resume", "resync" and "verify" act on a
 * peer; "verify-status" reads the progress and result of its verify;
 * "promote", "demote" and "resolve" are in control-role.c.  A stale
 * socket file left by a crashed process is replaced; a live one (another
 * process answers) is an error.  The socket is created mode 0600: only
 * its owner (and root) may connect.
 *
 * Every accepted client is on the control's list until its handle is
 * closed, so br__control_stop() can close the connections that are still
 * open (a client that sent nothing, or half a line) along with the
 * listener: the loop runs until its last handle is closed, and one open
 * client would otherwise keep nbdkit's .cleanup and blockrelayd's SIGTERM
 * waiting forever.  Handles are freed only in their close callbacks, and
 * close_client() is the one place that closes a client (at most once).
 *
 * br__control_parse() is the pure half of a request: the JSON, the command
 * and its arguments (those of promote, demote and resolve are read in
 * control-role.c), with the refusals of a malformed request; it touches no
 * engine state, so the fuzz target (fuzz/fuzz-control.c) calls it alone.
 * handle_request() dispatches what it returns.
 *
 * {"cmd":"events"} is the one request that keeps its client open: the
 * client becomes a subscriber of the event bus (events.c), which writes
 * the event lines; it stays on the list, and closing it (its EOF, the
 * bus ending its stream, br__control_stop) unsubscribes it first.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <jansson.h>

#include "log.h"
#include "util.h"

#define REQUEST_MAX 4096

struct client;

struct br_control {
  struct br_engine *e;
  uv_pipe_t server;
  struct client *clients;       /* open clients, not yet closing */
};

struct client {
  uv_pipe_t pipe;
  struct br_control *ctl;       /* NULL once off the list */
  struct client *prev, *next;
  char buf[REQUEST_MAX];
  size_t len;
  bool answered;
  struct br_event_sub *sub;     /* {"cmd":"events"}: a subscriber of the
                                   event bus (events.c), kept open */
};

static json_t *
peer_json (struct br_peer *p, struct br_volume *v)
{
  struct br_group *g = p->g;
  uint64_t gran = (uint64_t) 1 << v->gran_shift;
  uint64_t done, rate = 0, eta = 0, now;
  struct br_peer_figures fig;
  json_t *o;
  char addr[300];

  snprintf (addr, sizeof addr, "%s:%s", p->node->host, p->node->port);
  br_mutex_lock (&g->lock);
  br__peer_figures (p, v, &fig);        /* the metrics' figures too */
  if (p->state == BR_PEER_SYNCING && p->oos) {
    /* Progress of the whole group's resync: average rate since it began. */
    now = uv_now (&g->e->loop);
    done = (p->resync_total - p->oos_count) * gran;
    if (now > p->resync_start_ms)
      rate = done * 1000 / (now - p->resync_start_ms);
    if (rate)
      eta = p->oos_count * gran / rate;
  }
  o = json_pack ("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                 "s:I, s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:f, s:I, s:I, "
                 "s:I, s:s}",
                 "node", p->node->name,
                 "address", addr,
                 "mode", p->mode == BR_MODE_SYNC ? "sync" : "async",
                 "state", br_peer_state_name (p->state),
                 "since", (json_int_t) p->since,
                 "dirty_bytes", (json_int_t) fig.dirty_bytes,
                 "queued_bytes", (json_int_t) p->queued_bytes,
                 "queued_records", (json_int_t) p->q.len,
                 "resync_records_queued", (json_int_t) p->resync_inflight,
                 "acked_seq", (json_int_t) p->applied,
                 "durable_seq", (json_int_t) p->durable,
                 "sent_bytes", (json_int_t) p->sent_bytes,
                 "resync_left_bytes", (json_int_t) fig.resync_left_bytes,
                 "resync_rate", (json_int_t) rate,
                 "resync_eta", (json_int_t) eta,
                 "last_error", p->last_error,
                 "rate", (json_int_t) p->link->rate,
                 "resync_rate_cap", (json_int_t) p->link->resync_rate,
                 "lag_bytes", (json_int_t) fig.lag_bytes,
                 "lag_seconds", fig.lag_seconds,
                 "resync_sent_bytes", (json_int_t) p->resync_bytes_sent,
                 "resync_hashed_regions",
                 (json_int_t) p->resync_hashed_regions,
                 "resync_differ_regions",
                 (json_int_t) p->resync_differ_regions,
                 "resync_method", p->link->resync == BR_RESYNC_CHECKSUM
                 ? "checksum" : "full");
  if (o) {
    uint64_t vt, vd, vx, vr;

    char base[17];

    /* The generation both were last in sync at (the verdict's base). */
    snprintf (base, sizeof base, "%016llx", (unsigned long long)
              br_sb_peer_gen (v->sb, v->slot[p->idx]));
    json_object_set_new (o, "base_generation", json_string (base));
    json_object_set_new (o, "verdict", json_string (p->last_verdict));
    {
      static const char *const tls_modes[] = { "off", "psk", "cert" };
      char desc[128] = "";

      if (p->tls)
        br_tls_describe (p->tls, desc, sizeof desc);
      json_object_set_new (o, "tls", json_string (tls_modes[p->link->tls]));
      json_object_set_new (o, "tls_session", json_string (desc));
    }
    json_object_set_new (o, "taken_regions",
                         json_integer ((json_int_t) p->taken_regions));
    json_object_set_new (o, "resync_total_bytes", json_integer (
      p->state == BR_PEER_SYNCING && p->oos
      ? (json_int_t) (p->resync_total * gran) : 0));
    br__verify_progress (p, v, &vt, &vd, &vx, &vr);
    if (vt)
      json_object_set_new (o, "verify", json_pack (
        "{s:s, s:I, s:I, s:I}", "state", vr ? "running" : "finished",
        "regions", (json_int_t) vt, "done", (json_int_t) vd,
        "differ", (json_int_t) vx));
  }
  br_mutex_unlock (&g->lock);
  return o;
}

struct upstream_ctx {
  struct br_engine *e;
  json_t *list;
};

static void
add_upstream (void *arg, const struct br_upstream_info *u)
{
  struct upstream_ctx *c = arg;
  const struct br_link_cfg *l = br_config_link (c->e->cfg, u->peer,
                                                c->e->self->name);

  json_array_append_new (c->list,
    json_pack ("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s}",
               "node", u->peer, "group", u->group, "address", u->addr,
               "mode", l && l->mode == BR_MODE_SYNC ? "sync" : "async",
               "rate", (json_int_t) (l ? l->rate : 0),
               "applied_seq", (json_int_t) u->applied,
               "durable_seq", (json_int_t) u->durable,
               "received_bytes", (json_int_t) u->rx_bytes,
               "pending_bytes", (json_int_t) u->pending_bytes,
               "error", u->error));
}

/* The topology as this node sees it: per group, whose writes it carries,
 * where they come from and where this node sends them. */
static json_t *
groups_json (struct br_engine *e)
{
  json_t *groups = json_array ();

  for (size_t gi = 0; gi < e->n_groups; gi++) {
    struct br_group *g = &e->groups[gi];
    json_t *down = json_array (), *vols = json_array ();
    const char *up = NULL;
    bool consistent = true;             /* a group is one consistent set */

    for (size_t pi = 0; pi < g->n_peers; pi++)
      json_array_append_new (down, json_string (g->peers[pi]->node->name));
    for (size_t vi = 0; vi < g->n_vols; vi++) {
      json_array_append_new (vols, json_string (g->vols[vi]->cfg->name));
      consistent &= (br_sb_flags (g->vols[vi]->sb) & BR_SB_CONSISTENT) != 0;
    }
    if (br__engine_role (e) == BR_ROLE_REPLICA && g->origin[0])
      up = br_topology_parent (e->cfg, g->origin, e->self->name);
    json_array_append_new (groups,
      json_pack ("{s:s, s:s, s:s?, s:s?, s:b, s:b, s:o, s:o}",
                 "name", g->name,
                 "origin", g->origin,
                 /* The primary of the group as this node knows it: itself,
                  * or the origin of the stream it receives (or last
                  * received); null when it has had no upstream yet. */
                 "primary", br__engine_role (e) == BR_ROLE_PRIMARY
                 ? e->self->name : g->origin[0] ? g->origin : NULL,
                 "upstream", up,
                 "connected", g->upstream != NULL,
                 "consistent", consistent,
                 "volumes", vols,
                 "downstream", down));
  }
  return groups;
}

static json_t *
status_json (struct br_engine *e)
{
  json_t *vols = json_array (), *ups = json_array ();

  for (size_t i = 0; i < e->n_vols; i++) {
    struct br_volume *v = &e->vols[i];
    json_t *peers = json_array ();
    uint32_t flags = br_sb_flags (v->sb);
    char gen[17];

    snprintf (gen, sizeof gen, "%016llx",
              (unsigned long long) br_sb_gen (v->sb));
    for (size_t pi = 0; pi < v->g->n_peers; pi++)
      json_array_append_new (peers, peer_json (v->g->peers[pi], v));
    json_array_append_new (vols,
      json_pack ("{s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:s, s:s, s:o}",
                 "name", v->cfg->name,
                 "group", v->g->name,
                 "role", br__engine_role (e) == BR_ROLE_PRIMARY ? "primary"
                 : "replica",
                 "size", (json_int_t) v->size,
                 "granularity", (json_int_t) ((uint64_t) 1 << v->gran_shift),
                 "consistent", (flags & BR_SB_CONSISTENT) != 0,
                 "fresh", (flags & BR_SB_FRESH) != 0,
                 "generation", gen,
                 "disk", br_disk_path (v->disk),
                 "peers", peers));
  }
  br__replica_foreach (e, add_upstream,
                       &(struct upstream_ctx) { .e = e, .list = ups });
  return json_pack ("{s:b, s:s, s:s, s:s?, s:s?, s:I, s:I, s:I, s:s, s:o, "
                    "s:o, s:o}",
                    "ok", 1,
                    "node", e->self->name,
                    "role", br__engine_role (e) == BR_ROLE_PRIMARY
                    ? "primary" : "replica",
                    "role_change", !atomic_load (&e->role_busy) ? NULL
                    : br__engine_role (e) == BR_ROLE_PRIMARY ? "promoting"
                    : "demoting",
                    "role_error", e->role_error[0] ? e->role_error : NULL,
                    "clients", (json_int_t) br__engine_clients (e),
                    "pid", (json_int_t) getpid (),
                    "uptime", (json_int_t) (time (NULL) - e->started_at),
                    "config", e->cfg->path,
                    "volumes", vols,
                    "upstream", ups,
                    "groups", groups_json (e));
}

json_t *
br__control_fail (const char *fmt, ...)
{
  char msg[256];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  return json_pack ("{s:b, s:s}", "ok", 0, "error", msg);
}

/* The refusal for a group G this node does not have, or NULL. */
static json_t *
no_such_group (struct br_engine *e, const char *group)
{
  for (size_t gi = 0; gi < e->n_groups; gi++)
    if (strcmp (e->groups[gi].name, group) == 0)
      return NULL;
  return br__control_fail ("node %s has no group named '%s'", e->self->name,
                     group);
}

/* {"cmd": "pause"|"resume", "peer": NODE, "group": G (optional)}: the
 * peer NODE of every group (or of G) of this node.  All or nothing: every
 * named peer is checked before any is changed. */
static json_t *
pause_resume (struct br_engine *e, const struct br_control_req *req,
              bool pause)
{
  const char *node = req->peer, *group = req->group;
  json_t *done, *bad;
  size_t n = 0;

  if (group && (bad = no_such_group (e, group)) != NULL)
    return bad;
  for (int pass = 0; pass < 2; pass++) {
    done = json_array ();
    for (size_t gi = 0; gi < e->n_groups; gi++) {
      struct br_group *g = &e->groups[gi];
      if (group && strcmp (group, g->name) != 0)
        continue;
      for (size_t pi = 0; pi < g->n_peers; pi++) {
        struct br_peer *p = g->peers[pi];
        enum br_peer_state st = br__peer_state (p);
        if (strcmp (p->node->name, node) != 0)
          continue;
        n++;
        if (pass == 0 && pause &&
            br_peer_next (st, BR_EV_PAUSE) == BR_PEER_INVALID) {
          json_decref (done);
          return br__control_fail ("peer %s of group %s is %s: resolve the split "
                             "brain first", node, g->name,
                             br_peer_state_name (st));
        }
        if (pass == 0 && !pause && st != BR_PEER_PAUSED) {
          json_decref (done);
          return br__control_fail ("peer %s of group %s is %s, not paused", node,
                             g->name, br_peer_state_name (st));
        }
        if (pass == 1) {
          int r = pause ? br__peer_pause (p) : br__peer_resume (p);
          assert (r == 0);      /* checked in pass 0, on this thread */
          (void) r;
          json_array_append_new (done,
            json_pack ("{s:s, s:s, s:s}", "group", g->name, "peer", node,
                       "state", br_peer_state_name (br__peer_state (p))));
        }
      }
    }
    if (pass == 0) {
      json_decref (done);
      if (n == 0)
        return br__control_fail ("%s is not a peer of node %s%s%s", node,
                           e->self->name, group ? " in group " : "",
                           group ? group : "");
    }
  }
  return json_pack ("{s:b, s:o}", "ok", 1, "peers", done);
}

/* The volume named NAME and its peer NODE, or a reply saying why not. */
static json_t *
find_volume_peer (struct br_engine *e, const char *name, const char *node,
                  struct br_volume **vp, struct br_peer **pp)
{
  struct br_volume *v = NULL;

  for (size_t i = 0; i < e->n_vols && v == NULL; i++)
    if (strcmp (e->vols[i].cfg->name, name) == 0)
      v = &e->vols[i];
  if (v == NULL)
    return br__control_fail ("node %s has no volume named '%s'", e->self->name,
                       name);
  for (size_t i = 0; i < v->g->n_peers; i++)
    if (strcmp (v->g->peers[i]->node->name, node) == 0) {
      *vp = v;
      *pp = v->g->peers[i];
      return NULL;
    }
  return br__control_fail ("%s is not a peer of node %s for volume %s", node,
                     e->self->name, name);
}

/* {"cmd": "verify", "volume": V, "peer": NODE, "repair": BOOL}: start a
 * verify (verify.c); its progress is "verify-status". */
static json_t *
verify_start (struct br_engine *e, const struct br_control_req *req)
{
  const char *vol = req->volume, *node = req->peer;
  int repair = req->repair;
  struct br_volume *v;
  struct br_peer *p;
  json_t *bad;
  char err[256];

  if ((bad = find_volume_peer (e, vol, node, &v, &p)) != NULL)
    return bad;
  if (br__verify_start (p, v, repair, err, sizeof err) < 0)
    return br__control_fail ("%s", err);
  return json_pack ("{s:b, s:s, s:s, s:I}", "ok", 1, "volume", vol,
                    "peer", node, "regions", (json_int_t) v->nregions);
}

/* {"cmd": "verify-status", "volume": V, "peer": NODE}: the peer's last
 * verify job ("state": "none" if it has had none, or one of another
 * volume). */
static json_t *
verify_status (struct br_engine *e, const struct br_control_req *req)
{
  const char *vol = req->volume, *node = req->peer;
  struct br_verify_info vi;
  struct br_volume *v;
  struct br_peer *p;
  json_t *bad, *ranges;

  if ((bad = find_volume_peer (e, vol, node, &v, &p)) != NULL)
    return bad;
  if (br__verify_info (p, &vi) < 0)
    return br__control_fail ("out of memory");
  if (vi.state != BR_VERIFY_NONE && strcmp (vi.volume, vol) != 0)
    vi.state = BR_VERIFY_NONE;  /* the last job was of another volume */
  ranges = json_array ();
  for (size_t i = 0; i < vi.n_ranges; i++)
    json_array_append_new (ranges, json_pack ("[I, I]",
                             (json_int_t) vi.ranges[i].offset,
                             (json_int_t) vi.ranges[i].length));
  free (vi.ranges);
  return json_pack ("{s:b, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b, "
                    "s:b, s:I, s:s, s:o}",
                    "ok", 1, "volume", vol, "peer", node,
                    "state", br_verify_state_name (vi.state),
                    "regions", (json_int_t) v->nregions,
                    "granularity", (json_int_t) 1 << v->gran_shift,
                    "compared", (json_int_t) vi.compared,
                    "skipped", (json_int_t) vi.skipped,
                    "differ", (json_int_t) vi.n_differ,
                    "repair", vi.repair, "repaired", vi.repaired,
                    "elapsed_ms", (json_int_t) vi.elapsed_ms,
                    "error", vi.error, "ranges", ranges);
}

/* {"cmd": "resync", "peer": NODE, "group": G (optional), "checksum":
 * BOOL}: every region of the peer's groups (or of G) out of sync, then
 * resynced (resync.c br__resync_request).  All or nothing, as pause. */
static json_t *
resync (struct br_engine *e, const struct br_control_req *req)
{
  const char *node = req->peer, *group = req->group;
  int checksum = req->checksum;
  struct br_peer *todo[64];
  size_t n = 0;
  json_t *done;

  for (size_t gi = 0; gi < e->n_groups; gi++) {
    struct br_group *g = &e->groups[gi];

    if (group && strcmp (group, g->name) != 0)
      continue;
    for (size_t pi = 0; pi < g->n_peers && n < 64; pi++)
      if (strcmp (g->peers[pi]->node->name, node) == 0)
        todo[n++] = g->peers[pi];
  }
  if (group && n == 0 && (done = no_such_group (e, group)) != NULL)
    return done;
  if (n == 0)
    return br__control_fail ("%s is not a peer of node %s%s%s", node,
                       e->self->name, group ? " in group " : "",
                       group ? group : "");
  for (size_t i = 0; i < n; i++)
    if (br__peer_state (todo[i]) == BR_PEER_HALTED)
      return br__control_fail ("peer %s of group %s is halted: resolve the split "
                         "brain first", node, todo[i]->g->name);
  done = json_array ();
  for (size_t i = 0; i < n; i++) {
    if (br__resync_request (todo[i], 0, NULL, checksum) < 0) {
      json_decref (done);
      return br__control_fail ("out of memory");
    }
    json_array_append_new (done,
      json_pack ("{s:s, s:s, s:s}", "group", todo[i]->g->name, "peer", node,
                 "method", checksum ||
                 todo[i]->link->resync == BR_RESYNC_CHECKSUM
                 ? "checksum" : "full"));
  }
  return json_pack ("{s:b, s:o}", "ok", 1, "peers", done);
}

/* {"cmd": "metrics"}: the Prometheus text (metrics.c) as "text". */
static json_t *
metrics_json (struct br_engine *e)
{
  char *text = NULL;
  size_t len = 0;
  json_t *reply;

  if (br__metrics_text (e, &text, &len) < 0)
    return br__control_fail ("out of memory");
  reply = json_pack ("{s:b, s:s, s:s%}", "ok", 1, "node", e->self->name,
                     "text", text, len);
  free (text);
  return reply;
}

/* The request's command and arguments, before anything of the engine is
 * looked at: the refusals of a malformed request are all here. */
json_t *
br__control_parse (const char *line, struct br_control_req *r)
{
  static const struct {
    const char *name;
    enum br_control_cmd cmd;
  } cmds[] = {
    { "status", BR_CTL_STATUS }, { "metrics", BR_CTL_METRICS },
    { "pause", BR_CTL_PAUSE }, { "resume", BR_CTL_RESUME },
    { "verify", BR_CTL_VERIFY }, { "verify-status", BR_CTL_VERIFY_STATUS },
    { "resync", BR_CTL_RESYNC }, { "promote", BR_CTL_PROMOTE },
    { "demote", BR_CTL_DEMOTE }, { "resolve", BR_CTL_RESOLVE },
  };
  json_error_t jerr;
  json_t *req = json_loads (line, 0, &jerr), *reply = NULL;
  const char *cmd = NULL;
  size_t i;

  memset (r, 0, sizeof *r);
  if (req == NULL || json_unpack (req, "{s:s}", "cmd", &cmd) < 0) {
    json_decref (req);
    return json_pack ("{s:b, s:s}", "ok", 0, "error",
                      "bad request: expected {\"cmd\": NAME}");
  }
  for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (strcmp (cmd, cmds[i].name) == 0)
      break;
  if (i == sizeof cmds / sizeof cmds[0]) {
    char msg[128];
    snprintf (msg, sizeof msg, "unknown command '%.64s'", cmd);
    json_decref (req);
    return json_pack ("{s:b, s:s}", "ok", 0, "error", msg);
  }
  r->cmd = cmds[i].cmd;
  switch (r->cmd) {
  case BR_CTL_PAUSE:
  case BR_CTL_RESUME:
    if (json_unpack (req, "{s:s, s?s}", "peer", &r->peer, "group",
                     &r->group) < 0)
      reply = br__control_fail ("bad request: %s needs \"peer\": NODE", cmd);
    break;
  case BR_CTL_VERIFY:
    if (json_unpack (req, "{s:s, s:s, s?b}", "volume", &r->volume, "peer",
                     &r->peer, "repair", &r->repair) < 0)
      reply = br__control_fail ("bad request: verify needs \"volume\" and "
                                "\"peer\"");
    break;
  case BR_CTL_VERIFY_STATUS:
    if (json_unpack (req, "{s:s, s:s}", "volume", &r->volume, "peer",
                     &r->peer) < 0)
      reply = br__control_fail ("bad request: verify-status needs "
                                "\"volume\" and \"peer\"");
    break;
  case BR_CTL_RESYNC:
    if (json_unpack (req, "{s:s, s?s, s?b}", "peer", &r->peer, "group",
                     &r->group, "checksum", &r->checksum) < 0)
      reply = br__control_fail ("bad request: resync needs \"peer\": NODE");
    break;
  default:                      /* no arguments, or control-role.c's */
    break;
  }
  if (reply) {
    json_decref (req);
    memset (r, 0, sizeof *r);
    return reply;
  }
  r->json = req;
  return NULL;
}

static json_t *
handle_request (struct br_engine *e, const char *line)
{
  struct br_control_req r;
  json_t *reply = br__control_parse (line, &r);

  if (reply)
    return reply;
  switch (r.cmd) {
  case BR_CTL_STATUS: reply = status_json (e); break;
  case BR_CTL_METRICS: reply = metrics_json (e); break;
  case BR_CTL_PAUSE: reply = pause_resume (e, &r, true); break;
  case BR_CTL_RESUME: reply = pause_resume (e, &r, false); break;
  case BR_CTL_VERIFY: reply = verify_start (e, &r); break;
  case BR_CTL_VERIFY_STATUS: reply = verify_status (e, &r); break;
  case BR_CTL_RESYNC: reply = resync (e, &r); break;
  case BR_CTL_PROMOTE: reply = br__control_role (e, r.json, true); break;
  case BR_CTL_DEMOTE: reply = br__control_role (e, r.json, false); break;
  case BR_CTL_RESOLVE: reply = br__control_resolve (e, r.json); break;
  }
  json_decref (r.json);
  return reply;
}

/* The close callback of the listener and of clients: DATA is the struct
 * that holds the handle. */
static void
on_closed (uv_handle_t *h)
{
  free (h->data);
}

/* Take C off its control's list and close it; a client already closing
 * (its reply's write is cancelled by the close) is left alone. */
static void
close_client (struct client *c)
{
  if (c->sub) {
    br__events_unsubscribe (c->sub);
    c->sub = NULL;
  }
  if (c->ctl) {
    if (c->prev)
      c->prev->next = c->next;
    else
      c->ctl->clients = c->next;
    if (c->next)
      c->next->prev = c->prev;
    c->ctl = NULL;
  }
  if (!uv_is_closing ((uv_handle_t *) &c->pipe))
    uv_close ((uv_handle_t *) &c->pipe, on_closed);
}

/* The event bus ends a subscriber's stream. */
static void
close_subscriber (void *arg)
{
  close_client (arg);
}

/* {"cmd":"events"}: C becomes a subscriber (events.c) and stays open;
 * reading goes on, so that its EOF closes it.  False: another command. */
static bool
subscribe (struct client *c)
{
  int r = br__events_subscribe (c->ctl->e, c->buf, (uv_stream_t *) &c->pipe,
                                close_subscriber, c, &c->sub);

  if (r == 0)
    return false;
  c->answered = true;
  if (r < 0)
    close_client (c);
  return true;
}

static void
on_reply_written (uv_write_t *req, int status)
{
  struct client *c = req->data;

  free (req);
  close_client (c);
}

static void
answer (struct client *c)
{
  json_t *reply = handle_request (c->ctl->e, c->buf);
  char *text = json_dumps (reply, JSON_COMPACT);
  size_t len = text ? strlen (text) : 0;
  uv_write_t *req = malloc (sizeof *req + len + 1);
  uv_buf_t b;

  json_decref (reply);
  c->answered = true;
  uv_read_stop ((uv_stream_t *) &c->pipe);
  if (req == NULL || text == NULL) {
    free (req);
    free (text);
    close_client (c);
    return;
  }
  memcpy ((char *) (req + 1), text, len);
  ((char *) (req + 1))[len] = '\n';
  free (text);
  b = uv_buf_init ((char *) (req + 1), len + 1);
  req->data = c;
  if (uv_write (req, (uv_stream_t *) &c->pipe, &b, 1, on_reply_written) < 0) {
    free (req);
    close_client (c);
  }
}

static void
on_alloc (uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  struct client *c = h->data;

  buf->base = c->buf + c->len;
  buf->len = sizeof c->buf - 1 - c->len;
}

static void
on_read (uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
  struct client *c = s->data;
  char *nl;

  if (c->answered) {
    if (nread < 0 && c->sub)
      close_client (c);         /* a subscriber went away */
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF && c->len > 0) {
      c->buf[c->len] = '\0';
      answer (c);
    }
    else
      close_client (c);
    return;
  }
  c->len += nread;
  c->buf[c->len] = '\0';
  nl = memchr (c->buf, '\n', c->len);
  if (nl) {
    *nl = '\0';
    if (!subscribe (c))
      answer (c);
  }
  else if (c->len == sizeof c->buf - 1)
    close_client (c);
}

static void
on_connection (uv_stream_t *server, int status)
{
  struct br_control *ctl = server->data;
  struct client *c;

  if (status < 0)
    return;
  c = calloc (1, sizeof *c);
  if (c == NULL)
    return;
  uv_pipe_init (&ctl->e->loop, &c->pipe, 0);
  c->pipe.data = c;
  c->ctl = ctl;
  c->next = ctl->clients;
  if (c->next)
    c->next->prev = c;
  ctl->clients = c;
  if (uv_accept (server, (uv_stream_t *) &c->pipe) < 0) {
    close_client (c);
    return;
  }
  uv_read_start ((uv_stream_t *) &c->pipe, on_alloc, on_read);
}

/* Is something listening on PATH?  Used to tell a stale socket file from
 * a running process. */
static bool
socket_alive (const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool alive;

  if (fd < 0)
    return false;
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", path);
  alive = connect (fd, (struct sockaddr *) &sa, sizeof sa) == 0;
  close (fd);
  return alive;
}

int
br__control_start (struct br_engine *e)
{
  struct br_control *ctl = calloc (1, sizeof *ctl);
  int err;

  if (ctl == NULL)
    return -ENOMEM;
  if (strlen (e->control_path) >= sizeof ((struct sockaddr_un *) 0)->sun_path) {
    br_error ("control socket path too long: %s", e->control_path);
    free (ctl);
    return -ENAMETOOLONG;
  }
  if (access (e->control_path, F_OK) == 0) {
    if (socket_alive (e->control_path)) {
      br_error ("%s: another process is serving this node's control socket",
                e->control_path);
      free (ctl);
      return -EADDRINUSE;
    }
    unlink (e->control_path);
  }
  ctl->e = e;
  uv_pipe_init (&e->loop, &ctl->server, 0);
  ctl->server.data = ctl;
  err = uv_pipe_bind (&ctl->server, e->control_path);
  /* Owner only (0600), whatever the umask: set before listen, so no
   * client can connect while the mode is wider.  blockrelayd --user
   * chowns it to the user it drops to (privdrop.c). */
  if (err == 0 && chmod (e->control_path, 0600) < 0)
    err = -errno;
  if (err == 0)
    err = uv_listen ((uv_stream_t *) &ctl->server, 8, on_connection);
  if (err < 0) {
    br_error ("cannot listen on %s: %s", e->control_path, uv_strerror (err));
    uv_close ((uv_handle_t *) &ctl->server, on_closed);
    return err;
  }
  e->control = ctl;
  return 0;
}

void
br__control_stop (struct br_engine *e)
{
  if (e->control == NULL)
    return;
  while (e->control->clients)
    close_client (e->control->clients);
  uv_close ((uv_handle_t *) &e->control->server, on_closed);
  unlink (e->control_path);
  e->control = NULL;
}
