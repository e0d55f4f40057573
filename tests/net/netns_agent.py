"""Runs inside a test network namespace (ip netns exec NS python3 netns_agent.py).

Listens on the TCP ports given on the command line (IPv4 and IPv6, every
address of the namespace), answering each connection with "hello\\n". Then
reads commands on stdin, one per line, and answers one line each:

    connect SRC DST PORT TIMEOUT  ->  ok | timeout | refused | error:...

It only ever connects where the test tells it, and the test only names
addresses it assigned to its own veth ends.
"""

import socket
import sys
import threading


def serve(sock):
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        with conn:
            try:
                conn.sendall(b"hello\n")
            except OSError:
                pass


def listen(port):
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        s.listen(64)
        threading.Thread(target=serve, args=(s,), daemon=True).start()


def connect(src, dst, port, timeout):
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.bind((src, 0))
            s.connect((dst, port))
            data = s.recv(16)
        except socket.timeout:
            return "timeout"
        except ConnectionRefusedError:
            return "refused"
        except OSError as err:
            return f"error:{err}"
        return "ok" if data == b"hello\n" else f"error:got {data!r}"


def main():
    for port in sys.argv[1:]:
        listen(int(port))
    print("ready", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if parts and parts[0] == "connect":
            print(connect(parts[1], parts[2], int(parts[3]), float(parts[4])), flush=True)
        else:
            print(f"error:unknown command {line.strip()!r}", flush=True)


if __name__ == "__main__":
    main()
