"""atheris (libFuzzer) target for the parser and the tokenizer.

Each input is a raw message. Checked on every one:
  * rewrite_header gives the input minus X-CRM114-* fields plus our lines,
    exactly (against tests/hostile.py's independent reference_strip);
  * MessageReader, fed in small reads, loses and repeats nothing;
  * the MIME view, the features and a verdict come out without an exception.
Any exception or failed assertion is a crash, and libFuzzer saves the input.

CI runs a fixed number of iterations (tests/test_hostile_fuzz.py). The long
run, from the repository root:
    python3 tests/fuzz/fuzz_parser.py -max_len=65536 -timeout=10 -rss_limit_mb=512 \
        tests/fuzz/corpus-work tests/fuzz/seeds       (add -max_total_time=SECONDS)
"""

import os
import sys

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(os.path.dirname(HERE)), os.path.dirname(HERE)]

with atheris.instrument_imports():
    from mailfilter import charsets, classifier, features, rawmail, store, view  # noqa: F401
    from mailfilter.state import Config

from hostile import reference_strip  # noqa: E402  (plain Python: not instrumented, not under test)

CLASSIFIER = classifier.Classifier(Config(), store.empty(16))
OURS = [b"X-CRM114-Version: mailfilter fuzz", b"X-CRM114-Status: UNSURE ( 0.00 )"]


def TestOneInput(data: bytes) -> None:
    block = rawmail.scan_header(data)
    out = rawmail.rewrite_header(data, block, OURS)
    added = b"".join(line + block.eol for line in OURS)
    at = out.find(added)
    assert at >= 0 and (at == 0 or out[at - 1] in b"\r\n"), "our lines not on a line boundary"
    assert out[:at] + out[at + len(added):] == reference_strip(data), "bytes changed beyond our header lines"

    step = 1 + (data[0] % 7 if data else 0)
    pieces = iter([data[i:i + step] for i in range(0, len(data), step)])
    reader = rawmail.MessageReader(lambda n: next(pieces, b""))
    reader.read_prefix()
    assert reader.prefix + b"".join(reader.chunks()) == data, "reader lost or repeated bytes"

    message_view, ids = CLASSIFIER.features(data)
    assert message_view.text_chars <= 65536
    CLASSIFIER.verdict(data, block, message_view, ids)
    rawmail.content_digest(data)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
