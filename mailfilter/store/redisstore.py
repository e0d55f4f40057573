"""The shared store: one model on Redis for every host and every user.

The table (redislua.py has the keys) holds the global weights and, in the
same index ranges, every user's own weights (personal.py): a message's
score is the global part plus its user's part. What lives where:

    Redis            the table, its counters and generation, each user's
                     ledger, the writer lock of each user
    state directory  shared-copy.mfm: the local copy of the table (mmap'd by
                     readers; the fallback while Redis is down), unless the
                     URL's copy= puts it elsewhere; shared-queue/: learns
                     made while Redis was down, replayed in order;
                     shared-seq: this directory's id and commit number

Reading:
  open_for_reading()  for the pipe filter: one round trip at open (the
                      generation, size and salt) and one per message, for
                      exactly the message's ids, global and personal.
  open_resident()     for a daemon or milter: the global weights from the
                      mmap'd local copy, refreshed when Redis's generation
                      moved (and at most every `refresh` seconds); the
                      user's ids fetched per message, in one round trip that
                      also brings the generation.
  Redis unreachable: both score with the local copy (a warning is logged);
  Redis answering nonsense: ModelError, which the pipeline turns into
  UNSURE ( 0.00 ) with the reason logged.

Writing (the one write path, learning.Session, through writer()):
  the local flock of the state directory, then the user's lock in Redis;
  learns queued while Redis was down are replayed first, in order. The
  copy to teach is the whole table; commit sends the deltas (numpy diff of
  the taught copy against the one loaded), applied by one Lua script with
  the ledger rows, the counters and generation + 1. Redis down: the same
  commit goes to shared-queue/ and the local copy, and is applied exactly
  once when Redis is back (each commit carries this directory's id and
  number; Redis keeps the last number applied per directory).

Who the user is comes from the state directory's owner, never from a
setting: the filter can only ever write its own user's weights.
"""

import json
import os
import pwd
import time

from .. import personal
from ..log import warning
from ..model import Model
from . import Store, StoreWriter, modelfile, redislua
from .modelfile import ModelError
from .redisconfig import ANSWER_TIMEOUT, CONNECT_TIMEOUT, read_credentials
from .rows import LedgerEntry, ledger_row

COPY_NAME = "shared-copy.mfm"
QUEUE_NAME = "shared-queue"
SEQ_NAME = "shared-seq"
LOCK_MS = 30_000            # a writer that dies frees its user's lock after this
TOKEN_NAME = "shared-lock-token"    # our lock's token when Redis went away before we could free it
LOCK_WAIT = 150.0           # seconds a writer waits for another's lock at most


class Unreachable(Exception):
    """Redis could not be reached (refused, timed out, connection lost)."""


def user_of(home: str) -> str:
    """The user a state directory belongs to: its owner's name (the number
    when the account has no name here)."""
    uid = os.stat(home).st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def _field(digest: str) -> bytes:
    """A ledger field: a sha256 hex digest as its 32 bytes (half the memory)."""
    if len(digest) == 64:
        try:
            return bytes.fromhex(digest)
        except ValueError:
            pass
    return digest.encode()


def _pack(items) -> bytes:
    out = bytearray()
    for item in items:
        if len(item) > 255:
            raise ValueError("ledger field over 255 bytes")
        out.append(len(item))
        out += item
    return bytes(out)


_SEP = b"\x1f"       # ASCII unit separator: never in a subject or domain we store


def _ledger_value(row, taught_at: float) -> bytes:
    """label letter, pR before, then (after _SEP) when, subject, sender's
    domain. The Lua script reads only the first byte. 6 significant digits:
    ~10 bytes less per ledger row than repr, and an undo that lands within
    1e-5 of the old pR."""
    text = lambda s: (s or "").replace("\x1f", " ").encode("utf-8", "replace")
    return (row.label[0].encode() + (b"" if row.pr_before is None else b"%.6g" % float(row.pr_before))
            + _SEP + b"%.6f" % taught_at + _SEP + text(row.subject) + _SEP + text(row.sender_domain))


def _parse_ledger_value(value: bytes):
    label = {b"s": "spam", b"g": "good"}.get(value[:1])
    if label is None:
        raise ModelError(f"ledger entry {value[:20]!r} is not a label")
    head = value.split(_SEP, 1)[0]
    pr = float(head[1:]) if len(head) > 1 else None
    return label, pr


def _ledger_entry(field: bytes, value: bytes) -> LedgerEntry:
    label, pr = _parse_ledger_value(value)
    rest = value.split(_SEP)[1:] + [b"", b"", b""]
    text = lambda b: b.decode("utf-8", "replace") or None
    return LedgerEntry(field.hex() if len(field) == 32 else field.decode("utf-8", "replace"), label,
                       float(rest[0] or 0), pr, text(rest[1]), text(rest[2]))


class _Meta:
    """The shared model's header, checked."""
    __slots__ = ("bits", "generation", "spam", "good", "salt")

    def __init__(self, raw: dict, where: str, identity):
        try:
            fields = {k.decode(): v for k, v in raw.items()}
            self.bits = int(fields["bits"])
            self.generation = int(fields["generation"])
            self.spam = int(fields["spam"])
            self.good = int(fields["good"])
            self.salt = bytes.fromhex(fields["salt"].decode())
            version, crc = int(fields["fversion"]), int(fields["fcrc"])
        except (KeyError, ValueError, UnicodeDecodeError, AttributeError) as err:
            raise ModelError(f"{where}: the shared model's header is not ours ({type(err).__name__}: {err})") from None
        if not 10 <= self.bits <= 26:
            raise ModelError(f"{where}: the shared model claims 2**{self.bits} weights, out of range")
        if version != identity.version or crc != identity.crc:
            raise ModelError(f"{where}: shared model written by features v{version}"
                             f"{' with other settings' if version == identity.version else ''}, "
                             f"this is v{identity.version}: run `mailfilter shared reset` once, then "
                             f"`mailfilter rebuild` for every user on every host")


class _Overlay:
    """Weights read as fresh values where fetched, else the base table."""
    __slots__ = ("fresh", "base")

    def __init__(self, fresh: dict, base):
        self.fresh = fresh
        self.base = base

    def __getitem__(self, i):
        value = self.fresh.get(i)
        return self.base[i] if value is None else value


class _Fetched:
    """Weights fetched from Redis on demand (the pipe filter's model). The
    classifier fetches a message's ids in one round trip (extra_ids); any
    other id costs a round trip of its own."""
    __slots__ = ("values", "model")

    def __init__(self, model):
        self.values = {}
        self.model = model

    def __getitem__(self, i):
        value = self.values.get(i)
        if value is None:
            self.model._fetch([i])
            return self.model.weights[i]
        return value


class PersonalModel(Model):
    """A model of one user in the shared table: the classifier adds the
    user's ids to every message (extra_ids), the store supplies weights."""

    def __init__(self, bits, weights, sq_grads, spam=0, good=0, generation=0, seed=0):
        super().__init__(bits, weights, sq_grads, spam, good, generation)
        self.user_seed = seed

    def extra_ids(self, families):
        return personal.with_personal(families, self.user_seed, self.bits)

    def copy(self) -> "PersonalModel":
        plain = Model.copy(self)
        return PersonalModel(plain.bits, plain.weights, plain.sq_grads, plain.trained_spam,
                             plain.trained_good, plain.generation, self.user_seed)


class _DirectModel(PersonalModel):
    """The pipe filter's model: weights read from Redis per message."""

    def __init__(self, store, meta: _Meta, seed: int):
        super().__init__(meta.bits, None, None, meta.spam, meta.good, meta.generation, seed)
        self.store = store
        self.weights = _Fetched(self)

    def extra_ids(self, families):
        families = super().extra_ids(families)
        if isinstance(self.weights, _Fetched):
            self._fetch(set().union(*families))
        return families

    def _fetch(self, ids) -> None:
        if not isinstance(self.weights, _Fetched):
            return                  # Redis went away: the local copy serves
        ids = [i for i in ids if i not in self.weights.values]
        if not ids:
            return
        try:
            _, values = self.store._read(ids)
        except Unreachable as err:
            # Mid-message: the rest of this message scores on the local copy.
            self.weights = self.store._local_model(err).weights
            return
        self.weights.values.update(zip(ids, values))

    def copy(self) -> PersonalModel:
        return self.store._whole_model(self.user_seed)


class ResidentModel(PersonalModel):
    """A daemon's model: the global table from the mmap'd local copy, the
    user's own ids fresh from Redis with each message. It follows Redis's
    generation itself (refreshing the copy at most every `refresh` seconds),
    and scores on the copy while Redis is away."""

    follows_store = True

    def __init__(self, store, base: Model, seed: int):
        super().__init__(base.bits, None, None, base.trained_spam, base.trained_good, base.generation, seed)
        self.store = store
        self.base = base
        self.refreshed = time.monotonic()
        self.weights = _Overlay({}, base.weights)

    def extra_ids(self, families):
        extended = super().extra_ids(families)
        own = set().union(*extended).difference(*families)
        store = self.store
        try:
            generation, values = store._read(own)
        except Unreachable as err:
            warning(f"{store.where}: unreachable ({err}); classifying with the local copy")
            self.weights = _Overlay({}, self.base.weights)
            return extended
        if generation != self.base.generation and time.monotonic() - self.refreshed >= store.spec.refresh:
            self._refresh()
        self.weights = _Overlay(dict(zip(own, values)), self.base.weights)
        return extended

    def _refresh(self) -> None:
        self.base = self.store._refreshed_copy()
        self.refreshed = time.monotonic()
        self.trained_spam, self.trained_good = self.base.trained_spam, self.base.trained_good
        self.generation = self.base.generation

    def copy(self) -> PersonalModel:
        return self.store._whole_model(self.user_seed)


class RedisStore(Store):
    shared = True

    def __init__(self, spec, home: str, bits: int, identity, user: str = None, lock_path: str = None):
        self.spec = spec
        self.home = home
        self.user = user if user is not None else user_of(home)
        self.bits = bits                    # for a shared model not made yet
        self.identity = identity            # modelfile.FeatureIdentity
        self.lock_path = lock_path or os.path.join(home, "model.lock")
        self.copy_path = spec.copy or os.path.join(home, COPY_NAME)
        self.queue_dir = os.path.join(home, QUEUE_NAME)
        self.where = spec.redacted()
        p = spec.prefix
        self.k_meta, self.k_w, self.k_s, self.k_users = p + "meta", p + "w", p + "s", p + "users"
        self.k_ledger = p + "ledger:" + self.user
        self.k_lock = p + "lock:" + self.user
        self.k_applied = p + "applied:" + self.user
        self._client = None
        self._scripts = {}

    # -- connection ------------------------------------------------------------

    def client(self):
        if self._client is None:
            try:
                import redis
            except ImportError:
                from .redisconfig import ConfigError
                raise ConfigError(f"store = {self.where} needs redis-py: pip install 'mailfilter[redis]'") from None
            username, password = read_credentials(self.spec)
            self._client = redis.Redis.from_url(
                self.spec.url, username=username, password=password,
                socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=ANSWER_TIMEOUT)
        return self._client

    def _run(self, call, *args, **kw):
        """call(client, ...) with Redis's failures as ours: Unreachable, or
        ModelError for an answer that makes no sense."""
        import redis
        try:
            return call(self.client(), *args, **kw)
        except (redis.ConnectionError, redis.TimeoutError) as err:
            self._client = None
            raise Unreachable(str(err) or type(err).__name__) from None
        except redis.RedisError as err:
            text = str(err)
            if text.startswith("MAILFILTER "):
                text = text[len("MAILFILTER "):]
            raise ModelError(f"{self.where}: {text}") from None

    def _script(self, name):
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client().register_script(getattr(redislua, name))
        return script

    def _meta(self):
        """The shared model's _Meta, or None before its first learn."""
        raw = self._run(lambda c: c.hgetall(self.k_meta))
        if not isinstance(raw, dict):
            raise ModelError(f"{self.where}: answered {type(raw).__name__} for the model header")
        return _Meta(raw, self.where, self.identity) if raw else None

    def _read(self, ids):
        """(generation, [weight of each id]) in one round trip."""
        import struct
        ids = list(ids)
        packed = struct.pack(f"<{len(ids)}i", *ids)
        answer = self._run(lambda c: self._script("READ")(keys=[self.k_meta, self.k_w], args=[packed], client=c))
        try:
            generation, blob = answer
            generation = int(generation) if generation is not None else 0
        except (TypeError, ValueError):
            raise ModelError(f"{self.where}: answered {str(answer)[:60]!r} to a weight read") from None
        if not isinstance(blob, bytes) or len(blob) != 4 * len(ids):
            if generation == 0 and not blob:
                return 0, [0.0] * len(ids)          # no model yet
            raise ModelError(f"{self.where}: answered {len(blob) if isinstance(blob, bytes) else blob!r} "
                             f"bytes for {len(ids)} weights")
        return generation, memoryview(blob).cast("f").tolist()

    def _tables(self, with_sums: bool = True):
        """(meta, weights bytes, sums bytes) as one snapshot (MULTI)."""
        def get(c):
            pipe = c.pipeline(transaction=True)
            pipe.hgetall(self.k_meta)
            pipe.get(self.k_w)
            if with_sums:
                pipe.get(self.k_s)
            return pipe.execute()
        answer = self._run(get)
        meta = _Meta(answer[0], self.where, self.identity) if answer[0] else None
        if meta is None:
            return None, None, None
        size = 4 << meta.bits
        tables = answer[1:] + ([None] if not with_sums else [])
        for name, blob in zip(("weights", "sums"), tables[:1 + with_sums]):
            if not isinstance(blob, bytes) or len(blob) != size:
                got = len(blob) if isinstance(blob, bytes) else blob
                raise ModelError(f"{self.where}: the shared {name} are {got} bytes, expected {size}")
        return meta, tables[0], tables[1]

    def init(self, salt: bytes) -> None:
        """Make the shared model if there is none yet (the first writer does)."""
        self._run(lambda c: self._script("INIT")(
            keys=[self.k_meta, self.k_w, self.k_s],
            args=[self.bits, self.identity.version, self.identity.crc, salt.hex()], client=c))

    def _seed(self, salt: bytes) -> int:
        return personal.user_seed(self.user, salt)

    # -- the local copy ----------------------------------------------------------

    def _salt_path(self) -> str:
        return self.copy_path + ".salt"

    def _local_model(self, reason=None) -> PersonalModel:
        """The local copy (mmap'd), or an empty model when there is none."""
        if reason is not None:
            warning(f"{self.where}: unreachable ({reason}); classifying with the local copy {self.copy_path}")
        model = modelfile.map_readonly(self.copy_path, self.bits, self.identity)
        try:
            with open(self._salt_path()) as fh:
                salt = bytes.fromhex(fh.read().strip())
        except (OSError, ValueError):
            salt = b""
        return PersonalModel(model.bits, model.weights, model.sq_grads, model.trained_spam,
                             model.trained_good, model.generation, self._seed(salt))

    def _save_copy(self, model: Model, salt: bytes) -> None:
        """Write the local copy (a cache: no fsync; a torn file fails its size
        check and is simply not used)."""
        from ..atomicfile import replace
        # A host-wide copy (copy=) is read by every user's filter; one in a
        # state directory is that user's alone.
        mode = 0o644 if self.spec.copy else 0o600
        salt_hex = salt.hex()
        try:
            with open(self._salt_path()) as fh:
                same = fh.read().strip() == salt_hex
        except OSError:
            same = False
        if not same:
            replace(self._salt_path(), [salt_hex.encode() + b"\n"], mode, durable=False)
        replace(self.copy_path, modelfile.chunks(model, self.identity), mode, durable=False)

    def _refreshed_copy(self) -> Model:
        """The local copy brought up to Redis's generation: someone else's
        fresh enough copy (another worker wrote it), else fetched."""
        try:
            local = modelfile.read_generation(self.copy_path)
            meta = self._meta()
            if meta is not None and local == meta.generation:
                return modelfile.map_readonly(self.copy_path, self.bits, self.identity)
            meta, weights, sums = self._tables()
        except Unreachable:
            return modelfile.map_readonly(self.copy_path, self.bits, self.identity)
        if meta is None:
            return modelfile.empty(self.bits)
        model = modelfile._model(bytearray(modelfile.HEADER.size) + weights + sums, meta.bits,
                                 meta.spam, meta.good, meta.generation)
        try:
            self._save_copy(model, meta.salt)
        except OSError as err:
            warning(f"{self.copy_path}: could not save the local copy: {err}")
            return model
        return modelfile.map_readonly(self.copy_path, self.bits, self.identity)

    def _whole_model(self, seed) -> PersonalModel:
        """A private copy of the whole table (eval's starting point)."""
        try:
            meta, weights, sums = self._tables()
        except Unreachable as err:
            return self._local_model(err).copy()
        if meta is None:
            empty = modelfile.empty(self.bits)
            return PersonalModel(self.bits, empty.weights, empty.sq_grads, seed=seed)
        return PersonalModel(meta.bits, memoryview(bytearray(weights)).cast("f"),
                             memoryview(bytearray(sums)).cast("f"), meta.spam, meta.good,
                             meta.generation, self._seed(meta.salt))

    # -- the Store interface -----------------------------------------------------

    def open_for_reading(self) -> PersonalModel:
        try:
            meta = self._meta()
        except Unreachable as err:
            return self._local_model(err)
        if meta is None:
            empty = modelfile.empty(self.bits)
            return PersonalModel(self.bits, empty.weights, empty.sq_grads)
        return _DirectModel(self, meta, self._seed(meta.salt))

    def open_resident(self) -> PersonalModel:
        """The model for a resident process (daemon, milter): see ResidentModel."""
        try:
            meta = self._meta()
        except Unreachable as err:
            return self._local_model(err)
        if meta is None:
            empty = modelfile.empty(self.bits)
            return ResidentModel(self, empty, self._seed(b""))
        return ResidentModel(self, self._refreshed_copy(), self._seed(meta.salt))

    def generation(self) -> int:
        try:
            meta = self._meta()
        except Unreachable:
            return modelfile.read_generation(self.copy_path)
        return meta.generation if meta else 0

    def writer(self) -> "RedisWriter":
        return RedisWriter(self)

    def replay(self) -> int:
        """Apply the learns queued while Redis was down; how many were left
        to apply (0 when Redis is still unreachable)."""
        with self.writer() as writer:
            return writer.replayed

    def queued(self) -> int:
        try:
            return sum(1 for name in os.listdir(self.queue_dir) if name.endswith(".learn"))
        except FileNotFoundError:
            return 0

    def learned(self, recent: int = 10) -> dict:
        """This user's ledger in Redis (stats): counts per label and the
        newest rows. Reads the whole hash: stats only, never per message."""
        result = {"spam": 0, "good": 0, "recent": []}
        try:
            if self._meta() is None:
                return result
            rows = self._run(lambda c: c.hgetall(self.k_ledger))
        except Unreachable:
            return result
        entries = [_ledger_entry(field, value) for field, value in rows.items()]
        for entry in entries:
            result[entry.label] += 1
        entries.sort(key=lambda e: e.trained_at, reverse=True)
        result["recent"] = entries[:max(0, recent)]
        return result

    def describe(self) -> dict:
        """What `mailfilter stats` shows of the shared store."""
        info = {"store": "redis", "url": self.where, "user": self.user, "queued_learns": self.queued(),
                "local_copy": self.copy_path, "local_copy_generation": modelfile.read_generation(self.copy_path)}
        try:
            meta = self._meta()
            def figures(c):
                pipe = c.pipeline(transaction=False)
                pipe.scard(self.k_users)
                pipe.hlen(self.k_ledger)
                pipe.memory_usage(self.k_ledger)
                pipe.info("memory")
                return pipe.execute()
            users, ledger, ledger_bytes, memory = self._run(figures)
        except Unreachable as err:
            info["reachable"] = False
            info["error"] = str(err)
            return info
        info["reachable"] = True
        if meta is not None:
            info.update(generation=meta.generation, bits=meta.bits, trained_spam=meta.spam,
                        trained_good=meta.good, table_bytes=8 << meta.bits)
        else:
            info.update(generation=0, bits=None)
        info.update(users=users, user_ledger_entries=ledger,
                    user_ledger_bytes=ledger_bytes or 0, redis_used_memory=memory.get("used_memory"))
        return info


class RedisWriter(StoreWriter):
    def __init__(self, store: RedisStore):
        self.store = store
        self.online = False
        self.replayed = 0
        self._fd = None
        self._token = None
        self._renewed = 0.0
        self._loaded = None         # (meta, weights bytes, sums bytes) of the copy given out
        self._fresh = False
        self._queued_rows = None    # offline: digest -> (label, pr) from the queue

    # -- locks -----------------------------------------------------------------

    def __enter__(self) -> "RedisWriter":
        import fcntl
        store = self.store
        self._fd = os.open(store.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._lock()
                self.online = True
                self.replayed = self._replay()
            except Unreachable as err:
                self.online = False
                warning(f"{store.where}: unreachable ({err}); learning into the local copy, "
                        f"queued in {store.queue_dir} for when it is back")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> bool:
        if self._token is not None:
            try:
                self._unlock(self._token)
            except (Unreachable, ModelError):
                # Redis went away holding our lock (and may come back with
                # it from its disk): the next writer here frees it, instead
                # of waiting out its time.
                try:
                    with open(os.path.join(self.store.home, TOKEN_NAME), "w") as fh:
                        fh.write(self._token)
                except OSError:
                    pass
            self._token = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return False

    def _unlock(self, token) -> None:
        store = self.store
        store._run(lambda c: store._script("UNLOCK")(keys=[store.k_lock], args=[token], client=c))

    def _lock(self) -> None:
        token = os.urandom(12).hex()
        store = self.store
        stale = os.path.join(store.home, TOKEN_NAME)
        if os.path.exists(stale):           # we hold the directory's flock: that writer is gone
            with open(stale) as fh:
                self._unlock(fh.read().strip())
            os.unlink(stale)
        deadline = time.monotonic() + LOCK_WAIT
        while not store._run(lambda c: c.set(store.k_lock, token, nx=True, px=LOCK_MS)):
            if time.monotonic() > deadline:
                raise ModelError(f"{store.where}: {store.user}'s writer lock is held by someone else "
                                 f"for over {LOCK_WAIT:.0f} s")
            time.sleep(0.02)
        self._token = token
        self._renewed = time.monotonic()

    def _renew(self) -> None:
        if self._token and time.monotonic() - self._renewed > LOCK_MS / 4000:
            store = self.store
            store._run(lambda c: store._script("RENEW")(keys=[store.k_lock], args=[self._token, LOCK_MS], client=c))
            self._renewed = time.monotonic()

    # -- the copy ----------------------------------------------------------------

    def load_copy(self, fresh: bool = False) -> PersonalModel:
        store = self.store
        self._fresh = fresh
        if self.online:
            try:
                self._renew()
                meta, weights, sums = self._init_and_read()
            except Unreachable as err:
                self._went_away(err)
        if not self.online:
            if fresh:
                raise ModelError(f"{store.where}: unreachable; a shared model can only be "
                                 f"rebuilt while Redis answers")
            local = store._local_model()
            model = local.copy()
            self._loaded = (None, bytes(local.weights.cast("B")), bytes(local.sq_grads.cast("B")),
                            local.trained_spam, local.trained_good)
            return model
        seed = store._seed(meta.salt)
        self._loaded = (meta, weights, sums, meta.spam, meta.good)
        if fresh:
            empty = modelfile.empty(meta.bits)
            return PersonalModel(meta.bits, empty.weights, empty.sq_grads, 0, 0, meta.generation, seed)
        return PersonalModel(meta.bits, memoryview(bytearray(weights)).cast("f"),
                             memoryview(bytearray(sums)).cast("f"), meta.spam, meta.good, meta.generation, seed)

    def _init_and_read(self):
        store = self.store
        meta, weights, sums = store._tables()
        if meta is None:
            store.init(os.urandom(16))
            meta, weights, sums = store._tables()
        return meta, weights, sums

    # -- the ledger ----------------------------------------------------------------

    def label_of(self, digest: str):
        record = self.record_of(digest)
        return record[0] if record else None

    def record_of(self, digest: str):
        store = self.store
        if not self.online:
            if self._queued_rows is None:
                self._queued_rows = {}
                for entry in _queue_entries(store.queue_dir):
                    for d in entry.forget:
                        self._queued_rows.pop(d, None)
                    for d, value in entry.rows:
                        self._queued_rows[d] = _parse_ledger_value(value)
            return self._queued_rows.get(_field(digest))
        try:
            self._renew()
            value = store._run(lambda c: c.hget(store.k_ledger, _field(digest)))
        except Unreachable as err:
            self._went_away(err)
            return self.record_of(digest)
        return _parse_ledger_value(value) if value is not None else None

    def _went_away(self, err) -> None:
        """Redis vanished mid-session: carry on as if it had been down from
        the start (the ledger from the queue, the commit into it)."""
        warning(f"{self.store.where}: lost ({err}); this learn is queued for when it is back")
        self.online = False

    # -- commit --------------------------------------------------------------------

    def commit(self, model, rows, replace_ledger: bool = False, forget=()) -> None:
        entry = _Entry.of(self, model, rows, replace_ledger, forget)
        if self.online:
            try:
                self._renew()
                status, generation = self._apply(entry, queued=False)
            except Unreachable as err:
                self._went_away(err)
                self._offline_commit(entry, model)
                return
            model.generation = generation
            # The fallback for when Redis is down: the table as this learn
            # left it (others' learns since our load come with the next
            # refresh). ~4 ms for 8 MiB, no fsync: it is a cache.
            self._save_copy_quietly(model, self._loaded[0].salt)
            return
        self._offline_commit(entry, model)

    def _offline_commit(self, entry, model) -> None:
        if entry.reset_w:
            raise ModelError(f"{self.store.where}: unreachable; a shared model can only be rebuilt "
                             f"while Redis answers")
        entry.save(self.store.queue_dir)
        if self._queued_rows is not None:
            for d in entry.forget:
                self._queued_rows.pop(d, None)
            for d, value in entry.rows:
                self._queued_rows[d] = _parse_ledger_value(value)
        # The local copy learns too, so the next learn while Redis is down
        # builds on this one. Its generation stays behind Redis's: a
        # resident reader fetches the real table as soon as it can.
        self._save_copy_quietly(model, None)
        model.generation += 1

    def _save_copy_quietly(self, model, salt) -> None:
        store = self.store
        if salt is None:
            try:
                with open(store._salt_path()) as fh:
                    salt = bytes.fromhex(fh.read().strip())
            except (OSError, ValueError):
                salt = b""
        try:
            store._save_copy(model, salt)
        except OSError as err:
            warning(f"{store.copy_path}: could not save the local copy: {err}")

    def _apply(self, entry, queued: bool):
        store = self.store
        answer = store._run(lambda c: store._script("COMMIT")(
            keys=[store.k_meta, store.k_w, store.k_s, store.k_ledger, store.k_lock, store.k_users,
                  store.k_applied],
            args=[self._token or "", entry.host, entry.seq, entry.bits, store.identity.version,
                  store.identity.crc, entry.ids, entry.dw, entry.ds, entry.d_spam, entry.d_good,
                  _pack(x for row in entry.rows for x in row), _pack(entry.forget),
                  "1" if entry.replace else "0", "1" if queued else "0", store.user,
                  entry.reset_w, entry.reset_s], client=c))
        try:
            status, generation = answer
            return status.decode(), int(generation)
        except (TypeError, ValueError, AttributeError):
            raise ModelError(f"{store.where}: answered {str(answer)[:60]!r} to a commit") from None

    def _replay(self) -> int:
        store = self.store
        done = 0
        for entry in _queue_entries(store.queue_dir):
            try:
                self._apply(entry, queued=True)
            except ModelError as err:
                warning(f"{entry.path}: Redis refused a queued learn, kept for later: {err}")
                break
            os.unlink(entry.path)
            done += 1
        return done


class _Entry:
    """One commit, as sent to Redis or kept in the queue."""

    def __init__(self, host, seq, bits, ids, dw, ds, d_spam, d_good, rows, forget, replace,
                 reset_w=b"", reset_s=b"", path=None):
        self.host, self.seq, self.bits = host, seq, bits
        self.ids, self.dw, self.ds = ids, dw, ds
        self.d_spam, self.d_good = d_spam, d_good
        self.rows = rows                # [(field bytes, value bytes)]
        self.forget = forget            # [field bytes]
        self.replace = replace
        self.reset_w, self.reset_s = reset_w, reset_s
        self.path = path

    @classmethod
    def of(cls, writer: RedisWriter, model, rows, replace_ledger, forget) -> "_Entry":
        import numpy as np
        meta, old_w, old_s, old_spam, old_good = writer._loaded
        new_w = np.frombuffer(model.weights, dtype="<f4")
        new_s = np.frombuffer(model.sq_grads, dtype="<f4")
        if not (np.isfinite(new_w).all() and np.isfinite(new_s).all()):
            raise ModelError("the learn produced a non-finite weight; nothing was saved")
        host, seq = _next_seq(writer.store.home)
        now = time.time()
        # A microsecond apart, so the newest first means the last row first (as the file ledger).
        led_rows = [(_field(r.digest), _ledger_value(r, now + n * 1e-6)) for n, r in enumerate(map(ledger_row, rows))]
        forget = [_field(d) for d in forget]
        if writer._fresh:
            return cls(host, seq, model.bits, b"", b"", b"", model.trained_spam, model.trained_good,
                       led_rows, forget, replace_ledger, bytes(new_w.data), bytes(new_s.data))
        ow = np.frombuffer(old_w, dtype="<f4")
        os_ = np.frombuffer(old_s, dtype="<f4")
        changed = np.flatnonzero((ow != new_w) | (os_ != new_s))
        dw = new_w[changed].astype("<f8") - ow[changed].astype("<f8")
        ds = new_s[changed].astype("<f8") - os_[changed].astype("<f8")
        return cls(host, seq, model.bits, changed.astype("<i4").tobytes(), dw.tobytes(), ds.tobytes(),
                   model.trained_spam - old_spam, model.trained_good - old_good,
                   led_rows, forget, replace_ledger)

    def save(self, directory: str) -> None:
        from ..atomicfile import replace
        os.makedirs(directory, mode=0o700, exist_ok=True)
        head = json.dumps({
            "host": self.host, "seq": self.seq, "bits": self.bits, "spam": self.d_spam, "good": self.d_good,
            "replace": self.replace, "rows": [[d.hex(), v.decode()] for d, v in self.rows],
            "forget": [d.hex() for d in self.forget],
            "sizes": [len(self.ids), len(self.dw), len(self.ds)]}).encode()
        self.path = os.path.join(directory, f"{self.seq:012d}.learn")
        replace(self.path, [head, b"\n", self.ids, self.dw, self.ds], 0o600)

    @classmethod
    def load(cls, path: str) -> "_Entry":
        with open(path, "rb") as fh:
            data = fh.read()
        line, _, blobs = data.partition(b"\n")
        head = json.loads(line)
        a, b, c = head["sizes"]
        if len(blobs) != a + b + c:
            raise ValueError("truncated")
        return cls(head["host"], head["seq"], head["bits"], blobs[:a], blobs[a:a + b], blobs[a + b:],
                   head["spam"], head["good"], [(bytes.fromhex(d), v.encode()) for d, v in head["rows"]],
                   [bytes.fromhex(d) for d in head["forget"]], head["replace"], path=path)


def _queue_entries(directory: str):
    """The queued commits, oldest first (their numbers are in order)."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".learn"))
    except FileNotFoundError:
        return []
    entries = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            entries.append(_Entry.load(path))
        except (OSError, ValueError, KeyError) as err:
            warning(f"{path}: unreadable queued learn, set aside as {path}.bad: {err}")
            os.replace(path, path + ".bad")
    return entries


def _next_seq(home: str):
    """(this state directory's id, its next commit number). Called under the
    directory's flock, so numbers never repeat or go back."""
    from ..atomicfile import replace
    path = os.path.join(home, SEQ_NAME)
    try:
        with open(path) as fh:
            host, seq = fh.read().split()
            seq = int(seq)
    except (OSError, ValueError):
        host, seq = os.urandom(8).hex(), 0
    seq += 1
    replace(path, [f"{host} {seq}\n".encode()], 0o600)
    return host, seq
