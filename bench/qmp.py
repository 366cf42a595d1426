#!/usr/bin/env python3
"""Minimal QMP client for bench/run.sh (standard library only).

    qmp.py SOCKET mirror --target-host H --target-port P [--timeout S]
        Connect to a qemu-storage-daemon monitor socket (retrying until it
        accepts: that is the readiness signal), add an NBD client node for
        the target, start blockdev-mirror sync=full copy-mode=write-blocking
        from node "src", wait for BLOCK_JOB_READY, then check with
        query-block-jobs that the job is a mirror, ready and not failed.
        Prints the query-block-jobs answer as JSON on stdout.

    qmp.py SOCKET query
        Print query-block-jobs.

Exit status 0 on success, 1 on any error (message on stderr).
"""

import argparse
import json
import socket
import sys
import time


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"{path}: no QMP monitor within {timeout}s")
                time.sleep(0.05)   # polling for the socket, not a fixed wait
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise QMPError(f"unexpected greeting: {greeting}")
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QMPError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise QMPError(f"{name}: {r['error'].get('class')}: "
                               f"{r['error'].get('desc')}")
            return r.get("return")

    def wait_event(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if pred(e):
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError("timed out waiting for event")
            self.sock.settimeout(left)
            try:
                r = self._read()
            except socket.timeout:
                raise QMPError("timed out waiting for event")
            if "event" in r:
                self.events.append(r)


def mirror(q, args):
    q.cmd("blockdev-add", **{
        "driver": "nbd",
        "node-name": "tgt",
        "server": {"type": "inet", "host": args.target_host,
                   "port": str(args.target_port)},
    })
    q.cmd("blockdev-mirror", **{
        "job-id": "mirror0",
        "device": "src",
        "target": "tgt",
        "sync": "full",
        "copy-mode": "write-blocking",
    })

    def ready_or_dead(e):
        d = e.get("data", {})
        return (d.get("device") == "mirror0" and
                e["event"] in ("BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED",
                               "BLOCK_JOB_ERROR"))

    e = q.wait_event(ready_or_dead, args.timeout)
    if e["event"] != "BLOCK_JOB_READY":
        raise QMPError(f"mirror did not become ready: {json.dumps(e)}")

    jobs = q.cmd("query-block-jobs")
    job = next((j for j in jobs if j.get("device") == "mirror0"), None)
    if job is None:
        raise QMPError(f"mirror0 not in query-block-jobs: {jobs}")
    problems = []
    if job.get("type") != "mirror":
        problems.append(f"type is {job.get('type')}")
    if not job.get("ready") or job.get("status") != "ready":
        problems.append(f"ready={job.get('ready')} status={job.get('status')}")
    if job.get("io-status", "ok") != "ok" or job.get("error"):
        problems.append(f"io-status={job.get('io-status')} "
                        f"error={job.get('error')}")
    # QEMU >= 8.2 reports the copy mode in use ("actively-synced" is true
    # once write-blocking mode mirrors every guest write synchronously).
    if "actively-synced" in job and not job["actively-synced"]:
        problems.append("actively-synced is false")
    if problems:
        raise QMPError("mirror job not as expected: " + "; ".join(problems))
    print(json.dumps({"copy-mode-requested": "write-blocking",
                      "query-block-jobs": jobs}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("action", choices=["mirror", "query"])
    ap.add_argument("--target-host", default="127.0.0.1")
    ap.add_argument("--target-port", type=int)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    try:
        q = QMP(args.socket, args.timeout)
        if args.action == "mirror":
            if args.target_port is None:
                ap.error("mirror needs --target-port")
            mirror(q, args)
        else:
            print(json.dumps(q.cmd("query-block-jobs")))
    except (QMPError, OSError, ValueError) as e:
        print(f"qmp.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
