/* blockrelay — dropping root privileges (blockrelayd --user, settings.user).
 *
 * blockrelayd needs root only to start: to bind a listener on a low port,
 * to create its control socket in a root-owned directory such as /run, and
 * to open disks such as /dev/loopN or /dev/sdX.  Once all of those are
 * open it has no use for root, so with --user NAME (or settings.user) it
 * becomes NAME for the rest of its life:
 *
 *   1. the control socket (already 0600, control.c) is chowned to NAME and
 *      its primary group, so that NAME's processes may use it (root may
 *      use it whatever its owner);
 *   2. initgroups (NAME's supplementary groups, e.g. "disk"), setgid,
 *      setuid, in that order (after setuid, the groups could no longer be
 *      changed);
 *   3. it checks that the change cannot be undone (setuid (0) fails) and
 *      that the real, effective and saved ids are all NAME's.
 *
 * glibc applies set*id to every thread of the process, so the loop, apply
 * and task threads that already run change with the caller.  Only root may
 * change user; a process already running as NAME has nothing to do, and
 * any other user is an error.  Nothing here is setuid: the binaries are
 * installed without the bit, and privileges only ever go down.
 *
 * What stays open keeps working (the listener, the disks, the scoreboards:
 * file descriptors); what is created later must be creatable by NAME: the
 * pidfile (written once the privileges are dropped: a ready daemon is
 * already unprivileged), the metrics-file and its temporary file.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1           /* initgroups, getresuid */
#endif

#include "privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "log.h"

int
br_drop_privileges (const char *user, const char *control_path,
                    char *err, size_t errlen)
{
  struct passwd pw, *res = NULL;
  char buf[4096];
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  int r;

  r = getpwnam_r (user, &pw, buf, sizeof buf, &res);
  if (res == NULL) {
    snprintf (err, errlen, "user %s: %s", user,
              r ? strerror (r) : "no such user");
    return r ? -r : -ENOENT;
  }
  if (geteuid () != 0) {
    if (geteuid () == pw.pw_uid && getuid () == pw.pw_uid)
      return 0;                 /* already that user */
    snprintf (err, errlen, "cannot change to user %s: only root can change "
              "user (this process runs as uid %u)", user,
              (unsigned) geteuid ());
    return -EPERM;
  }
  if (control_path && chown (control_path, pw.pw_uid, pw.pw_gid) < 0) {
    r = errno;
    snprintf (err, errlen, "cannot chown the control socket %s to %s: %s",
              control_path, user, strerror (r));
    return -r;
  }
  if (initgroups (user, pw.pw_gid) < 0 || setgid (pw.pw_gid) < 0 ||
      setuid (pw.pw_uid) < 0) {
    r = errno;
    snprintf (err, errlen, "cannot change to user %s (uid %u, gid %u): %s",
              user, (unsigned) pw.pw_uid, (unsigned) pw.pw_gid, strerror (r));
    return -r;
  }
  if (getresuid (&ruid, &euid, &suid) < 0 ||
      getresgid (&rgid, &egid, &sgid) < 0 ||
      ruid != pw.pw_uid || euid != pw.pw_uid || suid != pw.pw_uid ||
      rgid != pw.pw_gid || egid != pw.pw_gid || sgid != pw.pw_gid ||
      (pw.pw_uid != 0 && setuid (0) == 0)) {
    snprintf (err, errlen, "changing to user %s did not take: the process "
              "could regain its privileges", user);
    return -EPERM;
  }
  br_info ("running as user %s (uid %u, gid %u)", user, (unsigned) pw.pw_uid,
           (unsigned) pw.pw_gid);
  return 0;
}
