"""`mailfilter sources` on fixture spam (a Maildir) and ham (an mbox) whose
Received headers cover Postfix, Exim, qmail, IPv6 and forged hops; hostile
Received fields (HELO names that lie, baits for the address pattern); where
the delegation files come from. tests/net/test_sources_postfix.py has a real
Postfix deliver the hostile HELOs."""

import hashlib
import ipaddress
import os
import subprocess
import sys
import time

import pytest

import hostile
from mailfilter.net.received import UNREADABLE, client_address, hop_address
from mailfilter.net.sources import _ALWAYS_TRUSTED, first_external, received_fields

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
    hops = [ipaddress.ip_address("::ffff:1.11.4.5")]
    assert first_external(hops, _ALWAYS_TRUSTED) == (ipaddress.ip_address("1.11.4.5"), None)


# --- hostile Received fields (issue 14, item 3) -------------------------------
# Only fields our own servers wrote are read for a decision; the client
# still writes parts of them: its HELO name, its TLS certificate's CN.

KR, BR = "1.11.22.33", "45.4.4.8"


@pytest.mark.parametrize("field,addr", [
    # Postfix 3.7, as tests/net/test_sources_postfix.py has it deliver
    (f"Received: from by (unknown [{KR}])\n\tby mx.example.org (Postfix) with ESMTP id 4A1;\n"
     f"\tMon,  2 Sep 2019 10:00:00 +0900 (JST)\n", KR),
    (f"Received: from a??b?[{BR}]??by (unknown [{KR}])\n\tby mx.example.org (Postfix) with ESMTP id 4A2\n", KR),
    (f"Received: from x?helo=[{BR}] (unknown [{KR}])\r\n\tby mx.example.org (Postfix) with ESMTP id 4A3\r\n", KR),
    (f"Received: from by (unknown [IPv6:2001:250::25])\n\tby mx.example.org (Postfix) with ESMTP id 4A4\n",
     "2001:250::25"),
    # an MTA that writes the HELO raw, blanks and parentheses included
    (f"Received: from a (b [{BR}]) by (unknown [{KR}])\n\tby mx.example.org (Postfix) with ESMTP id 4A5\n", KR),
    # the client's certificate names an address: it is below the first line
    (f"Received: from by (unknown [{KR}])\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n"
     f"\t(Client CN \"[{BR}]\", Issuer \"[{BR}]\" (not verified))\n\tby mx.example.org (Postfix) with ESMTPS id 4A6\n",
     KR),
    # Exim puts the HELO after the address, marked helo=
    (f"Received: from [{KR}] (helo=[{BR}])\n\tby mail.example.org with esmtp (Exim 4.96)\n\tid 1i4ABC\n", KR),
    (f"Received: from host.example ([{KR}] helo=[{BR}])\n\tby mail.example.org with esmtp (Exim 4.96)\n", KR),
    # Sendmail
    (f"Received: from by (unknown [{KR}] (may be forged))\n\tby mail.example.org (8.17.1/8.17.1) with ESMTP\n", KR),
    # unfolded: cut at the first "by" after the HELO word, which may itself be "by"
    (f"Received: from by (unknown [{KR}]) by mx.example.org with SMTP; 2 Sep 2019 01:02:00 -0000", KR),
    (f"Received: from x (x [{KR}]) by mx.example.org ([{BR}]) with SMTP id 1", KR),
    (f"Received: from [{KR}] by mx.example.org (x [{BR}]) with SMTP", KR),
    # Dovecot LMTP over TCP and over a socket; hops without a client
    ("Received: from mx.example.org ([192.0.2.11])\n\tby mail.example.org with LMTP id abc\n", "192.0.2.11"),
    ("Received: from mx.example.org\n\tby mail.example.org with LMTP id abc\n", None),
    ("Received: by mx.example.org (Postfix, from userid 1000)\n\tid 4A7; Mon, 2 Sep 2019\n", None),
    ("Received: (qmail 1234 invoked from network); 2 Sep 2019 01:02:00 -0000\n", None),
    ("Received: fromage (x [1.11.22.33]) by y\n", None),
    ("Received:\n", None),
    ("Received: from user by mail.example.org with local (Exim 4.96)\n\t(envelope-from <u@example.org>)\n", None),
    # a bracket but no address: a format we can't read, so nothing below it is judged
    ("Received: from x (x [not.an.address])\n\tby mx.example.org (Postfix) id 1\n", UNREADABLE),
    (f"Received: from x (x [{'1.' * 30}])\n\tby mx.example.org (Postfix) id 1\n", UNREADABLE),
])
def test_client_address_of_a_received_field(field, addr):
    want = ipaddress.ip_address(addr) if addr not in (None, UNREADABLE) else addr
    assert client_address(field.encode()) == want


def test_forged_hops_below_a_hostile_helo_are_never_read():
    message = (f"Received: from mx.example.org (unknown [192.0.2.11])\n\tby mail.example.org (Postfix) id 1\n"
               f"Received: from by (unknown [{KR}])\n\tby mx.example.org (Postfix) with SMTP id 2\n"
               f"Received: from x (x [{BR}])\n\tby by (Postfix) with SMTP id 3\n"
               "Subject: s\n\nbody\n").encode()
    trusted = _ALWAYS_TRUSTED + [ipaddress.ip_network("192.0.2.0/28")]
    read = []

    def addresses():
        for f in received_fields(message):
            read.append(f)
            yield client_address(f)
    assert first_external(addresses(), trusted) == (ipaddress.ip_address(KR), None)
    assert len(read) == 2                           # the forged third field was not even parsed


def test_an_unreadable_hop_stops_the_walk():
    hops = [ipaddress.ip_address("192.168.1.1"), UNREADABLE, ipaddress.ip_address(BR)]
    assert first_external(iter(hops), _ALWAYS_TRUSTED) == (None, "a Received header whose client address "
                                                                "can't be read")


def _cost(make, n):
    field = make(n)
    start = time.process_time()
    for _ in range(3):
        client_address(field)
    return time.process_time() - start


@pytest.mark.parametrize("bait", [
    # the issue's: one long clause of address characters after a bracket
    lambda n: b"Received: from x (x [" + b"1." * (n // 2) + b"\n\tby y\n",
    lambda n: b"Received: from x (" + b"1" * n + b"\n\tby y\n",
    lambda n: b"Received: from x [IPv6:" + b":" * n + b"\n",
    lambda n: b"Received: from x " + b"[1.2.3.4" * (n // 8) + b"\n",
    lambda n: b"Received: from x " + b"helo=[1.1.1.1]" * (n // 14) + b" by y",
    lambda n: b"Received: from x " + b"(" * n + b" by y",
    lambda n: b"Received: from " + b" by" * (n // 3),
    lambda n: b"Received: from x\n" + b"\tby y\n" * (n // 6),
], ids=["digits-after-bracket", "digits-after-paren", "colons", "open-literals", "helo-literals",
        "nested-comments", "many-by", "many-lines"])
def test_received_parsing_is_linear(bait):
    # 50,000 characters took 19 s with the old pattern; 400,000 would be ~20 min.
    n = 50_000
    small = min(_cost(bait, n) for _ in range(2))
    large = min(_cost(bait, 8 * n) for _ in range(2))
    ok, ratio = hostile.linear_enough(small, large, 8, floor=0.05)
    assert ok, f"{small:.4f}s at n, {large:.4f}s at 8n (ratio {ratio:.1f}); linear ~8, quadratic ~64"


def test_sources_on_a_huge_hostile_received_field(tmp_path):
    # Through the command: a Maildir holding the 400,000-character clause.
    maildir = tmp_path / "Junk"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.hostile").write_bytes(
        b"Received: from x (x [" + b"1." * 200_000 + b"\n\tby mx.example.org (Postfix) id 1\n"
        + f"Received: from x (x [{BR}])\n\tby y\n".encode() + b"Subject: s\n\nbody\n")
    res = sources(*RIR, maildir)
    assert res.returncode == 0, res.stderr
    assert "1 spam messages, 0 with an external relay" in res.stdout
    assert "1 without one: a Received header whose client address can't be read" in res.stdout


# --- where the delegation files come from (issue 11, item 7) -------------------

def test_no_files_suggests_an_option_sources_has(tmp_path):
    res = sources("--cache", tmp_path / "empty-cache", SPAM)
    assert res.returncode == 66
    assert res.stderr == (f"mailfilter: no delegation files given and none cached in {tmp_path}/empty-cache; "
                          "give --rir FILE or use --fetch\n")


def test_fetch_then_report(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "cache"
    site.mkdir()
    for path in (RIR[1], RIR[3]):
        data = open(path, "rb").read()
        (site / os.path.basename(path)).write_bytes(data)
        (site / (os.path.basename(path) + ".md5")).write_text(
            f"MD5 ({os.path.basename(path)}) = {hashlib.md5(data).hexdigest()}\n")
    urls = [a for path in (RIR[1], RIR[3]) for a in ("--url", f"file://{site}/{os.path.basename(path)}")]
    res = sources("--fetch", *urls, "--cache", cache, *OURS, SPAM)
    assert res.returncode == 0, res.stderr
    assert "(MD5 verified)" in res.stderr
    assert sorted(os.listdir(cache)) == ["delegated-apnic-sample", "delegated-lacnic-extended-sample"]
    # The same report as from the files themselves; and the cache serves the next run.
    assert res.stdout == sources(*RIR, *OURS, SPAM).stdout
    assert sources("--cache", cache, *OURS, SPAM).stdout == res.stdout
    assert sources("--url", "file:///x", SPAM).returncode == 64          # --url only with --fetch


def test_file_names_in_the_report_are_escaped(tmp_path):
    # A name that is not UTF-8 crashed the report under a strict UTF-8
    # stdout (an admin's en_US.UTF-8); a newline started a line of its own.
    odd = os.path.join(os.fsencode(tmp_path), b"delegated-\xff\nKR 100%")
    with open(RIR[1], "rb") as src, open(odd, "wb") as dst:
        dst.write(src.read())
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONIOENCODING="utf-8:strict")
    res = subprocess.run([sys.executable, "-m", "mailfilter", "sources", "--rir", odd, SPAM],
                         capture_output=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines()[0].endswith("(countries from delegated-\\udcff\\x0aKR 100%)")
