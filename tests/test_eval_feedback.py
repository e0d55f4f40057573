"""`mailfilter eval --feedback`: train only what a user would report (issue 10's feedback scenario)."""

import os
import random

import pytest

from conftest import SAMPLES, run_mailfilter
from mailfilter.evaluate import Feedback


def test_feedback_never_reports_a_right_verdict():
    feedback = Feedback(spam=1.0, good=1.0, seed=3)
    assert not feedback.reports(True, "SPAM")
    assert not feedback.reports(False, "GOOD")
    for verdict in ("GOOD", "UNSURE"):
        assert feedback.reports(True, verdict)
    for verdict in ("SPAM", "UNSURE"):
        assert feedback.reports(False, verdict)


def test_feedback_rates_per_class():
    never = Feedback(spam=0.0, good=0.0)
    assert not any(never.reports(i % 2 == 0, "UNSURE") for i in range(200))
    # spam reported ~80% of the time, good ~20%: 2000 draws each, well inside 5 points.
    feedback = Feedback(spam=0.8, good=0.2, seed=11)
    spam = sum(feedback.reports(True, "GOOD") for _ in range(2000)) / 2000
    good = sum(feedback.reports(False, "SPAM") for _ in range(2000)) / 2000
    assert 0.75 < spam < 0.85 and 0.15 < good < 0.25


def test_feedback_draws_once_per_message_so_equal_verdicts_give_equal_reports():
    # Two engines with different verdicts on other messages: message N still
    # gets the same draw, so where their verdicts agree their reports agree.
    rng = random.Random(5)
    labels = [rng.random() < 0.6 for _ in range(500)]
    verdicts_a = [rng.choice(("SPAM", "GOOD", "UNSURE")) for _ in labels]
    verdicts_b = [v if rng.random() < 0.5 else rng.choice(("SPAM", "GOOD", "UNSURE")) for v in verdicts_a]
    a, b = Feedback(seed=9), Feedback(seed=9)
    reports_a = [a.reports(y, v) for y, v in zip(labels, verdicts_a)]
    reports_b = [b.reports(y, v) for y, v in zip(labels, verdicts_b)]
    same = [i for i in range(len(labels)) if verdicts_a[i] == verdicts_b[i]]
    assert len(same) > 200
    assert all(reports_a[i] == reports_b[i] for i in same)
    # And the draw is the seeded generator's i-th number.
    draws = random.Random(9)
    expected = [d < (0.8 if y else 0.2) and v != ("SPAM" if y else "GOOD")
                for y, v, d in zip(labels, verdicts_a, (draws.random() for _ in labels))]
    assert reports_a == expected


@pytest.mark.parametrize("text", ["spam=0.8", "good=0.1,spam=1", " spam = 0.5 , good=0 "])
def test_feedback_parse(text):
    parsed = Feedback.parse(text, seed=4)
    rates = dict(part.replace(" ", "").split("=") for part in text.split(","))
    assert parsed.spam == float(rates.get("spam", 0)) and parsed.good == float(rates.get("good", 0))
    assert parsed.seed == 4


@pytest.mark.parametrize("text", ["spam=1.5", "ham=0.2", "spam", "spam=lots", ""])
def test_feedback_parse_rejects(text):
    with pytest.raises(ValueError):
        Feedback.parse(text)


def _index(tmp_path):
    lines = []
    for kind, judge in (("spam", "spam"), ("good", "ham")):
        for name in sorted(os.listdir(os.path.join(SAMPLES, "train", kind))):
            lines.append(f"{judge} {os.path.join(SAMPLES, 'train', kind, name)}")
    spam = [l for l in lines if l.startswith("spam")]
    ham = [l for l in lines if l.startswith("ham")]
    lines = [l for pair in zip(spam, ham) for l in pair]
    index = tmp_path / "index"
    index.write_text("\n".join(lines) + "\n")
    return index, lines


def _rows(path):
    rows = []
    for line in path.read_text().splitlines():
        fields = dict(part.split("=", 1) for part in line.split(" ")[1:])
        rows.append(fields)
    return rows


def test_eval_feedback_trains_only_reported_errors(tmp_path):
    index, lines = _index(tmp_path)
    results = tmp_path / "results"
    out = run_mailfilter(["eval", str(index), "--results", str(results), "--feedback", "spam=1,good=1"], b"", None)
    assert out.returncode == 0, out.stderr
    rows = _rows(results)
    assert len(rows) == len(lines)
    for row in rows:
        wrong = row["verdict"] != ("SPAM" if row["judge"] == "spam" else "GOOD")
        assert row["trained"] == ("1" if wrong else "0")
    trained = sum(row["trained"] == "1" for row in rows)
    assert 0 < trained < len(rows)      # the empty model is UNSURE at first, then learns
    assert f"trained         {trained} ".encode() in out.stdout


def test_eval_feedback_reporting_nothing_teaches_nothing(tmp_path):
    index, lines = _index(tmp_path)
    results = tmp_path / "results"
    out = run_mailfilter(["eval", str(index), "--results", str(results), "--feedback", "spam=0,good=0"], b"", None)
    assert out.returncode == 0, out.stderr
    rows = _rows(results)
    # Never taught, the empty model scores every message alike.
    assert {row["trained"] for row in rows} == {"0"}
    assert {row["score"] for row in rows} == {rows[0]["score"]}
    assert {row["verdict"] for row in rows} == {"UNSURE"}


def test_eval_feedback_is_reproducible_and_seeded(tmp_path):
    index, _ = _index(tmp_path)
    texts = []
    for n, seed in enumerate((7, 7, 8)):
        results = tmp_path / f"results{n}"
        out = run_mailfilter(["eval", str(index), "--results", str(results),
                              "--feedback", "spam=0.5,good=0.5", "--seed", str(seed)], b"", None)
        assert out.returncode == 0, out.stderr
        texts.append(results.read_text())
    assert texts[0] == texts[1]
    # Without --feedback every message is trained and no trained= column is written.
    plain = tmp_path / "plain"
    assert run_mailfilter(["eval", str(index), "--results", str(plain)], b"", None).returncode == 0
    assert "trained=" not in plain.read_text()


def test_eval_feedback_usage_error(tmp_path):
    index, _ = _index(tmp_path)
    out = run_mailfilter(["eval", str(index), "--feedback", "spam=2"], b"", None)
    assert out.returncode == 64 and b"spam=2" in out.stderr
