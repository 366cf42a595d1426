/* blockrelay — the generation verdict (I6): who is ahead, who must be
 * fully synced, what is split brain.  One pure function of both sides'
 * metadata, called by the sending and the receiving side of every
 * handshake with the same inputs (they are exchanged in HELLO and
 * WELCOME), so both sides reach the same verdict by the same numbered
 * rule.  See verdict.c for the rules.
 */
#ifndef BR_VERDICT_H
#define BR_VERDICT_H

#include <stdbool.h>
#include <stdint.h>

#include "scoreboard.h"

/* One copy's metadata about one volume, as it concerns the other side of
 * the link. */
struct br_gen_view {
  uint64_t gen;                     /* current generation (nonzero) */
  uint64_t history[BR_SB_HISTORY];  /* earlier generations, 0 = empty */
  uint64_t base;                    /* generation this copy was last in
                                       sync with the other side at (0:
                                       never): set when it synced the other
                                       side or adopted from it */
  uint64_t owed;                    /* regions set in this copy's bitmap
                                       for the other side: writes the other
                                       side may lack */
  uint32_t flags;                   /* BR_SB_FRESH, BR_SB_CONSISTENT */
};

struct br_verdict_in {
  struct br_gen_view src;           /* the sending side (upstream) */
  struct br_gen_view dst;           /* the receiving side */
  bool src_relay;                   /* src forwards another node's stream
                                       (it is not the origin) */
  bool assume_clean;                /* src's operator said a new dst is
                                       identical (the plugin's option) */
  bool discard_dst;                 /* an operator resolved a split brain
                                       by discarding dst's changes */
  bool discard_zero;                /* src's link: after-split-brain is
                                       discard-zero-changes */
};

enum br_verdict_action {
  BR_VERDICT_RESYNC,        /* dst is on src's history: resync the
                               regions src's bitmap has set for dst */
  BR_VERDICT_FULL_SYNC,     /* dst holds nothing: every region */
  BR_VERDICT_ASSUMED,       /* assume-clean: a new dst taken as identical */
  BR_VERDICT_WAIT,          /* src cannot judge yet: retry later */
  BR_VERDICT_DST_AHEAD,     /* dst holds data src lacks: stop */
  BR_VERDICT_SPLIT_BRAIN,   /* both were written independently: stop */
};

struct br_verdict {
  enum br_verdict_action action;
  int rule;                         /* 1 .. BR_VERDICT_RULES */
  const char *why;                  /* static text: the rule in words */
  bool take_owed;                   /* RESYNC: src first merges the
                                       regions dst's bitmap owes it (dst's
                                       changes are discarded) */
};

#define BR_VERDICT_RULES 15

struct br_verdict br_gen_verdict (const struct br_verdict_in *in);
const char *br_verdict_action_name (enum br_verdict_action a);
/* True for the verdicts that stop replication (nothing is overwritten). */
bool br_verdict_stops (enum br_verdict_action a);

#endif
