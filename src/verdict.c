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
 *   1. DST's changes are discarded (the operator's `blockrelay resolve
 *      VOLUME --discard DST` on SRC) and both record the same last
 *      common generation -> RESYNC, taking DST's bitmap
 *        Since both were last in sync each bitmap tracked its side's
 *        writes: their union is every region that may differ.
 *   2. DST's changes are discarded, no common record -> FULL_SYNC
 *   3. DST owes SRC regions, DST is at the generation SRC last synced
 *      with it, and SRC has moved on from it -> RESYNC, taking DST's
 *      bitmap (failback)
 *        DST was SRC's upstream and stopped; SRC was promoted from DST's
 *        generation.  DST's writes SRC lacks (in flight, or not yet
 *        replicated by an async link) are the regions DST owes it, and
 *        they are given up: SRC's copy is the one the clients went on
 *        with.  A DST that wrote after it lost SRC took a new generation
 *        first (engine.c), so it fails this rule and meets rule 4.
 *   4. DST owes SRC regions and is not fresh -> SPLIT_BRAIN
 *        DST has bits set for SRC: it was SRC's upstream and holds writes
 *        SRC never made durable.  SRC was made primary behind it.
 *   5. DST is fresh, SRC's operator said assume-clean -> ASSUMED
 *   6. DST is fresh, SRC is a relay that is fresh too -> RESYNC
 *        Neither holds anything: everything DST will hold arrives from
 *        upstream through SRC's write path, which marks it for DST.
 *   7. DST is fresh -> FULL_SYNC
 *   8. SRC is a relay that holds nothing yet (fresh) and DST holds
 *      data -> WAIT
 *        SRC compares again once it has adopted its upstream's generation.
 *   9. SRC is fresh and DST holds data of a generation SRC never had
 *      -> DST_AHEAD
 *        SRC's disk is new or was lost (fresh means never written and
 *        never synced with anyone: a completed sync clears it): a sync
 *        would overwrite DST's data with nothing.  A generation SRC had
 *        (its own or one on its history) goes on to rules 10 and 12: a
 *        fresh copy's history holds only generations of its current,
 *        never written disk (engine.c mark_lost wipes the history before
 *        it sets FRESH), so DST holds only what SRC sent it: a fresh SRC
 *        that synced DST and restarted before it recorded DST's SYNCED.
 *  10. DST is at SRC's generation -> RESYNC
 *  11. DST is at the generation SRC last synced it at -> RESYNC
 *        SRC's bitmap tracked every difference since.  Either side's
 *        record counts when the generation is SRC's: SRC records its base
 *        only once DST's SYNCED is durable, so a SRC stopped or cut in
 *        between restarts under a new generation with no record, while
 *        DST recorded the base before it took the generation (apply.c).
 *  12. DST is at an earlier generation of SRC, and SRC synced DST
 *      before -> RESYNC
 *        The bitmap has tracked DST since that sync.
 *  13. after-split-brain is discard-zero-changes (the default), SRC is
 *      the origin, DST owes SRC nothing and both record the same last
 *      common generation -> RESYNC
 *        DST was not written since both were in sync (a write there
 *        would have set a bit for SRC), so SRC's bitmap holds every
 *        difference and nothing of DST's is lost.
 *  14. DST is at an earlier generation of SRC that SRC took over as a
 *      replica, and SRC never synced DST -> SPLIT_BRAIN
 *        Nothing on SRC tracked what DST received meanwhile (from the
 *        primary before SRC): DST cannot be told apart from a copy with
 *        writes SRC lacks.  An operator re-seeds it (resolve).
 *  15. anything else -> SPLIT_BRAIN
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

/* The sender merges the receiver's bitmap for it into its own. */
static struct br_verdict
take (struct br_verdict v)
{
  v.take_owed = true;
  return v;
}

struct br_verdict
br_gen_verdict (const struct br_verdict_in *in)
{
  const struct br_gen_view *s = &in->src, *d = &in->dst;

  bool common = s->base != 0 && s->base == d->base;

  if (in->discard_dst && !fresh (d)) {
    if (common)
      return take (rule (1, BR_VERDICT_RESYNC, "the operator discards the "
                         "receiver's changes: both bitmaps since the last "
                         "common generation"));
    return rule (2, BR_VERDICT_FULL_SYNC, "the operator discards the "
                 "receiver's changes, and no common generation is "
                 "recorded");
  }
  if (d->owed > 0 && !fresh (d)) {
    if (s->base != 0 && d->gen == s->base && s->gen != d->gen &&
        in_history (s, d->gen))
      return take (rule (3, BR_VERDICT_RESYNC, "the receiver was the "
                         "sender's upstream and stopped, the sender was "
                         "promoted from its generation: both bitmaps, the "
                         "receiver's unreplicated writes are discarded"));
    return rule (4, BR_VERDICT_SPLIT_BRAIN, "the receiver holds writes the "
                 "sender never made durable (it was the sender's upstream)");
  }
  if (fresh (d)) {
    if (in->assume_clean)
      return rule (5, BR_VERDICT_ASSUMED, "the receiver is new and "
                   "assume-clean is set");
    if (in->src_relay && fresh (s))
      return rule (6, BR_VERDICT_RESYNC, "both are new: the receiver gets "
                   "what arrives from upstream");
    return rule (7, BR_VERDICT_FULL_SYNC, "the receiver is new");
  }
  if (fresh (s) && in->src_relay)
    return rule (8, BR_VERDICT_WAIT, "the sender is a relay not yet synced "
                 "from its upstream, and the receiver holds data");
  if (fresh (s) && d->gen != s->gen && !in_history (s, d->gen))
    return rule (9, BR_VERDICT_DST_AHEAD, "the sender holds nothing (a new "
                 "or lost disk) and the receiver holds data");
  if (d->gen == s->gen)
    return rule (10, BR_VERDICT_RESYNC, "same generation");
  if ((s->base != 0 && d->gen == s->base) ||
      (d->base != 0 && d->gen == d->base && in_history (s, d->gen)))
    return rule (11, BR_VERDICT_RESYNC, "the receiver is where the sender "
                 "last synced it");
  if (in_history (s, d->gen) && s->base != 0)
    return rule (12, BR_VERDICT_RESYNC, "the receiver is at an earlier "
                 "generation of the sender, which synced it before");
  if (in->discard_zero && !in->src_relay && d->owed == 0 && common)
    return rule (13, BR_VERDICT_RESYNC, "the receiver has no changes since "
                 "both were last in sync (after-split-brain: "
                 "discard-zero-changes)");
  if (in_history (s, d->gen))
    return rule (14, BR_VERDICT_SPLIT_BRAIN, "the receiver is at a "
                 "generation the sender took over as a replica and the "
                 "sender never synced it: it may hold writes the sender "
                 "lacks");
  return rule (15, BR_VERDICT_SPLIT_BRAIN, "the receiver's generation is "
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
