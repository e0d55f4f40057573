"""Generated mail for load tests: varied, deterministic, never from a corpus.

Sizes from a few hundred bytes to ~30 KB, LF and CRLF, plain, HTML and
base64 parts, Japanese, forged X-CRM114-* headers in some, spammy and
hammy vocabularies, so the classifier gives all three verdicts.
"""

import base64
import random

SPAMMY = ("free winner prize claim cash offer viagra casino bonus click unsubscribe limited "
          "urgent bitcoin investment guaranteed cheap pills loan credit").split()
HAMMY = ("meeting notes thursday budget review draft agenda project report lunch kids "
         "schedule invoice attached thanks regards family weekend minutes quarter").split()
COMMON = ("the a of to and in is for on with this that your you we our please will "
          "from at by be are as it can have more").split()


def _words(r, vocabulary, n):
    return " ".join(r.choice(vocabulary) if r.random() < 0.3 else r.choice(COMMON) for _ in range(n))


def message(i: int) -> bytes:
    r = random.Random(i)
    vocabulary = SPAMMY if r.random() < 0.5 else HAMMY
    eol = b"\r\n" if r.random() < 0.2 else b"\n"
    head = [
        b"From: sender%d@example%d.net" % (r.randrange(500), r.randrange(20)),
        b"To: user%d@example.org" % r.randrange(50),
        b"Subject: " + _words(r, vocabulary, r.randrange(2, 9)).encode(),
        b"Date: Mon, 2 Sep 2024 10:%02d:%02d +0000" % (r.randrange(60), r.randrange(60)),
        b"Message-ID: <%d.%d@example.org>" % (i, r.randrange(1 << 30)),
    ]
    if r.random() < 0.1:
        head.append(b"X-CRM114-Status: GOOD ( 99.99 )")          # forged: must go
    if r.random() < 0.05:
        head.insert(2, b"x-crm114-version: forged")
    lines = [_words(r, vocabulary, r.randrange(5, 16)).encode() for _ in range(r.choice((3, 10, 40, 200)))]
    kind = r.random()
    if kind < 0.6:
        head += [b"MIME-Version: 1.0", b"Content-Type: text/plain; charset=us-ascii"]
        body = lines
    elif kind < 0.8:
        head += [b"MIME-Version: 1.0", b'Content-Type: multipart/alternative; boundary="b%d"' % i]
        html = b"<html><body>" + b"<p>".join(lines) + b'<a href="http://www.example%d.com/x">x</a></body></html>' % r.randrange(9)
        body = [b"--b%d" % i, b"Content-Type: text/plain", b""] + lines + [
            b"--b%d" % i, b"Content-Type: text/html", b"", html, b"--b%d--" % i]
    elif kind < 0.9:
        head += [b"MIME-Version: 1.0", b"Content-Type: text/plain; charset=utf-8",
                 b"Content-Transfer-Encoding: base64"]
        raw = b"\n".join(lines) + "\n無料で登録 お問い合わせ\n".encode()
        body = base64.encodebytes(raw).splitlines()
    else:
        head += [b"MIME-Version: 1.0", b"Content-Type: text/plain; charset=iso-2022-jp"]
        body = [b"\x1b$B$3$s$K$A$O\x1b(B"] + lines
    data = eol.join(head) + eol + eol + eol.join(body) + eol
    if r.random() < 0.02:
        data = data.rstrip(b"\r\n")            # no final newline
    return data


def messages(n: int, start: int = 0):
    return [message(i) for i in range(start, start + n)]
