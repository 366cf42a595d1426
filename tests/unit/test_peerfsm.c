/* Unit tests: the peer state machine's table (peerfsm.c).  ALLOWED lists
 * every transition the design allows (the diagram in peerfsm.c); every
 * (state, event) pair not in it must be refused.  EFFECTS lists what each
 * kind of transition must do. */
#include <check.h>

#include "check-main.h"
#include <stdbool.h>

#include "peerfsm.h"

#define LOG BR_PEER_LOGGING
#define CON BR_PEER_CONNECTING
#define HS BR_PEER_HANDSHAKE
#define SYN BR_PEER_SYNCING
#define REP BR_PEER_REPLICATING
#define AHD BR_PEER_AHEAD
#define FLD BR_PEER_FAILED
#define HLT BR_PEER_HALTED
#define PAU BR_PEER_PAUSED

struct tr { enum br_peer_state from; enum br_peer_event ev;
            enum br_peer_state to; };

static const struct tr allowed[] = {
  /* connecting and the handshake */
  { LOG, BR_EV_CONNECT, CON }, { FLD, BR_EV_CONNECT, CON },
  { CON, BR_EV_CONNECTED, HS },
  { HS, BR_EV_SYNC_NEEDED, SYN }, { HS, BR_EV_IN_SYNC, REP },
  { HS, BR_EV_SPLIT_BRAIN, HLT }, { HLT, BR_EV_SPLIT_BRAIN, HLT },
  /* resync */
  { SYN, BR_EV_RESYNC_DONE, REP },
  { REP, BR_EV_DIVERGED, SYN }, { SYN, BR_EV_DIVERGED, SYN },
  { AHD, BR_EV_DIVERGED, AHD }, { LOG, BR_EV_DIVERGED, LOG },
  { CON, BR_EV_DIVERGED, CON }, { HS, BR_EV_DIVERGED, HS },
  { FLD, BR_EV_DIVERGED, FLD }, { HLT, BR_EV_DIVERGED, HLT },
  /* pull-ahead */
  { REP, BR_EV_CONGESTED, AHD }, { SYN, BR_EV_CONGESTED, AHD },
  { AHD, BR_EV_DRAINED, SYN },
  /* losing the connection */
  { LOG, BR_EV_LOST, LOG }, { CON, BR_EV_LOST, LOG }, { HS, BR_EV_LOST, LOG },
  { SYN, BR_EV_LOST, LOG }, { REP, BR_EV_LOST, LOG }, { AHD, BR_EV_LOST, LOG },
  { FLD, BR_EV_LOST, FLD }, { HLT, BR_EV_LOST, HLT },
  { LOG, BR_EV_DROP, LOG }, { SYN, BR_EV_DROP, LOG }, { REP, BR_EV_DROP, LOG },
  { AHD, BR_EV_DROP, LOG }, { FLD, BR_EV_DROP, FLD }, { HLT, BR_EV_DROP, HLT },
  /* errors */
  { LOG, BR_EV_ERROR, FLD }, { CON, BR_EV_ERROR, FLD },
  { HS, BR_EV_ERROR, FLD }, { SYN, BR_EV_ERROR, FLD },
  { REP, BR_EV_ERROR, FLD }, { AHD, BR_EV_ERROR, FLD },
  { FLD, BR_EV_ERROR, FLD }, { HLT, BR_EV_ERROR, HLT },
  /* shutdown */
  { LOG, BR_EV_STOP, LOG }, { CON, BR_EV_STOP, LOG }, { HS, BR_EV_STOP, LOG },
  { SYN, BR_EV_STOP, LOG }, { REP, BR_EV_STOP, LOG }, { AHD, BR_EV_STOP, LOG },
  { FLD, BR_EV_STOP, LOG }, { HLT, BR_EV_STOP, LOG }, { PAU, BR_EV_STOP, LOG },
  /* the operator: pause from everywhere but a split brain, resume */
  { LOG, BR_EV_PAUSE, PAU }, { CON, BR_EV_PAUSE, PAU },
  { HS, BR_EV_PAUSE, PAU }, { SYN, BR_EV_PAUSE, PAU },
  { REP, BR_EV_PAUSE, PAU }, { AHD, BR_EV_PAUSE, PAU },
  { FLD, BR_EV_PAUSE, PAU }, { PAU, BR_EV_PAUSE, PAU },
  { PAU, BR_EV_RESUME, LOG },
  /* while paused, a closing connection's events change nothing */
  { PAU, BR_EV_LOST, PAU }, { PAU, BR_EV_ERROR, PAU },
  { PAU, BR_EV_DROP, PAU }, { PAU, BR_EV_DIVERGED, PAU },
  /* the operator asks for a resync (blockrelay resync, verify --repair):
   * only a connected peer gets the event; the others just have bits */
  { REP, BR_EV_RESYNC, SYN }, { SYN, BR_EV_RESYNC, SYN },
  /* the operator resolved a split brain: connect again */
  { HLT, BR_EV_RESOLVE, LOG },
};
#define N_ALLOWED (sizeof allowed / sizeof allowed[0])

START_TEST (test_allowed)
{
  const struct tr *t = &allowed[_i];

  ck_assert_msg (br_peer_next (t->from, t->ev) == t->to,
                 "%s + %s: got %s, expected %s", br_peer_state_name (t->from),
                 br_peer_event_name (t->ev),
                 br_peer_state_name (br_peer_next (t->from, t->ev)),
                 br_peer_state_name (t->to));
}
END_TEST

START_TEST (test_everything_else_refused)
{
  int refused = 0;

  for (enum br_peer_state s = 0; s < BR_PEER_N_STATES; s++)
    for (enum br_peer_event e = 0; e < BR_EV_N_EVENTS; e++) {
      bool listed = false;
      for (size_t i = 0; i < N_ALLOWED; i++)
        listed |= allowed[i].from == s && allowed[i].ev == e;
      if (listed)
        continue;
      ck_assert_msg (br_peer_next (s, e) == BR_PEER_INVALID,
                     "%s + %s should be refused, goes to %s",
                     br_peer_state_name (s), br_peer_event_name (e),
                     br_peer_state_name (br_peer_next (s, e)));
      refused++;
    }
  ck_assert_int_eq (refused + (int) N_ALLOWED,
                    BR_PEER_N_STATES * BR_EV_N_EVENTS);
  ck_assert_int_eq (br_peer_next (BR_PEER_N_STATES, BR_EV_LOST),
                    BR_PEER_INVALID);
  ck_assert_int_eq (br_peer_next (LOG, BR_EV_N_EVENTS), BR_PEER_INVALID);
}
END_TEST

struct fx { enum br_peer_state from, to; unsigned fx; };

static const struct fx effects[] = {
  { REP, LOG, BR_FX_END | BR_FX_APART }, { SYN, LOG, BR_FX_END | BR_FX_APART },
  { AHD, LOG, BR_FX_END | BR_FX_APART },
  { HS, LOG, BR_FX_END }, { CON, LOG, BR_FX_END },
  { REP, FLD, BR_FX_END | BR_FX_APART },
  { HS, HLT, BR_FX_END }, { LOG, FLD, 0 }, { FLD, LOG, 0 }, { HLT, LOG, 0 },
  { LOG, LOG, 0 }, { SYN, SYN, 0 }, { AHD, AHD, 0 },
  { HS, SYN, BR_FX_RESYNC_BEGIN },
  { AHD, SYN, BR_FX_RESYNC_BEGIN },
  { REP, SYN, BR_FX_RESYNC_BEGIN | BR_FX_RESYNC_RESTART },
  { HS, REP, BR_FX_SYNCED }, { SYN, REP, BR_FX_SYNCED },
  { REP, AHD, BR_FX_DROP_UNSENT }, { SYN, AHD, BR_FX_DROP_UNSENT },
  { LOG, CON, 0 }, { CON, HS, 0 },
  { REP, PAU, BR_FX_END | BR_FX_APART }, { SYN, PAU, BR_FX_END | BR_FX_APART },
  { AHD, PAU, BR_FX_END | BR_FX_APART },
  { CON, PAU, BR_FX_END }, { LOG, PAU, 0 }, { FLD, PAU, 0 },
  { PAU, LOG, 0 }, { PAU, PAU, 0 },
};

/* A paused peer is logged whatever its link's on-peer-loss says; every
 * other state keeps the configured policy. */
START_TEST (test_loss_policy)
{
  for (enum br_peer_state s = 0; s < BR_PEER_N_STATES; s++)
    for (enum br_loss_policy l = BR_LOSS_LOG; l <= BR_LOSS_FAIL; l++)
      ck_assert_int_eq (br_peer_loss_policy (s, l),
                        s == PAU ? BR_LOSS_LOG : l);
}
END_TEST

START_TEST (test_effects)
{
  const struct fx *f = &effects[_i];

  ck_assert_msg (br_peer_effects (f->from, f->to) == f->fx,
                 "%s -> %s: effects 0x%x, expected 0x%x",
                 br_peer_state_name (f->from), br_peer_state_name (f->to),
                 br_peer_effects (f->from, f->to), f->fx);
}
END_TEST

/* Every transition that leaves a connected state for a down one ends the
 * connection: no allowed transition into LOGGING/FAILED/HALTED keeps the
 * queue of a live one (P3 in peer.c). */
START_TEST (test_down_ends_connection)
{
  for (size_t i = 0; i < N_ALLOWED; i++) {
    const struct tr *t = &allowed[i];
    if (br_peer_state_down (t->to) && !br_peer_state_down (t->from))
      ck_assert (br_peer_effects (t->from, t->to) & BR_FX_END);
  }
}
END_TEST

START_TEST (test_names)
{
  for (enum br_peer_state s = 0; s < BR_PEER_N_STATES; s++)
    ck_assert_str_ne (br_peer_state_name (s), "?");
  for (enum br_peer_event e = 0; e < BR_EV_N_EVENTS; e++)
    ck_assert_str_ne (br_peer_event_name (e), "?");
  ck_assert_str_eq (br_peer_state_name (BR_PEER_N_STATES), "?");
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("peerfsm");
  TCase *tc = tcase_create ("table");

  tcase_add_loop_test (tc, test_allowed, 0, N_ALLOWED);
  tcase_add_test (tc, test_everything_else_refused);
  tcase_add_loop_test (tc, test_effects, 0,
                       sizeof effects / sizeof effects[0]);
  tcase_add_test (tc, test_down_ends_connection);
  tcase_add_test (tc, test_names);
  tcase_add_test (tc, test_loss_policy);
  suite_add_tcase (s, tc);
  return br_check_run (s);
}
