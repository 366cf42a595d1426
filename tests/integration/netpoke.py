#!/usr/bin/python3
# netpoke.py: hostile and eavesdropping TCP clients for the hardening tests
# (test-auth.sh, test-flood.sh).  Each subcommand prints what it saw and
# exits 0 when the server behaved as the test expects, 1 otherwise.
#
#   netpoke.py relay LISTEN_PORT TARGET_PORT CAPTURE READY
#       A TCP relay on 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT
#       (one thread pair per connection).  The bytes the client sent on
#       its FIRST connection go to CAPTURE (flushed as they pass); READY is
#       written once the relay listens.  Runs until killed.
#   netpoke.py replay PORT CAPTURE
#       Connect, send CAPTURE as it was recorded (HELLO, AUTH, data
#       frames), and read until the server closes (at most 10 s).  Exits 0
#       when the server closed the connection; prints the frame types it
#       received (a WELCOME, and nothing after it, is the expected answer).
#   netpoke.py stall PORT SECONDS
#       Connect and trickle the first bytes of a frame header (1 byte per
#       0.5 s, never a whole header), so that the connection is never
#       silent for long (the heartbeat timeout cannot fire) but never
#       completes a HELLO.  Exits 0 when the server closed it within
#       SECONDS; prints the elapsed time.
#   netpoke.py flood PORT SECONDS CONNECTIONS
#       For SECONDS, keep up to CONNECTIONS connections open to the port
#       and send each random bytes and garbage frames (frame headers with
#       the right magic and nonsense fields, oversized lengths, HELLOs of
#       random content); reconnect any that the server closed.  Prints how
#       many connections were made and how many the server closed.
import os
import random
import select
import socket
import struct
import sys
import threading
import time

MAGIC = 0x42524C59


def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def relay(listen_port, target_port, capture, ready):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(16)
    with open(ready + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.rename(ready + ".tmp", ready)
    first = [True]

    def pump(a, b, out):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if out:
                    out.write(d)
                    out.flush()
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if out:
            out.close()

    while True:
        c, _ = srv.accept()
        try:
            t = socket.create_connection(("127.0.0.1", target_port))
        except OSError:
            c.close()
            continue
        out = open(capture, "wb") if first[0] else None
        first[0] = False
        threading.Thread(target=pump, args=(c, t, out), daemon=True).start()
        threading.Thread(target=pump, args=(t, c, None), daemon=True).start()


def frame_types(data):
    types, off = [], 0
    while off + 56 <= len(data):
        magic, _ver, typ = struct.unpack_from(">IBB", data, off)
        length = struct.unpack_from(">I", data, off + 12)[0]
        if magic != MAGIC:
            types.append("?")
            break
        types.append(typ)
        off += 56 + length
    return types


def replay(port, capture):
    data = open(capture, "rb").read()
    if len(data) < 56:
        print("replay: the capture holds %d bytes, no handshake" % len(data))
        return 1
    s = connect(port)
    try:
        s.sendall(data)
    except OSError as e:
        print("replay: send: %s (the server closed early)" % e)
    got, deadline = b"", time.time() + 10
    while time.time() < deadline:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            d = b""
        if not d:
            print("replay: sent %d bytes; server closed after sending frame "
                  "types %s" % (len(data), frame_types(got)))
            return 0
        got += d
    print("replay: the server kept the connection open (got types %s)"
          % frame_types(got))
    return 1


def stall(port, seconds):
    s = connect(port)
    start = time.time()
    partial = struct.pack(">IBB", MAGIC, 5, 1) + b"\0" * 30   # < 56 bytes
    i = 0
    while time.time() - start < seconds:
        r, _, _ = select.select([s], [], [], 0.5)
        if r:
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if not d:
                print("stall: closed by the server after %.1f s"
                      % (time.time() - start))
                return 0
        elif i < len(partial):
            try:
                s.send(partial[i:i + 1])
            except OSError:
                print("stall: closed by the server after %.1f s"
                      % (time.time() - start))
                return 0
            i += 1
    print("stall: still open after %d s" % seconds)
    return 1


def garbage(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return os.urandom(rng.randrange(1, 4096))
    hdr = bytearray(os.urandom(56))
    struct.pack_into(">IBB", hdr, 0, MAGIC, rng.choice((1, 5, 9)),
                     rng.randrange(20))
    if kind == 1:                       # an enormous announced payload
        struct.pack_into(">I", hdr, 12, rng.choice((0xFFFFFFFF, 1 << 30,
                                                    33 << 20)))
        return bytes(hdr) + os.urandom(rng.randrange(0, 2048))
    if kind == 2:                       # a HELLO-sized frame of noise
        hdr[5] = 1                      # type HELLO
        struct.pack_into(">I", hdr, 12, 11056)
        return bytes(hdr) + os.urandom(11056)
    return bytes(hdr)


def flood(port, seconds, conns):
    rng = random.Random(1234)
    socks, made, closed = [], 0, 0
    end = time.time() + seconds
    while time.time() < end:
        while len(socks) < conns:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.setblocking(False)
                socks.append(s)
                made += 1
            except OSError:
                break
        for s in list(socks):
            try:
                s.send(garbage(rng))
                while s.recv(65536):
                    pass
                closed += 1             # EOF from the server
                socks.remove(s)
                s.close()
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                closed += 1
                socks.remove(s)
                s.close()
        time.sleep(0.01)
    for s in socks:
        s.close()
    print("flood: %d connections made, %d closed by the server"
          % (made, closed))
    return 0


def main():
    cmd = sys.argv[1]
    a = sys.argv[2:]
    if cmd == "relay":
        relay(int(a[0]), int(a[1]), a[2], a[3])
        return 0
    if cmd == "replay":
        return replay(int(a[0]), a[1])
    if cmd == "stall":
        return stall(int(a[0]), float(a[1]))
    if cmd == "flood":
        return flood(int(a[0]), float(a[1]), int(a[2]))
    print("unknown subcommand %s" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
