"""TREC spam-track online protocol, and the per-message results file all engines share.

Online protocol: for each message, in index order, the engine classifies it
and is then trained with the true label, as its users do (immediate feedback).
mailfilter does this in one process (`mailfilter eval`); the peers have no
such mode, so the loop here spawns their commands per message.

With a feedback (the `feedback` scenario) only what a user would report is
trained; mailfilter.evaluate.Feedback decides, for the peers here exactly
as inside `mailfilter eval --feedback`.

Results file, one line per message (the format `mailfilter eval --results`
writes):  PATH judge=<spam|ham> score=<float> verdict=<SPAM|GOOD|UNSURE> [trained=<0|1>]
with score higher = spammier; without trained= the message was trained.
"""

import re
import sys
import time
from dataclasses import dataclass, field

_LINE = re.compile(r"^(?P<path>.*?) judge=(?P<judge>spam|ham) score=(?P<score>\S+)(?: verdict=(?P<verdict>\w+))?"
                   r"(?: trained=(?P<trained>[01]))?")


@dataclass
class Outcome:
    """What one engine did on one corpus."""
    engine: str
    paths: list = field(default_factory=list)
    is_spam: list = field(default_factory=list)
    scores: list = field(default_factory=list)      # higher = spammier (TREC)
    verdicts: list = field(default_factory=list)    # SPAM / GOOD / UNSURE at the engine's defaults
    trained: list = field(default_factory=list)     # per message: was it trained
    seconds: float = 0.0                            # wall time of the whole online run
    errors: int = 0                                 # messages the engine failed on (scored as unsure)
    commands: list = field(default_factory=list)    # the commands that produced it, for the report
    label: str = ""                                 # name on charts; says so when it is a prefix

    def __post_init__(self):
        self.label = self.label or self.engine

    def __len__(self):
        return len(self.scores)

    def prefix(self, n):
        """The first n messages: online results are a prefix-closed stream."""
        return Outcome(self.engine, self.paths[:n], self.is_spam[:n], self.scores[:n], self.verdicts[:n],
                       self.trained[:n], self.seconds * n / max(len(self), 1), self.errors, self.commands,
                       f"{self.engine} (first {n})" if n < len(self) else self.label)

    def part(self, start, end):
        """Messages [start, end) as a stream of their own (halves, windows)."""
        return Outcome(self.engine, self.paths[start:end], self.is_spam[start:end], self.scores[start:end],
                       self.verdicts[start:end], self.trained[start:end],
                       self.seconds * (end - start) / max(len(self), 1), 0, self.commands, self.label)


def write_line(fh, path, is_spam, score, verdict, trained=True):
    fh.write(f"{path} judge={'spam' if is_spam else 'ham'} score={score:.6g} verdict={verdict} "
             f"trained={int(trained)}\n")


def read_results(path, engine) -> Outcome:
    outcome = Outcome(engine)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            m = _LINE.match(line.rstrip("\n"))
            if not m:
                raise ValueError(f"{path}:{number}: not a results line: {line!r}")
            outcome.paths.append(m["path"])
            outcome.is_spam.append(m["judge"] == "spam")
            outcome.scores.append(float(m["score"]))
            outcome.verdicts.append((m["verdict"] or "UNSURE").upper())
            outcome.trained.append(m["trained"] != "0")
    return outcome


def run_per_message(engine, messages, results_path, progress=True, feedback=None) -> Outcome:
    """classify-then-train for each message, one engine command each.
    feedback: a mailfilter.evaluate.Feedback; only what it reports is trained."""
    outcome = Outcome(engine.name)
    started = time.perf_counter()
    step = max(len(messages) // 20, 1)
    with open(results_path, "w", encoding="utf-8") as fh:
        for i, msg in enumerate(messages, 1):
            score, verdict, ok = engine.classify(msg.path)
            trained = feedback is None or feedback.reports(msg.is_spam, verdict)
            if trained:
                engine.train(msg.path, msg.is_spam)
            outcome.errors += not ok
            outcome.paths.append(msg.rel)
            outcome.is_spam.append(msg.is_spam)
            outcome.scores.append(score)
            outcome.verdicts.append(verdict)
            outcome.trained.append(trained)
            write_line(fh, msg.rel, msg.is_spam, score, verdict, trained)
            if progress and (i % step == 0 or i == len(messages)):
                rate = i / (time.perf_counter() - started)
                print(f"  {engine.name}: {i}/{len(messages)} ({rate:.0f} msg/s)", file=sys.stderr, flush=True)
    outcome.seconds = time.perf_counter() - started
    return outcome
