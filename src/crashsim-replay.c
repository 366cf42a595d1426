/* blockrelay — replaying a simulated power cut (crash simulation).
 *
 * Design
 * ------
 * The recording side (crashsim.c) leaves, next to each disk image and each
 * scoreboard of a process that ran with BLOCKRELAY_CRASHSIM=1, a journal or
 * a shadow named "<file>.crashsim".  Here they are read back: br_cs_cut()
 * changes the image into one state a power cut at the moment the process
 * stopped could have left, br_cs_inspect() only says what a cut would
 * lose, br_cs_cover() is the I1 check that tests run after a cut.
 *
 * Journal replay.  Records are parsed in file order; a torn tail (J3 in
 * crashsim.c) is ignored.  B* is the newest 'B' whose 'E' follows it; a
 * write is durable iff its 'C' precedes B*.  For one sector, the writes
 * that touched it form a chain in journal order (J1: the pre-image of each
 * is the content after the previous one); its durable version is the
 * content after the last durable write of the chain, and its newer
 * versions are the content after each later (volatile) write, the newest
 * being the image as it is.  So undo records are walked newest first,
 * keeping R, the set of bytes already known to be durable (covered by a
 * durable write met on the way back):
 *   - a durable write's range joins R;
 *   - a volatile write's range minus R is a candidate older version of
 *     those bytes: without --torn it is restored (the oldest candidate wins,
 *     being restored last: everything volatile is lost); with --torn each
 *     sector's candidates (the image as it is being the first) are sampled
 *     as a reservoir: the k-th replaces the choice with probability 1/k, so
 *     every version from the durable one to the newest is equally likely,
 *     independently per sector.
 * The walk never assumes the writer serialized its writes; it only relies
 * on the chain order of overlapping writes, which J1 guarantees.  Writes
 * not aligned to 512 bytes are cut per (write x sector) piece: a sector
 * two unaligned writes shared may then mix their versions.
 *
 * Shadow replay.  The shadow is the scoreboard's durable image; the file
 * is what the mapping held.  Without --torn the shadow is copied over the
 * file; with --torn each 512-byte sector that differs takes the shadow's
 * or the file's content at random (the kernel may have written back any
 * dirty page of a mapping on its own, so a newer sector, set bits and
 * cleared bits alike, may have reached the disk).
 *
 * Nothing here is thread-safe or meant for the engine's hot path: it runs
 * in the br-powercut tool, at a disk's open (br_cs_inspect of a leftover
 * journal) and in unit tests.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "crashsim.h"
#include "crashsim-format.h"
#include "scoreboard.h"
#include "scoreboard-disk.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t
splitmix (uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* ---- a set of byte ranges ---------------------------------------------- */

struct ivset {
  struct iv { uint64_t a, b; } *v;      /* sorted, disjoint, not adjacent */
  size_t n, cap;
};

/* Index of the first range ending after X. */
static size_t
iv_find (const struct ivset *s, uint64_t x)
{
  size_t lo = 0, hi = s->n;

  while (lo < hi) {
    size_t mid = (lo + hi) / 2;

    if (s->v[mid].b <= x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int
iv_add (struct ivset *s, uint64_t a, uint64_t b)
{
  size_t i = iv_find (s, a > 0 ? a - 1 : 0), j = i;     /* b >= a */

  while (j < s->n && s->v[j].a <= b) {
    a = s->v[j].a < a ? s->v[j].a : a;
    b = s->v[j].b > b ? s->v[j].b : b;
    j++;
  }
  if (i == j) {                 /* insert */
    if (s->n == s->cap) {
      size_t cap = s->cap ? s->cap * 2 : 64;
      struct iv *v = realloc (s->v, cap * sizeof *v);

      if (!v)
        return -ENOMEM;
      s->v = v;
      s->cap = cap;
    }
    memmove (&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
    s->n++;
  }
  else {                        /* ranges i .. j-1 merge into one */
    memmove (&s->v[i + 1], &s->v[j], (s->n - j) * sizeof *s->v);
    s->n -= j - i - 1;
  }
  s->v[i] = (struct iv) { a, b };
  return 0;
}

static uint64_t
iv_total (const struct ivset *s)
{
  uint64_t t = 0;

  for (size_t i = 0; i < s->n; i++)
    t += s->v[i].b - s->v[i].a;
  return t;
}

/* ---- per-sector choices (torn mode and statistics) ---------------------- */

struct sector {
  uint64_t key;                 /* sector number + 1; 0 = empty */
  uint32_t cnt;                 /* versions seen: 1 (current) + older */
  uint32_t chosen;              /* which one is on the image (1 = current) */
  uint32_t last_w, chosen_w;    /* write of the last candidate / choice + 1 */
};

struct sectors {
  struct sector *t;
  size_t n, cap;                /* cap: a power of two */
};

static struct sector *
sec_get (struct sectors *h, uint64_t s)
{
  size_t i;

  if (2 * (h->n + 1) > h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 1024;
    struct sector *t = calloc (cap, sizeof *t);

    if (!t)
      return NULL;
    for (size_t k = 0; k < h->cap; k++)
      if (h->t[k].key) {
        for (i = (h->t[k].key * 0x9e3779b97f4a7c15ull) & (cap - 1); t[i].key;
             i = (i + 1) & (cap - 1))
          ;
        t[i] = h->t[k];
      }
    free (h->t);
    h->t = t;
    h->cap = cap;
  }
  for (i = ((s + 1) * 0x9e3779b97f4a7c15ull) & (h->cap - 1); h->t[i].key;
       i = (i + 1) & (h->cap - 1))
    if (h->t[i].key == s + 1)
      return &h->t[i];
  h->t[i] = (struct sector) { .key = s + 1, .cnt = 1, .chosen = 1 };
  h->n++;
  return &h->t[i];
}

/* ---- journal ------------------------------------------------------------ */

struct chunk {
  uint64_t off, len;
  uint64_t data;                /* file offset of the pre-image; 0: zeros */
  uint32_t w;                   /* index into writes */
};

struct journal {
  int fd;
  uint64_t disk_size, file_size, nrec;
  struct chunk *c;
  size_t nc, cc;
  struct jw { uint64_t id; int64_t done; } *w;   /* done: record or -1 */
  size_t nw, cw;
  struct js { uint64_t n; int64_t rec; } *s;     /* 'B' records */
  size_t ns, cs;
  int64_t bstar;                /* newest 'B' with its 'E', or -1 */
};

#define GROW(arr, n, cap) do {                                          \
    if ((n) == (cap)) {                                                 \
      size_t c_ = (cap) ? (cap) * 2 : 256;                              \
      void *p_ = realloc ((arr), c_ * sizeof *(arr));                   \
      if (!p_)                                                          \
        return -ENOMEM;                                                 \
      (arr) = p_;                                                       \
      (cap) = c_;                                                       \
    }                                                                   \
  } while (0)

/* The write with ID (ids increase along the journal), or -1. */
static int64_t
find_write (const struct journal *j, uint64_t id)
{
  size_t lo = 0, hi = j->nw;

  while (lo < hi) {
    size_t mid = (lo + hi) / 2;

    if (j->w[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < j->nw && j->w[lo].id == id ? (int64_t) lo : -1;
}

static int
add_record (struct journal *j, const struct br_cs_rec *r, uint64_t data)
{
  int64_t rec = (int64_t) j->nrec++, k;

  switch (r->type) {
  case BR_CS_UNDO: case BR_CS_ZERO:
    if (r->off > j->disk_size || r->len > j->disk_size - r->off)
      return -EINVAL;
    if (j->nw == 0 || j->w[j->nw - 1].id != r->id) {
      if (j->nw > 0 && j->w[j->nw - 1].id > r->id)
        return -EINVAL;         /* ids must increase */
      GROW (j->w, j->nw, j->cw);
      j->w[j->nw++] = (struct jw) { r->id, -1 };
    }
    GROW (j->c, j->nc, j->cc);
    j->c[j->nc++] = (struct chunk) { r->off, r->len,
      r->type == BR_CS_UNDO ? data : 0, (uint32_t) (j->nw - 1) };
    break;
  case BR_CS_DONE:              /* a write without undo records: ignored */
    if ((k = find_write (j, r->id)) >= 0 && j->w[k].done < 0)
      j->w[k].done = rec;
    break;
  case BR_CS_BEGIN:
    GROW (j->s, j->ns, j->cs);
    j->s[j->ns++] = (struct js) { r->id, rec };
    break;
  case BR_CS_END:               /* an 'E' whose 'B' was dropped: ignored */
    for (size_t i = j->ns; i-- > 0; )
      if (j->s[i].n == r->id) {
        if (j->s[i].rec > j->bstar)
          j->bstar = j->s[i].rec;
        break;
      }
    break;
  }
  return 0;
}

static void
journal_free (struct journal *j)
{
  free (j->c);
  free (j->w);
  free (j->s);
}

/* Parse the journal open as FD (named PATH in messages). */
static int
journal_parse (struct journal *j, int fd, const char *path,
               char *err, size_t errlen)
{
  uint8_t h[BR_CS_FILE_HDR], *buf = NULL;
  struct stat st;
  uint64_t pos = BR_CS_FILE_HDR;
  int r;

  memset (j, 0, sizeof *j);
  j->fd = fd;
  j->bstar = -1;
  if (fstat (fd, &st) < 0 || (r = br_pread_full (fd, h, sizeof h, 0)) < 0
      || (r = br__cs_file_decode (h, &j->disk_size)) < 0) {
    br_seterr (err, errlen, "%s: not a crash simulation journal", path);
    return -EINVAL;
  }
  j->file_size = (uint64_t) st.st_size;
  if (!(buf = malloc (BR_CS_CHUNK)))
    return -ENOMEM;
  while (pos < j->file_size) {
    uint64_t left = j->file_size - pos;
    struct br_cs_rec rec;

    /* J3: a record cut short is the torn tail. */
    if (left < BR_CS_REC_HDR)
      break;
    if ((r = br_pread_full (fd, h, BR_CS_REC_HDR, pos)) < 0)
      goto fail;
    if (br__cs_rec_decode (h, &rec) < 0) {
      if (left <= BR_CS_REC_HDR + BR_CS_CHUNK)
        break;
      goto corrupt;
    }
    if (rec.plen > left - BR_CS_REC_HDR)
      break;
    if (rec.plen) {
      if ((r = br_pread_full (fd, buf, rec.plen, pos + BR_CS_REC_HDR)) < 0)
        goto fail;
      if (br__cs_sum (buf, rec.plen) != rec.psum) {
        if (rec.plen == left - BR_CS_REC_HDR)
          break;
        goto corrupt;
      }
    }
    if ((r = add_record (j, &rec, pos + BR_CS_REC_HDR)) == -EINVAL)
      goto corrupt;
    if (r < 0)
      goto fail;
    pos += BR_CS_REC_HDR + rec.plen;
  }
  free (buf);
  return 0;

 corrupt:
  r = -EINVAL;
  br_seterr (err, errlen, "%s: corrupt record at byte %" PRIu64, path, pos);
 fail:
  if (r != -EINVAL)
    br_seterr (err, errlen, "%s: %s", path, br_strerror (-r));
  free (buf);
  journal_free (j);
  return r;
}

static bool
durable (const struct journal *j, uint32_t w)
{
  return j->w[w].done >= 0 && j->w[w].done < j->bstar;
}

/* Restore [A, B) of the image IMG from chunk C of the journal. */
static int
restore (const struct journal *j, int img, const struct chunk *c,
         uint64_t a, uint64_t b, uint8_t *buf)
{
  int r = 0;

  if (c->data == 0)
    memset (buf, 0, (size_t) (b - a));
  else
    r = br_pread_full (j->fd, buf, (size_t) (b - a), c->data + (a - c->off));
  return r < 0 ? r : br_pwrite_full (img, buf, (size_t) (b - a), a);
}

/* One volatile piece [A, B) of chunk C (outside every durable write met
 * so far): a candidate version of each sector it touches. */
static int
walk_piece (const struct journal *j, const struct chunk *c, uint64_t a,
            uint64_t b, int img, bool torn, uint64_t *seed,
            struct sectors *secs, uint8_t *buf)
{
  uint64_t run_a = a, run_b = a;        /* taken pieces, contiguous */
  uint32_t w = c->w + 1;
  int r = 0;

  for (uint64_t s = a / BR_CS_SECTOR; r == 0 && s * BR_CS_SECTOR < b; s++) {
    uint64_t pa = s * BR_CS_SECTOR > a ? s * BR_CS_SECTOR : a;
    uint64_t pb = (s + 1) * BR_CS_SECTOR < b ? (s + 1) * BR_CS_SECTOR : b;
    struct sector *e = sec_get (secs, s);
    bool take;

    if (!e)
      return -ENOMEM;
    if (e->last_w == w)         /* another chunk of the same write */
      take = e->chosen_w == w;
    else {
      e->last_w = w;
      e->cnt++;
      take = !torn || splitmix (seed) % e->cnt == 0;
      if (take) {
        e->chosen = e->cnt;
        e->chosen_w = w;
      }
    }
    if (!take)
      continue;
    if (pa != run_b) {
      if (img >= 0 && run_a < run_b)
        r = restore (j, img, c, run_a, run_b, buf);
      run_a = pa;
    }
    run_b = pb;
  }
  if (r == 0 && img >= 0 && run_a < run_b)
    r = restore (j, img, c, run_a, run_b, buf);
  return r;
}

/* The walk (see the top of the file).  IMG < 0: dry run (statistics). */
static int
journal_walk (struct journal *j, int img, bool torn, uint64_t seed,
              struct br_cs_stats *st)
{
  struct ivset dur = { 0 }, vol = { 0 };
  struct sectors secs = { 0 };
  uint8_t *buf = malloc (BR_CS_CHUNK);
  int r = buf ? 0 : -ENOMEM;

  for (size_t i = j->nc; r == 0 && i-- > 0; ) {
    const struct chunk *c = &j->c[i];
    uint64_t a = c->off, end = c->off + c->len;
    size_t k = iv_find (&dur, a);

    if (durable (j, c->w)) {
      r = iv_add (&dur, c->off, end);
      continue;
    }
    while (r == 0 && a < end) {         /* the pieces outside dur */
      uint64_t b;

      if (k < dur.n && dur.v[k].a <= a) {
        a = dur.v[k++].b;
        continue;
      }
      b = k < dur.n && dur.v[k].a < end ? dur.v[k].a : end;
      if ((r = iv_add (&vol, a, b)) == 0)
        r = walk_piece (j, c, a, b, img, torn, &seed, &secs, buf);
      a = b;
    }
  }
  st->records = j->nrec;
  st->writes = j->nw;
  for (size_t w = 0; w < j->nw; w++)
    st->volatile_writes += !durable (j, (uint32_t) w);
  st->volatile_bytes = iv_total (&vol);
  for (size_t i = 0; i < secs.cap; i++)
    if (secs.t[i].key) {
      st->sectors++;
      if (secs.t[i].chosen == secs.t[i].cnt)
        st->rolled_back++;
      else if (secs.t[i].chosen == 1)
        st->kept++;
      else
        st->intermediate++;
    }
  free (secs.t);
  free (dur.v);
  free (vol.v);
  free (buf);
  return r;
}

/* ---- shadow ------------------------------------------------------------- */

static int
shadow_walk (int shadow, int img, bool dry, bool torn, uint64_t seed,
             struct br_cs_stats *st, const char *path, char *err,
             size_t errlen)
{
  struct stat a, b;
  uint8_t *sh = NULL, *cur = NULL;
  int r;

  if (fstat (shadow, &a) < 0 || fstat (img, &b) < 0)
    return -errno;
  if (a.st_size != b.st_size) {
    br_seterr (err, errlen, "%s: the shadow is %jd bytes, the scoreboard "
               "%jd", path, (intmax_t) a.st_size, (intmax_t) b.st_size);
    return -EINVAL;
  }
  st->scoreboard = true;
  if (!(sh = malloc ((size_t) a.st_size + 1))
      || !(cur = malloc ((size_t) a.st_size + 1)))
    r = -ENOMEM;
  else if ((r = br_pread_full (shadow, sh, (size_t) a.st_size, 0)) == 0
           && (r = br_pread_full (img, cur, (size_t) a.st_size, 0)) == 0) {
    for (uint64_t o = 0; o < (uint64_t) a.st_size; o += BR_CS_SECTOR) {
      size_t n = (uint64_t) a.st_size - o < BR_CS_SECTOR
        ? (size_t) ((uint64_t) a.st_size - o) : BR_CS_SECTOR;

      if (memcmp (sh + o, cur + o, n) == 0)
        continue;
      st->sectors++;
      st->volatile_bytes += n;
      if (!torn || (splitmix (&seed) & 1)) {
        st->rolled_back++;
        if (!dry && (r = br_pwrite_full (img, sh + o, n, o)) < 0)
          break;
      }
      else
        st->kept++;
    }
  }
  free (sh);
  free (cur);
  if (r < 0)
    br_seterr (err, errlen, "%s: %s", path, br_strerror (-r));
  return r;
}

/* ---- entry points ------------------------------------------------------- */

static uint64_t
name_hash (const char *path)
{
  const char *base = strrchr (path, '/');
  uint64_t h = 0xcbf29ce484222325ull;

  for (const char *p = base ? base + 1 : path; *p; p++)
    h = (h ^ (uint8_t) *p) * 0x100000001b3ull;
  return h;
}

/* Cut (DRY false) or inspect TARGET. */
static int
replay (const char *target, bool dry, bool torn, uint64_t seed,
        struct br_cs_stats *st, char *err, size_t errlen)
{
  char *jpath = br__cs_path (target, BR_CS_SUFFIX);
  char magic[8] = { 0 };
  int jfd = -1, img = -1, r;

  memset (st, 0, sizeof *st);
  seed ^= name_hash (target);
  if (!jpath)
    return -ENOMEM;
  if ((jfd = open (jpath, O_RDONLY | O_CLOEXEC)) < 0) {
    r = -errno;
    br_seterr (err, errlen, "%s: %s", jpath, r == -ENOENT
               ? "no crash simulation journal or shadow" : br_strerror (-r));
    goto out;
  }
  if ((img = open (target, (dry ? O_RDONLY : O_RDWR) | O_CLOEXEC)) < 0) {
    r = -errno;
    br_seterr (err, errlen, "%s: %s", target, br_strerror (-r));
    goto out;
  }
  if (pread (jfd, magic, sizeof magic, 0) < 0)
    magic[0] = 0;
  if (memcmp (magic, BR_SB_MAGIC, 8) == 0)
    r = shadow_walk (jfd, img, dry, torn, seed, st, jpath, err, errlen);
  else {
    struct journal j;

    if ((r = journal_parse (&j, jfd, jpath, err, errlen)) < 0)
      goto out;
    r = journal_walk (&j, dry ? -1 : img, torn, seed, st);
    journal_free (&j);
    if (r < 0)
      br_seterr (err, errlen, "%s: replaying %s: %s", target, jpath,
                 br_strerror (-r));
  }
  if (r == 0 && !dry && unlink (jpath) < 0) {
    r = -errno;
    br_seterr (err, errlen, "%s: %s", jpath, br_strerror (-r));
  }
 out:
  if (img >= 0)
    close (img);
  if (jfd >= 0)
    close (jfd);
  free (jpath);
  return r;
}

int
br_cs_cut (const char *target, bool torn, uint64_t seed,
           struct br_cs_stats *st, char *err, size_t errlen)
{
  return replay (target, false, torn, seed, st, err, errlen);
}

int
br_cs_inspect (const char *target, struct br_cs_stats *st,
               char *err, size_t errlen)
{
  return replay (target, true, false, 0, st, err, errlen);
}

int
br_cs_cover (const char *image_a, const char *meta, const char *peer,
             const char *image_b, uint64_t *differ, uint64_t *bits,
             uint64_t *uncovered,
             void (*report) (uint64_t region, uint64_t gran, void *),
             void *arg, char *err, size_t errlen)
{
  br_sb_image *im = NULL;
  uint8_t *a = NULL, *b = NULL;
  int fa = -1, fb = -1, slot, r;
  uint64_t gran, size, chunk;

  *differ = *bits = *uncovered = 0;
  if ((r = br_sb_image_load (meta, &im, err, errlen)) < 0)
    return r;
  gran = br_sb_image_granularity (im);
  size = br_sb_image_volume_size (im);
  chunk = gran > (4u << 20) ? gran : 4u << 20;
  if ((slot = br_sb_image_slot (im, peer)) < 0) {
    r = slot;
    br_seterr (err, errlen, "%s: no peer slot named '%s'", meta, peer);
    goto out;
  }
  *bits = br_sb_image_count (im, slot);
  fa = open (image_a, O_RDONLY | O_CLOEXEC);
  fb = open (image_b, O_RDONLY | O_CLOEXEC);
  if (fa < 0 || fb < 0) {
    r = -errno;
    br_seterr (err, errlen, "%s: %s", fa < 0 ? image_a : image_b,
               br_strerror (-r));
    goto out;
  }
  if (!(a = malloc (chunk)) || !(b = malloc (chunk))) {
    r = -ENOMEM;
    goto out;
  }
  for (uint64_t o = 0; o < size; o += chunk) {
    size_t n = size - o < chunk ? (size_t) (size - o) : (size_t) chunk;

    if ((r = br_pread_full (fa, a, n, o)) < 0
        || (r = br_pread_full (fb, b, n, o)) < 0) {
      br_seterr (err, errlen, "reading %s and %s at %" PRIu64 ": %s (are "
                 "both %" PRIu64 " bytes?)", image_a, image_b, o,
                 br_strerror (-r), size);
      goto out;
    }
    for (size_t k = 0; k < n; k += gran) {
      size_t m = n - k < gran ? n - k : (size_t) gran;
      uint64_t rg = (o + k) / gran;

      if (memcmp (a + k, b + k, m) == 0)
        continue;
      ++*differ;
      if (!br_sb_image_test (im, slot, rg)) {
        ++*uncovered;
        if (report)
          report (rg, gran, arg);
      }
    }
  }
  r = 0;
 out:
  if (fa >= 0)
    close (fa);
  if (fb >= 0)
    close (fb);
  free (a);
  free (b);
  br_sb_image_free (im);
  return r;
}
