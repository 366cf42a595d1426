#!/usr/bin/env python3
"""Capture the TCP payload of every packet to or from PORT on interface
IFACE (AF_PACKET: what is on the wire), appending it to OUT, until SIGTERM;
then it drains what the kernel has queued for it already (every packet
sent before the signal) and exits.  Writes READY once the socket is bound.  Used by test-tls.sh to show that
a TLS link carries no plaintext.

Usage: wiretap.py IFACE PORT OUT READY
"""
import signal
import socket
import struct
import sys

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33            # <asm-generic/socket.h>; python lacks it


def main():
    iface, port, out, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    # As root: past rmem_max, so a burst of 64 KiB loopback packets is not
    # dropped while python copies them out.
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 256 << 20)
    s.bind((iface, 0))
    s.settimeout(0.1)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    open(ready, "w").write("ready\n")
    with open(out, "ab", buffering=0) as f:
        while True:
            # A signal does not interrupt a blocking recvfrom (PEP 475):
            # wake up now and then to see it.
            try:
                pkt, addr = s.recvfrom(1 << 18, socket.MSG_DONTWAIT if stop else 0)
            except (BlockingIOError, socket.timeout):
                if stop:
                    return
                continue
            if addr[2] == PACKET_OUTGOING:      # loopback shows each twice
                continue
            if len(pkt) < 14 + 20 or struct.unpack("!H", pkt[12:14])[0] != 0x0800:
                continue
            ip = pkt[14:]
            ihl = (ip[0] & 15) * 4
            if ip[9] != 6:                      # TCP only
                continue
            total = struct.unpack("!H", ip[2:4])[0]
            tcp = ip[ihl:total]
            sport, dport = struct.unpack("!HH", tcp[:4])
            if port not in (sport, dport):
                continue
            off = (tcp[12] >> 4) * 4
            f.write(tcp[off:])


if __name__ == "__main__":
    main()
