"""Message view -> hashed feature ids. The only module that knows what a token is.

Decisions of feature version 1, each measured with `mailfilter eval` on the
first 2000 messages of the SpamAssassin corpus (index.shuffled), the tuning
prefix:

* Lowercase everything. Case-sensitive tokens doubled the vocabulary and did
  not help the online learner: it sees too few examples of each variant.
* Words are runs of non-space characters with surrounding punctuation kept
  ("free!!" is spammier than "free"), like CRM114's [[:graph:]]+.
* Words over 30 characters become "skip:<first char><length/10>" (SpamBayes'
  trick): long runs are base64 debris, hashes or URLs, unique per message and
  useless to learn, but "a very long token was here" is a signal.
* Text without spaces (Japanese, Chinese) becomes character bigrams. A run of
  kanji/kana is otherwise one giant token that never repeats (bogofilter's
  failure on Japanese mail); bigrams are the unit CJK search engines index on.
* No word pairs. CRM114-style OSB pairs (each word with the next 1..3) made
  the online learner worse, not better, on the tuning prefix: (1-ROCA)% 0.168
  with single words, 0.201 adding adjacent pairs, 0.275 with a 4-word window.
  With per-feature step sizes (model.py) single words learn fast enough, and
  pairs mostly add rare, noisy features. Character 4-grams of the raw message
  (Sculley's features) also lost: 0.176 added to words at their best rate.
* Header tokens are tagged with the header name ("subject:free"), since the
  same word means different things in Subject and in Received. Every header's
  value is tokenised (0.261 against 0.275 for a hand-picked list), and every
  header's name is a feature of its own: which headers a mailer writes is a
  fingerprint. All Received hops count, up to a bound for hostile mail: the
  sender's network is in the lowest hops, and limiting them to the top three
  (our own relays) cost (1-ROCA)% 0.137 against 0.125 over three orders.
* URLs contribute their host, its registrable tail, and path words.
* Features are a set: a word's presence, not its count, as in Goodman & Yih's
  online logistic regression (counts let one repeated word dominate).
* A second family: byte 5-grams of the first 3000 bytes of the raw message,
  as Sculley & Wachman used for TREC. They catch what the tokenizer throws
  away: spacing and punctuation habits, encodings, the layout of headers.
  Added to the words (model.py) they took (1-ROCA)% from 0.065 to 0.052.
  3000 bytes beat 1500, 2000 and 6000 (0.058, 0.055, 0.060); 5-grams beat
  3-, 4- and 6-grams (0.060, 0.054, 0.052, the last worse in index order);
  stripping Received lines first made it worse (0.059). Our own X-CRM114-*
  lines are left out, as learn leaves them out.
* A third family, identity (feature version 2): the sender's and the
  list's header tokens, and the top Received hops, in a family of their
  own (IDENTITY_HEADERS below has the measurement).

Feature version 2 was chosen on trec07p and SpamAssassin together (the
figures are in model.py and learning.py); what version 1 scored is kept
above for the record.
"""

import re

import mmh3

MAX_WORD = 30
MAX_HEADERS = 200               # header names/values we look at, hostile mail has 100k
RECEIVED_HOPS = 40              # real mail has under 20; hostile mail has 100,000
RAW_GRAM = 5
RAW_BYTES = 3000
# The identity family: who sent the message, and through whom. These
# tokens are in the word family too, but there they are a few among
# hundreds; a family of their own (unit length over a dozen tokens) lets
# a sender's or a list's history count. A weekly newsletter, taught good
# once, was scored spammy again each week by the word family alone.
# Measured beside the other two families (see model.py): trec07p (1-ROCA)%
# 0.0070 -> 0.0062, spam missed at 0.01% ham 5.6% -> 3.4%; SpamAssassin
# 0.0540 -> 0.0537. Received: the top three hops, our relays and the one
# that handed the message to them; deeper hops are the sender's to forge.
IDENTITY_HEADERS = frozenset((
    "from", "return-path", "sender", "reply-to", "list-id", "list-unsubscribe", "errors-to",
    "list-post", "list-owner", "list-help", "x-mailing-list", "mailing-list", "x-beenthere",
    "x-mailer", "user-agent", "received", "message-id", "x-list", "precedence", "list-archive",
    "x-original-sender", "delivered-to", "dkim-signature", "domainkey-signature"))
IDENTITY_HOPS = 3

# What a model's ids mean. Every model file records VERSION and a CRC of
# SPEC (store/modelfile.py), and a model written by other features is
# refused instead of misread. Change anything that changes an id (a limit
# above, a token's form, the hashing, the family layout) and you must bump
# VERSION and describe the change in SPEC; tests/test_store.py pins the pair.
VERSION = 2
SPEC = (f"v{VERSION} mmh3-32 three families: words 1/4, identity 1/4, bytes 1/2 of the table; "
        f"words: lowercased, max_word={MAX_WORD} skip:, cjk bigrams, subject words, "
        f"headers={MAX_HEADERS} name+value tokens, received_hops={RECEIVED_HOPS}, "
        f"urls=200 host+tail+path words, attachments=50, meta html/notext, bias at the family's first id, binary; "
        f"identity: value words and @domains of {','.join(sorted(IDENTITY_HEADERS))}, "
        f"received hops 1-{IDENTITY_HOPS}, binary; "
        f"bytes: {RAW_GRAM}-grams of the first {RAW_BYTES} raw bytes without our X-CRM114 lines, binary")

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_HEADER_WORD = re.compile(r"[^\s<>\"'(),;:]+")
_URL_HOST = re.compile(r"^(?:[a-z]+://)?([^/?#:\s]+)(.*)$")
_PATH_WORD = re.compile(r"[a-z0-9]{2,20}")
_cjk_runs = None


def _cjk_split(piece: str) -> list:
    """A non-ASCII word split into CJK runs and other runs.

    Compiled on first use: a character class spanning the CJK blocks takes
    ~1.5 ms to compile, which an all-ASCII message need not pay at start-up.
    """
    global _cjk_runs
    if _cjk_runs is None:
        _cjk_runs = re.compile(f"([{_CJK}]+)")
    return _cjk_runs.split(piece)


def _clip(word: str) -> str:
    return word if len(word) <= MAX_WORD else f"skip:{word[0]}{len(word) // 10}"


def _cjk_grams(runs, out: list) -> None:
    """CJK runs (non-empty) as character bigrams, a lone character as itself."""
    for run in runs:
        if len(run) == 1:
            out.append(run)
        else:
            out.extend(run[i:i + 2] for i in range(len(run) - 1))


def words(text: str) -> list:
    """Body text -> word tokens in order, CJK runs as character bigrams."""
    out = []
    for piece in text.lower().split():
        if piece.isascii():
            out.append(_clip(piece))
            continue
        # re.split with one group alternates: other run, CJK run, other run, ...
        runs = _cjk_split(piece)
        for k, run in enumerate(runs):
            if k % 2:
                _cjk_grams((run,), out)
            elif run:
                out.append(_clip(run))
    return out


def header_tokens(headers, identity=None) -> list:
    """Every header's name, and its value's words tagged with the name.

    identity, if a list, also gets the tokens that say who sent the message
    and through whom (IDENTITY_HEADERS, the top IDENTITY_HOPS Received
    lines): the same strings, for the identity family.
    """
    out = []
    hops = 0
    for name, value in headers[:MAX_HEADERS]:
        out.append("H:" + name)
        keep = identity is not None and name in IDENTITY_HEADERS
        if name == "received":
            hops += 1
            if hops > RECEIVED_HOPS:
                continue
            keep = keep and hops <= IDENTITY_HOPS
        value = value.lower()
        prefix = name + ":"
        start = len(out)
        for word in _HEADER_WORD.findall(value):
            word = _clip(word)
            out.append(prefix + word)
            if "@" in word:
                out.append(prefix + "@" + word.rsplit("@", 1)[1])
        if keep:
            identity.extend(out[start:])
        if not value.isascii():
            grams = []
            for piece in value.split():
                if not piece.isascii():
                    _cjk_grams(_cjk_split(piece)[1::2], grams)
            out.extend(prefix + g for g in grams)
    return out


def url_tokens(urls) -> list:
    out = []
    for url in urls[:200]:
        m = _URL_HOST.match(url.lower())
        if not m:
            continue
        host, rest = m.group(1), m.group(2)
        out.append("url:" + host)
        labels = host.split(".")
        if len(labels) > 2:
            out.append("url:" + ".".join(labels[-2:]))
        out.extend("urlw:" + w for w in _PATH_WORD.findall(rest[:200]))
    return out


def _encode(tokens) -> list:
    # One join+encode+split in C instead of an encode call per token.
    if not tokens:
        return []
    joined = "\x00".join(t.replace("\x00", "") for t in tokens)
    return joined.encode("utf-8", "surrogatepass").split(b"\x00")


def family_ranges(bits: int) -> tuple:
    """Where each family's ids lie in a table of 2**bits: words, identity,
    byte grams. Words and identity get a quarter each, byte grams half:
    the byte family lost with a smaller share (trec07p 0.0056 -> 0.0063,
    SpamAssassin 0.0440 -> 0.0501 at 2**18), the words did not (2**19 or
    2**18: 0.0057/0.0433 against 0.0056/0.0440)."""
    quarter = 1 << (bits - 2)
    return ((0, quarter), (quarter, 2 * quarter), (2 * quarter, 4 * quarter))


def _hashed(tokens, base: int, size: int) -> set:
    mask = size - 1
    return {base | (h & mask) for h in map(mmh3.hash, _encode(tokens))}


def raw_grams(raw: bytes, base: int, size: int) -> set:
    """Byte 5-grams of the message start, hashed into the byte family's range."""
    raw = raw[:RAW_BYTES]
    mask = size - 1
    return {base | (h & mask) for h in map(mmh3.hash, [raw[i:i + RAW_GRAM] for i in range(len(raw) - RAW_GRAM + 1)])}


def feature_ids(view, raw: bytes, bits: int) -> tuple:
    """(word ids, identity ids, byte 5-gram ids): the three feature families,
    each a set of indexes into its own range of a table of 2**bits
    (family_ranges). raw is the message start as the byte family should see
    it: our own X-CRM114-* lines already out (Classifier.features)."""
    (words_base, words_end), (id_base, id_end), (bytes_base, bytes_end) = family_ranges(bits)
    body = []
    for text in view.texts:
        body.extend(words(text))
    # The subject's words count as text words too (as well as "subject:..."):
    # a word learned as spammy in bodies is spammy in a subject. 0.0521 ->
    # 0.0513, better in each of the three orders.
    for name, value in view.headers[:MAX_HEADERS]:
        if name == "subject":
            body.extend(words(value))
    identity = []
    other = header_tokens(view.headers, identity) + url_tokens(view.urls)
    other.extend(f"att:{ctype}" for ctype, _ in view.attachments[:50])
    other.extend("attname:" + name.rsplit(".", 1)[-1].lower()[:10] for _, name in view.attachments[:50] if "." in name)
    if view.html:
        other.append("meta:html")
    if not view.texts:
        other.append("meta:notext")

    body.extend(other)
    ids = _hashed(body, words_base, words_end - words_base)
    ids.add(words_base)      # bias: always on, learns the prior
    return (ids, _hashed(identity, id_base, id_end - id_base),
            raw_grams(raw, bytes_base, bytes_end - bytes_base))
