/* blockrelay — metrics: the engine's figures in the Prometheus text format.
 *
 * What: br__metrics_collect() copies what the operator watches (peer
 * states, bytes and writes replicated, dirty bytes, queues, lag, resync
 * progress, errors by kind, a replica's upstream sessions) into a
 * snapshot of plain values (metrics.h); br_metrics_format() turns a
 * snapshot into the text exposition format.  br__metrics_text() does
 * both: it is the one producer of the text, used by the control socket
 * ({"cmd":"metrics"}) and by the metrics-file writer (metrics-file.c).
 *
 * Invariants:
 *   M1. Every family has exactly one # HELP and one # TYPE line, before
 *       its samples; names start with blockrelay_, counters end in
 *       _total, byte quantities in _bytes, durations in _seconds.
 *   M2. Label values are escaped as the format says (\\, \", \n), so a
 *       name can never forge a sample.
 *   M3. The figures shared with `blockrelay status` (dirty bytes, resync
 *       left, lag) come from one function, br__peer_figures(), so the two
 *       never disagree about what a figure means.
 *   M4. blockrelay_peer_state has one series per state, 1 for the current
 *       one and 0 for the others (the enumeration pattern).
 *
 * Lock rules: collection runs on the loop thread (or after the loop has
 * stopped, for the last metrics-file write) and takes each group's lock
 * briefly, once per group, never doing I/O under it.  Formatting is pure:
 * it reads only the snapshot.
 *
 * The counters: replicated_bytes / replicated_writes count WRITE and ZERO
 * records (live and resync) when the peer has made them durable (retired
 * from its queue, queue.c), so they never count what a lost connection
 * dropped; errors[] per kind are counted on the loop thread where each
 * error is detected (peer.c, peer-handshake.c); a volume's disk errors by
 * the disk layer (disk.c).
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static const char *const err_kind_names[BR_ERR_N_KINDS] = {
  [BR_ERR_CONNECT_FAILED] = "connect_failed",
  [BR_ERR_CONNECTION_LOST] = "connection_lost",
  [BR_ERR_HANDSHAKE_REFUSED] = "handshake_refused",
  [BR_ERR_SPLIT_BRAIN] = "split_brain",
  [BR_ERR_BAD_FRAME] = "bad_frame",
  [BR_ERR_PEER_ERROR] = "peer_error",
  [BR_ERR_LOCAL_IO] = "local_io",
};

const char *
br_err_kind_name (enum br_err_kind k)
{
  return (unsigned) k < BR_ERR_N_KINDS ? err_kind_names[k] : "unknown";
}

enum br_err_kind
br_loss_kind (enum br_peer_event ev, enum br_peer_state st)
{
  if (ev == BR_EV_SPLIT_BRAIN)
    return BR_ERR_SPLIT_BRAIN;
  if (ev == BR_EV_ERROR)        /* refusals come during the handshake */
    return st == BR_PEER_HANDSHAKE ? BR_ERR_HANDSHAKE_REFUSED
                                   : BR_ERR_BAD_FRAME;
  if (ev == BR_EV_LOST && st == BR_PEER_CONNECTING)
    return BR_ERR_CONNECT_FAILED;
  if (ev == BR_EV_LOST && !br_peer_state_down (st))
    return BR_ERR_CONNECTION_LOST;
  return BR_ERR_N_KINDS;        /* PAUSE, STOP, a loss already logged */
}

/* ---- formatting (pure) ---- */

size_t
br_metrics_escape (char *buf, size_t size, const char *value)
{
  size_t n = 0, w = 0;          /* needed, written (whole escapes only) */

  for (const char *c = value; *c; c++) {
    const char *rep = *c == '\\' ? "\\\\" : *c == '"' ? "\\\""
                      : *c == '\n' ? "\\n" : NULL;
    size_t len = rep ? 2 : 1;

    if (w == n && n + len < size) {
      memcpy (buf + n, rep ? rep : c, len);
      w += len;
    }
    n += len;
  }
  if (size)
    buf[w] = '\0';
  return n;
}

static void
put_value (FILE *f, const char *value)
{
  char small[256];
  size_t n = br_metrics_escape (small, sizeof small, value);
  char *big = n < sizeof small ? NULL : malloc (n + 1);

  if (big)
    br_metrics_escape (big, n + 1, value);
  fputs (big ? big : small, f);         /* cut only without memory */
  free (big);
}

/* {k1="v1",k2="v2",...}: N pairs of const char * after N. */
static void
put_labels (FILE *f, int n, ...)
{
  va_list ap;

  va_start (ap, n);
  fputc ('{', f);
  for (int i = 0; i < n; i++) {
    const char *k = va_arg (ap, const char *), *v = va_arg (ap, const char *);
    fprintf (f, "%s%s=\"", i ? "," : "", k);
    put_value (f, v ? v : "");
    fputc ('"', f);
  }
  fputs ("} ", f);
  va_end (ap);
}

static void
family (FILE *f, const char *name, const char *type, const char *help)
{
  fprintf (f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family whose samples are a uint64_t at offset OFF in each of N rows
 * of STRIDE bytes; LABELS prints a row's labels. */
struct u64_family {
  const char *name, *type, *help;
  size_t off;
};

static void
u64_families (FILE *f, const struct u64_family *fam, size_t n_fam,
              const void *rows, size_t n, size_t stride, const char *node,
              void (*labels) (FILE *f, const char *node, const void *row))
{
  for (size_t i = 0; i < n_fam; i++) {
    family (f, fam[i].name, fam[i].type, fam[i].help);
    for (size_t r = 0; r < n; r++) {
      const char *row = (const char *) rows + r * stride;
      uint64_t v;

      memcpy (&v, row + fam[i].off, sizeof v);
      fputs (fam[i].name, f);
      labels (f, node, row);
      fprintf (f, "%" PRIu64 "\n", v);
    }
  }
}

static void
volume_labels (FILE *f, const char *node, const void *row)
{
  const struct br_metrics_volume *v = row;
  put_labels (f, 3, "node", node, "group", v->group, "volume", v->name);
}

static void
dirty_labels (FILE *f, const char *node, const void *row)
{
  const struct br_metrics_dirty *d = row;
  put_labels (f, 4, "node", node, "group", d->group, "volume", d->volume,
              "peer", d->peer);
}

static void
peer_labels (FILE *f, const char *node, const void *row)
{
  const struct br_metrics_peer *p = row;
  put_labels (f, 3, "node", node, "group", p->group, "peer", p->peer);
}

static void
upstream_labels (FILE *f, const char *node, const void *row)
{
  const struct br_metrics_upstream *u = row;
  put_labels (f, 3, "node", node, "group", u->group, "upstream",
              u->upstream);
}

#define VOL(field) offsetof (struct br_metrics_volume, field)
#define DIRTY(field) offsetof (struct br_metrics_dirty, field)
#define PEER(field) offsetof (struct br_metrics_peer, field)
#define UP(field) offsetof (struct br_metrics_upstream, field)

static const struct u64_family volume_fams[] = {
  { "blockrelay_volume_size_bytes", "gauge", "Size of the volume.",
    VOL (size) },
  { "blockrelay_disk_errors_total", "counter",
    "Failed reads, writes, syncs and zeroes of the volume's local disk "
    "(errors of kind local_io).", VOL (disk_errors) },
};

static const struct u64_family dirty_fams[] = {
  { "blockrelay_dirty_bytes", "gauge",
    "Bytes of the volume whose regions are dirty for the peer (may differ "
    "from its durable copy).", DIRTY (dirty_bytes) },
  { "blockrelay_resync_remaining_bytes", "gauge",
    "Bytes of the volume the current resync to the peer has still to "
    "send (0 when not resyncing).", DIRTY (resync_remaining_bytes) },
};

static const struct u64_family peer_fams[] = {
  { "blockrelay_replicated_bytes_total", "counter",
    "Bytes of WRITE and ZERO records (live and resync) the peer made "
    "durable.", PEER (replicated_bytes) },
  { "blockrelay_replicated_writes_total", "counter",
    "WRITE and ZERO records (live and resync) the peer made durable.",
    PEER (replicated_writes) },
  { "blockrelay_resync_replicated_bytes_total", "counter",
    "Bytes of resync records the peer made durable.",
    PEER (resync_replicated_bytes) },
  { "blockrelay_resync_sent_bytes", "gauge",
    "Bytes queued by the current or last resync to the peer.",
    PEER (resync_sent_bytes) },
  { "blockrelay_sent_bytes_total", "counter",
    "Frame bytes handed to the peer's socket.", PEER (sent_bytes) },
  { "blockrelay_queue_bytes", "gauge",
    "Data bytes queued to the peer and not yet durable there.",
    PEER (queue_bytes) },
  { "blockrelay_queue_records", "gauge",
    "Records queued to the peer and not yet durable there.",
    PEER (queue_records) },
  { "blockrelay_queue_limit_bytes", "gauge",
    "Bound of the peer's queue (queue-size).", PEER (queue_limit_bytes) },
  { "blockrelay_peer_acked_seq", "gauge",
    "Sequence number the peer last reported applied.", PEER (acked_seq) },
  { "blockrelay_peer_durable_seq", "gauge",
    "Sequence number the peer last reported durable.", PEER (durable_seq) },
  { "blockrelay_lag_bytes", "gauge",
    "Bytes the peer does not hold durably yet: its queue, and its dirty "
    "bytes unless replicating.", PEER (lag_bytes) },
  { "blockrelay_resync_hashed_regions_total", "counter",
    "Regions a checksum resync sent to the peer as a hash.",
    PEER (resync_hashed_regions) },
  { "blockrelay_resync_differ_regions_total", "counter",
    "Hashed regions whose copy on the peer differed (then sent as data).",
    PEER (resync_differ_regions) },
  { "blockrelay_verify_regions", "gauge",
    "Regions of the volume of the peer's last verify (0: none yet).",
    PEER (verify_regions) },
  { "blockrelay_verify_done_regions", "gauge",
    "Regions the peer's last verify has compared or skipped as dirty.",
    PEER (verify_done_regions) },
  { "blockrelay_verify_differ_regions", "gauge",
    "Regions the peer's last verify found differing.",
    PEER (verify_differ_regions) },
  { "blockrelay_verify_running", "gauge",
    "1 while a verify of the peer runs.", PEER (verify_running) },
};

static const struct u64_family upstream_fams[] = {
  { "blockrelay_upstream_received_bytes_total", "counter",
    "Bytes received on the upstream session's connection.",
    UP (received_bytes) },
  { "blockrelay_upstream_pending_bytes", "gauge",
    "Bytes received from upstream and not applied yet.",
    UP (pending_bytes) },
  { "blockrelay_upstream_applied_seq", "gauge",
    "Upstream sequence number applied and acknowledged.", UP (applied_seq) },
  { "blockrelay_upstream_durable_seq", "gauge",
    "Upstream sequence number made durable and acknowledged.",
    UP (durable_seq) },
};

#define N(a) (sizeof (a) / sizeof (a)[0])

static bool
connected (enum br_peer_state s)
{
  return s == BR_PEER_SYNCING || s == BR_PEER_REPLICATING ||
         s == BR_PEER_AHEAD;
}

static void
peer_enum_families (FILE *f, const struct br_metrics_snap *s)
{
  family (f, "blockrelay_peer_state", "gauge",
          "State of the peer: 1 for the current state, 0 for the others.");
  for (size_t i = 0; i < s->n_peers; i++)
    for (int st = 0; st < BR_PEER_N_STATES; st++) {
      const struct br_metrics_peer *p = &s->peers[i];
      fputs ("blockrelay_peer_state", f);
      put_labels (f, 4, "node", s->node, "group", p->group, "peer", p->peer,
                  "state", br_peer_state_name (st));
      fprintf (f, "%d\n", p->state == (enum br_peer_state) st);
    }
  family (f, "blockrelay_peer_connected", "gauge",
          "1 while the peer's connection is up and its handshake done "
          "(syncing, replicating or ahead).");
  for (size_t i = 0; i < s->n_peers; i++) {
    fputs ("blockrelay_peer_connected", f);
    peer_labels (f, s->node, &s->peers[i]);
    fprintf (f, "%d\n", connected (s->peers[i].state));
  }
  family (f, "blockrelay_peer_info", "gauge",
          "The link to the peer; always 1.");
  for (size_t i = 0; i < s->n_peers; i++) {
    const struct br_metrics_peer *p = &s->peers[i];
    fputs ("blockrelay_peer_info", f);
    put_labels (f, 4, "node", s->node, "group", p->group, "peer", p->peer,
                "mode", p->mode);
    fputs ("1\n", f);
  }
  family (f, "blockrelay_lag_seconds", "gauge",
          "Age of the oldest data the peer does not hold durably yet.");
  for (size_t i = 0; i < s->n_peers; i++) {
    fputs ("blockrelay_lag_seconds", f);
    peer_labels (f, s->node, &s->peers[i]);
    fprintf (f, "%.3f\n", s->peers[i].lag_seconds);
  }
  family (f, "blockrelay_errors_total", "counter",
          "Errors on the link to the peer, by kind.");
  for (size_t i = 0; i < s->n_peers; i++)
    for (int k = 0; k < BR_ERR_N_KINDS; k++) {
      const struct br_metrics_peer *p = &s->peers[i];
      fputs ("blockrelay_errors_total", f);
      put_labels (f, 4, "node", s->node, "group", p->group, "peer", p->peer,
                  "kind", br_err_kind_name (k));
      fprintf (f, "%" PRIu64 "\n", p->errors[k]);
    }
}

int
br_metrics_format (const struct br_metrics_snap *s, char **out, size_t *len)
{
  FILE *f = open_memstream (out, len);

  if (f == NULL)
    return -ENOMEM;
  family (f, "blockrelay_node_info", "gauge",
          "The node this process serves and its role; always 1.");
  fputs ("blockrelay_node_info", f);
  put_labels (f, 2, "node", s->node, "role", s->role);
  fputs ("1\n", f);
  family (f, "blockrelay_start_time_seconds", "gauge",
          "When the engine started, in seconds since the epoch.");
  fputs ("blockrelay_start_time_seconds", f);
  put_labels (f, 1, "node", s->node);
  fprintf (f, "%.0f\n", s->start_time);

  u64_families (f, volume_fams, N (volume_fams), s->vols, s->n_vols,
                sizeof *s->vols, s->node, volume_labels);
  family (f, "blockrelay_volume_consistent", "gauge",
          "1 if this copy of the volume is consistent (a prefix of the "
          "origin's writes).");
  for (size_t i = 0; i < s->n_vols; i++) {
    fputs ("blockrelay_volume_consistent", f);
    volume_labels (f, s->node, &s->vols[i]);
    fprintf (f, "%d\n", s->vols[i].consistent);
  }
  peer_enum_families (f, s);
  u64_families (f, peer_fams, N (peer_fams), s->peers, s->n_peers,
                sizeof *s->peers, s->node, peer_labels);
  u64_families (f, dirty_fams, N (dirty_fams), s->dirty, s->n_dirty,
                sizeof *s->dirty, s->node, dirty_labels);
  u64_families (f, upstream_fams, N (upstream_fams), s->ups, s->n_ups,
                sizeof *s->ups, s->node, upstream_labels);
  if (ferror (f)) {
    fclose (f);
    free (*out);
    *out = NULL;
    return -ENOMEM;
  }
  fclose (f);
  return 0;
}

/* ---- collection (loop thread, or after the loop stopped) ---- */

void
br__peer_figures (struct br_peer *p, struct br_volume *v,
                  struct br_peer_figures *out)
{
  uint64_t gran = (uint64_t) 1 << v->gran_shift, dirty, oos = 0;

  BR_ASSERT_LOCKED (&p->g->lock);
  /* Held regions are in sync with the peer (bits.c): not dirty. */
  dirty = br_sb_count (v->sb, v->slot[p->idx]);
  dirty = (dirty > p->n_held[v->id] ? dirty - p->n_held[v->id] : 0) * gran;
  if (dirty > v->size)
    dirty = v->size;
  if (p->state == BR_PEER_SYNCING && p->oos)
    for (uint64_t w = 0; w < (v->nregions + 63) / 64; w++)
      oos += __builtin_popcountll (p->oos[v->id][w]);
  out->dirty_bytes = dirty;
  out->resync_left_bytes = oos * gran;
  /* Lag: what the peer does not have durably yet, and how old the oldest
   * of it is (the oldest queued record, or for a peer away with dirty
   * regions, how long it has been away). */
  out->lag_bytes = p->queued_bytes;
  if (p->state != BR_PEER_REPLICATING)
    out->lag_bytes += dirty;
  out->lag_seconds = 0;
  if (p->q.len > 0)
    out->lag_seconds =
      (uint32_t) (br__now_ms () - br__fifo_at (&p->q, 0)->born_ms) / 1000.0;
  else if (p->state != BR_PEER_REPLICATING && dirty > 0)
    out->lag_seconds = difftime (time (NULL), p->since);
}

static uint64_t
disk_errors (const struct br_volume *v)
{
  return v->disk ? br_disk_errors (v->disk) : 0;
}

/* One group under its lock: its peers and (volume, peer) pairs. */
static void
collect_group (struct br_group *g, struct br_metrics_snap *s)
{
  br_mutex_lock (&g->lock);
  for (size_t pi = 0; pi < g->n_peers; pi++) {
    struct br_peer *p = g->peers[pi];
    struct br_metrics_peer *m = &s->peers[s->n_peers++];

    *m = (struct br_metrics_peer) {
      .group = g->name, .peer = p->node->name,
      .mode = p->mode == BR_MODE_SYNC ? "sync" : "async",
      .state = p->state,
      .replicated_bytes = p->replicated_bytes,
      .replicated_writes = p->replicated_writes,
      .resync_replicated_bytes = p->resync_replicated_bytes,
      .resync_sent_bytes = p->resync_bytes_sent,
      .sent_bytes = p->sent_bytes,
      .queue_bytes = p->queued_bytes, .queue_records = p->q.len,
      .queue_limit_bytes = p->queue_limit,
      .acked_seq = p->applied, .durable_seq = p->durable,
    };
    memcpy (m->errors, p->errors, sizeof m->errors);
    m->resync_hashed_regions = p->resync_hashed_regions;
    m->resync_differ_regions = p->resync_differ_regions;
    br__verify_progress (p, NULL, &m->verify_regions, &m->verify_done_regions,
                         &m->verify_differ_regions, &m->verify_running);
    m->lag_bytes = p->queued_bytes;
    for (size_t vi = 0; vi < g->n_vols; vi++) {
      struct br_peer_figures fig;
      struct br_metrics_dirty *d = &s->dirty[s->n_dirty++];

      br__peer_figures (p, g->vols[vi], &fig);
      *d = (struct br_metrics_dirty) {
        .volume = g->vols[vi]->cfg->name, .group = g->name,
        .peer = p->node->name, .dirty_bytes = fig.dirty_bytes,
        .resync_remaining_bytes = fig.resync_left_bytes,
      };
      /* The group's queue once, every volume's dirty bytes. */
      m->lag_bytes += fig.lag_bytes - p->queued_bytes;
      if (fig.lag_seconds > m->lag_seconds)
        m->lag_seconds = fig.lag_seconds;
    }
  }
  br_mutex_unlock (&g->lock);
}

static void
add_upstream (void *arg, const struct br_upstream_info *u)
{
  struct br_metrics_snap *s = arg;
  struct br_metrics_upstream *m;

  m = realloc (s->ups, (s->n_ups + 1) * sizeof *s->ups);
  if (m == NULL)
    return;                     /* one session fewer in the text */
  s->ups = m;
  s->ups[s->n_ups++] = (struct br_metrics_upstream) {
    .group = u->group, .upstream = u->peer, .received_bytes = u->rx_bytes,
    .pending_bytes = u->pending_bytes, .applied_seq = u->applied,
    .durable_seq = u->durable,
  };
}

void
br__metrics_snap_free (struct br_metrics_snap *s)
{
  free (s->vols);
  free (s->dirty);
  free (s->peers);
  free (s->ups);
  memset (s, 0, sizeof *s);
}

int
br__metrics_collect (struct br_engine *e, struct br_metrics_snap *s)
{
  size_t n_peers = 0, n_pairs = 0;

  *s = (struct br_metrics_snap) {
    .node = e->self->name,
    .role = e->role == BR_ROLE_PRIMARY ? "primary" : "replica",
    .start_time = (double) e->started_at,
  };
  for (size_t gi = 0; gi < e->n_groups; gi++) {
    n_peers += e->groups[gi].n_peers;
    n_pairs += e->groups[gi].n_peers * e->groups[gi].n_vols;
  }
  s->vols = calloc (e->n_vols ? e->n_vols : 1, sizeof *s->vols);
  s->peers = calloc (n_peers ? n_peers : 1, sizeof *s->peers);
  s->dirty = calloc (n_pairs ? n_pairs : 1, sizeof *s->dirty);
  if (!s->vols || !s->peers || !s->dirty) {
    br__metrics_snap_free (s);
    return -ENOMEM;
  }
  for (size_t i = 0; i < e->n_vols; i++) {
    struct br_volume *v = &e->vols[i];

    s->vols[s->n_vols++] = (struct br_metrics_volume) {
      .name = v->cfg->name, .group = v->g ? v->g->name : v->cfg->group,
      .size = v->size,
      .consistent = v->sb && (br_sb_flags (v->sb) & BR_SB_CONSISTENT),
      .disk_errors = disk_errors (v),
    };
  }
  for (size_t gi = 0; gi < e->n_groups; gi++)
    collect_group (&e->groups[gi], s);
  br__replica_foreach (e, add_upstream, s);
  return 0;
}

int
br__metrics_text (struct br_engine *e, char **out, size_t *len)
{
  struct br_metrics_snap s;
  int r = br__metrics_collect (e, &s);

  if (r < 0)
    return r;
  r = br_metrics_format (&s, out, len);
  br__metrics_snap_free (&s);
  return r;
}
