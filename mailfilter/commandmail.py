"""Command mail: train from any mail client by forwarding a message to yourself.

CRM114's mailreaver lets every user train from their own client, POP3 and
phone included: forward the message to your own address with a line

    command SECRET spam        (or good, undo; maxprio +RE, minprio -RE, delprio RE)

at the start of the subject or of the message text. The pipe filter sees it
(pipeline.might_be_command lets only a few ordinary messages through to
here), learns the forwarded message, and writes a short report in place of
the command mail, which is never delivered. Nothing is sent over SMTP and
nothing is bounced.

Mail without the right secret is ordinary mail: it is classified and
delivered as any other, never learned, never answered, so nobody can teach
another user's model or probe for a secret. Failed secrets are logged per
user, rate-limited (the first few an hour one by one, then a count), so
guessing shows up without flooding the log. Too big, several commands, a
missing or wrong secret: ordinary mail, and the reason is logged.

The forwarded message (forwarded.py finds it) is, in this order:
  * for a message carrying an X-CRM114-CacheID whose text is in the training
    cache: that cached text, byte for byte (mailreaver's reaver cache);
  * the message/rfc822 attachments (or attached .eml files), as they were;
  * else the message forwarded inline below the command line.
Learning goes through learning.py like every other learn, so the ledger's
dedupe and corrections apply.
"""

import os
import re
import time

from .forwarded import CommandMail, describe, encode_header, originals_of, read_mail
from .log import info, report, warning

WORDS = {"spam": "spam", "good": "good", "nonspam": "good",      # nonspam: CRM114's mailfilter.crm
         "undo": "undo", "maxprio": "maxprio", "minprio": "minprio", "delprio": "delprio"}
PRIO_WORDS = ("maxprio", "minprio", "delprio")
ACTIONS = {"spam": "LEARNED SPAM", "good": "LEARNED GOOD", "undo": "UNDONE"}

# A command mail must be whole within what the filter reads of every message
# (the header block and 256 KiB of body: rawmail.MessageReader), and its own
# header block no bigger than this. Beyond that it is ordinary mail.
MAX_COMMAND_HEADER = 64 * 1024
MIN_SECRET = 8

FAILURES_NAME = "command-failures"
FAILURE_WINDOW = 3600       # seconds
FAILURES_LOGGED = 5         # failures per window logged one by one

SECRET_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"      # 5 bits a character, nothing to misread
SECRET_LENGTH = 20                                         # 100 bits


class CommandError(Exception):
    """A command with the right secret that can't be done: said in the report."""


# -- the secret ------------------------------------------------------------------------

def secret_matches(given: str, secret: str) -> bool:
    """Whether given is the secret, in time that depends on neither where they
    differ nor how long either is: both are hashed to 32 bytes and the hashes
    compared with hmac.compare_digest. An empty secret matches nothing."""
    import hashlib
    import hmac
    if not secret:
        return False
    a = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(a, b)


def configured_secret(state) -> str:
    """The user's command_secret, from their own mailfilter.conf only.

    The system-wide file is read by every user, so a secret there would let
    each of them command the others' filters: it is ignored, with a warning.
    Raises ConfigError for a bad config file."""
    from .state import SYSTEM_CONFIG, Config, parse_config
    if parse_config(SYSTEM_CONFIG, Config()).command_secret:
        warning(f"{SYSTEM_CONFIG}: command_secret is ignored there (every user can read it); "
                f"each user sets their own, `mailfilter command-secret`")
    return parse_config(state.config_path, Config()).command_secret


def secret_problem(secret: str):
    """Why a configured secret can't be used, or None."""
    if not secret:
        return "no command_secret is set (`mailfilter command-secret` makes one)"
    if len(secret) < MIN_SECRET:
        return f"command_secret is shorter than {MIN_SECRET} characters, so command mail is off"
    return None


def new_secret() -> str:
    import secrets
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))


def ensure_secret(state, new: bool = False):
    """(secret, created, problem): the user's command secret, made and
    written to their mailfilter.conf if there is none (or new=True), and
    why it can't be used if it can't (secret_problem). The rest of the file
    is kept byte for byte; it is written whole or not at all, mode 0600.
    Raises ConfigError if the file is not valid as it is."""
    from .atomicfile import replace
    from .state import Config, parse_config
    current = parse_config(state.config_path, Config()).command_secret
    if current and not new:
        return current, False, secret_problem(current)
    secret = new_secret()
    try:
        with open(state.config_path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        data = b""
    line = f"command_secret = {secret}\n".encode()
    out, placed = [], False
    for old in data.splitlines(keepends=True):
        if old.split(b"#", 1)[0].partition(b"=")[0].strip() == b"command_secret":
            if not placed:
                out.append(line)
                placed = True
            continue
        out.append(old)
    if not placed:
        if out and not out[-1].endswith(b"\n"):
            out.append(b"\n")
        out.append(b"# the password of command mail: a subject `command SECRET spam` trains\n")
        out.append(line)
    replace(state.config_path, [b"".join(out)], 0o600)
    return secret, True, None

# -- the command line ------------------------------------------------------------------

class Command:
    __slots__ = ("secret", "word", "args", "where")

    def __init__(self, secret, word, args, where):
        self.secret = secret        # as given; None if the line has none
        self.word = word            # a WORDS value, or None for an unknown word
        self.args = args
        self.where = where          # "subject" or "text"


def _is_command_line(line: str) -> bool:
    tokens = line.lstrip("\ufeff\u200b").split(None, 1)
    return len(tokens) == 2 and tokens[0].lower() == "command"


def parse_command(line: str, where: str) -> Command:
    tokens = line.lstrip("\ufeff\u200b").split()[1:]
    first = tokens[0].lower()
    if first in WORDS and (len(tokens) == 1 or WORDS[first] in PRIO_WORDS):
        return Command(None, WORDS[first], tokens[1:], where)       # `command spam`: no secret
    word = WORDS.get(tokens[1].lower()) if len(tokens) > 1 else None
    return Command(tokens[0], word, tokens[2:], where)


def command_lines(mail: CommandMail):
    """([(where, line)] of every command line, the text after the one in the
    text). A command is the subject, or the first non-blank line of the
    message text; a second command line right below the first counts too."""
    found = []
    if _is_command_line(mail.subject.strip()):
        found.append(("subject", mail.subject.strip()))
    after = mail.text or ""
    lines = after.split("\n", 200)
    nonblank = [i for i, line in enumerate(lines[:200]) if line.strip()][:2]
    if nonblank and _is_command_line(lines[nonblank[0]].strip()):
        found.append(("text", lines[nonblank[0]].strip()))
        after = "\n".join(lines[nonblank[0] + 1:])
        if len(nonblank) > 1 and _is_command_line(lines[nonblank[1]].strip()):
            found.append(("text", lines[nonblank[1]].strip()))
    return found, after


# -- doing it --------------------------------------------------------------------------

def learn_originals(state, config, word: str, originals):
    """Teach (or undo) each original in one session; report lines."""
    from .classifier import format_pr, label_for
    from .learning import session_for
    lines = []
    with session_for(state, config) as session:
        for original in originals:
            raw = original.raw
            source = "the attachment" if original.how == "attached" else "the text forwarded inline"
            if original.cache_id and session.cache is not None:
                hit = session.cache.lookup(original.cache_id)
                if hit is not None:
                    raw, source = hit[2], "the training cache, byte for byte (by its X-CRM114-CacheID)"
            if word == "undo":
                result = session.undo(raw)
            else:
                result = session.learn(raw, word == "spam")
            before, after = format_pr(result.pr_before), format_pr(result.pr_after)
            now = label_for(result.pr_after, config)
            if result.action in ("learned", "corrected"):
                head = (f"learned as {result.label}: pR {before} → {after}" if result.action == "learned" else
                        f"corrected to {result.label}: pR {before} → {after}")
            elif result.action == "skipped":
                head = f"already learned as {result.label}; nothing changed (pR {after})"
            elif result.action == "undone":
                head = f"undone (it was taught as {result.label}): pR {before} → {after}"
            else:
                head = f"nothing to undo: this message was never taught (pR {after})"
            lines.append(head)
            lines.append(f"  {describe(raw)}, sfid-{result.digest[:16]}")
            lines.append(f"  taken from {source}; it now classifies as {now}")
    return lines


def _rule_error(state, rule: str):
    """What priolist.mfp's loader would say about rule, or None: the same
    check (rules.load) on a one-line file, so the two can't disagree."""
    import tempfile

    from .rules import load
    fd, path = tempfile.mkstemp(dir=state.home, prefix=".priolist-check.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(rule.encode("utf-8") + b"\n")
        _, errors = load(path)
    finally:
        os.unlink(path)
    if not errors:
        return None
    return errors[0].replace(path + ":1: ", "")


def edit_priolist(state, word: str, arg: str):
    """maxprio / minprio / delprio on the user's priolist.mfp: (changed, what
    was done, for the report). Raises CommandError for a rule the loader
    would refuse."""
    import fcntl

    from .atomicfile import replace
    if word != "delprio":
        if arg[:1] not in ("+", "-") or len(arg) < 2:
            raise CommandError(f"{word} needs a rule: +REGEX (good) or -REGEX (spam), got {arg!r}")
        problem = _rule_error(state, arg)
        if problem:
            raise CommandError(f"priolist.mfp not changed: {problem}")
    path = state.rules_path
    lock = os.open(state.home, os.O_RDONLY)         # one priolist edit at a time
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            data = b""
        lines = data.splitlines(keepends=True)
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            lines[-1] += b"\n"

        def text(line):
            return line.strip().decode("utf-8", "replace")

        if word == "delprio":
            kept = [line for line in lines if arg not in (text(line), text(line)[1:]) or text(line)[:1] not in "+-"]
            removed = len(lines) - len(kept)
            if not removed:
                return False, f"no rule {arg} in priolist.mfp; nothing changed"
            replace(path, [b"".join(kept)], 0o600)
            return True, f"removed from priolist.mfp: {arg}" + (f" ({removed} lines)" if removed > 1 else "")
        kept = [line for line in lines if text(line) != arg]
        new = arg.encode("utf-8") + b"\n"
        if word == "maxprio":
            first = next((i for i, line in enumerate(kept) if text(line)[:1] in ("+", "-")), len(kept))
            kept.insert(first, new)
            where = "first"
        else:
            kept.append(new)
            where = "last"
        if kept == lines:
            return False, f"priolist.mfp already has {arg} as its {where} rule; nothing changed"
        replace(path, [b"".join(kept)], 0o600)
        return True, f"priolist.mfp: {arg} is now the {where} rule ({'GOOD' if arg[0] == '+' else 'SPAM'} when it matches)"
    finally:
        os.close(lock)


# -- the answer ------------------------------------------------------------------------

def _clean(text: str, limit: int = 120) -> str:
    """A value from mail, safe for one log line."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def _who(state, mail) -> str:
    return f"command mail for {state.home} from {_clean(mail.sender) or '(no From)'}"


def note_failure(state, mail, reason: str, now: float = None) -> int:
    """Log a refused secret, rate-limited per user: the first FAILURES_LOGGED
    of an hour one by one, then one line saying more are only counted, and
    the hour's total when the next hour's first failure comes. The count
    lives in the state directory (command-failures). Returns this hour's count."""
    import fcntl
    now = time.time() if now is None else now
    path = os.path.join(state.home, FAILURES_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            started, count = (float(x) for x in os.pread(fd, 100, 0).split())
        except ValueError:
            started, count = now, 0
        if not 0 <= now - started < FAILURE_WINDOW:
            if count > FAILURES_LOGGED:
                warning(f"command mail for {state.home}: {int(count)} failed secrets in the hour from "
                        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}; someone may be guessing")
            started, count = now, 0
        count = int(count) + 1
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{started:.0f} {count}\n".encode(), 0)
    finally:
        os.close(fd)
    if count <= FAILURES_LOGGED:
        warning(f"{_who(state, mail)}: {reason}; delivered as ordinary mail, nothing learned "
                f"(failure {count} this hour)")
    elif count == FAILURES_LOGGED + 1:
        warning(f"command mail for {state.home}: {count} failed secrets within the hour; the rest of "
                f"this hour's are counted, not logged one by one")
    return count


def report_message(prefix: bytes, block, mail: CommandMail, subject: str, action: str, lines) -> bytes:
    """The report, a new message for the INBOX, in the command mail's line ending."""
    import email.utils
    import socket

    from . import __version__
    eol = block.eol
    host = re.sub(r"[^A-Za-z0-9.-]", "", socket.gethostname()) or "localhost"
    head = []
    if prefix.startswith(b"From "):
        nl = prefix.find(b"\n")
        head.append(prefix[:nl + 1] if nl >= 0 else prefix + eol)
    fields = [
        b"From: mailfilter <MAILER-DAEMON@" + host.encode() + b">",
        b"Subject: mailfilter: " + subject.encode("ascii", "replace"),
        b"Date: " + email.utils.formatdate(localtime=True).encode(),
        b"Message-ID: <mailfilter." + str(time.time_ns()).encode() + b"." + str(os.getpid()).encode()
        + b"@" + host.encode() + b">",
    ]
    if mail.sender.strip():                 # the user, who sent the command
        fields.insert(1, b"To: " + encode_header(" ".join(mail.sender.split()), "utf-8", "utf-8"))
    if re.fullmatch(r"<[!-~]{1,900}>", mail.message_id):
        fields.append(b"In-Reply-To: " + mail.message_id.encode())
        fields.append(b"References: " + mail.message_id.encode())
    fields += [
        b"Auto-Submitted: auto-replied",
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b"X-CRM114-Version: mailfilter " + __version__.encode(),
        b"X-CRM114-Action: " + action.encode(),
    ]
    head += [f.replace(b"\n", eol) + eol for f in fields]
    body = "\n".join(list(lines) + ["", "-- ", "mailfilter command mail (README: \"Training by mail\")", ""])
    return b"".join(head) + eol + body.encode("utf-8").replace(b"\n", eol)


def answer(home, prefix: bytes, block, whole: bool):
    """The report to write instead of this message, or None: deliver it as
    ordinary mail. Never raises: whatever goes wrong, the mail goes through."""
    try:
        return _answer(home, prefix, block, whole)
    except Exception as err:  # noqa: BLE001 - command mail must never stop delivery
        report(f"command mail passed on as ordinary mail: {type(err).__name__}: {err}")
        return None


def _answer(home, prefix, block, whole):
    from .state import open_state
    mail = read_mail(prefix, block)
    found, after = command_lines(mail)
    if not found:
        return None                         # "command" somewhere near the top, no command
    state = open_state(home)
    distinct = {line for _, line in found}
    if len(distinct) > 1:
        warning(f"{_who(state, mail)}: several commands ({len(distinct)}); delivered as ordinary mail, "
                f"nothing done: one command per mail")
        return None
    where, line = found[0]
    command = parse_command(line, where)
    if not whole or block.body_start > MAX_COMMAND_HEADER:
        if command.word is not None:
            warning(f"{_who(state, mail)}: over the size limit (header block of 64 KiB, 256 KiB of body); "
                    f"delivered as ordinary mail, nothing done")
        return None
    secret = configured_secret(state)
    problem = secret_problem(secret)
    if command.secret is None:
        note_failure(state, mail, "no secret in the command line")
        return None
    if not secret_matches(command.secret, secret) or problem:
        if command.word is not None:            # an ordinary line that starts with "command": silence
            note_failure(state, mail, problem or "wrong secret")
        return None
    # The right secret from here on: the user asked, so the user is answered.
    if command.word is None:
        return report_message(prefix, block, mail, "unknown command", "REFUSED", [
            "not done: the command line has no known command word.",
            "One of: spam, good, undo, maxprio +REGEX, minprio -REGEX, delprio REGEX."])
    if command.word in PRIO_WORDS:
        if len(command.args) != 1:
            return _several(state, mail, command) if command.args else report_message(
                prefix, block, mail, f"{command.word} refused", "REFUSED",
                [f"not done: {command.word} needs a rule, e.g. `{command.word} -^From:.*@spam\\.example`"])
        try:
            changed, done = edit_priolist(state, command.word, command.args[0])
        except CommandError as err:
            return report_message(prefix, block, mail, f"{command.word} refused", "REFUSED", [str(err)])
        info(f"{_who(state, mail)}: {command.word} {_clean(command.args[0])}")
        return report_message(prefix, block, mail, "priolist.mfp " + ("changed" if changed else "unchanged"),
                              "PRIOLIST " + command.word.upper(), [done])
    if command.args:
        return _several(state, mail, command)
    config = state.load_config()
    originals = originals_of(mail, after)
    if not originals:
        return report_message(prefix, block, mail, f"nothing to {'undo' if command.word == 'undo' else 'learn'}",
                              "REFUSED", [
                                  "not done: no forwarded message found in your command mail.",
                                  "Forward the message as an attachment (recommended), or inline below the command line."])
    lines = learn_originals(state, config, command.word, originals)
    verb = "undone" if command.word == "undo" else f"learned as {command.word}"
    count = len(originals)
    info(f"{_who(state, mail)}: {verb}, {count} message{'s' if count > 1 else ''}")
    subject = verb if count == 1 else f"{count} messages {verb}"
    return report_message(prefix, block, mail, subject, ACTIONS[command.word], lines)


def _several(state, mail, command):
    warning(f"{_who(state, mail)}: several commands ({command.word} followed by "
            f"{_clean(' '.join(command.args), 60)}); delivered as ordinary mail, nothing done: one command per mail")
    return None
