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

from . import __version__
from .log import report
from .rawmail import CLASSIFY_BODY_BYTES, MessageReader, content_digest, rewrite_header, write_header

FAILED_NOTICE = "mailfilter could not classify this message; see the mail log."


class _FailedVerdict:
    """UNSURE ( 0.00 ), needing nothing from modules that may have failed to import."""
    label = "UNSURE"
    pr = 0.0
    status = "UNSURE ( 0.00 )"
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
        report(f"message passed through unclassified: {type(err).__name__}: {err}")
        return Outcome(_FailedVerdict(), digest, FAILED_NOTICE)


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


def filter_stream(read, write, get_classifier, status_only: bool = False) -> Outcome:
    """Read a message with read(n), write it back with our headers via
    write(bytes-like: bytes or a memoryview).

    Only the header block and 256 KiB of body are held in memory; the rest is
    copied through in chunks. status_only writes just the status value and a
    newline (`--stats-only`, `classify`). OSError from read or write
    propagates: the caller must make the MTA retry.
    """
    reader = MessageReader(read)
    block = reader.read_prefix()
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


def filter_bytes(data: bytes, get_classifier) -> tuple:
    """(the message with our headers, Outcome) for a message held whole in memory."""
    out = []
    pos = 0

    def read(n):
        nonlocal pos
        chunk = data[pos:pos + n]
        pos += len(chunk)
        return chunk

    outcome = filter_stream(read, out.append, get_classifier)
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
        from .state import open_state
        from .store import open_store
        state = open_state(home)
        config = state.load_config()
        model = open_store(state, config).open_for_reading()
        rule_list, errors = load_rules(state.rules_path)
        for error in errors:
            report_rule_errors(error)
        return Classifier(config, model, rule_list)
    return load
