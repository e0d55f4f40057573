"""The per-user state directory: where it is, what is in it, and its config.

    --home DIR, else $MAILFILTER_HOME, else ~/.local/share/mailfilter
    (or ~/.mailfilter, when that is a directory from an older release)

It is created 0700 on first use: the model reveals what a user's mail says.
The config file is `mailfilter.conf` in that directory, `key = value` lines,
read over the system-wide defaults in /etc/mailfilter/mailfilter.conf.
"""

import os

from .errors import ConfigError

SYSTEM_CONFIG = "/etc/mailfilter/mailfilter.conf"
MODEL_NAME = "model.mfm"
LOCK_NAME = "model.lock"
CONFIG_NAME = "mailfilter.conf"
RULES_NAME = "priolist.mfp"
LEDGER_NAME = "ledger.sqlite"


class Config:
    """Settings, with their defaults. Plain class: see rawmail.HeaderField."""

    # name -> (type, default)
    KEYS = {
        # pR = log10(P(good)/P(spam)). At or below spam_threshold: SPAM; at or
        # above good_threshold: GOOD; between: UNSURE. Chosen from the
        # benchmark's score distribution (README "Thresholds").
        "spam_threshold": (float, -1.5),
        "good_threshold": (float, 1.0),
        # Training goes on until a message is this far on the right side (pR),
        # like CRM114's thick threshold.
        "learn_margin": (float, 1.5),
        # Classify on at most this many characters of decoded text; the message
        # itself always passes through whole.
        "max_text_bytes": (int, 65536),
        # A new model holds 2**model_bits weights (and as many step-size sums),
        # float32: 20 -> 8 MiB on disk, half for each feature family.
        # 2**18 per family scored 0.053, 2**19 0.052, 2**20 0.052.
        "model_bits": (int, 20),
        # The training cache (trainingcache.py), from which `mailfilter
        # rebuild` teaches a new model after a tokenizer change: the newest
        # this many messages, and at most this many MB of compressed mail.
        # 0 keeps none. CRM114's reaver cache is unbounded; 200 MB holds
        # ~20,000 typical messages compressed.
        "cache_max_messages": (int, 20000),
        "cache_max_mb": (float, 200.0),
        # Where the model lives: empty for this state directory's own files,
        # or a Redis URL (redis://HOST:PORT/DB, rediss://..., unix:///PATH?db=N)
        # for one model shared by several mail hosts (store/redisconfig.py).
        "store": (str, ""),
        # The password of command mail (commandmail.py): `command SECRET spam`
        # trains from any mail client. Empty: no command mail. Read only from
        # the user's own file, never the system-wide one (shared by all).
        # `mailfilter command-secret` makes one.
        "command_secret": (str, ""),
    }

    def __init__(self, **overrides):
        for key, (_, default) in self.KEYS.items():
            setattr(self, key, overrides.pop(key, default))
        if overrides:
            raise TypeError(f"unknown settings: {', '.join(overrides)}")

    def __repr__(self):
        return "Config(" + ", ".join(f"{k}={'***' if k == 'command_secret' else getattr(self, k)!r}"
                                     for k in self.KEYS) + ")"


def parse_config(path: str, config: Config) -> Config:
    """Read `key = value` lines from path over config. Missing file: no change."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return config
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(f"{path}:{number}: expected 'key = value', got {line!r}")
        if key not in Config.KEYS:
            known = ", ".join(sorted(Config.KEYS))
            raise ConfigError(f"{path}:{number}: unknown key {key!r} (known: {known})")
        cast = Config.KEYS[key][0]
        try:
            typed = cast(value)
        except ValueError:
            raise ConfigError(f"{path}:{number}: {key} must be a number, got {value!r}") from None
        setattr(config, key, typed)
    if config.spam_threshold > config.good_threshold:
        raise ConfigError(f"{path}: spam_threshold {config.spam_threshold} is above good_threshold {config.good_threshold}")
    if not 10 <= config.model_bits <= 24:
        raise ConfigError(f"{path}: model_bits must be between 10 and 24, got {config.model_bits}")
    return config


# The default, below the account's home directory. ~/.mailfilter is
# maildrop's filter file (and ~/.mailfilters/ its include directory), so
# our state lives in the XDG data directory: the model is data the user
# made, not a cache. $XDG_DATA_HOME is deliberately not read: procmail and
# maildrop don't see the login environment, so the filter would use one
# directory and the user's own `mailfilter train` another.
DEFAULT_DIR = os.path.join(".local", "share", "mailfilter")
# mailfilter 0.1 used this; a directory there is still ours.
LEGACY_DIR = ".mailfilter"


def default_home(account_home: str) -> str:
    """The state directory of the account whose home is account_home.

    An existing ~/.mailfilter DIRECTORY (an older release's state) keeps
    being used until the user moves it; a ~/.mailfilter FILE is maildrop's
    and is never touched. Moving it automatically is not safe: a delivery
    or a trainer holding the old path mid-commit would lose its write.
    One stat on the per-message path once the new directory exists.
    """
    current = os.path.join(account_home, DEFAULT_DIR)
    if not os.path.isdir(current):
        legacy = os.path.join(account_home, LEGACY_DIR)
        if os.path.isdir(legacy):
            return legacy
    return current


def resolve_home(home=None) -> str:
    if home:
        return os.path.abspath(home)
    env = os.environ.get("MAILFILTER_HOME")
    if env:
        return os.path.abspath(env)
    return default_home(os.path.expanduser("~"))


class State:
    def __init__(self, home: str):
        self.home = home

    @property
    def model_path(self) -> str:
        return os.path.join(self.home, MODEL_NAME)

    @property
    def lock_path(self) -> str:
        return os.path.join(self.home, LOCK_NAME)

    @property
    def config_path(self) -> str:
        return os.path.join(self.home, CONFIG_NAME)

    @property
    def rules_path(self) -> str:
        return os.path.join(self.home, RULES_NAME)

    @property
    def ledger_path(self) -> str:
        return os.path.join(self.home, LEDGER_NAME)

    def ensure(self) -> "State":
        """Create the directory 0700 if it is missing. Never loosens an existing one."""
        old = os.umask(0o077)
        try:
            os.makedirs(self.home, mode=0o700, exist_ok=True)
        finally:
            os.umask(old)
        return self

    def load_config(self, system_config: str = SYSTEM_CONFIG) -> Config:
        config = parse_config(system_config, Config())
        return parse_config(self.config_path, config)


def open_state(home=None) -> State:
    return State(resolve_home(home)).ensure()
