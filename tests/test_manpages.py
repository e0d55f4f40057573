"""The manual pages and the bash completion stay true to the argument parsers.

The pages are written by hand (to teach, with examples), so this is what
keeps them from drifting: every option of the commands they describe, every
command, and every mailfilter.conf key must be in them, and groff must read
them without a warning. The completion scripts are generated from the
parsers with shtab and committed; they must match a fresh generation.
That `man mailfilter` opens ours once installed is checked by the real
install in tests/test_system_install.py.
"""

import os
import subprocess
import sys

import pytest

from conftest import REPO, need

MAN = os.path.join(REPO, "man")
GENERATOR = os.path.join(REPO, "contrib", "completion", "generate.py")
PAGES = ("mailfilter.1", "mailfilter.conf.5", "maildir-train.8")
# The commands mailfilter(1) documents option by option; the network
# helper's commands are named there and documented by their --help.
DOCUMENTED = ("filter", "classify", "learn", "train", "eval", "rebuild", "check", "stats", "demo")


def page(name):
    with open(os.path.join(MAN, name)) as fh:
        return fh.read().replace("\\-", "-")


def options(parser):
    return {s for action in parser._actions for s in action.option_strings if s.startswith("--")}


@pytest.fixture(scope="module")
def generator():
    sys.path.insert(0, os.path.dirname(GENERATOR))
    try:
        import generate
        yield generate
    finally:
        sys.path.remove(os.path.dirname(GENERATOR))


@pytest.mark.parametrize("name", PAGES)
def test_groff_reads_the_page_without_a_warning(name):
    need("groff")
    done = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(MAN, name)],
                          capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"}, timeout=60)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()


def test_mailfilter_1_names_every_command_and_every_option(generator):
    from mailfilter import cli
    text = page("mailfilter.1")
    missing = [name for name in cli.COMMANDS if f"\n.B {name}" not in text and f"{name} " not in text]
    assert missing == [], f"commands not in man/mailfilter.1: {missing}"
    for name in DOCUMENTED:
        absent = sorted(o for o in options(generator.command_parser(name)) if o not in text)
        assert absent == [], f"mailfilter {name}: options not in man/mailfilter.1: {absent}"


def test_maildir_train_8_has_every_option(generator):
    text = page("maildir-train.8")
    absent = sorted(o for o in options(generator.maildir_train_parser()) if o not in text)
    assert absent == [], f"options not in man/maildir-train.8: {absent}"


def test_mailfilter_conf_5_has_every_key():
    from mailfilter.state import Config
    text = page("mailfilter.conf.5")
    absent = [key for key in Config.KEYS if key not in text]
    assert absent == [], f"keys not in man/mailfilter.conf.5: {absent}"


def test_completion_scripts_match_the_parsers():
    done = subprocess.run([sys.executable, GENERATOR, "--check"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()


def test_completion_completes_commands_options_and_choices():
    need("bash")
    script = ("source contrib/completion/mailfilter.bash\n"
              "COMP_WORDS=(mailfilter tr); COMP_CWORD=1; _shtab_mailfilter; echo \"1:${COMPREPLY[*]}\"\n"
              "COMP_WORDS=(mailfilter train --us); COMP_CWORD=2; _shtab_mailfilter; echo \"2:${COMPREPLY[*]}\"\n"
              "source contrib/completion/maildir-train.bash\n"
              "COMP_WORDS=(maildir-train --layout ''); COMP_CWORD=2; _shtab_maildir_train; "
              "echo \"3:${COMPREPLY[*]}\"\n")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.stdout.splitlines() == ["1:train", "2:--user", "3:maildir++ fs auto"], done.stderr
