"""`mailfilter serve` under load, with faults, through Debian's real spamc.

* 10,000 generated messages from 16 parallel spamc clients: every one comes
  back byte for byte as sent, minus forged X-CRM114-* headers, plus ours.
* The daemon killed (SIGKILL, server and workers) in the middle of a load:
  no message is lost; those caught after the kill come back exactly as sent
  (spamc's safe fallback), the others marked; started again, it marks
  every message of the next load.
* Learning during a load (spamc -L, `mailfilter learn`): every learn
  succeeds, every message still comes back whole, and the model is sound.

Nothing here is timed; throughput is measured in bench/serve.py.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import loadgen
from conftest import assert_passthrough, run_mailfilter, status_of, train_on_samples
from serve_daemon import Daemon, spamc

CLIENTS = 16


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("load") / "state"
    train_on_samples(home, passes=3)
    for i in range(40):      # and some of the generated mail, so all three verdicts occur
        data = loadgen.message(100_000 + i)
        label = "--spam" if b"free" in data or b"cash" in data else "--good"
        assert run_mailfilter(["learn", label, "-q"], data, home).returncode == 0
    return home


def run_load(socket_path, batch, on_progress=None):
    done = [0]
    lock = threading.Lock()

    def one(data):
        r = spamc(socket_path, data=data, timeout=300)
        with lock:
            done[0] += 1
            if on_progress:
                on_progress(done[0])
        return r

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, batch))


@pytest.mark.slow
def test_ten_thousand_messages_from_sixteen_clients_all_byte_exact(tmp_path, trained):
    batch = loadgen.messages(10_000)
    with Daemon(tmp_path, trained) as d:
        results = run_load(d.socket, batch)
    verdicts = {}
    for data, r in zip(batch, results):
        assert r.returncode == 0, r.stderr
        assert_passthrough(data, r.stdout)
        status = status_of(r.stdout)
        assert status != "UNSURE ( 0.00 )" or b"could not classify" not in r.stdout
        verdicts[status.split()[0]] = verdicts.get(status.split()[0], 0) + 1
    assert set(verdicts) == {"SPAM", "GOOD", "UNSURE"}, verdicts
    assert "request failed" not in d.log() and "dropped" not in d.log(), d.log()[-2000:]


@pytest.mark.slow
def test_daemon_killed_mid_load_loses_no_message(tmp_path, trained):
    during = loadgen.messages(2000, start=20_000)
    after = loadgen.messages(1000, start=30_000)
    d = Daemon(tmp_path, trained)
    d.start()
    killed = threading.Event()

    def on_progress(n):
        if n == 500 and not killed.is_set():
            killed.set()
            d.kill()                     # SIGKILL to the server and every worker, mid-load

    try:
        results = run_load(d.socket, during, on_progress)
        assert killed.is_set()
        d.start()                        # back again: every message is marked once more
        results_after = run_load(d.socket, after)
    finally:
        d.stop()
    marked = unchanged = 0
    for data, r in zip(during, results):
        assert r.returncode == 0, r.stderr
        if r.stdout == data:
            unchanged += 1               # spamc's safe fallback: the daemon was gone
        else:
            assert_passthrough(data, r.stdout)
            marked += 1
    assert marked >= 500 and unchanged > 0, (marked, unchanged)
    for data, r in zip(after, results_after):
        assert r.returncode == 0, r.stderr
        assert_passthrough(data, r.stdout)


@pytest.mark.slow
def test_learning_during_the_load(tmp_path, trained):
    import shutil
    home = tmp_path / "state"
    shutil.copytree(trained, home)
    batch = loadgen.messages(2000, start=40_000)
    taught = [loadgen.message(90_000 + i) for i in range(12)]
    outcomes = []
    with Daemon(tmp_path, home) as d:
        def learner():
            for i, data in enumerate(taught):
                if i % 2:
                    r = spamc(d.socket, ["-L", "spam"], data)
                    outcomes.append((r.returncode, r.stdout))
                else:
                    r = run_mailfilter(["learn", "--spam", "-q"], data, home)
                    outcomes.append((r.returncode, b"cli"))
                time.sleep(0.2)
        thread = threading.Thread(target=learner)
        thread.start()
        results = run_load(d.socket, batch)
        thread.join()
        # Every taught message is SPAM now, through the daemon and the pipe filter.
        for data in taught:
            assert status_of(spamc(d.socket, data=data).stdout).startswith("SPAM")
            assert status_of(run_mailfilter([], data, home).stdout).startswith("SPAM")
    assert [code for code, _ in outcomes] == [0] * len(taught)
    assert all(out in (b"cli", b"Message successfully un/learned\n") for _, out in outcomes), outcomes
    for data, r in zip(batch, results):
        assert r.returncode == 0
        assert_passthrough(data, r.stdout)
        assert b"could not classify" not in r.stdout
