/* blockrelay — the flow of data through the topology.
 *
 * Links are undirected; data flows away from the node that serves the
 * volumes (the primary, called the origin here) along the shortest-path
 * tree rooted at it.  Each node forwards what it applies to its children
 * in that tree and receives from its parent, so:
 *
 *   star   a-b, a-c, a-d        a sends to b, c and d;
 *   chain  a-b, b-c, c-d        a sends to b, b to c, c to d;
 *   mesh   every pair linked    the origin sends to every other node
 *                               directly; nobody forwards.
 *
 * Invariant (checked at load time by br_topology_check, for every
 * possible origin, so the file works unchanged whichever node serves):
 *   T1. Every node other than the origin has exactly one neighbour that is
 *       one hop closer to the origin: its parent.  Two equally short paths
 *       (a square a-b, b-c, c-d, d-a) would make the flow ambiguous, and
 *       are refused with the position of the link that closes the cycle.
 * A triangle (or any mesh) satisfies T1: every node is one hop from the
 * origin.  A node with no path to the origin simply receives nothing (a
 * file may hold nodes that are not linked yet).
 *
 * Pure functions over an immutable config; no allocation beyond small
 * per-call arrays.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
node_index (const struct br_config *cfg, const char *name)
{
  for (size_t i = 0; i < cfg->n_nodes; i++)
    if (strcmp (cfg->nodes[i].name, name) == 0)
      return (int) i;
  return -1;
}

/* Breadth-first search from ORIGIN.  Fills DIST (-1: unreachable) and
 * PARENT (-1: none) for every node and PLINK with the link to the parent.
 * Returns -1 (0 if fine) and sets *AMB_NODE / *AMB_LINK when some node has
 * two parents at the same distance (T1). */
static int
bfs (const struct br_config *cfg, int origin, int *dist, int *parent,
     int *plink, int *amb_node, int *amb_link)
{
  int *queue = malloc (cfg->n_nodes * sizeof *queue);
  size_t head = 0, tail = 0;
  int ret = 0;

  if (queue == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < cfg->n_nodes; i++)
    dist[i] = parent[i] = plink[i] = -1;
  dist[origin] = 0;
  queue[tail++] = origin;
  while (head < tail) {
    int u = queue[head++];

    for (size_t li = 0; li < cfg->n_links; li++) {
      const struct br_link_cfg *l = &cfg->links[li];
      int w;

      if (strcmp (l->a, cfg->nodes[u].name) == 0)
        w = node_index (cfg, l->b);
      else if (strcmp (l->b, cfg->nodes[u].name) == 0)
        w = node_index (cfg, l->a);
      else
        continue;
      if (w < 0)
        continue;
      if (dist[w] < 0) {
        dist[w] = dist[u] + 1;
        parent[w] = u;
        plink[w] = (int) li;
        queue[tail++] = w;
      }
      else if (dist[w] == dist[u] + 1 && parent[w] != u && ret == 0) {
        *amb_node = w;
        *amb_link = (int) li;
        ret = -1;
      }
    }
  }
  free (queue);
  return ret;
}

int
br_topology_check (const struct br_config *cfg, char *err, size_t errlen)
{
  size_t n = cfg->n_nodes;
  int *buf = malloc (3 * n * sizeof *buf);
  int *dist = buf, *parent = buf + n, *plink = buf + 2 * n;
  int ret = 0;

  if (buf == NULL) {
    snprintf (err, errlen, "%s: out of memory", cfg->path);
    return -1;
  }
  for (size_t o = 0; o < n; o++) {
    int amb_node = -1, amb_link = -1;

    if (bfs (cfg, (int) o, dist, parent, plink, &amb_node, &amb_link) < 0) {
      const struct br_link_cfg *l = &cfg->links[amb_link];
      const struct br_link_cfg *first = &cfg->links[plink[amb_node]];

      snprintf (err, errlen, "%s:%d:%d: this link makes the flow of data "
                "ambiguous: with %s as primary, %s is %d hops away both "
                "through %s (link at %d:%d) and through %s; remove one of "
                "the links so that every node has one nearest neighbour "
                "towards any primary", cfg->path, l->line, l->column,
                cfg->nodes[o].name, cfg->nodes[amb_node].name,
                dist[amb_node], cfg->nodes[parent[amb_node]].name,
                first->line, first->column,
                strcmp (l->a, cfg->nodes[amb_node].name) == 0 ? l->b : l->a);
      ret = -1;
      break;
    }
  }
  free (buf);
  return ret;
}

int
br_topology_children (const struct br_config *cfg, const char *origin,
                      const char *node, const struct br_node_cfg **out,
                      const struct br_link_cfg **links, size_t max)
{
  size_t n = cfg->n_nodes, count = 0;
  int o = node_index (cfg, origin), self = node_index (cfg, node);
  int *buf, amb_node, amb_link;

  if (o < 0 || self < 0)
    return -ENOENT;
  buf = malloc (3 * n * sizeof *buf);
  if (buf == NULL)
    return -ENOMEM;
  /* A file that passed br_topology_check has no ambiguity; the tree is
   * the same either way (first parent found wins). */
  bfs (cfg, o, buf, buf + n, buf + 2 * n, &amb_node, &amb_link);
  for (size_t i = 0; i < n; i++)
    if (buf[n + i] == self) {
      if (count == max) {
        free (buf);
        return -E2BIG;
      }
      out[count] = &cfg->nodes[i];
      links[count] = &cfg->links[buf[2 * n + i]];
      count++;
    }
  free (buf);
  return (int) count;
}

const char *
br_topology_parent (const struct br_config *cfg, const char *origin,
                    const char *node)
{
  size_t n = cfg->n_nodes;
  int o = node_index (cfg, origin), self = node_index (cfg, node);
  int *buf, amb_node, amb_link;
  const char *ret = NULL;

  if (o < 0 || self < 0 || (buf = malloc (3 * n * sizeof *buf)) == NULL)
    return NULL;
  bfs (cfg, o, buf, buf + n, buf + 2 * n, &amb_node, &amb_link);
  if (buf[n + self] >= 0)
    ret = cfg->nodes[buf[n + self]].name;
  free (buf);
  return ret;
}
