"""Per-user ids in a shared table: feature hashing for multitask learning.

Weinberger et al. (2009, "Feature hashing for large scale multitask
learning") filtered the mail of ~400,000 users with ONE hashed weight
table: each message's features are hashed twice, once as they are (the
global part, learnt from every user) and once together with the user's id
(the user's own part). Score and update treat the two sets as one feature
vector, so a message's score is the global part plus the user's part, a
new user starts with the global model, and a user's own weights take
table slots only for the features that user actually trained.

Here: for a global id i in a feature family's range [lo, hi), the user's
id is lo + h(user, i) mod (hi - lo), in the same range of the same table.
h mixes i with a 64-bit seed made from the user's name and the store's
salt (a random value kept with the shared model): without the salt nobody
can tell which slots are another user's, so no user can aim training at
them.

It knows nothing of Redis: the classifier calls a model's `extra_ids`
(when the model has one) and the store (store/redisstore.py) builds that
from user_seed and with_personal below.
"""

import hashlib

from . import features

# Golden-ratio multiplier (Knuth's multiplicative hashing): the high bits of
# (i ^ seed) * K are well mixed for consecutive or clustered i.
_K = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1


def family_ranges(bits: int) -> list:
    """[(lo, hi), ...]: each feature family's ids in a table of 2**bits
    (features.py decides the layout)."""
    return list(features.family_ranges(bits))


def user_seed(user: str, salt: bytes) -> int:
    """The 64-bit seed of one user's ids in a store with this salt."""
    digest = hashlib.blake2b(user.encode("utf-8", "surrogateescape"), digest_size=8, key=salt[:64]).digest()
    return int.from_bytes(digest, "little")


def with_personal(families, seed: int, bits: int) -> tuple:
    """families with each family's user ids added (set union).

    ~0.15 us an id in CPython: a message of 1,500 ids pays ~0.25 ms."""
    ranges = family_ranges(bits)
    out = []
    for k, ids in enumerate(families):
        if k >= len(ranges):
            out.append(ids)
            continue
        lo, hi = ranges[k]
        span = hi - lo
        out.append(ids | {lo + ((((i ^ seed) * _K) & _M64) >> 32) % span for i in ids})
    return tuple(out)
