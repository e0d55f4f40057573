"""Address lists an admin writes: krfilter's allow-list and sources' trusted relays.

CIDRs or single addresses; on the command line comma- or space-separated and
repeatable, in a file one per line with '#' comments. The caller passes the
address library's constructor (netaddr for the firewall sets, ipaddress for
sources), so each keeps the exact syntax it accepts; it must raise ValueError.
"""


class CidrListError(Exception):
    """One line naming where the item came from (an option or file:line)."""


def parse(values, network, where):
    nets = []
    for value in values:
        for item in value.replace(",", " ").split():
            try:
                nets.append(network(item))
            except ValueError:
                raise CidrListError(f"{where}: {item!r} is not an IPv4/IPv6 address or CIDR") from None
    return nets


def read_file(path, network):
    nets = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].strip()
            if text:
                nets += parse([text], network, f"{path}:{lineno}")
    return nets
