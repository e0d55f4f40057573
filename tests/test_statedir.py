"""Where a user's state lives by default, and why it can't be maildrop's ~/.mailfilter.

maildrop reads ~/.mailfilter as its filter file (and ~/.mailfilters/ as its
include directory), so our default is ~/.local/share/mailfilter. A
~/.mailfilter directory left by mailfilter 0.1 keeps working (never lose a
model); a ~/.mailfilter file is maildrop's and is never touched.
"""

import os
import subprocess

from conftest import MAILFILTER, SAMPLES, env_for, status_of

SPAM = open(os.path.join(SAMPLES, "train", "spam", "00.eml"), "rb").read()
GOOD = open(os.path.join(SAMPLES, "train", "good", "00.eml"), "rb").read()
MAILDROP_RECIPE = b'xfilter "mailfilter"\nto "$HOME/Maildir/"\n'


def run_as_home(account_home, args, data=b""):
    """mailfilter with no --home and no $MAILFILTER_HOME: the default, below HOME."""
    env = env_for(None)
    env["HOME"] = str(account_home)
    return subprocess.run(MAILFILTER + list(args), input=data, capture_output=True, env=env, timeout=120)


def train(account_home):
    result = run_as_home(account_home, ["train", "--passes", "10", "--no-progress",
                                        "--spam", os.path.join(SAMPLES, "train", "spam"),
                                        "--good", os.path.join(SAMPLES, "train", "good")])
    assert result.returncode == 0, result.stderr
    return result


def test_default_state_directory_is_the_xdg_data_directory(tmp_path):
    result = train(tmp_path)
    state = tmp_path / ".local" / "share" / "mailfilter"
    assert os.path.isfile(state / "model.mfm"), result.stdout
    assert str(state / "model.mfm") in result.stdout.decode()
    assert os.stat(state).st_mode & 0o777 == 0o700
    assert not os.path.exists(tmp_path / ".mailfilter")
    assert not os.path.exists(tmp_path / ".mailfilters")


def test_maildrop_filter_file_is_left_alone_and_mail_is_classified(tmp_path):
    """The issue's day-one failure: ~/.mailfilter holds the user's maildrop
    recipe, and every message came through UNSURE 'could not classify'."""
    recipe = tmp_path / ".mailfilter"
    recipe.write_bytes(MAILDROP_RECIPE)
    os.chmod(recipe, 0o600)
    train(tmp_path)
    for data, label in ((SPAM, "SPAM"), (GOOD, "GOOD")):
        out = run_as_home(tmp_path, [], data)
        assert out.returncode == 0, out.stderr
        assert status_of(out.stdout).startswith(label), out.stdout[:400]
        assert b"could not classify" not in out.stdout
    learned = run_as_home(tmp_path, ["learn", "--spam"], GOOD)
    assert learned.returncode == 0 and b"Traceback" not in learned.stderr, learned.stderr
    assert recipe.read_bytes() == MAILDROP_RECIPE
    assert os.stat(recipe).st_mode & 0o777 == 0o600


def test_a_model_in_an_old_mailfilter_directory_keeps_working(tmp_path):
    """A 0.1 install's ~/.mailfilter/ is still used: the model there keeps
    classifying and keeps learning; nothing is made in the new place."""
    legacy = tmp_path / ".mailfilter"
    env = env_for(legacy)
    trained = subprocess.run(MAILFILTER + ["train", "--passes", "10", "--no-progress",
                                           "--spam", os.path.join(SAMPLES, "train", "spam"),
                                           "--good", os.path.join(SAMPLES, "train", "good")],
                             capture_output=True, env=env, timeout=120)
    assert trained.returncode == 0, trained.stderr
    model = (legacy / "model.mfm").read_bytes()
    assert run_as_home(tmp_path, ["classify"], SPAM).stdout.startswith(b"SPAM")
    assert run_as_home(tmp_path, ["classify"], GOOD).stdout.startswith(b"GOOD")
    assert run_as_home(tmp_path, ["learn", "--good"], SPAM).returncode == 0
    assert (legacy / "model.mfm").read_bytes() != model          # learned in place
    assert not os.path.exists(tmp_path / ".local")


def test_the_new_directory_wins_once_it_exists(tmp_path):
    """After `mv ~/.mailfilter ~/.local/share/mailfilter` (what `check` tells
    a maildrop user to do) the moved state is the one used."""
    legacy = tmp_path / ".mailfilter"
    os.makedirs(legacy)
    train(tmp_path)                                   # into the legacy dir: it exists
    assert os.path.isfile(legacy / "model.mfm")
    os.makedirs(tmp_path / ".local" / "share")
    os.rename(legacy, tmp_path / ".local" / "share" / "mailfilter")
    (tmp_path / ".mailfilter").write_bytes(MAILDROP_RECIPE)
    assert run_as_home(tmp_path, ["classify"], SPAM).stdout.startswith(b"SPAM")


def test_trainer_config_default_home_follows_the_filter(tmp_path):
    """maildir-train's per-user default is the filter's: both resolve it the
    same way from the account's home directory."""
    import pwd

    from maildir_train import config as cfg
    from mailfilter.state import default_home
    me = pwd.getpwuid(os.getuid()).pw_name
    conf = tmp_path / "maildir-train.conf"
    conf.write_text(f"{me}\n")
    (box,) = cfg.read_config(str(conf))
    assert box.home == default_home(box.account_home)
    assert box.home.endswith(os.path.join(".local", "share", "mailfilter")) or \
        os.path.isdir(os.path.join(box.account_home, ".mailfilter"))
