"""Start and stop a real `mailfilter serve` for a test, and run the real spamc against it."""

import os
import signal
import socket
import subprocess
import time

from conftest import MAILFILTER, env_for, need


class Daemon:
    """`mailfilter serve` in the background, on a private socket in a tmp dir."""

    def __init__(self, tmp_path, home=None, args=(), env=None, name="spamd.sock", preexec_fn=None):
        self.socket = str(tmp_path / name)
        self.log_path = tmp_path / f"{name}.log"
        self.home = home
        argv = MAILFILTER + ["serve", "--socket", self.socket] + list(args)
        if home is not None:
            argv += ["--home", str(home)]
        self.argv = argv
        self.env = env if env is not None else env_for(home)
        self.preexec_fn = preexec_fn
        self.proc = None

    def start(self, timeout=30.0):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     env=self.env, preexec_fn=self.preexec_fn, start_new_session=True)
        wait_for_ping(self.socket, self.proc, timeout, self.log)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self, sig=signal.SIGKILL):
        """Kill the daemon and its workers at once (the whole session)."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc:
            # Workers left behind by a killed server (never the case after SIGTERM).
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if getattr(self, "_log", None):
            self._log.close()
        return self.proc.returncode if self.proc else None

    def worker_pids(self):
        pids = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.proc.pid:
                    pids.append(int(pid))
        return pids

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def ping(path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(b"PING SPAMC/1.5\r\n\r\n")
            return s.recv(100).startswith(b"SPAMD/1.5 0 PONG")
    except OSError:
        return False


def wait_for_ping(path, proc, timeout, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mailfilter serve exited {proc.returncode}: {log()}")
        if ping(path):
            return
        time.sleep(0.05)
    raise AssertionError(f"mailfilter serve did not answer PING in {timeout} s: {log()}")


SPAMC_MAX = str(256 * 1024 * 1024 - 1)      # spamc's own ceiling (SPAMC_MAX_MESSAGE_LEN)


def spamc(socket_path, args=(), data=b"", user=None, timeout=120, **kw):
    """The real spamc (Debian's), with -s at spamc's ceiling so no message is
    skipped for its size."""
    argv = [need("spamc"), "-U", socket_path, "-s", SPAMC_MAX]
    if user:
        argv += ["-u", user]
    return subprocess.run(argv + list(args), input=data, capture_output=True, timeout=timeout, **kw)
