/* blockrelay — reading a scoreboard file offline (see scoreboard.h).
 *
 * Design
 * ------
 * Tools (br-powercut's cover and bits) look at a scoreboard that no
 * process has open, e.g. right after a simulated power cut: the whole file
 * is read into memory once, its header checked with the same rules as
 * br_sb_open() (br__sb_validate, the header's own geometry being the
 * expected one), and bits are read from the copy.  Nothing is locked,
 * mapped or written, so reading a scoreboard a running process has open
 * is allowed too: it sees the page cache, i.e. the bits as the process
 * holds them, not necessarily as durable storage does.
 *
 * No threads: an image is owned by its caller.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "scoreboard.h"
#include "scoreboard-disk.h"
#include "util.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FAIL(e, ...) do {                                               \
    r = (e);                                                            \
    br_seterr (err, errlen, __VA_ARGS__);                               \
    goto fail;                                                          \
  } while (0)

struct br_sb_image {
  uint8_t *file;                        /* the whole file */
  const struct br_sb_header_disk *hdr;  /* = file */
  uint64_t nregions, bitmap_bytes;
};

int
br_sb_image_load (const char *path, br_sb_image **out, char *err,
                  size_t errlen)
{
  br_sb_image *im = calloc (1, sizeof *im);
  uint64_t volume_size, file_size;
  uint32_t granularity;
  struct stat st;
  int fd = -1, r;

  *out = NULL;
  if (!im)
    return -ENOMEM;
  if ((fd = open (path, O_RDONLY | O_CLOEXEC)) < 0 || fstat (fd, &st) < 0)
    FAIL (-errno, "scoreboard %s: %s", path, br_strerror (-r));
  if (!S_ISREG (st.st_mode) || (uint64_t) st.st_size < BR_SB_HDR_SIZE)
    FAIL (-EINVAL, "scoreboard %s: not a scoreboard", path);
  if (!(im->file = malloc ((size_t) st.st_size)))
    FAIL (-ENOMEM, "scoreboard %s: out of memory", path);
  if ((r = br_pread_full (fd, im->file, (size_t) st.st_size, 0)) < 0)
    FAIL (r, "scoreboard %s: read: %s", path, br_strerror (-r));
  im->hdr = (const struct br_sb_header_disk *) im->file;
  volume_size = le64toh (im->hdr->volume_size);
  granularity = le32toh (im->hdr->granularity);
  if (volume_size == 0 || granularity == 0
      || (granularity & (granularity - 1)))
    FAIL (-EINVAL, "scoreboard %s: bad geometry in the header", path);
  br__sb_geometry (volume_size, granularity, &im->nregions, &im->bitmap_bytes,
            &file_size);
  if ((r = br__sb_validate (path, im->hdr, volume_size, granularity,
                            im->nregions, file_size, (uint64_t) st.st_size,
                            err, errlen)) < 0)
    goto fail;
  close (fd);
  *out = im;
  return 0;

 fail:
  if (fd >= 0)
    close (fd);
  br_sb_image_free (im);
  return r;
}

void
br_sb_image_free (br_sb_image *im)
{
  if (im)
    free (im->file);
  free (im);
}

uint64_t
br_sb_image_volume_size (const br_sb_image *im)
{
  return le64toh (im->hdr->volume_size);
}

uint32_t
br_sb_image_granularity (const br_sb_image *im)
{
  return le32toh (im->hdr->granularity);
}

uint64_t
br_sb_image_nregions (const br_sb_image *im)
{
  return im->nregions;
}

int
br_sb_image_slot (const br_sb_image *im, const char *peer)
{
  for (int i = 0; i < BR_SB_MAX_PEERS; i++)
    if (im->hdr->peers[i].name[0]
        && strncmp (im->hdr->peers[i].name, peer, BR_SB_PEER_NAME_MAX) == 0)
      return i;
  return -ENOENT;
}

static bool
slot_ok (int slot)
{
  return slot >= 0 && slot < BR_SB_MAX_PEERS;
}

static const uint64_t *
image_bits (const br_sb_image *im, int slot)
{
  return (const uint64_t *) (im->file + BR_SB_HDR_SIZE
                             + (uint64_t) slot * im->bitmap_bytes);
}

bool
br_sb_image_test (const br_sb_image *im, int slot, uint64_t region)
{
  return slot_ok (slot) && region < im->nregions
    && (le64toh (image_bits (im, slot)[region / 64]) >> (region % 64)) & 1;
}

uint64_t
br_sb_image_count (const br_sb_image *im, int slot)
{
  return slot_ok (slot)
    ? br__sb_count_bits (image_bits (im, slot), im->nregions) : 0;
}
