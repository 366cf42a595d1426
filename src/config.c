/* blockrelay — the topology file loader.  See config.h for the format.
 *
 * br_config_load() reads the whole file into memory, lets libyaml compose
 * it into a document (a node graph in which every node carries its start
 * mark) and walks that graph against a fixed schema:
 *
 *   top level  settings (optional), volumes, nodes, links (optional)
 *   settings   granularity, queue-size, secret-file, heartbeat,
 *              heartbeat-timeout, reconnect-min, reconnect-max,
 *              activity-window, metrics-interval, max-connections,
 *              handshake-timeout, user
 *   volume     name, size (required); group, granularity
 *   node       name, address, data-dir (required); control, disks,
 *              metrics-file
 *   link       between, mode (required); rate, queue-size, on-peer-loss,
 *              block-timeout, resync-rate, on-congestion, resync
 *
 * Every mapping is checked for unknown keys and for duplicate keys (libyaml
 * accepts duplicates silently) and every value for its br__cfg_kind (mapping,
 * sequence or scalar).  Then the values themselves:
 *
 *   - names (volumes, groups, nodes) are 1..BR_NAME_MAX characters of
 *     [A-Za-z0-9._-], and volume and node names are unique;
 *   - sizes go through br_parse_size(); a volume size is a nonzero multiple
 *     of 512, a granularity a power of two in 4K..32M, a queue-size nonzero;
 *     rate and resync-rate may be 0 (unlimited).  The granularity's upper
 *     bound is the wire's: resync sends a dirty region in one WRITE frame,
 *     whose payload is at most BR_WIRE_MAX_PAYLOAD, so a larger region
 *     could never be resynced;
 *   - durations go through br_parse_duration() and must be nonzero,
 *     except activity-window, which may be 0 (clear as soon as durable)
 *     and is at most MAX_ACTIVITY_WINDOW_MS, and metrics-interval, which
 *     is 1s..1h; heartbeat < heartbeat-timeout
 *     (handshake-timeout is independent of both);
 *   - max-connections is an integer in 1..MAX_CONNECTIONS, user a user
 *     name (looked up only when blockrelayd drops to it);
 *     and reconnect-min <= reconnect-max, counting defaults;
 *   - enumerations (mode, on-peer-loss, on-congestion, resync) are exact lower-case
 *     words; on-congestion: pull-ahead is for async links only, whereas
 *     on-peer-loss on an async link is accepted and has no effect;
 *   - an address is host:port or [IPv6]:port with a port in 1..65535, and no
 *     two nodes share one;
 *   - disks: keys name declared volumes and values are non-empty paths;
 *   - a link joins two distinct declared nodes, at most one link per pair.
 *
 * The parsers of single values (sizes, durations, names, addresses,
 * enumerations, paths) live in config-parse.c, and reading, composing and
 * walking the YAML (mappings against a schema, sequences, scalars) in
 * config-yaml.c; this file holds the schema, the structure and the checks
 * that involve more than one value.
 *
 * Relative paths (data-dir, control, disks, secret-file, metrics-file) are
 * resolved
 * against the directory of the file, lexically and without following
 * symlinks, so the loaded config holds absolute paths only.
 *
 * The first problem stops the load.  It is reported as "PATH:LINE:COL:
 * problem" with the 1-based position of the offending key or value, or of
 * the mapping when a required key is missing.  All state lives in a struct
 * loader on the stack; a partly filled config is freed with
 * br_config_free(), which copes with NULL members.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1           /* asprintf */
#endif

#include "config.h"
#include "config-parse.h"
#include "config-yaml.h"
#include "wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <yaml.h>

#define MIN_GRANULARITY 4096
#define MAX_GRANULARITY BR_WIRE_MAX_PAYLOAD   /* a region fits in a frame */
#define SOCKET_PATH_MAX (sizeof ((struct sockaddr_un *) 0)->sun_path - 1)

#define DEFAULT_HEARTBEAT_MS 1000
#define DEFAULT_HEARTBEAT_TIMEOUT_MS 5000
#define DEFAULT_RECONNECT_MIN_MS 100
#define DEFAULT_RECONNECT_MAX_MS 5000
#define DEFAULT_BLOCK_TIMEOUT_MS 30000
#define DEFAULT_ACTIVITY_WINDOW_MS 30000
/* A window is seconds to minutes: every region written within it is
 * resynced after a crash, so an hour already means nearly everything. */
#define MAX_ACTIVITY_WINDOW_MS (60 * 60 * 1000)
#define DEFAULT_METRICS_INTERVAL_MS 15000
#define MIN_METRICS_INTERVAL_MS 1000
#define MAX_METRICS_INTERVAL_MS (60 * 60 * 1000)
#define DEFAULT_MAX_CONNECTIONS 64
#define MAX_CONNECTIONS 65536
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define USER_NAME_MAX 32



static const struct schema top_schema = {
  "the top-level mapping", { "settings", "volumes", "nodes", "links" }
};
static const struct schema settings_schema = {
  "settings", { "granularity", "queue-size", "secret-file", "heartbeat",
                "heartbeat-timeout", "reconnect-min", "reconnect-max",
                "activity-window", "metrics-interval",
                "max-connections", "handshake-timeout", "user", "tls",
                "tls-ca" }
};
static const struct schema volume_schema = {
  "volume", { "name", "size", "group", "granularity" }
};
static const struct schema node_schema = {
  "node", { "name", "address", "data-dir", "control", "disks",
            "metrics-file", "tls-cert", "tls-key" }
};
static const struct schema link_schema = {
  "link", { "between", "mode", "rate", "queue-size", "on-peer-loss",
            "block-timeout", "resync-rate", "on-congestion", "resync",
            "after-split-brain", "tls" }
};

/* The words of each enumeration, indexed by its value. */
static const char *const mode_names[] = { "sync", "async", NULL };
static const char *const loss_names[] = { "log", "block", "fail", NULL };
static const char *const congestion_names[] = {
  "block", "pull-ahead", NULL
};
static const char *const resync_names[] = { "full", "checksum", NULL };
static const char *const after_sb_names[] = {
  "discard-zero-changes", "disconnect", NULL
};
static const char *const tls_names[] = { "off", "psk", "cert", NULL };
_Static_assert ((MAX_GRANULARITY & (MAX_GRANULARITY - 1)) == 0 &&
                MAX_GRANULARITY >= (1u << 20) && MIN_GRANULARITY >= 1024,
                "granularity bounds are powers of two written in K and M");
_Static_assert (BR_MODE_SYNC == 0 && BR_MODE_ASYNC == 1, "mode_names");
_Static_assert (BR_TLS_OFF == 0 && BR_TLS_PSK == 1 && BR_TLS_CERT == 2,
                "tls_names");
_Static_assert (BR_LOSS_LOG == 0 && BR_LOSS_BLOCK == 1 && BR_LOSS_FAIL == 2,
                "loss_names");
_Static_assert (BR_CONGESTION_BLOCK == 0 && BR_CONGESTION_PULL_AHEAD == 1,
                "congestion_names");
_Static_assert (BR_AFTER_SB_DISCARD_ZERO == 0 && BR_AFTER_SB_DISCARD_NONE == 1,
                "after_sb_names");
_Static_assert (BR_RESYNC_FULL == 0 && BR_RESYNC_CHECKSUM == 1,
                "resync_names");

/* Values. */

/* Report PROBLEM (a phrase from config-parse.h) with value S of node N. */
static int
bad_value (struct loader *l, yaml_node_t *n, const char *label,
           const char *s, const char *problem)
{
  return *s ? fail (l, n, "%s '%s' %s", label, s, problem)
    : fail (l, n, "%s %s", label, problem);
}

static int
get_name (struct loader *l, yaml_node_t *n, const char *label, char **out)
{
  const char *s = br__cfg_scalar (l, n, label), *problem;

  if (!s)
    return -1;
  if ((problem = br__name_problem (s)) != NULL)
    return bad_value (l, n, label, s, problem);
  *out = br__cfg_copy (l, n, s, strlen (s));
  return *out ? 0 : -1;
}

static int
get_size (struct loader *l, yaml_node_t *n, const char *label, uint64_t *out)
{
  const char *s = br__cfg_scalar (l, n, label), *problem;

  if (!s)
    return -1;
  if ((problem = br__size_problem (s, out)) != NULL)
    return bad_value (l, n, label, s, problem);
  return 0;
}

/* A duration in milliseconds, zero included. */
static int
get_any_duration (struct loader *l, yaml_node_t *n, const char *label,
                  uint64_t *out_ms)
{
  const char *s = br__cfg_scalar (l, n, label), *problem;

  if (!s)
    return -1;
  if ((problem = br__duration_problem (s, out_ms)) != NULL)
    return bad_value (l, n, label, s, problem);
  return 0;
}

/* A nonzero duration in milliseconds. */
static int
get_duration (struct loader *l, yaml_node_t *n, const char *label,
              uint64_t *out_ms)
{
  if (get_any_duration (l, n, label, out_ms) == -1)
    return -1;
  if (*out_ms == 0)
    return fail (l, n, "%s must not be zero", label);
  return 0;
}

/* One of the words of NAMES, stored as its index. */
static int
get_enum (struct loader *l, yaml_node_t *n, const char *label,
          const char *const names[], int *out)
{
  const char *s = br__cfg_scalar (l, n, label);
  char list[128];

  if (!s)
    return -1;
  if ((*out = br__enum_value (s, names)) == -1) {
    br__enum_list (names, list, sizeof list);
    return fail (l, n, "%s '%s' is not %s", label, s, list);
  }
  return 0;
}

static int
get_granularity (struct loader *l, yaml_node_t *n, const char *label,
                 uint32_t *out)
{
  uint64_t v;

  if (get_size (l, n, label, &v) == -1)
    return -1;
  if (v < MIN_GRANULARITY)
    return fail (l, n, "%s '%s' is outside %uK..%uM", label, TEXT (n),
                 MIN_GRANULARITY >> 10, MAX_GRANULARITY >> 20);
  if (v > MAX_GRANULARITY)
    return fail (l, n, "%s '%s' is outside %uK..%uM: a dirty region is "
                 "resynced in one frame, and a frame carries at most %uM",
                 label, TEXT (n), MIN_GRANULARITY >> 10,
                 MAX_GRANULARITY >> 20, MAX_GRANULARITY >> 20);
  if (v & (v - 1))
    return fail (l, n, "%s '%s' is not a power of two", label, TEXT (n));
  *out = v;
  return 0;
}

static int
get_queue_size (struct loader *l, yaml_node_t *n, const char *label,
                uint64_t *out)
{
  if (get_size (l, n, label, out) == -1)
    return -1;
  if (*out == 0)
    return fail (l, n, "%s must not be zero", label);
  return 0;
}

static int
get_path (struct loader *l, yaml_node_t *n, const char *label, char **out)
{
  const char *s = br__cfg_scalar (l, n, label);

  if (!s)
    return -1;
  if (*s == '\0')
    return fail (l, n, "%s is empty", label);
  if (!(*out = br__absolute_path (l->dir, s)))
    return fail (l, n, "out of memory");
  return 0;
}

/* host:port, or [IPv6]:port. */
static int
get_address (struct loader *l, yaml_node_t *n, struct br_node_cfg *node)
{
  const char *s = br__cfg_scalar (l, n, "node address");
  struct br__address addr;
  char why[256];

  if (!s)
    return -1;
  if (br__address_problem (s, &addr, why, sizeof why))
    return fail (l, n, "node address '%s'%s", s, why);
  if (asprintf (&node->port, "%u", addr.port) == -1) {
    node->port = NULL;
    return fail (l, n, "out of memory");
  }
  node->host = br__cfg_copy (l, n, addr.host, addr.host_len);
  return node->host ? 0 : -1;
}

/* How many connections a listener holds at once: 1 .. MAX_CONNECTIONS. */
static int
get_max_connections (struct loader *l, yaml_node_t *n, uint32_t *out)
{
  const char *label = "settings max-connections";
  const char *s = br__cfg_scalar (l, n, label);
  unsigned long long v;
  char *end;

  if (!s)
    return -1;
  if (*s == '\0')
    return fail (l, n, "%s is empty", label);
  errno = 0;
  v = strtoull (s, &end, 10);
  if (*s < '0' || *s > '9' || *end != '\0' || errno == ERANGE ||
      v < 1 || v > MAX_CONNECTIONS)
    return fail (l, n, "%s '%s' is not an integer in 1..%u", label, s,
                 MAX_CONNECTIONS);
  *out = (uint32_t) v;
  return 0;
}

/* A user name as useradd takes it: [A-Za-z0-9._-], not starting with '-',
 * at most USER_NAME_MAX characters.  Whether it exists is checked by
 * blockrelayd when it drops to it (the file is the same on every host). */
static int
get_user (struct loader *l, yaml_node_t *n, char **out)
{
  const char *label = "settings user";
  const char *s = br__cfg_scalar (l, n, label);
  size_t len;

  if (!s)
    return -1;
  len = strlen (s);
  if (len == 0)
    return fail (l, n, "%s is empty", label);
  if (len > USER_NAME_MAX || s[0] == '-' ||
      strspn (s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
              "0123456789._-") != len)
    return fail (l, n, "%s '%s' is not a user name (1..%d of A-Z a-z 0-9 "
                 ". _ -, not starting with -)", label, s, USER_NAME_MAX);
  *out = br__cfg_copy (l, n, s, len);
  return *out ? 0 : -1;
}

/* Sections. */

/* The text of settings key KEY for a message: "'5s'" as written, or
 * "5s (the default)". */
static const char *
setting_text (const struct fields *f, const char *key, uint64_t ms,
              char *buf, size_t len)
{
  yaml_node_t *v = br__cfg_field (f, key);
  char d[32];

  if (v)
    snprintf (buf, len, "'%s'", TEXT (v));
  else {
    br__format_duration (ms, d, sizeof d);
    snprintf (buf, len, "%s (the default)", d);
  }
  return buf;
}

/* Settings LOW and HIGH break "HIGH must be RELATION LOW".  Blame HIGH
 * where it is written, else LOW (HIGH is then its default). */
static int
misordered (struct loader *l, const struct fields *f,
            const char *low, uint64_t low_ms,
            const char *high, uint64_t high_ms, const char *relation)
{
  char low_text[96], high_text[96];
  yaml_node_t *v = br__cfg_field (f, high) ? br__cfg_field (f, high)
                                           : br__cfg_field (f, low);

  return fail (l, v, "settings %s %s must be %s %s %s", high,
               setting_text (f, high, high_ms, high_text, sizeof high_text),
               relation, low,
               setting_text (f, low, low_ms, low_text, sizeof low_text));
}

/* How long a region's bit stays set after its last write (bits.c, C4);
 * 0 clears it as soon as the peer has it durably. */
static int
get_activity_window (struct loader *l, yaml_node_t *n, uint64_t *out_ms)
{
  const char *label = "settings activity-window";
  char max[32];

  if (get_any_duration (l, n, label, out_ms) == -1)
    return -1;
  if (*out_ms > MAX_ACTIVITY_WINDOW_MS) {
    br__format_duration (MAX_ACTIVITY_WINDOW_MS, max, sizeof max);
    return fail (l, n, "%s '%s' is longer than %s: every region written "
                 "within the window is resynced after a crash", label,
                 TEXT (n), max);
  }
  return 0;
}

/* How often a node's metrics-file is rewritten: 1s .. 1h. */
static int
get_metrics_interval (struct loader *l, yaml_node_t *n, uint64_t *out_ms)
{
  const char *label = "settings metrics-interval";
  char lo[32], hi[32];

  if (get_any_duration (l, n, label, out_ms) == -1)
    return -1;
  if (*out_ms < MIN_METRICS_INTERVAL_MS || *out_ms > MAX_METRICS_INTERVAL_MS) {
    br__format_duration (MIN_METRICS_INTERVAL_MS, lo, sizeof lo);
    br__format_duration (MAX_METRICS_INTERVAL_MS, hi, sizeof hi);
    return fail (l, n, "%s '%s' is outside %s..%s", label, TEXT (n), lo, hi);
  }
  return 0;
}

static int
load_settings (struct loader *l, yaml_node_t *n)
{
  struct br_config *cfg = l->cfg;
  struct fields f;
  yaml_node_t *v;

  if (!n || br__cfg_is_null (n))
    return 0;
  if (br__cfg_get_fields (l, n, &settings_schema, &f) == -1)
    return -1;
  if ((v = br__cfg_field (&f, "granularity")) &&
      get_granularity (l, v, "settings granularity", &cfg->granularity) == -1)
    return -1;
  if ((v = br__cfg_field (&f, "queue-size")) &&
      get_queue_size (l, v, "settings queue-size", &cfg->queue_size) == -1)
    return -1;
  if ((v = br__cfg_field (&f, "secret-file")) &&
      get_path (l, v, "settings secret-file", &cfg->secret_file) == -1)
    return -1;
  if ((v = br__cfg_field (&f, "tls"))) {
    int e;

    if (get_enum (l, v, "settings tls", tls_names, &e) == -1)
      return -1;
    cfg->tls = e;
  }
  if ((v = br__cfg_field (&f, "tls-ca")) &&
      get_path (l, v, "settings tls-ca", &cfg->tls_ca) == -1)
    return -1;
  if (((v = br__cfg_field (&f, "heartbeat")) &&
       get_duration (l, v, "settings heartbeat", &cfg->heartbeat_ms) == -1) ||
      ((v = br__cfg_field (&f, "heartbeat-timeout")) &&
       get_duration (l, v, "settings heartbeat-timeout",
                     &cfg->heartbeat_timeout_ms) == -1) ||
      ((v = br__cfg_field (&f, "reconnect-min")) &&
       get_duration (l, v, "settings reconnect-min",
                     &cfg->reconnect_min_ms) == -1) ||
      ((v = br__cfg_field (&f, "reconnect-max")) &&
       get_duration (l, v, "settings reconnect-max",
                     &cfg->reconnect_max_ms) == -1) ||
      ((v = br__cfg_field (&f, "activity-window")) &&
       get_activity_window (l, v, &cfg->activity_window_ms) == -1) ||
      ((v = br__cfg_field (&f, "metrics-interval")) &&
       get_metrics_interval (l, v, &cfg->metrics_interval_ms) == -1) ||
      ((v = br__cfg_field (&f, "handshake-timeout")) &&
       get_duration (l, v, "settings handshake-timeout",
                     &cfg->handshake_timeout_ms) == -1) ||
      ((v = br__cfg_field (&f, "max-connections")) &&
       get_max_connections (l, v, &cfg->max_connections) == -1) ||
      ((v = br__cfg_field (&f, "user")) && get_user (l, v, &cfg->user) == -1))
    return -1;
  if (cfg->heartbeat_timeout_ms <= cfg->heartbeat_ms)
    return misordered (l, &f, "heartbeat", cfg->heartbeat_ms,
                       "heartbeat-timeout", cfg->heartbeat_timeout_ms,
                       "greater than");
  if (cfg->reconnect_max_ms < cfg->reconnect_min_ms)
    return misordered (l, &f, "reconnect-min", cfg->reconnect_min_ms,
                       "reconnect-max", cfg->reconnect_max_ms,
                       "at least");
  return 0;
}

static int
load_volume (struct loader *l, yaml_node_t *n, struct br_volume_cfg *vol)
{
  const struct br_volume_cfg *other;
  struct fields f;
  yaml_node_t *v;

  if (br__cfg_get_fields (l, n, &volume_schema, &f) == -1)
    return -1;
  vol->line = LINE (n);
  vol->column = COL (n);
  if (!(v = br__cfg_require (l, &f, "name")) ||
      get_name (l, v, "volume name", &vol->name) == -1)
    return -1;
  for (other = l->cfg->volumes; other < vol; other++)
    if (strcmp (other->name, vol->name) == 0)
      return fail (l, v, "duplicate volume name '%s' (first at %d:%d)",
                   vol->name, other->line, other->column);
  if (!(v = br__cfg_require (l, &f, "size")) ||
      get_size (l, v, "volume size", &vol->size) == -1)
    return -1;
  if (vol->size == 0)
    return fail (l, v, "volume size must not be zero");
  if (vol->size % 512 != 0)
    return fail (l, v, "volume size '%s' is not a multiple of 512", TEXT (v));
  if (vol->size > INT64_MAX)
    return fail (l, v, "volume size '%s' is too large", TEXT (v));
  v = br__cfg_field (&f, "group");
  if (v ? get_name (l, v, "volume group", &vol->group) == -1
      : !(vol->group = br__cfg_copy (l, n, vol->name, BR_NAME_MAX)))
    return -1;
  vol->granularity = l->cfg->granularity;
  if ((v = br__cfg_field (&f, "granularity")) &&
      get_granularity (l, v, "volume granularity", &vol->granularity) == -1)
    return -1;
  return 0;
}

static int
load_disks (struct loader *l, yaml_node_t *n, struct br_node_cfg *node)
{
  yaml_node_pair_t *p, *q;
  char label[BR_NAME_MAX + 32];

  if (br__cfg_is_null (n))
    return 0;
  if (n->type != YAML_MAPPING_NODE)
    return fail (l, n, "node disks must be a mapping of volume to path, "
                 "not %s", br__cfg_kind (n));
  node->disks = calloc (n->data.mapping.pairs.top -
                        n->data.mapping.pairs.start, sizeof *node->disks);
  if (!node->disks)
    return fail (l, n, "out of memory");
  for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    struct br_disk_cfg *disk = &node->disks[node->n_disks++];
    yaml_node_t *k = br__cfg_node_at (l, p->key);
    yaml_node_t *v = br__cfg_node_at (l, p->value);
    const char *vol = br__cfg_scalar (l, k, "a key in disks");

    if (!vol)
      return -1;
    for (q = n->data.mapping.pairs.start; q < p; q++)
      if (strcmp (TEXT (br__cfg_node_at (l, q->key)), vol) == 0)
        return fail (l, k, "duplicate key '%s' in disks (first at %zu:%zu)",
                     vol, LINE (br__cfg_node_at (l, q->key)),
                     COL (br__cfg_node_at (l, q->key)));
    if (!br_config_volume (l->cfg, vol))
      return fail (l, k, "disks names unknown volume '%s'", vol);
    snprintf (label, sizeof label, "disk of volume '%s'", vol);
    if (!(disk->volume = br__cfg_copy (l, k, vol, BR_NAME_MAX)) ||
        get_path (l, v, label, &disk->path) == -1)
      return -1;
  }
  return 0;
}

static int
load_node (struct loader *l, yaml_node_t *n, struct br_node_cfg *node)
{
  const struct br_node_cfg *other;
  struct fields f;
  yaml_node_t *v;

  if (br__cfg_get_fields (l, n, &node_schema, &f) == -1)
    return -1;
  node->line = LINE (n);
  node->column = COL (n);
  if (!(v = br__cfg_require (l, &f, "name")) ||
      get_name (l, v, "node name", &node->name) == -1)
    return -1;
  for (other = l->cfg->nodes; other < node; other++)
    if (strcmp (other->name, node->name) == 0)
      return fail (l, v, "duplicate node name '%s' (first at %d:%d)",
                   node->name, other->line, other->column);
  if (!(v = br__cfg_require (l, &f, "address")) ||
      get_address (l, v, node) == -1)
    return -1;
  for (other = l->cfg->nodes; other < node; other++)
    if (strcmp (other->host, node->host) == 0 &&
        strcmp (other->port, node->port) == 0)
      return fail (l, v, "node address '%s' is already used by node '%s'",
                   TEXT (v), other->name);
  if (!(v = br__cfg_require (l, &f, "data-dir")) ||
      get_path (l, v, "node data-dir", &node->data_dir) == -1)
    return -1;
  if (br__cfg_field (&f, "control")) {
    v = br__cfg_field (&f, "control");
    if (get_path (l, v, "node control", &node->control) == -1)
      return -1;
  }
  else if (asprintf (&node->control, "%s/control.sock",
                     node->data_dir) == -1) {
    node->control = NULL;       /* v is still the data-dir */
    return fail (l, v, "out of memory");
  }
  if (strlen (node->control) > SOCKET_PATH_MAX)
    return fail (l, v, "control socket path '%s' is longer than %zu bytes",
                 node->control, SOCKET_PATH_MAX);
  if ((v = br__cfg_field (&f, "disks")) && load_disks (l, v, node) == -1)
    return -1;
  if ((v = br__cfg_field (&f, "metrics-file")) &&
      get_path (l, v, "node metrics-file", &node->metrics_file) == -1)
    return -1;
  if (((v = br__cfg_field (&f, "tls-cert")) &&
       get_path (l, v, "node tls-cert", &node->tls_cert) == -1) ||
      ((v = br__cfg_field (&f, "tls-key")) &&
       get_path (l, v, "node tls-key", &node->tls_key) == -1))
    return -1;
  if (!node->tls_cert != !node->tls_key)
    return fail (l, n, "node '%s' has %s but no %s", node->name,
                 node->tls_cert ? "tls-cert" : "tls-key",
                 node->tls_cert ? "tls-key" : "tls-cert");
  return 0;
}

/* A link's tls: what each mode needs must be in the file (the files
 * themselves are read when a node starts: tls.c). */
static int
check_link_tls (struct loader *l, yaml_node_t *at, struct br_link_cfg *link)
{
  const char *ends[2] = { link->a, link->b };

  if (link->tls == BR_TLS_PSK && !l->cfg->secret_file)
    return fail (l, at, "link tls 'psk' between '%s' and '%s' needs "
                 "settings secret-file (the key is derived from it)",
                 link->a, link->b);
  if (link->tls != BR_TLS_CERT)
    return 0;
  if (!l->cfg->tls_ca)
    return fail (l, at, "link tls 'cert' between '%s' and '%s' needs "
                 "settings tls-ca", link->a, link->b);
  for (int i = 0; i < 2; i++)
    if (!br_config_node (l->cfg, ends[i])->tls_cert)
      return fail (l, at, "link tls 'cert' between '%s' and '%s' needs "
                   "tls-cert and tls-key on node '%s'", link->a, link->b,
                   ends[i]);
  return 0;
}

static int
get_link_end (struct loader *l, yaml_node_t *n, char **out)
{
  const char *s = br__cfg_scalar (l, n, "a node in link between");

  if (!s)
    return -1;
  if (!br_config_node (l->cfg, s))
    return fail (l, n, "link names unknown node '%s'", s);
  *out = br__cfg_copy (l, n, s, BR_NAME_MAX);
  return *out ? 0 : -1;
}

static int
load_link (struct loader *l, yaml_node_t *n, struct br_link_cfg *link)
{
  const struct br_link_cfg *other;
  yaml_node_item_t *ends;
  struct fields f;
  yaml_node_t *v;
  size_t count;
  int e;

  if (br__cfg_get_fields (l, n, &link_schema, &f) == -1)
    return -1;
  link->line = LINE (n);
  link->column = COL (n);
  if (!(v = br__cfg_require (l, &f, "between")) ||
      br__cfg_get_items (l, v, "link between", false, &ends, &count) == -1)
    return -1;
  if (count != 2)
    return fail (l, v, "link between must name exactly two nodes, not %zu",
                 count);
  if (get_link_end (l, br__cfg_node_at (l, ends[0]), &link->a) == -1 ||
      get_link_end (l, br__cfg_node_at (l, ends[1]), &link->b) == -1)
    return -1;
  if (strcmp (link->a, link->b) == 0)
    return fail (l, v, "link from node '%s' to itself", link->a);
  for (other = l->cfg->links; other < link; other++)
    if ((strcmp (other->a, link->a) == 0 && strcmp (other->b, link->b) == 0) ||
        (strcmp (other->a, link->b) == 0 && strcmp (other->b, link->a) == 0))
      return fail (l, v, "duplicate link between '%s' and '%s' "
                   "(first at %d:%d)", link->a, link->b,
                   other->line, other->column);
  if (!(v = br__cfg_require (l, &f, "mode")) ||
      get_enum (l, v, "link mode", mode_names, &e) == -1)
    return -1;
  link->mode = e;
  if ((v = br__cfg_field (&f, "rate")) &&
      get_size (l, v, "link rate", &link->rate) == -1)
    return -1;
  link->queue_size = l->cfg->queue_size;
  if ((v = br__cfg_field (&f, "queue-size")) &&
      get_queue_size (l, v, "link queue-size", &link->queue_size) == -1)
    return -1;
  link->on_peer_loss = BR_LOSS_LOG;
  if ((v = br__cfg_field (&f, "on-peer-loss"))) {
    if (get_enum (l, v, "link on-peer-loss", loss_names, &e) == -1)
      return -1;
    link->on_peer_loss = e;
  }
  link->block_timeout_ms = DEFAULT_BLOCK_TIMEOUT_MS;
  if ((v = br__cfg_field (&f, "block-timeout")) &&
      get_duration (l, v, "link block-timeout",
                    &link->block_timeout_ms) == -1)
    return -1;
  if ((v = br__cfg_field (&f, "resync-rate")) &&
      get_size (l, v, "link resync-rate", &link->resync_rate) == -1)
    return -1;
  link->on_congestion = BR_CONGESTION_BLOCK;
  if ((v = br__cfg_field (&f, "on-congestion"))) {
    if (get_enum (l, v, "link on-congestion", congestion_names, &e) == -1)
      return -1;
    link->on_congestion = e;
    link->on_congestion_set = 1;
    if (link->on_congestion == BR_CONGESTION_PULL_AHEAD &&
        link->mode != BR_MODE_ASYNC)
      return fail (l, br__cfg_field_key (&f, "on-congestion"),
                   "link on-congestion 'pull-ahead' is for async links "
                   "only, and this link is sync");
  }
  link->resync = BR_RESYNC_FULL;
  if ((v = br__cfg_field (&f, "resync"))) {
    if (get_enum (l, v, "link resync", resync_names, &e) == -1)
      return -1;
    link->resync = e;
  }
  link->after_sb = BR_AFTER_SB_DISCARD_ZERO;
  if ((v = br__cfg_field (&f, "after-split-brain"))) {
    if (get_enum (l, v, "link after-split-brain", after_sb_names, &e) == -1)
      return -1;
    link->after_sb = e;
  }
  link->tls = l->cfg->tls;
  if ((v = br__cfg_field (&f, "tls"))) {
    if (get_enum (l, v, "link tls", tls_names, &e) == -1)
      return -1;
    link->tls = e;
  }
  return check_link_tls (l, v ? v : n, link);
}

static int
load_top (struct loader *l, yaml_node_t *root)
{
  struct br_config *cfg = l->cfg;
  yaml_node_item_t *items;
  struct fields f;
  yaml_node_t *v;
  size_t i, count;

  if (root->type != YAML_MAPPING_NODE)
    return fail (l, root, "the file must hold a mapping of settings, volumes, "
                 "nodes and links, not %s", br__cfg_kind (root));
  if (br__cfg_get_fields (l, root, &top_schema, &f) == -1 ||
      load_settings (l, br__cfg_field (&f, "settings")) == -1)
    return -1;

  if (!(v = br__cfg_require (l, &f, "volumes")) ||
      br__cfg_get_items (l, v, "volumes", false, &items, &count) == -1)
    return -1;
  if (!(cfg->volumes = calloc (count, sizeof *cfg->volumes)))
    return fail (l, v, "out of memory");
  cfg->n_volumes = count;
  for (i = 0; i < count; i++)
    if (load_volume (l, br__cfg_node_at (l, items[i]), &cfg->volumes[i]) == -1)
      return -1;

  if (!(v = br__cfg_require (l, &f, "nodes")) ||
      br__cfg_get_items (l, v, "nodes", false, &items, &count) == -1)
    return -1;
  if (!(cfg->nodes = calloc (count, sizeof *cfg->nodes)))
    return fail (l, v, "out of memory");
  cfg->n_nodes = count;
  for (i = 0; i < count; i++)
    if (load_node (l, br__cfg_node_at (l, items[i]), &cfg->nodes[i]) == -1)
      return -1;

  v = br__cfg_field (&f, "links");
  if (br__cfg_get_items (l, v, "links", true, &items, &count) == -1)
    return -1;
  if (count > 0 && !(cfg->links = calloc (count, sizeof *cfg->links)))
    return fail (l, v, "out of memory");
  cfg->n_links = count;
  for (i = 0; i < count; i++)
    if (load_link (l, br__cfg_node_at (l, items[i]), &cfg->links[i]) == -1)
      return -1;
  return 0;
}

int
br_config_load (const char *path, struct br_config **out,
                char *err, size_t errlen)
{
  struct loader l = { .path = path, .err = err, .errlen = errlen };
  char *buf = NULL;
  size_t len;
  int r = -1;

  *out = NULL;
  if (errlen > 0)
    err[0] = '\0';
  if (br__cfg_read_file (&l, &buf, &len) == 0)
    r = br_config_load_buffer (path, buf, len, out, err, errlen);
  free (buf);
  return r;
}

int
br_config_load_buffer (const char *path, const char *buf, size_t len,
                       struct br_config **out, char *err, size_t errlen)
{
  struct loader l = { .path = path, .err = err, .errlen = errlen };
  int r = -1;

  *out = NULL;
  if (errlen > 0)
    err[0] = '\0';
  if (!(l.cfg = calloc (1, sizeof *l.cfg)) ||
      !(l.cfg->path = strdup (path)) || !(l.dir = br__config_dir (path)))
    br__cfg_report (&l, NULL, "cannot resolve the file's directory: %s",
                    strerror (errno));
  else if (br__cfg_compose (&l, buf, len) == 0) {
    l.cfg->granularity = BR_DEFAULT_GRANULARITY;
    l.cfg->queue_size = BR_DEFAULT_QUEUE_SIZE;
    l.cfg->heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    l.cfg->heartbeat_timeout_ms = DEFAULT_HEARTBEAT_TIMEOUT_MS;
    l.cfg->reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
    l.cfg->reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
    l.cfg->activity_window_ms = DEFAULT_ACTIVITY_WINDOW_MS;
    l.cfg->metrics_interval_ms = DEFAULT_METRICS_INTERVAL_MS;
    l.cfg->max_connections = DEFAULT_MAX_CONNECTIONS;
    l.cfg->handshake_timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS;
    r = load_top (&l, yaml_document_get_root_node (&l.doc));
    yaml_document_delete (&l.doc);
    if (r == 0 && br_topology_check (l.cfg, err, errlen) < 0)
      r = -1;
  }
  free (l.dir);
  if (r == -1)
    br_config_free (l.cfg);
  else
    *out = l.cfg;
  return r;
}

void
br_config_free (struct br_config *cfg)
{
  size_t i, j;

  if (!cfg)
    return;
  for (i = 0; i < cfg->n_volumes; i++) {
    free (cfg->volumes[i].name);
    free (cfg->volumes[i].group);
  }
  for (i = 0; i < cfg->n_nodes; i++) {
    struct br_node_cfg *n = &cfg->nodes[i];
    free (n->name);
    free (n->host);
    free (n->port);
    free (n->data_dir);
    free (n->control);
    free (n->metrics_file);
    free (n->tls_cert);
    free (n->tls_key);
    for (j = 0; j < n->n_disks; j++) {
      free (n->disks[j].volume);
      free (n->disks[j].path);
    }
    free (n->disks);
  }
  for (i = 0; i < cfg->n_links; i++) {
    free (cfg->links[i].a);
    free (cfg->links[i].b);
  }
  free (cfg->volumes);
  free (cfg->nodes);
  free (cfg->links);
  free (cfg->secret_file);
  free (cfg->tls_ca);
  free (cfg->user);
  free (cfg->path);
  free (cfg);
}

/* Lookups.  Entries with a NULL name are still being loaded. */

const struct br_node_cfg *
br_config_node (const struct br_config *cfg, const char *name)
{
  size_t i;

  for (i = 0; i < cfg->n_nodes; i++)
    if (cfg->nodes[i].name && strcmp (cfg->nodes[i].name, name) == 0)
      return &cfg->nodes[i];
  return NULL;
}

const struct br_volume_cfg *
br_config_volume (const struct br_config *cfg, const char *name)
{
  size_t i;

  for (i = 0; i < cfg->n_volumes; i++)
    if (cfg->volumes[i].name && strcmp (cfg->volumes[i].name, name) == 0)
      return &cfg->volumes[i];
  return NULL;
}

const struct br_link_cfg *
br_config_link (const struct br_config *cfg, const char *a, const char *b)
{
  size_t i;

  for (i = 0; i < cfg->n_links; i++) {
    const struct br_link_cfg *k = &cfg->links[i];
    if ((strcmp (k->a, a) == 0 && strcmp (k->b, b) == 0) ||
        (strcmp (k->a, b) == 0 && strcmp (k->b, a) == 0))
      return k;
  }
  return NULL;
}

int
br_config_disk_path (const struct br_config *cfg,
                     const struct br_node_cfg *node, const char *volume,
                     char *buf, size_t len)
{
  size_t i;
  int n;

  for (i = 0; i < node->n_disks; i++)
    if (strcmp (node->disks[i].volume, volume) == 0)
      break;
  if (i < node->n_disks)
    n = snprintf (buf, len, "%s", node->disks[i].path);
  else
    n = snprintf (buf, len, "%s/%s.img", node->data_dir, volume);
  return n < 0 || (size_t) n >= len ? -1 : 0;
}
