"""Misbehaving servers for relaytest's bad-input tests, run inside a test
network namespace (ip netns exec NS python3 smtp_misbehaver.py ...).

No real mail server stalls, drips or talks nonsense on demand, so these
stand in for one: each port has one behaviour, the smallest that shows the
fault. With `dns ADDRESS...` it instead answers every DNS query on those
addresses (UDP port 53) with NXDOMAIN: no DNS server is installed here, and
an authoritative "no such name" is all the test needs from one.

Prints "ready" when listening; runs until killed.
"""

import socket
import struct
import sys
import threading
import time

PORTS = {
    2601: "stall",          # accepts, never says a word
    2602: "drip",           # a greeting one byte at a time, never finished
    2603: "stall-after-ehlo",
    2604: "ssh",            # another protocol on the port: an SSH banner
    2605: "binary",
    2606: "garbage-after-ehlo",
    2607: "endless-line",
    2608: "busy",           # 421 and hang up
}


def behave(conn, how):
    conn.settimeout(60)
    try:
        if how == "stall":
            time.sleep(60)
        elif how == "drip":
            for byte in b"220 mail.example.org ESMTP":
                conn.sendall(bytes([byte]))
                time.sleep(0.3)
            time.sleep(60)
        elif how == "ssh":
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            time.sleep(60)
        elif how == "binary":
            conn.sendall(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n")
            time.sleep(60)
        elif how == "endless-line":
            conn.sendall(b"220 " + b"x" * 10000)
            time.sleep(60)
        elif how == "busy":
            conn.sendall(b"421 4.3.2 mail.example.org Service not available, closing channel\r\n")
        else:
            conn.sendall(b"220 mail.example.org ESMTP\r\n")
            conn.recv(1024)
            if how == "garbage-after-ehlo":
                conn.sendall(b"hello friend, what a nice day\r\n")
            time.sleep(60)
    except OSError:
        pass
    finally:
        conn.close()


def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    return s


def serve(s, how):
    while True:
        conn, _ = s.accept()
        threading.Thread(target=behave, args=(conn, how), daemon=True).start()


def dns_socket(address):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((address, 53))
    return s


def nxdomain(s):
    while True:
        query, peer = s.recvfrom(4096)
        if len(query) < 12:
            continue
        ident, flags = struct.unpack("!HH", query[:4])
        # QR, same opcode and RD, RA, RCODE 3 (NXDOMAIN); the question echoed back.
        flags = 0x8000 | (flags & 0x7900) | 0x0080 | 3
        s.sendto(struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 0) + query[12:], peer)


def main():
    # Bound before "ready", so the test never races the listeners.
    if sys.argv[1:2] == ["dns"]:
        for address in sys.argv[2:]:
            threading.Thread(target=nxdomain, args=(dns_socket(address),), daemon=True).start()
    else:
        for port, how in PORTS.items():
            threading.Thread(target=serve, args=(listener(port), how), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
