/* blockrelay — the decision of a role change (promote, demote): pure,
 * with numbered rules P1-P6 and D1-D4 (role.c), table-tested in
 * tests/unit/test_role.c.
 */
#ifndef BR_ROLE_H
#define BR_ROLE_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"             /* enum br_role */

enum br_role_op { BR_ROLE_PROMOTE, BR_ROLE_DEMOTE };

/* What the loop thread knows when the operator asks. */
struct br_role_facts {
  const char *node;                 /* this node */
  enum br_role role;
  bool busy;                        /* a role change is under way */
  bool can_serve;                   /* an NBD front end (the plugin) */
  bool force;                       /* --force */
  const char *upstream;             /* a group's running upstream session:
                                       its node, or NULL */
  const char *group;                /* the group the rule names */
  bool starting;                    /* an upstream session is starting or
                                       closing (no running one) */
  const char *inconsistent;         /* a volume that is not consistent */
  unsigned clients;                 /* NBD connections open */
  const char *lagging;              /* a connected peer with records not
                                       yet durable there, or NULL */
};

/* 0: go ahead; -EALREADY, -EBUSY (retry later), -EPERM: refused, with
 * the rule and the reason in WHY. */
int br_role_check (enum br_role_op op, const struct br_role_facts *f,
                   char *why, size_t len);

#endif
