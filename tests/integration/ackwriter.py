#!/usr/bin/python3
# ackwriter.py: a writer that logs what the NBD server acknowledged, and a
# checker that proves every acknowledged write is still there.
#
#   ackwriter.py write URI LOG [--seq-start N] [--depth D] [--max-seconds S]
#                              [--seed N] [--rate WRITES_PER_SECOND]
#                              [--flush-every N]
#   ackwriter.py check [--durable] [--until LINE] [--base FILE] LOG
#                      IMAGE_OR_URI
#   ackwriter.py same IMAGE_OR_URI IMAGE_OR_URI
#   ackwriter.py baseline IMAGE_OR_URI FILE
#
# Run it with /usr/bin/python3 (Debian's python3-libnbd provides `nbd`).
#
# write: random writes of 4K..64K at random 4K-aligned offsets, D of them
# in flight at once (libnbd aio), never two overlapping writes in flight.
# Every 4 KiB block of write SEQ holds a unique pattern: the 32-byte
# header  b"BRACKWR1" | seq (u64 le) | block offset (u64 le) | ~seq
# repeated 128 times (so every 512-byte sector holds 16 copies of it).
# One write in 16 carries FUA; a flush is sent after every N writes
# (--flush-every, default 64) when none is in flight.  The log gets one
# line per event, flushed as it goes:
#
#   S SEQ_START            a writer run starts (its first line)
#   I SEQ OFFSET LENGTH [FUA]  issued (written *before* the request is sent)
#   A SEQ                  the server replied: success (acknowledged)
#   E SEQ                  the server replied with an error, or the
#                          connection died before the reply
#   F ID                   a flush is sent (written *before* it is sent)
#   FA ID                  the flush succeeded
#   FE ID                  the flush failed
#
# A write's A line is written when the writer sees the reply, and an F line
# before the flush is sent, so "A s" before "F f" means the server replied
# to s before flush f was sent: f covers s (NBD semantics).
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
# there.  Each 512-byte sector is checked on its own against its block's
# allowed set (a block torn by a power cut passes if every sector holds an
# allowed version).  Exits 1 and lists the bad sectors otherwise.
#
# check --durable: the same after a power cut, where only durable writes
# must survive.  A write is durable if it was acknowledged and carried FUA,
# or if its A line precedes the F line of a flush of the same writer run
# (S line) whose FA line is logged.  (A flush of a later run does not
# count: a power cut between the runs may have lost the write already.)
# Per block: the last durable write covering it (zeros if none), and any
# write covering it issued after that one, acknowledged or not.
#
# --until LINE: A, FA and FE lines after line LINE of the (concatenated)
# log are ignored, as if those replies never came; I lines all count (a
# replica killed at LINE may hold writes issued later).
#
# --base FILE: what the target held before the log's first write, as
# written by `baseline` (instead of zeros), so that a long test can start
# a new log once a copy was verified.
#
# baseline: records which write (sequence number) each non-zero 512-byte
# sector of a copy holds; exits 1 if one holds neither zeros nor a pattern.
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
            "--seed": None, "--rate": "0", "--flush-every": "64"}
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
            "[--max-seconds S] [--seed N] [--rate N] [--flush-every N]")
    uri, logpath = pos
    seq = int(opts["--seq-start"])
    depth = int(opts["--depth"])
    t_start = time.monotonic()
    deadline = t_start + float(opts["--max-seconds"])
    rate = float(opts["--rate"])
    flush_every = int(opts["--flush-every"])
    n_issued = 0
    rng = random.Random(int(opts["--seed"]) if opts["--seed"] else None)

    stop = STOP
    log = open(logpath, "a")
    log.write("S %d\n" % seq)
    log.flush()
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
    flushes = {}        # flush cookie -> flush id, in flight
    flush_id = [seq]    # ids: unique across runs with distinct seq-start
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
        log.write("I %d %d %d%s\n" % (seq, b0 * BLK, n * BLK,
                                       " FUA" if flags else ""))
        log.flush()
        cookie = h.aio_pwrite(buf, b0 * BLK, flags=flags)
        inflight[cookie] = (seq, b0, n, buf)
        busy.update(range(b0, b0 + n))
        n_since_flush += 1
        if n_since_flush >= flush_every and not flushes:
            n_since_flush = 0
            flush_id[0] += 1
            log.write("F %d\n" % flush_id[0])
            log.flush()
            flushes[h.aio_flush()] = flush_id[0]
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
                log.write("FE %d\n" % flushes[cookie])
                failed = failed or "flush: %s" % e
                done = True
            else:
                if done:
                    log.write("FA %d\n" % flushes[cookie])
            if done:
                del flushes[cookie]
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
                for fid in flushes.values():
                    log.write("FE %d\n" % fid)
                inflight.clear()
                flushes.clear()
                log.flush()
                break
    except nbd.Error as e:
        failed = failed or str(e)
        for cookie, (s, b0, n, _) in list(inflight.items()):
            log.write("E %d\n" % s)
        for fid in flushes.values():
            log.write("FE %d\n" % fid)
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


SEC = 512
ZSEC = bytes(SEC)


def sector_seq(data, off):
    """The write sequence number held by the 512-byte sector DATA at byte
    OFF, 0 for zeros, None if it is neither zeros nor a whole sector of a
    pattern block at this offset."""
    if data == ZSEC:
        return 0
    magic, seq, boff, nseq = HDR.unpack_from(data)
    if magic != MAGIC or boff != off - off % BLK or nseq != ~seq & M64:
        return None
    if data != data[:HDR.size] * (SEC // HDR.size):
        return None
    return seq


def block_seq(data, off):
    """The same for a 4 KiB block: one sequence number for all its sectors,
    else None."""
    seqs = {sector_seq(data[k:k + SEC], off + k) for k in range(0, BLK, SEC)}
    return seqs.pop() if len(seqs) == 1 else None


def parse_log(logpath, durable, until):
    """Replay a log: the allowed sequence numbers per 4K block besides the
    base content, the blocks where the base content is not allowed, the
    writes issued and the number acknowledged (or durable)."""
    writes = {}             # seq -> (first block, nblocks)
    allowed = {}            # block -> set of seqs (besides the base's)
    exact = set()           # blocks where a write that must be there
    #                         decides (the base does not count)
    acked = []              # (run, line of A, seq), in order
    fua = set()
    flush_line = {}         # flush id -> line of its latest F
    last_flush = {}         # run -> line of the F of its newest good flush
    run = 0
    with open(logpath) as f:
        lines = list(enumerate(f, 1))
    for lineno, line in lines:
        w = line.split()
        late = until is not None and lineno > until
        if not w:
            continue
        if w[0] == "S" and len(w) == 2:
            run += 1
        elif w[0] == "I" and len(w) in (4, 5) and (len(w) == 4 or
                                                 w[4] == "FUA"):
            s, off, ln = int(w[1]), int(w[2]), int(w[3])
            if s in writes or off % BLK or ln % BLK or ln <= 0:
                die("%s:%d: bad issue line" % (logpath, lineno))
            writes[s] = (off // BLK, ln // BLK)
            if len(w) == 5:
                fua.add(s)
        elif w[0] in ("A", "E") and len(w) == 2:
            s = int(w[1])
            if s not in writes:
                die("%s:%d: completion of unknown write" % (logpath, lineno))
            if w[0] == "A" and not late:
                acked.append((run, lineno, s))
        elif w[0] == "F" and len(w) == 2:
            flush_line[int(w[1])] = lineno
        elif w[0] in ("FA", "FE") and len(w) == 2:
            fid = int(w[1])
            if fid not in flush_line:
                die("%s:%d: completion of unknown flush" % (logpath, lineno))
            if w[0] == "FA" and not late:
                last_flush[run] = max(last_flush.get(run, 0),
                                      flush_line[fid])
        else:
            die("%s:%d: bad line %r" % (logpath, lineno, line))
    # The writes that must be there, in log order of their A lines.
    must = [s for r, ln, s in acked
            if not durable or s in fua or ln < last_flush.get(r, 0)]
    mustset = set(must)
    # Issue order is seq order within a run and log order across runs:
    # walk the I lines in log order.
    for lineno, line in lines:
        w = line.split()
        if not w or w[0] != "I":
            continue
        s = int(w[1])
        b0, n = writes[s]
        for b in range(b0, b0 + n):
            if s in mustset:
                allowed[b] = {s}
                exact.add(b)
            else:
                allowed.setdefault(b, set()).add(s)
    return allowed, exact, writes, len(must)


def read_base(path):
    """A baseline file (cmd_baseline): sector offset -> sequence number."""
    base = {}
    if path is None:
        return base
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            w = line.split()
            if len(w) != 2 or int(w[0]) % SEC:
                die("%s:%d: bad baseline line" % (path, lineno))
            base[int(w[0])] = int(w[1])
    return base


def cmd_check(argv):
    durable, until, basepath, pos = False, None, None, []
    i = 0
    while i < len(argv):
        if argv[i] == "--durable":
            durable = True
        elif argv[i] in ("--until", "--base") and i + 1 < len(argv):
            if argv[i] == "--until":
                until = int(argv[i + 1])
            else:
                basepath = argv[i + 1]
            i += 1
        else:
            pos.append(argv[i])
        i += 1
    if len(pos) != 2:
        die("usage: check [--durable] [--until LINE] [--base FILE] LOG "
            "IMAGE_OR_URI")
    logpath, target = pos
    allowed, exact, writes, n_must = parse_log(logpath, durable, until)
    base = read_base(basepath)

    r = Reader(target)
    bad = []
    n_blocks = r.size // BLK
    chunk = 4 << 20
    torn = 0
    for coff in range(0, n_blocks * BLK, chunk):
        data = r.read(coff, min(chunk, n_blocks * BLK - coff))
        for k in range(0, len(data), BLK):
            off = coff + k
            b = off // BLK
            if (b not in allowed and data[k:k + BLK] == bytes(BLK) and
                    not any(off + j in base for j in range(0, BLK, SEC))):
                continue                        # fast path: zeros expected
            got = set()
            for j in range(0, BLK, SEC):
                ok = allowed.get(b, set())
                if b not in exact:
                    ok = ok | {base.get(off + j, 0)}
                g = sector_seq(data[k + j:k + j + SEC], off + j)
                got.add(g)
                if g is None or g not in ok:
                    bad.append((off + j, g, sorted(ok)))
            torn += len(got) > 1
    ambiguous = sum(1 for b, v in allowed.items()
                    if len(v) + (b not in exact) > 1)
    what = "durable" if durable else "acknowledged"
    if bad:
        sys.stderr.write("ackwriter check%s %s: %d bad sectors (of %d); "
                         "%d writes issued, %d %s\n"
                         % (" --durable" if durable else "", target,
                            len(bad), n_blocks * (BLK // SEC), len(writes),
                            n_must, what))
        for off, got, ok in bad[:20]:
            sys.stderr.write("  offset %d: holds %s, allowed %s\n"
                             % (off, "garbage" if got is None else
                                "zeros" if got == 0 else "write %d" % got,
                                ["zeros" if x == 0 else x for x in ok]))
        sys.exit(1)
    sys.stderr.write("ackwriter check%s %s: ok (%d writes issued, %d %s, "
                     "%d blocks with a write that may or may not have "
                     "landed, %d blocks holding several versions)\n"
                     % (" --durable" if durable else "", target,
                        len(writes), n_must, what, ambiguous, torn))


def cmd_baseline(argv):
    if len(argv) != 2:
        die("usage: baseline IMAGE_OR_URI OUT")
    r = Reader(argv[0])
    chunk = 4 << 20
    n = 0
    with open(argv[1] + ".tmp", "w") as out:
        for coff in range(0, r.size - r.size % SEC, chunk):
            data = r.read(coff, min(chunk, r.size - r.size % SEC - coff))
            for k in range(0, len(data), SEC):
                sec = data[k:k + SEC]
                if sec == ZSEC:
                    continue
                g = sector_seq(sec, coff + k)
                if g is None:
                    die("baseline %s: offset %d holds garbage"
                        % (argv[0], coff + k), 1)
                out.write("%d %d\n" % (coff + k, g))
                n += 1
    os.rename(argv[1] + ".tmp", argv[1])
    sys.stderr.write("ackwriter baseline %s: %d written sectors\n"
                     % (argv[0], n))


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
    cmds = {"write": cmd_write, "check": cmd_check, "same": cmd_same,
            "baseline": cmd_baseline}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        die("usage: ackwriter.py write|check|same|baseline ...")
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
