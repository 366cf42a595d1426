/* blockrelay — the task thread: disk work on behalf of the loop thread.
 *
 * The loop thread never blocks on disk I/O, msync or joins.  What it needs
 * from the disk — resync region reads, the full-sync mark of a new peer,
 * recording a peer's generation, a sync of a volume whose bits wait for
 * local durability, preparing a relay's scoreboards — it posts here.  One
 * thread runs the tasks in posting order (so two header updates never
 * race each other), and each task's DONE callback runs back on the loop
 * thread, where it may touch handles.
 *
 *   post (any thread)   append to todo, signal the thread
 *   thread              pop, run WORK (no lock held), append to done,
 *                       uv_async_send
 *   loop (async)        take the done list, call DONE (cancelled false)
 *   stop (loop)         the thread stops taking tasks; what is still in
 *                       todo is handed back with cancelled true (WORK not
 *                       run); once the thread has exited the async handle
 *                       is closed, so the loop can end
 *
 * Invariants:
 *   T1. DONE runs exactly once per posted task, on the loop thread.
 *   T2. Tasks run one at a time, in posting order.
 * Lock rule: `lock` guards the two lists and the flags; WORK and DONE run
 * without it.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"

struct task {
  struct task *next;
  void (*work) (void *arg);
  void (*done) (void *arg, bool cancelled);
  void *arg;
  bool ran;
};

struct br_tasks {
  struct br_engine *e;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct task *todo, **todo_tail;
  struct task *done, **done_tail;
  bool stop, exited, joined;
  uv_async_t async;
};

static void
append (struct task ***tail, struct task *t)
{
  t->next = NULL;
  **tail = t;
  *tail = &t->next;
}

static void *
task_thread (void *arg)
{
  struct br_tasks *ts = arg;

  pthread_mutex_lock (&ts->lock);
  for (;;) {
    struct task *t;

    while (ts->todo == NULL && !ts->stop)
      pthread_cond_wait (&ts->cond, &ts->lock);
    if (ts->stop)
      break;
    t = ts->todo;
    ts->todo = t->next;
    if (ts->todo == NULL)
      ts->todo_tail = &ts->todo;
    pthread_mutex_unlock (&ts->lock);
    t->work (t->arg);
    t->ran = true;
    pthread_mutex_lock (&ts->lock);
    append (&ts->done_tail, t);
    uv_async_send (&ts->async);
  }
  /* Stopping: hand back what never ran (T1). */
  while (ts->todo) {
    struct task *t = ts->todo;
    ts->todo = t->next;
    append (&ts->done_tail, t);
  }
  ts->todo_tail = &ts->todo;
  ts->exited = true;
  uv_async_send (&ts->async);
  pthread_mutex_unlock (&ts->lock);
  return NULL;
}

static void
on_async_closed (uv_handle_t *h)
{
  struct br_tasks *ts = h->data;

  pthread_mutex_destroy (&ts->lock);
  pthread_cond_destroy (&ts->cond);
  free (ts);
}

static void
on_tasks_done (uv_async_t *a)
{
  struct br_tasks *ts = a->data;
  struct task *list;
  bool exited;

  pthread_mutex_lock (&ts->lock);
  list = ts->done;
  ts->done = NULL;
  ts->done_tail = &ts->done;
  exited = ts->exited;
  pthread_mutex_unlock (&ts->lock);
  while (list) {
    struct task *t = list;
    list = t->next;
    t->done (t->arg, !t->ran);
    free (t);
  }
  if (exited && !ts->joined) {
    pthread_join (ts->thread, NULL);      /* it has returned: no wait */
    ts->joined = true;
    uv_close ((uv_handle_t *) &ts->async, on_async_closed);
  }
}

int
br__task_post (struct br_engine *e, void (*work) (void *arg),
               void (*done) (void *arg, bool cancelled), void *arg)
{
  struct br_tasks *ts = e->tasks;
  struct task *t;

  if (ts == NULL)
    return -ECANCELED;
  t = calloc (1, sizeof *t);
  if (t == NULL)
    return -ENOMEM;
  t->work = work;
  t->done = done;
  t->arg = arg;
  pthread_mutex_lock (&ts->lock);
  if (ts->stop) {
    pthread_mutex_unlock (&ts->lock);
    free (t);
    return -ECANCELED;
  }
  append (&ts->todo_tail, t);
  pthread_cond_signal (&ts->cond);
  pthread_mutex_unlock (&ts->lock);
  return 0;
}

int
br__tasks_start (struct br_engine *e)
{
  struct br_tasks *ts = calloc (1, sizeof *ts);
  int err;

  if (ts == NULL)
    return -ENOMEM;
  ts->e = e;
  ts->todo_tail = &ts->todo;
  ts->done_tail = &ts->done;
  pthread_mutex_init (&ts->lock, NULL);
  pthread_cond_init (&ts->cond, NULL);
  err = uv_async_init (&e->loop, &ts->async, on_tasks_done);
  if (err < 0) {
    pthread_mutex_destroy (&ts->lock);
    pthread_cond_destroy (&ts->cond);
    free (ts);
    return err;
  }
  ts->async.data = ts;
  err = pthread_create (&ts->thread, NULL, task_thread, ts);
  if (err) {
    br_error ("cannot start the task thread: %s", br_strerror (err));
    uv_close ((uv_handle_t *) &ts->async, on_async_closed);
    return -err;
  }
  e->tasks = ts;
  return 0;
}

void
br__tasks_stop (struct br_engine *e)
{
  struct br_tasks *ts = e->tasks;

  if (ts == NULL)
    return;
  e->tasks = NULL;                /* no more posting */
  pthread_mutex_lock (&ts->lock);
  ts->stop = true;
  pthread_cond_signal (&ts->cond);
  pthread_mutex_unlock (&ts->lock);
}
