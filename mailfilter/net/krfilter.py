"""krfilter: from the parsed options of `mailfilter krfilter` to the written file."""

import sys

from .. import exitcodes
from ..atomicfile import replace
from ..errors import InputError
from ..log import info, report, warning
from . import addresslist, inputs, sets, writers
from . import countries as countries_mod


def run(files=(), fetch=False, urls=(), cache_dir=None, lenient=False,
        countries=(), presets=(), allow=(), allow_files=(), fmt="ipset",
        output=None, options=None, list_countries=False, quiet=False, force=False) -> int:
    options = options or writers.Options()
    warnings = []

    def warn(message):
        warnings.append(message)
        if len(warnings) <= 10:
            warning(message)

    try:
        delegations = inputs.load(files, fetch, urls, cache_dir, lenient, warn, force=force)
    except InputError as err:
        report(str(err))
        return err.code
    if len(warnings) > 10:
        warning(f"... {len(warnings) - 10} more warnings")
    if lenient and any(d.skipped for d in delegations):
        warning(f"--lenient: skipped {sum(d.skipped for d in delegations)} malformed lines")

    present = set().union(*(d.countries for d in delegations))
    if list_countries:
        sys.stdout.write(_country_table(delegations, present))
        return exitcodes.OK

    names = ", ".join(d.path for d in delegations)
    try:
        chosen = countries_mod.choose(countries, presets, present, names)
    except InputError as err:
        report(str(err))
        return err.code
    try:
        allow_nets = addresslist.load(allow, allow_files, sets.allow_network, "--allow", "allow")
    except InputError as err:
        report(str(err))
        return err.code

    blocklist = sets.build(delegations, chosen, allow_nets)
    # Records that each look sane can still add up to everything (two /1s).
    everything = [str(n) for n in blocklist.v4 + blocklist.v6 if n.prefixlen == 0]
    if everything and not force:
        report(f"{' '.join(chosen)} together cover every address ({' and '.join(everything)}) in {names}: "
               "loading that would cut off every client, your own SSH session included; "
               "nothing written (--force writes it anyway)")
        return exitcodes.DATAERR
    text = writers.WRITERS[fmt](blocklist, options)
    if output in (None, "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            replace(output, (text.encode("utf-8"),), 0o644)
        except OSError as err:
            report(f"{output}: cannot write: {err.strerror or err}; the previous file is unchanged")
            return exitcodes.CANTCREAT
    if not quiet:
        info(f"{fmt}: {' '.join(chosen)}: {len(blocklist.v4)} IPv4, {len(blocklist.v6)} IPv6 prefixes"
             + (f" -> {output}" if output not in (None, "-") else ""))
    return exitcodes.OK


def _country_table(delegations, present):
    rows = []
    for cc in sorted(present):
        n4 = sum(len(d.v4.get(cc, ())) for d in delegations)
        n6 = sum(len(d.v6.get(cc, ())) for d in delegations)
        v4_hosts = sum(b - a + 1 for d in delegations for a, b in d.v4.get(cc, ()))
        iso = "" if cc in countries_mod.ISO3166 else "  (not an ISO 3166 country)"
        rows.append(f"{cc}  {n4:6d} IPv4 records ({v4_hosts:>11,d} addresses)  {n6:6d} IPv6 records{iso}")
    return "\n".join(rows) + "\n"
