/* blockrelay — the scoreboard header's fields that change after creation:
 * the generation and its history ring, the flags, the origin, and the peer
 * slots (name, base generation).  Byte offsets are in scoreboard.c's
 * design comment and scoreboard-disk.h.
 *
 * Invariants:
 *  H1 Every setter makes its change durable (msync of the header page)
 *     before it returns 0, and holds hlock until then, so setters are
 *     ordered and the header on disk is always one a setter left.
 *  H2 A generation is always in the current field or the history ring:
 *     the old one is stored in the ring, durably, before the current
 *     field changes (one aligned 8-byte store each, never a memmove a
 *     concurrent msync or writeback could catch half done).
 *  H3 Getters take no lock.  Every field with a setter is one naturally
 *     aligned word written with a release store and read with an acquire
 *     load; a slot's name is written before its USED flag is published.
 *     So a reader (the loop thread in a handshake, a writer checking
 *     FRESH) never waits for a setter's msync and never sees a torn value.
 *
 * Lock rules: hlock only, never together with the group-commit lock
 * (scoreboard.c); the crash simulation takes its own leaf lock inside
 * br__sb_msync.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "scoreboard-int.h"
#include "log.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* hlock serializes the header's setters, each of which msyncs the header
 * page before it lets go.  Getters take no lock: every field with a setter
 * is one naturally aligned word, stored with __atomic_store_n and loaded
 * with __atomic_load_n, so a reader (the loop thread in a handshake, a
 * writer checking FRESH) never waits for a setter's msync and never sees
 * a torn value. */
#define HLOCK(sb) pthread_mutex_lock (&(sb)->hlock)
#define HUNLOCK(sb) pthread_mutex_unlock (&(sb)->hlock)
#define HLOAD(field) __atomic_load_n (&(field), __ATOMIC_ACQUIRE)
#define HSTORE(field, v) __atomic_store_n (&(field), (v), __ATOMIC_RELEASE)

/* The header fields with setters; SLOT only for H_PEER_GEN. */
enum hfield { H_GEN, H_FLAGS, H_PEER_GEN };

static uint64_t
hdr_get (const br_scoreboard *sb, enum hfield f, int slot)
{
  return f == H_GEN ? le64toh (HLOAD (sb->hdr->gen))
    : f == H_FLAGS ? le32toh (HLOAD (sb->hdr->flags))
    : le64toh (HLOAD (sb->hdr->peers[slot].gen));
}

/* Set field F to V (for H_FLAGS: OR in V after clearing CLEAR), durably:
 * the header page is msynced before hlock is released. */
static int
hdr_set (br_scoreboard *sb, enum hfield f, int slot, uint64_t v,
         uint32_t clear)
{
  int r;

  HLOCK (sb);
  if (f == H_GEN) {
    /* The old generation goes into the ring first, durably, and only then
     * does the current one change: every state a crash or a concurrent
     * msync can catch has the old generation in one of the two places.
     * Each field is one aligned store, never a memmove. */
    uint64_t old = le64toh (sb->hdr->gen);
    if (old != 0 && old != v) {
      uint32_t n = le32toh (sb->hdr->history_next) % BR_SB_HISTORY;

      HSTORE (sb->hdr->history[n], htole64 (old));
      if ((r = br__sb_msync (sb, BR_SB_HDR_SIZE)) < 0) {
        HUNLOCK (sb);
        return r;
      }
      HSTORE (sb->hdr->history_next, htole32 ((n + 1) % BR_SB_HISTORY));
    }
    HSTORE (sb->hdr->gen, htole64 (v));
  }
  else if (f == H_FLAGS)
    HSTORE (sb->hdr->flags, htole32 ((le32toh (sb->hdr->flags) & ~clear)
                                     | (uint32_t) v));
  else
    HSTORE (sb->hdr->peers[slot].gen, htole64 (v));
  r = br__sb_msync (sb, BR_SB_HDR_SIZE);
  HUNLOCK (sb);
  return r;
}

bool
br_sb_gen_known (const br_scoreboard *sb, uint64_t gen)
{
  bool known;

  /* The current generation first: a setter stores the old one in the
   * ring before it replaces it, so a generation is always in one of the
   * places this reads in this order. */
  if (gen == 0)
    return false;
  known = le64toh (HLOAD (sb->hdr->gen)) == gen;
  for (int i = 0; !known && i < BR_SB_HISTORY; i++)
    known = le64toh (HLOAD (sb->hdr->history[i])) == gen;
  return known;
}

void
br_sb_history (const br_scoreboard *sb, uint64_t out[BR_SB_HISTORY])
{
  for (int i = 0; i < BR_SB_HISTORY; i++)
    out[i] = le64toh (HLOAD (sb->hdr->history[i]));
}

int
br_sb_forget_history (br_scoreboard *sb)
{
  int r;

  HLOCK (sb);
  for (int i = 0; i < BR_SB_HISTORY; i++)
    HSTORE (sb->hdr->history[i], 0);
  r = br__sb_msync (sb, BR_SB_HDR_SIZE);
  HUNLOCK (sb);
  return r;
}

void
br_sb_uuid (const br_scoreboard *sb, uint8_t out[16])
{
  memcpy (out, sb->hdr->uuid, 16);      /* written only at creation */
}

uint64_t
br_sb_gen (const br_scoreboard *sb)
{
  return hdr_get (sb, H_GEN, 0);
}

int
br_sb_set_gen (br_scoreboard *sb, uint64_t gen)
{
  return hdr_set (sb, H_GEN, 0, gen, 0);
}

uint32_t
br_sb_flags (const br_scoreboard *sb)
{
  return (uint32_t) hdr_get (sb, H_FLAGS, 0);
}

int
br_sb_set_flags (br_scoreboard *sb, uint32_t set, uint32_t clear)
{
  return hdr_set (sb, H_FLAGS, 0, set, clear);
}

uint64_t
br_sb_peer_gen (const br_scoreboard *sb, int slot)
{
  return br__sb_slot_ok (slot) ? hdr_get (sb, H_PEER_GEN, slot) : 0;
}

int
br_sb_set_peer_gen (br_scoreboard *sb, int slot, uint64_t gen)
{
  return br__sb_slot_ok (slot) ? hdr_set (sb, H_PEER_GEN, slot, gen, 0) : -EINVAL;
}

/* The origin is written under hlock (a relay's plan, task thread) and read
 * only when the engine starts, before any session can write it. */
void
br_sb_origin (const br_scoreboard *sb, char *buf, size_t len)
{
  snprintf (buf, len, "%.*s", BR_SB_NODE_MAX - 1, sb->hdr->origin);
}

int
br_sb_set_origin (br_scoreboard *sb, const char *origin)
{
  int r;

  if (strlen (origin) >= BR_SB_NODE_MAX)
    return -EINVAL;
  HLOCK (sb);
  if (strncmp (sb->hdr->origin, origin, BR_SB_NODE_MAX) == 0) {
    HUNLOCK (sb);
    return 0;
  }
  memset (sb->hdr->origin, 0, sizeof sb->hdr->origin);
  memcpy (sb->hdr->origin, origin, strlen (origin));
  r = br__sb_msync (sb, BR_SB_HDR_SIZE);
  HUNLOCK (sb);
  return r;
}

/* A slot's name is written once, when br_sb_peer_slot allocates it, and
 * published by the release store of its USED flag: a reader that sees the
 * flag sees the whole name. */
static bool
slot_used (const br_scoreboard *sb, int slot)
{
  return (le32toh (HLOAD (sb->hdr->peers[slot].flags)) & BR_SB_PEER_USED)
         && sb->hdr->peers[slot].name[0] != '\0';
}

const char *
br_sb_peer_name (const br_scoreboard *sb, int slot)
{
  return br__sb_slot_ok (slot) && slot_used (sb, slot) ? sb->hdr->peers[slot].name
                                                : "";
}

int
br_sb_find_slot (const br_scoreboard *sb, const char *peer)
{
  const struct br_sb_peer_disk *p = sb->hdr->peers;
  int found = -ENOENT;

  if (!peer || !*peer || strlen (peer) >= BR_SB_PEER_NAME_MAX)
    return -EINVAL;
  for (int i = 0; i < BR_SB_MAX_PEERS && found < 0; i++)
    if (slot_used (sb, i)
        && strncmp (p[i].name, peer, BR_SB_PEER_NAME_MAX) == 0)
      found = i;
  return found;
}

int
br_sb_peer_slot (br_scoreboard *sb, const char *peer)
{
  struct br_sb_peer_disk *p = sb->hdr->peers;
  int i, free_slot = -1, r;

  if (!peer || !*peer || strlen (peer) >= BR_SB_PEER_NAME_MAX)
    return -EINVAL;
  HLOCK (sb);
  for (i = 0; i < BR_SB_MAX_PEERS; i++) {
    if (p[i].name[0] == '\0') {
      if (free_slot < 0)
        free_slot = i;
    }
    else if (strncmp (p[i].name, peer, BR_SB_PEER_NAME_MAX) == 0) {
      HUNLOCK (sb);
      return i;
    }
  }
  if (free_slot < 0) {
    HUNLOCK (sb);
    return -ENOSPC;
  }
  memset (&p[free_slot], 0, sizeof p[free_slot]);
  memcpy (p[free_slot].name, peer, strlen (peer));
  HSTORE (p[free_slot].flags, htole32 (BR_SB_PEER_USED));
  r = br__sb_msync (sb, BR_SB_HDR_SIZE);
  HUNLOCK (sb);
  if (r < 0)
    return r;
  br_debug (BR_DEBUG_SB, "scoreboard %s: peer %s in slot %d", sb->path, peer,
            free_slot);
  return free_slot;
}
