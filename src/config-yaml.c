/* blockrelay — the YAML layer of the topology loader: reading the file,
 * composing its one document with libyaml, and walking mappings,
 * sequences and scalars against a schema, with every problem reported as
 * "PATH:LINE:COL: problem".  It knows nothing of volumes, nodes or links:
 * config.c holds the schema, the values and the checks between them.
 *
 * Rules: every function that fails has written the message into the
 * loader (l->err) and returns -1 or NULL; a key or value is reported at
 * its own start mark, a missing key at its mapping's.  libyaml accepts
 * duplicate keys, so get_fields() refuses them here.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "config-yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FILE_SIZE (16 * 1024 * 1024)

/* Errors. */

int
br__cfg_report (struct loader *l, const yaml_mark_t *mark, const char *fmt,
                ...)
{
  va_list ap;
  int n;

  if (l->errlen == 0)
    return -1;
  if (mark)
    n = snprintf (l->err, l->errlen, "%s:%zu:%zu: ", l->path,
                  mark->line + 1, mark->column + 1);
  else
    n = snprintf (l->err, l->errlen, "%s: ", l->path);
  if (n >= 0 && (size_t) n < l->errlen) {
    va_start (ap, fmt);
    vsnprintf (l->err + n, l->errlen - n, fmt, ap);
    va_end (ap);
  }
  return -1;
}


const char *
br__cfg_kind (const yaml_node_t *n)
{
  return n->type == YAML_SCALAR_NODE ? "a scalar"
    : n->type == YAML_SEQUENCE_NODE ? "a sequence" : "a mapping";
}

char *
br__cfg_copy (struct loader *l, yaml_node_t *n, const char *s, size_t len)
{
  char *r = strndup (s, len);

  if (!r)
    fail (l, n, "out of memory");
  return r;
}

/* Reading and composing the document. */

/* Read the whole file (which may be a pipe) into *BUF. */
int
br__cfg_read_file (struct loader *l, char **buf, size_t *len)
{
  FILE *fp = fopen (l->path, "rb");
  size_t cap = 0;
  char *p;
  int r = 0;

  *buf = NULL;
  *len = 0;
  if (!fp)
    return br__cfg_report (l, NULL, "cannot open: %s", strerror (errno));
  while (*len == cap && r == 0) {
    if (cap >= MAX_FILE_SIZE)
      r = br__cfg_report (l, NULL, "file is larger than %d bytes",
                          MAX_FILE_SIZE);
    else if (!(p = realloc (*buf, cap = cap ? 2 * cap : 4096)))
      r = br__cfg_report (l, NULL, "out of memory");
    else
      *len += fread ((*buf = p) + *len, 1, cap - *len, fp);
  }
  if (r == 0 && ferror (fp))
    r = br__cfg_report (l, NULL, "cannot read: %s", strerror (errno));
  fclose (fp);
  return r;
}

/* libyaml's reader errors carry a byte offset rather than a mark. */
static yaml_mark_t
offset_mark (const char *buf, size_t len, size_t offset)
{
  yaml_mark_t m = { .index = offset };
  size_t i;

  for (i = 0; i < offset && i < len; i++) {
    if (buf[i] == '\n') {
      m.line++;
      m.column = 0;
    }
    else
      m.column++;
  }
  return m;
}

static int
syntax_error (struct loader *l, yaml_parser_t *p, const char *buf, size_t len)
{
  yaml_mark_t m = p->problem_mark;

  switch (p->error) {
  case YAML_MEMORY_ERROR:
    return br__cfg_report (l, NULL, "out of memory");
  case YAML_READER_ERROR:
    m = offset_mark (buf, len, p->problem_offset);
    return br__cfg_report (l, &m, "syntax error: %s", p->problem);
  default:
    if (p->context)
      return br__cfg_report (l, &m, "syntax error: %s (%s at %zu:%zu)",
                             p->problem, p->context,
                             p->context_mark.line + 1,
                             p->context_mark.column + 1);
    return br__cfg_report (l, &m, "syntax error: %s",
                           p->problem ? p->problem : "unknown error");
  }
}

/* Compose the single document of BUF into l->doc. */
int
br__cfg_compose (struct loader *l, const char *buf, size_t len)
{
  yaml_parser_t parser;
  yaml_document_t extra;
  yaml_node_t *root;
  int r = -1;

  if (!yaml_parser_initialize (&parser))
    return br__cfg_report (l, NULL, "out of memory");
  yaml_parser_set_input_string (&parser, (const unsigned char *) buf, len);
  if (!yaml_parser_load (&parser, &l->doc)) {
    syntax_error (l, &parser, buf, len);
    goto out;
  }
  if (!yaml_document_get_root_node (&l->doc)) {
    yaml_mark_t start = { 0 };
    br__cfg_report (l, &start,
                    "the file is empty (expected volumes and nodes)");
    goto out_doc;
  }
  if (!yaml_parser_load (&parser, &extra)) {
    syntax_error (l, &parser, buf, len);
    goto out_doc;
  }
  if ((root = yaml_document_get_root_node (&extra)) != NULL)
    fail (l, root, "found a second YAML document (the file must hold "
          "exactly one)");
  else
    r = 0;
  yaml_document_delete (&extra);
 out_doc:
  if (r == -1)
    yaml_document_delete (&l->doc);
 out:
  yaml_parser_delete (&parser);
  return r;
}

/* Mappings, sequences and scalars. */

yaml_node_t *
br__cfg_node_at (struct loader *l, int id)
{
  return yaml_document_get_node (&l->doc, id);
}

static int
unknown_key (struct loader *l, yaml_node_t *key, const struct schema *s)
{
  char expected[MAX_KEYS * 24] = "";
  size_t i, n = 0;

  for (i = 0; s->keys[i] && n < sizeof expected; i++)
    n += snprintf (expected + n, sizeof expected - n, "%s%s",
                   i > 0 ? ", " : "", s->keys[i]);
  return fail (l, key, "unknown key '%s' in %s (expected: %s)",
               TEXT (key), s->what, expected);
}

/* Collect the pairs of mapping MAP, rejecting unknown and duplicate keys. */
int
br__cfg_get_fields (struct loader *l, yaml_node_t *map,
                    const struct schema *s, struct fields *f)
{
  yaml_node_pair_t *p;
  size_t i;

  memset (f, 0, sizeof *f);
  f->schema = s;
  f->map = map;
  if (map->type != YAML_MAPPING_NODE)
    return fail (l, map, "%s must be a mapping, not %s", s->what,
                 br__cfg_kind (map));
  for (p = map->data.mapping.pairs.start;
       p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = br__cfg_node_at (l, p->key);

    if (k->type != YAML_SCALAR_NODE)
      return fail (l, k, "a key in %s must be a scalar, not %s",
                   s->what, br__cfg_kind (k));
    for (i = 0; s->keys[i] && strcmp (s->keys[i], TEXT (k)) != 0; i++)
      ;
    if (!s->keys[i])
      return unknown_key (l, k, s);
    if (f->key[i])
      return fail (l, k, "duplicate key '%s' in %s (first at %zu:%zu)",
                   TEXT (k), s->what, LINE (f->key[i]), COL (f->key[i]));
    f->key[i] = k;
    f->val[i] = br__cfg_node_at (l, p->value);
  }
  return 0;
}

static size_t
key_index (const struct fields *f, const char *key)
{
  size_t i;

  for (i = 0; f->schema->keys[i]; i++)
    if (strcmp (f->schema->keys[i], key) == 0)
      return i;
  abort ();                     /* a key missing from the schema is a bug */
}

/* The value of KEY in F, or NULL if the key is absent. */
yaml_node_t *
br__cfg_field (const struct fields *f, const char *key)
{
  return f->val[key_index (f, key)];
}

/* The key node of KEY in F, or NULL if the key is absent. */
yaml_node_t *
br__cfg_field_key (const struct fields *f, const char *key)
{
  return f->key[key_index (f, key)];
}

yaml_node_t *
br__cfg_require (struct loader *l, const struct fields *f, const char *key)
{
  yaml_node_t *v = br__cfg_field (f, key);

  if (!v)
    fail (l, f->map, "%s is missing required key '%s'", f->schema->what, key);
  return v;
}

/* `key:` with no value, "~" or "null". */
bool
br__cfg_is_null (const yaml_node_t *n)
{
  return n->type == YAML_SCALAR_NODE &&
    n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
    (n->data.scalar.length == 0 || strcmp (TEXT (n), "~") == 0 ||
     strcasecmp (TEXT (n), "null") == 0);
}

/* The items of sequence N.  LABEL names it in messages.  An absent or null
 * value is an empty list when OPTIONAL, else an error, as is an empty list. */
int
br__cfg_get_items (struct loader *l, yaml_node_t *n, const char *label,
                   bool optional, yaml_node_item_t **items, size_t *count)
{
  *items = NULL;
  *count = 0;
  if (optional && (!n || br__cfg_is_null (n)))
    return 0;
  if (br__cfg_is_null (n))
    return fail (l, n, "%s must not be empty", label);
  if (n->type != YAML_SEQUENCE_NODE)
    return fail (l, n, "%s must be a sequence, not %s", label,
                 br__cfg_kind (n));
  *items = n->data.sequence.items.start;
  *count = n->data.sequence.items.top - n->data.sequence.items.start;
  if (*count == 0 && !optional)
    return fail (l, n, "%s must not be empty", label);
  return 0;
}

const char *
br__cfg_scalar (struct loader *l, yaml_node_t *n, const char *label)
{
  if (n->type != YAML_SCALAR_NODE) {
    fail (l, n, "%s must be a scalar, not %s", label, br__cfg_kind (n));
    return NULL;
  }
  if (strlen (TEXT (n)) != n->data.scalar.length) {
    fail (l, n, "%s contains a NUL byte", label);
    return NULL;
  }
  return br__cfg_is_null (n) ? "" : TEXT (n);
}
