#!/usr/bin/python3
# ackwriter.py: a writer that logs what the NBD server acknowledged, and a
# checker that proves every acknowledged write is still there.
#
#   ackwriter.py write URI LOG [--seq-start N] [--depth D] [--max-seconds S]
#                              [--seed N] [--rate WRITES_PER_SECOND]
#   ackwriter.py check LOG IMAGE_OR_URI
#   ackwriter.py same IMAGE_OR_URI IMAGE_OR_URI
#
# Run it with /usr/bin/python3 (Debian's python3-libnbd provides `nbd`).
#
# write: random writes of 4K..64K at random 4K-aligned offsets, D of them
# in flight at once (libnbd aio), never two overlapping writes in flight.
# Every 4 KiB block of write SEQ holds a unique pattern: the 32-byte
# header  b"BRACKWR1" | seq (u64 le) | block offset (u64 le) | ~seq
# repeated 128 times.  Some writes carry FUA and a flush is sent now and
# then.  The log gets one line per event, flushed as it goes:
#
#   I SEQ OFFSET LENGTH    issued (written *before* the request is sent)
#   A SEQ                  the server replied: success (acknowledged)
#   E SEQ                  the server replied with an error, or the
#                          connection died before the reply
#
# The writer stops on SIGTERM/SIGINT or after --max-seconds: it sends no
# new request, waits for the ones in flight, and exits 0 if every request
# succeeded.  On the first failed request (e.g. the server was killed) it
# records the outcome of everything in flight and exits 3.
#
# check: replays one or more concatenated logs (several writer runs, in
# order) and reads the target (a file, or an nbd:// URI).  For each 4 KiB
# block the allowed contents are:
#   * the last acknowledged write covering it, and
#   * any write covering it that was issued after that one but never
#     acknowledged (in flight at a crash: it may or may not have landed);
#   * zeros if no acknowledged write covers it.
# Because a writer never has two overlapping writes in flight, this is
# exact: an acknowledged write that was not overwritten later must be
# there, whole.  Exits 1 and lists the bad blocks otherwise.
#
# same: compares two copies (files or nbd:// URIs, e.g. a running
# primary's export and a replica's backing file) and lists the 4 KiB blocks
# that differ.  Exits 1 if any does.

import errno
import os
import random
import signal
import struct
import sys
import time

BLK = 4096
MAGIC = b"BRACKWR1"
HDR = struct.Struct("<8sQQQ")
M64 = (1 << 64) - 1


def pattern(seq, off):
    return HDR.pack(MAGIC, seq, off, ~seq & M64) * (BLK // HDR.size)


def die(msg, rc=2):
    sys.stderr.write("ackwriter: %s\n" % msg)
    sys.exit(rc)


# ---------------------------------------------------------------- write

STOP = [False]


def on_signal(sig, frame):
    STOP[0] = True


def cmd_write(argv):
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    import nbd

    opts = {"--seq-start": "0", "--depth": "8", "--max-seconds": "600",
            "--seed": None, "--rate": "0"}
    pos = []
    i = 0
    while i < len(argv):
        if argv[i] in opts:
            opts[argv[i]] = argv[i + 1]
            i += 2
        else:
            pos.append(argv[i])
            i += 1
    if len(pos) != 2:
        die("usage: write URI LOG [--seq-start N] [--depth D] "
            "[--max-seconds S] [--seed N] [--rate N]")
    uri, logpath = pos
    seq = int(opts["--seq-start"])
    depth = int(opts["--depth"])
    t_start = time.monotonic()
    deadline = t_start + float(opts["--max-seconds"])
    rate = float(opts["--rate"])
    n_issued = 0
    rng = random.Random(int(opts["--seed"]) if opts["--seed"] else None)

    stop = STOP
    log = open(logpath, "a")
    h = nbd.NBD()
    try:
        h.connect_uri(uri)
    except nbd.Error as e:
        die("connect %s: %s" % (uri, e), 3)
    size = h.get_size()
    nblocks = size // BLK
    if nblocks < 64:
        die("volume too small: %d bytes" % size)

    inflight = {}       # cookie -> (seq, first block, nblocks, buffer)
    busy = set()        # blocks covered by writes in flight
    flushes = set()     # flush cookies in flight
    failed = None
    n_acked = 0
    n_since_flush = 0

    def submit():
        nonlocal seq, n_since_flush, n_issued
        if rate and n_issued >= rate * (time.monotonic() - t_start):
            return False
        for _ in range(100):
            n = rng.randint(1, 16)
            b0 = rng.randrange(0, nblocks - n + 1)
            if not any(b in busy for b in range(b0, b0 + n)):
                break
        else:
            return False
        seq += 1
        n_issued += 1
        data = b"".join(pattern(seq, (b0 + k) * BLK) for k in range(n))
        buf = nbd.Buffer.from_bytearray(bytearray(data))
        flags = nbd.CMD_FLAG_FUA if rng.random() < 1 / 16 else 0
        log.write("I %d %d %d\n" % (seq, b0 * BLK, n * BLK))
        log.flush()
        cookie = h.aio_pwrite(buf, b0 * BLK, flags=flags)
        inflight[cookie] = (seq, b0, n, buf)
        busy.update(range(b0, b0 + n))
        n_since_flush += 1
        if n_since_flush >= 64 and not flushes:
            n_since_flush = 0
            flushes.add(h.aio_flush())
        return True

    def reap():
        nonlocal failed, n_acked
        for cookie in list(inflight):
            s, b0, n, _ = inflight[cookie]
            try:
                done = h.aio_command_completed(cookie)
            except nbd.Error as e:
                log.write("E %d\n" % s)
                failed = failed or "write seq %d: %s" % (s, e)
                done = True
            else:
                if done:
                    log.write("A %d\n" % s)
                    n_acked += 1
            if done:
                del inflight[cookie]
                busy.difference_update(range(b0, b0 + n))
        for cookie in list(flushes):
            try:
                done = h.aio_command_completed(cookie)
            except nbd.Error as e:
                failed = failed or "flush: %s" % e
                done = True
            if done:
                flushes.discard(cookie)
        log.flush()

    try:
        while True:
            going = (not stop[0] and failed is None and
                     time.monotonic() < deadline)
            if going:
                while len(inflight) < depth and submit():
                    pass
            elif not inflight and not flushes:
                break
            try:
                h.poll(20 if rate else 1000)
            except nbd.Error as e:
                # SIGTERM interrupts poll(2): not an I/O error.
                if e.errno != errno.EINTR:
                    failed = failed or "connection: %s" % e
            reap()
            if failed is not None and (inflight or flushes):
                # The connection is dead or dying: libnbd retires what is in
                # flight with an error; give it a moment, then give up on
                # anything it still has not settled (recorded as E).
                if not h.aio_is_dead() and not h.aio_is_closed():
                    continue
                reap()
                for cookie, (s, b0, n, _) in list(inflight.items()):
                    log.write("E %d\n" % s)
                inflight.clear()
                flushes.clear()
                log.flush()
                break
    except nbd.Error as e:
        failed = failed or str(e)
        for cookie, (s, b0, n, _) in list(inflight.items()):
            log.write("E %d\n" % s)
        log.flush()
    log.close()
    if failed is not None:
        sys.stderr.write("ackwriter: %d writes acknowledged, then %s\n"
                         % (n_acked, failed))
        sys.exit(3)
    try:
        h.shutdown()
    except nbd.Error:
        pass
    sys.stderr.write("ackwriter: %d writes acknowledged\n" % n_acked)
    sys.exit(0)


# ---------------------------------------------------------------- check

class Reader:
    def __init__(self, target):
        self.h = None
        if target.startswith("nbd://") or target.startswith("nbd+unix://"):
            import nbd
            self.h = nbd.NBD()
            self.h.connect_uri(target)
            self.size = self.h.get_size()
        else:
            self.f = open(target, "rb")
            self.size = os.fstat(self.f.fileno()).st_size

    def read(self, off, n):
        if self.h is not None:
            return self.h.pread(n, off)
        self.f.seek(off)
        return self.f.read(n)


def block_seq(data, off):
    """The write sequence number held by a block, 0 for zeros, None if the
    content is neither zeros nor a whole pattern block at this offset."""
    if data.count(0) == BLK:
        return 0
    magic, seq, boff, nseq = HDR.unpack_from(data)
    if magic != MAGIC or boff != off or nseq != ~seq & M64:
        return None
    if data != data[:HDR.size] * (BLK // HDR.size):
        return None
    return seq


def cmd_check(argv):
    if len(argv) != 2:
        die("usage: check LOG IMAGE_OR_URI")
    logpath, target = argv
    writes = {}             # seq -> (first block, nblocks)
    allowed = {}            # block -> set of seqs (default {0})
    n_acked = 0
    with open(logpath) as f:
        for lineno, line in enumerate(f, 1):
            w = line.split()
            if not w:
                continue
            if w[0] == "I" and len(w) == 4:
                s, off, ln = int(w[1]), int(w[2]), int(w[3])
                if s in writes or off % BLK or ln % BLK or ln <= 0:
                    die("%s:%d: bad issue line" % (logpath, lineno))
                b0, n = off // BLK, ln // BLK
                writes[s] = (b0, n)
                for b in range(b0, b0 + n):
                    allowed.setdefault(b, {0}).add(s)
            elif w[0] in ("A", "E") and len(w) == 2:
                s = int(w[1])
                if s not in writes:
                    die("%s:%d: completion of unknown write" % (logpath, lineno))
                if w[0] == "A":
                    n_acked += 1
                    b0, n = writes[s]
                    for b in range(b0, b0 + n):
                        allowed[b] = {s}
            else:
                die("%s:%d: bad line %r" % (logpath, lineno, line))

    r = Reader(target)
    bad = []
    n_blocks = r.size // BLK
    chunk = 4 << 20
    for coff in range(0, n_blocks * BLK, chunk):
        data = r.read(coff, min(chunk, n_blocks * BLK - coff))
        for k in range(0, len(data), BLK):
            off = coff + k
            b = off // BLK
            got = block_seq(data[k:k + BLK], off)
            ok = allowed.get(b, {0})
            if got is None or got not in ok:
                bad.append((off, got, sorted(ok)))
    ambiguous = sum(1 for v in allowed.values() if len(v) > 1)
    if bad:
        sys.stderr.write("ackwriter check %s: %d bad 4K blocks (of %d); "
                         "%d writes issued, %d acknowledged\n"
                         % (target, len(bad), n_blocks, len(writes), n_acked))
        for off, got, ok in bad[:20]:
            sys.stderr.write("  offset %d: holds %s, allowed %s\n"
                             % (off, "garbage" if got is None else
                                "zeros" if got == 0 else "write %d" % got,
                                ["zeros" if x == 0 else x for x in ok]))
        sys.exit(1)
    sys.stderr.write("ackwriter check %s: ok (%d writes issued, %d "
                     "acknowledged, %d blocks with an unacknowledged "
                     "write that may or may not have landed)\n"
                     % (target, len(writes), n_acked, ambiguous))


def cmd_same(argv):
    if len(argv) != 2:
        die("usage: same IMAGE_OR_URI IMAGE_OR_URI")
    a, b = Reader(argv[0]), Reader(argv[1])
    if a.size != b.size:
        sys.stderr.write("ackwriter same: sizes differ: %s %d, %s %d\n"
                         % (argv[0], a.size, argv[1], b.size))
        sys.exit(1)
    bad = []
    chunk = 4 << 20
    for coff in range(0, a.size, chunk):
        n = min(chunk, a.size - coff)
        da, db = a.read(coff, n), b.read(coff, n)
        if da == db:
            continue
        for k in range(0, n, BLK):
            if da[k:k + BLK] != db[k:k + BLK]:
                off = coff + k
                bad.append("  offset %d: %s vs %s" % (
                    off, describe(da[k:k + BLK], off),
                    describe(db[k:k + BLK], off)))
    if bad:
        sys.stderr.write("ackwriter same: %s and %s differ in %d 4K blocks\n"
                         % (argv[0], argv[1], len(bad)))
        sys.stderr.write("\n".join(bad[:20]) + "\n")
        sys.exit(1)


def describe(data, off):
    s = block_seq(data, off)
    return "garbage" if s is None else "zeros" if s == 0 else "write %d" % s


def main():
    cmds = {"write": cmd_write, "check": cmd_check, "same": cmd_same}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        die("usage: ackwriter.py write|check|same ...")
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
