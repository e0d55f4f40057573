"""Bash completion for `mailfilter` and `maildir-train`, generated from their argument parsers.

Dev-time only (shtab is in the `test` extra, never imported by mailfilter
itself): the scripts are committed beside this file, contrib/install.sh
installs them, and tests/test_manpages.py fails when they no longer match
the parsers. After changing an option:

    .venv/bin/python contrib/completion/generate.py

The commands build their parsers inside main() (so the per-message path
never imports argparse), so each parser is caught at parse_args(): main()
runs up to that call and stops there, having done nothing.
"""

import argparse
import importlib
import os
import sys

import shtab

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from mailfilter import cli, usage  # noqa: E402

FILE_METAVARS = {"FILE", "PATH", "PNG", "SPAM", "INDEX"}
DIR_METAVARS = {"DIR"}


class _Caught(Exception):
    pass


def command_parser(name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(cli.COMMANDS[name][0])
    real = usage.ArgumentParser.parse_args

    def catch(self, *args, **kwargs):
        raise _Caught(self)
    usage.ArgumentParser.parse_args = catch
    try:
        module.main(["--help"], prog=f"mailfilter {name}")
    except _Caught as caught:
        return caught.args[0]
    finally:
        usage.ArgumentParser.parse_args = real
    raise RuntimeError(f"mailfilter {name}: main() never parsed its arguments")


def _hint_paths(parser) -> None:
    for action in parser._actions:
        metavar = action.metavar if isinstance(action.metavar, str) else None
        if metavar in DIR_METAVARS:
            action.complete = shtab.DIRECTORY
        elif metavar in FILE_METAVARS or (not action.option_strings and action.dest in ("files", "index")):
            action.complete = shtab.FILE


def mailfilter_parser() -> argparse.ArgumentParser:
    default = command_parser("filter")
    _hint_paths(default)
    top = argparse.ArgumentParser(prog="mailfilter", parents=[default], add_help=False)
    top.add_argument("--version", action="version", version="mailfilter")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, summary) in cli.COMMANDS.items():
        parser = command_parser(name)
        _hint_paths(parser)
        sub.add_parser(name, help=summary, parents=[parser], add_help=False)
    return top


def maildir_train_parser() -> argparse.ArgumentParser:
    from maildir_train.service import build_parser
    parser = build_parser()
    _hint_paths(parser)
    return parser


def scripts() -> dict:
    return {"mailfilter.bash": shtab.complete(mailfilter_parser(), shell="bash"),
            "maildir-train.bash": shtab.complete(maildir_train_parser(), shell="bash")}


def main(argv) -> int:
    check = argv[1:] == ["--check"]
    stale = []
    for name, text in scripts().items():
        path = os.path.join(HERE, name)
        if check:
            with open(path) as fh:
                if fh.read() != text:
                    stale.append(path)
            continue
        with open(path, "w") as fh:
            fh.write(text)
        print(f"wrote {path}")
    for path in stale:
        print(f"{path} is stale: run {sys.executable} {__file__}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
