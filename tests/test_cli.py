"""The command-line contract of issue 2: classify, filter options, learn, train, eval, config."""

import os
import re

import pytest

from conftest import SAMPLES, run_mailfilter, status_of

STATUS = re.compile(rb"^(SPAM|GOOD|UNSURE) \( (0\.00|[+-]\d+\.\d\d) \)\n$")


def sample(kind, name):
    with open(os.path.join(SAMPLES, "train", kind, name), "rb") as fh:
        return fh.read()


SPAM, GOOD = sample("spam", "01.eml"), sample("good", "01.eml")


def test_classify_prints_only_the_status(home):
    out = run_mailfilter(["classify"], GOOD, home)
    assert out.returncode == 0 and STATUS.match(out.stdout), out.stdout
    assert out.stdout == b"UNSURE ( 0.00 )\n"      # an empty model knows nothing


def test_state_directory_created_0700(home, tmp_path):
    run_mailfilter(["learn", "--good"], GOOD, home)
    assert os.stat(home).st_mode & 0o777 == 0o700
    for name in os.listdir(home):
        assert os.stat(os.path.join(home, name)).st_mode & 0o077 == 0, name


def test_home_option_beats_environment(home, tmp_path):
    other = tmp_path / "other"
    run_mailfilter(["learn", "--home", str(other), "--spam"], SPAM, home)
    assert os.path.exists(other / "model.mfm") and not os.path.exists(home / "model.mfm")


def test_learn_then_classify_and_idempotence(home):
    first = run_mailfilter(["learn", "--spam"], SPAM, home)
    assert first.returncode == 0 and first.stdout.startswith(b"learned as spam")
    assert run_mailfilter(["classify"], SPAM, home).stdout.startswith(b"SPAM")
    with open(home / "model.mfm", "rb") as fh:
        before = fh.read()
    again = run_mailfilter(["learn", "--spam"], SPAM, home)
    assert again.stdout.startswith(b"already learned as spam")
    with open(home / "model.mfm", "rb") as fh:
        assert fh.read() == before        # nothing changed, not even the generation


def test_learn_strips_our_headers_so_delivered_copy_is_the_same_message(home):
    run_mailfilter(["learn", "--spam"], SPAM, home)
    delivered = run_mailfilter([], SPAM, home).stdout
    assert status_of(delivered).startswith("SPAM")
    assert run_mailfilter(["learn", "--spam"], delivered, home).stdout.startswith(b"already learned")


def test_learn_opposite_label_corrects(home):
    run_mailfilter(["learn", "--spam"], GOOD, home)
    assert run_mailfilter(["classify"], GOOD, home).stdout.startswith(b"SPAM")
    fixed = run_mailfilter(["learn", "--good"], GOOD, home)
    assert fixed.stdout.startswith(b"corrected as good")
    assert run_mailfilter(["classify"], GOOD, home).stdout.startswith(b"GOOD")


def test_learn_requires_a_label(home):
    out = run_mailfilter(["learn"], GOOD, home)
    assert out.returncode == 64 and b"--spam" in out.stderr


def test_stats_only_and_exit_codes(home):
    run_mailfilter(["train", "--passes", "10", "--spam", os.path.join(SAMPLES, "train", "spam"),
                    "--good", os.path.join(SAMPLES, "train", "good")], b"", home)
    spam = run_mailfilter(["--stats-only", "--exit-code"], SPAM, home)
    assert spam.returncode == 0 and spam.stdout.startswith(b"SPAM ( -")
    good = run_mailfilter(["filter", "--exit-code"], GOOD, home)
    assert good.returncode == 1 and status_of(good.stdout).startswith("GOOD ( +")
    unsure = run_mailfilter(["--exit-code", "--home", str(home) + "-empty"], GOOD, home)
    assert unsure.returncode == 2 and b"X-CRM114-Notice: Please train this message." in unsure.stdout


def test_notice_only_on_unsure(home):
    run_mailfilter(["learn", "--spam"], SPAM, home)
    out = run_mailfilter([], SPAM, home).stdout
    assert b"X-CRM114-Notice" not in out
    assert re.search(rb"X-CRM114-CacheID: sfid-[0-9a-f]{16}\n", out)
    assert b"X-CRM114-Version: mailfilter " in out


def write_corpus(tmp_path, n_each=6):
    """A Maildir of good mail, an mbox of spam, and an index over single files."""
    maildir = tmp_path / "good-maildir"
    for sub in ("cur", "new", "tmp"):
        os.makedirs(maildir / sub)
    goods = sorted(os.listdir(os.path.join(SAMPLES, "train", "good")))[:n_each]
    spams = sorted(os.listdir(os.path.join(SAMPLES, "train", "spam")))[:n_each]
    for i, name in enumerate(goods):
        (maildir / "cur" / f"{i}.host:2,S").write_bytes(sample("good", name))
    mbox = tmp_path / "spam.mbox"
    with open(mbox, "wb") as fh:
        for name in spams:
            fh.write(b"From spammer@example Mon Sep  2 10:00:00 2024\n" + sample("spam", name) + b"\n")
    return maildir, mbox, goods, spams


def test_train_reads_maildir_and_mbox_and_repeats_passes(home, tmp_path):
    maildir, mbox, goods, spams = write_corpus(tmp_path)
    out = run_mailfilter(["train", "--passes", "10", "--spam", str(mbox), "--good", str(maildir)], b"", home)
    assert out.returncode == 0, out.stderr
    passes = re.findall(rb"pass (\d+): (\d+) messages, (\d+) not classified right", out.stderr)
    assert passes[0][1] == str(len(goods) + len(spams)).encode()
    assert passes[-1][2] == b"0"                   # stopped when a pass made no mistake
    for name in spams:
        assert run_mailfilter(["classify"], sample("spam", name), home).stdout.startswith(b"SPAM")
    for name in goods:
        assert run_mailfilter(["classify"], sample("good", name), home).stdout.startswith(b"GOOD")


def test_train_missing_path_is_a_clear_error(home, tmp_path):
    out = run_mailfilter(["train", "--spam", str(tmp_path / "nope")], b"", home)
    assert out.returncode == 66 and b"nope" in out.stderr


def write_index(tmp_path):
    lines = []
    for kind, judge in (("spam", "spam"), ("good", "ham")):
        for name in sorted(os.listdir(os.path.join(SAMPLES, "train", kind))):
            lines.append(f"{judge} {os.path.join(SAMPLES, 'train', kind, name)}")
    # Interleave so both classes appear early.
    lines = [l for pair in zip(lines[:6], lines[7:13]) for l in pair]
    index = tmp_path / "index"
    index.write_text("\n".join(lines) + "\n")
    return index, lines


def test_eval_writes_results_and_summary(tmp_path):
    index, lines = write_index(tmp_path)
    results = tmp_path / "results"
    out = run_mailfilter(["eval", str(index), "--results", str(results)], b"", None)
    assert out.returncode == 0, out.stderr
    rows = results.read_text().splitlines()
    assert len(rows) == len(lines)
    for row, line in zip(rows, lines):
        path, judge, score, verdict = row.split(" ")
        assert path == line.split(" ", 1)[1] and judge == "judge=" + line.split(" ")[0]
        float(score.split("=")[1])
        assert verdict.split("=")[1] in ("SPAM", "GOOD", "UNSURE")
    for label in (b"(1-ROCA)%", b"ham as spam %", b"spam as ham %", b"unsure %", b"messages/s"):
        assert label in out.stdout


def test_eval_scores_equal_classify_for_the_same_state(home, tmp_path):
    index, lines = write_index(tmp_path)
    head = tmp_path / "head"
    head.write_text("\n".join(lines[:-1]) + "\n")
    last = tmp_path / "last"
    last.write_text(lines[-1] + "\n")
    assert run_mailfilter(["eval", str(head), "--home", str(home), "--save"], b"", home).returncode == 0
    results = tmp_path / "results"
    assert run_mailfilter(["eval", str(last), "--home", str(home), "--results", str(results)], b"", home).returncode == 0
    score = float(results.read_text().split("score=")[1].split()[0])
    with open(lines[-1].split(" ", 1)[1], "rb") as fh:
        printed = run_mailfilter(["classify"], fh.read(), home).stdout.decode()
    pr = float(printed.split("(")[1].split(")")[0])
    assert round(-score, 2) == pytest.approx(pr, abs=0.006)
    assert printed.split()[0] == results.read_text().split("verdict=")[1].strip()


def test_eval_reads_a_huge_header_as_the_filter_does(home, tmp_path):
    """A 5 MiB header: eval must score the body behind it, as classify does
    (eval once read only the first 4 MiB and scored a message with no body)."""
    index, lines = write_index(tmp_path)
    assert run_mailfilter(["eval", str(index), "--home", str(home), "--save"], b"", home).returncode == 0
    with open(lines[0].split(" ", 1)[1], "rb") as fh:
        spam = fh.read()
    at = spam.index(b"\n\n") + 1
    message = spam[:at] + b"X-Padding: " + b"a" * (5 << 20) + b"\n" + spam[at:]
    (tmp_path / "huge").write_bytes(message)
    one = tmp_path / "one"
    one.write_text(f"spam {tmp_path / 'huge'}\n")
    results = tmp_path / "results"
    assert run_mailfilter(["eval", str(one), "--home", str(home), "--results", str(results)], b"", home).returncode == 0
    score = float(results.read_text().split("score=")[1].split()[0])
    printed = run_mailfilter(["classify"], message, home).stdout.decode()
    assert printed.startswith("SPAM")
    assert round(-score, 2) == pytest.approx(float(printed.split("(")[1].split(")")[0]), abs=0.006)


def test_eval_bad_index_names_file_and_line(tmp_path):
    index = tmp_path / "index"
    index.write_text("spam a\nmaybe b\n")
    out = run_mailfilter(["eval", str(index)], b"", None)
    assert out.returncode == 65 and f"{index}:2:".encode() in out.stderr


@pytest.mark.parametrize("text,complaint", [
    ("spam_threshold = lots\n", b":1: spam_threshold must be a number"),
    ("\n\nnonsense\n", b":3: expected 'key = value'"),
    ("colour = blue\n", b":1: unknown key 'colour'"),
])
def test_bad_config_is_one_clear_line(home, text, complaint):
    os.makedirs(home)
    (home / "mailfilter.conf").write_text(text)
    out = run_mailfilter(["learn", "--spam"], SPAM, home)
    assert out.returncode == 78
    assert complaint in out.stderr and str(home / "mailfilter.conf").encode() in out.stderr
    assert not os.path.exists(home / "model.mfm")         # changed nothing
    # The filter still delivers, marked UNSURE, and says why in the log.
    filtered = run_mailfilter([], SPAM, home)
    assert filtered.returncode == 0 and status_of(filtered.stdout) == "UNSURE ( 0.00 )"
    assert complaint in filtered.stderr


def test_thresholds_come_from_the_config(home):
    run_mailfilter(["learn", "--spam"], SPAM, home)
    pr = float(run_mailfilter(["classify"], SPAM, home).stdout.split(b"(")[1].split(b")")[0])
    (home / "mailfilter.conf").write_text(f"spam_threshold = {pr - 1:.2f}\ngood_threshold = 50\n")
    assert run_mailfilter(["classify"], SPAM, home).stdout.startswith(b"UNSURE")


def test_help_teaches():
    out = run_mailfilter(["--help"], b"", None)
    assert out.returncode == 0
    for word in (b"filter", b"classify", b"learn", b"train", b"eval", b".procmailrc"):
        assert word in out.stdout
    for command in ("filter", "classify", "learn", "train", "eval"):
        sub = run_mailfilter([command, "--help"], b"", None)
        assert sub.returncode == 0 and b"example" in sub.stdout.lower(), command


def test_unknown_command_is_usage_error():
    out = run_mailfilter(["frobnicate"], b"", None)
    assert out.returncode == 64 and b"unknown command" in out.stderr


@pytest.mark.parametrize("command", ["filter", "classify", "learn", "train", "eval", "krfilter",
                                     "sources", "drops", "submission", "relaytest", "demo", "serve", "milter"])
def test_every_command_exits_64_on_a_bad_option(command):
    """EX_USAGE for every usage error, as the README promises (argparse's own is 2)."""
    out = run_mailfilter([command, "--no-such-option"])
    assert out.returncode == 64, (out.returncode, out.stderr)
    assert b"error:" in out.stderr


def test_home_before_the_command_is_the_commands_home(home, tmp_path):
    """`mailfilter --home DIR classify` gave "unrecognized arguments: classify"."""
    other = tmp_path / "other"
    learned = run_mailfilter(["--home", str(other), "learn", "--spam"], SPAM, home)
    assert learned.returncode == 0, learned.stderr
    assert os.path.exists(other / "model.mfm") and not os.path.exists(home / "model.mfm")
    for args in (["--home", str(other), "classify"], [f"--home={other}", "classify"]):
        out = run_mailfilter(args, SPAM, home)
        assert out.returncode == 0 and out.stdout.startswith(b"SPAM"), (args, out.stderr)
    # Without a command it is still the filter's own option.
    assert status_of(run_mailfilter(["--home", str(other)], SPAM, home).stdout).startswith("SPAM")


@pytest.mark.parametrize("data", [b"", b"\n\n", b"  \r\n"])
def test_learn_refuses_an_empty_message(home, data):
    """`learn --spam < /dev/null` taught an empty message and recorded it."""
    out = run_mailfilter(["learn", "--spam"], data, home)
    assert out.returncode == 66, out
    assert b"no message on standard input" in out.stderr
    assert not os.path.exists(home / "model.mfm") and not os.path.exists(home / "ledger.sqlite")


def test_train_with_one_class_warns(home, tmp_path):
    spam_only = run_mailfilter(["train", "--spam", os.path.join(SAMPLES, "train", "spam")], b"", home)
    assert spam_only.returncode == 0, spam_only.stderr
    assert b"warning: the model has learned no good mail yet" in spam_only.stderr
    assert b"--good ~/Maildir" in spam_only.stderr
    both = run_mailfilter(["train", "--good", os.path.join(SAMPLES, "train", "good")], b"", home)
    assert both.returncode == 0 and b"warning" not in both.stderr, both.stderr


def test_help_and_readme_agree_on_what_good_mail_to_train():
    """Help said `--good ~/Maildir/cur` (which misses new/), README `~/Maildir`."""
    readme = open(os.path.join(os.path.dirname(SAMPLES), "..", "README.md")).read()
    texts = [readme] + [run_mailfilter(args, b"", None).stdout.decode()
                        for args in (["--help"], ["train", "--help"])]
    for text in texts:
        goods = set(re.findall(r"train [^\n]*--good (~/Maildir\S*)", text))
        assert goods == {"~/Maildir"}, goods
