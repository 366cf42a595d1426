/* blockrelay — the metrics file: a node's metrics for node_exporter.
 *
 * What: when the node has `metrics-file: PATH` (config.h), the text of
 * br__metrics_text() is written to PATH every `settings: metrics-interval`
 * (default 15s), once as soon as the loop runs, and once more at a clean
 * stop, for node_exporter's textfile collector (or anything else that
 * reads a Prometheus text file).
 *
 * Invariants:
 *   F1. A reader never sees a partial file: the text goes to
 *       PATH.tmp.<pid> and is renamed over PATH (atomic on one file
 *       system).  No fsync: a metrics file that a power cut loses is
 *       rewritten by the next interval.
 *   F2. Failures are never fatal and are logged once per streak: the
 *       first failure is a warning, the next success says so.
 *   F3. At most one write is on the task thread at a time: a tick that
 *       finds one still running is skipped.
 *
 * Lock and thread rules: the timer and the snapshot run on the loop
 * thread (br__metrics_text takes each group's lock briefly); the write
 * (open, write, rename) runs on the engine's task thread (tasks.c), since
 * the loop thread never does disk I/O.  The final write runs on the
 * thread that stopped the engine, after the loop thread has exited.  The
 * writer is freed only then, after every posted write's DONE has run.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct br_metrics_file {
  struct br_engine *e;
  const char *path;                 /* the node's metrics-file */
  uv_timer_t timer;
  bool timer_open;
  bool busy;                        /* a write is on the task thread */
  bool failing;                     /* the last write failed (F2) */
};

struct job {
  struct br_metrics_file *mf;
  char *text;
  size_t len;
  int err;                          /* 0 or -errno */
  const char *step;                 /* what failed */
};

/* F1: TEXT to PATH.tmp.<pid>, renamed over PATH.  0, or -errno with
 * *STEP naming what failed. */
static int
write_atomically (const char *path, const char *text, size_t len,
                  const char **step)
{
  char tmp[4096];
  int fd, r;

  if (snprintf (tmp, sizeof tmp, "%s.tmp.%ld", path, (long) getpid ())
      >= (int) sizeof tmp) {
    *step = "path too long";
    return -ENAMETOOLONG;
  }
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *step = "cannot create the temporary file";
    return -errno;
  }
  r = br_pwrite_full (fd, text, len, 0);
  if (close (fd) < 0 && r == 0)
    r = -errno;
  if (r < 0)
    *step = "cannot write the temporary file";
  else if (rename (tmp, path) < 0) {
    r = -errno;
    *step = "cannot rename the temporary file over it";
  }
  if (r < 0)
    unlink (tmp);
  return r;
}

/* F2. */
static void
report (struct br_metrics_file *mf, int err, const char *step)
{
  if (err < 0 && !mf->failing)
    br_warn ("metrics-file %s: %s: %s (not logged again until a write "
             "succeeds)", mf->path, step, br_strerror (-err));
  else if (err == 0 && mf->failing)
    br_info ("metrics-file %s: written again", mf->path);
  mf->failing = err < 0;
}

static void
job_work (void *arg)
{
  struct job *j = arg;

  j->err = write_atomically (j->mf->path, j->text, j->len, &j->step);
}

static void
job_done (void *arg, bool cancelled)
{
  struct job *j = arg;

  j->mf->busy = false;
  if (!cancelled)
    report (j->mf, j->err, j->step);
  free (j->text);
  free (j);
}

static void
on_timer (uv_timer_t *t)
{
  struct br_metrics_file *mf = t->data;
  struct job *j;

  if (mf->busy)                     /* F3 */
    return;
  j = calloc (1, sizeof *j);
  if (j == NULL || br__metrics_text (mf->e, &j->text, &j->len) < 0) {
    free (j);
    report (mf, -ENOMEM, "cannot build the metrics");
    return;
  }
  j->mf = mf;
  if (br__task_post (mf->e, job_work, job_done, j) < 0) {
    free (j->text);
    free (j);
    return;                         /* stopping */
  }
  mf->busy = true;
}

int
br__metrics_file_start (struct br_engine *e)
{
  struct br_metrics_file *mf;
  uint64_t every = e->cfg->metrics_interval_ms;

  if (e->self->metrics_file == NULL)
    return 0;
  mf = calloc (1, sizeof *mf);
  if (mf == NULL)
    return -ENOMEM;
  mf->e = e;
  mf->path = e->self->metrics_file;
  uv_timer_init (&e->loop, &mf->timer);
  mf->timer.data = mf;
  mf->timer_open = true;
  uv_timer_start (&mf->timer, on_timer, 0, every);  /* at once, then */
  e->metrics_file = mf;
  return 0;
}

void
br__metrics_file_stop (struct br_engine *e)
{
  struct br_metrics_file *mf = e->metrics_file;

  if (mf == NULL || !mf->timer_open)
    return;
  mf->timer_open = false;
  uv_close ((uv_handle_t *) &mf->timer, NULL);  /* freed by _final */
}

void
br__metrics_file_final (struct br_engine *e, bool write)
{
  struct br_metrics_file *mf = e->metrics_file;
  const char *step = NULL;
  char *text = NULL;
  size_t len = 0;
  int r;

  if (mf == NULL)
    return;
  if (write) {
    r = br__metrics_text (e, &text, &len);
    if (r == 0)
      r = write_atomically (mf->path, text, len, &step);
    else
      step = "cannot build the metrics";
    report (mf, r, step);
    free (text);
  }
  e->metrics_file = NULL;
  free (mf);
}
