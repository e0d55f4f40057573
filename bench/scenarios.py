"""Named scenarios: the plain TREC protocol, and two ways real mail differs from it.

  plain         every message as the corpus has it, every message trained
  site-headers  every message as the user's mailbox gets it: the local delivery
                headers an MTA adds, and a stale X-CRM114-* block of ours from
                an earlier filter pass. Same bytes for every engine: the copies
                are written once to the bench's work directory
  feedback      train only what a user reports: the messages the engine got
                wrong or marked UNSURE, each spam with probability 0.8, each
                good message with 0.2 (mailfilter.evaluate.Feedback decides,
                one seeded draw per message, for every engine alike)
"""

import datetime
import email.utils
import hashlib
import os
import random
import re
import sys
from dataclasses import dataclass

from .corpus import Message


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    transform: bool = False     # engines read rewritten copies of the messages
    feedback: bool = False      # train only what a user would report


SCENARIOS = {
    "plain": Scenario("plain", "every message trained with its true label (TREC immediate feedback)"),
    "site-headers": Scenario("site-headers", "local delivery headers and a stale X-CRM114-* block on every message",
                             transform=True),
    "feedback": Scenario("feedback", "only errors and UNSUREs trained, reported with p(spam)=0.8, p(good)=0.2",
                         feedback=True),
}

FEEDBACK_RATES = {"spam": 0.8, "good": 0.2}


# The site: one user at a small domain whose MX relays to the mailbox host,
# which delivers with Postfix's local(8). Documentation names and addresses
# (RFC 2606, RFC 5737), so no real host is implied.
USER = "user@example.org"
MAILBOX_HOST = "mail.example.org"
MX = "mx.example.org"
MX_IP = "192.0.2.25"
# Where the clock starts for messages without a usable Date header, and how
# far it moves per such message.
CLOCK_START = datetime.datetime(2007, 4, 8, 17, 7, 21, tzinfo=datetime.timezone.utc)
CLOCK_STEP = datetime.timedelta(seconds=60)
# A Date outside these years is a spammer's invention; the clock is used then.
PLAUSIBLE_YEARS = (1995, 2037)
# Bump when site_headers() changes, so materialised copies are rewritten.
VERSION = 2

_ADDRESS = re.compile(rb"<([^<>\s]*)>|([^\s<>\"(),;:]+@[^\s<>\"(),;:]+)")


class DeliveryClock:
    """A plausible delivery time per message: its own Date plus a few seconds
    of transit, else a clock that advances from the last delivery."""

    def __init__(self, start=CLOCK_START, step=CLOCK_STEP):
        self.last = start
        self.step = step

    def deliver(self, date_value, position):
        when = _parse_date(date_value)
        if when is None:
            when = self.last + self.step
        else:
            # 5 to 119 s in transit, varying by message and never random.
            when = when + datetime.timedelta(seconds=5 + (position * 7919) % 115)
        self.last = when
        return when


def _parse_date(value):
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.decode("ascii", "replace"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or not PLAUSIBLE_YEARS[0] <= when.year <= PLAUSIBLE_YEARS[1]:
        return None
    if when.tzinfo is None:     # "-0000": time known, zone not
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when


def _header_values(raw, block):
    """{lower-case name: first value, unfolded} of the message's header fields."""
    values = {}
    for field in block.fields:
        name = field.name.lower()
        if name in values:
            continue
        line = raw[field.start:field.end]
        value = line.split(b":", 1)[1] if b":" in line else b""
        values[name] = b" ".join(value.split())
    return values


def _address(value):
    if not value:
        return None
    m = _ADDRESS.search(value)
    if not m:
        return None
    return (m.group(1) if m.group(1) is not None else m.group(2)).decode("ascii", "replace")


def envelope_sender(raw, values):
    """What Postfix would put in Return-Path: the mbox From_ line's sender,
    else the message's own Return-Path, else its From, else the null sender."""
    if raw.startswith(b"From "):
        first = raw.split(b"\n", 1)[0].split()
        if len(first) > 1 and first[1] != b"MAILER-DAEMON":
            return first[1].decode("ascii", "replace")
    for name in (b"return-path", b"from"):
        address = _address(values.get(name))
        if address is not None:
            return address
    return ""


def site_headers(raw: bytes, position: int, clock: DeliveryClock, rng: random.Random) -> bytes:
    """raw as the user's mailbox gets it: our site's lines above its header.

    Newest on top, as MTAs prepend: Postfix local(8)'s Return-Path,
    X-Original-To and Delivered-To, the Received line of the hop from our MX
    to the mailbox host, then the X-CRM114-Version and -Status lines a filter
    at an earlier hop left (stale: the verdict is drawn at random, unrelated
    to the message's class, so it carries no information an engine could
    learn). No X-CRM114-CacheID: crm114's mailreaver trains from the cached
    text that header names, so a stale one would make every crm114 training
    fail (measured: pR 0.00 for every message); that is crm114's design, not
    a scenario a site has. The message itself follows unchanged; a leading
    mbox From_ line stays first.
    """
    from mailfilter import __version__
    from mailfilter.rawmail import scan_header

    block = scan_header(raw)
    values = _header_values(raw, block)
    when = clock.deliver(values.get(b"date"), position)
    stamp = email.utils.format_datetime(when)
    queue_id = f"{(position * 2654435761 + 0x3A5C1E) & 0xFFFFFFFFFF:010X}"
    verdict = rng.choices(("GOOD", "SPAM", "UNSURE"), weights=(6, 3, 1))[0]
    pr = {"GOOD": rng.uniform(1.0, 60.0), "SPAM": -rng.uniform(1.5, 60.0), "UNSURE": rng.uniform(-1.49, 0.99)}[verdict]
    lines = [
        f"Return-Path: <{envelope_sender(raw, values)}>",
        f"X-Original-To: {USER}",
        f"Delivered-To: {USER}",
        f"Received: from {MX} ({MX} [{MX_IP}])",
        f"\tby {MAILBOX_HOST} (Postfix) with ESMTPS id {queue_id}",
        f"\tfor <{USER}>; {stamp}",
        f"X-CRM114-Version: mailfilter {__version__}",
        f"X-CRM114-Status: {verdict} ( {pr:+.2f} )",
    ]
    eol = block.eol
    added = eol.join(line.encode("ascii") for line in lines) + eol
    return raw[:block.start] + added + raw[block.start:]


def _stamp(corpus, messages):
    # What the copies were made from: rewrite them when any of it changes.
    digest = hashlib.sha256()
    digest.update(f"v{VERSION}\n{corpus.index_path}\n{len(messages)}\n".encode())
    for m in messages:
        digest.update(f"{m.path}\0{m.size}\n".encode())
    return digest.hexdigest()


def materialise(corpus, messages, directory, progress=True):
    """Write the site-headers copy of each message once; reuse it while the
    corpus is unchanged. Returns the Messages of the copies (rel unchanged)."""
    os.makedirs(directory, exist_ok=True)
    stamp_path = os.path.join(directory, "STAMP")
    stamp = _stamp(corpus, messages)
    copies = [os.path.join(directory, "msg", f"{i // 1000:03d}", f"{i:06d}") for i in range(len(messages))]
    try:
        with open(stamp_path, encoding="ascii") as fh:
            fresh = fh.read().strip() == stamp
    except OSError:
        fresh = False
    if not fresh:
        if os.path.exists(stamp_path):
            os.unlink(stamp_path)
        clock = DeliveryClock()
        rng = random.Random(VERSION)
        step = max(len(messages) // 10, 1)
        for i, (m, copy) in enumerate(zip(messages, copies)):
            with open(m.path, "rb") as fh:
                raw = fh.read()
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            with open(copy, "wb") as fh:
                fh.write(site_headers(raw, i, clock, rng))
            if progress and ((i + 1) % step == 0 or i + 1 == len(messages)):
                print(f"  site-headers: wrote {i + 1}/{len(messages)} copies", file=sys.stderr, flush=True)
        with open(stamp_path, "w", encoding="ascii") as fh:
            fh.write(stamp + "\n")
    return [Message(m.is_spam, m.rel, copy, os.path.getsize(copy)) for m, copy in zip(messages, copies)]


def parse(text):
    """'plain,feedback' -> [Scenario], in the order given."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    return [SCENARIOS[n] for n in dict.fromkeys(names)]
