"""`mailfilter sources` on mail a real Postfix 3.7 delivered, from clients
that lie in their HELO (issue 14, item 3).

The server namespace runs a private Postfix with two hops of our own: the
MX on port 25 (192.0.2.11) hands every message to the mailbox server on
port 2525 (192.0.2.1) by content_filter, as a front MX hands mail to the
mailbox host, and that one delivers to a Maildir. Clients in the client
namespace come from a Korean IPv4 address and a Chinese IPv6 address (as
the fixture delegation files have them), say a hostile HELO, and carry a
forged Received line naming a Brazilian relay below. The first external
hop is the Korean (or Chinese) client in every case; never Brazil.
"""

import os
import subprocess
import sys

import pytest

from mailfilter.net.received import client_address
from mailfilter.net.sources import received_fields
from netns_lab import Pair
from postfix_lab import Postfix, master_cf

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(REPO, "tests", "fixtures")
RIR = ["--rir", os.path.join(FIX, "rir", "delegated-apnic-sample"),
       "--rir", os.path.join(FIX, "rir", "delegated-lacnic-extended-sample")]
MX, MX6, MAILBOX = "192.0.2.11", "2001:db8:25::11", "192.0.2.1"
KR4, CN6 = "1.11.22.33", "2001:250::25"
FORGED = (b"Received: from mx.example.br (mx.example.br [45.4.4.8])\r\n"
          b"\tby relay.example.kr (Postfix) with ESMTP id 1BR;\r\n"
          b"\tMon,  2 Sep 2019 09:00:00 +0900 (JST)\r\n")

# (client address, HELO, what Postfix writes on the Received field's first line:
# blanks and parentheses in the HELO become "?", brackets and "by" stay)
CASES = [
    (KR4, "by", f"from by (unknown [{KR4}])"),                         # the reproduction
    (KR4, "a (b [45.4.4.8]) by", f"from a??b?[45.4.4.8]??by (unknown [{KR4}])"),
    (KR4, "[45.4.4.8]", f"from [45.4.4.8] (unknown [{KR4}])"),
    (KR4, "x helo=[45.4.4.8]", f"from x?helo=[45.4.4.8] (unknown [{KR4}])"),
    (CN6, "by", f"from by (unknown [IPv6:{CN6}])"),
]

# The MX: every message goes on to the mailbox host on 2525.
MASTER = master_cf("25 inet n - n - - smtpd",
                   f"  -o content_filter=smtp:[{MAILBOX}]:2525",
                   "2525 inet n - n - - smtpd",
                   "  -o content_filter=",
                   "smtp unix - - n - - smtp",
                   "relay unix - - n - - smtp")


def sources(*args):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "mailfilter", "sources", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def delivered():
    """The Maildir files Postfix delivered, one per case, in CASES order."""
    with Pair(srv_addrs=[MX, MX6, MAILBOX], cli_addrs=[KR4, CN6]) as pair, \
            Postfix(netns=pair.srv, settings={"smtp_bind_address": MX}, master=MASTER) as pf:
        pf.start()
        for n, (src, helo, _) in enumerate(CASES):
            data = FORGED + f"From: x@example.net\r\nSubject: case {n}\r\n\r\nbody\r\n".encode()
            pair.send_mail(src, MX6 if ":" in src else MX, helo, data)
        pf.wait_for_log("delivered to maildir", len(CASES))
        pf.stop()
        new = os.path.join(pf.mail, "user", "new")
        by_case = {}
        for name in os.listdir(new):
            path = os.path.join(new, name)
            subject = [l for l in open(path, "rb").read().split(b"\n") if l.startswith(b"Subject: case ")]
            by_case[int(subject[0].split()[2])] = path
        yield [by_case[n] for n in sorted(by_case)], os.path.join(pf.mail, "user")


def test_postfix_writes_the_hostile_helo_verbatim(delivered):
    files, _ = delivered
    assert len(files) == len(CASES)
    for path, (_, _, first_line) in zip(files, CASES):
        raw = open(path, "rb").read()
        fields = received_fields(raw)
        assert len(fields) == 3, raw[:600]           # mailbox host, MX, the forgery
        assert fields[0].startswith(b"Received: from mx.example.org (unknown [192.0.2.11])\n\tby mx.example.org")
        assert fields[1].startswith(b"Received: " + first_line.encode() + b"\n\tby mx.example.org (Postfix)")
        assert b"[45.4.4.8]" in fields[2]


def test_each_hop_reads_the_address_postfix_saw(delivered):
    files, _ = delivered
    for path, (src, helo, _) in zip(files, CASES):
        fields = received_fields(open(path, "rb").read())
        assert [str(client_address(f)) for f in fields[:2]] == [MX, src], helo


def test_report_blames_the_client_not_the_forged_relay(delivered):
    _, maildir = delivered
    res = sources(*RIR, "--trust", "192.0.2.0/28", maildir)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("5 spam messages, 5 with an external relay")
    by_country = res.stdout.split("by country:", 1)[1].split("\n\n", 1)[0]
    assert [line.split() for line in by_country.splitlines()[1:]] == [["KR", "4", "80.0%"], ["CN", "1", "20.0%"]]
    assert "BR" not in res.stdout and "45.4.4" not in res.stdout


def test_without_trust_our_mx_is_the_source(delivered):
    # Our own MX is documentation space that no file delegates: "??". This is
    # what --trust is for, and it shows the hop walk reads the top hop first.
    _, maildir = delivered
    res = sources(*RIR, maildir)
    assert "  192.0.2.0/24           ??        5  100.0%" in res.stdout, res.stdout
