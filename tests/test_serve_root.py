"""`mailfilter serve` as root for a whole server, with two real users (useradd).

One message is taught as spam to alice's model and as good to bob's, so its
verdict tells whose model classified it. Proves that spamc run by each user
gets that user's own model; that asking for the other user's model is
refused (the message passes through unchanged, the other model is neither
read nor changed); that the workers run as the users and what TELL writes
belongs to them; that a planted symlink to the other user's state can't be
followed (the kernel says no to the worker running as the user); and that a
corrupt model for one user leaves the other's mail classified.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import SAMPLES, env_for, need, run_mailfilter, status_of
from mailfilter.state import DEFAULT_DIR, LEGACY_DIR
from serve_daemon import SPAMC_MAX, Daemon

pytestmark = pytest.mark.root

MESSAGE = (b"From: shop@example.net\nTo: someone@example.org\nSubject: quarterly catalogue\n\n"
           b"our quarterly catalogue of garden furniture is out, with prices for members\n")


def spamc_as(pw, socket_path, args=(), data=MESSAGE, user=None):
    argv = [need("setpriv"), f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
            need("spamc"), "-U", socket_path, "-s", SPAMC_MAX]
    if user:
        argv += ["-u", user]
    return subprocess.run(argv + list(args), input=data, capture_output=True, timeout=60)


def state_of(pw):
    """Where pw's pipe filter keeps its state: the daemon must use the same."""
    return os.path.join(pw.pw_dir, DEFAULT_DIR)


def teach(pw, label, data=MESSAGE):
    """A model for pw that has learned data as label, trained by root as
    that user (--user), as an admin would set one up."""
    home = state_of(pw)
    for sample_label in ("spam", "good"):
        r = run_mailfilter(["train", "--user", pw.pw_name, "--home", home, "--no-progress", "--passes", "5",
                            f"--{sample_label}", os.path.join(SAMPLES, "train", sample_label)], b"")
        assert r.returncode == 0, r.stderr
    for _ in range(3):
        r = run_mailfilter(["learn", "--user", pw.pw_name, "--home", home, f"--{label}"], data)
        assert r.returncode == 0, r.stderr
    return home


def digest(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.fixture
def public_dir():
    # The socket's directory must be reachable by the test users (pytest's
    # tmp_path is under a 0700 directory of root's).
    path = tempfile.mkdtemp(prefix="mf-serve-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def worker_uids(daemon):
    uids = set()
    for pid in daemon.worker_pids():
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("Uid:"):
                    uids.add(tuple(int(x) for x in line.split()[1:4]))
    return uids


def test_each_user_gets_only_their_own_model(two_users, public_dir):
    from pathlib import Path
    alice, bob = two_users
    teach(alice, "spam")
    teach(bob, "good")
    with Daemon(Path(public_dir), env=env_for(None)) as d:
        os.chmod(public_dir, 0o755)
        a = spamc_as(alice, d.socket)                 # spamc sends the caller's name as User
        b = spamc_as(bob, d.socket)
        assert status_of(a.stdout).startswith("SPAM"), a
        assert status_of(b.stdout).startswith("GOOD"), b
        # The workers that opened those models are the users themselves.
        assert worker_uids(d) == {(alice.pw_uid,) * 3, (bob.pw_uid,) * 3}
        # and made no state directory of their own beside the users' (one at
        # ~/.mailfilter, maildrop's file name, would take over as the legacy one).
        assert not os.path.exists(os.path.join(alice.pw_dir, LEGACY_DIR))

        # Alice asks for bob's model: refused, the message passes through as
        # it came (spamc's safe fallback), and the refusal is logged.
        bob_model = os.path.join(state_of(bob), "model.mfm")
        before = digest(bob_model)
        snoop = spamc_as(alice, d.socket, user=bob.pw_name)
        assert (snoop.returncode, snoop.stdout) == (0, MESSAGE)
        assert spamc_as(alice, d.socket, ["-c"], user=bob.pw_name).stdout == b"0/0\n"
        assert f"uid {alice.pw_uid} asked for {bob.pw_name}'s model" in d.log()
        poison = spamc_as(alice, d.socket, ["-L", "spam"], user=bob.pw_name)
        assert poison.returncode != 0
        assert digest(bob_model) == before
        assert status_of(spamc_as(bob, d.socket).stdout).startswith("GOOD")

        # Root may ask for anyone's (procmail run by root, the admin).
        root = subprocess.run([need("spamc"), "-U", d.socket, "-u", alice.pw_name, "-c"],
                              input=MESSAGE, capture_output=True, timeout=60)
        assert root.returncode == 1, root

        # TELL as alice writes alice's files, owned by alice.
        other = b"From: mum@example.org\nSubject: sunday\n\nlunch at ours on sunday, bring the kids\n"
        r = spamc_as(alice, d.socket, ["-L", "ham"], other)
        assert r.stdout == b"Message successfully un/learned\n", r
        for name in ("model.mfm", "ledger.sqlite"):
            st = os.stat(os.path.join(state_of(alice), name))
            assert (st.st_uid, st.st_gid) == (alice.pw_uid, alice.pw_gid), name

        # Bob swaps his state directory for a symlink to alice's: his worker,
        # running as bob, can't open her 0700 directory, so his mail goes
        # through UNSURE ( 0.00 ) and nothing of hers is read.
        shutil.move(state_of(bob), state_of(bob) + ".old")
        os.symlink(state_of(alice), state_of(bob))
        os.lchown(state_of(bob), bob.pw_uid, bob.pw_gid)
        hijack = spamc_as(bob, d.socket)
        assert status_of(hijack.stdout) == "UNSURE ( 0.00 )", hijack.stdout[-400:]
        assert b"X-CRM114-Notice: mailfilter could not classify" in hijack.stdout
        os.unlink(state_of(bob))
        shutil.move(state_of(bob) + ".old", state_of(bob))

        # A corrupt model for alice: her mail UNSURE ( 0.00 ), bob's unaffected.
        alice_model = os.path.join(state_of(alice), "model.mfm")
        with open(alice_model, "r+b") as fh:
            fh.write(b"garbage!")
        broken = spamc_as(alice, d.socket)
        assert status_of(broken.stdout) == "UNSURE ( 0.00 )"
        assert status_of(spamc_as(bob, d.socket).stdout).startswith("GOOD")
        assert "not a mailfilter model" in d.log()


def test_unknown_user_is_refused_and_the_message_passes(two_users, public_dir):
    from pathlib import Path
    alice, _ = two_users
    with Daemon(Path(public_dir), env=env_for(None)) as d:
        r = spamc_as(alice, d.socket, user="no-such-user-here")
        assert (r.returncode, r.stdout) == (0, MESSAGE)
        assert "no such user 'no-such-user-here'" in d.log()


def test_trusted_user_may_ask_for_others(two_users, public_dir):
    from pathlib import Path
    alice, bob = two_users
    teach(alice, "spam")
    with Daemon(Path(public_dir), args=["--trusted-user", bob.pw_name], env=env_for(None)) as d:
        r = spamc_as(bob, d.socket, ["-c"], user=alice.pw_name)
        assert r.returncode == 1, r


def test_a_hostile_user_header_does_not_stop_the_server(two_users, public_dir):
    from pathlib import Path
    from test_serve_spamc import raw_request
    alice, bob = two_users
    teach(bob, "good")
    with Daemon(Path(public_dir), env=env_for(None)) as d:
        for head in (b"User: a\0b\r\n", b"User: " + b"x" * 5000 + b"\r\n", b"User: ../../etc\r\n"):
            answer = raw_request(d.socket, b"CHECK SPAMC/1.5\r\n" + head + b"Content-length: 3\r\n\r\nhi\n")
            assert answer.startswith(b"SPAMD/1.5 67 "), answer
        assert status_of(spamc_as(bob, d.socket).stdout).startswith("GOOD")
        assert d.proc.poll() is None
