"""One message through the filter: bytes in, verdict, headers on the raw bytes, bytes out.

Every front end calls this: the pipe filter (procmail, maildrop), `classify`,
and the resident daemon and milter. The rules it keeps for all of them:

* The output is the input, byte for byte, minus our old or forged
  X-CRM114-* fields, plus our new ones (rawmail.rewrite_header). The view
  and features are for classifying only; nothing re-serialises the message.
* Classification never stops the mail. Any failure inside it (a corrupt
  model, a bad config, a broken install) gives `UNSURE ( 0.00 )` with a
  notice, and the cause goes to the log. Only failing to read or write the
  message itself is an error, which the caller turns into a retry (75).

Where the classifier comes from is the caller's business: `get_classifier`
is called inside the fail-safe region, so the pipe filter can load a user's
model cold and a daemon can hand over one it keeps open.
"""

import io

from . import __version__
from .log import report
from .rawmail import CLASSIFY_BODY_BYTES, MessageReader, content_digest, rewrite_header, write_header

# The notice on a message that could not be classified, then where the
# cause was logged: the mail log, or the state directory's mailfilter.log
# when syslog can't be reached (log.report says which).
FAILED_NOTICE = "mailfilter could not classify this message; see "
UNLOGGED = "the delivery program's error output (no syslog, no log file)"


def failed_notice(where) -> str:
    return FAILED_NOTICE + (where or UNLOGGED) + "."


class _FailedVerdict:
    """UNSURE ( 0.00 ), needing nothing from modules that may have failed to import."""
    label = "UNSURE"
    pr = 0.0
    status = "UNSURE ( 0.00 )"
    rule = None


class _Answered:
    """A command mail answered with a report (commandmail.py): the report is
    for the INBOX, so it counts as good mail (filter --exit-code says 1)."""
    answered = True             # verdicts.kind_of counts it apart
    label = "GOOD"
    pr = 0.0
    status = "GOOD ( 0.00 )"
    rule = None


class Outcome:
    __slots__ = ("verdict", "digest", "notice")

    def __init__(self, verdict, digest=None, notice=None):
        self.verdict = verdict      # classifier.Verdict (label, pr, status)
        self.digest = digest        # content digest, for X-CRM114-CacheID
        self.notice = notice        # why it failed, if it did

    @property
    def failed(self) -> bool:
        return self.notice is not None

    def status_lines(self) -> list:
        """Our header lines, without line endings, in mailreaver's order."""
        lines = [b"X-CRM114-Version: mailfilter " + __version__.encode()]
        if self.digest:
            lines.append(b"X-CRM114-CacheID: sfid-" + self.digest[:16].encode())
        lines.append(b"X-CRM114-Status: " + self.verdict.status.encode())
        if self.notice:
            lines.append(b"X-CRM114-Notice: " + self.notice.encode())
        elif self.verdict.label == "UNSURE":
            lines.append(b"X-CRM114-Notice: Please train this message.")
        return lines


def classify(prefix: bytes, block, get_classifier) -> Outcome:
    """The verdict on a message (or the prefix of it we read). Never raises.

    Classified is the header block and CLASSIFY_BODY_BYTES of body (what
    learn teaches); the prefix may hold more, up to procmail's end of the
    header (rawmail), read only to remove forged fields there."""
    digest = None
    try:
        digest = content_digest(prefix, block)
        classifier = get_classifier()
        return Outcome(classifier.classify(prefix[:block.body_start + CLASSIFY_BODY_BYTES], block), digest)
    except Exception as err:  # noqa: BLE001 - every failure must still deliver the mail
        where = report(f"message passed through unclassified: {type(err).__name__}: {err}")
        return Outcome(_FailedVerdict(), digest, failed_notice(where))


def head_with_status(prefix: bytes, block, outcome: Outcome) -> bytes:
    """prefix with our header lines in place; the prefix unchanged if even that fails."""
    try:
        return rewrite_header(prefix, block, outcome.status_lines())
    except Exception as err:  # noqa: BLE001
        report(f"could not add headers, passing the message through as is: {err}")
        return prefix


def write_with_status(prefix: bytes, block, outcome: Outcome, write) -> None:
    """head_with_status, written in pieces: a 32 MB header is not copied
    whole (rawmail.write_header). OSError from write propagates."""
    try:
        lines = outcome.status_lines()
    except Exception as err:  # noqa: BLE001
        report(f"could not add headers, passing the message through as is: {err}")
        write(prefix)
        return
    write_header(prefix, block, lines, write)


def filter_stream(read, write, get_classifier, status_only: bool = False, commands=None) -> Outcome:
    """Read a message with read(n), write it back with our headers via
    write(bytes-like: bytes or a memoryview).

    Only the header block and 256 KiB of body are held in memory; the rest is
    copied through in chunks. status_only writes just the status value and a
    newline (`--stats-only`, `classify`). OSError from read or write
    propagates: the caller must make the MTA retry.

    commands: the command-mail hook (user_commands), or None. A message that
    passes the cheap test (might_be_command) is offered to it as
    commands(prefix, block, whole); bytes back are written *instead of* the
    message (the report of a command the user sent), None means ordinary mail.
    """
    reader = MessageReader(read)
    block = reader.read_prefix()
    if commands is not None and not status_only and might_be_command(reader.prefix, block):
        try:
            answer = commands(reader.prefix, block, reader.at_eof)
        except Exception as err:  # noqa: BLE001 - a broken command must not stop the mail
            report(f"command mail passed on as ordinary mail: {type(err).__name__}: {err}")
            answer = None
        if answer is not None:
            write(answer)
            for _ in reader.chunks():
                pass
            return Outcome(_Answered())
    outcome = classify(reader.prefix, block, get_classifier)
    if status_only:
        write(outcome.verdict.status.encode() + b"\n")
        for _ in reader.chunks():
            pass
        return outcome
    write_with_status(reader.prefix, block, outcome, write)
    for chunk in reader.chunks():
        write(chunk)
    return outcome


def filter_bytes(data: bytes, get_classifier, commands=None) -> tuple:
    """(the message with our headers, Outcome) for a message held whole in memory."""
    out = []
    outcome = filter_stream(io.BytesIO(data).read, out.append, get_classifier, commands=commands)
    return b"".join(out), outcome


def read_file(path: str) -> tuple:
    """(prefix, header block) of the message in a file, read exactly as the
    filter reads stdin: eval's scores then equal `classify`'s, also for a
    header with no blank line or one beyond 4 MiB."""
    with open(path, "rb") as fh:
        reader = MessageReader(fh.read)
        block = reader.read_prefix()
    return reader.classified, block


def user_classifier(home=None, report_rule_errors=report):
    """A zero-argument loader of one user's classifier, for filter_stream:
    the state directory, its config, its store and priolist rules."""
    def load():
        from .classifier import Classifier
        from .rules import load as load_rules
        from .log import use_state_directory
        from .state import State, resolve_home
        from .store import open_store
        state = State(resolve_home(home))
        use_state_directory(state.home)        # before anything below can fail
        state.ensure()
        config = state.load_config()
        model = open_store(state, config).open_for_reading()
        rule_list, errors = load_rules(state.rules_path)
        for error in errors:
            report_rule_errors(error)
        return Classifier(config, model, rule_list)
    return load


# -- command mail: the cheap test every message gets ---------------------------
# `command SECRET spam` at the start of the subject or of the message text
# (commandmail.py). Plain bytes work, no import: ordinary mail pays a few
# microseconds here and never loads the command code.

COMMAND_WINDOW = 16384          # bytes of body in which the command line must start
_COMMAND_FIELDS = 200           # header fields searched for the Subject
# What starts a command line, and the letters that may come just before it:
# "command", "Command", "COMMAND", and the same at the start of base64 text
# (a phone client's body): "Y29tbWFuZ", "Q29tbWFuZ", "Q09NTUFOR".
_COMMAND_NEEDLES = ((b"ommand", b"cC"), (b"OMMAND", b"C"), (b"29tbWFuZ", b"YQ"), (b"09NTUFOR", b"Q"))
_B64_COMMAND = (b"Y29tbWFuZ", b"Q29tbWFuZ", b"Q09NTUFOR")


def might_be_command(prefix: bytes, block) -> bool:
    """Could this be command mail? False for all but a few ordinary messages;
    True means commandmail has to read it properly.

    Measured on the SpamAssassin corpus (6,046 messages): 11 us a message,
    against 2.2 ms to classify one (0.5%); 11 passed (mailing-list mail with a line
    starting "command"), and each of those then cost 1.5-2 ms more
    (importing commandmail, reading the mail, finding no command). Linear
    in the window whatever the text: each needle search resumes on the line
    after the last hit."""
    for index, field in enumerate(block.fields):
        if index >= _COMMAND_FIELDS:
            break
        if len(field.name) == 7 and field.name.lower() == b"subject":
            colon = prefix.find(b":", field.start, field.end)
            value = prefix[colon + 1:min(field.end, colon + 200)].lstrip()
            if value[:7].lower() == b"command":
                return True
            if value[:2] == b"=?" and (b"ommand" in value.lower() or any(n in value for n in _B64_COMMAND)):
                return True
    body = prefix[block.body_start:block.body_start + COMMAND_WINDOW]
    sep = b"\n" if b"\n" in body else b"\r"
    for needle, first in _COMMAND_NEEDLES:
        start = 0
        while True:
            pos = body.find(needle, start)
            if pos < 1:
                break
            if body[pos - 1] in first:
                line_start = body.rfind(sep, start, pos - 1) + 1 or start
                if not body[line_start:pos - 1].strip():
                    return True
            start = body.find(sep, pos) + 1
            if start == 0:
                break
    return False


def user_commands(home=None):
    """The command-mail hook of one user's pipe filter, for filter_stream.
    commandmail is imported only for mail that passed might_be_command."""
    def answer(prefix, block, whole):
        from .commandmail import answer
        return answer(home, prefix, block, whole)
    return answer
