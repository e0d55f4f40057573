"""The byte invariant: output = input - forged X-CRM114-* + our header lines."""

import pytest

from conftest import assert_passthrough, remove_forged, run_mailfilter, status_of
from mailfilter.rawmail import MessageReader, content_digest, rewrite_header, scan_header

CASES = {
    "lf": b"From: a@example.com\nSubject: hi\n\nbody\n",
    "crlf": b"From: a@example.com\r\nSubject: hi\r\n\r\nbody line\r\nmore\r\n",
    "bare_cr": b"From: a@example.com\rSubject: hi\r\rbody\r",
    "mbox_from_line": b"From a@example.com Mon Sep  2 10:00:00 2024\nFrom: a@example.com\nSubject: x\n\nbody\n",
    "eight_bit": b"From: a@example.com\nSubject: caf\xe9 \xff\xfe\n\n\x80\x81 invalid utf-8 \xc3\x28\n",
    "no_body": b"From: a@example.com\nSubject: only headers\n",
    "no_body_no_final_newline": b"From: a@example.com\nSubject: only headers",
    "no_separator": b"From: a@example.com\nSubject: x\nthis line is body, not a header\nmore\n",
    "no_headers": b"just a line of text\nand another\n",
    "empty": b"",
    "separator_only": b"\n",
    "forged": b"From: a@example.com\nX-CRM114-Status: GOOD ( 99.99 )\nSubject: x\n\nbody\n",
    "forged_case_folded": b"From: a\nx-crm114-STATUS: GOOD\n  ( 99.99 )\nX-Crm114-Notice:\n\tfolded\nSubject: x\n\nbody\n",
    "forged_last_unterminated": b"From: a\nX-CRM114-Status: GOOD ( 1 )",
    "forged_in_body_kept": b"From: a\n\nX-CRM114-Status: GOOD ( 99.99 )\n",
    # procmail reads up to the blank line as header, junk line or not.
    "forged_after_non_header_line": b"From: a\nthis is no header\nX-CRM114-Status: GOOD ( 99.99 )\n\tfolded\n\nbody\n",
    "nul_bytes": b"From: a\x00b\nSubject: \x00\n\n\x00\x00body\n",
    "mixed_endings": b"From: a\r\nSubject: b\n\r\nbody\rmore\n",
    "message_id_kept": b"Message-Id: <abc@example.com>\nFrom: a\n\nbody\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_filter_output_is_input_plus_headers(name, home):
    data = CASES[name]
    result = run_mailfilter([], data, home)
    assert result.returncode == 0, result.stderr
    assert_passthrough(data, result.stdout)


def test_our_lines_use_the_message_line_ending(home):
    crlf = run_mailfilter([], CASES["crlf"], home).stdout
    assert b"X-CRM114-Status: UNSURE ( 0.00 )\r\n" in crlf
    assert b"\n" not in crlf.replace(b"\r\n", b"")
    cr = run_mailfilter([], CASES["bare_cr"], home).stdout
    assert b"\n" not in cr and b"X-CRM114-Status: UNSURE ( 0.00 )\r" in cr


def test_headers_go_at_end_of_header_block_and_mbox_line_stays_first(home):
    out = run_mailfilter([], CASES["mbox_from_line"], home).stdout
    assert out.startswith(b"From a@example.com Mon Sep  2 10:00:00 2024\nFrom: a@example.com\nSubject: x\nX-CRM114-Version:")
    assert out.endswith(b"\n\nbody\n")


def test_forged_headers_never_survive(home):
    out = run_mailfilter([], CASES["forged_case_folded"], home).stdout
    assert b"99.99" not in out and b"folded" not in out
    assert out.lower().count(b"x-crm114-status") == 1
    assert status_of(out) == "UNSURE ( 0.00 )"


def test_forged_header_after_a_junk_line_is_removed_too(home):
    out = run_mailfilter([], CASES["forged_after_non_header_line"], home).stdout
    assert b"99.99" not in out and b"folded" not in out
    assert out.endswith(b"this is no header\n\nbody\n")


def test_message_id_is_never_rewritten(home):
    out = run_mailfilter([], CASES["message_id_kept"], home).stdout
    assert b"Message-Id: <abc@example.com>\n" in out


def test_large_message_streams_through_unchanged(home):
    # 20 MB body: passes whole, classified on a prefix.
    body = (b"x" * 1023 + b"\n") * (20 * 1024)
    data = b"From: a\nSubject: big\n\n" + body
    result = run_mailfilter([], data, home)
    assert result.returncode == 0
    assert_passthrough(data, result.stdout)


def test_reader_keeps_only_a_bounded_prefix():
    data = b"Subject: x\n\n" + b"y" * (5 * 1024 * 1024)
    chunks = iter([data[i:i + 65536] for i in range(0, len(data), 65536)])
    reader = MessageReader(lambda n: next(chunks, b""))
    block = reader.read_prefix()
    assert block.body_start == 12
    assert len(reader.prefix) <= 12 + 256 * 1024 + 65536
    rest = b"".join(reader.chunks())
    assert reader.prefix + rest == data


def test_ten_megabyte_header_line_is_found_and_kept():
    data = b"Subject: " + b"a" * (10 * 1024 * 1024) + b"\nFrom: b\n\nbody\n"
    chunks = iter([data[i:i + 65536] for i in range(0, len(data), 65536)])
    reader = MessageReader(lambda n: next(chunks, b""))
    block = reader.read_prefix()
    assert [f.name for f in block.fields] == [b"Subject", b"From"]
    out = rewrite_header(reader.prefix, block, [b"X-CRM114-Status: GOOD ( +1.00 )"]) + b"".join(reader.chunks())
    assert out == data.replace(b"From: b\n", b"From: b\nX-CRM114-Status: GOOD ( +1.00 )\n")


def test_digest_ignores_our_headers_line_endings_and_mbox_line():
    plain = b"From: a\nSubject: x\n\nbody\n"
    delivered = b"From a Mon Sep  2 10:00:00 2024\r\nFrom: a\r\nSubject: x\r\nX-CRM114-Status: SPAM ( -5.00 )\r\n\r\nbody\r\n"
    assert content_digest(plain) == content_digest(delivered)
    assert content_digest(plain) != content_digest(plain.replace(b"body", b"other"))


def test_independent_reference_agrees_with_scan():
    # remove_forged (the tests' own simple reading) and the filter agree.
    for data in CASES.values():
        block = scan_header(data)
        assert rewrite_header(data, block, []) == remove_forged(data)
