/* blockrelay — the generation verdict (I6).
 *
 * Every copy of a volume carries generation identifiers in its scoreboard
 * header: its current generation, the last BR_SB_HISTORY earlier ones, and
 * per peer the generation it was last in sync with that peer at (its
 * "base": recorded by the sender when the peer made a SYNCED durable, and
 * by the receiver when it applied SYNCED).  A primary takes a new
 * generation at every start, so what it writes from then on is a history
 * its peers can only hold by syncing from it.  A copy whose disk was new
 * or lost is FRESH (durably, before the disk is created): it holds
 * nothing anyone could lose.
 *
 * When SRC (the upstream) connects to DST, both sides call
 * br_gen_verdict() with the same inputs (HELLO carries SRC's view, WELCOME
 * DST's) and log the rule that decided.  The rules, first match wins, the
 * model being DRBD's drbd_uuid_compare():
 *
 *   1. DST owes SRC regions and is not fresh -> SPLIT_BRAIN
 *        DST has bits set for SRC: it was SRC's upstream and holds writes
 *        SRC never made durable.  SRC was made primary behind it.
 *   2. DST is fresh, SRC's operator said assume-clean -> ASSUMED
 *   3. DST is fresh, SRC is a relay that is fresh too -> RESYNC
 *        Neither holds anything: everything DST will hold arrives from
 *        upstream through SRC's write path, which marks it for DST.
 *   4. DST is fresh -> FULL_SYNC
 *   5. SRC is a relay that holds nothing yet (fresh) and DST holds
 *      data -> WAIT
 *        SRC compares again once it has adopted its upstream's generation.
 *   6. SRC is fresh and DST holds data of a generation SRC never had
 *      -> DST_AHEAD
 *        SRC's disk is new or was lost (fresh means never written and
 *        never synced with anyone: a completed sync clears it): a sync
 *        would overwrite DST's data with nothing.  A generation SRC had
 *        (its own or one on its history) goes on to rules 7 and 9: a
 *        fresh copy's history holds only generations of its current,
 *        never written disk (engine.c mark_lost wipes the history before
 *        it sets FRESH), so DST holds only what SRC sent it: a fresh SRC
 *        that synced DST and restarted before it recorded DST's SYNCED.
 *   7. DST is at SRC's generation -> RESYNC
 *   8. DST is at the generation SRC last synced it at -> RESYNC
 *        SRC's bitmap tracked every difference since.  Either side's
 *        record counts when the generation is SRC's: SRC records its base
 *        only once DST's SYNCED is durable, so a SRC stopped or cut in
 *        between restarts under a new generation with no record, while
 *        DST recorded the base before it took the generation (apply.c).
 *   9. DST is at an earlier generation of SRC, and SRC synced DST
 *      before -> RESYNC
 *        The bitmap has tracked DST since that sync.
 *  10. DST is at an earlier generation of SRC that SRC took over as a
 *      replica, and SRC never synced DST -> SPLIT_BRAIN
 *        Nothing on SRC tracked what DST received meanwhile (from the
 *        primary before SRC): DST cannot be told apart from a copy with
 *        writes SRC lacks.  An operator re-seeds it.
 *  11. anything else -> SPLIT_BRAIN
 *        DST's generation is not on SRC's history: both were written
 *        independently.
 *
 * Pure: no I/O, no locks, no globals; table-driven tests in
 * tests/unit/test_verdict.c cover every rule.
 */
#include "verdict.h"

#include <stddef.h>

static bool
fresh (const struct br_gen_view *v)
{
  return (v->flags & BR_SB_FRESH) != 0;
}

static bool
in_history (const struct br_gen_view *v, uint64_t gen)
{
  if (gen == 0)
    return false;
  for (size_t i = 0; i < BR_SB_HISTORY; i++)
    if (v->history[i] == gen)
      return true;
  return false;
}

static struct br_verdict
rule (int n, enum br_verdict_action a, const char *why)
{
  return (struct br_verdict) { .action = a, .rule = n, .why = why };
}

struct br_verdict
br_gen_verdict (const struct br_verdict_in *in)
{
  const struct br_gen_view *s = &in->src, *d = &in->dst;

  if (d->owed > 0 && !fresh (d))
    return rule (1, BR_VERDICT_SPLIT_BRAIN, "the receiver holds writes the "
                 "sender never made durable (it was the sender's upstream)");
  if (fresh (d)) {
    if (in->assume_clean)
      return rule (2, BR_VERDICT_ASSUMED, "the receiver is new and "
                   "assume-clean is set");
    if (in->src_relay && fresh (s))
      return rule (3, BR_VERDICT_RESYNC, "both are new: the receiver gets "
                   "what arrives from upstream");
    return rule (4, BR_VERDICT_FULL_SYNC, "the receiver is new");
  }
  if (fresh (s) && in->src_relay)
    return rule (5, BR_VERDICT_WAIT, "the sender is a relay not yet synced "
                 "from its upstream, and the receiver holds data");
  if (fresh (s) && d->gen != s->gen && !in_history (s, d->gen))
    return rule (6, BR_VERDICT_DST_AHEAD, "the sender holds nothing (a new "
                 "or lost disk) and the receiver holds data");
  if (d->gen == s->gen)
    return rule (7, BR_VERDICT_RESYNC, "same generation");
  if ((s->base != 0 && d->gen == s->base) ||
      (d->base != 0 && d->gen == d->base && in_history (s, d->gen)))
    return rule (8, BR_VERDICT_RESYNC, "the receiver is where the sender "
                 "last synced it");
  if (in_history (s, d->gen)) {
    if (s->base != 0)
      return rule (9, BR_VERDICT_RESYNC, "the receiver is at an earlier "
                   "generation of the sender, which synced it before");
    return rule (10, BR_VERDICT_SPLIT_BRAIN, "the receiver is at a "
                 "generation the sender took over as a replica and the "
                 "sender never synced it: it may hold writes the sender "
                 "lacks");
  }
  return rule (11, BR_VERDICT_SPLIT_BRAIN, "the receiver's generation is "
               "not on the sender's history: both were written "
               "independently");
}

const char *
br_verdict_action_name (enum br_verdict_action a)
{
  switch (a) {
  case BR_VERDICT_RESYNC: return "resync";
  case BR_VERDICT_FULL_SYNC: return "full-sync";
  case BR_VERDICT_ASSUMED: return "assumed-in-sync";
  case BR_VERDICT_WAIT: return "wait";
  case BR_VERDICT_DST_AHEAD: return "receiver-ahead";
  case BR_VERDICT_SPLIT_BRAIN: return "split-brain";
  }
  return "?";
}

bool
br_verdict_stops (enum br_verdict_action a)
{
  return a == BR_VERDICT_DST_AHEAD || a == BR_VERDICT_SPLIT_BRAIN;
}
