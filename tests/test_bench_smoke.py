"""The whole benchmark path on ~200 generated messages: all three engines, report and charts.

CI never runs the full benchmark; this keeps its code path alive. The corpus
is generated here (not ../shared), with enough overlap between spam and ham
vocabulary that no engine is perfect.
"""

import json
import os
import random
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HAM_WORDS = ("meeting agenda patch kernel review build release notes thanks regards schedule lunch "
             "python debian package mailing list thread reply attached draft budget quarter report "
             "server backup disk upgrade bug fix commit branch merge test deploy friday team").split()
SPAM_WORDS = ("free money offer winner click now limited viagra cheap pills credit loan mortgage "
              "guaranteed income unsubscribe casino bonus prize urgent act fast discount deal "
              "rolex replica weight loss miracle cash earn home investment opportunity").split()
COMMON = "the a to and of you your for this is in on with we it at please today new".split()


def _message(rng, i, spam):
    own, other = (SPAM_WORDS, HAM_WORDS) if spam else (HAM_WORDS, SPAM_WORDS)
    words = []
    for _ in range(rng.randint(40, 160)):
        r = rng.random()
        # Some words from the other class, so the classes overlap a little.
        words.append(rng.choice(COMMON if r < 0.45 else other if r < 0.55 else own))
    subject = " ".join(rng.choice(own) for _ in range(rng.randint(2, 5))).capitalize()
    if spam:
        sender = f"{rng.choice(['deals', 'promo', 'info', 'win'])}{rng.randint(1, 999)}@{rng.choice(['cheap-offers.biz', 'winbig.info', 'mailer.example'])}"
        words.insert(rng.randint(0, len(words)), f"http://{rng.choice(['click', 'buy', 'go'])}.{rng.choice(['example.biz', 'deals.info'])}/{rng.randint(100, 999)}")
    else:
        sender = f"{rng.choice(['alice', 'bob', 'carol', 'dave'])}@{rng.choice(['example.org', 'lists.example.net'])}"
    lines = [" ".join(words[k:k + 12]) for k in range(0, len(words), 12)]
    return (f"From: {sender}\nTo: user@example.com\nSubject: {subject}\n"
            f"Message-ID: <{i}.{rng.randint(0, 10**9)}@gen.example>\n"
            f"Date: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\nContent-Type: text/plain; charset=us-ascii\n\n"
            + "\n".join(lines) + "\n").encode("ascii")


def make_corpus(directory, n=200, seed=7):
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        spam = rng.random() < 0.35
        rel = f"{'spam' if spam else 'ham'}/{i:04d}"
        path = os.path.join(directory, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(_message(rng, i, spam))
        lines.append(f"{'spam' if spam else 'ham'} {rel}")
    with open(os.path.join(directory, "index"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return lines


def _peers_present():
    return all(shutil.which(t) for t in ("bogofilter", "bogoutil", "crm", "cssutil")) and \
        os.path.exists("/usr/share/crm114/mailreaver.crm")


@pytest.mark.slow
def test_bench_runs_end_to_end(tmp_path):
    if not _peers_present() and os.geteuid() != 0:
        pytest.skip("bogofilter/crm114 missing and not root to install them (apt-get install bogofilter crm114)")
    corpus = tmp_path / "synth"
    make_corpus(str(corpus))
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [sys.executable, "-m", "bench", "--corpus", str(corpus), "--out", str(out), "--work", str(work),
            "--crm-limit", "150", "--latency-sample", "8", "--quiet"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    report = (out / "REPORT.md").read_text()
    for needle in ("mailfilter", "bogofilter", "crm114 (first 150)", "(1-ROCA)%", "lam%",
                   "Accuracy on the same first 150 messages", "-m bench", "mailfilter ÷ bogofilter"):
        assert needle in report, needle
    results = json.loads((out / "results.json").read_text())
    run = results["corpora"][0]
    assert run["n_messages"] == 200
    for engine in ("mailfilter", "bogofilter", "crm114"):
        acc = run["accuracy"][engine]
        assert acc["messages"] == (150 if engine == "crm114" else 200)
        assert 0.0 <= acc["one_minus_roca_pct"] <= 100.0
        assert acc["errors"] == 0
        assert run["model_bytes"][engine] > 0
        lat = run["latency"]["classify"][engine]
        assert lat["runs"] == 8 and lat["errors"] == 0 and lat["median_ms"] > 0
    assert set(run["ratios"]["classify"]) == {"bogofilter", "crm114"}
    for png in run["plots"].values():
        data = (out / png).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
    # The headline table goes to stdout too.
    assert "| mailfilter |" in done.stdout


def test_generated_corpus_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert make_corpus(str(a)) == make_corpus(str(b))
    assert (a / "spam").exists() and (a / "ham").exists()
