/* blockrelay — the scoreboard file's byte layout (documented at the top of
 * scoreboard.c and in docs/formats.md), shared by scoreboard.c, the
 * offline reader scoreboard-image.c and the crash simulation's replay.
 * Private: everything else uses scoreboard.h. */
#ifndef BR_SCOREBOARD_DISK_H
#define BR_SCOREBOARD_DISK_H

#include <stddef.h>
#include <stdint.h>

#include "scoreboard.h"

#define BR_SB_MAGIC "BRSCORE1"
#define BR_SB_VERSION 2u
#define BR_SB_HDR_SIZE 4096u
#define BR_SB_NODE_MAX 64
#define BR_SB_PEER_USED 0x1u

struct br_sb_peer_disk {
  char name[BR_SB_PEER_NAME_MAX];       /* 0 */
  uint64_t gen;                         /* 48 */
  uint32_t flags;                       /* 56 */
  uint32_t reserved;                    /* 60 */
} __attribute__ ((packed));

struct br_sb_header_disk {
  char magic[8];                        /* 0 */
  uint32_t version;                     /* 8 */
  uint32_t header_size;                 /* 12 */
  uint64_t volume_size;                 /* 16 */
  uint32_t granularity;                 /* 24 */
  uint32_t nslots;                      /* 28 */
  uint64_t nregions;                    /* 32 */
  uint32_t flags;                       /* 40 */
  uint32_t history_next;                /* 44 */
  uint8_t uuid[16];                     /* 48 */
  uint64_t gen;                         /* 64 */
  char node[BR_SB_NODE_MAX];            /* 72 */
  struct br_sb_peer_disk peers[BR_SB_MAX_PEERS]; /* 136 */
  uint64_t history[BR_SB_HISTORY];               /* 648 */
  char origin[BR_SB_NODE_MAX];                   /* 712 */
  uint8_t padding[BR_SB_HDR_SIZE - 776];         /* 776 */
} __attribute__ ((packed));

_Static_assert (sizeof (struct br_sb_peer_disk) == 64, "peer record size");
_Static_assert (BR_SB_PEER_NAME_MAX == 48, "peer name field is 48 bytes");
_Static_assert (BR_SB_MAX_PEERS == 8, "header holds 8 peer records");
_Static_assert (sizeof (struct br_sb_header_disk) == BR_SB_HDR_SIZE,
                "header size");
#define OFF(f, o) _Static_assert (offsetof (struct br_sb_header_disk, f) \
                                  == (o), "offset of " #f)
OFF (version, 8); OFF (header_size, 12); OFF (volume_size, 16);
OFF (granularity, 24); OFF (nslots, 28); OFF (nregions, 32); OFF (flags, 40);
OFF (history_next, 44); OFF (uuid, 48); OFF (gen, 64); OFF (node, 72); OFF (peers, 136);
OFF (history, 648); OFF (origin, 712); OFF (padding, 776);
_Static_assert (offsetof (struct br_sb_peer_disk, gen) == 48, "peer gen");
_Static_assert (offsetof (struct br_sb_peer_disk, flags) == 56, "peer flags");

/* Check the header H read from PATH (ACTUAL_SIZE bytes) against the
 * expected geometry; 0 or -EINVAL with a message naming both values. */
int br__sb_validate (const char *path, const struct br_sb_header_disk *h,
                     uint64_t volume_size, uint32_t granularity,
                     uint64_t nregions, uint64_t file_size,
                     uint64_t actual_size, char *err, size_t errlen);
/* The size of a scoreboard for VOLUME_SIZE bytes in GRANULARITY regions. */
void br__sb_geometry (uint64_t volume_size, uint32_t granularity,
                      uint64_t *nregions, uint64_t *bitmap_bytes,
                      uint64_t *file_size);
/* Set bits among the first NREGIONS of the raw little-endian WORDS (read
 * plainly: no other thread may change them meanwhile). */
uint64_t br__sb_count_bits (const uint64_t *words, uint64_t nregions);

#endif
