"""Wake the trainer when something lands in a learn folder.

An event only says "look again": the trainer then lists the folders and
handles whatever is there. So a lost event, a burst of 500, or a rename we
saw half of can't lose a message; the worst case is a later look. Wake-ups
come from:

* inotify (watchdog) on cur/ and new/ of each learn folder: creates, renames
  in (an IMAP MOVE or APPEND finishing), closes after write. tmp/ is not
  watched: a file there doesn't count until it is renamed.
* a kernel queue overflow. For non-recursive watches watchdog emits no event
  then, it only logs a warning, so we listen on its logger.
* a periodic rescan, the safety net for anything else (a folder deleted and
  recreated under the watch, an event the kernel never sent).

The waker is a pipe: the watchdog thread and signal handlers write a byte,
the main loop sleeps in select(). No locks are shared with signal handlers.
"""

import logging
import os
import select
import signal
import time

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

try:
    # watchdog holds each IN_MOVED_FROM for 0.5 s to pair it with its
    # IN_MOVED_TO, and everything queued behind it waits too. Every message we
    # file is a MOVED_FROM out of a watched folder, so the next message the
    # user moves would wait half a second for nothing: we never use the pairs
    # (any event means "look again"), so don't hold them.
    from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    InotifyMoveEventGrouper.delay = 0
except ImportError:         # pragma: no cover - older watchdog: only slower
    pass

# After a first event, wait until the folder has been quiet this long (or the
# first event is MAX_DELAY old) so a burst is handled in one batch.
QUIET = 0.1
MAX_DELAY = 1.0


class Waker:
    def __init__(self):
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def notify(self) -> None:
        try:
            os.write(self.w, b"!")
        except BlockingIOError:     # pipe full: a wake-up is already pending
            pass

    def wait(self, timeout) -> bool:
        """Sleep up to timeout (None: forever). True if woken, and drains the pipe."""
        if timeout is not None and timeout <= 0:
            ready = select.select([self.r], [], [], 0)[0]
        else:
            try:
                ready = select.select([self.r], [], [], timeout)[0]
            except InterruptedError:     # pragma: no cover - PEP 475 retries for us
                ready = [self.r]
        if ready:
            try:
                while os.read(self.r, 4096):
                    pass
            except BlockingIOError:
                pass
            return True
        return False

    def wait_for_quiet(self, stop) -> None:
        """After a wake-up: let a burst of events settle (debounce)."""
        deadline = time.monotonic() + MAX_DELAY
        while not stop() and time.monotonic() < deadline:
            if not self.wait(min(QUIET, deadline - time.monotonic())):
                return

    def wake_on_signals(self) -> None:
        signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)


class _Handler(FileSystemEventHandler):
    def __init__(self, waker):
        self.waker = waker

    def on_any_event(self, event):
        # Opened and read-only-closed events are our own reads; anything else
        # may be a message arriving (or a watched directory going away).
        if event.event_type not in ("opened", "closed_no_write"):
            self.waker.notify()


class _OverflowListener(logging.Handler):
    def __init__(self, waker, on_overflow):
        super().__init__(logging.WARNING)
        self.waker = waker
        self.on_overflow = on_overflow

    def emit(self, record):
        if "overflow" in record.getMessage().lower():
            self.on_overflow()
            self.waker.notify()


class FolderWatcher:
    """inotify watches on a set of directories, re-armed when they change."""

    def __init__(self, waker: Waker):
        self.waker = waker
        self.observer = None
        self.watched = {}            # path -> (st_dev, st_ino) when the watch was made
        self.overflows = 0
        self._listener = _OverflowListener(waker, self._overflowed)
        logging.getLogger("watchdog").addHandler(self._listener)

    def _overflowed(self):
        self.overflows += 1

    def watch(self, paths) -> bool:
        """Watch exactly these directories; re-arm if any was replaced since. True if (re)armed."""
        identity = {}
        for path in paths:
            try:
                st = os.stat(path, follow_symlinks=False)
                identity[path] = (st.st_dev, st.st_ino)
            except OSError:
                identity[path] = None
        if identity == self.watched and self.observer is not None and self.observer.is_alive():
            return False
        self.stop()
        self.observer = Observer()
        handler = _Handler(self.waker)
        for path, ident in identity.items():
            if ident is not None:
                self.observer.schedule(handler, path, recursive=False)
        self.observer.daemon = True
        self.observer.start()
        self.watched = identity
        return True

    def stop(self) -> None:
        if self.observer is not None:
            if self.observer.is_alive():
                self.observer.stop()
                self.observer.join(timeout=5)
            self.observer = None
