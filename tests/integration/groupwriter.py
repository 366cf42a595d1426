#!/usr/bin/python3
# groupwriter.py: dependent writes across the two volumes of a consistency
# group, and a checker that proves a copy holds one prefix of them.
#
#   groupwriter.py write URI_VOL0 URI_WAL0 [--max-seconds S] [--slots N]
#                  [--progress FILE] [--rate R] [--burst-rate RB]
#                  [--burst-ms B]
#   groupwriter.py check FILE_VOL0 FILE_WAL0 [--expect-highest N]
#   groupwriter.py sbflags META...
#
# Run it with /usr/bin/python3 (Debian's python3-libnbd provides `nbd`).
#
# write: for i = 1, 2, ... (pair i):
#   1. record R(i) to vol0 at slot i mod N (4 KiB at offset slot * 4096):
#        "BRGRPREC" | i (u64 le) | N (u64 le) | slot (u64 le) | nonce (16)
#        | random filler | sha256 of everything before it (32)
#      and wait until the server acknowledged it;
#   2. commit marker M(i) to wal0 at slot i mod N:
#        "BRGRPCMT" | i | N | slot | the record's nonce (16) | the
#        record's sha256 (32) | zeros | sha256 of everything before (32)
#      and wait until the server acknowledged it.
# So R(i) is always issued after M(i-1) completed and M(i) after R(i)
# completed: the pairs form one totally ordered stream across the two
# volumes.  N (--slots, default: as many 4 KiB blocks as the smaller
# volume holds) is stored in every block; slots are reused after N pairs.
# --progress FILE holds the index of the last acknowledged marker (updated
# by rename at most every 10 ms and at exit: a lower bound at any time).
# Pacing, in pairs per second (0 = as fast as the server answers): --rate
# R; after SIGUSR1, --burst-rate RB until SIGUSR2 or for at most
# --burst-ms B (default 1000), so a test can make the writer outrun a
# rate-capped link right before it cuts it.  Progress goes to stderr once a
# second.  SIGTERM/SIGINT (or --max-seconds) stop the loop between two
# pairs; the last line on stdout is "last=I".  Exit 0; 3 if a write failed
# (the error is printed).
#
# check: reads the two volumes' image files (a replica's, after it stopped
# applying: killed, stopped, or its upstream connection gone) and checks
# that they hold exactly one prefix of the stream R(1) M(1) R(2) M(2) ...
# Let m be the highest marker on wal0 (0 if none).  Then:
#   * every marker M(i) on wal0 has its record: vol0's slot i mod N holds
#     R(i) with the nonce and checksum the marker names, or a later record
#     R(i + kN) (the slot was reused after M(i) was written); anything else
#     is an ORDER violation: a commit marker without its record;
#   * the copy is the prefix up to M(m), possibly with R(m+1): each wal0
#     slot holds the newest marker <= m that maps to it (zeros if none),
#     each vol0 slot the newest record <= m (or R(m+1)), vol0 past N slots
#     and wal0 past N slots are zeros; anything else is a PREFIX violation
#     (a write lost, duplicated from the wrong time, or garbage).
# Prints "highest=M markers=K records_without_marker=R slots=N" on stdout
# and a summary on stderr; exits 1 listing the first violations.
# --expect-highest N also requires m == N (the whole stream arrived).
#
# sbflags: prints "NAME consistent=0|1 clean=0|1 fresh=0|1" for each
# blockrelay scoreboard (.meta) file, read from its header (docs/formats.md:
# magic "BRSCORE1" at 0, flags u32 le at 40: CLEAN 1, CONSISTENT 2,
# FRESH 4) — the consistent flag of a copy whose process is not running.

import hashlib
import os
import random
import signal
import struct
import sys
import time

BLK = 4096
REC_MAGIC = b"BRGRPREC"
CMT_MAGIC = b"BRGRPCMT"
HDR = struct.Struct("<8sQQQ16s")         # magic, i, nslots, slot, nonce
SUM = 32                                 # sha256 at the end of each block
ZERO = bytes(BLK)


def die(msg, rc=2):
    sys.stderr.write("groupwriter: %s\n" % msg)
    sys.exit(rc)


def parse_opts(argv, opts):
    pos = []
    i = 0
    while i < len(argv):
        if argv[i] in opts:
            if i + 1 >= len(argv):
                die("%s needs a value" % argv[i])
            opts[argv[i]] = argv[i + 1]
            i += 2
        elif argv[i].startswith("--"):
            die("unknown option %s" % argv[i])
        else:
            pos.append(argv[i])
            i += 1
    return pos


def make_record(i, nslots, nonce, filler):
    body = HDR.pack(REC_MAGIC, i, nslots, i % nslots, nonce)
    body += filler[:BLK - SUM - len(body)]
    s = hashlib.sha256(body).digest()
    return body + s, s


def make_marker(i, nslots, nonce, rec_sum):
    body = HDR.pack(CMT_MAGIC, i, nslots, i % nslots, nonce) + rec_sum
    body += bytes(BLK - SUM - len(body))
    return body + hashlib.sha256(body).digest()


def parse_block(data, magic, slot):
    """(i, nslots, nonce, extra) for a valid block of this kind at this
    slot, 0 for zeros, None for anything else (garbage, torn, moved)."""
    if data == ZERO:
        return 0
    m, i, nslots, bslot, nonce = HDR.unpack_from(data)
    if (m != magic or i == 0 or nslots == 0 or bslot != slot or
            i % nslots != slot or
            hashlib.sha256(data[:BLK - SUM]).digest() != data[BLK - SUM:]):
        return None
    if magic == CMT_MAGIC:
        extra = data[HDR.size:HDR.size + SUM]          # the record's sum
    else:
        extra = data[BLK - SUM:]                       # its own sum
    return (i, nslots, nonce, extra)


# ---------------------------------------------------------------- write

def cmd_write(argv):
    # Signals stay pending while a write is in flight; the loop takes them
    # between two pairs (no EINTR in the middle of libnbd).
    sigs = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    import nbd

    opts = {"--max-seconds": "600", "--slots": "0", "--progress": None,
            "--rate": "0", "--burst-rate": "0", "--burst-ms": "1000"}
    pos = parse_opts(argv, opts)
    if len(pos) != 2:
        die("usage: write URI_VOL0 URI_WAL0 [--max-seconds S] [--slots N] "
            "[--progress FILE] [--rate R] [--burst-rate RB] [--burst-ms B]")
    uri_vol, uri_wal = pos
    rate = float(opts["--rate"])
    burst_rate = float(opts["--burst-rate"])
    burst_s = int(opts["--burst-ms"]) / 1000
    progress = opts["--progress"]

    hv, hw = nbd.NBD(), nbd.NBD()
    try:
        hv.connect_uri(uri_vol)
        hw.connect_uri(uri_wal)
    except nbd.Error as e:
        die("connect: %s" % e, 3)
    nslots = min(hv.get_size(), hw.get_size()) // BLK
    if int(opts["--slots"]):
        if int(opts["--slots"]) > nslots:
            die("--slots %s: the volumes hold only %d" % (opts["--slots"],
                                                         nslots))
        nslots = int(opts["--slots"])
    if nslots < 2:
        die("volumes too small")

    rng = random.Random()
    t0 = time.monotonic()
    deadline = t0 + float(opts["--max-seconds"])
    i = 0                   # last pair whose marker was acknowledged
    t_prog = 0.0
    t_log = t0
    i_log = 0
    credit = 0.0            # pacing: pairs we may still issue
    t_credit = t0
    burst_end = 0.0         # monotonic time a signalled burst ends
    n_bursts = 0

    def write_progress(n):
        if progress is None:
            return
        tmp = progress + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % n)
        os.rename(tmp, progress)

    write_progress(0)
    failed = None
    stop = False
    wait = 0.0              # seconds to wait for a signal (pacing)
    while True:
        while True:
            si = signal.sigtimedwait(sigs, wait)
            wait = 0.0
            if si is None:
                break
            if si.si_signo in (signal.SIGTERM, signal.SIGINT):
                stop = True
            elif si.si_signo == signal.SIGUSR1:
                burst_end = time.monotonic() + burst_s
                n_bursts += 1
            elif si.si_signo == signal.SIGUSR2:
                burst_end = 0.0
        now = time.monotonic()
        if stop or now >= deadline:
            break
        r = burst_rate if now < burst_end else rate
        if r:
            credit = min(credit + (now - t_credit) * r, max(1.0, r / 50))
            t_credit = now
            if credit < 1:
                wait = min(0.02, (1 - credit) / r)
                continue
            credit -= 1
        else:
            t_credit = now
        n = i + 1
        nonce = rng.getrandbits(128).to_bytes(16, "little")
        rec, rsum = make_record(n, nslots, nonce, os.urandom(BLK))
        slot = n % nslots
        try:
            hv.pwrite(rec, slot * BLK)
        except nbd.Error as e:
            failed = "record %d (vol0 offset %d): %s" % (n, slot * BLK, e)
            break
        try:
            hw.pwrite(make_marker(n, nslots, nonce, rsum), slot * BLK)
        except nbd.Error as e:
            failed = "marker %d (wal0 offset %d): %s" % (n, slot * BLK, e)
            break
        i = n
        now = time.monotonic()
        if now - t_prog >= 0.01:
            write_progress(i)
            t_prog = now
        if now - t_log >= 1:
            sys.stderr.write("groupwriter: pair %d, %.0f pairs/s\n"
                             % (i, (i - i_log) / (now - t_log)))
            sys.stderr.flush()
            t_log, i_log = now, i
    write_progress(i)
    sys.stdout.write("last=%d\n" % i)
    sys.stdout.flush()
    if failed:
        sys.stderr.write("groupwriter: %d pairs acknowledged, then %s\n"
                         % (i, failed))
        sys.exit(3)
    for h in (hv, hw):
        try:
            h.shutdown()
        except nbd.Error:
            pass
    sys.stderr.write("groupwriter: stopped after %d pairs (%d slots, %d "
                     "bursts) in %.1fs\n" % (i, nslots, n_bursts,
                                             time.monotonic() - t0))
    sys.exit(0)


# ---------------------------------------------------------------- check

def read_slots(path, magic, name):
    """Every 4 KiB block of the file: a list of parse_block results."""
    out = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size % BLK:
            die("%s: size %d is not a multiple of 4096" % (path, size))
        chunk = 8 << 20
        b = 0
        while True:
            data = f.read(chunk)
            if not data:
                break
            if data == bytes(len(data)):
                out.extend([0] * (len(data) // BLK))
                b += len(data) // BLK
                continue
            for k in range(0, len(data), BLK):
                out.append(parse_block(data[k:k + BLK], magic, b))
                b += 1
    if len(out) * BLK != size:
        die("%s: short read" % path)
    return out


def describe(v, what):
    if v == 0:
        return "zeros"
    if v is None:
        return "garbage (neither zeros nor a valid %s for this slot)" % what
    return "%s %d" % (what, v[0])


def cmd_check(argv):
    opts = {"--expect-highest": None}
    pos = parse_opts(argv, opts)
    if len(pos) != 2:
        die("usage: check FILE_VOL0 FILE_WAL0 [--expect-highest N]")
    fvol, fwal = pos
    vol = read_slots(fvol, REC_MAGIC, "vol0")
    wal = read_slots(fwal, CMT_MAGIC, "wal0")

    order = []              # markers without their record
    prefix = []             # anything else that is not the prefix
    nslots = None
    for name, blocks in (("vol0", vol), ("wal0", wal)):
        for b, v in enumerate(blocks):
            if v and v is not None:
                if nslots is None:
                    nslots = v[1]
                elif v[1] != nslots:
                    prefix.append("%s block %d: written with %d slots, "
                                  "others with %d" % (name, b, v[1], nslots))
    if nslots is None:
        nslots = 1          # both empty: every block must be zeros
    m = max((v[0] for v in wal if v), default=0)

    def newest(k, upto):
        """The newest pair index <= upto that uses slot k (0: none)."""
        if upto < 1:
            return 0
        e = upto - ((upto - k) % nslots)
        return e if e >= 1 else 0

    n_markers = 0
    for k, v in enumerate(wal):
        if v is None:
            prefix.append("wal0 slot %d: %s" % (k, describe(v, "marker")))
            continue
        if v:
            n_markers += 1
            i, _, nonce, rsum = v
            r = vol[k] if k < len(vol) else 0
            if not r or r is None or r[0] < i:
                order.append("commit marker %d (wal0 slot %d) without its "
                             "record: vol0 slot %d holds %s"
                             % (i, k, k, describe(r, "record")))
            elif r[0] == i and (r[2] != nonce or r[3] != rsum):
                order.append("commit marker %d names a record that is not "
                             "the one on vol0 slot %d (nonce/checksum differ)"
                             % (i, k))
        want = newest(k, m) if k < nslots else 0
        got = v[0] if v else 0
        if got != want:
            prefix.append("wal0 slot %d: holds %s, the prefix up to marker "
                          "%d has %s" % (k, describe(v, "marker"), m,
                                         "marker %d" % want if want
                                         else "zeros"))
    n_extra = 0
    for k, v in enumerate(vol):
        if v is None:
            prefix.append("vol0 slot %d: %s" % (k, describe(v, "record")))
            continue
        want = {newest(k, m)} if k < nslots else {0}
        if k < nslots and (m + 1) % nslots == k:
            want.add(m + 1)             # R(m+1) may be there before M(m+1)
        got = v[0] if v else 0
        if got > m:
            n_extra += 1
        if got not in want:
            prefix.append("vol0 slot %d: holds %s, the prefix up to marker "
                          "%d has %s" % (k, describe(v, "record"), m,
                                         " or ".join("record %d" % w if w
                                                     else "zeros"
                                                     for w in sorted(want))))
    exp = opts["--expect-highest"]
    if exp is not None and int(exp) != m:
        prefix.append("the highest marker is %d, expected %s" % (m, exp))

    sys.stdout.write("highest=%d markers=%d records_without_marker=%d "
                     "slots=%d\n" % (m, n_markers, n_extra, nslots))
    if order or prefix:
        sys.stderr.write("groupwriter check %s %s: FAILED: %d order "
                         "violations (commit marker without its record), "
                         "%d prefix violations; highest marker %d, %d "
                         "markers, %d slots\n"
                         % (fvol, fwal, len(order), len(prefix), m,
                            n_markers, nslots))
        for line in order[:20]:
            sys.stderr.write("  ORDER: %s\n" % line)
        for line in prefix[:20]:
            sys.stderr.write("  PREFIX: %s\n" % line)
        sys.exit(1)
    sys.stderr.write("groupwriter check: ok: %d commit markers checked, "
                     "highest %d, %d record(s) without a marker, %d slots\n"
                     % (n_markers, m, n_extra, nslots))


# ---------------------------------------------------------------- sbflags

def cmd_sbflags(argv):
    if not argv:
        die("usage: sbflags META...")
    for path in argv:
        with open(path, "rb") as f:
            hdr = f.read(64)
        if len(hdr) < 64 or hdr[:8] != b"BRSCORE1":
            die("%s: not a blockrelay scoreboard" % path)
        flags = struct.unpack_from("<I", hdr, 40)[0]
        name = os.path.basename(path)
        if name.endswith(".meta"):
            name = name[:-5]
        print("%s consistent=%d clean=%d fresh=%d"
              % (name, bool(flags & 2), bool(flags & 1), bool(flags & 4)))


def main():
    cmds = {"write": cmd_write, "check": cmd_check, "sbflags": cmd_sbflags}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        die("usage: groupwriter.py write|check|sbflags ...")
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
