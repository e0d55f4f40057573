"""`mailfilter` command: picks the subcommand and hands it the rest of argv.

Only the chosen subcommand's module is imported, so `mailfilter` on the
per-message path never pays for the trainer's, benchmark's or firewall code.
"""

import importlib
import sys

from . import __version__

# name -> (module, one-line summary). Order is the order `--help` shows.
COMMANDS = {
    "filter": ("mailfilter.commands.filter", "read one message on stdin, write it with X-CRM114-* headers (default)"),
    "classify": ("mailfilter.commands.classify", "print 'SPAM|GOOD|UNSURE ( pR )' for one message on stdin"),
    "learn": ("mailfilter.commands.learn", "teach one message on stdin as --spam or --good"),
    "train": ("mailfilter.commands.train", "train in bulk from Maildirs, mbox files or directories"),
    "eval": ("mailfilter.commands.eval", "TREC online evaluation over an index file"),
    "rebuild": ("mailfilter.commands.rebuild", "teach a new model from the training cache (after an upgrade)"),
    "command-secret": ("mailfilter.commands.command_secret", "the secret of command mail: train by forwarding to yourself"),
    "shared": ("mailfilter.commands.shared", "the model shared by several mail hosts on Redis: info, export, import"),
    "check": ("mailfilter.commands.check", "what is wrong with a user's set-up, one line each, with the fix"),
    "stats": ("mailfilter.commands.stats", "what a user's filter learned and did: model, trained, verdicts, recent learns"),
    "serve": ("mailfilter.commands.serve", "resident filter for spamc (spamd protocol), one worker per user"),
    "milter": ("mailfilter.commands.milter", "Postfix milter: X-CRM114-* headers at SMTP time"),
    "krfilter": ("mailfilter.commands.krfilter", "country-blocking firewall rules from RIR delegation files"),
    "sources": ("mailfilter.commands.sources", "which countries and networks your spam comes from"),
    "drops": ("mailfilter.commands.drops", "what the country rules dropped: by country, day, address and port"),
    "submission": ("mailfilter.commands.submission", "Postfix submission (587) and submissions (465) set-up"),
    "relaytest": ("mailfilter.commands.relaytest", "is my mail server an open relay? (never sends DATA)"),
    "demo": ("mailfilter.commands.demo", "filter sample mail through a real procmail recipe"),
}

USAGE = f"""\
usage: mailfilter [COMMAND] [OPTIONS]

mailfilter {__version__}: a learning spam filter for procmail and maildrop.
With no COMMAND it runs `filter`: one message on stdin, the same message on
stdout with an X-CRM114-Status header (SPAM, GOOD or UNSURE, and pR =
log10(P(good)/P(spam))).

commands:
{{commands}}

Every command takes --help. Per-user state (model, config, rules) lives in
--home DIR, else $MAILFILTER_HOME, else ~/.local/share/mailfilter.

examples:
  ~/.procmailrc:   :0fw
                   | mailfilter
  mailfilter learn --spam < message.eml
  mailfilter train --spam ~/Maildir/.Junk --good ~/Maildir
"""


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = "\n".join(f"  {n:<{width}}  {summary}" for n, (_, summary) in COMMANDS.items())
    return USAGE.format(commands=lines)


def _command_first(argv: list) -> list:
    """`mailfilter --home DIR classify` means `mailfilter classify --home DIR`.

    --home is the one option every per-user command shares, and admins put
    it first as they would for a global option. Only a whole --home DIR (or
    --home=DIR) directly before a command name is moved; anything else is
    the filter's own command line, as before.
    """
    if argv and argv[0] == "--home" and len(argv) >= 3 and argv[2] in COMMANDS:
        return [argv[2], "--home", argv[1]] + argv[3:]
    if argv and argv[0].startswith("--home=") and len(argv) >= 2 and argv[1] in COMMANDS:
        return [argv[1], argv[0]] + argv[2:]
    return argv


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(_usage())
        return 0
    if argv and argv[0] == "--version":
        print(f"mailfilter {__version__}")
        return 0
    argv = _command_first(argv)
    name = "filter"
    if argv and argv[0] in COMMANDS:
        name = argv.pop(0)
    elif argv and not argv[0].startswith("-"):
        sys.stderr.write(f"mailfilter: unknown command {argv[0]!r}; see 'mailfilter --help'\n")
        return 64
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(argv, prog=f"mailfilter {name}")


if __name__ == "__main__":
    sys.exit(main())
