/* blockrelay — the crash simulation journal's byte layout, shared by the
 * writer (crashsim.c, which also implements these helpers) and the replay
 * (crashsim-replay.c).  Private to those two files.
 *
 * File header (BR_CS_FILE_HDR = 64 bytes, little-endian):
 *    0  8  magic        "BRCSJNL1"
 *    8  4  version      1
 *   12  4  header size  64
 *   16  8  disk size    bytes
 *   24 36  reserved     0
 *   60  4  XXH32 (seed 0) of bytes 0..59
 *
 * Record header (BR_CS_REC_HDR = 40 bytes), then the payload:
 *    0  4  type         'U' 'Z' 'C' 'B' 'E' (BR_CS_UNDO ... BR_CS_END)
 *    4  4  payload      bytes that follow (= length for 'U', else 0)
 *    8  8  id           write id ('U' 'Z' 'C'), sync number ('B' 'E')
 *   16  8  offset       'U' 'Z': disk offset of the pre-image
 *   24  8  length       'U' 'Z': its length (1 .. BR_CS_CHUNK)
 *   32  4  XXH32 of the payload (0 without one)
 *   36  4  XXH32 of bytes 0..35
 */
#ifndef BR_CRASHSIM_FORMAT_H
#define BR_CRASHSIM_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BR_CS_MAGIC "BRCSJNL1"
#define BR_CS_VERSION 1u
#define BR_CS_FILE_HDR 64u
#define BR_CS_REC_HDR 40u
#define BR_CS_CHUNK (64u * 1024)        /* largest undo record payload */
#define BR_CS_COMPACT_AT (8u << 20)     /* J4 default (crashsim.c) */

enum {
  BR_CS_UNDO = 'U', BR_CS_ZERO = 'Z', BR_CS_DONE = 'C',
  BR_CS_BEGIN = 'B', BR_CS_END = 'E',
};

struct br_cs_rec {
  uint32_t type, plen;
  uint64_t id, off, len;
  uint32_t psum;
};

char *br__cs_path (const char *path, const char *suffix);
bool br__cs_all_zero (const void *buf, size_t len);
void br__cs_file_encode (uint8_t out[BR_CS_FILE_HDR], uint64_t disk_size);
/* 0, or -EINVAL if IN is not a journal header; *DISK_SIZE is set. */
int br__cs_file_decode (const uint8_t in[BR_CS_FILE_HDR],
                        uint64_t *disk_size);
void br__cs_rec_encode (uint8_t out[BR_CS_REC_HDR], uint32_t type,
                        uint64_t id, uint64_t off, uint64_t len,
                        const void *payload);
/* 0, or -EINVAL if the header checksum, the type or the lengths are bad. */
int br__cs_rec_decode (const uint8_t in[BR_CS_REC_HDR], struct br_cs_rec *r);
uint32_t br__cs_sum (const void *buf, size_t len);

#endif
