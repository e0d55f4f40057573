"""Address lists an admin writes: krfilter's allow-list and sources' trusted relays.

CIDRs or single addresses; on the command line comma- or space-separated and
repeatable, in a file one per line with '#' comments. The caller passes the
address library's constructor (netaddr for the firewall sets, ipaddress for
sources), so each keeps the exact syntax it accepts; it must raise ValueError.
"""

from .. import exitcodes
from ..errors import InputError


def parse(values, network, where, code=exitcodes.USAGE):
    nets = []
    for value in values:
        for item in value.replace(",", " ").split():
            try:
                nets.append(network(item))
            except ValueError:
                raise InputError(f"{where}: {item!r} is not an IPv4/IPv6 address or CIDR", code) from None
    return nets


def read_file(path, network):
    nets = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].strip()
            if text:
                nets += parse([text], network, f"{path}:{lineno}", exitcodes.CONFIG)
    return nets


def load(values, files, network, option, kind):
    """The option's values, then every file's: a bad value is a usage error,
    a bad line a config error, an unreadable file a missing input."""
    nets = parse(values, network, option)
    for path in files:
        try:
            nets += read_file(path, network)
        except OSError as err:
            raise InputError(f"{path}: cannot read {kind} file: {err.strerror or err}",
                                exitcodes.NOINPUT) from None
    return nets
