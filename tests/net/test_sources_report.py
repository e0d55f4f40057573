"""`mailfilter sources` on fixture spam (a Maildir) and ham (an mbox) whose
Received headers cover Postfix, Exim, qmail, IPv6 and forged hops."""

import ipaddress
import os
import subprocess
import sys

import pytest

from mailfilter.net.sources import first_external, hop_address, _ALWAYS_TRUSTED

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(REPO, "tests", "fixtures")
SPAM = os.path.join(FIX, "sources", "spam")
HAM = os.path.join(FIX, "sources", "ham.mbox")
RIR = ["--rir", os.path.join(FIX, "rir", "delegated-apnic-sample"),
       "--rir", os.path.join(FIX, "rir", "delegated-lacnic-extended-sample")]
OURS = ["--trust", "192.0.2.0/28"]


def sources(*args):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "mailfilter", "sources", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def table(stdout, heading):
    """Rows of one section of the report, split into fields."""
    section = stdout.split(heading, 1)[1].split("\n\n", 1)[0]
    return [line.split() for line in section.splitlines()[1:] if line.strip()]


def test_report_by_country_and_network():
    res = sources(*RIR, *OURS, SPAM)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("10 spam messages, 8 with an external relay")
    assert "  1 without one: no Received header" in out
    assert "  1 without one: only trusted hops" in out
    assert table(out, "by country:") == [["CN", "3", "37.5%"], ["KR", "3", "37.5%"],
                                         ["??", "1", "12.5%"], ["BR", "1", "12.5%"]]
    nets = table(out, "by network")
    assert nets[0] == ["1.11.4.0/24", "KR", "2", "25.0%"]                # Postfix and Exim, same /24
    assert ["2001:250::/48", "CN", "1", "12.5%"] in nets                # IPv6 literal
    assert ["1.16.0.0/24", "KR", "1", "12.5%"] in nets                  # qmail's bare (1.16.0.9)
    assert ["1.0.2.0/24", "CN", "1", "12.5%"] in nets                   # not the HELO literal [10.0.0.1]
    # The forged JP hop below the KR relay is never believed.
    assert "JP" not in out and "1.0.16" not in out


def test_without_trusting_our_mx_it_is_counted_as_the_source():
    res = sources(*RIR, SPAM)
    assert ["192.0.2.0/24", "??", "2", "25.0%"] in table(res.stdout, "by network")
    assert ["CN", "1", "12.5%"] in table(res.stdout, "by country:")


def test_suggest_with_ham_warns_about_shared_country():
    res = sources(*RIR, *OURS, "--suggest", "20", "--ham", HAM, SPAM)
    assert res.returncode == 0, res.stderr
    assert "3 ham messages, 3 with an external relay" in res.stdout
    assert "  mailfilter krfilter --countries CN,KR\n" in res.stdout
    warning = "warning: KR also sent 1 of your 3 ham messages (33.3%); blocking KR refuses them too"
    assert warning in res.stdout and warning in res.stderr
    assert "CN also sent" not in res.stdout
    rows = table(res.stdout, "by country:")
    assert rows[1] == ["KR", "3", "37.5%", "1", "33.3%"]
    assert rows[-1] == ["JP", "0", "0.0%", "2", "66.7%"]          # ham-only countries are listed too


def test_suggest_threshold_nobody_reaches():
    res = sources(*RIR, *OURS, "--suggest", "50", SPAM)
    assert "no country sends at least 50% of the spam" in res.stdout
    res = sources(*RIR, *OURS, "--suggest", "10", SPAM)
    assert "--countries CN,KR,BR\n" in res.stdout        # ?? is never suggested
    assert "give --ham FOLDER" in res.stdout


def test_bad_trust_file_and_missing_folder(tmp_path):
    f = tmp_path / "trusted"
    f.write_text("192.0.2.0/28\nmx.example.org\n")
    res = sources(*RIR, "--trust-file", f, SPAM)
    assert res.returncode == 78 and f"{f}:2: 'mx.example.org' is not an IPv4/IPv6 address or CIDR" in res.stderr
    res = sources(*RIR, tmp_path / "nope")
    assert res.returncode == 66 and "no such Maildir" in res.stderr


def test_help_teaches():
    res = sources("--help")
    assert res.returncode == 0 and "examples:" in res.stdout and "--suggest" in res.stdout


@pytest.mark.parametrize("clause,addr", [
    ("mx.example.org (mx.example.org [192.0.2.11])", "192.0.2.11"),
    ("[1.2.3.4] (helo=x)", "1.2.3.4"),
    ("unknown (HELO spam.kr) (1.11.22.33)", "1.11.22.33"),
    ("[10.0.0.1] (host.example.cn [1.0.2.3])", "1.0.2.3"),
    ("host.cn ([IPv6:2001:db8::5] helo=host.cn)", "2001:db8::5"),
    ("host (host [IPv6:::ffff:1.2.3.4])", "::ffff:1.2.3.4"),
    ("localhost", None),
    ("weird (comment [not.an.address])", None),
])
def test_hop_address(clause, addr):
    assert hop_address(clause) == (ipaddress.ip_address(addr) if addr else None)


def test_ipv4_mapped_relay_is_unwrapped():
    hops = [{"hop": 1, "from": "x (x [IPv6:::ffff:1.11.4.5])"}]
    assert first_external(hops, _ALWAYS_TRUSTED) == (ipaddress.ip_address("1.11.4.5"), None)
