/* blockrelay — the peer state machine.
 *
 * One peer is one downstream node of one group.  Its state says whether
 * records are queued to it and what its scoreboard bits mean.  This file
 * holds the whole machine: the transition table (pure, unit-tested in
 * tests/unit/test_peerfsm.c), the effects of each transition (pure), and
 * br__peer_event(), the only function that changes a peer's state.
 *
 *                 CONNECT            CONNECTED
 *     LOGGING ------------> CONNECTING -------> HANDSHAKE
 *     ^  ^  ^                                  |   |   |
 *     |  |  |                     SYNC_NEEDED  |   |   | SPLIT_BRAIN
 *     |  |  |            +---------------------+   |   +---------> HALTED
 *     |  |  |            v                IN_SYNC  |
 *     |  |  |        SYNCING ---RESYNC_DONE---> REPLICATING
 *     |  |  |          ^  ^  <---DIVERGED------    |
 *     |  |  |  DRAINED |  |                        | CONGESTED
 *     |  |  |          |  +--- CONGESTED --+       |
 *     |  |  |          |                   v       v
 *     |  |  |          +------------------- AHEAD <+
 *     |  |  |
 *     |  |  +-- LOST / DROP / STOP: from any connected state
 *     |  +----- CONNECT again after backoff; ERROR leads to FAILED:
 *     |         FAILED --CONNECT--> CONNECTING (longer backoff)
 *     +-------- STOP from every state (HALTED too: a restart is the
 *               operator's act)
 *
 *                 PAUSE (from every state but HALTED)
 *     any state ---------------------------------> PAUSED
 *     LOGGING  <--------------- RESUME ------------ PAUSED
 *
 *                 RESOLVE (the operator: blockrelay resolve)
 *     HALTED   ---------------------------------> LOGGING
 *   The split brain was resolved: the peer connects again, and the
 *   verdict sees which side's changes are discarded (verdict.c rules 1-2).
 *
 *                 RESYNC (the operator: blockrelay resync, verify --repair)
 *     REPLICATING --------------------------------> SYNCING
 *     SYNCING     ------------ (regions added) ---> SYNCING
 *   The regions are marked durably and put in the out-of-sync set before
 *   the event (resync.c br__resync_request); a peer that is not connected
 *   gets no event: its next connection's snapshot takes the bits.
 *
 *   PAUSED is the operator's (blockrelay pause): no connection and no
 *   retry (CONNECT is refused there, so a reconnect timer or a resolver
 *   answer that fires late must check), writes set bits whatever
 *   on-peer-loss says (br_peer_loss_policy), and RESUME hands the peer
 *   back to the reconnect timer: the handshake's verdict then resyncs
 *   what was written meanwhile.  A halted peer cannot be paused: the split
 *   brain is to be resolved first.  PAUSE while PAUSED and the events of a
 *   connection that is closing (LOST, ERROR, DROP, DIVERGED) leave it
 *   PAUSED; STOP leaves it LOGGING (a pause does not outlive the process).
 *
 * Self transitions that change nothing (LOST while LOGGING, DIVERGED while
 * SYNCING or AHEAD or not connected, ERROR while FAILED, ...) are listed
 * in the table too, so that every event is defined in every state where it
 * can happen; anything else is a programmer error.
 *
 * Effects (br_peer_effects), by the states they enter:
 *   into LOGGING/FAILED/HALTED from a state that was not down: END (epoch
 *       + 1 so sync waiters return; every queued record dropped, bits kept:
 *       the bitmap now tracks everything, P3 of peer.c);
 *   into AHEAD: DROP_UNSENT (pull-ahead: unsent records dropped, their
 *       bits stay set, last_seq keeps them set);
 *   into SYNCING from another state: RESYNC_BEGIN (the RESYNC marker, so
 *       the replica marks itself inconsistent before it applies anything
 *       that follows), and from REPLICATING also RESYNC_RESTART;
 *   into REPLICATING: SYNCED for every volume (the replica adopts our
 *       generation and is consistent once it has applied everything
 *       before it);
 *   into a down state from one that queued records or was AHEAD: APART
 *       (the copies part: on an origin, the next write takes a new
 *       generation first, so a history written without the peer is never
 *       mistaken for one it was promoted from: verdict rule 3).
 *
 * Invariants:
 *   F1. p->state changes only in br__peer_event, with the group lock held
 *       (asserted), and only along the table.
 *   F2. The effects of a transition happen in the same critical section as
 *       the state change, so no writer sees the new state without them.
 *   F3. An invalid transition asserts in debug builds; release builds log
 *       it as an internal error and leave the state unchanged.
 *   F4. Every change (not a self transition) is logged as one line with
 *       its reason and queued as a peer-state event, in the same critical
 *       section (br__events_peer_changed, events.c); br__peer_event_why
 *       gives the reason in words when the caller knows it better.
 */
#include "internal.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

#define X BR_PEER_INVALID
#define LOG BR_PEER_LOGGING
#define CON BR_PEER_CONNECTING
#define HS BR_PEER_HANDSHAKE
#define SYN BR_PEER_SYNCING
#define REP BR_PEER_REPLICATING
#define AHD BR_PEER_AHEAD
#define FLD BR_PEER_FAILED
#define HLT BR_PEER_HALTED
#define PAU BR_PEER_PAUSED

/* next[event][state] */
static const unsigned char next[BR_EV_N_EVENTS][BR_PEER_N_STATES] = {
  /*                    LOG  CON  HS   SYN  REP  AHD  FLD  HLT  PAU */
  [BR_EV_CONNECT]     = { CON, X,   X,   X,   X,   X,   CON, X,   X   },
  [BR_EV_CONNECTED]   = { X,   HS,  X,   X,   X,   X,   X,   X,   X   },
  [BR_EV_SYNC_NEEDED] = { X,   X,   SYN, X,   X,   X,   X,   X,   X   },
  [BR_EV_IN_SYNC]     = { X,   X,   REP, X,   X,   X,   X,   X,   X   },
  [BR_EV_RESYNC_DONE] = { X,   X,   X,   REP, X,   X,   X,   X,   X   },
  [BR_EV_DIVERGED]    = { LOG, CON, HS,  SYN, SYN, AHD, FLD, HLT, PAU },
  [BR_EV_CONGESTED]   = { X,   X,   X,   AHD, AHD, X,   X,   X,   X   },
  [BR_EV_DRAINED]     = { X,   X,   X,   X,   X,   SYN, X,   X,   X   },
  [BR_EV_LOST]        = { LOG, LOG, LOG, LOG, LOG, LOG, FLD, HLT, PAU },
  [BR_EV_DROP]        = { LOG, X,   X,   LOG, LOG, LOG, FLD, HLT, PAU },
  [BR_EV_ERROR]       = { FLD, FLD, FLD, FLD, FLD, FLD, FLD, HLT, PAU },
  [BR_EV_SPLIT_BRAIN] = { X,   X,   HLT, X,   X,   X,   X,   HLT, X   },
  [BR_EV_STOP]        = { LOG, LOG, LOG, LOG, LOG, LOG, LOG, LOG, LOG },
  [BR_EV_PAUSE]       = { PAU, PAU, PAU, PAU, PAU, PAU, PAU, X,   PAU },
  [BR_EV_RESUME]      = { X,   X,   X,   X,   X,   X,   X,   X,   LOG },
  [BR_EV_RESYNC]      = { X,   X,   X,   SYN, SYN, X,   X,   X,   X   },
  [BR_EV_RESOLVE]     = { X,   X,   X,   X,   X,   X,   X,   LOG, X   },
};

#undef X
#undef LOG
#undef CON
#undef HS
#undef SYN
#undef REP
#undef AHD
#undef FLD
#undef HLT
#undef PAU

const char *
br_peer_state_name (enum br_peer_state s)
{
  static const char *names[BR_PEER_N_STATES] = {
    "logging", "connecting", "handshake", "syncing", "replicating",
    "ahead", "failed", "halted", "paused",
  };
  return (unsigned) s < BR_PEER_N_STATES ? names[s] : "?";
}

const char *
br_peer_event_name (enum br_peer_event e)
{
  static const char *names[BR_EV_N_EVENTS] = {
    "connect", "connected", "sync-needed", "in-sync", "resync-done",
    "diverged", "congested", "drained", "lost", "drop", "error",
    "split-brain", "stop", "pause", "resume", "resync", "resolve",
  };
  return (unsigned) e < BR_EV_N_EVENTS ? names[e] : "?";
}

enum br_peer_state
br_peer_next (enum br_peer_state s, enum br_peer_event ev)
{
  if ((unsigned) s >= BR_PEER_N_STATES || (unsigned) ev >= BR_EV_N_EVENTS)
    return BR_PEER_INVALID;
  return (enum br_peer_state) next[ev][s];
}

bool
br_peer_state_down (enum br_peer_state s)
{
  return s == BR_PEER_LOGGING || s == BR_PEER_FAILED ||
         s == BR_PEER_HALTED || s == BR_PEER_PAUSED;
}

enum br_loss_policy
br_peer_loss_policy (enum br_peer_state s, enum br_loss_policy configured)
{
  return s == BR_PEER_PAUSED ? BR_LOSS_LOG : configured;
}

bool
br_peer_state_queues (enum br_peer_state s)
{
  return s == BR_PEER_SYNCING || s == BR_PEER_REPLICATING;
}

unsigned
br_peer_effects (enum br_peer_state from, enum br_peer_state to)
{
  unsigned fx = 0;

  if (from == to)
    return 0;
  if (br_peer_state_down (to) && !br_peer_state_down (from))
    fx |= BR_FX_END;
  if (br_peer_state_down (to) &&
      (br_peer_state_queues (from) || from == BR_PEER_AHEAD))
    fx |= BR_FX_APART;
  if (to == BR_PEER_AHEAD)
    fx |= BR_FX_DROP_UNSENT;
  if (to == BR_PEER_SYNCING) {
    fx |= BR_FX_RESYNC_BEGIN;
    if (from == BR_PEER_REPLICATING)
      fx |= BR_FX_RESYNC_RESTART;
  }
  if (to == BR_PEER_REPLICATING)
    fx |= BR_FX_SYNCED;
  return fx;
}

/* ---- the setter ---- */

bool
br__peer_event (struct br_peer *p, enum br_peer_event ev)
{
  struct br_group *g = p->g;
  enum br_peer_state from = p->state, to = br_peer_next (from, ev);
  unsigned fx;

  BR_ASSERT_LOCKED (&g->lock);
  if (to == BR_PEER_INVALID) {
    br_error ("internal error: peer %s (group %s): event %s is not "
              "allowed in state %s", p->node->name, g->name,
              br_peer_event_name (ev), br_peer_state_name (from));
    assert (!"invalid peer state transition");
    return false;
  }
  fx = br_peer_effects (from, to);
  if (from != to)
    br__events_peer_changed (p, from, to, ev);  /* its log line, its event */
  if (fx & BR_FX_END) {
    p->epoch++;
    br__queue_clear (p);
  }
  if (fx & BR_FX_DROP_UNSENT)
    br__queue_drop_unsent (p);
  __atomic_store_n (&p->state, to, __ATOMIC_RELEASE);
  if (from != to)
    p->since = time (NULL);
  if (fx & BR_FX_RESYNC_RESTART)
    br__resync_restart (p, true);
  if (fx & BR_FX_RESYNC_BEGIN)
    br__queue_resync_begin (p);
  if (fx & BR_FX_SYNCED)
    br__resync_done (p);
  if (fx & BR_FX_APART)
    br__group_apart (g);
  br__group_notify_all (g);
  return true;
}

bool
br__peer_event_why (struct br_peer *p, enum br_peer_event ev,
                    const char *fmt, ...)
{
  char why[BR_EVENT_TEXT_MAX];
  va_list ap;
  bool ok;

  va_start (ap, fmt);
  vsnprintf (why, sizeof why, fmt, ap);
  va_end (ap);
  br__events_set_why (why);
  ok = br__peer_event (p, ev);
  br__events_set_why (NULL);
  return ok;
}
