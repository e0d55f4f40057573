"""Many users from one root process: a forked child per user, as that user.

Why a process per user rather than a thread: the child drops to the user's
uid and gid (setgroups, setgid, setuid) before it touches a single file of
theirs, and a uid is per process. It also means one user's corrupt model, full
disk or crash can't stop anyone else's training: the parent only watches its
children and restarts one that dies, with a growing delay (1 s, 2 s, 4 s, ...
up to 5 minutes; back to 1 s after it has run for 10 minutes).

SIGTERM or SIGINT to the parent is passed to every child; each finishes the
message in hand and exits; the parent waits for them and exits 0. SIGHUP
re-reads the config: the children are stopped the same way and started
again from the new list (a config with a mistake is logged and ignored).
"""

import logging
import os
import signal
import time

from mailfilter import exitcodes, privileges

from .watcher import Waker

RESTART_MIN = 1.0
RESTART_MAX = 300.0
HEALTHY_AFTER = 600.0
STOP_GRACE = 30.0
ONCE_PARALLEL = 8

log = logging.getLogger("maildir-train")


def preload() -> None:
    """Everything a child could import after dropping privileges, imported
    while still root (mailfilter.privileges.preload explains why)."""
    privileges.preload(("mailfilter", "maildir_train"))
    import logging.handlers  # noqa: F401 - the service's syslog handler, used after the switch


def drop_privileges(box) -> None:
    """Become the mailbox's account for good (mailfilter.privileges.become)."""
    privileges.become(privileges.Account(box.user, box.uid, box.gid, box.account_home))


class Supervisor:
    def __init__(self, boxes, run_child, once: bool, reread=None):
        self.run_child = run_child      # (box) -> exit code; runs in the child
        self.reread = reread            # () -> new boxes, for SIGHUP; raises on a bad config
        self.once = once
        self.waker = Waker()
        self.stopping = False
        self.reloading = False
        self.children = {}              # pid -> box
        self.exit_codes = {}            # --once: box.name -> code
        self._use(boxes)

    def _use(self, boxes) -> None:
        self.boxes = boxes
        self.started = {}               # box.name -> monotonic start time
        self.failures = {b.name: 0 for b in boxes}
        self.next_start = {b.name: 0.0 for b in boxes}

    def _on_stop(self, signum, frame):
        self.stopping = True

    def _on_hup(self, signum, frame):
        self.reloading = True

    def _reload(self) -> None:
        self.reloading = False
        try:
            boxes = self.reread()
        except Exception as err:
            log.error("SIGHUP: keeping the running config: %s", err)
            return
        log.info("SIGHUP: restarting the trainers with the new config")
        self._stop_children()
        self._use(boxes)

    def run(self) -> int:
        preload()
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda s, f: None)    # wakes select via the wakeup fd
        if self.reread is not None and not self.once:
            signal.signal(signal.SIGHUP, self._on_hup)
        self.waker.wake_on_signals()
        log.info("supervising %d mailbox(es)%s: %s", len(self.boxes), " once" if self.once else "",
                 ", ".join(b.name for b in self.boxes))
        while not self.stopping:
            if self.reloading:
                self._reload()
            self._reap()
            if self.once and len(self.exit_codes) == len(self.boxes):
                break
            self._start_due()
            self.waker.wait(self._sleep())
        self._stop_children()
        log.info("all trainers stopped")
        if self.once:
            return max(self.exit_codes.values(), default=0)
        return 0

    def _sleep(self):
        if self.once and len(self.children) >= ONCE_PARALLEL:
            return None                 # until a child exits (SIGCHLD)
        now = time.monotonic()
        waiting = [t for name, t in self.next_start.items()
                   if name not in self.exit_codes and name not in self._running_names()]
        return max(0.0, min(waiting) - now) if waiting else None

    def _running_names(self):
        return {b.name for b in self.children.values()}

    def _start_due(self) -> None:
        now = time.monotonic()
        running = self._running_names()
        for box in self.boxes:
            if box.name in running or box.name in self.exit_codes or self.next_start[box.name] > now:
                continue
            if self.once and len(self.children) >= ONCE_PARALLEL:
                return
            pid = self._fork(box)
            self.children[pid] = box
            self.started[box.name] = now
            running.add(box.name)

    def _fork(self, box) -> int:
        for handler in logging.getLogger().handlers:
            handler.flush()
        pid = os.fork()
        if pid:
            return pid
        code = exitcodes.SOFTWARE
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)     # the parent's business
            os.close(self.waker.r)
            os.close(self.waker.w)
            drop_privileges(box)
            code = self.run_child(box)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else exitcodes.SOFTWARE
        except BaseException:
            log.exception("%s: trainer crashed", box.name)
        finally:
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(code)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            box = self.children.pop(pid, None)
            if box is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.once:
                self.exit_codes[box.name] = code if code >= 0 else exitcodes.SOFTWARE
                continue
            if self.stopping:
                continue
            ran = time.monotonic() - self.started.get(box.name, 0)
            if ran >= HEALTHY_AFTER:
                self.failures[box.name] = 0
            self.failures[box.name] += 1
            delay = min(RESTART_MIN * 2 ** (self.failures[box.name] - 1), RESTART_MAX)
            self.next_start[box.name] = time.monotonic() + delay
            how = f"signal {-code}" if code < 0 else f"status {code}"
            log.warning("%s: trainer (pid %d) exited with %s after %.0f s; restarting in %.0f s",
                        box.name, pid, how, ran, delay)

    def _stop_children(self) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE
        while self.children and time.monotonic() < deadline:
            self._reap_quietly()
            if self.children:
                self.waker.wait(0.2)
        for pid, box in list(self.children.items()):
            log.error("%s: trainer (pid %d) did not stop in %.0f s; killing it", box.name, pid, STOP_GRACE)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.children.clear()

    def _reap_quietly(self) -> None:
        while self.children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.pop(pid, None)
