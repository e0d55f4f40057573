"""Who is at the other end of a connection: the uid the daemon authorises.

* Unix socket: SO_PEERCRED, the credentials the kernel recorded when the
  client connected. The client can't choose them.
* Loopback TCP: the owner of the client's socket, looked up in
  /proc/net/tcp and tcp6 by the connection's two addresses, as identd does.
  The kernel writes that table; a client on this host can't forge the uid
  of its own socket, and a connection from another host would not be found
  (which is why --listen takes loopback addresses only).

None means unknown, and the server then refuses the request.
"""

import socket
import struct

_PEERCRED = struct.Struct("3i")         # struct ucred: pid, uid, gid


def unix_peer_uid(sock):
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return None
    return _PEERCRED.unpack(creds)[1]


def _hex_address(family: int, host: str, port: int) -> str:
    """An address as /proc/net/tcp prints it: the raw in-memory words in
    hex (little-endian hosts), then the port."""
    packed = socket.inet_pton(family, host)
    words = struct.unpack("<%dI" % (len(packed) // 4), packed)
    return "".join("%08X" % word for word in words) + ":%04X" % port


def tcp_peer_uid(sock, tables=("/proc/net/tcp", "/proc/net/tcp6")):
    """The uid owning the client side of a loopback TCP connection, or None."""
    try:
        peer, mine = sock.getpeername(), sock.getsockname()
    except OSError:
        return None
    family = sock.family
    if family == socket.AF_INET6 and peer[0].startswith("::ffff:"):
        # An IPv4 client on a dual-stack socket shows up in the IPv4 table.
        family, peer, mine = socket.AF_INET, (peer[0][7:], peer[1]), (mine[0][7:], mine[1])
    local, remote = _hex_address(family, peer[0], peer[1]), _hex_address(family, mine[0], mine[1])
    table = tables[0] if family == socket.AF_INET else tables[1]
    try:
        with open(table, encoding="ascii") as fh:
            next(fh, None)
            for line in fh:
                fields = line.split()
                # sl local rem st tx:rx tr:when retrnsmt uid ...
                if len(fields) > 7 and fields[1] == local and fields[2] == remote:
                    return int(fields[7])
    except OSError:
        return None
    return None


def is_loopback(host: str) -> bool:
    import ipaddress
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
