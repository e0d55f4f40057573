r"""priolist.mfp: the admin's and user's own rules, CRM114-compatible.

    # comment
    +regex      the message is GOOD if regex matches
    -regex      the message is SPAM if regex matches

Rules are tried in order and the first match wins, as in mailreaver. They are
matched (re.MULTILINE) against the unfolded header block followed by a blank
line and the decoded text, so `^X-Mailer: Douhou@Mail` anchors on a header.
`${RECIPIENT}` in a rule stands for the recipient's own address (escaped),
from $RECIPIENT or else the first Delivered-To header; a rule that needs it
when it is unknown never matches.

A bad regex is reported with its file and line and skipped; the others stay
in force, and mail keeps flowing. A ${RECIPIENT} rule is compiled again for
each recipient, and some recipients make a regex the load-time check
accepted invalid (`\${RECIPIENT}` and a recipient starting with "q" is the
bad escape `\q`; `(a)\1${RECIPIENT}` and one starting with "0" the group
`\10`): that rule is skipped for this message and logged, and the rules
after it still apply. The recipient can come from the message itself
(Delivered-To), so a sender must not be able to switch the rules off.
"""

import re

RECIPIENT_TOKEN = "${RECIPIENT}"
# Rules see at most this much text: a rule with catastrophic backtracking
# then costs a bounded, if large, time on hostile mail.
MAX_MATCH_CHARS = 256 * 1024


class RulesError(Exception):
    """Text is `file:line: what is wrong`."""


class Rule:
    __slots__ = ("good", "source", "line", "pattern", "path")

    def __init__(self, good: bool, source: str, line: int, path: str = "priolist.mfp"):
        self.good = good
        self.source = source    # the regex as written
        self.line = line
        self.pattern = None     # compiled at load if it has no ${RECIPIENT}
        self.path = path        # the file it came from, for the log


def load(path: str):
    """(rules, errors). A missing file is no rules; bad lines are errors."""
    rules, errors = [], []
    from .state import read_regular
    try:
        text = read_regular(path).decode("utf-8", "replace")
    except FileNotFoundError:
        return rules, errors
    except OSError as err:
        return rules, [f"{path}: cannot read: {err.strerror}"]
    for number, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        sign, regex = stripped[0], stripped[1:]
        if sign not in "+-" or not regex:
            errors.append(f"{path}:{number}: a rule starts with + (good) or - (spam) and a regex: {line!r}")
            continue
        rule = Rule(sign == "+", regex, number, path)
        try:
            compiled = re.compile(regex.replace(RECIPIENT_TOKEN, "recipient@example.invalid"), re.MULTILINE)
            if RECIPIENT_TOKEN not in regex:
                rule.pattern = compiled
        except re.error as err:
            errors.append(f"{path}:{number}: bad regex {regex!r}: {err}")
            continue
        rules.append(rule)
    return rules, errors


def check(rules, text: str, recipient, report=None):
    """The first matching rule, or None. report(line): where a rule that
    can't be compiled for this recipient is logged (default: log.warning)."""
    text = text[:MAX_MATCH_CHARS]
    for rule in rules:
        pattern = rule.pattern
        if pattern is None:
            if not recipient:
                continue
            try:
                pattern = re.compile(rule.source.replace(RECIPIENT_TOKEN, re.escape(recipient)), re.MULTILINE)
            except (re.error, OverflowError, RecursionError, ValueError) as err:
                if report is None:
                    from .log import warning as report
                # The recipient may be the sender's text: repr, and cut short.
                report(f"{rule.path}:{rule.line}: rule skipped for recipient {recipient[:100]!r}: {err}")
                continue
        if pattern.search(text):
            return rule
    return None
