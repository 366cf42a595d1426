/* blockrelay — libFuzzer target: the topology loader (src/config*.c,
 * src/topology.c).
 *
 * The input is the text of a topology file.  It goes through
 * br_config_load_buffer(), the loader br_config_load() uses once it has
 * read the file (so blockrelayd, the plugin and `blockrelay check-config`
 * parse exactly this way), under the made-up name FUZZ_PATH: nothing is
 * read or written on disk (relative paths are resolved lexically against
 * its directory, which need not exist).
 *
 * A refused input must come with a message that starts with the path (the
 * "PATH:LINE:COL: problem" contract of config.h).  An accepted one gets
 * what `blockrelay check-config` does with it (cli.c print_flow: the
 * children of every node for every possible origin) and what the engine
 * looks up at start-up (each node, volume, link, disk path and parent),
 * and each lookup is checked against the config it came from.  The config
 * is then freed (leak detection is on).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

#define FUZZ_PATH "/fuzz/topology.yaml"
#define MAX_KIDS 64                     /* as print_flow in cli.c */

static void
check_config (const struct br_config *cfg)
{
  char path[4096];

  for (size_t i = 0; i < cfg->n_volumes; i++)
    assert (br_config_volume (cfg, cfg->volumes[i].name)
            == &cfg->volumes[i]);
  for (size_t i = 0; i < cfg->n_links; i++) {
    const struct br_link_cfg *l = &cfg->links[i];
    assert (br_config_link (cfg, l->a, l->b) == l);
    assert (br_config_link (cfg, l->b, l->a) == l);
  }
  for (size_t i = 0; i < cfg->n_nodes; i++) {
    const struct br_node_cfg *n = &cfg->nodes[i];

    assert (br_config_node (cfg, n->name) == n);
    assert (n->data_dir[0] == '/');
    for (size_t v = 0; v < cfg->n_volumes; v++)
      (void) br_config_disk_path (cfg, n, cfg->volumes[v].name, path,
                                  sizeof path);
    /* check-config's flow, for N as the origin. */
    for (size_t j = 0; j < cfg->n_nodes; j++) {
      const struct br_node_cfg *kids[MAX_KIDS];
      const struct br_link_cfg *links[MAX_KIDS];
      const char *parent;
      int k = br_topology_children (cfg, n->name, cfg->nodes[j].name, kids,
                                    links, MAX_KIDS);

      assert (k >= 0 || k == -E2BIG);
      for (int c = 0; c < k; c++) {
        assert (links[c] == br_config_link (cfg, cfg->nodes[j].name,
                                            kids[c]->name));
        parent = br_topology_parent (cfg, n->name, kids[c]->name);
        assert (parent && strcmp (parent, cfg->nodes[j].name) == 0);
      }
      parent = br_topology_parent (cfg, n->name, cfg->nodes[j].name);
      assert (i != j || parent == NULL);
    }
  }
  assert (br_config_node (cfg, "no such node!") == NULL);
  assert (br_topology_children (cfg, "no such node!", "x", NULL, NULL, 0)
          == -ENOENT);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct br_config *cfg = NULL;
  char err[1024];

  if (br_config_load_buffer (FUZZ_PATH, (const char *) data, size, &cfg,
                             err, sizeof err) < 0) {
    assert (cfg == NULL);
    assert (strncmp (err, FUZZ_PATH ":", strlen (FUZZ_PATH ":")) == 0);
    return 0;
  }
  assert (cfg != NULL);
  check_config (cfg);
  br_config_free (cfg);
  return 0;
}
