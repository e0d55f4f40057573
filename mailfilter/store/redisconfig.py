"""The `store =` setting of mailfilter.conf, for a shared Redis store.

    store = redis://HOST:PORT/DB
    store = rediss://HOST:PORT/DB          (TLS)
    store = unix:///run/redis/redis.sock?db=0

redis-py's own URL forms; its query options (db, ssl_ca_certs,
ssl_cert_reqs, ...) pass through. Ours, taken out before redis-py sees
the URL:

    credentials=PATH  the AUTH/ACL user and password, one line "USER PASSWORD"
                      (or just "PASSWORD"); default /etc/mailfilter/redis.auth
                      when that file exists. It must belong to root and be
                      unreadable by others (0600, or 0640 for a group of
                      trusted readers): a password in mailfilter.conf, which
                      every user can read, would let any user write the
                      shared model.
    copy=PATH         the local copy of the shared model (fallback while Redis
                      is down, and the resident daemon's mmap'd table);
                      default shared-copy.mfm in the state directory.
    prefix=TEXT       key prefix, default "mailfilter:" (several sites on one
                      Redis, or a test's private namespace).
    refresh=SECONDS   how stale a resident copy of the global weights may get
                      while others learn (default 0.5).

Parsing lives here, not in state.py: state.Config only carries the text.
Nothing here imports redis.
"""

import os
import stat
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigError as _ConfigError
from .modelfile import ModelError


class ConfigError(_ConfigError, ModelError):
    """A bad `store =` or credentials file. Found when the store is first
    used, which may be deep inside a learn: every caller that handles a
    model it can't use (ModelError) handles this too, and one that knows
    about configuration says so with exit 78."""

DEFAULT_CREDENTIALS = "/etc/mailfilter/redis.auth"
SCHEMES = ("redis", "rediss", "unix")
# A dead host must not hold a delivery: connect and answer within these
# (seconds), else the filter falls back to the local copy and learns queue.
CONNECT_TIMEOUT = 1.0
ANSWER_TIMEOUT = 3.0


class RedisSpec:
    """A parsed `store =` value."""

    def __init__(self, url, credentials, copy, prefix, refresh, text):
        self.url = url                  # for redis.Redis.from_url, without our options
        self.credentials = credentials  # path or None
        self.copy = copy                # path or None (then: in the state directory)
        self.prefix = prefix
        self.refresh = refresh
        self.text = text                # as configured

    def redacted(self) -> str:
        """The URL for logs and `stats`: any password in it replaced."""
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
            return urlunsplit(parts._replace(netloc=netloc))
        return self.url


def is_shared(value: str) -> bool:
    return bool(value) and value.split(":", 1)[0].lower() in SCHEMES


def parse(value: str, where: str = "mailfilter.conf") -> RedisSpec:
    """A RedisSpec, or ConfigError naming where and what is wrong."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigError(f"{where}: store must be redis://HOST:PORT/DB, rediss://... or "
                          f"unix:///PATH?db=N, got {text!r}")
    if parts.scheme == "unix" and not parts.path:
        raise ConfigError(f"{where}: store {text!r} names no socket path")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"{where}: store {text!r} names no host")
    ours = {"credentials": None, "copy": None, "prefix": "mailfilter:", "refresh": "0.5"}
    passed = []
    for key, val in parse_qsl(parts.query, keep_blank_values=True):
        if key in ours:
            ours[key] = val
        else:
            passed.append((key, val))
    try:
        refresh = float(ours["refresh"])
    except ValueError:
        raise ConfigError(f"{where}: store option refresh must be seconds, got {ours['refresh']!r}") from None
    if not 0 <= refresh <= 3600:
        raise ConfigError(f"{where}: store option refresh must be 0..3600 seconds, got {refresh}")
    if parts.password:
        raise ConfigError(f"{where}: no password in the store URL (every user can read "
                          f"mailfilter.conf); put it in a root-only credentials file")
    for key in ("credentials", "copy"):
        if ours[key] is not None and not os.path.isabs(ours[key]):
            raise ConfigError(f"{where}: store option {key} must be an absolute path, got {ours[key]!r}")
    if parts.scheme == "unix":      # urlunsplit would drop the // of an empty host
        url = "unix://" + parts.path + ("?" + urlencode(passed) if passed else "")
    else:
        url = urlunsplit(parts._replace(query=urlencode(passed)))
    return RedisSpec(url, ours["credentials"], ours["copy"], ours["prefix"], refresh, text)


def read_credentials(spec: RedisSpec):
    """(username or None, password) from the credentials file, or (None, None)
    when there is none. ConfigError for a file others could read or write."""
    path = spec.credentials
    if path is None:
        if not os.path.exists(DEFAULT_CREDENTIALS):
            return None, None
        path = DEFAULT_CREDENTIALS
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the Redis credentials: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: the Redis credentials must be a regular file")
        if st.st_uid != 0:
            raise ConfigError(f"{path}: the Redis credentials must belong to root (chown root {path})")
        if st.st_mode & 0o027:
            raise ConfigError(f"{path}: the Redis credentials are open to others "
                              f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 {path}")
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    words = data.decode("utf-8", "replace").split()
    if len(words) == 1:
        return None, words[0]
    if len(words) == 2:
        return words[0], words[1]
    raise ConfigError(f"{path}: expected one line 'USER PASSWORD' or 'PASSWORD'")
