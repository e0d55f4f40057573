"""Japanese mail, fairly (issue 10, item 5), on the synthetic cases in
tests/fixtures/japanese (its README says what each one is).

A user's model learns mostly English mail: the English samples of
mailfilter/samples/train and generated English mail (englishmail.py), with
`mailfilter train`. Then the user reports a few Japanese spam (the four in
seed-spam.txt, `mailfilter learn --spam`), and every other Japanese case is
classified with `mailfilter classify`, a process each, as procmail runs it.
All through the real command line, on a private state directory.

What is pinned, as counts with room to spare (bench/japanese.py prints the
figures; README "Japanese and other charsets" has them):
  * no Japanese good message is ever marked SPAM: with English alone, after
    the Japanese spam, and after the user teaches two Japanese good ones;
  * Japanese mailing-list mail is GOOD on the English model (list headers
    the English lists taught), and some of it still is after the spam;
  * teaching the spam moves new Japanese spam toward SPAM, and no new
    Japanese spam is marked GOOD;
  * once the user has taught two of their UNSURE Japanese good messages,
    most Japanese good mail is GOOD again.
What is not pinned, because today's learner does not do it (measured, see
the README): new Japanese spam marked SPAM after only four Japanese spam,
and Japanese good mail unmoved by them: four Japanese spam lower Japanese
good mail about as much as new Japanese spam.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import FIXTURES, REPO, SAMPLES, env_for, run_mailfilter
import englishmail

JA = os.path.join(FIXTURES, "japanese")


def _listing(folder):
    path = os.path.join(JA, folder)
    return sorted(os.path.join(path, name) for name in os.listdir(path) if name.endswith(".eml"))


GOOD = _listing("good")
SPAM = _listing("spam")
with open(os.path.join(JA, "seed-spam.txt"), encoding="utf-8") as _fh:
    SEEDS = [os.path.join(JA, "spam", line.strip()) for line in _fh if line.strip() and not line.startswith("#")]
NEW_SPAM = [path for path in SPAM if path not in SEEDS]
LISTS = [path for path in GOOD if os.path.basename(path).startswith("ml-")]


def classify_all(home, paths):
    """{file name: (label, pR)}."""
    out = {}
    for path in paths:
        with open(path, "rb") as fh:
            done = run_mailfilter(["classify", "--home", str(home)], fh.read())
        assert done.returncode == 0, done.stderr
        label, _, rest = done.stdout.decode().partition(" ( ")
        out[os.path.basename(path)] = (label, float(rest.split(" )")[0]))
    return out


def learn(home, paths, spam):
    for path in paths:
        with open(path, "rb") as fh:
            done = run_mailfilter(["learn", "--home", str(home), "-q", "--spam" if spam else "--good"], fh.read())
        assert done.returncode == 0, done.stderr


def labels(verdicts):
    return [label for label, _ in verdicts.values()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The three moments of the story, each classified: English only,
    after the Japanese spam, after two Japanese good taught as well."""
    root = tmp_path_factory.mktemp("japanese")
    corpus = {True: root / "english-spam", False: root / "english-good"}
    for folder in corpus.values():
        folder.mkdir()
    for name, raw, is_spam in englishmail.corpus(good=150, spam=100):
        (corpus[is_spam] / name).write_bytes(raw)
    for label, is_spam in (("good", False), ("spam", True)):
        folder = os.path.join(SAMPLES, "train", label)
        for name in os.listdir(folder):
            if "-ja" not in name:           # English only: the samples' Japanese mail stays out
                shutil.copy(os.path.join(folder, name), corpus[is_spam] / f"sample-{name}")
    home = root / "home"
    done = run_mailfilter(["train", "--home", str(home), "--no-progress", "--seed", "1",
                           "--good", str(corpus[False]), "--spam", str(corpus[True])], timeout=300)
    assert done.returncode == 0, done.stderr

    out = {"english": (classify_all(home, GOOD), classify_all(home, SPAM))}
    learn(home, SEEDS, spam=True)
    out["seeded"] = (classify_all(home, GOOD), classify_all(home, NEW_SPAM))
    # The user answers "Please train this message" on two UNSURE ones.
    taught = [path for path in GOOD if out["seeded"][0][os.path.basename(path)][0] != "GOOD"][:2]
    assert len(taught) == 2
    learn(home, taught, spam=False)
    rest = [path for path in GOOD if path not in taught]
    out["taught"] = (classify_all(home, rest), classify_all(home, NEW_SPAM))
    return out


def test_the_cases_are_what_the_readme_says():
    assert len(GOOD) == 31 and len(SPAM) == 32 and len(SEEDS) == 4
    assert set(SEEDS) <= set(SPAM)


def test_every_japanese_case_yields_real_words():
    """The view decodes every case, whatever its charset or mislabel, to
    Japanese words: no escape sequences, no replacement characters but the
    one deliberately unrecoverable subject."""
    from mailfilter import features, view
    for path in GOOD + SPAM:
        with open(path, "rb") as fh:
            v = view.parse(fh.read())
        text = "\n".join(v.texts) + "\n".join(value for name, value in v.headers if name == "subject")
        assert "\x1b" not in text and "$B" not in text, path
        if "double-encoded" not in path:
            assert "\ufffd" not in text, path
        kanji_kana = [t for t in features.words(text) if not t.isascii()]
        assert len(kanji_kana) >= 8, (path, kanji_kana)


def test_no_japanese_good_mail_is_spam_at_any_moment(runs):
    for moment in ("english", "seeded", "taught"):
        good, _ = runs[moment]
        assert "SPAM" not in labels(good), (moment, {n: v for n, v in good.items() if v[0] == "SPAM"})


def test_japanese_mailing_list_mail_is_good(runs):
    english, _ = runs["english"]
    seeded, _ = runs["seeded"]
    lists = [os.path.basename(path) for path in LISTS]
    assert sum(english[name][0] == "GOOD" for name in lists) >= 6, {n: english[n] for n in lists}
    assert sum(seeded[name][0] == "GOOD" for name in lists) >= 2, {n: seeded[n] for n in lists}


def test_english_model_marks_most_japanese_good_mail_good(runs):
    good, _ = runs["english"]
    assert labels(good).count("GOOD") >= 15, good


def test_teaching_japanese_spam_moves_new_japanese_spam_toward_spam(runs):
    _, before = runs["english"]
    _, after = runs["seeded"]
    lower = [name for name, (_, pr) in after.items() if pr < before[name][1]]
    assert len(lower) >= len(after) - 2, {n: (before[n], after[n]) for n in after}
    assert "GOOD" not in labels(after), after


def test_after_two_japanese_good_most_japanese_good_mail_is_good(runs):
    good, _ = runs["taught"]
    assert labels(good).count("GOOD") >= 12, good


def test_bench_japanese_runs_and_counts_every_case(tmp_path):
    """bench/japanese.py end to end on a small generated English corpus
    (CI never runs the full benchmark; this keeps its code path alive)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    index = []
    for name, raw, is_spam in englishmail.corpus(good=40, spam=30, seed=7):
        (corpus / name).write_bytes(raw)
        index.append(f"{'spam' if is_spam else 'ham'} {name}")
    (corpus / "index").write_text("\n".join(index) + "\n")
    results = tmp_path / "japanese.json"
    done = subprocess.run([sys.executable, "-m", "bench.japanese", "--corpus", str(corpus), "--rotations", "0",
                           "--teach-good", "1", "--json", str(results)],
                          cwd=REPO, env=env_for(None), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "English training: 40 ham, 30 spam" in done.stdout
    runs = json.loads(results.read_text())["runs"]
    assert [run["run"] for run in runs] == ["no seeds", "fixed seeds", "fixed + 1 good"]
    for run in runs:
        taught = set(run["seeds"]) | set(run["taught_good"])
        assert set(run["good"]) == {os.path.basename(p) for p in GOOD} - taught
        assert set(run["spam"]) == {os.path.basename(p) for p in SPAM} - taught
        line = next(line for line in done.stdout.splitlines() if f" {run['run']} " in line)
        good_labels = labels({n: tuple(v) for n, v in run["good"].items()})
        assert f"{good_labels.count('GOOD'):>5}/{len(run['good'])}" in line
