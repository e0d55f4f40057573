"""Fault injection: whatever breaks, the filter delivers the message, says why, exits as documented.

Every fault is real: a corrupted model file on disk, a directory root can't
write to (root with all capabilities dropped, since root ignores file modes),
a tmpfs filled to the last block in a private mount namespace, a stdout whose
reader is gone. The one stand-in is /dev/log: when the machine runs no
syslog daemon, the test binds its own socket there to read what is logged.
"""

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import threading

import pytest

from mailfilter.store import modelfile
from conftest import MAILFILTER, SAMPLES, assert_passthrough, env_for, need, run_mailfilter, status_of

MESSAGE = b"From: friend@example.com\nSubject: lunch\n\nSee you at noon.\n"
# Then where the cause was logged: the mail log, or the state directory's
# mailfilter.log without syslog (tests/test_logging.py).
FAILED_NOTICE = b"X-CRM114-Notice: mailfilter could not classify this message; see "
DROP_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]


def sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A state directory with a model trained on the samples: faults are injected into copies."""
    home = tmp_path_factory.mktemp("faults") / "state"
    subprocess.run(MAILFILTER + ["train", "--home", str(home), "--no-progress", "--passes", "3",
                                 "--spam", os.path.join(SAMPLES, "train", "spam"),
                                 "--good", os.path.join(SAMPLES, "train", "good")],
                   check=True, capture_output=True, env=env_for(home))
    return home


@pytest.fixture
def home(trained, tmp_path):
    copy = tmp_path / "state"
    shutil.copytree(trained, copy)
    return copy


def assert_failed_open(result, data=MESSAGE, cause=b""):
    """Delivered unchanged plus UNSURE ( 0.00 ) and the notice; logged; exit 0."""
    assert result.returncode == 0, result.stderr
    assert_passthrough(data, result.stdout)
    assert status_of(result.stdout) == "UNSURE ( 0.00 )"
    assert FAILED_NOTICE in result.stdout
    assert b"mailfilter: message passed through unclassified" in result.stderr, result.stderr
    assert cause in result.stderr, result.stderr


def assert_classified(result, data=MESSAGE):
    assert result.returncode == 0, result.stderr
    assert_passthrough(data, result.stdout)
    assert FAILED_NOTICE not in result.stdout, result.stderr


def test_the_trained_model_classifies(home):
    assert_classified(run_mailfilter([], MESSAGE, home))


# -- the model file ------------------------------------------------------------------

def _truncate(n):
    return lambda raw: raw[:n]


def _set_u32(offset, value):
    return lambda raw: raw[:offset] + struct.pack("<I", value) + raw[offset + 4:]


MODEL_FAULTS = {
    "empty": (lambda raw: b"", b"truncated"),
    "truncated_in_header": (_truncate(10), b"truncated"),
    "truncated_in_weights": (_truncate(100_000), b"expected"),
    "one_byte_short": (lambda raw: raw[:-1], b"expected"),
    "one_byte_long": (lambda raw: raw + b"\0", b"expected"),
    "zeroed": (lambda raw: bytes(len(raw)), b"bad magic"),
    "random_bytes": (lambda raw: os.urandom(len(raw)), b"bad magic"),
    "older_version": (_set_u32(8, 1), b"model file format 1"),
    "newer_version": (_set_u32(8, modelfile.FORMAT + 1), b"model file format"),
    # Written by another tokenizer: refused with the way out, never misread.
    "other_feature_version": (_set_u32(40, 99), b"model written by features v99, this is v"),
    "other_feature_settings": (_set_u32(44, 12345), b"with other settings, this is v"),
    "bits_out_of_range": (_set_u32(12, 40), b"out of range"),
    "bits_disagree_with_size": (_set_u32(12, 12), b"expected"),
}


@pytest.mark.parametrize("fault", sorted(MODEL_FAULTS))
def test_corrupt_model_passes_mail_through(fault, home):
    damage, cause = MODEL_FAULTS[fault]
    model = home / "model.mfm"
    model.write_bytes(damage(model.read_bytes()))
    before = sha(model)
    assert_failed_open(run_mailfilter([], MESSAGE, home), cause=cause)
    # learn refuses (EX_DATAERR) rather than overwrite what may be the user's only model.
    learn = run_mailfilter(["learn", "--spam"], MESSAGE, home)
    assert learn.returncode == 65, learn.stderr
    assert b"Traceback" not in learn.stderr and b"not learned" in learn.stderr
    assert sha(model) == before


def test_model_that_is_a_directory(home):
    (home / "model.mfm").unlink()
    (home / "model.mfm").mkdir()
    assert_failed_open(run_mailfilter([], MESSAGE, home))


def test_model_symlink_is_refused(home, tmp_path):
    # O_NOFOLLOW: a link planted in the state dir can't point the filter elsewhere.
    real = tmp_path / "elsewhere.mfm"
    (home / "model.mfm").rename(real)
    (home / "model.mfm").symlink_to(real)
    assert_failed_open(run_mailfilter([], MESSAGE, home))


@pytest.mark.root
def test_unreadable_model(home):
    (home / "model.mfm").chmod(0)
    assert_failed_open(_run_without_caps([], MESSAGE, home), cause=b"Permission denied")


# -- the state directory ------------------------------------------------------------

def _run_without_caps(args, data, home):
    """As root, but with every capability dropped: file modes apply to us."""
    need("setpriv")
    assert os.geteuid() == 0, "this test drops root's capabilities; CI runs as root"
    return subprocess.run(DROP_CAPS + MAILFILTER + list(args), input=data, capture_output=True,
                          env=env_for(home), timeout=120)


@pytest.mark.root
def test_state_dir_that_cannot_be_created(tmp_path):
    parent = tmp_path / "readonly"
    parent.mkdir(mode=0o555)
    parent.chmod(0o555)
    assert_failed_open(_run_without_caps([], MESSAGE, parent / "state"), cause=b"Permission denied")
    assert not (parent / "state").exists()


@pytest.mark.root
def test_read_only_state_dir_still_classifies_and_learn_fails_cleanly(home):
    before = sha(home / "model.mfm")
    home.chmod(0o500)
    try:
        assert_classified(_run_without_caps([], MESSAGE, home))
        learn = _run_without_caps(["learn", "--spam"], MESSAGE, home)
        assert learn.returncode == 75, learn.stderr
        assert b"Traceback" not in learn.stderr and b"could not save" in learn.stderr
    finally:
        home.chmod(0o700)
    assert sha(home / "model.mfm") == before


def test_state_path_is_a_file(tmp_path):
    path = tmp_path / "state"
    path.write_text("not a directory")
    assert_failed_open(run_mailfilter([], MESSAGE, path))
    assert_failed_open(run_mailfilter([], MESSAGE, path / "below"), cause=b"Not a directory")


def _without_home(args, data, cwd, home_value=None, no_passwd=False):
    """Run with HOME unset (or set to home_value) and no MAILFILTER_HOME.
    no_passwd: as a uid with no passwd entry, made real by a user namespace
    mapping uid 54321 (the process still is root outside it, so it can run
    the interpreter under /root)."""
    env = env_for(None)
    env.pop("HOME", None)
    if home_value is not None:
        env["HOME"] = home_value
    prefix = []
    if no_passwd:
        need("unshare")
        import pwd
        with pytest.raises(KeyError):
            pwd.getpwuid(54321)
        prefix = ["unshare", "--user", "--map-user=54321", "--map-group=54321"]
    return subprocess.run(prefix + MAILFILTER + list(args), input=data, capture_output=True, env=env,
                          cwd=cwd, timeout=120)


@pytest.mark.parametrize("how", ["no_passwd_entry", "relative_home"])
def test_no_usable_home_is_refused_not_a_relative_state_dir(tmp_path, how):
    """Issue 14: with HOME unset and no passwd entry, expanduser("~") is "~",
    and the state directory became ./~/.mailfilter wherever we ran."""
    kw = {"no_passwd_entry": dict(no_passwd=True), "relative_home": dict(home_value="somewhere")}[how]
    learn = _without_home(["learn", "--spam"], MESSAGE, tmp_path, **kw)
    assert learn.returncode == 78, learn.stderr
    assert learn.stderr.count(b"\n") == 1 and b"no home directory for uid" in learn.stderr
    assert_failed_open(_without_home([], MESSAGE, tmp_path, **kw), cause=b"no home directory")
    assert os.listdir(tmp_path) == []           # no ./~/.mailfilter, no ./.mailfilter


# -- config and rules ------------------------------------------------------------------

@pytest.mark.parametrize("config", [b"spam_threshold = banana\n", b"no equals sign\n", b"nosuchkey = 1\n",
                                    b"spam_threshold = 5\ngood_threshold = 1\n", b"model_bits = 99\n"])
def test_bad_config_passes_mail_through(home, config):
    (home / "mailfilter.conf").write_bytes(config)
    assert_failed_open(run_mailfilter([], MESSAGE, home), cause=b"mailfilter.conf")


# Issue 14: one of these once destroyed the model for good (-inf, nan, -1e40
# were accepted, and the next learn wrote non-finite weights).
OUT_OF_RANGE = [b"spam_threshold = -inf\n", b"spam_threshold = -1e40\n", b"spam_threshold = nan\n",
                b"good_threshold = inf\n", b"learn_margin = nan\n", b"learn_margin = -1\n",
                b"max_text_bytes = -5\n", b"model_bits = 9\n", b"cache_max_messages = -1\n",
                b"cache_max_mb = inf\n"]


@pytest.mark.parametrize("config", OUT_OF_RANGE, ids=lambda c: c.decode().strip())
def test_out_of_range_setting_is_refused_with_its_line(home, config):
    (home / "mailfilter.conf").write_bytes(b"# mine\n" + config)
    key = config.split(b" ")[0]
    conf = str(home / "mailfilter.conf").encode()
    assert_failed_open(run_mailfilter([], MESSAGE, home), cause=conf + b":2: " + key + b" must be between")
    before = sha(home / "model.mfm")
    learn = run_mailfilter(["learn", "--spam"], SPAM_NOT_SEEN, home)
    assert learn.returncode == 78, learn.stderr
    assert learn.stderr.count(b"\n") == 1 and conf + b":2: " + key in learn.stderr
    assert sha(home / "model.mfm") == before


SPAM_NOT_SEEN = open(os.path.join(SAMPLES, "inbox", "2-spam.eml"), "rb").read()
GOOD_SAMPLE = open(os.path.join(SAMPLES, "train", "good", "00.eml"), "rb").read()


def test_minus_inf_threshold_can_no_longer_destroy_the_model(home):
    """The issue's reproduction: spam_threshold = -inf, learn a new spam,
    remove the line, classify good mail (it said SPAM ( -inf ) for good)."""
    (home / "mailfilter.conf").write_text("spam_threshold = -inf\n")
    assert run_mailfilter(["learn", "--spam"], SPAM_NOT_SEEN, home).returncode == 78
    (home / "mailfilter.conf").unlink()
    out = run_mailfilter(["classify"], GOOD_SAMPLE, home)
    assert out.returncode == 0 and out.stdout.startswith(b"GOOD"), out.stdout


def test_learner_never_writes_a_non_finite_weight_whatever_the_settings(home):
    """Settings that bypass the config file (the library's Config) still
    can't get a non-finite weight saved: the session refuses, nothing changes."""
    from mailfilter.learning import learn_messages
    from mailfilter.state import Config, State
    before = sha(home / "model.mfm")
    for bad in (dict(spam_threshold=float("-inf")), dict(spam_threshold=-1e40), dict(spam_threshold=float("nan"))):
        with pytest.raises(modelfile.ModelError, match="infinite or NaN"):
            learn_messages(State(str(home)), Config(**bad), [(SPAM_NOT_SEEN, True)])
        assert sha(home / "model.mfm") == before


def _poison(model_path, index=7, value=float("-inf")):
    data = bytearray(model_path.read_bytes())
    struct.pack_into("<f", data, modelfile.HEADER.size + 4 * index, value)
    model_path.write_bytes(bytes(data))


def test_model_holding_a_non_finite_weight_is_refused(home):
    """Written by an older mailfilter: learn refuses it with one line (it
    died with a ZeroDivisionError traceback), the filter delivers UNSURE."""
    _poison(home / "model.mfm", index=0)            # the bias: every message scores -inf
    before = sha(home / "model.mfm")
    assert_failed_open(run_mailfilter([], MESSAGE, home), cause=b"infinite or NaN")
    learn = run_mailfilter(["learn", "--good"], GOOD_SAMPLE, home)
    assert learn.returncode == 65, learn.stderr
    assert b"Traceback" not in learn.stderr and b"infinite or NaN" in learn.stderr
    assert b"mailfilter rebuild" in learn.stderr
    assert sha(home / "model.mfm") == before


def test_unreadable_config_passes_mail_through(home):
    (home / "mailfilter.conf").mkdir()
    assert_failed_open(run_mailfilter([], MESSAGE, home), cause=b"cannot read")


@pytest.mark.parametrize("name", ["mailfilter.conf", "model.mfm", "priolist.mfp"])
def test_fifo_in_the_state_dir_does_not_hang_the_filter(home, name):
    """Issue 14: `mkfifo ~/.mailfilter/priolist.mfp` (or the config, or the
    model) hung the filter in open() waiting for a writer. Only regular
    files are read, opened without blocking."""
    path = home / name
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    result = run_mailfilter([], MESSAGE, home, timeout=20)
    if name == "priolist.mfp":
        assert_classified(result)       # no rules, as for an unreadable file
        assert b"priolist.mfp: cannot read: not a regular file" in result.stderr
    else:
        assert_failed_open(result, cause=b"not a regular file")
    learn = run_mailfilter(["learn", "--spam"], MESSAGE, home, timeout=20)
    assert b"Traceback" not in learn.stderr
    assert learn.returncode == {"mailfilter.conf": 78, "model.mfm": 65, "priolist.mfp": 0}[name], learn.stderr


@pytest.mark.parametrize("name", ["ledger.sqlite", "cache.sqlite", "model.lock"])
def test_fifo_beside_the_model_does_not_hang_learn(home, name):
    path = home / name
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    before = sha(home / "model.mfm")
    learn = run_mailfilter(["learn", "--spam"], MESSAGE, home, timeout=20)
    assert learn.returncode == 75, learn.stderr
    assert b"not a regular file" in learn.stderr and b"Traceback" not in learn.stderr
    assert sha(home / "model.mfm") == before


def test_missing_rules_file_is_no_rules(home):
    assert not (home / "priolist.mfp").exists()
    result = run_mailfilter([], MESSAGE, home)
    assert_classified(result)
    assert result.stderr == b""


def test_bad_rule_is_reported_by_line_and_the_others_stay_in_force(home):
    (home / "priolist.mfp").write_bytes(b"# rules\n-([unclosed\n-^Subject: lunch\n\xff\xfe junk line\n")
    result = run_mailfilter([], MESSAGE, home)
    assert_classified(result)
    assert b"priolist.mfp:2: bad regex" in result.stderr
    assert b"priolist.mfp:4:" in result.stderr
    assert status_of(result.stdout) == "SPAM ( -999.99 )"      # rule 3 still applies


# Issue 14: a ${RECIPIENT} rule that is fine at load time but invalid for
# some recipients raised re.error at match time: the whole message went
# UNSURE ( 0.00 ) and the rules after it were skipped. The recipient comes
# from Delivered-To when $RECIPIENT is unset: the sender's own text.
@pytest.mark.parametrize("rule,recipient", [
    (r"-^X-Tag: \${RECIPIENT}", "quux@example.org"),          # \q: bad escape
    (r"-^X-Tag: (a)\1${RECIPIENT}", "0day@example.org"),       # \10: no such group
])
def test_recipient_rule_that_cannot_compile_is_skipped_and_logged(rule, recipient, home):
    (home / "priolist.mfp").write_text(f"{rule}\n-^Subject: lunch\n")
    message = f"Delivered-To: {recipient}\n".encode() + MESSAGE
    result = run_mailfilter([], message, home)
    assert_classified(result, message)
    assert status_of(result.stdout) == "SPAM ( -999.99 )"      # the next rule still applies
    assert f"priolist.mfp:1: rule skipped for recipient '{recipient}'".encode() in result.stderr


def test_unreadable_rules_file_is_reported_and_mail_classified(home):
    (home / "priolist.mfp").mkdir()
    result = run_mailfilter([], MESSAGE, home)
    assert_classified(result)
    assert b"priolist.mfp: cannot read" in result.stderr


# -- stdout ----------------------------------------------------------------------------

BIG = b"From: a@example.com\nSubject: big\n\n" + b"0123456789abcdef" * (4 << 16)     # 4 MiB


@pytest.mark.parametrize("data", [MESSAGE, BIG], ids=["small", "4MiB"])
def test_stdout_reader_gone_exits_75(home, data):
    read_end, write_end = os.pipe()
    os.close(read_end)                      # nobody will ever read the output
    try:
        result = subprocess.run(MAILFILTER, input=data, stdout=write_end, stderr=subprocess.PIPE,
                                env=env_for(home), timeout=120)
    finally:
        os.close(write_end)
    assert result.returncode == 75, result.stderr
    assert b"exit 75" in result.stderr


def test_stdout_reader_leaves_midway_exits_75(home):
    proc = subprocess.Popen(MAILFILTER, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_for(home))

    def feed():
        try:
            proc.stdin.write(BIG)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    assert proc.stdout.read(100_000)        # part of it arrived...
    proc.stdout.close()                     # ...then the reader is gone
    assert proc.wait(timeout=120) == 75
    feeder.join()
    assert b"exit 75" in proc.stderr.read()


def test_stdout_disk_full_exits_75(home):
    with open("/dev/full", "wb") as full:
        result = subprocess.run(MAILFILTER, input=BIG, stdout=full, stderr=subprocess.PIPE,
                                env=env_for(home), timeout=120)
    assert result.returncode == 75, result.stderr


def test_stdout_closed_exits_75(home):
    result = subprocess.run(MAILFILTER, input=MESSAGE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env_for(home), timeout=120, preexec_fn=lambda: os.close(1))
    assert result.returncode == 75, result.stderr


# -- the disk fills up -----------------------------------------------------------------

DISK_FULL = textwrap.dedent("""\
    set -u
    mount -t tmpfs -o size=512k,mode=0755 tmpfs "$MNT" || exit 90
    cp -a "$SRC" "$MNT/state"
    dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
    [ "$LEAVE" -gt 0 ] && truncate -s "-$LEAVE" "$MNT/fill"
    sha256sum < "$MNT/state/model.mfm" > "$OUT/before"
    df -k "$MNT" | tail -1 > "$OUT/df"
    "$PY" -m mailfilter learn --spam --home "$MNT/state" < "$OUT/message" > "$OUT/learn.out" 2> "$OUT/learn.err"
    echo $? > "$OUT/learn.rc"
    "$PY" -m mailfilter train --no-progress --home "$MNT/state" --spam "$SPAM" --good "$GOOD" \\
        > "$OUT/train.out" 2> "$OUT/train.err"
    echo $? > "$OUT/train.rc"
    "$PY" -m mailfilter --home "$MNT/state" < "$OUT/message" > "$OUT/filter.out" 2> "$OUT/filter.err"
    echo $? > "$OUT/filter.rc"
    sha256sum < "$MNT/state/model.mfm" > "$OUT/after"
    ls -a "$MNT/state" > "$OUT/ls"
    # Last, so it can't change what the checks above compare.
    "$PY" -m mailfilter eval "$OUT/index" --home "$MNT/state" --save > "$OUT/eval.out" 2> "$OUT/eval.err"
    echo $? > "$OUT/eval.rc"
    umount "$MNT"
""")


@pytest.mark.root
@pytest.mark.parametrize("leave", [0, 16_000, 70_000], ids=["no_space", "16KB_free", "70KB_free"])
def test_disk_full_learn_and_train_fail_cleanly_model_intact(tmp_path, leave):
    """A 512 KiB tmpfs in a private mount namespace, filled with `dd` but for
    `leave` bytes: nothing free at all (SQLite fails first), a little (the
    ledger's WAL fails), or enough for the ledger but not the 32 KiB model."""
    need("unshare")
    assert os.geteuid() == 0, "mounting a tmpfs needs root; CI runs as root"
    src = tmp_path / "src"
    src.mkdir(mode=0o700)
    (src / "mailfilter.conf").write_text("model_bits = 12\n")       # a 32 KiB model fits the tmpfs
    assert run_mailfilter(["learn", "--good"], MESSAGE, src).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "message").write_bytes(MESSAGE)
    (out / "index").write_text(f"spam {out / 'message'}\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = env_for(src)
    # $PY: the interpreter running the tests (the venv's), never a bare
    # python3 from PATH, which on a fresh Debian lacks our dependencies.
    env.update(PY=sys.executable, MNT=str(mnt), SRC=str(src), OUT=str(out), LEAVE=str(leave),
               SPAM=os.path.join(SAMPLES, "train", "spam"), GOOD=os.path.join(SAMPLES, "train", "good"))
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", DISK_FULL],
                          env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    read = lambda name: (out / name).read_bytes()
    free_kb = int(read("df").split()[3])
    assert free_kb * 1024 <= leave + 4096, read("df")
    # learn: either it fit (the tiny message) or it failed cleanly with 75.
    learn_rc = int(read("learn.rc"))
    assert learn_rc in (0, 75) and b"Traceback" not in read("learn.err"), read("learn.err")
    if leave < 70_000:
        assert learn_rc == 75 and b"could not save" in read("learn.err")
    # train rewrites the whole model: never fits.
    assert int(read("train.rc")) == 75, read("train.err")
    assert b"Traceback" not in read("train.err") and b"nothing changed" in read("train.err")
    # eval --save: the run is reported, the save fails with one line and 75.
    eval_rc = int(read("eval.rc"))
    assert eval_rc in (0, 75) and b"Traceback" not in read("eval.err"), read("eval.err")
    assert b"(1-ROCA)%" in read("eval.out")
    if leave < 70_000:
        assert eval_rc == 75 and b"could not save the model" in read("eval.err")
    # The old model is intact and no temporary file is left behind.
    if learn_rc == 75:
        assert read("before") == read("after")
    assert not [n for n in read("ls").split() if b".tmp." in n], read("ls")
    # The filter still delivers, classified on the intact model.
    assert int(read("filter.rc")) == 0, read("filter.err")
    assert_passthrough(MESSAGE, read("filter.out"))
    assert FAILED_NOTICE not in read("filter.out")


# -- the log goes to syslog, mail facility ---------------------------------------------

@pytest.mark.root
def test_failure_is_logged_to_syslog_mail_facility(home, tmp_path):
    (home / "model.mfm").write_bytes(b"garbage")
    need("unshare")
    sock_path = tmp_path / "log.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sock_path))
    receiver.settimeout(10)
    try:
        if os.path.exists("/dev/log"):
            # A real syslogd: shadow its socket in a private mount namespace only.
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                   f'mount --bind "{sock_path}" /dev/log && exec "$@"', "sh"] + MAILFILTER
            created = False
        else:
            # No syslogd on this machine: stand in for it at /dev/log.
            os.symlink(sock_path, "/dev/log")
            cmd, created = MAILFILTER, True
        try:
            result = subprocess.run(cmd, input=MESSAGE, capture_output=True, env=env_for(home), timeout=120)
            assert_failed_open(result)
            messages = []
            while not any(b"passed through unclassified" in m for m in messages):
                messages.append(receiver.recv(65536))
        finally:
            if created:
                os.unlink("/dev/log")
    finally:
        receiver.close()
    line = next(m for m in messages if b"passed through unclassified" in m)
    # <priority> = facility LOG_MAIL (2) * 8 + LOG_ERR (3)
    assert line.startswith(b"<19>"), line
    assert b"mailfilter[" in line and b"truncated model file" in line, line
