"""The decoded view of a message that features are computed from.

This is for features only: nothing here is ever written back into mail.
It is a small MIME walker of our own rather than the stdlib `email` package or
mail-parser, because (measured here) importing mail-parser costs ~75 ms and
`email` ~15 ms per process, and because every limit below has to hold for
hostile input: depth, part count, and the amount of text decoded are all
bounded, and every regex is linear.
"""

import binascii
import re

from . import charsets
from .rawmail import scan_header

MAX_DEPTH = 12          # nesting of multipart / message/rfc822 we descend into
MAX_PARTS = 200         # leaf parts we look at; spam never needs more
MAX_HEADER_VALUE = 2048  # chars of one header value worth tokenising
MAX_FIELDS = 1000       # header fields of one part we look at; real mail has < 100
_VALUE_BYTES = 4 * MAX_HEADER_VALUE     # raw bytes of a value that can reach a feature

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,40})\?([bBqQ])\?([^?\s]*)\?=")
_ENCODED_GAP = re.compile(r"(\?=)[ \t\r\n]+(=\?)")
_PARAM = re.compile(r';\s*([\w\-*]{1,40})\s*=\s*("([^"\\]|\\.){0,500}"|[^;\s]{1,500})')
_TAG = re.compile(r"<([^<>]{0,4000})>?")
_TAG_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?([^"'\s>]{1,2000})""", re.I)
_TEXT_URL = re.compile(r"(?:https?|ftp)://[^\s<>\"'()]{1,2000}|www\.[^\s<>\"'()]{1,2000}", re.I)
_SCRIPT_END = re.compile("</script", re.I)
_STYLE_END = re.compile("</style", re.I)
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});?")


class MessageView:
    def __init__(self):
        self.headers = []       # (lowercase name, decoded value)
        self.texts = []         # decoded body text pieces
        self.urls = []
        self.attachments = []   # (content type, filename)
        self.html = False
        self.text_chars = 0


def decode_header_value(raw: bytes, hint=None) -> str:
    """Unfold and decode a header value, RFC 2047 encoded-words included.

    Raw 8-bit header bytes (common in Japanese spam) go through the same
    charset guessing as bodies.
    """
    if not raw[:4096].isascii():
        # Raw 8-bit in a header is usually in the body's charset: use it as a hint.
        text = charsets.decode(raw, hint)
    else:
        text = raw.decode("ascii", "replace")
    text = text.replace("\r", "").replace("\n", "")
    if "=?" in text:
        text = _ENCODED_GAP.sub(r"\1\2", text)
        text = _ENCODED_WORD.sub(_decode_word, text)
    return text


def _decode_word(m) -> str:
    label, kind, payload = m.group(1), m.group(2).upper(), m.group(3)
    try:
        if kind == "B":
            data = _b64(payload.encode("ascii", "ignore"))
        else:
            data = binascii.a2b_qp(payload.encode("ascii", "ignore"), header=True)
    except (binascii.Error, ValueError):
        return m.group(0)
    return charsets.decode(data, label.split("*", 1)[0])


def _b64(data: bytes) -> bytes:
    """Lenient base64: junk skipped, missing padding tolerated, like MUAs do."""
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data + b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return b""


def _params(value: str) -> dict:
    out = {}
    for m in _PARAM.finditer(value):
        v = m.group(2)
        if v.startswith('"'):
            v = v[1:-1]
        out[m.group(1).lower().split("*", 1)[0]] = v
    return out


def html_to_text(html: str, urls: list) -> str:
    """Visible text of HTML; link targets go to urls. Linear in len(html)."""
    out = []
    pos = 0
    n = len(html)
    while pos < n:
        lt = html.find("<", pos)
        if lt < 0:
            out.append(html[pos:])
            break
        out.append(html[pos:lt])
        m = _TAG.match(html, lt)
        tag = m.group(1)
        pos = m.end()
        urls.extend(_TAG_URL.findall(tag))
        low = tag[:7].lower()
        if low.startswith(("script", "style")):
            # Skip to the closing tag; what a browser would not show is not text.
            # A case-insensitive search from pos: html.lower() per <script> tag
            # was quadratic (15,000 empty script tags in 256 KiB took a second),
            # and its offsets are off wherever lowercasing changes the length.
            close = (_SCRIPT_END if low.startswith("script") else _STYLE_END).search(html, pos)
            pos = n if close is None else close.start()
        elif low.startswith(("br", "p", "div", "tr", "li", "td")):
            out.append(" ")
    text = "".join(out)
    return _ENTITY.sub(_entity, text)


def _entity(m) -> str:
    body = m.group(1)
    try:
        if body[:2].lower() == "#x":
            return chr(int(body[2:], 16))
        if body[0] == "#":
            return chr(int(body[1:]))
    except (ValueError, OverflowError):
        return " "
    return _NAMED.get(body.lower(), " ")


_NAMED = {"nbsp": " ", "amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'",
          "copy": "\u00a9", "reg": "\u00ae", "yen": "\u00a5", "euro": "\u20ac"}


class _Walker:
    def __init__(self, max_text: int):
        self.view = MessageView()
        self.budget = max_text
        self.parts = 0

    def walk(self, data: bytes, depth: int, top: bool, block=None) -> None:
        if block is None:
            block = scan_header(data)
        ctype, params, cte = "text/plain", {}, ""
        hint = None
        if top:
            for f in block.fields[:MAX_FIELDS]:
                if f.name.lower() == b"content-type":
                    hint = _params(data[f.start:min(f.end, f.start + 4096)].decode("ascii", "replace")).get("charset")
        # Only the first MAX_FIELDS fields: hostile mail has 100,000s, and
        # decoding them all cost ~1.5 s of CPU and 40 MB per million fields.
        for f in block.fields[:MAX_FIELDS]:
            if f.is_ours:
                # Ours (stale) or forged: the filter removes them, learn strips
                # them, so they must not count here either.
                continue
            name = f.name.lower()
            # At most _VALUE_BYTES of the value: slicing a 32 MB header line
            # whole took two copies of it (the 32 MB header case, 118 MB).
            colon = data.index(b":", f.start + len(f.name), f.end)
            raw_value = data[colon + 1:min(f.end, colon + 1 + _VALUE_BYTES)]
            if top:
                self.view.headers.append((name.decode("ascii", "replace"),
                                          decode_header_value(raw_value[:MAX_HEADER_VALUE * 4], hint)[:MAX_HEADER_VALUE]))
            if name == b"content-type":
                value = decode_header_value(raw_value[:4096])
                ctype = value.split(";", 1)[0].strip().lower() or "text/plain"
                params = _params(value)
            elif name == b"content-transfer-encoding":
                cte = raw_value[:64].strip().lower().decode("ascii", "replace")
            elif name == b"content-disposition" and b"filename" in raw_value:
                params.setdefault("name", _params(decode_header_value(raw_value[:4096])).get("filename", ""))
        body = data[block.body_start:]
        if ctype.startswith("multipart/") and params.get("boundary") and depth < MAX_DEPTH:
            for part in _split_multipart(body, params["boundary"].encode("utf-8", "replace")):
                if self.parts >= MAX_PARTS or self.budget <= 0:
                    return
                self.walk(part, depth + 1, False)
            return
        if ctype == "message/rfc822" and depth < MAX_DEPTH:
            self.walk(_transfer_decode(body, cte), depth + 1, False)
            return
        self.parts += 1
        if not ctype.startswith("text/") and not ctype.startswith("multipart/"):
            self.view.attachments.append((ctype, params.get("name", "")))
            return
        if self.budget <= 0:
            return
        raw = _transfer_decode(body[: self.budget * 4], cte)
        text = charsets.decode(raw, params.get("charset"))
        if ctype == "text/html" or (ctype == "text/plain" and "<html" in text[:2000].lower()):
            self.view.html = True
            text = html_to_text(text, self.view.urls)
        text = text[: self.budget].replace("\x00", " ")
        self.budget -= len(text)
        self.view.texts.append(text)
        self.view.text_chars += len(text)


def _transfer_decode(body: bytes, cte: str) -> bytes:
    if cte == "base64":
        return _b64(body)
    if cte == "quoted-printable":
        return binascii.a2b_qp(body)
    return body


def _split_multipart(body: bytes, boundary: bytes):
    """Yield the parts between boundary lines. A boundary that never closes
    still yields what it delimits; text before the first boundary is preamble."""
    delimiter = b"--" + boundary
    pos = body.find(delimiter)
    if pos < 0:
        yield body          # no boundary at all: treat the whole body as one part
        return
    while pos >= 0:
        start = body.find(b"\n", pos)
        if start < 0:
            return
        if body.startswith(delimiter + b"--", pos):
            return
        nxt = body.find(b"\n" + delimiter, start)
        if nxt < 0:
            yield body[start + 1:]
            return
        yield body[start + 1:nxt + 1]
        pos = nxt + 1


def parse(data: bytes, max_text: int = 65536, block=None) -> MessageView:
    """The view of a raw message (or of the prefix we read of it).
    block: scan_header(data), if the caller already has it."""
    walker = _Walker(max_text)
    walker.walk(data, 0, True, block)
    view = walker.view
    for text in view.texts:
        view.urls.extend(_TEXT_URL.findall(text))
    return view
