"""Downloads into the cache, verified against the published .md5: from a
file:// URL and from a real HTTP server on 127.0.0.1. A failed check keeps
the previous good copy, writes no output and exits non-zero."""

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(REPO, "tests", "fixtures", "rir", "delegated-apnic-sample")
NAME = "delegated-apnic-latest"


def krfilter(*args):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "mailfilter", "krfilter", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=60)


def publish(directory, data: bytes, md5_style="bsd", md5_of=None):
    """Lay out a registry's stats directory: the file and its .md5."""
    (directory / NAME).write_bytes(data)
    digest = hashlib.md5(md5_of if md5_of is not None else data).hexdigest()
    md5 = f"MD5 ({NAME}) = {digest}\n" if md5_style == "bsd" else f"{digest}  {NAME}\n"
    (directory / f"{NAME}.md5").write_text(md5)


@pytest.fixture
def site(tmp_path):
    d = tmp_path / "site"
    d.mkdir()
    return d


@pytest.fixture
def http_site(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def cache_listing(cache):
    return sorted(os.listdir(cache))


def test_file_url_fetch_then_md5_mismatch_keeps_good_copy(site, tmp_path):
    good = open(SAMPLE, "rb").read()
    publish(site, good)
    cache, out = tmp_path / "cache", tmp_path / "kr.cidr"
    url = f"file://{site}/{NAME}"

    res = krfilter("--fetch", "--url", url, "--cache", cache, "-c", "KR", "-f", "cidr", "-o", out)
    assert res.returncode == 0, res.stderr
    assert "updated (MD5 verified)" in res.stderr
    assert (cache / NAME).read_bytes() == good
    first = out.read_text()
    assert "1.11.0.0/16" in first

    # Same file again: verified, unchanged.
    res = krfilter("--fetch", "--url", url, "--cache", cache, "-c", "KR", "-f", "cidr", "-o", out)
    assert res.returncode == 0 and "unchanged (MD5 verified)" in res.stderr

    # The mirror now serves a corrupted file (the .md5 is for the good one).
    publish(site, good.replace(b"1.11.0.0", b"1.99.0.0"), md5_of=good)
    res = krfilter("--fetch", "--url", url, "--cache", cache, "-c", "KR", "-f", "cidr", "-o", out)
    assert res.returncode == 65, res.stderr
    assert "MD5 mismatch" in res.stderr and "kept the previous copy" in res.stderr
    assert (cache / NAME).read_bytes() == good
    assert cache_listing(cache) == [NAME]            # no temp file left behind
    assert out.read_text() == first                  # nothing written

    # Without --fetch, the cache's good copy is what gets read.
    res = krfilter("--cache", cache, "-c", "KR", "-f", "cidr")
    assert res.returncode == 0 and res.stdout == first


def test_http_fetch_md5sum_form(http_site, tmp_path):
    site, base = http_site
    publish(site, open(SAMPLE, "rb").read(), md5_style="md5sum")
    cache = tmp_path / "cache"
    res = krfilter("--fetch", "--url", f"{base}/{NAME}", "--cache", cache, "--preset", "krfilter", "-f", "cidr")
    assert res.returncode == 0, res.stderr
    assert "175.45.176.0/22" in res.stdout           # KP
    assert cache_listing(cache) == [NAME]


def test_http_mismatch_without_previous_copy(http_site, tmp_path):
    site, base = http_site
    publish(site, open(SAMPLE, "rb").read(), md5_style="md5sum", md5_of=b"something else")
    cache = tmp_path / "cache"
    res = krfilter("--fetch", "--url", f"{base}/{NAME}", "--cache", cache, "-c", "KR")
    assert res.returncode == 65
    assert "no previous copy to keep" in res.stderr
    assert cache_listing(cache) == []


def test_http_missing_file_is_temporary_failure(http_site, tmp_path):
    site, base = http_site
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(SAMPLE, cache / NAME)
    res = krfilter("--fetch", "--url", f"{base}/{NAME}", "--cache", cache, "-c", "KR", "-o", tmp_path / "out")
    assert res.returncode == 75, res.stderr
    assert "download failed" in res.stderr and "404" in res.stderr
    assert (cache / NAME).read_bytes() == open(SAMPLE, "rb").read()
    assert not (tmp_path / "out").exists()


def test_md5_file_that_is_not_an_md5(http_site, tmp_path):
    site, base = http_site
    (site / NAME).write_bytes(open(SAMPLE, "rb").read())
    (site / f"{NAME}.md5").write_text("<html>maintenance</html>\n")
    res = krfilter("--fetch", "--url", f"{base}/{NAME}", "--cache", tmp_path / "c", "-c", "KR")
    assert res.returncode == 65
    assert f"{base}/{NAME}.md5:1: not an MD5 line" in res.stderr
