"""Command mail as mail clients write it: forwarded as an attachment or inline.

The layouts follow what the clients send: Thunderbird's and Apple Mail's
"Forward as Attachment" (multipart/mixed with a text part and a
message/rfc822 part), an .eml attached by a phone, and the inline forwards
of Gmail, Outlook, Outlook on the web, Thunderbird and Apple Mail in English
and Japanese, each with its own banner and its own names for the forwarded
header lines. A client decodes the original for display and writes the
forward in a charset of its own; the builders do the same with the
project's view (the decoded text a reader sees).
"""

import base64
import binascii

from mailfilter import view

HEAD = b"From: Me <me@example.org>\nTo: me@example.org\nDate: Mon, 2 Dec 2024 09:00:00 +0900\nMessage-ID: <cmd-1@example.org>\n"

# banner, blank line after it?, header names for From, Date, Subject, To
CLIENTS = {
    "gmail": ("---------- Forwarded message ---------", False, ("From", "Date", "Subject", "To")),
    "outlook": ("-----Original Message-----", False, ("From", "Sent", "Subject", "To")),
    "outlook-web": ("________________________________", False, ("From", "Sent", "Subject", "To")),
    "thunderbird": ("-------- Forwarded Message --------", False, ("From", "Date", "Subject", "To")),
    "thunderbird-ja": ("-------- 転送メッセージ --------", False, ("差出人", "日付", "件名", "宛先")),
    "apple": ("Begin forwarded message:", True, ("From", "Date", "Subject", "To")),
    "apple-ja": ("転送されたメッセージ:", True, ("差出人", "日付", "件名", "宛先")),
    "outlook-ja": ("-----Original Message-----", False, ("差出人", "送信日時", "件名", "宛先")),
}


def encoded_subject(text: str) -> bytes:
    if text.isascii():
        return text.encode()
    return b"=?UTF-8?B?" + base64.b64encode(text.encode()) + b"?="


def as_attachment(command: str, originals, in_subject: bool = True, cte: str = None,
                  filename: str = None, eol: bytes = b"\n") -> bytes:
    """Thunderbird's Forward as Attachment. cte="base64": the message part
    base64-encoded (some webmails); filename: an .eml attached as a file."""
    subject = command if in_subject else "Fwd: see attached"
    text = b"" if in_subject else command.encode() + b"\n"
    out = [HEAD, b"Subject: " + subject.encode() + b"\nMIME-Version: 1.0\n",
           b'Content-Type: multipart/mixed; boundary="------------FWD0123"\n\n',
           b"This is a multi-part message in MIME format.\n",
           b"--------------FWD0123\nContent-Type: text/plain; charset=UTF-8; format=flowed\n"
           b"Content-Transfer-Encoding: 7bit\n\n" + text + b"\n"]
    for original in originals:
        if filename:
            out.append(b'--------------FWD0123\nContent-Type: application/octet-stream; name="'
                       + filename.encode() + b'"\nContent-Disposition: attachment; filename="'
                       + filename.encode() + b'"\nContent-Transfer-Encoding: base64\n\n'
                       + base64.encodebytes(original))
        elif cte == "base64":
            out.append(b'--------------FWD0123\nContent-Type: message/rfc822\n'
                       b'Content-Transfer-Encoding: base64\n\n' + base64.encodebytes(original))
        else:
            out.append(b'--------------FWD0123\nContent-Type: message/rfc822; name="forwarded.eml"\n'
                       b'Content-Disposition: attachment; filename="forwarded.eml"\n\n' + original)
        out.append(b"\n")
    out.append(b"--------------FWD0123--\n")
    return b"".join(out).replace(b"\n", eol)


def decoded(original: bytes):
    """(headers dict, first text) of a message as a mail client shows it."""
    parsed = view.parse(original)
    headers = {}
    for name, value in parsed.headers:
        headers.setdefault(name, value.strip())
    return headers, (parsed.texts[0] if parsed.texts else "")


def inline_text(command, original: bytes, client: str, show=()) -> str:
    """The text of an inline forward: the command line (None: it is in the
    subject), the client's banner and header lines, the original's text.
    show: extra (name, value) header lines the client showed (all headers)."""
    banner, blank, names = CLIENTS[client]
    headers, text = decoded(original)
    lines = [] if command is None else [command, ""]
    lines += ["Sent from my phone", "", banner]
    if blank:
        lines.append("")
    values = (headers.get("from", ""), headers.get("date", ""), headers.get("subject", ""), headers.get("to", ""))
    for name, value in zip(names, values):
        lines.append(f"{name}: {value}")
    lines += [f"{name}: {value}" for name, value in show]
    lines += ["", text]
    return "\n".join(lines)


def inline(command: str, original: bytes, client: str, charset: str = "utf-8", cte: str = "8bit",
           in_subject: bool = False, show=()) -> bytes:
    """An inline forward, written in charset with cte as the client would."""
    text = inline_text(None if in_subject else command, original, client, show)
    body = text.encode(charset)
    if cte == "base64":
        body = base64.encodebytes(body)
    elif cte == "quoted-printable":
        body = binascii.b2a_qp(body)
    subject = command.encode() if in_subject else encoded_subject("Fwd: " + decoded(original)[0].get("subject", ""))
    return (HEAD + b"Subject: " + subject + b"\nMIME-Version: 1.0\nContent-Type: text/plain; charset="
            + charset.encode() + b"\nContent-Transfer-Encoding: " + cte.encode() + b"\n\n" + body)


def plain(subject: str, body: str) -> bytes:
    """A simple message from the user (a reply, a note)."""
    return HEAD + b"Subject: " + encoded_subject(subject) + b"\nContent-Type: text/plain; charset=utf-8\n\n" + body.encode()
