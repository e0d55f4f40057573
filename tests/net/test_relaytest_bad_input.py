"""`mailfilter relaytest` against servers that cannot be tested: nothing
listening, no such host, no DNS, a server that stalls, one that speaks
another protocol or garbage. Each must end in one clear line and its exit
status, never a hang or a traceback.

The tool runs in a client namespace; the misbehaving servers
(smtp_misbehaver.py, which says why they are not real servers) in a server namespace one veth away.
"""

import ipaddress
import os
import subprocess
import time

import pytest
from conftest import MAILFILTER, env_for
from netns_lab import Pair, sh

pytestmark = pytest.mark.root

HERE = os.path.dirname(os.path.abspath(__file__))
MISBEHAVER = os.path.join(HERE, "smtp_misbehaver.py")
SRV, CLI, NOBODY = "10.99.1.1", "10.99.1.2", "10.99.1.77"


def _start(ns, *args):
    import sys
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, MISBEHAVER, *args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line == "ready", f"misbehaving server did not start: {line!r}"
    return proc


@pytest.fixture(scope="module")
def lab():
    with Pair(srv_addrs=[SRV], cli_addrs=[CLI]) as pair:
        # On the link, but nobody has it: ARP goes unanswered.
        sh("ip", "route", "add", f"{NOBODY}/32", "dev", "veth1", ns=pair.cli)
        servers = _start(pair.srv)
        try:
            yield pair
        finally:
            servers.kill()
            servers.wait()


def relaytest(pair, *args, timeout=120):
    return subprocess.run(["ip", "netns", "exec", pair.cli, *MAILFILTER, "relaytest", *map(str, args)],
                          capture_output=True, text=True, env=env_for(None), timeout=timeout)


def one_line(res):
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert res.stdout == ""
    return lines[0]


def test_nothing_listening_is_69(lab):
    res = relaytest(lab, SRV, "--port", 2600, "--domain", "example.org", "--delay", 0)
    assert res.returncode == 69
    assert one_line(res) == f"mailfilter: {SRV} port 2600: connection refused (nothing listens there)"


def test_host_that_never_answers_is_69(lab):
    start = time.monotonic()
    res = relaytest(lab, NOBODY, "--port", 25, "--domain", "example.org", "--timeout", 2)
    assert res.returncode == 69
    line = one_line(res)
    assert line.startswith(f"mailfilter: {NOBODY} port 25: ")
    assert "within 2 s" in line or "No route to host" in line
    assert time.monotonic() - start < 30


def test_every_port_is_reported(lab):
    res = relaytest(lab, SRV, "--port", "2600,2599", "--domain", "example.org", "--delay", 0)
    assert res.returncode == 69
    assert res.stderr.splitlines() == [f"mailfilter: {SRV} port {p}: connection refused (nothing listens there)"
                                       for p in (2600, 2599)]


@pytest.mark.parametrize("port,words", [
    (2601, "no complete reply within 1 s as greeting"),
    (2602, "no complete reply within 1 s as greeting (got '220 "),
    (2603, "no complete reply within 1 s after EHLO"),
])
def test_stalling_server_times_out(lab, port, words):
    start = time.monotonic()
    res = relaytest(lab, SRV, "--port", port, "--domain", "example.org", "--timeout", 1, "--delay", 0)
    assert time.monotonic() - start < 20          # a bound, not a benchmark: "it does not hang"
    assert res.returncode == 75
    assert words in one_line(res)


@pytest.mark.parametrize("port,words", [
    (2604, "not an SMTP server: it sent 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3' as greeting, "
           "not an SMTP reply"),
    (2605, "not an SMTP server: it sent '\\x16\\x03\\x01"),
    (2606, "not an SMTP server: it sent 'hello friend, what a nice day' after EHLO, not an SMTP reply"),
    (2607, "not an SMTP server: a reply line of more than 4096 bytes as greeting, starting '220 xxx"),
])
def test_garbage_gives_one_clear_line(lab, port, words):
    res = relaytest(lab, SRV, "--port", port, "--domain", "example.org", "--timeout", 5, "--delay", 0)
    assert res.returncode == 76
    line = one_line(res)
    assert line.startswith(f"mailfilter: {SRV} port {port}: ")
    assert words in line


def test_busy_server_is_temporary(lab):
    res = relaytest(lab, SRV, "--port", 2608, "--domain", "example.org", "--delay", 0)
    assert res.returncode == 75
    assert one_line(res) == (f"mailfilter: {SRV} port 2608: the server is turning sessions away for now: "
                             "421 4.3.2 mail.example.org Service not available, closing channel")


def test_json_carries_the_problem(lab):
    import json
    res = relaytest(lab, SRV, "--port", 2604, "--domain", "example.org", "--json", "--delay", 0)
    assert res.returncode == 76
    report = json.loads(res.stdout)
    (target,) = report["targets"]
    assert target["problem"]["kind"] == "protocol"
    assert "SSH-2.0" in target["problem"]["message"]
    assert report["exit"] == 76


def _nameservers():
    found = []
    with open("/etc/resolv.conf") as fh:          # read only: which address glibc will ask
        for line in fh:
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                found.append(fields[1].split("%")[0])
    return found[:3] or ["127.0.0.1"]             # glibc's default with none configured


def test_name_that_does_not_resolve_is_68(lab):
    # The client namespace gets the resolver's addresses on its own loopback,
    # answered by an NXDOMAIN responder: a definite "no such name", with no
    # packet leaving the namespace and no file under /etc changed.
    servers = _nameservers()
    for address in servers:
        if not ipaddress.ip_address(address).is_loopback:
            plen = 128 if ":" in address else 32
            sh("ip", "addr", "add", f"{address}/{plen}", "dev", "lo", *(["nodad"] if ":" in address else []),
               ns=lab.cli)
    dns = _start(lab.cli, "dns", *servers)
    try:
        res = relaytest(lab, "no-such-host.example.invalid", "--domain", "example.org")
    finally:
        dns.kill()
        dns.wait()
    assert res.returncode == 68, res.stderr
    assert one_line(res).startswith("mailfilter: no-such-host.example.invalid: no such host")


def test_name_lookup_that_cannot_be_made_is_75(lab):
    # No DNS server is reachable from the client namespace (its only routes
    # are the veth link and loopback): the resolver's "try again" is a
    # temporary error, not "no such host".
    servers = [a for a in _nameservers() if not ipaddress.ip_address(a).is_loopback]
    listed = sh("ip", "-o", "addr", "show", "dev", "lo", ns=lab.cli).stdout
    for address in servers:
        if f" {address}/" in listed:
            sh("ip", "addr", "del", f"{address}/{128 if ':' in address else 32}", "dev", "lo", ns=lab.cli)
    res = relaytest(lab, "no-such-host.example.invalid", "--domain", "example.org", timeout=120)
    assert res.returncode == 75, res.stderr
    assert "could not be looked up now" in one_line(res)


def test_bad_options_are_usage_errors():
    for args in (["--port", "25x"], ["--from-address", "not an address"], ["--domain", "nodots"],
                 ["--timeout", "0"], ["--password-file", "/dev/null"]):
        res = subprocess.run([*MAILFILTER, "relaytest", SRV, *args], capture_output=True, text=True,
                             env=env_for(None), timeout=60)
        assert res.returncode == 64, (args, res.stderr)
        assert "Traceback" not in res.stderr


def test_help_teaches():
    res = subprocess.run([*MAILFILTER, "relaytest", "--help"], capture_output=True, text=True,
                         env=env_for(None), timeout=60)
    assert res.returncode == 0
    for words in ("percent hack", "DATA is never sent", "--netns", "examples:", "exit status:",
                  "68 HOST does not", "76 the server"):
        assert words in res.stdout, words


def test_netns_is_removed_when_the_test_is_killed(lab):
    """--netns from inside the server namespace against a server that stalls:
    SIGTERM in mid-session still deletes the throw-away namespace."""
    import signal
    proc = subprocess.Popen(["ip", "netns", "exec", lab.srv, *MAILFILTER, "relaytest", "127.0.0.1",
                             "--port", "2601", "--domain", "example.org", "--netns", "--timeout", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(None))
    name = f"mfrelay{proc.pid}"    # ip netns exec execs: the tool keeps this pid
    deadline = time.monotonic() + 30
    while name not in sh("ip", "netns", "list").stdout:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the namespace never appeared"
        time.sleep(0.05)
    # Wait until the session is open (the stalling server holds it).
    while not sh("ss", "-Htn", "state", "established", "sport", "=", ":2601", ns=lab.srv).stdout.strip():
        assert time.monotonic() < deadline, "no session reached the server"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in err
    assert name not in sh("ip", "netns", "list").stdout
    assert "mfrt" not in sh("ip", "-o", "link", ns=lab.srv).stdout
