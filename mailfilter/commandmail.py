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

The forwarded message is, in this order:
  * for a message carrying an X-CRM114-CacheID whose text is in the training
    cache: that cached text, byte for byte (mailreaver's reaver cache);
  * the message/rfc822 attachments (or attached .eml files): the original
    as it was, headers included. This is the way to recommend;
  * else the text after the command line, forwarded inline: the client's
    banner ("---------- Forwarded message ---------", "-----Original
    Message-----", "-------- 転送メッセージ --------", ...) and our own
    X-CRM114-* lines removed, its From/Subject/Date/To lines made headers
    again, the text in the charset the client forwarded it in.
Learning goes through learning.py like every other learn, so the ledger's
dedupe and corrections apply.
"""

import binascii
import os
import re
import time

from . import charsets
from .log import info, report, warning
from .rawmail import line_ending, scan_header
from .view import decode_header_value, html_to_text

WORDS = {"spam": "spam", "good": "good", "nonspam": "good",      # nonspam: CRM114's mailfilter.crm
         "undo": "undo", "maxprio": "maxprio", "minprio": "minprio", "delprio": "delprio"}
PRIO_WORDS = ("maxprio", "minprio", "delprio")
ACTIONS = {"spam": "LEARNED SPAM", "good": "LEARNED GOOD", "undo": "UNDONE"}

# A command mail must be whole within what the filter reads of every message
# (the header block and 256 KiB of body: rawmail.MessageReader), and its own
# header block no bigger than this. Beyond that it is ordinary mail.
MAX_COMMAND_HEADER = 64 * 1024
MAX_DEPTH = 4               # multipart nesting looked into
MAX_PARTS = 100             # MIME parts looked at
MAX_FIELDS = 100            # header fields of one part looked at
MAX_ORIGINALS = 20          # messages forwarded as attachments in one command mail
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


# -- reading the command mail ----------------------------------------------------------

_PARAM = re.compile(r';\s*([\w\-*]{1,40})\s*=\s*("(?:[^"\\]|\\.){0,500}"|[^;\s]{1,500})')
_BLOCK_TAG = re.compile(r"<(?:br|/?p|/?div|/?tr|/?li|/?blockquote|/?h[1-6])\b[^<>]{0,500}>", re.I)


class _Mail:
    """What the command mail holds."""

    def __init__(self):
        self.subject = ""
        self.sender = ""             # From, unfolded, for the report's To and the log
        self.message_id = ""
        self.text = None             # the first text part, decoded, LF line ends
        self.text_charset = None     # its declared charset
        self.attached = []           # forwarded messages (message/rfc822, .eml), raw bytes
        self.parts = 0


def _fields(data: bytes, block):
    """(lowercase name, raw value without the colon, unfolded) of up to MAX_FIELDS fields."""
    for field in block.fields[:MAX_FIELDS]:
        value = data[field.start:field.end]
        value = value[value.find(b":") + 1:]
        yield field.name.lower(), value.replace(b"\r", b"").replace(b"\n", b"").strip()


def _params(value: str) -> dict:
    out = {}
    for m in _PARAM.finditer(value):
        v = m.group(2)
        if v.startswith('"'):
            v = v[1:-1]
        out.setdefault(m.group(1).lower().split("*", 1)[0], v)
    return out


def _transfer_decode(body: bytes, cte: str) -> bytes:
    if cte == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
        cleaned = cleaned[:len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned + b"=" * (-len(cleaned) % 4)
        try:
            return binascii.a2b_base64(cleaned)
        except binascii.Error:
            return b""
    if cte == "quoted-printable":
        return binascii.a2b_qp(body)
    return body


def _parts(body: bytes, boundary: bytes):
    """The parts of a multipart body. The line ending before a delimiter
    belongs to the delimiter (RFC 2046), so a part ends before it."""
    delimiter = b"\n--" + boundary
    body = b"\n" + body
    pos = body.find(delimiter)
    while pos >= 0:
        after = pos + len(delimiter)
        if body.startswith(b"--", after):
            return
        line_end = body.find(b"\n", after)
        if line_end < 0:
            return
        nxt = body.find(delimiter, line_end)
        if nxt < 0:
            yield body[line_end + 1:]
            return
        part = body[line_end + 1:nxt]
        yield part[:-1] if part.endswith(b"\r") else part
        pos = nxt


def _as_message(data: bytes) -> bytes:
    """A forwarded message as the original: with its final line ending, which
    the MIME delimiter took (a client writes the message, then the boundary)."""
    if data and data[-1:] not in (b"\n", b"\r"):
        data += line_ending(data)
    return data


def _text_of(body: bytes, cte: str, charset, html: bool) -> str:
    text = charsets.decode(_transfer_decode(body, cte), charset)
    if html:
        # Lines matter here (the command is the first one), so block tags
        # become line breaks before the tags go.
        text = html_to_text(_BLOCK_TAG.sub("\n", text), [])
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _walk(data: bytes, block, depth: int, mail: _Mail) -> None:
    ctype, params, cte, disposition, filename = "text/plain", {}, "", "", ""
    for name, value in _fields(data, block):
        if name == b"content-type":
            text = value[:4096].decode("ascii", "replace")
            ctype = text.split(";", 1)[0].strip().lower() or "text/plain"
            params = _params(text)
        elif name == b"content-transfer-encoding":
            cte = value[:64].strip().lower().decode("ascii", "replace")
        elif name == b"content-disposition":
            text = value[:4096].decode("ascii", "replace")
            disposition = text.split(";", 1)[0].strip().lower()
            filename = _params(text).get("filename", "")
        elif depth == 0 and name == b"subject" and not mail.subject:
            mail.subject = decode_header_value(value[:4096])
        elif depth == 0 and name == b"from" and not mail.sender:
            mail.sender = decode_header_value(value[:1024])
        elif depth == 0 and name == b"message-id" and not mail.message_id:
            mail.message_id = value[:998].decode("ascii", "replace")
    filename = (filename or params.get("name", "")).lower()
    body = data[block.body_start:]
    if ctype.startswith("multipart/"):
        boundary = params.get("boundary")
        if boundary and depth < MAX_DEPTH:
            for part in _parts(body, boundary.encode("utf-8", "replace")):
                if mail.parts >= MAX_PARTS:
                    return
                mail.parts += 1
                _walk(part, scan_header(part), depth + 1, mail)
        return
    if depth > 0 and (ctype == "message/rfc822" or filename.endswith(".eml")):
        if len(mail.attached) < MAX_ORIGINALS:
            mail.attached.append(_as_message(_transfer_decode(body, cte)))
        return
    if ctype in ("text/plain", "text/html") and mail.text is None and disposition != "attachment":
        mail.text = _text_of(body, cte, params.get("charset"), ctype == "text/html")
        mail.text_charset = params.get("charset")


def read_mail(prefix: bytes, block) -> _Mail:
    mail = _Mail()
    _walk(prefix, block, 0, mail)
    return mail


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


def command_lines(mail: _Mail):
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


# -- inline forwards -------------------------------------------------------------------

# Compiled on first use (re caches it): 2.4 ms that ordinary mail which
# merely starts a line with "command" should not pay.
_BANNER = (
    r"[-=_*\s]{0,40}(?:"
    r"forwarded message(?: from .{0,150})?|original message|begin forwarded message|"
    r"forwarded by .{0,150}|weitergeleitete nachricht|message transf[ée]r[ée]|mensaje reenviado|"
    r"messaggio inoltrato|転送メッセージ|転送されたメッセージ|元のメッセージ|メッセージの転送"
    r")\s{0,10}[:：]?[-=_*\s]{0,40}")
_RULE_LINE = re.compile(r"_{10,80}\s{0,10}")              # Outlook on the web: a line of underscores
_END_BANNER = re.compile(r"[-=_*\s]{0,40}end (?:of )?forwarded message[-=_*\s]{0,40}", re.I)
_PSEUDO_FIELD = re.compile(r"\s{0,10}([A-Za-z][A-Za-z0-9-]{0,60}|差出人|送信者|宛先|件名|日付|日時|送信日時|送信日)"
                           r"\s{0,5}[:：]\s{0,10}(.{0,2000})")
_FIELD_NAMES = {"差出人": "From", "送信者": "From", "宛先": "To", "件名": "Subject", "日付": "Date",
                "日時": "Date", "送信日時": "Date", "送信日": "Date", "sent": "Date", "from": "From",
                "to": "To", "cc": "Cc", "subject": "Subject", "date": "Date", "reply-to": "Reply-To"}
# Without a banner, text is taken as starting with headers only if its first
# line is one of these (a pasted header block), not any "Note: ..." line.
_HEADER_STARTS = {"from", "subject", "date", "to", "received", "return-path", "message-id",
                  "delivered-to", "差出人", "件名"}
_CACHE_ID = re.compile(r"sfid-([0-9a-fA-F]{8,64})")


class Inline:
    """An inline-forwarded message, made a message again."""

    def __init__(self, headers, body, cache_id):
        self.headers = headers      # [(name, value)]
        self.body = body
        self.cache_id = cache_id


def _unquote(lines):
    """One level of '>' quoting off, if every non-blank line has it."""
    if not any(line.strip() for line in lines):
        return lines
    if all(line.startswith(">") for line in lines if line.strip()):
        return [line[2:] if line.startswith("> ") else line[1:] for line in lines]
    return lines


def inline_original(text: str):
    """The message forwarded inline in text (what follows the command line),
    or None if there is nothing there."""
    lines = _unquote(text.split("\n"))
    start = None
    for i, line in enumerate(lines[:60]):
        short = line[:200]
        if re.fullmatch(_BANNER, short, re.I) or (_RULE_LINE.fullmatch(short) and _next_is_field(lines, i)):
            start = i + 1
            break
    headed = start is not None
    if start is None:
        start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    headers, cache_id = [], None
    if headed or _starts_with_header(lines, start):
        while start < len(lines):
            line = lines[start]
            if not line.strip():
                start += 1
                break
            if line[:1] in (" ", "\t") and headers:
                if headers[-1] is not None:
                    headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
                start += 1
                continue
            m = _PSEUDO_FIELD.fullmatch(line[:2100])
            if not m:
                break
            name, value = m.group(1), m.group(2).strip()
            start += 1
            if name.lower().startswith("x-crm114-"):
                if name.lower() == "x-crm114-cacheid":
                    found = _CACHE_ID.search(value)
                    cache_id = found.group(1) if found else cache_id
                headers.append(None)            # continuation lines of it go too
                continue
            if name.lower().startswith("content-") or name.lower() == "mime-version":
                continue                        # shown with all headers: the text is decoded now
            headers.append((_FIELD_NAMES.get(name.lower(), _FIELD_NAMES.get(name, name)), value))
    body = lines[start:]
    for i, line in enumerate(body):
        if _END_BANNER.fullmatch(line[:200]):
            body = body[:i]
            break
    headers = [h for h in headers if h is not None]
    body_text = "\n".join(body).strip("\n")
    if not headers and not body_text.strip():
        return None
    return Inline(headers, body_text + "\n", cache_id)


def _next_is_field(lines, i) -> bool:
    for line in lines[i + 1:i + 4]:
        if line.strip():
            return bool(_PSEUDO_FIELD.fullmatch(line[:2100]))
    return False


def _starts_with_header(lines, start) -> bool:
    if start >= len(lines):
        return False
    m = _PSEUDO_FIELD.fullmatch(lines[start][:2100])
    return bool(m) and m.group(1).lower() in _HEADER_STARTS


def _charset_for(text: str, label):
    """(label, codec) to write text in: the one the client forwarded it in
    if it holds the text (ISO-2022-JP stays ISO-2022-JP), else UTF-8."""
    codec = charsets.codec_for(label)
    if codec and codec != "ascii":
        try:
            text.encode(codec)
            return label.strip().strip('"\'').lower(), codec
        except (UnicodeError, LookupError):
            pass
    return "utf-8", "utf-8"


def _encode_header(value: str, label: str, codec: str) -> bytes:
    value = value[:900]
    if value.isascii():
        return value.encode("ascii")
    # Encoded words of a few characters each: every word then decodes on its
    # own (ISO-2022-JP returns to ASCII at each end), and lines stay short.
    words = []
    for i in range(0, len(value), 12):
        chunk = value[i:i + 12].encode(codec, "replace")
        words.append(b"=?" + label.encode() + b"?B?" + binascii.b2a_base64(chunk, newline=False) + b"?=")
    return b"\n ".join(words)


def inline_message(inline: Inline, charset_label) -> bytes:
    """The inline-forwarded message as a message: its headers, a text/plain body."""
    label, codec = _charset_for(inline.body + "".join(v for _, v in inline.headers), charset_label)
    out = []
    for name, value in inline.headers[:100]:
        if not name.isascii():
            continue
        out.append(name.encode("ascii") + b": " + _encode_header(value, label, codec) + b"\n")
    body = inline.body.encode(codec, "replace")
    out.append(b"MIME-Version: 1.0\n")
    out.append(b'Content-Type: text/plain; charset="' + label.encode() + b'"\n')
    out.append(b"Content-Transfer-Encoding: " + (b"7bit" if body.isascii() else b"8bit") + b"\n\n")
    out.append(body)
    return b"".join(out)


# -- doing it --------------------------------------------------------------------------

class Original:
    __slots__ = ("raw", "cache_id", "how")

    def __init__(self, raw, cache_id, how):
        self.raw = raw
        self.cache_id = cache_id
        self.how = how          # "attached" or "inline"


def originals_of(mail: _Mail, after: str):
    """The forwarded messages: the attached ones, else the one inline in after."""
    attached = [raw for raw in mail.attached if raw.strip()]
    if attached:
        out = []
        for raw in attached:
            cache_id = None
            block = scan_header(raw)
            for name, value in _fields(raw, block):
                if name == b"x-crm114-cacheid":
                    found = _CACHE_ID.search(value[:200].decode("ascii", "replace"))
                    cache_id = found.group(1) if found else None
                    break
            out.append(Original(raw, cache_id, "attached"))
        return out
    inline = inline_original(after)
    if inline is None:
        return []
    return [Original(inline_message(inline, mail.text_charset), inline.cache_id, "inline")]


def _describe(raw: bytes) -> str:
    block = scan_header(raw)
    subject = sender = ""
    for name, value in _fields(raw, block):
        if name == b"subject" and not subject:
            subject = decode_header_value(value[:2048])
        elif name == b"from" and not sender:
            sender = decode_header_value(value[:1024])
    subject = " ".join(subject.split())[:80] or "(no subject)"
    sender = " ".join(sender.split())[:80] or "(no sender)"
    return f'"{subject}" from {sender}'


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
            lines.append(f"  {_describe(raw)}, sfid-{result.digest[:16]}")
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


def report_message(prefix: bytes, block, mail: _Mail, subject: str, action: str, lines) -> bytes:
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
        fields.insert(1, b"To: " + _encode_header(" ".join(mail.sender.split()), "utf-8", "utf-8"))
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
