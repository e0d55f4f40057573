"""`maildir-train`: the command line, logging, and the per-user loop.

The loop: scan, then sleep until an inotify event (debounced), a retry, the
periodic rescan or the summary is due; a scan that handled something is
followed at once by another, which catches whatever arrived meanwhile.
SIGTERM sets a flag the scan checks between batches: the batch in hand is
learned and filed to the end, then the process exits 0.
"""

import argparse
import logging
import logging.handlers
import os
import pwd
import signal
import sys
import time

from mailfilter import exitcodes
from mailfilter.usage import ArgumentParser

from . import config as cfg
from .maildir import check_folder_name

DESCRIPTION = """\
Train mailfilter from the user's own mail folders: a message moved (or
copied) into learn-spam is learned as spam and filed in the spam folder; one
moved into learn-good is learned as good and filed in INBOX. The folders are
created and subscribed when missing, so every IMAP client shows them."""

EPILOG = """\
modes:
  --user            train the current user's Maildir (default when not root);
                    suits a systemd user unit or cron (--once)
  --config FILE     train every mailbox FILE lists, each in its own process
                    running as that user (start as root); see below

what it does with a message:
  learn-spam/{cur,new}  ->  learned as spam  ->  spam folder (default Junk) cur/
  learn-good/{cur,new}  ->  learned as good  ->  INBOX cur/
  The file is renamed, never copied: bytes and Maildir flags (:2,FLAGS) are
  kept. A message learned before with the same label is only filed; with the
  other label it is a correction. A message that can't be filed stays where it
  is and is retried. Symbolic links, non-files and files the user doesn't own
  are refused and left alone, once (remembered in maildir-train.refused
  in the state directory). tmp/ is ignored until the file is renamed.

config file (--config), one mailbox per line:
  *      layout=auto spam-folder=Junk             # defaults
  alice                                           # ~alice/Maildir, ~alice/.local/share/mailfilter
  bob    spam-action=delete maildir=~/mail/Maildir
  carol@example.org user=vmail maildir=/var/vmail/example.org/carol \\
                    home=/var/vmail/example.org/carol/mailfilter
  keys: user= maildir= home= layout= spam-folder= spam-action=
  A mistake is reported as FILE:LINE: what, and the exit status is 78.

logging: to syslog (facility mail, tag maildir-train) when /dev/log exists,
  else to stderr: one line per message (user, label, score before, where it
  went) and a summary every --summary seconds.

exit status: 0 done (or stopped by SIGTERM); 75 with --once when a message had
  to be left for later; 66 with --once when a Maildir is missing or unusable;
  64 bad usage; 78 bad config.

examples:
  maildir-train --user                       # watch ~/Maildir, model in ~/.local/share/mailfilter
  maildir-train --user --once                # from cron: */5 * * * * maildir-train --user --once
  maildir-train --config /etc/mailfilter/maildir-train.conf     # as root, for a server
  systemctl --user enable --now maildir-train                  # contrib/maildir-train-user.service
"""

log = logging.getLogger("maildir-train")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="maildir-train", description=DESCRIPTION, epilog=EPILOG)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--user", action="store_true", help="train the current user's Maildir")
    mode.add_argument("--config", metavar="FILE",
                      help="train every mailbox listed in FILE (e.g. /etc/mailfilter/maildir-train.conf)")
    p.add_argument("--maildir", metavar="DIR", help="Maildir root (--user; default ~/Maildir)")
    p.add_argument("--home", metavar="DIR",
                   help="mailfilter state directory (--user; default $MAILFILTER_HOME, else "
                        "~/.local/share/mailfilter)")
    p.add_argument("--layout", choices=cfg.LAYOUT_CHOICES,
                   help="folder layout: maildir++ (~/Maildir/.Junk), fs (~/Maildir/Junk) or "
                        "auto (look at the existing folders; default)")
    p.add_argument("--spam-folder", metavar="NAME", type=_folder,
                   help="where learned spam is filed (default Junk: ~/Maildir/.Junk)")
    p.add_argument("--spam-action", choices=cfg.SPAM_ACTIONS,
                   help="move learned spam to the spam folder (default) or delete it")
    p.add_argument("--once", action="store_true", help="handle what is there now and exit (for cron)")
    p.add_argument("--rescan", type=_seconds, default=300.0, metavar="SECONDS",
                   help="look again this often even without inotify events (default 300)")
    p.add_argument("--retry", type=_seconds, default=30.0, metavar="SECONDS",
                   help="retry a message that could not be filed or learned after this long (default 30)")
    p.add_argument("--summary", type=_seconds, default=3600.0, metavar="SECONDS",
                   help="log a summary this often when something happened (default 3600)")
    p.add_argument("--batch", type=_count, default=200, metavar="N",
                   help="learn at most N messages per model save (default 200); smaller answers "
                        "SIGTERM sooner, larger rewrites the 8 MB model less often")
    p.add_argument("--log", choices=("auto", "syslog", "stderr"), default="auto",
                   help="where log lines go (default auto: syslog if /dev/log exists, else stderr)")
    p.add_argument("--debug", action="store_true", help="log more (each wake-up and scan)")
    return p


def _folder(value: str) -> str:
    try:
        return check_folder_name(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _count(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 100000:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to 100000, got {value!r}")
    return int(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if not 0 < seconds < 1e7:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds


class _Formatter(logging.Formatter):
    """'maildir-train[pid]: text', with 'warning: '/'error: ' where it matters."""

    def formatMessage(self, record):
        # One record, one line: a newline in a file name (or any text that
        # came from a user's folder) must not forge a log line of its own.
        record.message = record.message.replace("\r", "\\r").replace("\n", "\\n")
        return super().formatMessage(record)

    def format(self, record):
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        # A lone surrogate (a non-UTF-8 file name) made SysLogHandler's
        # encode fail and drop the whole line.
        try:        # the name's own bytes as \xNN
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        return f"maildir-train[{record.process}]: {text}"


def setup_logging(where: str, debug: bool) -> None:
    root = logging.getLogger()
    handler = None
    if where in ("auto", "syslog") and os.path.exists("/dev/log"):
        try:
            handler = logging.handlers.SysLogHandler(
                address="/dev/log", facility=logging.handlers.SysLogHandler.LOG_MAIL)
        except OSError:
            handler = None
    fell_back = handler is None
    if fell_back:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if fell_back and where == "syslog":
        log.warning("no /dev/log; logging to stderr")
    # watchdog's own chatter stays quiet; its overflow warning still reaches the watcher.
    logging.getLogger("watchdog").setLevel(logging.WARNING)
    logging.getLogger("watchdog").propagate = False


def run_mailbox(box, args) -> int:
    """The loop for one mailbox, in this process, already running as its account."""
    from .trainer import Trainer
    from .watcher import FolderWatcher, Waker

    stopping = []

    def on_stop(signum, frame):
        if not stopping:
            log.info("%s: %s received; finishing the message in hand", box.name,
                     signal.Signals(signum).name)
        stopping.append(signum)

    waker = Waker()
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    waker.wake_on_signals()
    stop = lambda: bool(stopping)

    trainer = Trainer(box, retry=args.retry, batch=args.batch)
    log.info("%s: training from %s (%s layout), model in %s; spam -> %s", box.name, box.maildir,
             trainer.layout, box.home,
             "deleted" if box.spam_action == "delete" else box.spam_folder)
    if args.once:
        waiting = 0
        while not stop():
            result = trainer.scan(stop)
            waiting = result.waiting
            if result.unusable:
                # A cron job must not stay broken in silence: say so and
                # exit non-zero (EX_NOINPUT), so cron mails the admin.
                log.error("%s: %s; nothing trained (create it as the user with `maildirmake %s`, "
                          "or give the right --maildir)", box.name, result.unusable, box.maildir)
                return exitcodes.NOINPUT
            if not result.handled:
                break
        _summary(box, trainer, "done")
        return exitcodes.TEMPFAIL if waiting else exitcodes.OK

    watcher = FolderWatcher(waker)
    rescan_every = args.rescan
    watch_failed = False
    next_rescan = next_summary = 0.0
    summarised = trainer.counters.line()
    next_summary = time.monotonic() + args.summary
    try:
        while not stop():
            result = trainer.scan(stop)
            log.debug("%s: scan: %d handled, %d waiting", box.name, result.handled, result.waiting)
            if trainer.prepared:
                try:
                    armed = watcher.watch(trainer.watch_paths())
                    watch_failed = False
                    if armed:
                        log.info("%s: watching %s", box.name, ", ".join(trainer.watch_paths()))
                        continue        # look once more: something may have come before the watch
                except OSError as err:
                    # e.g. fs.inotify.max_user_instances reached for a shared vmail uid
                    if not watch_failed:
                        log.warning("%s: cannot watch the learn folders (%s); looking every 5 s instead",
                                    box.name, err)
                    watch_failed = True
            if result.handled:
                continue            # whatever arrived while we were busy
            now = time.monotonic()
            next_rescan = now + (min(rescan_every, 5.0) if watch_failed or not trainer.prepared
                                 else rescan_every)
            if now >= next_summary:
                line = trainer.counters.line()
                if line != summarised:
                    _summary(box, trainer, "summary")
                    summarised = line
                next_summary = now + args.summary
            wake_at = min(next_rescan, next_summary,
                          result.retry_at if result.retry_at is not None else next_rescan)
            if waker.wait(wake_at - time.monotonic()) and not stop():
                waker.wait_for_quiet(stop)
                log.debug("%s: woken", box.name)
    finally:
        watcher.stop()
    _summary(box, trainer, "stopping")
    return exitcodes.OK


def _summary(box, trainer, when: str) -> None:
    log.info("%s: %s: %s since start", box.name, when, trainer.counters.line())


def _current_user_box(args) -> cfg.Mailbox:
    from mailfilter.state import resolve_home
    pw = pwd.getpwuid(os.getuid())
    home_dir = os.environ.get("HOME") or pw.pw_dir
    return cfg.Mailbox(
        name=pw.pw_name, user=pw.pw_name, uid=pw.pw_uid, gid=pw.pw_gid, account_home=home_dir,
        maildir=os.path.abspath(os.path.expanduser(args.maildir or "~/Maildir")),
        home=resolve_home(args.home),
        layout=args.layout or "auto", spam_folder=args.spam_folder or "Junk",
        spam_action=args.spam_action or "move")


def _check_accounts(boxes, path) -> None:
    if os.geteuid() != 0:
        others = [b.name for b in boxes if b.uid != os.geteuid()]
        if others:
            raise cfg.ConfigError(f"{path}: {', '.join(others)} belong(s) to other accounts; "
                                  "run as root to train them")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log, args.debug)
    if args.config:
        if args.maildir or args.home:
            parser.error("--maildir and --home are for --user; with --config give maildir= and home= "
                         "in the file")
        defaults = {k: v for k, v in (("layout", args.layout), ("spam-folder", args.spam_folder),
                                      ("spam-action", args.spam_action)) if v}

        def reread():
            boxes = cfg.read_config(args.config, defaults)
            _check_accounts(boxes, args.config)
            return boxes
        try:
            boxes = reread()
        except cfg.ConfigError as err:
            log.error("%s", err)
            return exitcodes.CONFIG
        from .supervisor import Supervisor     # watchdog only once the config is good
        return Supervisor(boxes, lambda box: run_mailbox(box, args), args.once, reread).run()
    if not args.user and os.geteuid() == 0:
        parser.error("as root, say --config FILE for the users to train (or --user for root's own mail)")
    box = _current_user_box(args)
    from mailfilter.errors import MailfilterError
    from mailfilter.privileges import refuse_foreign
    try:
        refuse_foreign(box.home, "maildir-train --user",
                       "list {name} in a --config file (each mailbox is trained as its owner), "
                       "or run maildir-train --user as {name}")
    except MailfilterError as err:
        log.error("%s", err)
        return err.code
    return run_mailbox(box, args)


if __name__ == "__main__":
    sys.exit(main())
