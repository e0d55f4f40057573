"""contrib/krfilter-refresh, run for real inside a test namespace: it
downloads (from a file:// mirror), loads, reloads only when the block
changed or is missing, and leaves the firewall alone when a check fails."""

import hashlib
import os
import subprocess
import sys

import pytest

from netns_lab import Lab

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "contrib", "krfilter-refresh")
NAME = "delegated-test-extended-latest"

# Day 1: KR only. Day 2: the 10.99.128.0 block moves to KR as well.
DAY1 = """2.3|test|20240101|2|20240101|20240101|+0000
test|KR|ipv4|10.99.64.0|16384|20240101|allocated|A1
test|KR|ipv6|2001:db8:64::|48|20240101|allocated|A1
"""
DAY2 = DAY1.replace("|2|", "|3|", 1) + "test|KR|ipv4|10.99.128.0|768|20240102|allocated|A2\n"


def publish(site, text, md5_of=None):
    (site / NAME).write_text(text)
    digest = hashlib.md5((md5_of or text).encode()).hexdigest()
    (site / f"{NAME}.md5").write_text(f"MD5 ({NAME}) = {digest}\n")


@pytest.fixture
def env(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    e = dict(os.environ,
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
             KRFILTER_CONF=str(tmp_path / "no-such-conf"),
             KRFILTER_ARGS=f"--url file://{site}/{NAME} --cache {tmp_path}/cache --countries KR "
                           "--allow 10.99.100.0/24 --ports 25",
             KRFILTER_STATE=str(tmp_path / "state"),
             MAILFILTER=f"{sys.executable} -m mailfilter")
    return site, e


def _run(lab, e, fmt):
    return subprocess.run(["ip", "netns", "exec", lab.srv, "sh", SCRIPT], capture_output=True, text=True,
                          env=dict(e, KRFILTER_FORMAT=fmt), timeout=120)


@pytest.mark.parametrize("fmt", ["ipset", "nft"])
def test_refresh_loads_then_reloads_only_on_change(env, fmt):
    site, e = env
    publish(site, DAY1)
    with Lab() as lab:
        res = _run(lab, e, fmt)
        assert res.returncode == 0, res.stderr
        assert "reloaded" in res.stdout
        assert (lab.inbound("kr4"), lab.inbound("cn4"), lab.inbound("kr_allowed4")) == ("timeout", "ok", "ok")
        assert lab.inbound("kr6") == "timeout" and lab.inbound("kr4", port=2525) == "ok"
        assert lab.outbound("kr4") == "ok"

        res = _run(lab, e, fmt)
        assert res.returncode == 0 and "unchanged; nothing reloaded" in res.stdout

        publish(site, DAY2)
        res = _run(lab, e, fmt)
        assert res.returncode == 0 and "reloaded" in res.stdout, res.stderr
        assert (lab.inbound("kr4"), lab.inbound("cn4")) == ("timeout", "timeout")

        # A mirror serving a file that fails its MD5: exit non-zero, firewall untouched.
        publish(site, DAY1, md5_of=DAY2)
        res = _run(lab, e, fmt)
        assert res.returncode == 65 and "MD5 mismatch" in res.stderr
        assert (lab.inbound("kr4"), lab.inbound("cn4")) == ("timeout", "timeout")

        if fmt == "nft":
            # After a reboot the table is gone though the state file is current: load again.
            publish(site, DAY2)
            lab.srv_sh("nft", "delete", "table", "inet", "krfilter")
            assert lab.inbound("cn4") == "ok"
            res = _run(lab, e, fmt)
            assert res.returncode == 0 and "reloaded" in res.stdout, res.stderr
            assert lab.inbound("cn4") == "timeout"
