"""The forwarded message in a command mail (commandmail.py), as the original.

A user forwards a message to themselves to teach it. Clients forward two ways:

  * as an attachment: a message/rfc822 part (or an attached .eml file) that
    holds the original as it was, headers and all. This is the way to
    recommend; several may come in one mail;
  * inline: the original's text below the user's own lines, under a banner
    the client writes ("---------- Forwarded message ---------",
    "-----Original Message-----", "Begin forwarded message:",
    "-------- 転送メッセージ --------", ...) and a few header lines in the
    client's own words (From/Sent/Subject, 差出人/件名/日付). Those come out
    as a message again: the banner, the user's lines and our own X-CRM114-*
    lines dropped, the header lines made headers, the text in the charset
    the client forwarded it in where that holds it (ISO-2022-JP stays
    ISO-2022-JP), else UTF-8.

A small MIME walk of its own over bytes: the attached original must come
out byte for byte (the email package re-serialises), and every limit holds
for hostile input (depth, parts, fields, attachments; the command mail as
a whole is at most what the filter reads of any message). Text is decoded
with the filter's own charset code (charsets.py, view.py).
"""

import binascii
import re

from . import charsets
from .rawmail import line_ending, scan_header
from .view import decode_header_value, html_to_text

MAX_DEPTH = 4               # multipart nesting looked into
MAX_PARTS = 100             # MIME parts looked at
MAX_FIELDS = 100            # header fields of one part looked at
MAX_ORIGINALS = 20          # messages forwarded as attachments in one command mail

_PARAM = re.compile(r';\s*([\w\-*]{1,40})\s*=\s*("(?:[^"\\]|\\.){0,500}"|[^;\s]{1,500})')
_BLOCK_TAG = re.compile(r"<(?:br|/?p|/?div|/?tr|/?li|/?blockquote|/?h[1-6])\b[^<>]{0,500}>", re.I)


class CommandMail:
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


def _walk(data: bytes, block, depth: int, mail: CommandMail) -> None:
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


def read_mail(prefix: bytes, block) -> CommandMail:
    mail = CommandMail()
    _walk(prefix, block, 0, mail)
    return mail


# -- inline forwards ----------------------------------------------------------------------

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


def encode_header(value: str, label: str, codec: str) -> bytes:
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
        out.append(name.encode("ascii") + b": " + encode_header(value, label, codec) + b"\n")
    body = inline.body.encode(codec, "replace")
    out.append(b"MIME-Version: 1.0\n")
    out.append(b'Content-Type: text/plain; charset="' + label.encode() + b'"\n')
    out.append(b"Content-Transfer-Encoding: " + (b"7bit" if body.isascii() else b"8bit") + b"\n\n")
    out.append(body)
    return b"".join(out)


# -- the originals ------------------------------------------------------------------------

class Original:
    __slots__ = ("raw", "cache_id", "how")

    def __init__(self, raw, cache_id, how):
        self.raw = raw
        self.cache_id = cache_id
        self.how = how          # "attached" or "inline"


def originals_of(mail: CommandMail, after: str):
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


def describe(raw: bytes) -> str:
    """'"Subject" from sender' of a message, for the report."""
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
