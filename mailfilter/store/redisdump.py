"""Export and import of the shared model: backup, restore, moving a site.

The file (0600: it holds every user's ledger):
    line 1   JSON: format, bits, features version and CRC, generation,
             counters, salt, and the byte sizes that follow
    then     float32 weights, float32 sums (2**bits each, little-endian)
    then     one JSON line per user: {"user": NAME, "ledger": {hex field: value}}

Restoring brings back the table, the salt (so each user keeps the same
personal ids) and every ledger. Moving one user to another site: copy the
user's state directory (its training cache) and import only that user's
ledger rows is not enough, since personal weights are spread through the
shared table; see README "Several mail hosts".
"""

import json
import os

from .. import exitcodes
from ..atomicfile import replace
from ..errors import MailfilterError
from .modelfile import ModelError

FORMAT = "mailfilter-shared-model 1"


def export_store(store, path: str) -> dict:
    """Write the shared model and all ledgers to path; what was written."""
    meta, weights, sums = store._tables()
    if meta is None:
        raise ModelError(f"{store.where}: there is no shared model yet")
    users = sorted(u.decode("utf-8", "surrogateescape")
                   for u in store._run(lambda c: c.smembers(store.k_users)))
    prefix = store.spec.prefix
    ledgers = []
    for user in users:
        rows = store._run(lambda c: c.hgetall(prefix + "ledger:" + user))
        ledgers.append(json.dumps({"user": user, "ledger": {k.hex(): v.decode() for k, v in rows.items()}}).encode())
    head = {"format": FORMAT, "bits": meta.bits, "fversion": store.identity.version, "fcrc": store.identity.crc,
            "generation": meta.generation, "spam": meta.spam, "good": meta.good, "salt": meta.salt.hex(),
            "users": len(users), "table_bytes": len(weights)}
    replace(path, [json.dumps(head).encode(), b"\n", weights, sums, b"\n".join(ledgers), b"\n"], 0o600)
    return head


def import_store(store, path: str, replace_existing: bool = False) -> dict:
    """Load an export into the store named by store. Refuses to overwrite a
    shared model that exists unless replace_existing."""
    with open(path, "rb") as fh:
        line = fh.readline()
        try:
            head = json.loads(line)
            if head.get("format") != FORMAT:
                raise ValueError(f"format {head.get('format')!r}")
            size = int(head["table_bytes"])
            if size != 4 << int(head["bits"]):
                raise ValueError("table size does not match bits")
        except (ValueError, KeyError, TypeError) as err:
            raise ModelError(f"{path}: not a mailfilter shared-model export ({err})") from None
        if (head["fversion"], head["fcrc"]) != (store.identity.version, store.identity.crc):
            raise ModelError(f"{path}: exported by features v{head['fversion']}, this is "
                             f"v{store.identity.version}; it can't be imported")
        weights, sums = fh.read(size), fh.read(size)
        if len(sums) != size:
            raise ModelError(f"{path}: truncated")
        ledgers = [json.loads(x) for x in fh.read().splitlines() if x.strip()]
    current = store._meta()
    if current is not None and not replace_existing:
        raise ModelError(f"{store.where}: already holds a shared model (generation {current.generation}); "
                         f"import --replace overwrites it")
    # A new generation, beyond both: every resident copy sees the change.
    generation = max(head["generation"], current.generation if current else 0) + 1
    prefix = store.spec.prefix

    def load(c):
        pipe = c.pipeline(transaction=True)
        for user in c.smembers(store.k_users):
            pipe.delete(prefix.encode() + b"ledger:" + user)
        pipe.delete(store.k_meta, store.k_w, store.k_s, store.k_users)
        pipe.hset(store.k_meta, mapping={
            "bits": head["bits"], "fversion": head["fversion"], "fcrc": head["fcrc"],
            "generation": generation, "spam": head["spam"], "good": head["good"],
            "salt": head["salt"], "format": 1})
        pipe.set(store.k_w, weights)
        pipe.set(store.k_s, sums)
        for entry in ledgers:
            rows = {bytes.fromhex(k): v.encode() for k, v in entry["ledger"].items()}
            if rows:
                pipe.hset(prefix + "ledger:" + entry["user"], mapping=rows)
            pipe.sadd(store.k_users, entry["user"])
        return pipe.execute()
    store._run(load)
    return dict(head, generation=generation)


def reset_store(store) -> dict:
    """Empty the shared model: a new table of this release's features (bits,
    version, a new salt) and no ledgers, at a generation past the old one so
    every resident copy reloads. What it held is not read, so this works on
    a model of other features, which nothing else can open. Each host's
    `mailfilter rebuild` then teaches its users' training caches into it."""
    from redis.exceptions import WatchError
    prefix = store.spec.prefix.encode()
    salt = os.urandom(16).hex()
    size = 4 << store.bits

    def wipe(c):
        for _ in range(20):             # a learn in between: read again
            with c.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(store.k_meta, store.k_users)
                    try:
                        generation = int(pipe.hget(store.k_meta, "generation") or 0) + 1
                    except ValueError:
                        generation = 1
                    users = pipe.smembers(store.k_users)
                    pipe.multi()
                    for user in users:
                        pipe.delete(prefix + b"ledger:" + user)
                    pipe.delete(store.k_meta, store.k_w, store.k_s, store.k_users)
                    pipe.hset(store.k_meta, mapping={
                        "bits": store.bits, "fversion": store.identity.version, "fcrc": store.identity.crc,
                        "generation": generation, "spam": 0, "good": 0, "salt": salt, "format": 1})
                    pipe.setrange(store.k_w, size - 1, b"\0")
                    pipe.setrange(store.k_s, size - 1, b"\0")
                    pipe.execute()
                    return generation, len(users)
                except WatchError:
                    continue
        # Learns kept landing: nothing is wrong with the data, so not 65;
        # the admin runs it again (EX_TEMPFAIL).
        raise MailfilterError(f"{store.where}: the shared model kept changing during the reset; "
                              f"nothing was reset, try again", exitcodes.TEMPFAIL)

    generation, users = store._run(wipe)
    return {"generation": generation, "bits": store.bits, "fversion": store.identity.version,
            "ledgers_dropped": users}
