"""The per-user state directory: where it is, what is in it, and its config.

    --home DIR, else $MAILFILTER_HOME, else ~/.local/share/mailfilter
    (or ~/.mailfilter, when that is a directory from an older release)

It is created 0700 on first use: the model reveals what a user's mail says.
The config file is `mailfilter.conf` in that directory, `key = value` lines,
read over the system-wide defaults in /etc/mailfilter/mailfilter.conf.
"""

import os
import stat

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
        "spam_threshold": (float, -4.0),
        "good_threshold": (float, 0.0),
        # Training goes on until a message is this far on the right side (pR),
        # like CRM114's thick threshold: for the word and identity families;
        # the byte grams go one further (model.py: why 3).
        "learn_margin": (float, 3.0),
        # Classify on at most this many characters of decoded text; the message
        # itself always passes through whole.
        "max_text_bytes": (int, 65536),
        # A new model holds 2**model_bits weights (and as many step-size sums),
        # float32: 20 -> 8 MiB on disk; a quarter each for words and identity,
        # half for byte grams (features.family_ranges). With two families,
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

    # name -> (lowest, highest) accepted in a config file; NaN and the
    # infinities never are. One bad value once wrote infinite weights into
    # the model for good (issue 14: `spam_threshold = -inf`). pR beyond
    # +-100 means odds of 10**100: no real score comes near (the benchmark's
    # span is about +-40), and teaching towards +-1e40 overflowed float32.
    RANGES = {
        "spam_threshold": (-100.0, 100.0),
        "good_threshold": (-100.0, 100.0),
        "learn_margin": (0.0, 100.0),
        "max_text_bytes": (1024, 16 * 1024 * 1024),
        "model_bits": (10, 24),
        "cache_max_messages": (0, 10_000_000),
        "cache_max_mb": (0.0, 1_000_000.0),
    }

    def __init__(self, **overrides):
        for key, (_, default) in self.KEYS.items():
            setattr(self, key, overrides.pop(key, default))
        if overrides:
            raise TypeError(f"unknown settings: {', '.join(overrides)}")

    def __repr__(self):
        return "Config(" + ", ".join(f"{k}={'***' if k == 'command_secret' else getattr(self, k)!r}"
                                     for k in self.KEYS) + ")"


class NotRegular(OSError):
    """A state file that is a FIFO, a device, a socket or a directory."""

    def __init__(self, path):
        super().__init__(f"{path}: not a regular file")
        self.strerror = "not a regular file"
        self.filename = path


def open_regular(path: str, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """An fd on the regular file at path; NotRegular for anything else.

    O_NONBLOCK: opening a FIFO for reading waits for a writer, so a FIFO
    planted as mailfilter.conf, priolist.mfp or model.mfm hung the filter
    (issue 14) where it must deliver UNSURE. On a regular file the flag
    changes nothing. Symbolic links are followed unless flags say otherwise.
    """
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str) -> bytes:
    """The whole regular file at path (FileNotFoundError, NotRegular, OSError)."""
    fd = open_regular(path)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def parse_config(path: str, config: Config) -> Config:
    """Read `key = value` lines from path over config. Missing file: no change."""
    try:
        raw = read_regular(path)
    except FileNotFoundError:
        return config
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    lines = {}                  # key -> the line that set it
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
        _check_range(path, number, key, typed, value)
        setattr(config, key, typed)
        lines[key] = number
    if config.spam_threshold > config.good_threshold:
        where = max(lines.get("spam_threshold", 0), lines.get("good_threshold", 0))
        raise ConfigError(f"{path}{f':{where}' if where else ''}: spam_threshold {config.spam_threshold} is above "
                          f"good_threshold {config.good_threshold}")
    return config


def _check_range(path, number, key, typed, text) -> None:
    low, high = Config.RANGES.get(key, (None, None))
    # "typed != typed" is NaN; a float out of range also catches +-inf.
    if typed != typed or (low is not None and not low <= typed <= high):
        raise ConfigError(f"{path}:{number}: {key} must be between {low:g} and {high:g}, got {text!r}")


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
    user_home = os.path.expanduser("~")
    if not os.path.isabs(user_home):
        # HOME unset (or relative) and no passwd entry for the uid:
        # expanduser gives "~" back, and the state went to ./~/.mailfilter,
        # wherever the process happened to run (issue 14).
        raise ConfigError(f"no home directory for uid {os.getuid()} (HOME is unset or not absolute, "
                          f"and no passwd entry gives one): set HOME or MAILFILTER_HOME, or use --home DIR")
    return default_home(user_home)


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
