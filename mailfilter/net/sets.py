"""Merge the chosen countries' ranges into the fewest CIDRs, minus the allow-list.

netaddr does the merging, always from whole iterables (cidr_merge, IPSet(...)):
adding prefixes to an IPSet one at a time re-merges on every call and is
quadratic in the number of prefixes. IPv4 and IPv6 stay separate throughout,
because every output format keeps them apart.
"""

from dataclasses import dataclass, field

from netaddr import AddrFormatError, IPAddress, IPNetwork, IPRange, IPSet, cidr_merge


@dataclass
class Blocklist:
    countries: list
    sources: list                                  # rir.Delegation, for the header comments
    v4: list = field(default_factory=list)         # IPNetwork, merged, allow-list removed
    v6: list = field(default_factory=list)
    per_country: dict = field(default_factory=dict)  # cc -> (v4 prefixes, v6 prefixes), merged
    allow: list = field(default_factory=list)      # IPNetwork, as given (merged)
    by_country: dict = field(default_factory=dict)   # cc -> (v4, v6) IPNetworks, allow-list removed;
                                                     # never merged across countries (--per-country)


def _networks(ranges, version):
    if version == 4:
        return [IPRange(IPAddress(a, 4), IPAddress(b, 4)) for a, b in ranges]
    # A v6 record is one prefix: size is a power of two.
    return [IPNetwork((a, 129 - (b - a + 1).bit_length()), version=6) for a, b in ranges]


def allow_network(item):
    """One allow-list entry as netaddr reads it, for cidrlist."""
    try:
        return IPNetwork(item).cidr
    except AddrFormatError as err:      # not a ValueError, which cidrlist expects
        raise ValueError(item) from err


def build(delegations, countries, allow=()) -> Blocklist:
    bl = Blocklist(countries=list(countries), sources=list(delegations))
    allow_set = IPSet(allow)
    bl.allow = list(allow_set.iter_cidrs())
    counts = {}                                    # version -> [merged prefixes per country]
    own = {cc: ([], []) for cc in countries}
    for version, attr in ((4, "v4"), (6, "v6")):
        everything, counts[version] = [], []
        for cc in countries:
            ranges = [r for d in delegations for r in getattr(d, attr).get(cc, ())]
            merged = cidr_merge(_networks(ranges, version))
            counts[version].append(len(merged))
            everything.extend(merged)
            own[cc][version == 6].extend(list((IPSet(merged) - allow_set).iter_cidrs()) if allow_set else merged)
        # Countries can be adjacent, so merge again across them.
        if allow_set:
            blocked = list((IPSet(everything) - allow_set).iter_cidrs())
        else:
            blocked = cidr_merge(everything)
        setattr(bl, attr, blocked)
    bl.per_country = dict(zip(countries, zip(counts[4], counts[6])))
    bl.by_country = own
    return bl


def country_index(delegations):
    """(v4, v6) lookup tables for sources: sorted [(first, last, cc)]."""
    tables = []
    for attr in ("v4", "v6"):
        rows = [(a, b, cc) for d in delegations for cc, ranges in getattr(d, attr).items() for a, b in ranges]
        rows.sort()
        tables.append(rows)
    return tuple(tables)
