/* blockrelay — unit tests for the topology loader (src/config.c).
 *
 * Each test writes its YAML into a fresh temporary directory (the checked
 * fixture runs in the forked child) and loads it.  Error tests assert that
 * the message starts with "PATH:LINE:COL: " at the offending key or value
 * and contains a phrase that says what is wrong.  The error classes that
 * come in several variants (bad sizes, bad names, bad addresses, ...) are
 * table-driven loop tests, one table row per behaviour.
 *
 * The outage and congestion keys (heartbeat, reconnect-*, on-peer-loss,
 * block-timeout, resync-rate, on-congestion) have their own good-file,
 * default and error tests, and br_parse_duration() its own tables.
 *
 * The last test loads every example, each .yaml file in $SRCDIR/config.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1           /* nftw */
#endif

#include <check.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-tmpdir.h"
#include "config.h"
#include "wire.h"

static char dir[64];            /* the temporary directory */
static char path[128];          /* dir/t.yaml, the file under test */

static void
setup (void)
{
  br_check_mkdtemp (dir, sizeof dir, "test-config");
  snprintf (path, sizeof path, "%s/t.yaml", dir);
}

static void
teardown (void)
{
  br_check_rmtree (dir);
}

static void
write_file (const char *p, const char *text)
{
  FILE *fp = fopen (p, "w");

  ck_assert_ptr_nonnull (fp);
  ck_assert_int_eq (fputs (text, fp) >= 0, 1);
  ck_assert_int_eq (fclose (fp), 0);
}

/* Load TEXT from PATH; NULL and the message in ERR on failure. */
static struct br_config *
load (const char *text, char *err, size_t len)
{
  struct br_config *cfg = (void *) 1;

  write_file (path, text);
  if (br_config_load (path, &cfg, err, len) == -1) {
    ck_assert_ptr_null (cfg);
    return NULL;
  }
  ck_assert_ptr_nonnull (cfg);
  return cfg;
}

static struct br_config *
load_ok (const char *text)
{
  char err[1024];
  struct br_config *cfg = load (text, err, sizeof err);

  ck_assert_msg (cfg != NULL, "load failed: %s", err);
  return cfg;
}

/* Loading TEXT must fail at POS ("line:col") with PHRASE in the message. */
#define ck_assert_load_error(text, pos, phrase)                         \
  do {                                                                  \
    char err_[1024], want_[PATH_MAX + 32];                              \
    struct br_config *cfg_ = load ((text), err_, sizeof err_);          \
    ck_assert_msg (cfg_ == NULL, "loaded, expected '%s'", (phrase));    \
    snprintf (want_, sizeof want_, "%s:%s: ", path, (pos));             \
    ck_assert_msg (strncmp (err_, want_, strlen (want_)) == 0,          \
                   "error '%s' is not at %s", err_, (pos));             \
    ck_assert_msg (strstr (err_, (phrase)) != NULL,                     \
                   "error '%s' lacks '%s'", err_, (phrase));            \
  } while (0)

struct bad {
  const char *text, *pos, *phrase;
};

/* The base topology: lines 1-2 volumes, 3-5 nodes, links from line 6. */
#define VOLUMES                                         \
  "volumes:\n"                                          \
  "  - {name: vol0, size: 1G}\n"
#define NODES                                           \
  "nodes:\n"                                            \
  "  - {name: a, address: 127.0.0.1:10901, data-dir: a}\n"  \
  "  - {name: b, address: 127.0.0.1:10902, data-dir: b}\n"
#define BASE VOLUMES NODES

/* Good files. */

START_TEST (test_good_file)
{
  char want[PATH_MAX + 64];
  struct br_config *cfg = load_ok (
    "settings:\n"
    "  granularity: 128K\n"
    "  queue-size: 32M\n"
    "  secret-file: keys/br.key\n"
    "volumes:\n"
    "  - {name: vol0, size: 1G, group: db, granularity: 4K}\n"
    "  - name: wal0\n"
    "    size: 256MiB\n"
    "    group: db\n"
    "nodes:\n"
    "  - name: site-a\n"
    "    address: 127.0.0.1:10901\n"
    "    data-dir: data/site-a\n"
    "    control: run/a.sock\n"
    "    disks: {vol0: /dev/loop3, wal0: disks/wal0.img}\n"
    "  - {name: site-b, address: '[::1]:10902', data-dir: /srv/b}\n"
    "  - {name: site-c, address: 'c.example:10903', data-dir: ./c/}\n"
    "links:\n"
    "  - {between: [site-a, site-b], mode: sync}\n"
    "  - {between: [site-b, site-c], mode: async, rate: 50M,"
    " queue-size: 1G}\n");
  const struct br_volume_cfg *v;
  const struct br_node_cfg *n;
  const struct br_link_cfg *k;

  ck_assert_str_eq (cfg->path, path);
  ck_assert_uint_eq (cfg->granularity, 128 * 1024);
  ck_assert_uint_eq (cfg->queue_size, 32 << 20);
  snprintf (want, sizeof want, "%s/keys/br.key", dir);
  ck_assert_str_eq (cfg->secret_file, want);

  ck_assert_uint_eq (cfg->n_volumes, 2);
  v = &cfg->volumes[0];
  ck_assert_str_eq (v->name, "vol0");
  ck_assert_uint_eq (v->size, UINT64_C (1) << 30);
  ck_assert_str_eq (v->group, "db");
  ck_assert_uint_eq (v->granularity, 4096);
  ck_assert_int_eq (v->line, 6);
  ck_assert_int_eq (v->column, 5);
  v = &cfg->volumes[1];
  ck_assert_str_eq (v->name, "wal0");
  ck_assert_uint_eq (v->size, 256 << 20);
  ck_assert_str_eq (v->group, "db");
  ck_assert_uint_eq (v->granularity, 128 * 1024);     /* settings */
  ck_assert_int_eq (v->line, 7);
  ck_assert_int_eq (v->column, 5);

  ck_assert_uint_eq (cfg->n_nodes, 3);
  n = &cfg->nodes[0];
  ck_assert_str_eq (n->name, "site-a");
  ck_assert_str_eq (n->host, "127.0.0.1");
  ck_assert_str_eq (n->port, "10901");
  snprintf (want, sizeof want, "%s/data/site-a", dir);
  ck_assert_str_eq (n->data_dir, want);
  snprintf (want, sizeof want, "%s/run/a.sock", dir);
  ck_assert_str_eq (n->control, want);
  ck_assert_uint_eq (n->n_disks, 2);
  ck_assert_str_eq (n->disks[0].volume, "vol0");
  ck_assert_str_eq (n->disks[0].path, "/dev/loop3");
  ck_assert_str_eq (n->disks[1].volume, "wal0");
  snprintf (want, sizeof want, "%s/disks/wal0.img", dir);
  ck_assert_str_eq (n->disks[1].path, want);
  ck_assert_int_eq (n->line, 11);
  ck_assert_int_eq (n->column, 5);
  n = &cfg->nodes[1];
  ck_assert_str_eq (n->host, "::1");
  ck_assert_str_eq (n->port, "10902");
  ck_assert_str_eq (n->data_dir, "/srv/b");
  ck_assert_str_eq (n->control, "/srv/b/control.sock");
  ck_assert_uint_eq (n->n_disks, 0);
  n = &cfg->nodes[2];
  ck_assert_str_eq (n->host, "c.example");
  snprintf (want, sizeof want, "%s/c", dir);               /* tidied */
  ck_assert_str_eq (n->data_dir, want);

  ck_assert_uint_eq (cfg->n_links, 2);
  k = &cfg->links[0];
  ck_assert_str_eq (k->a, "site-a");
  ck_assert_str_eq (k->b, "site-b");
  ck_assert_int_eq (k->mode, BR_MODE_SYNC);
  ck_assert_uint_eq (k->rate, 0);
  ck_assert_uint_eq (k->queue_size, 32 << 20);             /* settings */
  ck_assert_int_eq (k->line, 19);
  ck_assert_int_eq (k->column, 5);
  k = &cfg->links[1];
  ck_assert_int_eq (k->mode, BR_MODE_ASYNC);
  ck_assert_uint_eq (k->rate, 50 << 20);
  ck_assert_uint_eq (k->queue_size, UINT64_C (1) << 30);
  br_config_free (cfg);
}
END_TEST

START_TEST (test_defaults)
{
  struct br_config *cfg = load_ok (BASE "links:\n"
                                   "  - {between: [a, b], mode: async}\n");
  char want[PATH_MAX + 64];

  ck_assert_uint_eq (cfg->granularity, BR_DEFAULT_GRANULARITY);
  ck_assert_uint_eq (cfg->queue_size, BR_DEFAULT_QUEUE_SIZE);
  ck_assert_ptr_null (cfg->secret_file);
  ck_assert_str_eq (cfg->volumes[0].group, "vol0");
  ck_assert_uint_eq (cfg->volumes[0].granularity, BR_DEFAULT_GRANULARITY);
  snprintf (want, sizeof want, "%s/a/control.sock", dir);
  ck_assert_str_eq (cfg->nodes[0].control, want);
  ck_assert_uint_eq (cfg->links[0].rate, 0);
  ck_assert_uint_eq (cfg->links[0].queue_size, BR_DEFAULT_QUEUE_SIZE);
  ck_assert_uint_eq (cfg->heartbeat_ms, 1000);
  ck_assert_uint_eq (cfg->heartbeat_timeout_ms, 5000);
  ck_assert_uint_eq (cfg->reconnect_min_ms, 100);
  ck_assert_uint_eq (cfg->reconnect_max_ms, 5000);
  ck_assert_uint_eq (cfg->activity_window_ms, 30000);
  ck_assert_int_eq (cfg->links[0].on_peer_loss, BR_LOSS_LOG);
  ck_assert_uint_eq (cfg->links[0].block_timeout_ms, 30000);
  ck_assert_uint_eq (cfg->links[0].resync_rate, 0);
  ck_assert_int_eq (cfg->links[0].on_congestion, BR_CONGESTION_BLOCK);
  br_config_free (cfg);
}
END_TEST

/* The same defaults on a sync link and with an empty settings mapping. */
START_TEST (test_defaults_sync)
{
  struct br_config *cfg = load_ok ("settings:\n" BASE "links:\n"
                                   "  - {between: [a, b], mode: sync}\n");

  ck_assert_uint_eq (cfg->heartbeat_ms, 1000);
  ck_assert_uint_eq (cfg->heartbeat_timeout_ms, 5000);
  ck_assert_uint_eq (cfg->reconnect_min_ms, 100);
  ck_assert_uint_eq (cfg->reconnect_max_ms, 5000);
  ck_assert_uint_eq (cfg->activity_window_ms, 30000);
  ck_assert_int_eq (cfg->links[0].on_peer_loss, BR_LOSS_LOG);
  ck_assert_uint_eq (cfg->links[0].block_timeout_ms, 30000);
  ck_assert_uint_eq (cfg->links[0].resync_rate, 0);
  ck_assert_int_eq (cfg->links[0].on_congestion, BR_CONGESTION_BLOCK);
  br_config_free (cfg);
}
END_TEST

/* Every outage and congestion key, in block and flow style. */
START_TEST (test_outage_keys)
{
  struct br_config *cfg = load_ok (
    "settings:\n"
    "  heartbeat: 250ms\n"
    "  heartbeat-timeout: 3\n"
    "  reconnect-min: 50ms\n"
    "  reconnect-max: 2m\n"
    VOLUMES
    "nodes:\n"
    "  - {name: a, address: 'h:1', data-dir: a}\n"
    "  - {name: b, address: 'h:2', data-dir: b}\n"
    "  - {name: c, address: 'h:3', data-dir: c}\n"
    "  - {name: d, address: 'h:4', data-dir: d}\n"
    "links:\n"
    "  - between: [a, b]\n"
    "    mode: sync\n"
    "    on-peer-loss: block\n"
    "    block-timeout: 1h\n"
    "    resync-rate: 100M\n"
    "    on-congestion: block\n"
    "    resync: checksum\n"
    "    after-split-brain: disconnect\n"
    "  - {between: [b, c], mode: async, on-congestion: pull-ahead,"
    " resync-rate: 0, on-peer-loss: fail}\n"
    "  - {between: [c, d], mode: sync, on-peer-loss: log,"
    " block-timeout: 1}\n");
  const struct br_link_cfg *k;

  ck_assert_uint_eq (cfg->heartbeat_ms, 250);
  ck_assert_uint_eq (cfg->heartbeat_timeout_ms, 3000);
  ck_assert_uint_eq (cfg->reconnect_min_ms, 50);
  ck_assert_uint_eq (cfg->reconnect_max_ms, 120000);
  k = &cfg->links[0];
  ck_assert_int_eq (k->on_peer_loss, BR_LOSS_BLOCK);
  ck_assert_uint_eq (k->block_timeout_ms, 3600000);
  ck_assert_uint_eq (k->resync_rate, 100 << 20);
  ck_assert_int_eq (k->on_congestion, BR_CONGESTION_BLOCK);
  ck_assert_uint_eq (k->rate, 0);
  ck_assert_int_eq (k->resync, BR_RESYNC_CHECKSUM);
  ck_assert_int_eq (k->after_sb, BR_AFTER_SB_DISCARD_NONE);
  k = &cfg->links[1];
  ck_assert_int_eq (k->resync, BR_RESYNC_FULL);                  /* default */
  ck_assert_int_eq (k->after_sb, BR_AFTER_SB_DISCARD_ZERO);      /* default */
  ck_assert_int_eq (k->mode, BR_MODE_ASYNC);
  ck_assert_int_eq (k->on_congestion, BR_CONGESTION_PULL_AHEAD);
  ck_assert_int_eq (k->on_peer_loss, BR_LOSS_FAIL);   /* no effect; valid */
  ck_assert_uint_eq (k->resync_rate, 0);
  ck_assert_uint_eq (k->block_timeout_ms, 30000);
  k = &cfg->links[2];
  ck_assert_int_eq (k->on_peer_loss, BR_LOSS_LOG);
  ck_assert_uint_eq (k->block_timeout_ms, 1000);
  ck_assert_int_eq (k->on_congestion, BR_CONGESTION_BLOCK);
  br_config_free (cfg);
}
END_TEST

/* settings activity-window: any duration from 0 (clear as soon as the
 * peer has the region durably) up to 1h, in any unit. */
static const struct {
  const char *text;
  uint64_t ms;
} good_windows[] = {
  { "0", 0 }, { "0s", 0 }, { "0ms", 0 }, { "1ms", 1 }, { "250ms", 250 },
  { "45", 45000 }, { "30s", 30000 }, { "2m", 120000 }, { "60m", 3600000 },
  { "1h", 3600000 }, { "3600000ms", 3600000 },
};

/* metrics-interval (default 15s, 1s .. 1h) and a node's metrics-file,
 * relative to the file like data-dir, absent by default. */
START_TEST (test_metrics_keys)
{
  char want[PATH_MAX + 64], real[PATH_MAX];
  struct br_config *cfg = load_ok (BASE);

  ck_assert_uint_eq (cfg->metrics_interval_ms, 15000);
  ck_assert_ptr_null (cfg->nodes[0].metrics_file);
  br_config_free (cfg);
  cfg = load_ok ("settings: {metrics-interval: 1s}\n" VOLUMES
                 "nodes:\n"
                 "  - {name: a, address: 127.0.0.1:1, data-dir: a, "
                 "metrics-file: m/a.prom}\n"
                 "  - {name: b, address: 127.0.0.1:2, data-dir: b, "
                 "metrics-file: /srv/b.prom}\n");
  ck_assert_uint_eq (cfg->metrics_interval_ms, 1000);
  ck_assert_ptr_nonnull (realpath (dir, real));
  snprintf (want, sizeof want, "%s/m/a.prom", real);
  ck_assert_str_eq (cfg->nodes[0].metrics_file, want);
  ck_assert_str_eq (cfg->nodes[1].metrics_file, "/srv/b.prom");
  br_config_free (cfg);
  cfg = load_ok ("settings: {metrics-interval: 1h}\n" BASE);
  ck_assert_uint_eq (cfg->metrics_interval_ms, 3600000);
  br_config_free (cfg);
}
END_TEST

/* The hardening keys: their defaults, and values at both ends of their
 * ranges (handshake-timeout is independent of the heartbeat keys). */
START_TEST (test_hardening_keys)
{
  struct br_config *cfg = load_ok (BASE);

  ck_assert_uint_eq (cfg->max_connections, 64);
  ck_assert_uint_eq (cfg->handshake_timeout_ms, 10000);
  ck_assert_ptr_null (cfg->user);
  br_config_free (cfg);
  cfg = load_ok ("settings: {max-connections: 1, handshake-timeout: 250ms, "
                 "user: blockrelay}\n" BASE);
  ck_assert_uint_eq (cfg->max_connections, 1);
  ck_assert_uint_eq (cfg->handshake_timeout_ms, 250);
  ck_assert_str_eq (cfg->user, "blockrelay");
  br_config_free (cfg);
  cfg = load_ok ("settings: {max-connections: 65536, handshake-timeout: 1h, "
                 "heartbeat-timeout: 2s, user: _br-1.x}\n" BASE);
  ck_assert_uint_eq (cfg->max_connections, 65536);
  ck_assert_uint_eq (cfg->handshake_timeout_ms, 3600000);
  ck_assert_str_eq (cfg->user, "_br-1.x");
  br_config_free (cfg);
}
END_TEST

START_TEST (test_activity_window)
{
  char text[512];
  struct br_config *cfg;

  snprintf (text, sizeof text, "settings:\n  activity-window: %s\n" BASE,
            good_windows[_i].text);
  cfg = load_ok (text);
  ck_assert_uint_eq (cfg->activity_window_ms, good_windows[_i].ms);
  br_config_free (cfg);
}
END_TEST

/* The orderings at their limits: timeout one millisecond above the
 * heartbeat, reconnect-min equal to reconnect-max, and either side of a
 * pair against the other's default. */
START_TEST (test_outage_limits)
{
  struct br_config *cfg = load_ok ("settings:\n"
                                   "  heartbeat: 999ms\n"
                                   "  heartbeat-timeout: 1s\n"
                                   "  reconnect-min: 3s\n"
                                   "  reconnect-max: 3000ms\n" BASE);

  ck_assert_uint_eq (cfg->heartbeat_ms, 999);
  ck_assert_uint_eq (cfg->heartbeat_timeout_ms, 1000);
  ck_assert_uint_eq (cfg->reconnect_min_ms, 3000);
  ck_assert_uint_eq (cfg->reconnect_max_ms, 3000);
  br_config_free (cfg);
  cfg = load_ok ("settings: {heartbeat: 4999ms, reconnect-min: 5s}\n" BASE);
  ck_assert_uint_eq (cfg->heartbeat_timeout_ms, 5000);
  ck_assert_uint_eq (cfg->reconnect_max_ms, 5000);
  br_config_free (cfg);
  cfg = load_ok ("settings: {heartbeat-timeout: 2s, reconnect-max: 100ms}\n"
                 BASE);
  ck_assert_uint_eq (cfg->heartbeat_ms, 1000);
  ck_assert_uint_eq (cfg->reconnect_min_ms, 100);
  br_config_free (cfg);
}
END_TEST

/* Relative paths follow the file, not the working directory. */
START_TEST (test_relative_to_file)
{
  char sub[128], real[PATH_MAX], want[PATH_MAX + 64], err[1024];
  char cwd[PATH_MAX];
  struct br_config *cfg;

  snprintf (sub, sizeof sub, "%s/etc", dir);
  ck_assert_int_eq (mkdir (sub, 0700), 0);
  snprintf (sub, sizeof sub, "%s/etc/t.yaml", dir);
  write_file (sub, BASE);
  ck_assert_ptr_nonnull (getcwd (cwd, sizeof cwd));
  ck_assert_int_eq (chdir (dir), 0);
  ck_assert_ptr_nonnull (realpath (dir, real));
  ck_assert_int_eq (br_config_load ("etc/t.yaml", &cfg, err, sizeof err), 0);
  ck_assert_str_eq (cfg->path, "etc/t.yaml");
  snprintf (want, sizeof want, "%s/etc/a", real);
  ck_assert_str_eq (cfg->nodes[0].data_dir, want);
  br_config_free (cfg);
  ck_assert_int_eq (br_config_load ("./etc/./t.yaml", &cfg, err, sizeof err),
                    0);
  ck_assert_str_eq (cfg->nodes[0].data_dir, want);
  br_config_free (cfg);
  ck_assert_int_eq (chdir (cwd), 0);    /* for CK_FORK=no runs */
}
END_TEST

START_TEST (test_single_node_no_links)
{
  struct br_config *cfg = load_ok (
    VOLUMES "nodes:\n  - {name: a, address: 'localhost:1', data-dir: a}\n");

  ck_assert_uint_eq (cfg->n_nodes, 1);
  ck_assert_uint_eq (cfg->n_links, 0);
  br_config_free (cfg);
}
END_TEST

START_TEST (test_empty_links)
{
  struct br_config *cfg = load_ok (BASE "links:\n");

  ck_assert_uint_eq (cfg->n_links, 0);
  br_config_free (cfg);
  cfg = load_ok (BASE "links: []\n");
  ck_assert_uint_eq (cfg->n_links, 0);
  br_config_free (cfg);
}
END_TEST

START_TEST (test_lookups)
{
  struct br_config *cfg = load_ok (BASE "links:\n"
                                   "  - {between: [a, b], mode: sync}\n");

  ck_assert_ptr_eq (br_config_node (cfg, "b"), &cfg->nodes[1]);
  ck_assert_ptr_null (br_config_node (cfg, "c"));
  ck_assert_ptr_eq (br_config_volume (cfg, "vol0"), &cfg->volumes[0]);
  ck_assert_ptr_null (br_config_volume (cfg, "vol1"));
  ck_assert_ptr_eq (br_config_link (cfg, "a", "b"), &cfg->links[0]);
  ck_assert_ptr_eq (br_config_link (cfg, "b", "a"), &cfg->links[0]);
  ck_assert_ptr_null (br_config_link (cfg, "a", "a"));
  br_config_free (cfg);
}
END_TEST

START_TEST (test_disk_path)
{
  struct br_config *cfg = load_ok (
    "volumes:\n  - {name: vol0, size: 1G}\n  - {name: vol1, size: 1G}\n"
    "nodes:\n  - {name: a, address: 'h:1', data-dir: /d, disks: {vol1: x}}\n");
  char buf[PATH_MAX + 64], want[PATH_MAX + 64];

  ck_assert_int_eq (br_config_disk_path (cfg, &cfg->nodes[0], "vol0",
                                         buf, sizeof buf), 0);
  ck_assert_str_eq (buf, "/d/vol0.img");
  ck_assert_int_eq (br_config_disk_path (cfg, &cfg->nodes[0], "vol1",
                                         buf, sizeof buf), 0);
  snprintf (want, sizeof want, "%s/x", dir);
  ck_assert_str_eq (buf, want);
  ck_assert_int_eq (br_config_disk_path (cfg, &cfg->nodes[0], "vol0",
                                         buf, 11), -1);
  ck_assert_int_eq (br_config_disk_path (cfg, &cfg->nodes[0], "vol0",
                                         buf, 12), 0);
  br_config_free (cfg);
}
END_TEST

START_TEST (test_ipv6_and_port_forms)
{
  struct br_config *cfg = load_ok (
    VOLUMES "nodes:\n"
    "  - {name: a, address: '[fe80::1:2]:010901', data-dir: a}\n"
    "  - {name: b, address: 'b_host.example:65535', data-dir: b}\n");

  ck_assert_str_eq (cfg->nodes[0].host, "fe80::1:2");
  ck_assert_str_eq (cfg->nodes[0].port, "10901");
  ck_assert_str_eq (cfg->nodes[1].host, "b_host.example");
  ck_assert_str_eq (cfg->nodes[1].port, "65535");
  br_config_free (cfg);
}
END_TEST

START_TEST (test_name_of_max_length)
{
  char text[512], name[BR_NAME_MAX + 1];
  struct br_config *cfg;

  memset (name, 'v', BR_NAME_MAX);
  name[BR_NAME_MAX] = '\0';
  snprintf (text, sizeof text, "volumes:\n  - {name: %s, size: 512}\n"
            NODES, name);
  cfg = load_ok (text);
  ck_assert_str_eq (cfg->volumes[0].name, name);
  ck_assert_uint_eq (cfg->volumes[0].size, 512);
  br_config_free (cfg);
}
END_TEST

/* Sizes. */

static const struct {
  const char *text;
  uint64_t value;
} good_sizes[] = {
  { "0", 0 }, { "123", 123 }, { "512B", 512 },
  { "64K", 64 << 10 }, { "64k", 64 << 10 }, { "64KiB", 64 << 10 },
  { "512M", 512 << 20 }, { "1G", 1 << 30 }, { "1GiB", 1 << 30 },
  { "1GB", 1 << 30 }, { "1gib", 1 << 30 }, { "2T", UINT64_C (2) << 40 },
  { "18446744073709551615", UINT64_MAX },
  { "16777215T", UINT64_C (16777215) << 40 },
};

START_TEST (test_parse_size_good)
{
  uint64_t v = 42;

  ck_assert_msg (br_parse_size (good_sizes[_i].text, &v) == 0,
                 "'%s' rejected", good_sizes[_i].text);
  ck_assert_uint_eq (v, good_sizes[_i].value);
}
END_TEST

static const char *const bad_sizes[] = {
  "", "-1", "+1", " 1", "1 ", "G", "1X", "1.5G", "0x10", "1i", "1iB",
  "1KK", "1GiBB", "18446744073709551616", "99999999999999999999999",
  "16777216T",
};

START_TEST (test_parse_size_bad)
{
  uint64_t v = 42;

  ck_assert_msg (br_parse_size (bad_sizes[_i], &v) == -1,
                 "'%s' accepted", bad_sizes[_i]);
  ck_assert_uint_eq (v, 42);
}
END_TEST

/* Durations. */

static const struct {
  const char *text;
  uint64_t ms;
} good_durations[] = {
  { "0", 0 }, { "0ms", 0 }, { "1", 1000 }, { "5s", 5000 },
  { "250ms", 250 }, { "2m", 120000 }, { "1h", 3600000 },
  { "007s", 7000 }, { "90m", 5400000 },
  { "18446744073709551615ms", UINT64_MAX },
  { "18446744073709551s", UINT64_C (18446744073709551000) },
  { "5124095576030h", UINT64_C (5124095576030) * 3600000 },
};

START_TEST (test_parse_duration_good)
{
  uint64_t v = 42;

  ck_assert_msg (br_parse_duration (good_durations[_i].text, &v) == 0,
                 "'%s' rejected", good_durations[_i].text);
  ck_assert_uint_eq (v, good_durations[_i].ms);
}
END_TEST

static const char *const bad_durations[] = {
  "", "-1", "-5s", "+1s", " 1s", "1s ", "1 s", "s", "ms", "1.5s", "0x10",
  "5d", "5sec", "5S", "5MS", "5H", "1mss", "1sms", "5us", "5ns",
  "18446744073709551616ms", "99999999999999999999999",
  "18446744073709552s", "307445734561826m", "5124095576031h",
};

START_TEST (test_parse_duration_bad)
{
  uint64_t v = 42;

  ck_assert_msg (br_parse_duration (bad_durations[_i], &v) == -1,
                 "'%s' accepted", bad_durations[_i]);
  ck_assert_uint_eq (v, 42);
  ck_assert_int_eq (br_parse_duration (NULL, &v), -1);
}
END_TEST

/* Files that cannot be read, or are not YAML. */

START_TEST (test_missing_file)
{
  char err[1024], want[PATH_MAX + 64];
  struct br_config *cfg = (void *) 1;

  snprintf (path, sizeof path, "%s/nonexistent.yaml", dir);
  ck_assert_int_eq (br_config_load (path, &cfg, err, sizeof err), -1);
  ck_assert_ptr_null (cfg);
  snprintf (want, sizeof want, "%s: cannot open: ", path);
  ck_assert_msg (strncmp (err, want, strlen (want)) == 0, "error '%s'", err);
}
END_TEST

START_TEST (test_empty_file)
{
  ck_assert_load_error ("", "1:1", "empty");
  ck_assert_load_error ("# only a comment\n", "1:1", "empty");
}
END_TEST

START_TEST (test_syntax_error)
{
  ck_assert_load_error ("volumes:\n  - name: vol0\n    size: 1G: 2\n",
                        "3:13", "syntax error: mapping values are not "
                        "allowed");
  ck_assert_load_error ("volumes: [vol0\nnodes: x\n", "2:6",
                        "syntax error: did not find expected ',' or ']' "
                        "(while parsing a flow sequence at 1:10)");
}
END_TEST

START_TEST (test_invalid_utf8)
{
  ck_assert_load_error ("volumes:\n  - {name: v\xff, size: 1G}\n", "2:13",
                        "invalid leading UTF-8 octet");
}
END_TEST

START_TEST (test_undefined_alias)
{
  ck_assert_load_error ("volumes: *x\n", "1:10", "undefined alias");
}
END_TEST

START_TEST (test_second_document)
{
  ck_assert_load_error (BASE "---\n" BASE, "7:1", "second YAML document");
}
END_TEST

START_TEST (test_nul_byte)
{
  ck_assert_load_error ("volumes:\n  - {name: \"v\\0\", size: 1G}\n" NODES,
                        "2:12", "volume name contains a NUL byte");
}
END_TEST

/* Wrong kinds of value. */

static const struct bad bad_kinds[] = {
  { "- a\n- b\n", "1:1", "the file must hold a mapping" },
  { "settings: [1]\n" BASE, "1:11", "settings must be a mapping, not a "
    "sequence" },
  { "volumes:\n  - vol0\n" NODES, "2:5", "volume must be a mapping, not a "
    "scalar" },
  { VOLUMES "nodes:\n  - [a]\n", "4:5", "node must be a mapping, not a "
    "sequence" },
  { BASE "links:\n  - sync\n", "7:5", "link must be a mapping" },
  { "volumes: {name: vol0}\n" NODES, "1:10", "volumes must be a sequence, "
    "not a mapping" },
  { VOLUMES "nodes: a\n", "3:8", "nodes must be a sequence, not a scalar" },
  { BASE "links: sync\n", "6:8", "links must be a sequence" },
  { "volumes:\n  - name: [vol0]\n    size: 1G\n" NODES, "2:11",
    "volume name must be a scalar, not a sequence" },
  { "volumes:\n  - {name: vol0, size: {g: 1}}\n" NODES, "2:24",
    "volume size must be a scalar, not a mapping" },
  { VOLUMES "nodes:\n  - {name: a, address: [h, 1], data-dir: a}\n",
    "4:24", "node address must be a scalar, not a sequence" },
  { BASE "links:\n  - {between: [a, b], mode: [sync]}\n", "7:29",
    "link mode must be a scalar" },
  { "volumes:\n  - {[a]: 1}\n", "2:6", "a key in volume must be a scalar" },
  { VOLUMES "nodes:\n  - {name: a, address: 'h:1', data-dir: a, "
    "disks: [vol0]}\n", "4:51", "node disks must be a mapping" },
};

START_TEST (test_wrong_kind)
{
  ck_assert_load_error (bad_kinds[_i].text, bad_kinds[_i].pos,
                        bad_kinds[_i].phrase);
}
END_TEST

/* Keys. */

START_TEST (test_unknown_key)
{
  ck_assert_load_error (BASE "links:\n  - between: [a, b]\n    modee: sync\n",
                        "8:5", "unknown key 'modee' in link (expected: "
                        "between, mode, rate, queue-size, on-peer-loss, "
                        "block-timeout, resync-rate, on-congestion, resync, "
                        "after-split-brain, tls)");
  ck_assert_load_error (BASE "links:\n  - between: [a, b]\n    mode: sync\n"
                        "    on_peer_loss: log\n", "9:5",
                        "unknown key 'on_peer_loss' in link");
}
END_TEST

START_TEST (test_unknown_key_top_level)
{
  ck_assert_load_error (BASE "link:\n", "6:1", "unknown key 'link' in the "
                        "top-level mapping (expected: settings, volumes, "
                        "nodes, links)");
}
END_TEST

START_TEST (test_unknown_key_settings)
{
  ck_assert_load_error ("settings:\n  queue_size: 1M\n" BASE, "2:3",
                        "unknown key 'queue_size' in settings (expected: "
                        "granularity, queue-size, secret-file, heartbeat, "
                        "heartbeat-timeout, reconnect-min, reconnect-max, "
                        "activity-window, metrics-interval, max-connections, "
                        "handshake-timeout, user, tls, tls-ca)");
  ck_assert_load_error ("settings:\n  activity_window: 1s\n" BASE, "2:3",
                        "unknown key 'activity_window' in settings");
  ck_assert_load_error ("settings:\n  heartbeat-interval: 1s\n" BASE, "2:3",
                        "unknown key 'heartbeat-interval' in settings");
}
END_TEST

START_TEST (test_duplicate_key)
{
  ck_assert_load_error ("volumes:\n  - name: vol0\n    size: 1G\n"
                        "    size: 2G\n" NODES, "4:5",
                        "duplicate key 'size' in volume (first at 3:5)");
}
END_TEST

START_TEST (test_duplicate_key_new)
{
  ck_assert_load_error ("settings:\n  heartbeat: 1s\n  heartbeat: 2s\n" BASE,
                        "3:3", "duplicate key 'heartbeat' in settings (first "
                        "at 2:3)");
  ck_assert_load_error (BASE "links:\n  - {between: [a, b], mode: sync, "
                        "on-peer-loss: log, on-peer-loss: fail}\n", "7:54",
                        "duplicate key 'on-peer-loss' in link (first at "
                        "7:35)");
}
END_TEST

START_TEST (test_duplicate_key_top_level)
{
  ck_assert_load_error (BASE "volumes: []\n", "6:1",
                        "duplicate key 'volumes' in the top-level mapping "
                        "(first at 1:1)");
}
END_TEST

static const struct bad missing[] = {
  { NODES, "1:1", "the top-level mapping is missing required key 'volumes'" },
  { VOLUMES, "1:1", "the top-level mapping is missing required key 'nodes'" },
  { "volumes:\n  - {size: 1G}\n" NODES, "2:5",
    "volume is missing required key 'name'" },
  { "volumes:\n  - {name: vol0}\n" NODES, "2:5",
    "volume is missing required key 'size'" },
  { VOLUMES "nodes:\n  - {address: 'h:1', data-dir: a}\n", "4:5",
    "node is missing required key 'name'" },
  { VOLUMES "nodes:\n  - name: a\n    data-dir: a\n", "4:5",
    "node is missing required key 'address'" },
  { VOLUMES "nodes:\n  - {name: a, address: 'h:1'}\n", "4:5",
    "node is missing required key 'data-dir'" },
  { BASE "links:\n  - {mode: sync}\n", "7:5",
    "link is missing required key 'between'" },
  { BASE "links:\n  - {between: [a, b]}\n", "7:5",
    "link is missing required key 'mode'" },
};

START_TEST (test_missing_field)
{
  ck_assert_load_error (missing[_i].text, missing[_i].pos,
                        missing[_i].phrase);
}
END_TEST

static const struct bad empty_sections[] = {
  { "volumes: []\n" NODES, "1:10", "volumes must not be empty" },
  { "volumes:\n" NODES, "1:9", "volumes must not be empty" },
  { VOLUMES "nodes: []\n", "3:8", "nodes must not be empty" },
  { VOLUMES "nodes: ~\n", "3:8", "nodes must not be empty" },
};

START_TEST (test_empty_section)
{
  ck_assert_load_error (empty_sections[_i].text, empty_sections[_i].pos,
                        empty_sections[_i].phrase);
}
END_TEST

/* Values.  A volume written in block style puts its size at 3:11. */
#define VOLUME_SIZE(s) "volumes:\n  - name: vol0\n    size: " s "\n" NODES

static const struct bad bad_volume_sizes[] = {
  { VOLUME_SIZE ("''"), "3:11", "volume size is empty" },
  { VOLUME_SIZE ("-1G"), "3:11", "volume size '-1G' is negative" },
  { VOLUME_SIZE ("12Q"), "3:11", "volume size '12Q' is not a size" },
  { VOLUME_SIZE ("1.5G"), "3:11", "volume size '1.5G' is not a size" },
  { VOLUME_SIZE ("99999999999999999999"), "3:11", "is too large" },
  { VOLUME_SIZE ("16777216T"), "3:11", "'16777216T' is too large" },
  { VOLUME_SIZE ("8388608T"), "3:11", "'8388608T' is too large" },
  { VOLUME_SIZE ("0"), "3:11", "volume size must not be zero" },
  { VOLUME_SIZE ("1000"), "3:11", "'1000' is not a multiple of 512" },
};

START_TEST (test_bad_volume_size)
{
  ck_assert_load_error (bad_volume_sizes[_i].text, bad_volume_sizes[_i].pos,
                        bad_volume_sizes[_i].phrase);
}
END_TEST

#define GRANULARITY(g)                                                  \
  "volumes:\n  - name: vol0\n    size: 1G\n    granularity: " g "\n" NODES
#define SETTINGS_GRANULARITY(g) "settings:\n  granularity: " g "\n" BASE

static const struct bad bad_granularities[] = {
  { GRANULARITY ("12K"), "4:18", "volume granularity '12K' is not a power "
    "of two" },
  { GRANULARITY ("2K"), "4:18", "volume granularity '2K' is outside 4K..32M" },
  /* Above the largest frame payload (BR_WIRE_MAX_PAYLOAD, 32M): such a
   * region could never be resynced, so the bound and its reason are
   * named. */
  { GRANULARITY ("64M"), "4:18", "volume granularity '64M' is outside "
    "4K..32M: a dirty region is resynced in one frame, and a frame carries "
    "at most 32M" },
  { GRANULARITY ("65536K"), "4:18", "'65536K' is outside 4K..32M: a dirty "
    "region is resynced in one frame" },
  { GRANULARITY ("128M"), "4:18", "'128M' is outside 4K..32M" },
  { GRANULARITY ("8G"), "4:18", "'8G' is outside 4K..32M" },
  { GRANULARITY ("big"), "4:18", "volume granularity 'big' is not a size" },
  { SETTINGS_GRANULARITY ("96K"), "2:16", "settings granularity '96K' is "
    "not a power of two" },
  { SETTINGS_GRANULARITY ("0"), "2:16", "outside 4K..32M" },
  { SETTINGS_GRANULARITY ("64M"), "2:16", "settings granularity '64M' is "
    "outside 4K..32M: a dirty region is resynced in one frame, and a frame "
    "carries at most 32M" },
  { "settings: {granularity: 1G}\n" BASE, "1:25", "settings granularity "
    "'1G' is outside 4K..32M: a dirty region is resynced in one frame" },
};

START_TEST (test_bad_granularity)
{
  ck_assert_load_error (bad_granularities[_i].text,
                        bad_granularities[_i].pos,
                        bad_granularities[_i].phrase);
}
END_TEST

/* 4K and 32M (the largest frame payload) are the bounds, for a volume
 * and in settings, which a volume without its own granularity inherits. */
START_TEST (test_granularity_limits)
{
  struct br_config *cfg = load_ok (
    "volumes:\n  - {name: v0, size: 1G, granularity: 4K}\n"
    "  - {name: v1, size: 1G, granularity: 32M}\n" NODES);

  ck_assert_uint_eq (cfg->volumes[0].granularity, 4096);
  ck_assert_uint_eq (cfg->volumes[1].granularity, 32 << 20);
  br_config_free (cfg);

  cfg = load_ok ("settings: {granularity: 32M}\n" BASE);
  ck_assert_uint_eq (cfg->granularity, 32 << 20);
  ck_assert_uint_eq (cfg->volumes[0].granularity, 32 << 20);
  br_config_free (cfg);

  cfg = load_ok ("settings: {granularity: 4K}\n"
                 "volumes:\n  - {name: v0, size: 1G, granularity: 32M}\n"
                 NODES);
  ck_assert_uint_eq (cfg->volumes[0].granularity, 32 << 20);
  br_config_free (cfg);
}
END_TEST

/* The upper bound is the wire's largest payload, whatever its value:
 * BR_WIRE_MAX_PAYLOAD bytes load, twice that is refused. */
START_TEST (test_granularity_frame_bound)
{
  char text[512], err[1024];
  struct br_config *cfg;

  snprintf (text, sizeof text, "settings: {granularity: %u}\n" BASE,
            BR_WIRE_MAX_PAYLOAD);
  cfg = load_ok (text);
  ck_assert_uint_eq (cfg->volumes[0].granularity, BR_WIRE_MAX_PAYLOAD);
  br_config_free (cfg);

  snprintf (text, sizeof text, "settings: {granularity: %u}\n" BASE,
            2 * BR_WIRE_MAX_PAYLOAD);
  ck_assert_ptr_null (load (text, err, sizeof err));
  ck_assert_msg (strstr (err, "resynced in one frame") != NULL, "%s", err);
}
END_TEST

#define LINK(s) BASE "links:\n  - between: [a, b]\n    " s "\n"

static const struct bad bad_link_values[] = {
  { LINK ("mode: sink"), "8:11", "link mode 'sink' is not sync or async" },
  { LINK ("mode: SYNC"), "8:11", "link mode 'SYNC' is not sync or async" },
  { LINK ("mode: sync\n    rate: fast"), "9:11", "link rate 'fast' is not "
    "a size" },
  { LINK ("mode: async\n    queue-size: 0"), "9:17", "link queue-size must "
    "not be zero" },
  { LINK ("mode: async\n    queue-size: -64M"), "9:17", "link queue-size "
    "'-64M' is negative" },
  { "settings: {queue-size: 0}\n" BASE, "1:24", "settings queue-size must "
    "not be zero" },
};

START_TEST (test_bad_link_value)
{
  ck_assert_load_error (bad_link_values[_i].text, bad_link_values[_i].pos,
                        bad_link_values[_i].phrase);
}
END_TEST

/* Durations in the file.  "  heartbeat: X" puts X at 2:14,
 * "  heartbeat-timeout: X" at 2:22, "  reconnect-min: X" and
 * "  reconnect-max: X" at 2:18; in a link, "    block-timeout: X" at 9:20. */
#define SETTING(kv) "settings:\n  " kv "\n" BASE
#define SYNC_LINK(kv) LINK ("mode: sync\n    " kv)
#define NOT_A_DURATION \
  "is not a duration (expected an integer with a unit ms, s, m or h)"

static const struct bad bad_durations_in_file[] = {
  { SETTING ("heartbeat: ''"), "2:14", "settings heartbeat is empty" },
  { SETTING ("heartbeat: ~"), "2:14", "settings heartbeat is empty" },
  { SETTING ("heartbeat: -1s"), "2:14", "settings heartbeat '-1s' is "
    "negative" },
  { SETTING ("heartbeat: fast"), "2:14", "settings heartbeat 'fast' "
    NOT_A_DURATION },
  { SETTING ("heartbeat: 1.5s"), "2:14", "'1.5s' " NOT_A_DURATION },
  { SETTING ("heartbeat: 5d"), "2:14", "settings heartbeat '5d' has an "
    "unknown unit (expected ms, s, m or h)" },
  { SETTING ("heartbeat: 5S"), "2:14", "'5S' has an unknown unit" },
  { SETTING ("heartbeat: 99999999999999999999ms"), "2:14",
    "'99999999999999999999ms' is too large" },
  { SETTING ("heartbeat: 5124095576031h"), "2:14", "'5124095576031h' is "
    "too large" },
  { SETTING ("heartbeat: [1s]"), "2:14", "settings heartbeat must be a "
    "scalar, not a sequence" },
  { SETTING ("heartbeat: 0"), "2:14", "settings heartbeat must not be zero" },
  { SETTING ("heartbeat: 0ms"), "2:14", "settings heartbeat must not be "
    "zero" },
  { SETTING ("heartbeat-timeout: 0s"), "2:22", "settings heartbeat-timeout "
    "must not be zero" },
  { SETTING ("heartbeat-timeout: 5x"), "2:22", "settings heartbeat-timeout "
    "'5x' has an unknown unit" },
  { SETTING ("reconnect-min: 0m"), "2:18", "settings reconnect-min must not "
    "be zero" },
  { SETTING ("reconnect-min: soon"), "2:18", "settings reconnect-min 'soon' "
    NOT_A_DURATION },
  { SETTING ("reconnect-max: 0h"), "2:18", "settings reconnect-max must not "
    "be zero" },
  { SETTING ("reconnect-max: -5s"), "2:18", "settings reconnect-max '-5s' "
    "is negative" },
  /* "  activity-window: X" puts X at 2:20.  Zero is allowed (above). */
  { SETTING ("activity-window: ''"), "2:20", "settings activity-window is "
    "empty" },
  { SETTING ("activity-window: -30s"), "2:20", "settings activity-window "
    "'-30s' is negative" },
  { SETTING ("activity-window: long"), "2:20", "settings activity-window "
    "'long' " NOT_A_DURATION },
  { SETTING ("activity-window: 30sec"), "2:20", "settings activity-window "
    "'30sec' has an unknown unit" },
  { SETTING ("activity-window: 1d"), "2:20", "'1d' has an unknown unit" },
  { SETTING ("activity-window: [30s]"), "2:20", "settings activity-window "
    "must be a scalar, not a sequence" },
  { SETTING ("activity-window: 3600001ms"), "2:20", "settings "
    "activity-window '3600001ms' is longer than 1h: every region written "
    "within the window is resynced after a crash" },
  { SETTING ("activity-window: 61m"), "2:20", "'61m' is longer than 1h" },
  { "settings: {activity-window: 2h}\n" BASE, "1:29", "settings "
    "activity-window '2h' is longer than 1h" },
  { SETTING ("activity-window: 18446744073709551615ms"), "2:20",
    "is longer than 1h" },
  { SETTING ("activity-window: 1s\n  activity-window: 2s"), "3:3",
    "duplicate key 'activity-window' in settings (first at 2:3)" },
  /* "  metrics-interval: X" puts X at 2:21: 1s .. 1h. */
  { SETTING ("metrics-interval: 0"), "2:21", "settings metrics-interval '0' "
    "is outside 1s..1h" },
  { SETTING ("metrics-interval: 999ms"), "2:21", "'999ms' is outside "
    "1s..1h" },
  { SETTING ("metrics-interval: 61m"), "2:21", "'61m' is outside 1s..1h" },
  { SETTING ("metrics-interval: often"), "2:21", "settings "
    "metrics-interval 'often' " NOT_A_DURATION },
  /* "  handshake-timeout: X" puts X at 2:22, "  max-connections: X" at
   * 2:20 and "  user: X" at 2:9. */
  { SETTING ("handshake-timeout: 0"), "2:22", "settings handshake-timeout "
    "must not be zero" },
  { SETTING ("handshake-timeout: soon"), "2:22", "settings "
    "handshake-timeout 'soon' " NOT_A_DURATION },
  { SETTING ("handshake-timeout: -1s"), "2:22", "settings "
    "handshake-timeout '-1s' is negative" },
  { SETTING ("handshake-timeout: [1s]"), "2:22", "settings "
    "handshake-timeout must be a scalar, not a sequence" },
  { SETTING ("max-connections: 0"), "2:20", "settings max-connections '0' "
    "is not an integer in 1..65536" },
  { SETTING ("max-connections: 65537"), "2:20", "settings max-connections "
    "'65537' is not an integer in 1..65536" },
  { SETTING ("max-connections: -5"), "2:20", "'-5' is not an integer" },
  { SETTING ("max-connections: 64K"), "2:20", "'64K' is not an integer" },
  { SETTING ("max-connections: 99999999999999999999999"), "2:20",
    "is not an integer in 1..65536" },
  { SETTING ("max-connections: ''"), "2:20", "settings max-connections is "
    "empty" },
  { SETTING ("max-connections: {a: 1}"), "2:20", "settings max-connections "
    "must be a scalar, not a mapping" },
  { SETTING ("user: ''"), "2:9", "settings user is empty" },
  { SETTING ("user: -root"), "2:9", "settings user '-root' is not a user "
    "name" },
  { SETTING ("user: 'a b'"), "2:9", "settings user 'a b' is not a user "
    "name" },
  { SETTING ("user: abcdefghijabcdefghijabcdefghijabc"), "2:9",
    "is not a user name (1..32 of" },
  { SETTING ("user: [nobody]"), "2:9", "settings user must be a scalar" },
  { SETTING ("user: nobody\n  user: root"), "3:3", "duplicate key 'user' "
    "in settings (first at 2:3)" },
  { SETTING ("max_connections: 5"), "2:3", "unknown key 'max_connections' "
    "in settings" },
  { VOLUMES "nodes:\n  - {name: a, address: 127.0.0.1:1, data-dir: a, "
    "metrics-file: ''}\n", "4:64", "node metrics-file is empty" },
  { VOLUMES "nodes:\n  - {name: a, address: 127.0.0.1:1, data-dir: a, "
    "metrics-file: [x]}\n", "4:64", "node metrics-file must be a scalar" },
  { VOLUMES "nodes:\n  - {name: a, address: 127.0.0.1:1, data-dir: a, "
    "metrics_file: x}\n", "4:50", "unknown key 'metrics_file' in node" },
  { SYNC_LINK ("block-timeout: 0"), "9:20", "link block-timeout must not be "
    "zero" },
  { SYNC_LINK ("block-timeout: 30 s"), "9:20", "link block-timeout '30 s' "
    NOT_A_DURATION },
  { SYNC_LINK ("block-timeout: 30sec"), "9:20", "link block-timeout '30sec' "
    "has an unknown unit" },
  { SYNC_LINK ("block-timeout: {s: 30}"), "9:20", "link block-timeout must "
    "be a scalar, not a mapping" },
};

START_TEST (test_bad_duration)
{
  ck_assert_load_error (bad_durations_in_file[_i].text,
                        bad_durations_in_file[_i].pos,
                        bad_durations_in_file[_i].phrase);
}
END_TEST

/* heartbeat < heartbeat-timeout and reconnect-min <= reconnect-max, with
 * the later key of a pair blamed where it is written, else the other. */
static const struct bad misordered[] = {
  { "settings:\n  heartbeat: 5s\n  heartbeat-timeout: 5s\n" BASE, "3:22",
    "settings heartbeat-timeout '5s' must be greater than heartbeat '5s'" },
  { "settings:\n  heartbeat-timeout: 2s\n  heartbeat: 3000ms\n" BASE,
    "2:22", "settings heartbeat-timeout '2s' must be greater than "
    "heartbeat '3000ms'" },
  { SETTING ("heartbeat-timeout: 500ms"), "2:22", "settings "
    "heartbeat-timeout '500ms' must be greater than heartbeat 1s (the "
    "default)" },
  { SETTING ("heartbeat: 5s"), "2:14", "settings heartbeat-timeout 5s (the "
    "default) must be greater than heartbeat '5s'" },
  { SETTING ("heartbeat: 1m"), "2:14", "heartbeat-timeout 5s (the default) "
    "must be greater than heartbeat '1m'" },
  { "settings:\n  reconnect-min: 2s\n  reconnect-max: 1999ms\n" BASE,
    "3:18", "settings reconnect-max '1999ms' must be at least reconnect-min "
    "'2s'" },
  { SETTING ("reconnect-max: 99ms"), "2:18", "settings reconnect-max '99ms' "
    "must be at least reconnect-min 100ms (the default)" },
  { SETTING ("reconnect-min: 5001ms"), "2:18", "settings reconnect-max 5s "
    "(the default) must be at least reconnect-min '5001ms'" },
  { "settings: {reconnect-max: 1m, reconnect-min: 1h}\n" BASE, "1:27",
    "reconnect-max '1m' must be at least reconnect-min '1h'" },
};

START_TEST (test_misordered)
{
  ck_assert_load_error (misordered[_i].text, misordered[_i].pos,
                        misordered[_i].phrase);
}
END_TEST

/* Enumerations and the other new link values.  In LINK, "    mode: X" puts
 * X at 8:11, and on line 9 "    on-peer-loss: X" X at 19,
 * "    on-congestion: X" at 20, "    resync-rate: X" at 18. */
static const struct bad bad_link_enums[] = {
  { SYNC_LINK ("on-peer-loss: retry"), "9:19", "link on-peer-loss 'retry' "
    "is not log, block or fail" },
  { SYNC_LINK ("on-peer-loss: LOG"), "9:19", "link on-peer-loss 'LOG' is "
    "not log, block or fail" },
  { SYNC_LINK ("on-peer-loss: ''"), "9:19", "link on-peer-loss '' is not "
    "log, block or fail" },
  { SYNC_LINK ("on-peer-loss: [log]"), "9:19", "link on-peer-loss must be a "
    "scalar, not a sequence" },
  { LINK ("mode: async\n    on-congestion: drop"), "9:20",
    "link on-congestion 'drop' is not block or pull-ahead" },
  { LINK ("mode: async\n    on-congestion: pull_ahead"), "9:20",
    "link on-congestion 'pull_ahead' is not block or pull-ahead" },
  { LINK ("mode: async\n    on-congestion: {a: b}"), "9:20",
    "link on-congestion must be a scalar, not a mapping" },
  { SYNC_LINK ("resync-rate: 1Q"), "9:18", "link resync-rate '1Q' is not a "
    "size" },
  { SYNC_LINK ("resync-rate: -100M"), "9:18", "link resync-rate '-100M' is "
    "negative" },
  { SYNC_LINK ("resync-rate: ''"), "9:18", "link resync-rate is empty" },
  { LINK ("mode: asink"), "8:11", "link mode 'asink' is not sync or async" },
  { SYNC_LINK ("resync: hash"), "9:13", "link resync 'hash' is not full or "
    "checksum" },
  { SYNC_LINK ("resync: Checksum"), "9:13", "link resync 'Checksum' is not "
    "full or checksum" },
  { SYNC_LINK ("resync: [full]"), "9:13", "link resync must be a scalar, "
    "not a sequence" },
  { SYNC_LINK ("after-split-brain: discard"), "9:24", "link "
    "after-split-brain 'discard' is not discard-zero-changes or "
    "disconnect" },
  { SYNC_LINK ("tls: on"), "9:10", "link tls 'on' is not off, psk or cert" },
  { SETTING ("tls: yes"), "2:8", "settings tls 'yes' is not off, psk or "
    "cert" },
};

/* What each tls mode needs is in the file; the one who lacks it is named. */
#define TLS_NODES(a_extra)                                              \
  VOLUMES "nodes:\n"                                                    \
  "  - {name: a, address: 127.0.0.1:10901, data-dir: a" a_extra "}\n"   \
  "  - {name: b, address: 127.0.0.1:10902, data-dir: b,"                \
  " tls-cert: b.crt, tls-key: b.key}\n"
static const struct bad bad_tls[] = {
  { SYNC_LINK ("tls: psk"), "9:10", "link tls 'psk' between 'a' and 'b' "
    "needs settings secret-file (the key is derived from it)" },
  { "settings: {tls: psk}\n" BASE "links:\n  - {between: [a, b], mode: sync}"
    "\n", "8:5", "link tls 'psk' between 'a' and 'b' needs settings "
    "secret-file" },
  { "settings: {tls-ca: ca.pem}\n" TLS_NODES ("") "links:\n"
    "  - {between: [a, b], mode: sync, tls: cert}\n", "8:40", "link tls "
    "'cert' between 'a' and 'b' needs tls-cert and tls-key on node 'a'" },
  { TLS_NODES (", tls-cert: a.crt, tls-key: a.key") "links:\n"
    "  - {between: [a, b], mode: sync, tls: cert}\n", "7:40", "link tls "
    "'cert' between 'a' and 'b' needs settings tls-ca" },
  { TLS_NODES (", tls-cert: a.crt") "links:\n  - {between: [a, b], "
    "mode: sync}\n", "4:5", "node 'a' has tls-cert but no tls-key" },
  { SETTING ("tls-ca: ''"), "2:11", "settings tls-ca is empty" },
};

START_TEST (test_bad_tls)
{
  ck_assert_load_error (bad_tls[_i].text, bad_tls[_i].pos,
                        bad_tls[_i].phrase);
}
END_TEST

/* A link's tls defaults to settings tls; off by default. */
START_TEST (test_tls_default)
{
  struct br_config *cfg = load_ok (
    "settings: {secret-file: k, tls: psk}\n" BASE "links:\n"
    "  - {between: [a, b], mode: sync}\n");

  ck_assert_int_eq (cfg->tls, BR_TLS_PSK);
  ck_assert_int_eq (cfg->links[0].tls, BR_TLS_PSK);
  br_config_free (cfg);
  cfg = load_ok ("settings: {secret-file: k, tls: psk}\n" BASE "links:\n"
                 "  - {between: [a, b], mode: sync, tls: off}\n");
  ck_assert_int_eq (cfg->links[0].tls, BR_TLS_OFF);
  br_config_free (cfg);
  cfg = load_ok (BASE "links:\n  - {between: [a, b], mode: sync}\n");
  ck_assert_int_eq (cfg->links[0].tls, BR_TLS_OFF);
  br_config_free (cfg);
}
END_TEST

START_TEST (test_bad_link_enum)
{
  ck_assert_load_error (bad_link_enums[_i].text, bad_link_enums[_i].pos,
                        bad_link_enums[_i].phrase);
}
END_TEST

/* on-congestion: pull-ahead is for async links; the key is blamed. */
START_TEST (test_pull_ahead_on_sync)
{
  ck_assert_load_error (SYNC_LINK ("on-congestion: pull-ahead"), "9:5",
                        "link on-congestion 'pull-ahead' is for async links "
                        "only, and this link is sync");
  ck_assert_load_error (LINK ("on-congestion: pull-ahead\n    mode: sync"),
                        "8:5", "is for async links only");
  ck_assert_load_error (BASE "links:\n  - {between: [a, b], mode: sync, "
                        "on-congestion: pull-ahead}\n", "7:35",
                        "link on-congestion 'pull-ahead' is for async links "
                        "only");
}
END_TEST

/* "  - between: X": X starts at column 14. */
#define BETWEEN(x) BASE "links:\n  - between: " x "\n    mode: sync\n"

static const struct bad bad_betweens[] = {
  { BETWEEN ("a"), "7:14", "link between must be a sequence, not a scalar" },
  { BETWEEN ("{a: b}"), "7:14", "link between must be a sequence" },
  { BETWEEN ("[]"), "7:14", "link between must not be empty" },
  { BETWEEN ("[a]"), "7:14", "link between must name exactly two nodes, "
    "not 1" },
  { BETWEEN ("[a, b, a]"), "7:14", "exactly two nodes, not 3" },
  { BETWEEN ("[a, {b: 1}]"), "7:18", "a node in link between must be a "
    "scalar, not a mapping" },
};

START_TEST (test_bad_between)
{
  ck_assert_load_error (bad_betweens[_i].text, bad_betweens[_i].pos,
                        bad_betweens[_i].phrase);
}
END_TEST

START_TEST (test_link_unknown_node)
{
  ck_assert_load_error (BETWEEN ("[a, c]"), "7:18",
                        "link names unknown node 'c'");
  ck_assert_load_error (BETWEEN ("[site-z, a]"), "7:15",
                        "link names unknown node 'site-z'");
}
END_TEST

START_TEST (test_link_to_itself)
{
  ck_assert_load_error (BETWEEN ("[b, b]"), "7:14",
                        "link from node 'b' to itself");
}
END_TEST

START_TEST (test_duplicate_link)
{
  ck_assert_load_error (BASE "links:\n"
                        "  - {between: [a, b], mode: sync}\n"
                        "  - {between: [a, b], mode: async}\n",
                        "8:15", "duplicate link between 'a' and 'b' "
                        "(first at 7:5)");
  ck_assert_load_error (BASE "links:\n"
                        "  - {between: [a, b], mode: sync}\n"
                        "  - {between: [b, a], mode: sync}\n",
                        "8:15", "duplicate link between 'b' and 'a' "
                        "(first at 7:5)");
}
END_TEST

START_TEST (test_duplicate_volume)
{
  ck_assert_load_error ("volumes:\n  - {name: vol0, size: 1G}\n"
                        "  - {name: vol0, size: 2G}\n" NODES, "3:12",
                        "duplicate volume name 'vol0' (first at 2:5)");
}
END_TEST

START_TEST (test_duplicate_node)
{
  ck_assert_load_error (VOLUMES "nodes:\n"
                        "  - {name: a, address: 'h:1', data-dir: a}\n"
                        "  - {name: a, address: 'h:2', data-dir: b}\n",
                        "5:12", "duplicate node name 'a' (first at 4:5)");
}
END_TEST

START_TEST (test_duplicate_address)
{
  ck_assert_load_error (VOLUMES "nodes:\n"
                        "  - {name: a, address: 'h:1', data-dir: a}\n"
                        "  - {name: b, address: 'h:01', data-dir: b}\n",
                        "5:24", "node address 'h:01' is already used by "
                        "node 'a'");
}
END_TEST

/* Names: "  - name: X" puts X at column 11. */
#define VOLUME_NAME(n) "volumes:\n  - name: " n "\n    size: 1G\n" NODES
#define NODE_NAME(n) \
  VOLUMES "nodes:\n  - name: " n "\n    address: 'h:1'\n    data-dir: a\n"
#define GROUP(n) "volumes:\n  - {name: v, size: 1G, group: " n "}\n" NODES
#define LONG_NAME "a123456789b123456789c123456789d123456789e123456789" \
  "f123456789g123"              /* 64 characters */

static const struct bad bad_names[] = {
  { VOLUME_NAME ("''"), "2:11", "volume name is empty" },
  { VOLUME_NAME ("~"), "2:11", "volume name is empty" },
  { VOLUME_NAME (LONG_NAME), "2:11", "volume name '" LONG_NAME "' is longer "
    "than 63 characters" },
  { VOLUME_NAME ("vol 0"), "2:11", "volume name 'vol 0' contains a "
    "character other than A-Z a-z 0-9 . _ -" },
  { VOLUME_NAME ("vol/0"), "2:11", "'vol/0' contains a character other" },
  { VOLUME_NAME ("\"v\\u00f6l\""), "2:11", "contains a character other" },
  { NODE_NAME ("''"), "4:11", "node name is empty" },
  { NODE_NAME ("site:a"), "4:11", "node name 'site:a' contains a character" },
  { NODE_NAME (LONG_NAME), "4:11", "node name '" LONG_NAME "' is longer" },
  { GROUP ("''"), "2:32", "volume group is empty" },
  { GROUP ("d*b"), "2:32", "volume group 'd*b' contains a character" },
};

START_TEST (test_bad_name)
{
  ck_assert_load_error (bad_names[_i].text, bad_names[_i].pos,
                        bad_names[_i].phrase);
}
END_TEST

/* "    address: X" puts X at column 14. */
#define ADDRESS(a) \
  VOLUMES "nodes:\n  - name: a\n    address: " a "\n    data-dir: a\n"

static const struct bad bad_addresses[] = {
  { ADDRESS ("127.0.0.1"), "5:14", "'127.0.0.1' has no port (expected "
    "host:port)" },
  { ADDRESS ("''"), "5:14", "has no port" },
  { ADDRESS ("':10901'"), "5:14", "':10901' has no host" },
  { ADDRESS ("'host:'"), "5:14", "'host:' has no port" },
  { ADDRESS ("host:0"), "5:14", "port '0' is not a number in 1..65535" },
  { ADDRESS ("host:65536"), "5:14", "port '65536' is not a number in "
    "1..65535" },
  { ADDRESS ("host:99999999999999999999"), "5:14", "is not a number" },
  { ADDRESS ("host:80x"), "5:14", "port '80x' is not a number" },
  { ADDRESS ("host:-1"), "5:14", "port '-1' is not a number" },
  { ADDRESS ("host:http"), "5:14", "port 'http' is not a number" },
  { ADDRESS ("::1:10901"), "5:14", "write an IPv6 address in brackets, as "
    "[::1]:port" },
  { ADDRESS ("'[::1]10901'"), "5:14", "is not [IPv6]:port" },
  { ADDRESS ("'[::1'"), "5:14", "is not [IPv6]:port" },
  { ADDRESS ("'[]:10901'"), "5:14", "'' is not an IPv6 address" },
  { ADDRESS ("'[not-v6]:10901'"), "5:14", "'not-v6' is not an IPv6 "
    "address" },
  { ADDRESS ("'[::1]:'"), "5:14", "has no port" },
  { ADDRESS ("'ho st:1'"), "5:14", "host 'ho st' is not a valid host name" },
};

START_TEST (test_bad_address)
{
  ck_assert_load_error (bad_addresses[_i].text, bad_addresses[_i].pos,
                        bad_addresses[_i].phrase);
}
END_TEST

/* Paths and disks. */

#define DISKS(d) \
  VOLUMES "nodes:\n  - name: a\n    address: 'h:1'\n    data-dir: a\n" \
  "    disks:\n" d

static const struct bad bad_disks[] = {
  { DISKS ("      vol1: /dev/loop0\n"), "8:7",
    "disks names unknown volume 'vol1'" },
  { DISKS ("      vol0: ''\n"), "8:13", "disk of volume 'vol0' is empty" },
  { DISKS ("      vol0: /dev/loop0\n      vol0: /dev/loop1\n"), "9:7",
    "duplicate key 'vol0' in disks (first at 8:7)" },
  { DISKS ("      vol0: [a]\n"), "8:13", "disk of volume 'vol0' must be a "
    "scalar" },
  { VOLUMES "nodes:\n  - {name: a, address: 'h:1', data-dir: ''}\n", "4:41",
    "node data-dir is empty" },
  { VOLUMES "nodes:\n  - {name: a, address: 'h:1', data-dir: a, "
    "control: ''}\n", "4:53", "node control is empty" },
  { "settings: {secret-file: ''}\n" BASE, "1:25", "settings secret-file is "
    "empty" },
};

START_TEST (test_bad_path)
{
  ck_assert_load_error (bad_disks[_i].text, bad_disks[_i].pos,
                        bad_disks[_i].phrase);
}
END_TEST

START_TEST (test_control_path_too_long)
{
  char text[1024], long_dir[256];

  memset (long_dir, 'd', 120);
  long_dir[120] = '\0';
  snprintf (text, sizeof text, VOLUMES "nodes:\n"
            "  - {name: a, address: 'h:1', data-dir: /%s}\n", long_dir);
  ck_assert_load_error (text, "4:41", "control socket path");
}
END_TEST

/* Every shipped example loads. */
START_TEST (test_examples_load)
{
  const char *srcdir = getenv ("SRCDIR");
  char pattern[PATH_MAX], err[1024];
  struct br_config *cfg;
  glob_t g;
  size_t i;

  snprintf (pattern, sizeof pattern, "%s/config/*.yaml",
            srcdir ? srcdir : ".");
  ck_assert_msg (glob (pattern, 0, NULL, &g) == 0,
                 "no file matches %s (is SRCDIR set?)", pattern);
  ck_assert_uint_ge (g.gl_pathc, 3);
  for (i = 0; i < g.gl_pathc; i++) {
    ck_assert_msg (br_config_load (g.gl_pathv[i], &cfg, err, sizeof err) == 0,
                   "%s", err);
    ck_assert_uint_ge (cfg->n_nodes, 1);
    br_config_free (cfg);
  }
  globfree (&g);
}
END_TEST

#define LOOP(tc, fn, table) \
  tcase_add_loop_test ((tc), (fn), 0, sizeof (table) / sizeof (table)[0])

static Suite *
config_suite (void)
{
  Suite *s = suite_create ("config");
  TCase *good = tcase_create ("good");
  TCase *size = tcase_create ("size");
  TCase *file = tcase_create ("file");
  TCase *bad = tcase_create ("bad");

  tcase_add_checked_fixture (good, setup, teardown);
  tcase_add_test (good, test_good_file);
  tcase_add_test (good, test_defaults);
  tcase_add_test (good, test_defaults_sync);
  tcase_add_test (good, test_outage_keys);
  tcase_add_test (good, test_outage_limits);
  LOOP (good, test_activity_window, good_windows);
  tcase_add_test (good, test_metrics_keys);
  tcase_add_test (good, test_hardening_keys);
  tcase_add_test (good, test_relative_to_file);
  tcase_add_test (good, test_single_node_no_links);
  tcase_add_test (good, test_empty_links);
  tcase_add_test (good, test_lookups);
  tcase_add_test (good, test_disk_path);
  tcase_add_test (good, test_ipv6_and_port_forms);
  tcase_add_test (good, test_name_of_max_length);
  tcase_add_test (good, test_granularity_limits);
  tcase_add_test (good, test_granularity_frame_bound);
  tcase_add_test (good, test_examples_load);
  suite_add_tcase (s, good);

  LOOP (size, test_parse_size_good, good_sizes);
  LOOP (size, test_parse_size_bad, bad_sizes);
  LOOP (size, test_parse_duration_good, good_durations);
  LOOP (size, test_parse_duration_bad, bad_durations);
  suite_add_tcase (s, size);

  tcase_add_checked_fixture (file, setup, teardown);
  tcase_add_test (file, test_missing_file);
  tcase_add_test (file, test_empty_file);
  tcase_add_test (file, test_syntax_error);
  tcase_add_test (file, test_invalid_utf8);
  tcase_add_test (file, test_undefined_alias);
  tcase_add_test (file, test_second_document);
  tcase_add_test (file, test_nul_byte);
  suite_add_tcase (s, file);

  tcase_add_checked_fixture (bad, setup, teardown);
  LOOP (bad, test_wrong_kind, bad_kinds);
  tcase_add_test (bad, test_unknown_key);
  tcase_add_test (bad, test_unknown_key_top_level);
  tcase_add_test (bad, test_unknown_key_settings);
  tcase_add_test (bad, test_duplicate_key);
  tcase_add_test (bad, test_duplicate_key_top_level);
  tcase_add_test (bad, test_duplicate_key_new);
  LOOP (bad, test_missing_field, missing);
  LOOP (bad, test_empty_section, empty_sections);
  LOOP (bad, test_bad_volume_size, bad_volume_sizes);
  LOOP (bad, test_bad_granularity, bad_granularities);
  LOOP (bad, test_bad_link_value, bad_link_values);
  LOOP (bad, test_bad_duration, bad_durations_in_file);
  LOOP (bad, test_misordered, misordered);
  LOOP (bad, test_bad_link_enum, bad_link_enums);
  tcase_add_test (bad, test_pull_ahead_on_sync);
  LOOP (bad, test_bad_between, bad_betweens);
  tcase_add_test (bad, test_link_unknown_node);
  tcase_add_test (bad, test_link_to_itself);
  tcase_add_test (bad, test_duplicate_link);
  tcase_add_loop_test (bad, test_bad_tls, 0,
                       sizeof bad_tls / sizeof bad_tls[0]);
  tcase_add_test (bad, test_tls_default);
  tcase_add_test (bad, test_duplicate_volume);
  tcase_add_test (bad, test_duplicate_node);
  tcase_add_test (bad, test_duplicate_address);
  LOOP (bad, test_bad_name, bad_names);
  LOOP (bad, test_bad_address, bad_addresses);
  LOOP (bad, test_bad_path, bad_disks);
  tcase_add_test (bad, test_control_path_too_long);
  suite_add_tcase (s, bad);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (config_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
