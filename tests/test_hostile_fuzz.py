"""The atheris fuzz target, for a fixed number of iterations (CI).

The long run is documented in tests/fuzz/fuzz_parser.py. Seeds: the shipped
samples and the charset cases, copied into a scratch corpus so the inputs
the fuzzer discovers don't land in the tree.
"""

import importlib.util
import os
import subprocess
import sys

from conftest import CHARSET_CASES, REPO, SAMPLES

RUNS = 20_000
TARGET = os.path.join(REPO, "tests", "fuzz", "fuzz_parser.py")


def test_fuzz_parser_fixed_iterations(tmp_path):
    assert importlib.util.find_spec("atheris"), (
        f"atheris is not installed for {sys.executable}: pip install atheris "
        "(the 'fuzz' extra in pyproject.toml; contrib/bootstrap.sh should install .[test,bench,fuzz])")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = subprocess.run(
        [sys.executable, TARGET, f"-runs={RUNS}", "-max_len=8192", "-timeout=10", "-rss_limit_mb=1024",
         "-seed=1", f"-artifact_prefix={tmp_path}/", str(corpus), CHARSET_CASES, SAMPLES],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    tail = result.stderr[-3000:]
    assert result.returncode == 0, f"the fuzzer found a crash (input saved in {tmp_path}):\n{tail}"
    assert f"Done {RUNS} runs" in result.stderr, tail
