/* blockrelay — the YAML layer of the topology loader (config-yaml.c),
 * internal to config.c.  See config-yaml.c for the rules.
 */
#ifndef BR_CONFIG_YAML_H
#define BR_CONFIG_YAML_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#define MAX_KEYS 16

#define TEXT(node) ((const char *) (node)->data.scalar.value)
#define LINE(node) ((node)->start_mark.line + 1)
#define COL(node) ((node)->start_mark.column + 1)

struct loader {
  const char *path;             /* the file as given, for messages */
  char *dir;                    /* absolute directory of the file */
  yaml_document_t doc;
  struct br_config *cfg;
  char *err;
  size_t errlen;
};

/* The keys a mapping may hold, and its name in messages. */
struct schema {
  const char *what;
  const char *const keys[MAX_KEYS + 1];   /* NULL-terminated */
};

/* The pairs found in one mapping, indexed like schema->keys. */
struct fields {
  const struct schema *schema;
  yaml_node_t *map;
  yaml_node_t *key[MAX_KEYS];
  yaml_node_t *val[MAX_KEYS];
};

/* Write "PATH:LINE:COL: message" (or "PATH: message" without MARK) into
 * the loader's error buffer.  Returns -1. */
int br__cfg_report (struct loader *l, const yaml_mark_t *mark,
                    const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
#define fail(l, node, ...) br__cfg_report ((l), &(node)->start_mark, \
                                           __VA_ARGS__)

/* "a scalar", "a sequence" or "a mapping", for messages. */
const char *br__cfg_kind (const yaml_node_t *n);

/* strndup (S, LEN), reporting at N when out of memory. */
char *br__cfg_copy (struct loader *l, yaml_node_t *n, const char *s,
                    size_t len);

/* Read the whole of l->path (which may be a pipe) into *BUF. */
int br__cfg_read_file (struct loader *l, char **buf, size_t *len);

/* Compose the single document of BUF into l->doc (deleted on failure). */
int br__cfg_compose (struct loader *l, const char *buf, size_t len);

yaml_node_t *br__cfg_node_at (struct loader *l, int id);

/* Collect the pairs of mapping MAP, refusing unknown and duplicate keys. */
int br__cfg_get_fields (struct loader *l, yaml_node_t *map,
                        const struct schema *s, struct fields *f);

/* The value, or the key node, of KEY in F; NULL if absent.  KEY must be
 * in F's schema (abort otherwise: a programmer error). */
yaml_node_t *br__cfg_field (const struct fields *f, const char *key);
yaml_node_t *br__cfg_field_key (const struct fields *f, const char *key);

/* The value of KEY, or NULL with "missing required key" reported. */
yaml_node_t *br__cfg_require (struct loader *l, const struct fields *f,
                              const char *key);

/* `key:` with no value, "~" or "null". */
bool br__cfg_is_null (const yaml_node_t *n);

/* The items of sequence N (LABEL names it in messages).  An absent or
 * null value is an empty list when OPTIONAL, else an error, as is an
 * empty list. */
int br__cfg_get_items (struct loader *l, yaml_node_t *n, const char *label,
                       bool optional, yaml_node_item_t **items,
                       size_t *count);

/* The text of scalar N ("" for null), or NULL with the problem reported
 * (not a scalar, an embedded NUL). */
const char *br__cfg_scalar (struct loader *l, yaml_node_t *n,
                            const char *label);

#endif /* BR_CONFIG_YAML_H */
