/* blockrelay — replay driver for the fuzz targets in builds without
 * libFuzzer (the normal gcc build, ASan, TSan).
 *
 *   replay-frame DIR_OR_FILE...
 *
 * Links with one target's LLVMFuzzerTestOneInput and calls it once on
 * every regular file of each directory given (sorted by name, not
 * recursing) or on each file given.  A crash, an assertion or a sanitizer
 * report ends the process as it would under libFuzzer; otherwise it
 * prints how many inputs ran and exits 0.  An argument that cannot be
 * read, or a directory without any input, is an error (exit 1), so a
 * misspelt corpus path in a ctest line does not pass silently.
 *
 * Each input is copied into a buffer of exactly its size, so ASan sees a
 * read past the end as libFuzzer would.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv) __attribute__ ((weak));

static int
run_file (const char *path)
{
  FILE *fp = fopen (path, "rb");
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0, n;

  if (fp == NULL) {
    fprintf (stderr, "replay: %s: %s\n", path, strerror (errno));
    return -1;
  }
  do {
    if (len == cap) {
      uint8_t *nb = realloc (buf, cap = cap ? 2 * cap : 65536);
      if (nb == NULL) {
        fprintf (stderr, "replay: %s: out of memory\n", path);
        free (buf);
        fclose (fp);
        return -1;
      }
      buf = nb;
    }
    n = fread (buf + len, 1, cap - len, fp);
    len += n;
  } while (n > 0);
  if (ferror (fp)) {
    fprintf (stderr, "replay: %s: read error\n", path);
    free (buf);
    fclose (fp);
    return -1;
  }
  fclose (fp);
  /* Exactly LEN bytes, so that a read past the end is caught. */
  uint8_t *exact = malloc (len ? len : 1);
  if (exact == NULL) {
    free (buf);
    return -1;
  }
  if (len)
    memcpy (exact, buf, len);
  free (buf);
  LLVMFuzzerTestOneInput (exact, len);
  free (exact);
  return 0;
}

static int
by_name (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Every regular file of DIR; returns the count, or -1. */
static long
run_dir (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *de;
  char **names = NULL;
  size_t n = 0, cap = 0;
  long count = 0;

  if (d == NULL) {
    fprintf (stderr, "replay: %s: %s\n", dir, strerror (errno));
    return -1;
  }
  while ((de = readdir (d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    if (n == cap) {
      char **nn = realloc (names, (cap = cap ? 2 * cap : 64) * sizeof *nn);
      if (nn == NULL)
        break;
      names = nn;
    }
    names[n++] = strdup (de->d_name);
  }
  closedir (d);
  if (n)
    qsort (names, n, sizeof *names, by_name);
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    struct stat st;

    snprintf (path, sizeof path, "%s/%s", dir, names[i]);
    free (names[i]);
    if (count >= 0 && stat (path, &st) == 0 && S_ISREG (st.st_mode)) {
      if (run_file (path) < 0)
        count = -1;
      else
        count++;
    }
  }
  free (names);
  return count;
}

int
main (int argc, char **argv)
{
  long total = 0;

  if (argc < 2) {
    fprintf (stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize (&argc, &argv);
  for (int i = 1; i < argc; i++) {
    struct stat st;
    long n;

    if (stat (argv[i], &st) < 0) {
      fprintf (stderr, "replay: %s: %s\n", argv[i], strerror (errno));
      return 1;
    }
    if (S_ISDIR (st.st_mode)) {
      n = run_dir (argv[i]);
      if (n < 0)
        return 1;
    }
    else if (run_file (argv[i]) < 0)
      return 1;
    else
      n = 1;
    total += n;
  }
  if (total == 0) {
    fprintf (stderr, "replay: no inputs\n");
    return 1;
  }
  printf ("replay: %ld inputs ran clean\n", total);
  return 0;
}
