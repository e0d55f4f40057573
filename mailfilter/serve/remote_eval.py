"""`mailfilter eval --spamd`: the TREC online protocol through the daemon.

Each message goes to the daemon as spamc would send it: REPORT (classify;
our status lines, and the exact pR in Mailfilter-pR), then TELL with its
true label. TELL carries `Mailfilter-Dedupe: no`, because the TREC protocol
trains every message even when the same text came before, as the
in-process eval does. The results file is then byte for byte the
in-process one, which is how the tests prove that the daemon classifies
and learns exactly as the library does (tests/test_serve_eval.py).
"""

import time

from .. import exitcodes
from ..errors import InputError, MailfilterError
from ..evaluate import EvalResult
from . import client


class _Verdict:
    __slots__ = ("label", "pr")

    def __init__(self, label, pr):
        self.label = label
        self.pr = pr

    @property
    def spamminess(self) -> float:
        return -self.pr


def run(where: str, user, entries, on_result=None) -> EvalResult:
    result = EvalResult()
    started = time.perf_counter()
    for is_spam, rel, path in entries:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as err:
            raise InputError(f"{path}: cannot read: {err.strerror or err}", exitcodes.NOINPUT) from None
        try:
            reply = client.request(where, "REPORT", data, user)
            if b"could not classify" in reply.body:
                raise client.DaemonError(f"the daemon could not classify {path}; see its log")
            status = next(line for line in reply.body.split(b"\r\n") if line.startswith(b"X-CRM114-Status:"))
            verdict = _Verdict(status.split()[1].decode(), reply.pr)
            client.request(where, "TELL", data, user,
                           [("Message-class", "spam" if is_spam else "ham"), ("Set", "local"),
                            ("Mailfilter-Dedupe", "no")])
        except (client.DaemonError, StopIteration, KeyError, ValueError) as err:
            raise MailfilterError(f"{rel}: {err}", exitcodes.UNAVAILABLE) from None
        result.paths.append(rel)
        result.is_spam.append(is_spam)
        result.scores.append(verdict.spamminess)
        result.verdicts.append(verdict.label)
        if on_result:
            on_result(rel, is_spam, verdict)
    result.seconds = time.perf_counter() - started
    return result
