/* blockrelay — the peer state machine: states, events, the transition
 * table and each transition's effects (pure; see peerfsm.c).
 *
 * The table is the only description of how a peer's state may change.
 * br__peer_event() (peerfsm.c) is the only function that changes a peer's
 * state: it looks the event up here, asserts the transition is allowed,
 * and applies the effects br_peer_effects() names.
 */
#ifndef BR_PEERFSM_H
#define BR_PEERFSM_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"             /* enum br_loss_policy */

enum br_peer_state {
  BR_PEER_LOGGING,       /* not connected: writes only set bits */
  BR_PEER_CONNECTING,    /* TCP connect in progress */
  BR_PEER_HANDSHAKE,     /* HELLO sent, waiting for WELCOME */
  BR_PEER_SYNCING,       /* connected; resyncing dirty regions + live writes */
  BR_PEER_REPLICATING,   /* connected; bits only for unacknowledged writes */
  BR_PEER_AHEAD,         /* connected async link whose queue overflowed
                            (pull-ahead): live writes only set bits */
  BR_PEER_FAILED,        /* refused or an error: retried with backoff */
  BR_PEER_HALTED,        /* split brain: never retried until an operator
                            acts */
  BR_PEER_PAUSED,        /* the operator paused it (blockrelay pause):
                            not connected, not retried, writes logged
                            whatever on-peer-loss says, until resume */
  BR_PEER_N_STATES
};

enum br_peer_event {
  BR_EV_CONNECT,         /* the reconnect timer fired */
  BR_EV_CONNECTED,       /* TCP is up and HELLO was sent */
  BR_EV_SYNC_NEEDED,     /* WELCOME accepted, the verdict leaves regions
                            out of sync */
  BR_EV_IN_SYNC,         /* WELCOME accepted, nothing out of sync */
  BR_EV_RESYNC_DONE,     /* the out-of-sync set is empty and durable */
  BR_EV_DIVERGED,        /* a local write failed after its record was
                            queued: its regions must be resent */
  BR_EV_CONGESTED,       /* async queue full, on-congestion: pull-ahead */
  BR_EV_DRAINED,         /* AHEAD: what was sent before is durable */
  BR_EV_LOST,            /* connection lost, timed out, or not ready */
  BR_EV_DROP,            /* a writer could not queue a record */
  BR_EV_ERROR,           /* refusal, bad frame, peer-reported error */
  BR_EV_SPLIT_BRAIN,     /* the generation verdict found divergence */
  BR_EV_STOP,            /* engine shutdown */
  BR_EV_PAUSE,           /* the operator: blockrelay pause */
  BR_EV_RESUME,          /* the operator: blockrelay resume */
  BR_EV_RESYNC,          /* the operator: blockrelay resync, verify
                            --repair (regions marked out of sync) */
  BR_EV_RESOLVE,         /* the operator: blockrelay resolve (a side of
                            the split brain was chosen) */
  BR_EV_N_EVENTS
};

/* Effects of a transition, applied by br__peer_event in this order. */
enum br_peer_effect {
  BR_FX_END = 1u << 0,          /* the connection is over: epoch + 1,
                                   every queued record dropped (its bits
                                   stay set) */
  BR_FX_DROP_UNSENT = 1u << 1,  /* drop the records not yet handed to the
                                   socket (pull-ahead) */
  BR_FX_RESYNC_BEGIN = 1u << 2, /* queue the RESYNC marker: the replica is
                                   inconsistent from here (in stream
                                   order) until SYNCED */
  BR_FX_RESYNC_RESTART = 1u << 3, /* walk the out-of-sync set from the
                                   start again */
  BR_FX_SYNCED = 1u << 4,       /* queue SYNCED for every volume: the
                                   replica adopts our generation */
  BR_FX_APART = 1u << 5,        /* a peer that received records is gone:
                                   an origin's next write takes a new
                                   generation first (group.c) */
};

#define BR_PEER_INVALID BR_PEER_N_STATES

const char *br_peer_state_name (enum br_peer_state s);
const char *br_peer_event_name (enum br_peer_event e);
/* The state EV leads to from S, or BR_PEER_INVALID if the table does not
 * allow EV in S. */
enum br_peer_state br_peer_next (enum br_peer_state s, enum br_peer_event ev);
/* The effects (BR_FX_* mask) of going FROM -> TO; 0 for a self
 * transition that changes nothing. */
unsigned br_peer_effects (enum br_peer_state from, enum br_peer_state to);
/* Connected: records are queued to the peer (SYNCING, REPLICATING). */
bool br_peer_state_queues (enum br_peer_state s);
/* Down: no connection (LOGGING, FAILED, HALTED, PAUSED). */
bool br_peer_state_down (enum br_peer_state s);
/* The on-peer-loss policy that applies to a peer in state S whose link
 * says CONFIGURED: a paused peer is logged, since pausing is the
 * operator's decision to go on without it. */
enum br_loss_policy br_peer_loss_policy (enum br_peer_state s,
                                         enum br_loss_policy configured);

#endif
