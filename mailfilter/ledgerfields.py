"""What the ledger keeps of a taught message beside its digest, for
`mailfilter stats`: the subject and the sender's domain (store/__init__.py
documents the row).

Both come from the decoded view the features were computed from, so no
second parse. Both end up on an admin's terminal, so anything that could
steer it (escape sequences, other control characters, bidirectional
overrides) is replaced by a space before they are stored.
"""

import re

from .store.rows import SUBJECT_CHARS

# C0 and C1 controls, DEL, and the Unicode format characters that reorder or
# hide text (bidi embeddings/overrides/isolates, zero-width marks).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+")
_SPACES = re.compile(r"\s+")
# The address in a From: value: the last <...>, else the first word with an @.
_ANGLE = re.compile(r"<([^<>]*)>")
_BARE = re.compile(r"[^\s<>\"(),;:]+@[^\s<>\"(),;:]+")
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")


def clean(text: str, limit: int) -> str:
    text = _SPACES.sub(" ", _UNSAFE.sub(" ", text)).strip()
    return text[:limit - 1] + "\u2026" if len(text) > limit else text


def from_view(view):
    """(subject or None, sender domain or None) of a message_view.MessageView."""
    subject = sender = None
    for name, value in view.headers:
        if name == "subject" and subject is None:
            subject = clean(value, SUBJECT_CHARS)
        elif name == "from" and sender is None:
            sender = domain_of(value)
        if subject is not None and sender is not None:
            break
    return subject, sender


def domain_of(value: str):
    """The lower-case domain of the first address in a From: value, or None."""
    found = _ANGLE.findall(value)
    address = found[-1] if found else (_BARE.search(value) or [None])[0]
    if not address or "@" not in address:
        return None
    domain = address.rsplit("@", 1)[1].strip().strip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return None
    return domain if _DOMAIN.fullmatch(domain) else None
