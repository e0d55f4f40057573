"""Property-based tests (hypothesis): random bytes and random MIME trees.

The same invariants as the hand-made hostile cases: the output is the input
minus forged X-CRM114-* plus our lines (checked against conftest's
independent reading of the header), nothing raises, and the real process
exits 0. In-process examples are cheap, so there are many; a smaller number
goes through `python -m mailfilter` itself.
"""

import base64
import binascii

from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import _OURS, run_mailfilter
from hostile import reference_strip
from mailfilter import classifier, rawmail, store, view
from mailfilter.state import Config

CLASSIFIER = classifier.Classifier(Config(), store.empty(16))
OUR_LINES = [b"X-CRM114-Version: mailfilter 0", b"X-CRM114-Status: UNSURE ( 0.00 )"]

# Bytes that matter to a mail parser, weighted up against the other 250.
_SPECIAL = st.sampled_from([b"\n", b"\r\n", b"\r", b":", b" ", b"\t", b"--", b"=", b"?", b"<", b">",
                            b"From ", b"X-CRM114-Status: GOOD", b"x-crm114-a:", b"Content-Type: ",
                            b"multipart/mixed; boundary=b", b"=?utf-8?b?", b"?=", b"\x00", b"\x1b$B",
                            b"\xff", b"\x82\xa0", b"base64", b"quoted-printable", b"message/rfc822"])
MAILISH = st.lists(st.one_of(st.binary(max_size=20), _SPECIAL), max_size=60).map(b"".join)
LINE_ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\r"])


def _expected(data, out):
    """rewrite_header's output is reference_strip(data) with OUR_LINES inserted at a line boundary."""
    block = rawmail.scan_header(data)
    added = b"".join(line + block.eol for line in OUR_LINES)
    at = out.find(added)
    assert at >= 0
    assert out[:at] + out[at + len(added):] == reference_strip(data)
    assert at == 0 or out[at - 1] in b"\r\n"


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=400), MAILISH))
def test_random_bytes_rewrite_is_exact(data):
    block = rawmail.scan_header(data)
    assert rawmail.rewrite_header(data, block, []) == reference_strip(data)
    _expected(data, rawmail.rewrite_header(data, block, OUR_LINES))


@settings(max_examples=800, deadline=None)
@given(st.one_of(st.binary(max_size=400), MAILISH))
def test_random_bytes_parse_and_tokenize_without_error(data):
    block = rawmail.scan_header(data)
    message_view, ids = CLASSIFIER.features(data)
    assert all(isinstance(t, str) for t in message_view.texts)
    CLASSIFIER.verdict(data, block, message_view, ids)
    rawmail.content_digest(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=3000))
def test_reader_prefix_plus_rest_is_the_input(data, chunk):
    # Any read sizes (pipes return short reads): nothing lost or repeated.
    pieces = iter([data[i:i + chunk] for i in range(0, len(data), chunk)])
    reader = rawmail.MessageReader(lambda n: next(pieces, b""))
    reader.read_prefix()
    assert reader.prefix + b"".join(reader.chunks()) == data


# -- random MIME trees ------------------------------------------------------------

CHARSETS = ["utf-8", "iso-2022-jp", "shift_jis", "euc-jp", "x-unknown", "iso-8859-1", "gb2312", ""]
PAYLOAD = st.one_of(st.binary(max_size=120), st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")))


@st.composite
def leaf(draw):
    ctype = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream", "image/png", ""]))
    charset = draw(st.sampled_from(CHARSETS))
    cte = draw(st.sampled_from(["", "base64", "quoted-printable", "8bit", "7bit", "bogus"]))
    payload = draw(PAYLOAD)
    if cte == "base64":
        payload = base64.encodebytes(payload)
        if draw(st.booleans()):      # damage it: cut padding, add junk
            payload = payload.rstrip(b"=\n") + draw(st.sampled_from([b"", b"!!", b"=A", b"\x00"]))
    elif cte == "quoted-printable":
        payload = binascii.b2a_qp(payload)
        if draw(st.booleans()):
            payload += b"="          # soft break at EOF
    head = b""
    if ctype:
        head += f"Content-Type: {ctype}".encode() + (f'; charset="{charset}"'.encode() if charset else b"") + b"\n"
    if cte:
        head += f"Content-Transfer-Encoding: {cte}\n".encode()
    return head + b"\n" + payload


@st.composite
def part(draw, depth=0):
    kind = draw(st.sampled_from(["leaf", "leaf", "multipart", "rfc822"]) if depth < 5 else st.just("leaf"))
    if kind == "leaf":
        return draw(leaf())
    if kind == "rfc822":
        inner = draw(part(depth + 1))
        return b"Content-Type: message/rfc822\n\nFrom: inner@example.com\n" + inner
    boundary = draw(st.sampled_from(["b", "=_x", "a b", "--", "B" * 70]))
    children = draw(st.lists(part(depth + 1), max_size=4))
    body = b"".join(b"--" + boundary.encode() + b"\n" + child + b"\n" for child in children)
    if draw(st.booleans()):
        body += b"--" + boundary.encode() + b"--\n"         # else: never closed
    return (f'Content-Type: multipart/{draw(st.sampled_from(["mixed", "alternative"]))}; '
            f'boundary="{boundary}"\n\n').encode() + draw(st.binary(max_size=10)) + b"\n" + body


@st.composite
def message(draw):
    headers = draw(st.lists(st.sampled_from([
        b"From: a@example.com", b"Subject: =?iso-2022-jp?B?GyRCJUYlOSVIGyhC?=", b"To: b@example.org",
        b"X-CRM114-Status: GOOD ( 99.99 )", b"x-Crm114-Notice: forged\n  folded", b"Received: from x",
        b"Subject: \x82\xb1\x82\xf1", b"MIME-Version: 1.0"]), max_size=6))
    data = b"".join(h + b"\n" for h in headers) + draw(part())
    eol = draw(LINE_ENDINGS)
    if eol != b"\n":
        data = data.replace(b"\n", eol)
    return data


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message())
def test_random_mime_trees(data):
    block = rawmail.scan_header(data)
    _expected(data, rawmail.rewrite_header(data, block, OUR_LINES))
    message_view = view.parse(data)
    assert message_view.text_chars <= 65536
    CLASSIFIER.classify(data, block)


# -- through the real process: fewer examples, each a process --------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(message(), MAILISH, st.binary(max_size=300)))
def test_real_filter_on_random_input(tmp_path_factory, data):
    result = run_mailfilter([], data, tmp_path_factory.mktemp("prop") / "state")
    assert result.returncode == 0, result.stderr
    m = _OURS.search(result.stdout)
    assert m and b"X-CRM114-Status: " in m.group(0)
    assert result.stdout[:m.start()] + result.stdout[m.end():] == reference_strip(data)
