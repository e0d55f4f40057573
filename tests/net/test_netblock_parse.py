"""Delegation-file parser, merging, countries, allow-list and the krfilter
command's text output and errors. No root needed."""

import ipaddress
import os
import subprocess
import sys

import pytest

from mailfilter.net import addresslist
from mailfilter.net import countries, rir, sets, writers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RIR = os.path.join(REPO, "tests", "fixtures", "rir")
APNIC = os.path.join(RIR, "delegated-apnic-sample")
LACNIC = os.path.join(RIR, "delegated-lacnic-extended-sample")
AFRINIC = os.path.join(RIR, "delegated-afrinic-extended-sample")


def krfilter(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "mailfilter", "krfilter", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=60, cwd=cwd)


def cidrs(ranges, version=4):
    """Independent oracle: the stdlib's summarize_address_range."""
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    out = []
    for a, b in ranges:
        out += ipaddress.summarize_address_range(cls(a), cls(b))
    return sorted(ipaddress.collapse_addresses(out))


# --- parser -----------------------------------------------------------------

def test_version_2_seven_fields_and_comments():
    d = rir.parse(APNIC)
    assert (d.version, d.registry, d.serial, d.enddate, d.records) == ("2", "apnic", "20190912", "20190911", 17)
    assert d.v4["KR"] == [(0x010B0000, 0x010BFFFF), (0x01100000, 0x0113FFFF), (0x010C0000, 0x010CFFFF)]
    assert "AP" in d.countries          # present in data; countries.choose refuses it as not a country
    assert set(d.v6) == {"KR", "CN", "JP"}


def test_version_2_3_opaque_id_and_empty_cc_reserved_available():
    d = rir.parse(LACNIC)
    assert d.version == "2.3"
    assert d.countries == {"AR", "CL", "BR"}          # reserved/available never count
    assert d.v4["BR"] == [(int(ipaddress.ip_address("45.4.4.0")), int(ipaddress.ip_address("45.4.7.255")))]
    assert len(d.v6["BR"]) == 2


def test_ipv4_count_not_a_power_of_two_becomes_several_cidrs():
    d = rir.parse(AFRINIC)
    bl = sets.build([d], ["ZA"])
    assert [str(n) for n in bl.v4] == [str(n) for n in cidrs(d.v4["ZA"])]
    # 393216 hosts from 164.146.0.0 = a /15 then a /14; 2560 from 196.4.20.0 = /22 + /22 + /23
    assert [str(n) for n in bl.v4[:5]] == ["164.146.0.0/15", "164.148.0.0/14",
                                          "196.4.20.0/22", "196.4.24.0/22", "196.4.28.0/23"]
    assert sum(n.size for n in bl.v4) == 393216 + 2560 + 1280
    assert "ZZ" not in d.countries                   # available record


def test_ipv6_value_is_prefix_length_and_adjacent_prefixes_merge():
    d = rir.parse(APNIC)
    bl = sets.build([d], ["KR"])
    assert [str(n) for n in bl.v6] == ["2001:220::/34"]       # two adjacent /35s
    # 1.11/16 and 1.12/16 touch but are no single CIDR; 1.16/14 stands apart
    assert bl.per_country["KR"] == (3, 1)


def test_merge_across_countries_and_files_matches_oracle():
    ds = [rir.parse(p) for p in (APNIC, LACNIC, AFRINIC)]
    bl = sets.build(ds, ["CN", "KR", "BR", "ZA"])
    ranges = [r for d in ds for cc in ("CN", "KR", "BR", "ZA") for r in d.v4.get(cc, ())]
    assert [str(n) for n in bl.v4] == [str(n) for n in cidrs(ranges)]
    ranges6 = [r for d in ds for cc in ("CN", "KR", "BR", "ZA") for r in d.v6.get(cc, ())]
    assert [str(n) for n in bl.v6] == [str(n) for n in cidrs(ranges6, 6)]


def test_crlf_line_endings(tmp_path):
    p = tmp_path / "crlf"
    p.write_bytes(open(APNIC, "rb").read().replace(b"\n", b"\r\n"))
    assert rir.parse(str(p)).v4 == rir.parse(APNIC).v4


HEADER = "2.3|test|20240101|{n}|20240101|20240101|+0000\n"
GOOD = "test|KR|ipv4|10.0.0.0|256|20240101|allocated|X\n"

MALFORMED = {
    "too_few_fields": ("test|KR|ipv4|10.0.1.0|256\n", "at least 7"),
    "bad_ipv4": ("test|KR|ipv4|10.0.1|256|20240101|allocated\n", "bad ipv4 start"),
    "ipv4_count_zero": ("test|KR|ipv4|10.0.1.0|0|20240101|allocated\n", "out of range"),
    "ipv4_count_text": ("test|KR|ipv4|10.0.1.0|lots|20240101|allocated\n", "host count"),
    "ipv4_past_end": ("test|KR|ipv4|255.255.255.0|512|20240101|allocated\n", "out of range"),
    "ipv6_prefix_129": ("test|KR|ipv6|2001:db8::|129|20240101|allocated\n", "out of range 0..128"),
    "ipv6_misaligned": ("test|KR|ipv6|2001:db8:1::|16|20240101|allocated\n", "not on a /16 boundary"),
    "ipv6_bad_address": ("test|KR|ipv6|2001:db8:::1|48|20240101|allocated\n", "bad ipv6 start"),
    "unknown_status": ("test|KR|ipv4|10.0.1.0|256|20240101|stolen\n", "unknown status"),
    "unknown_type": ("test|KR|ipv5|10.0.1.0|256|20240101|allocated\n", "unknown type"),
    "lowercase_cc": ("test|kr|ipv4|10.0.1.0|256|20240101|allocated\n", "bad country code"),
    "bad_date": ("test|KR|ipv4|10.0.1.0|256|2024-01-01|allocated\n", "bad date"),
    "bad_asn": ("test|KR|asn|AS64512|1|20240101|allocated\n", "bad asn"),
    "empty_registry": ("|KR|ipv4|10.0.1.0|256|20240101|allocated\n", "empty registry"),
    # The format's numbers are ASCII digits only; int() would take these (issue 14).
    "ipv4_count_underscore": ("test|KR|ipv4|10.0.1.0|1_024|20240101|allocated\n", "host count '1_024'"),
    "ipv4_count_plus": ("test|KR|ipv4|10.0.1.0|+256|20240101|allocated\n", "host count '+256'"),
    "ipv4_count_blank": ("test|KR|ipv4|10.0.1.0| 256|20240101|allocated\n", "host count ' 256'"),
    "ipv4_count_huge": ("test|KR|ipv4|10.0.1.0|" + "9" * 5000 + "|20240101|allocated\n", "host count"),
    "ipv6_prefix_plus": ("test|KR|ipv6|2001:db8::|+48|20240101|allocated\n", "prefix length '+48'"),
    "ipv6_prefix_underscore": ("test|KR|ipv6|2001:db8::|4_8|20240101|allocated\n", "prefix length '4_8'"),
    "asn_superscript": ("test|KR|asn|64512|\u00b2|20240101|allocated\n", "bad asn"),
    # A record for the whole address space would block everyone (issue 14).
    "ipv4_everything": ("test|KR|ipv4|0.0.0.0|4294967296|20240101|allocated\n",
                        "KR record covers every IPv4 address (0.0.0.0/0)"),
    "ipv6_everything": ("test|KR|ipv6|::|0|20240101|assigned\n", "KR record covers every IPv6 address (::/0)"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_line_names_file_and_line(tmp_path, case):
    line, words = MALFORMED[case]
    p = tmp_path / "delegated-test"
    # latin-1, as the parser reads it: "\u00b2" is the one byte 0xB2 ("²").
    p.write_bytes(("# comment\n" + HEADER.format(n=3) + "\n" + GOOD + line + GOOD).encode("latin-1"))
    with pytest.raises(rir.DelegationError) as err:
        rir.parse(str(p))
    assert str(err.value).startswith(f"{p}:5: ")
    assert words in str(err.value)


def test_lenient_skips_and_counts(tmp_path):
    p = tmp_path / "delegated-test"
    p.write_text(HEADER.format(n=4) + GOOD + MALFORMED["bad_ipv4"][0] + MALFORMED["bad_date"][0]
                 + "test|CN|ipv4|10.0.9.0|256|20240101|assigned|Y\n")
    warnings = []
    d = rir.parse(str(p), lenient=True, warn=warnings.append)
    assert d.skipped == 2 and sorted(d.v4) == ["CN", "KR"]
    assert [w.split(": ")[0] for w in warnings] == [f"{p}:3", f"{p}:4"]


@pytest.mark.parametrize("first,words", [
    ("test|KR|ipv4|10.0.0.0|256|20240101|allocated\n", "expected a version line"),
    ("3|test|20240101|1|20240101|20240101|+0000\n", "version 2 or 2.3"),
    ("2|test|20240101|many|20240101|20240101|+0000\n", "expected a version line"),
    # str.isdigit() passed these, then int() raised: a traceback, not a line number
    ("2|test|20240101|\u00b9|20240101|20240101|+0000\n", "expected a version line"),
    ("2|test|20240101|" + "1" * 5000 + "|20240101|20240101|+0000\n", "expected a version line"),
    ("2|test|20240101|+1|20240101|20240101|+0000\n", "expected a version line"),
])
def test_bad_or_missing_version_line(tmp_path, first, words):
    p = tmp_path / "delegated-test"
    p.write_bytes(("# c\n" + first + GOOD).encode("latin-1"))
    with pytest.raises(rir.DelegationError) as err:
        rir.parse(str(p))
    assert str(err.value).startswith(f"{p}:2: ") and words in str(err.value)


def test_empty_file(tmp_path):
    p = tmp_path / "delegated-empty"
    p.write_text("# only comments\n")
    with pytest.raises(rir.DelegationError, match="no version line"):
        rir.parse(str(p))


def test_truncated_file_caught_by_header_count(tmp_path):
    p = tmp_path / "delegated-test"
    lines = open(APNIC).read().splitlines(keepends=True)
    p.write_text("".join(lines[:-3]))
    with pytest.raises(rir.DelegationError, match=r"delegated-test:9: header says 17 records, file has 14"):
        rir.parse(str(p))


@pytest.mark.parametrize("count", ["\u00b9", "+1", "1_0"])
def test_summary_count_is_digits_only(tmp_path, count):
    p = tmp_path / "delegated-test"
    p.write_bytes((HEADER.format(n=1) + f"test|*|ipv4|*|{count}|summary\n" + GOOD).encode("latin-1"))
    with pytest.raises(rir.DelegationError) as err:
        rir.parse(str(p))
    assert str(err.value) == f"{p}:2: bad summary count {count!r}"


def test_summary_count_mismatch(tmp_path):
    p = tmp_path / "delegated-test"
    p.write_text(HEADER.format(n=1) + "test|*|ipv4|*|2|summary\n" + GOOD)
    with pytest.raises(rir.DelegationError, match=r"delegated-test:2: summary says 2 ipv4 records, file has 1"):
        rir.parse(str(p))


# --- .md5 -------------------------------------------------------------------

H = "07bd918ccf55978d9fd81fd9671cf440"


@pytest.mark.parametrize("text", [
    f"MD5 (delegated-apnic-latest) = {H}",
    f"MD5 (delegated-apnic-latest) = {H}\n",
    f"{H}  delegated-apnic-latest\n",
    f"{H} *delegated-apnic-latest\n",
    f"{H}  /pub/stats/apnic/delegated-apnic-latest\n",
    f"{H.upper()}\n",
    f"{'0' * 32}  other-file\n{H}  delegated-apnic-latest\n",
])
def test_md5_file_forms(text):
    assert rir.expected_md5(text, "delegated-apnic-latest", "x.md5") == H


@pytest.mark.parametrize("text,words", [
    (f"MD5 (other-file) = {H}", "no MD5 for delegated-apnic-latest (it lists other-file)"),
    ("<html>404 not found</html>", "x.md5:1: not an MD5 line"),
    ("", "no MD5 for"),
])
def test_md5_file_errors(text, words):
    with pytest.raises(rir.ChecksumError) as err:
        rir.expected_md5(text, "delegated-apnic-latest", "x.md5")
    assert words in str(err.value)


# --- countries ----------------------------------------------------------------

PRESENT = rir.parse(APNIC).countries


def test_presets():
    assert countries.choose([], ["krfilter"], PRESENT | {"CN"}) == ["CN", "KP", "KR"]
    assert countries.PRESETS["v2"] == countries.PRESETS["krfilter"] + ("HK", "ID", "IN", "TW")
    assert countries.PRESETS["v3"] == countries.PRESETS["v2"] + ("RU",)
    everything = set(countries.PRESETS["v3"])
    assert countries.choose(["jp"], ["v3"], everything | {"JP"})[-1] == "JP"


def test_country_codes_normalised_and_deduplicated():
    assert countries.choose(["kr, cn", "KR", " jp "], [], PRESENT) == ["KR", "CN", "JP"]


@pytest.mark.parametrize("codes,presets,words", [
    (["XX"], [], "XX: not an ISO 3166-1 alpha-2 country code"),
    (["UK"], [], "GB"),
    (["AP"], [], "Asia-Pacific region"),
    (["KOR"], [], "KOR: not an ISO 3166"),
    (["US"], [], "US has no allocated or assigned addresses"),
    ([], ["v2"], "ID (from preset v2) has no allocated or assigned addresses"),
    ([], ["v9"], "unknown preset"),
    ([], [], "no countries chosen"),
])
def test_country_validation(codes, presets, words):
    with pytest.raises(countries.CountryError) as err:
        countries.choose(codes, presets, PRESENT)
    assert words in str(err.value)


# --- allow-list ---------------------------------------------------------------

def test_allow_list_cut_out_of_both_families(tmp_path):
    d = rir.parse(APNIC)
    allow = addresslist.parse(["1.11.5.0/24,1.16.0.1", "2001:220:1::/48"], sets.allow_network, "--allow")
    bl = sets.build([d], ["KR"], allow)
    blocked4 = [ipaddress.ip_network(str(n)) for n in bl.v4]
    assert not any(ipaddress.ip_address("1.11.5.7") in n for n in blocked4)
    assert not any(ipaddress.ip_address("1.16.0.1") in n for n in blocked4)
    assert any(ipaddress.ip_address("1.11.4.255") in n for n in blocked4)
    assert any(ipaddress.ip_address("1.16.0.2") in n for n in blocked4)
    assert sum(n.num_addresses for n in blocked4) == 65536 * 2 + 262144 - 256 - 1
    blocked6 = [ipaddress.ip_network(str(n)) for n in bl.v6]
    assert not any(ipaddress.ip_address("2001:220:1::1") in n for n in blocked6)
    assert any(ipaddress.ip_address("2001:220:2::1") in n for n in blocked6)


def test_allow_file(tmp_path):
    f = tmp_path / "allow"
    f.write_text("# office in Seoul\n1.11.5.0/24   # VPN\n\n2001:220:1::/48\n")
    assert [str(n) for n in addresslist.read_file(str(f), sets.allow_network)] == ["1.11.5.0/24", "2001:220:1::/48"]


def test_bad_allow_file_line_is_config_error(tmp_path):
    f = tmp_path / "allow"
    f.write_text("1.11.5.0/24\n1.11.300.0/24\n")
    out = tmp_path / "out"
    res = krfilter("-c", "KR", "--allow-file", f, "-o", out, APNIC)
    assert res.returncode == 78
    assert f"{f}:2: '1.11.300.0/24' is not an IPv4/IPv6 address or CIDR" in res.stderr
    assert not out.exists()


# --- the command ------------------------------------------------------------

def test_malformed_file_exits_65_and_keeps_previous_output(tmp_path):
    bad = tmp_path / "delegated-bad"
    bad.write_text(HEADER.format(n=2) + GOOD + MALFORMED["bad_ipv4"][0])
    out = tmp_path / "krfilter.ipset"
    out.write_text("previous good file\n")
    res = krfilter("-c", "KR", "-o", out, APNIC, bad)
    assert res.returncode == 65
    assert f"{bad}:3: bad ipv4 start" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert out.read_text() == "previous good file\n"
    assert sorted(os.listdir(tmp_path)) == ["delegated-bad", "krfilter.ipset"]     # no temp file left


def test_lenient_option_on_command(tmp_path):
    bad = tmp_path / "delegated-bad"
    bad.write_text(HEADER.format(n=2) + GOOD + MALFORMED["bad_ipv4"][0])
    res = krfilter("-c", "KR", "--lenient", "--format", "cidr", bad)
    assert res.returncode == 0, res.stderr
    assert "skipped 1 malformed" in res.stderr
    assert res.stdout.splitlines()[-1] == "10.0.0.0/24"


def test_missing_file_exits_66(tmp_path):
    res = krfilter("-c", "KR", tmp_path / "nope")
    assert res.returncode == 66 and "nope: cannot read" in res.stderr


def test_unknown_country_exits_64():
    res = krfilter("-c", "KR,RU", APNIC)
    assert res.returncode == 64 and "RU has no allocated or assigned addresses" in res.stderr


def test_no_input_and_empty_cache_exits_66(tmp_path):
    res = krfilter("-c", "KR", "--cache", tmp_path)
    assert res.returncode == 66 and "none cached" in res.stderr


def test_output_is_deterministic_and_commented(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert krfilter("--preset", "krfilter", "-f", "nft", "-o", out, APNIC).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    assert "delegated-apnic-sample: apnic version 2, serial 20190912, data up to 20190911" in text
    assert "Countries: CN KP KR" in text and "KP: 1 IPv4 prefix, 0 IPv6 prefixes" in text


def test_iptables_text_order():
    res = krfilter("-c", "KR", "-f", "iptables", "--ports", "25,587", "--reject", "--log", APNIC)
    rules = [l for l in res.stdout.splitlines() if l.startswith("-A KRFILTER ")]
    assert rules[0] == "-A KRFILTER -i lo -j RETURN"
    assert "ESTABLISHED,RELATED" in rules[1]
    assert any("--dports 25,587" in r for r in rules[:6])
    assert rules[-1].startswith("-A KRFILTER -s ")
    assert "-A KRFILTER-DROP -p tcp -j REJECT --reject-with tcp-reset" in res.stdout
    assert res.stdout.index("-j LOG") < res.stdout.index("-j REJECT")
    assert not any(line.startswith("-A INPUT") for line in res.stdout.splitlines())


def test_too_many_ports_is_usage_error():
    res = krfilter("-c", "KR", "--ports", ",".join(str(p) for p in range(1, 17)), APNIC)
    assert res.returncode == 64 and "at most 15 ports" in res.stderr


def test_nft_empty_family_has_no_elements():
    res = krfilter("-c", "HK", "-f", "nft", APNIC)
    body = res.stdout.split("set block6 {")[1].split("}")[0]
    assert "elements" not in body


def test_cidr_list_parses():
    res = krfilter("--preset", "krfilter", "-f", "cidr", APNIC)
    nets = [ipaddress.ip_network(l) for l in res.stdout.splitlines() if not l.startswith("#")]
    assert nets and all(n.version == 4 for n in nets[:3]) and nets[-1].version == 6


def test_postfix_table_with_real_postmap(tmp_path):
    """Postfix reads the table itself: postmap -q answers for a KR address
    and has nothing for an allowed or unlisted one."""
    postmap = "/usr/sbin/postmap"
    assert os.path.exists(postmap), "postfix is not installed; run contrib/bootstrap.sh"
    table = tmp_path / "krfilter.cidr"
    res = krfilter("-c", "KR", "--allow", "1.11.5.0/24", "-f", "postfix", "-o", table, APNIC)
    assert res.returncode == 0, res.stderr

    # A private, empty main.cf: postmap refuses to run without one, and the
    # machine's own /etc/postfix may have none (Debian's "No configuration").
    config = tmp_path / "postfix"
    config.mkdir()
    (config / "main.cf").write_text("compatibility_level = 3.6\n")

    def q(addr):
        res = subprocess.run([postmap, "-c", str(config), "-q", addr, f"cidr:{table}"],
                             capture_output=True, text=True)
        assert res.returncode in (0, 1), res.stderr     # 1: not in the table
        return res.stdout.strip()
    assert q("1.11.4.1") == writers.Options.postfix_action
    assert q("2001:220:1fff::1") == writers.Options.postfix_action
    assert q("1.11.5.9") == ""
    assert q("1.0.16.1") == ""          # JP


def test_list_countries():
    res = krfilter("--list-countries", APNIC, LACNIC)
    assert res.returncode == 0
    lines = {l.split()[0]: l for l in res.stdout.splitlines()}
    assert "KR" in lines and "BR" in lines and "not an ISO 3166 country" in lines["AP"]


def test_help_teaches():
    res = krfilter("--help")
    assert res.returncode == 0
    for word in ("examples:", "--preset", "ipset restore", "nft -f", "check_client_access", "exit status"):
        assert word in res.stdout


ADJACENT = """2|test|20240101|3|20240101|20240101|+0000
test|*|ipv4|*|3|summary
test|KR|ipv4|10.0.0.0|256|20240101|allocated
test|CN|ipv4|10.0.1.0|256|20240101|allocated
test|JP|ipv4|10.0.2.0|256|20240101|allocated
"""


def test_per_country_never_merges_across_countries(tmp_path):
    """KR 10.0.0.0/24 and CN 10.0.1.0/24 merge into one /23 by default; with
    --per-country each keeps its own set (nft, ipset) or prefixes (iptables),
    so each country's counter counts only that country."""
    f = tmp_path / "delegated-adjacent"
    f.write_text(ADJACENT)
    merged = krfilter("-c", "KR,CN", "-f", "cidr", f).stdout
    assert "10.0.0.0/23" in merged.splitlines()
    nft = krfilter("-c", "KR,CN", "-f", "nft", "--per-country", "--log", f).stdout
    assert "set block4_KR {" in nft and "set block4_CN {" in nft and "set block4 {" not in nft
    assert _nft_elements(nft, "block4_KR") == ["10.0.0.0/24"]
    assert _nft_elements(nft, "block4_CN") == ["10.0.1.0/24"]
    assert "\t\tip saddr @block4_CN counter goto blocked\n" in nft
    # One LOG rule (one rate limit) for every country, in the chain they all go to.
    assert nft.count("log prefix") == 1 and nft.split("chain blocked {")[1].count("log prefix") == 1
    ipt = krfilter("-c", "KR,CN", "-f", "iptables", "--per-country", f).stdout
    assert "-A KRFILTER -s 10.0.0.0/24 -j KRFILTER-DROP" in ipt and "-A KRFILTER -s 10.0.1.0/24 -j KRFILTER-DROP" in ipt
    ipset = krfilter("-c", "KR,CN", "-f", "ipset", "--per-country", f).stdout
    assert "add krfilter4-KR-new 10.0.0.0/24" in ipset and "swap krfilter4-CN-new krfilter4-CN" in ipset
    rules = krfilter("-c", "KR,CN", "-f", "ipset-iptables", "--per-country", f).stdout
    assert [l for l in rules.splitlines() if "match-set" in l] == [
        "-A KRFILTER -m set --match-set krfilter4-KR src -j KRFILTER-DROP",
        "-A KRFILTER -m set --match-set krfilter4-CN src -j KRFILTER-DROP"]


def test_per_country_cuts_the_allow_list_from_each_country(tmp_path):
    f = tmp_path / "delegated-adjacent"
    f.write_text(ADJACENT)
    nft = krfilter("-c", "KR,CN", "-f", "nft", "--per-country", "--allow", "10.0.1.0/25", f).stdout
    assert _nft_elements(nft, "block4_CN") == ["10.0.1.128/25"]
    assert _nft_elements(nft, "block4_KR") == ["10.0.0.0/24"]


def _nft_elements(text, name):
    body = text.split(f"set {name} {{")[1].split("elements = {")[1].split("}")[0]
    return [item.strip() for item in body.split(",") if item.strip()]


def test_default_nft_drop_rules_count():
    """The nft drop rules carry `counter` (nft counts nothing unasked): the
    totals `mailfilter drops --counters` reports."""
    res = krfilter("-c", "KR", "-f", "nft", "--reject", APNIC)
    assert "\t\tip saddr @block4 counter reject with tcp reset\n" in res.stdout
    assert "\t\tip6 saddr @block6 counter reject with tcp reset\n" in res.stdout


# --- krfilter trusts nothing it writes (issue 14) -------------------------------

EVERYTHING4 = "test|KR|ipv4|0.0.0.0|4294967296|20240101|allocated|X\n"


def test_a_record_for_everything_is_refused_unless_force(tmp_path):
    bad = tmp_path / "delegated-everything"
    bad.write_text(HEADER.format(n=2) + GOOD + EVERYTHING4)
    out = tmp_path / "krfilter.ipset"
    res = krfilter("-c", "KR", "-o", out, bad)
    assert res.returncode == 65 and not out.exists()
    assert res.stderr == (f"mailfilter: {bad}:3: KR record covers every IPv4 address (0.0.0.0/0): no registry "
                          "delegates that, and blocking it would cut off every client, your own SSH session "
                          "included (--force accepts it, --lenient skips it)\n")
    res = krfilter("-c", "KR", "--lenient", "-f", "cidr", bad)
    assert res.returncode == 0 and res.stdout.splitlines()[-1] == "10.0.0.0/24"
    assert "covers every IPv4 address" in res.stderr and "skipped (--lenient)" in res.stderr
    res = krfilter("-c", "KR", "--force", "-f", "cidr", bad)
    assert res.returncode == 0 and res.stdout.splitlines()[-1] == "0.0.0.0/0"
    # Records nobody counts (reserved, available) may cover anything.
    ok = tmp_path / "delegated-reserved"
    ok.write_text(HEADER.format(n=2) + GOOD + "test||ipv4|0.0.0.0|4294967296||reserved|\n")
    assert krfilter("-c", "KR", "-f", "cidr", ok).returncode == 0


def test_records_that_add_up_to_everything_are_refused_unless_force(tmp_path):
    halves = tmp_path / "delegated-halves"
    halves.write_text(HEADER.format(n=4) + "test|KR|ipv4|0.0.0.0|2147483648|20240101|allocated|X\n"
                      "test|CN|ipv4|128.0.0.0|2147483648|20240101|allocated|Y\n"
                      "test|KR|ipv6|::|1|20240101|allocated|X\ntest|KR|ipv6|8000::|1|20240101|allocated|X\n")
    out = tmp_path / "krfilter.nft"
    res = krfilter("-c", "KR,CN", "-f", "nft", "-o", out, halves)
    assert res.returncode == 65 and not out.exists()
    assert "KR CN together cover every address (0.0.0.0/0 and ::/0)" in res.stderr
    assert "--force writes it anyway" in res.stderr
    assert krfilter("-c", "KR", "-f", "nft", "-o", out, halves).returncode == 65      # ::/0 alone
    assert krfilter("-c", "KR,CN", "--force", "-f", "nft", "-o", out, halves).returncode == 0


def test_sources_refuses_such_a_record_too(tmp_path):
    # No --force there: the report would put every address in one country.
    bad = tmp_path / "delegated-everything"
    bad.write_text(HEADER.format(n=2) + GOOD + EVERYTHING4)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-m", "mailfilter", "sources", "--rir", str(bad), str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 65 and "(--lenient skips malformed lines)" in res.stderr
    assert "--force" not in res.stderr


def _hostile_name(tmp_path, payload):
    """A copy of the APNIC sample whose file name carries payload (anything
    but '/', which no file name can hold)."""
    path = tmp_path / f"delegated-apnic\n{payload}\n#"
    path.write_bytes(open(APNIC, "rb").read())
    return path


def _rules(text):
    return [line for line in text.splitlines() if not line.startswith("#")]


@pytest.mark.parametrize("fmt", list(writers.FORMATS))
def test_file_name_cannot_add_a_line_to_any_format(tmp_path, fmt):
    # iptables-restore loaded the ACCEPT rule a newline in the name added.
    hostile = _hostile_name(tmp_path, "*filter\n-I INPUT -j ACCEPT\nCOMMIT\n1.11.4.1 OK\nadd table inet pwned")
    res = krfilter("-c", "KR", "-f", fmt, hostile)
    assert res.returncode == 0, res.stderr
    assert _rules(res.stdout) == _rules(krfilter("-c", "KR", "-f", fmt, APNIC).stdout)
    assert ("#   delegated-apnic\\x0a*filter\\x0a-I INPUT -j ACCEPT\\x0aCOMMIT\\x0a1.11.4.1 OK"
            "\\x0aadd table inet pwned\\x0a#: apnic version 2") in res.stdout


def test_header_fields_and_undecodable_names_are_escaped(tmp_path):
    # The registry and serial come from the file; a name that is not UTF-8
    # made the writer raise UnicodeEncodeError.
    name = os.fsencode(tmp_path) + b"/delegated-\xff\xfe"
    data = open(APNIC, "rb").read().replace(b"|apnic|20190912|", b"|ap\x0bnic|2019\x850912|", 1)
    with open(name, "wb") as fh:
        fh.write(data)
    res = subprocess.run([sys.executable, "-m", "mailfilter", "krfilter", "-c", "KR", "-f", "iptables", name],
                         capture_output=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=60)
    assert res.returncode == 0, res.stderr
    header = [l for l in res.stdout.decode().splitlines() if l.startswith("#   delegated-")]
    assert header == ["#   delegated-\\udcff\\udcfe: ap\\x0bnic version 2, serial 2019\\x850912, "
                      "data up to 20190911, 17 records"]


@pytest.mark.parametrize("option,value,words", [
    ("--postfix-action", "REJECT\n0.0.0.0/0 OK", "one line of printable ASCII"),
    ("--postfix-action", "REJECT\r0.0.0.0/0\tOK", "one line of printable ASCII"),
    ("--postfix-action", "OK", "OK accepts the mail"),
    ("--postfix-action", "550", "550 accepts the mail"),
    ("--postfix-action", "REJCT go away", "'REJCT' is not an access(5) action"),
    ("--postfix-action", "", "one line of printable ASCII"),
    ("--log-rate", "6/minute\n-A INPUT -j ACCEPT", "expected N/second, N/minute, N/hour or N/day"),
    ("--log-rate", "6/m", "expected N/second"),
    ("--log-rate", "0/second", "expected N/second"),
    ("--log-rate", "10001/second", "N from 1 to 10000"),
    ("--name", "kr\u00efl", "an ASCII letter, then letters, digits"),
    ("--name", "1krfilter", "an ASCII letter"),
    ("--name", "kr filter", "an ASCII letter"),
])
def test_option_text_that_reaches_a_rule_file_is_checked(option, value, words):
    res = krfilter("-c", "KR", "-f", "postfix" if option == "--postfix-action" else "iptables",
                   "--log", f"{option}={value}", APNIC)
    assert res.returncode == 64, res.stdout
    assert f"argument {option}: {value!r}" in res.stderr and words in res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize("action", ["REJECT", "554 5.7.1 not from your network", "DEFER_IF_PERMIT try later",
                                    "  HOLD  ", "WARN krfilter would block this"])
def test_postfix_actions_an_admin_uses(action):
    res = krfilter("-c", "KR", "-f", "postfix", "--postfix-action", action, APNIC)
    assert res.returncode == 0, res.stderr
    assert _rules(res.stdout)[0] == f"1.11.0.0/16\t{action.strip()}"


def test_library_callers_get_the_same_checks():
    for bad in ({"postfix_action": "REJECT\n0.0.0.0/0 OK"}, {"log_rate": "1/s\n"}, {"name": "x\ny"},
                {"ports": (0,)}):
        with pytest.raises(ValueError):
            writers.Options(**bad)


def test_postfix_table_with_a_hostile_file_name_and_real_postmap(tmp_path):
    # A cidr table is first match: an injected host line above the block
    # would let that Korean host in.
    hostile = _hostile_name(tmp_path, "1.11.4.1 OK")
    table = tmp_path / "krfilter.cidr"
    assert krfilter("-c", "KR", "-f", "postfix", "-o", table, hostile).returncode == 0
    config = tmp_path / "postfix"
    config.mkdir()
    (config / "main.cf").write_text("compatibility_level = 3.6\n")
    res = subprocess.run(["/usr/sbin/postmap", "-c", str(config), "-q", "1.11.4.1", f"cidr:{table}"],
                         capture_output=True, text=True)
    assert (res.returncode, res.stdout.strip()) == (0, writers.Options.postfix_action), (res, res.stderr)
