"""`mailfilter demo`, the README's first command, end to end: a fresh model
trained on the samples, the sample inbox delivered through the real
procmail with contrib/procmailrc, and the report of where each went."""

import os
import re
import subprocess

from conftest import MAILFILTER, SAMPLES, env_for, need

LINE = re.compile(r"^   (INBOX|Junk )  (SPAM|GOOD|UNSURE) \( [-+]\d+\.\d\d \)\s+(.*)$")


def test_demo_delivers_every_sample_and_says_what_unsure_means(tmp_path):
    need("procmail")
    work = tmp_path / "demo"
    done = subprocess.run(MAILFILTER + ["demo", "--dir", str(work)], capture_output=True, text=True,
                          env=env_for(None), timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [LINE.match(line).groups() for line in done.stdout.splitlines() if LINE.match(line)]
    inbox = os.listdir(os.path.join(SAMPLES, "inbox"))
    assert len(rows) == len(inbox), done.stdout          # every message delivered, none lost
    by_subject = {subject: (folder.strip(), label) for folder, label, subject in rows}
    assert by_subject["Re: patch review for the parser"] == ("INBOX", "GOOD")
    for folder, label in by_subject.values():
        assert (folder == "Junk") == (label == "SPAM")
    # The forged `X-CRM114-Status: GOOD` and the other spam are never GOOD.
    assert [label for _, label in by_subject.values()].count("GOOD") == 1
    assert ("UNSURE mail stays in INBOX" in done.stdout) == any(label == "UNSURE" for _, label in
                                                                  by_subject.values())
