"""Which countries to block: presets, and checking the admin's codes.

A code must be an ISO 3166-1 alpha-2 country AND occur in the delegation data
given: a typo (or a country the loaded registries do not cover, like RU in
APNIC's file) would otherwise block nothing, silently.
"""

from .. import exitcodes
from ..errors import InputError

# ISO 3166-1 alpha-2, the 249 officially assigned codes (Debian iso-codes).
ISO3166 = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ
BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR
CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF
PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI
SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR
TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
""".split())

# The well-known krfilter sets (ipv4.fetus.jp): each level adds to the one before.
PRESETS = {
    "krfilter": ("CN", "KP", "KR"),
    "v2": ("CN", "KP", "KR", "HK", "ID", "IN", "TW"),
    "v3": ("CN", "KP", "KR", "HK", "ID", "IN", "TW", "RU"),
}

# Codes people type that are not ISO 3166 countries, or that RIRs use for regions.
_HINTS = {
    "UK": "the ISO code for the United Kingdom is GB",
    "EU": "EU is a registry code for the European region, not a country",
    "AP": "AP is APNIC's code for the Asia-Pacific region, not a country",
    "ZZ": "ZZ marks unassigned space, not a country",
}

# Where a country's space is registered, for the "add this file" hint.
_REGISTRY_HINT = "load the delegation file of the registry that serves it"


class CountryError(InputError):
    """A country code or preset the admin gave can't be used (EX_USAGE)."""

    code = exitcodes.USAGE


def split_codes(values) -> list:
    """'kr,cn' 'jp' -> ['KR', 'CN', 'JP'] (order kept, duplicates dropped)."""
    out = []
    for value in values or ():
        for code in value.split(","):
            code = code.strip().upper()
            if code and code not in out:
                out.append(code)
    return out


def choose(codes, presets, present, sources="the delegation files") -> list:
    """The countries to block, from --countries and --preset, each checked
    against ISO 3166 and against `present` (the codes in the data)."""
    chosen, origin = [], {}
    for name in presets or ():
        if name not in PRESETS:
            raise CountryError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
        for code in PRESETS[name]:
            if code not in origin:
                chosen.append(code)
                origin[code] = f" (from preset {name})"
    for code in split_codes(codes):
        if code not in origin:
            chosen.append(code)
            origin[code] = ""
    if not chosen:
        raise CountryError("no countries chosen: give --countries CC,CC,... or --preset NAME")
    for code in chosen:
        if code not in ISO3166:
            hint = _HINTS.get(code, "not an ISO 3166-1 alpha-2 country code")
            raise CountryError(f"{code}{origin[code]}: {hint}")
        if code not in present:
            raise CountryError(f"{code}{origin[code]} has no allocated or assigned addresses in "
                               f"{sources}; {_REGISTRY_HINT}")
    return chosen
