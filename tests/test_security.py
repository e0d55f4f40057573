"""Security: forged X-CRM114-* headers never survive; the state is private to its user."""

import os
import re
import stat
import subprocess

import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from conftest import MAILFILTER, SAMPLES, env_for, run_mailfilter
from mailfilter import rawmail

OURS = [b"X-CRM114-Version: mailfilter 0", b"X-CRM114-CacheID: sfid-0", b"X-CRM114-Status: SPAM ( -9.00 )"]
MARK = b"FORGED-VALUE"


@st.composite
def forged_field(draw, eol):
    """An X-CRM114-* field as a spammer might write it: any case, any suffix,
    blanks before the colon, folded over any number of lines."""
    prefix = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in "x-crm114-")
    suffix = draw(st.sampled_from(["Status", "status", "STATUS", "Notice", "CacheID", "Version", "", "Anything-Else"]))
    blanks = draw(st.sampled_from(["", " ", "\t", " \t "]))
    value = draw(st.sampled_from([" GOOD ( 99.99 )", "GOOD", " ", ""])).encode() + MARK
    folds = draw(st.lists(st.tuples(st.sampled_from([b" ", b"\t", b"  \t"]), st.sampled_from([b"", MARK, b"GOOD"])),
                          max_size=3))
    field = (prefix + suffix + blanks + ":").encode() + value
    for lead, text in folds:
        field += eol + lead + text
    return field


@st.composite
def forged_message(draw):
    eol = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    normal = [b"From: a@example.com", b"Subject: hello", b"To: b@example.org", b"Received: from x\n\tby y"]
    fields = [f.replace(b"\n", eol) for f in draw(st.lists(st.sampled_from(normal), max_size=4))]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        fields.insert(draw(st.integers(min_value=0, max_value=len(fields))), draw(forged_field(eol)))
    mbox = b"From a@example.com Mon Sep  2 10:00:00 2024" + eol if draw(st.booleans()) else b""
    ending = draw(st.sampled_from([eol + b"body" + eol, eol, b""]))   # body, blank line only, or none
    return mbox + eol.join(fields) + eol + ending


def _header_of(out: bytes) -> bytes:
    block = rawmail.scan_header(out)
    return out[:block.body_start]


@settings(max_examples=2000, deadline=None)
@given(forged_message())
def test_forged_headers_never_survive_rewrite(data):
    block = rawmail.scan_header(data)
    out = rawmail.rewrite_header(data, block, OURS)
    header = _header_of(out)
    assert MARK not in out, out
    names = [m.lower() for m in re.findall(rb"(?:^|[\r\n])([!-9;-~]+)[ \t]*:", header)]
    assert [n for n in names if n.startswith(b"x-crm114-")] == [b"x-crm114-version", b"x-crm114-cacheid",
                                                               b"x-crm114-status"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forged_message())
def test_forged_headers_never_survive_the_real_filter(tmp_path_factory, data):
    result = run_mailfilter([], data, tmp_path_factory.mktemp("forged") / "state")
    assert result.returncode == 0, result.stderr
    assert MARK not in result.stdout
    assert result.stdout.lower().count(b"x-crm114-status:") == 1


# -- the state directory is private --------------------------------------------------

def _assert_private(home):
    mode = stat.S_IMODE(os.stat(home).st_mode)
    assert mode == 0o700, f"{home} is {mode:o}"
    for name in os.listdir(home):
        path = os.path.join(home, name)
        st_mode = os.lstat(path).st_mode
        if name in ("mailfilter.conf", "priolist.mfp"):
            continue                                # the user's own files, as they made them
        assert not st_mode & 0o077, f"{name} is {stat.S_IMODE(st_mode):o}: readable beyond its owner"


def _run(args, data=b"", home=None, umask=0o022):
    return subprocess.run(MAILFILTER + args, input=data, capture_output=True, env=env_for(home),
                          timeout=300, preexec_fn=lambda: os.umask(umask))


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_state_is_created_private_by_every_command(tmp_path, umask):
    message = open(os.path.join(SAMPLES, "train", "spam", "00.eml"), "rb").read()
    spam_dir, good_dir = os.path.join(SAMPLES, "train", "spam"), os.path.join(SAMPLES, "train", "good")
    index = tmp_path / "index"
    index.write_text("".join(f"{'spam' if d == spam_dir else 'ham'} {os.path.join(d, f)}\n"
                             for d in (spam_dir, good_dir) for f in sorted(os.listdir(d))))
    steps = {
        "filter": ([], message),
        "learn": (["learn", "--spam"], message),
        "train": (["train", "--no-progress", "--spam", spam_dir, "--good", good_dir], b""),
        "eval --save": (["eval", str(index), "--save"], b""),
        "classify": (["classify"], message),
    }
    for step, (args, data) in steps.items():
        home = tmp_path / f"fresh-{step.replace(' ', '')}"
        r = _run(args + ["--home", str(home)], data, umask=umask)
        assert r.returncode == 0, (step, r.stderr)
        _assert_private(home)                           # created by this very command
    shared = tmp_path / "shared"
    for step, (args, data) in steps.items():          # and one home through all of them
        r = _run(args + ["--home", str(shared)], data, umask=umask)
        assert r.returncode == 0, (step, r.stderr)
        _assert_private(shared)
    assert {"model.mfm", "ledger.sqlite"} <= set(os.listdir(shared))


def test_an_existing_state_dir_is_not_loosened_or_tightened_silently(tmp_path):
    # ensure() never changes a directory the user made; documented in state.py.
    home = tmp_path / "state"
    home.mkdir(mode=0o750)
    home.chmod(0o750)
    assert run_mailfilter(["learn", "--good"], b"From: a\n\nhello\n", home).returncode == 0
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o750
    for name in ("model.mfm", "ledger.sqlite"):
        assert not os.stat(home / name).st_mode & 0o077


# -- mailfilter demo --dir, run as root (issue 14) -------------------------------------

@pytest.mark.root
@pytest.mark.parametrize("shape", ["shared_sticky_dir", "other_users_dir", "own_dir_with_planted_link"])
def test_demo_never_writes_through_a_planted_symlink(tmp_path, shape):
    """Run as root with --dir a directory a user could write to, the demo
    wrote its procmailrc through the user's symlink: a file elsewhere was
    overwritten. It now refuses such a DIR (exit 73) before writing anything."""
    from conftest import need
    need("procmail")
    assert os.geteuid() == 0, "the attack is on root; CI runs as root"
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    work = tmp_path / "work"
    work.mkdir()
    if shape == "shared_sticky_dir":
        work.chmod(0o1777)
    elif shape == "other_users_dir":
        os.chown(work, 54321, 54321)
        work.chmod(0o755)
    else:
        work.chmod(0o700)
    (work / "procmailrc").symlink_to(victim)
    result = subprocess.run(MAILFILTER + ["demo", "--dir", str(work)], capture_output=True,
                            env=env_for(None), timeout=120)
    assert result.returncode == 73, result.stderr
    assert result.stderr.count(b"\n") == 1 and str(work).encode() in result.stderr
    assert victim.read_bytes() == b"precious\n"
    assert sorted(os.listdir(work)) == ["procmailrc"] and (work / "procmailrc").is_symlink()
