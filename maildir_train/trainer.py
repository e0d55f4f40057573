"""One scan of one user's learn folders: read, learn, file. No loop, no signals.

The order is what makes it safe to kill at any instant:

1. read each message in learn-spam/ and learn-good/ (cur/ and new/);
2. learn the batch in one mailfilter.learning.learn_messages call, which
   saves model and core ledger together or not at all;
3. only then move each message out, by atomic rename.

Killed before 3 finishes, the messages are still in the learn folder; the
next scan learns them again, and the core ledger (keyed by content digest,
never by file name) says "skipped", so nothing is trained twice. Killed
before 2 finished, the model and ledger are the old ones and the messages
are learned once, then. A move that fails leaves the message where it is;
it is retried later. Nothing here deletes a message unless the user chose
spam-action=delete for spam.

The trainer knows nothing about tokens: learn_messages does all of that.
"""

import errno
import logging
import os
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from itertools import zip_longest

from mailfilter.classifier import format_pr
from mailfilter.learning import learn_messages
from mailfilter.errors import ConfigError
from mailfilter.atomicfile import replace
from mailfilter.state import open_state, read_regular
from mailfilter.store import ModelError

from . import maildir as md
from .config import Mailbox
from .subscriptions import subscribe

LEARN_FOLDERS = (("learn-spam", "spam"), ("learn-good", "good"))
# One learn_messages call (one 8 MB model rewrite) per this many messages;
# small enough that SIGTERM is answered within a fraction of a second.
BATCH = 200
# ... and per this many bytes of what learning holds of them (each message's
# header block and 256 KiB of body): 40 hard links to one file with a 32 MB
# header once drove the trainer to 1.44 GB (7 GB with a batch of 200). A
# message bigger than this is learned in a batch of its own. With it, the
# trainer stays under 100 MB (README "Figures").
BATCH_BYTES = 16 * 1024 * 1024
# Refusals are remembered here, in the state directory, so that `--once`
# from cron does not warn about the same socket every five minutes.
REFUSED_NAME = "maildir-train.refused"
# A message the library choked on: refused for this run only (a later
# mailfilter may learn it).
UNLEARNABLE = "cannot be learned"
# A file still being written (Busy) is looked at again after this long.
BUSY_RETRY = 0.5
MAX_BACKOFF = 900.0

log = logging.getLogger("maildir-train")


@dataclass
class Counters:
    learned: dict = field(default_factory=lambda: {"spam": 0, "good": 0})
    corrected: int = 0
    skipped: int = 0
    deleted: int = 0
    refused: int = 0
    vanished: int = 0
    move_failures: int = 0
    learn_failures: int = 0

    def line(self) -> str:
        total = sum(self.learned.values())
        return (f"{total} learned ({self.learned['spam']} spam, {self.learned['good']} good), "
                f"{self.corrected} of them corrections, {self.skipped} already known, "
                f"{self.deleted} spam deleted, {self.refused} refused, {self.vanished} vanished, "
                f"{self.move_failures} failed moves, {self.learn_failures} failed learns")


@dataclass
class ScanResult:
    handled: int = 0                 # messages learned (or skipped) and filed
    waiting: int = 0                 # messages left for a later try
    retry_at: float = None           # time.monotonic() of the earliest retry
    unusable: str = None             # why the Maildir could not be used at all


class Trainer:
    def __init__(self, box: Mailbox, retry: float = 30.0, batch: int = BATCH):
        self.box = box
        self.retry = retry
        self.batch = batch
        self.layout = box.layout if box.layout != "auto" else md.detect_layout(box.maildir)
        self.counters = Counters()
        self.prepared = False
        self._refused = {}           # (folder, sub, name, inode) -> reason, logged once
        self._not_before = {}        # (folder, sub, name) -> monotonic time
        self._learn_failures = 0     # consecutive, for the back-off
        self._learn_not_before = 0.0
        self._last_problem = None    # last one-off problem logged, to log it once
        self._refused_loaded = False
        self._refused_changed = False

    # -- paths for the watcher --------------------------------------------------------------

    def watch_paths(self) -> list:
        return [os.path.join(self.box.maildir, md.folder_dirname(f, self.layout), sub)
                for f, _ in LEARN_FOLDERS for sub in ("new", "cur")]

    def _problem(self, text: str, level=logging.WARNING) -> None:
        """Log a condition once, not on every retry."""
        if text != self._last_problem:
            log.log(level, "%s: %s", self.box.name, text)
            self._last_problem = text

    # -- set-up ------------------------------------------------------------------------------

    def prepare(self, maildir: md.Maildir) -> None:
        """Create the learn folders (and INBOX's cur/) when missing; subscribe them."""
        created = [f for f, _ in LEARN_FOLDERS if maildir.ensure_folder(f)]
        maildir.ensure_folder(md.INBOX)
        if created:
            log.info("%s: created %s in %s (%s layout)", self.box.name,
                     ", ".join(maildir.display(f, "", "") for f in created), self.box.maildir, self.layout)
        folders = [f for f, _ in LEARN_FOLDERS]
        # A spam folder that exists already (Junk made by a recipe or by the
        # user) is subscribed too, or clients that list only subscribed
        # folders never show where learned spam goes.
        if self.box.spam_action == "move" and _is_dir(maildir.fd, md.folder_dirname(self.box.spam_folder,
                                                                                     self.layout)):
            folders.append(self.box.spam_folder)
        self._subscribe(maildir, folders)
        self.prepared = True

    def _subscribe(self, maildir, folders) -> None:
        """Subscribing is a courtesy to IMAP clients: its failure never stops training."""
        try:
            added = subscribe(maildir.fd, folders, self.box.uid)
        except OSError as err:
            self._problem(f"cannot update the subscriptions file: {_why(err)}")
            return
        if added:
            log.info("%s: subscribed %s", self.box.name, ", ".join(added))

    # -- one scan ----------------------------------------------------------------------------

    def scan(self, stop=lambda: False) -> ScanResult:
        """Handle everything now in the learn folders. Never raises for one message's trouble."""
        result = ScanResult()
        now = time.monotonic()
        if now < self._learn_not_before:
            result.retry_at = self._learn_not_before
            return result
        try:
            maildir = md.Maildir(self.box.maildir, self.layout, self.box.uid)
        except (OSError, md.Refused) as err:
            result.unusable = f"cannot open Maildir {self.box.maildir}: {_why(err)}"
            self._problem(f"{result.unusable}; will look again")
            result.retry_at = now + self.retry
            return result
        with maildir:
            try:
                if not self.prepared:
                    self.prepare(maildir)
                entries = self._entries(maildir, now, result)
                self._last_problem = None
            except (OSError, md.Refused) as err:
                self.prepared = False
                result.unusable = f"cannot set up the learn folders in {self.box.maildir}: {_why(err)}"
                self._problem(result.unusable)
                result.retry_at = now + self.retry
                return result
            start = 0
            while start < len(entries):
                if stop():
                    result.waiting += len(entries) - start
                    break
                ok, used = self._batch(maildir, entries[start:start + self.batch], result)
                start += used
                if not ok:
                    result.waiting += len(entries) - start
                    break
            self._save_refused()
        if self._not_before:
            soonest = min(self._not_before.values())
            result.retry_at = soonest if result.retry_at is None else min(result.retry_at, soonest)
        return result

    # -- refusals, remembered across runs -------------------------------------------------

    def _refused_path(self) -> str:
        return os.path.join(self.box.home, REFUSED_NAME)

    def _load_refused(self) -> None:
        """Refusals of earlier runs: one line each, inode and the hex of the
        folder, sub and name (names may hold any byte but / and NUL)."""
        self._refused_loaded = True
        try:
            text = read_regular(self._refused_path()).decode("ascii")
        except (OSError, UnicodeDecodeError):
            return
        for line in text.splitlines():
            try:
                inode, *parts = line.split()
                folder, sub, name = (os.fsdecode(bytes.fromhex(p)) for p in parts)
                self._refused.setdefault((folder, sub, name, int(inode)), "refused before")
            except ValueError:
                continue

    def _save_refused(self) -> None:
        if not self._refused_changed:
            return
        self._refused_changed = False
        lines = "".join(f"{key[3]} {' '.join(os.fsencode(p).hex() for p in key[:3])}\n"
                        for key, why in sorted(self._refused.items()) if why != UNLEARNABLE)
        try:
            if lines or os.path.lexists(self._refused_path()):
                open_state(self.box.home)           # the state directory, 0700, if it is new
                replace(self._refused_path(), [lines.encode("ascii")], 0o600)
        except OSError as err:
            self._problem(f"cannot remember refused files in {self._refused_path()}: {_why(err)}")

    def _entries(self, maildir, now, result) -> list:
        if not self._refused_loaded:
            self._load_refused()
        entries, present = [], set()
        for folder, label in LEARN_FOLDERS:
            for sub in ("new", "cur"):
                try:
                    names = maildir.list(folder, sub)
                except FileNotFoundError:
                    self.prepared = False       # deleted under us: recreate next time
                    raise
                for name, inode in names:
                    key = (folder, sub, name)
                    present.update((key, key + (inode,)))
                    if key + (inode,) in self._refused:
                        continue
                    if self._not_before.get(key, 0) > now:
                        result.waiting += 1
                        continue
                    entries.append((key, inode, label))
        # Alternate spam and good, as `mailfilter train` does: an online learner
        # fed a long run of one kind drifts on the features both kinds share.
        spam = [e for e in entries if e[2] == "spam"]
        good = [e for e in entries if e[2] == "good"]
        entries = [e for pair in zip_longest(spam, good) for e in pair if e is not None]
        # Forget files that are gone (filed by someone, expunged, renamed).
        for table in (self._refused, self._not_before):
            for key in [k for k in table if k not in present]:
                del table[key]
                self._refused_changed |= table is self._refused
        return entries

    def _batch(self, maildir, entries, result):
        """Read, learn, file one batch: (False if learning failed (stop this
        scan), how many of entries it took). It stops reading at BATCH_BYTES."""
        loaded = []
        held = 0
        used = 0
        for key, inode, label in entries:
            folder, sub, name = key
            if loaded and held + _size(maildir, folder, sub, name) > BATCH_BYTES:
                break       # what is held of a message is at most its size
            used += 1
            try:
                message = md.read_message(maildir.subdir(folder, sub), name, self.box.uid)
            except md.Refused as err:
                # Keyed by inode too: a real message later saved under the same name is read.
                self._refused[key + (inode,)] = str(err)
                self._refused_changed = True
                self.counters.refused += 1
                log.warning("%s: refused %s: %s; left untouched", self.box.name,
                            maildir.display(folder, sub, name), err)
                continue
            except md.Busy:
                self._not_before[key] = time.monotonic() + BUSY_RETRY
                result.waiting += 1
                continue
            except OSError as err:
                self._defer(key, result, f"cannot read {maildir.display(*key)}: {_why(err)}")
                continue
            if message is None:
                self.counters.vanished += 1
                log.debug("%s: %s vanished before it was read", self.box.name, maildir.display(*key))
                continue
            raw, digest = message
            held += len(raw)
            loaded.append((key, inode, label, raw, digest))
        if not loaded:
            return True, used
        try:
            state = open_state(self.box.home)
            config = state.load_config()
            loaded, results = self._learn(maildir, state, config, loaded)
        except (ConfigError, ModelError, OSError, sqlite3.Error) as err:
            self.counters.learn_failures += 1
            self._learn_failures += 1
            delay = min(self.retry * 2 ** (self._learn_failures - 1), MAX_BACKOFF)
            self._learn_not_before = time.monotonic() + delay
            result.waiting += len(loaded)
            result.retry_at = self._learn_not_before
            log.error("%s: could not learn %d message(s), left in place, retrying in %.0f s: %s",
                      self.box.name, len(loaded), delay, _why(err))
            return False, used
        self._learn_failures = 0
        touched = set()
        for (key, *_), learned in zip(loaded, results):
            touched |= self._file(maildir, key, learned, result)
        for folder, sub in touched:
            # The renames in and out must survive a power cut, not only a crash.
            try:
                os.fsync(maildir.subdir(folder, sub))
            except (OSError, md.Refused):
                pass
        return True, used

    def _learn(self, maildir, state, config, loaded):
        """learn_messages on the batch; (messages learned, their results).

        Trouble with the model, the disk or the config is raised to the caller
        (everything waits). Any other exception means a message the library
        can't digest: the batch is split until that message is found, and it
        is refused (left in place, logged) so it can't block the others.
        """
        try:
            return loaded, learn_messages(state, config, [(raw, label == "spam", digest)
                                                          for _, _, label, raw, digest in loaded])
        except (ConfigError, ModelError, OSError, sqlite3.Error):
            raise
        except Exception:
            if len(loaded) == 1:
                key, inode = loaded[0][:2]
                self._refused[key + (inode,)] = UNLEARNABLE      # for this run only
                self.counters.refused += 1
                log.exception("%s: cannot learn %s; left untouched", self.box.name, maildir.display(*key))
                return [], []
        half = len(loaded) // 2
        first, first_results = self._learn(maildir, state, config, loaded[:half])
        second, second_results = self._learn(maildir, state, config, loaded[half:])
        return first + second, first_results + second_results

    def _file(self, maildir, key, learned, result) -> set:
        """Move (or delete) one learned message. The (folder, sub) dirs it changed."""
        folder, sub, name = key
        source = maildir.display(folder, sub, name)
        if learned.action == "skipped":
            self.counters.skipped += 1
            what = f"{learned.label} already learned (pR {format_pr(learned.pr_before)})"
        else:
            self.counters.learned[learned.label] += 1
            if learned.action == "corrected":
                self.counters.corrected += 1
            what = (f"{learned.label} {learned.action} (pR before {format_pr(learned.pr_before)}, "
                    f"after {format_pr(learned.pr_after)})")
        src_fd = maildir.subdir(folder, sub)
        target = None
        try:
            if learned.label == "spam" and self.box.spam_action == "delete":
                os.unlink(name, dir_fd=src_fd)
                self.counters.deleted += 1
                destination = "deleted (spam-action=delete)"
            else:
                target = self.box.spam_folder if learned.label == "spam" else md.INBOX
                if maildir.ensure_folder(target):
                    log.info("%s: created %s", self.box.name, maildir.display(target, "", ""))
                    if target != md.INBOX:
                        self._subscribe(maildir, [target])
                new_name = md.move(src_fd, name, maildir.subdir(target, "cur"))
                destination = maildir.display(target, "cur", new_name)
        except (OSError, md.Refused) as err:
            if not _exists(src_fd, name):
                self.counters.vanished += 1
                log.info("%s: %s; %s vanished before it could be filed", self.box.name, what, source)
                return set()
            self._defer(key, result, f"{what}, but cannot file {source}: {_why(err)}")
            return set()
        self._not_before.pop(key, None)
        result.handled += 1
        log.info("%s: %s; %s -> %s", self.box.name, what, source, destination)
        return {(folder, sub)} | ({(target, "cur")} if target else set())

    def _defer(self, key, result, text) -> None:
        self.counters.move_failures += 1
        self._not_before[key] = time.monotonic() + self.retry
        result.waiting += 1
        log.warning("%s: %s; left in place, retrying in %.0f s", self.box.name, text, self.retry)


def _size(maildir, folder: str, sub: str, name: str) -> int:
    try:
        return os.stat(name, dir_fd=maildir.subdir(folder, sub), follow_symlinks=False).st_size
    except (OSError, md.Refused):
        return 0            # gone, or not ours to look at: read_message will say


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except OSError:
        return False


def _is_dir(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _why(err) -> str:
    if isinstance(err, OSError) and err.strerror:
        where = f" ({err.filename})" if err.filename and err.errno != errno.ENOENT else ""
        return f"{err.strerror}{where}"
    return str(err)
