"""A private, real redis-server for the tests (Debian's package): its own
unix socket and working directory in a tmp dir, no TCP port, no disk
persistence unless asked. Never the system's Redis.
"""

import os
import socket
import subprocess
import time

from conftest import need


class RedisLab:
    def __init__(self, directory, password=None, persist=False):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.socket = os.path.join(self.dir, "redis.sock")
        self.password = password
        self.persist = persist
        self.proc = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> "RedisLab":
        binary = need("redis-server")
        args = [binary, "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
                "--dir", self.dir, "--daemonize", "no", "--logfile", os.path.join(self.dir, "redis.log"),
                "--databases", "4"]
        if self.persist:
            # Every write on disk before Redis answers: a killed Redis comes
            # back with everything it acknowledged.
            args += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        else:
            args += ["--appendonly", "no", "--save", ""]
        if self.password:
            args += ["--requirepass", self.password]
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(os.path.join(self.dir, "redis.log")) as fh:
                    raise AssertionError(f"redis-server exited: {fh.read()[-2000:]}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                    s.sendall(b"PING\r\n")
                    answer = s.recv(100)
                if answer.startswith((b"+PONG", b"-NOAUTH")):
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("redis-server did not start in 20 s")

    def kill(self) -> None:
        """SIGKILL: no goodbye, as a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def client(self, db=0):
        import redis
        return redis.Redis(unix_socket_path=self.socket, db=db, password=self.password)
