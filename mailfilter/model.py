"""The learner: online logistic regression over hashed feature ids.

It knows nothing of mail. A message is a tuple of feature-id sets, one per
feature family (features.py: words, identity, byte 5-grams); each family
is its own logistic model in its own range of the weight table, and the
message's logit z (log-odds of spam) is their weighted sum. pR, the figure
CRM114 prints, is log10(P(good)/P(spam)) = -z / ln 10.

Why logistic regression: on hashed binary features it is the learner that
did best in the TREC spam tracks in its simplest form (Goodman & Yih 2006;
Sculley & Wachman 2007). An update costs one pass over the message's
features, and no crafted message can make scoring more than linear in its
feature count.

Measured choices, (1-ROCA)% on trec07p (75,399 messages, the TREC 2007
immediate-feedback order) / SpamAssassin (6,046, index.shuffled), each
tuned on both, never on one alone; the earlier figures (SpamAssassin only,
mean of three orders) are marked so:
* Per-feature step sizes (AdaGrad): rate / sqrt(sum of that feature's past
  squared gradients). A word seen for the first time moves fast, as in a
  Bayesian filter's token counts; a word seen in thousands of messages
  moves slowly. (SpamAssassin: 0.65 -> 0.46 on the first 2000 messages
  against one global rate.) Making the sums forget (decay 0.99, 0.999) or
  giving steps a floor changed nothing on trec07p (0.0156-0.0162 against
  0.0161); an initial sum (steps proportional to the gradient from the
  start) cost SpamAssassin 0.054 -> 0.067-0.100.
* Unit-length feature vectors: each present feature is 1/sqrt(n), not 1.
  Otherwise a long message (a newsletter, a digest) outvotes everything by
  sheer token count. (SpamAssassin: 0.118 -> 0.065.)
* Thick threshold, and how thick. Each family trains on a message until it
  alone is beyond a margin on the right side. The margin is what decides
  how fast the filter recovers when the mail changes: at 1.5 pR (CRM114's
  habit, and ours until now) trec07p scored 0.0161, at 3.0 0.0097, at 5.0
  0.0076, with SpamAssassin 0.056 / 0.051 / 0.057; training every message
  (Goodman & Yih) gave 0.0086 / 0.054. Chosen per family: words and
  identity 3.0 pR, byte grams 4.0 pR at rate 0.25. The byte family is the
  strongest on trec07p and the one that overfits body text: at margin 5 it
  took trec07p to 0.0056 but the Enron-Spam users (headerless text) from
  0.018 to 0.082; margin 4 keeps trec07p (0.0056) and SpamAssassin (0.0430)
  and gives back some of Enron (0.068).
* Families trained independently and added with fixed weights, words 1.0,
  identity 0.5, byte grams 1.0. A learned online fusion (stacked logistic
  regression on the families' logits, Cormack's wat3) lost to fixed weights
  in every combination measured (e.g. 0.0098/0.0652 against 0.0065/0.0642),
  and training the families jointly on the summed logit lost too (fused
  margin 3: 0.0138/0.0528).
* Rehearsal (learning.py): each teach also re-teaches a few recently taught
  messages. Not here: the model only updates.

The updates run in numpy (imported on first learn, never on the classify
path): with the margins above a message costs ~8 updates of ~3,500 ids on
trec07p, 24 ms in pure Python and ~0.4 ms with fancy indexing. Scoring
stays pure Python over the float32 table (math.fsum), so the pipe filter
pays nothing for numpy.
"""

import math

LN10 = math.log(10.0)
# words, identity, byte 5-grams (features.family_ranges)
FAMILY_WEIGHTS = (1.0, 0.5, 1.0)
_np = None


def _numpy():
    global _np
    if _np is None:
        import numpy
        _np = numpy
    return _np


class TrainPolicy:
    def __init__(self, margin: float = 3.0, rates=(0.5, 0.5, 0.25), byte_margin_extra: float = 1.0,
                 max_rounds: int = 8):
        # Thick threshold in pR per family: train on a message until each
        # family alone is this far on the right side. The byte grams go one
        # pR further (see the module's notes).
        self.margins = (margin, margin, margin + byte_margin_extra)
        # AdaGrad base step per family: 0.5 for words (0.5 beat 0.3 and 0.7
        # on SpamAssassin, 0.069 against 0.074/0.069); 0.25 for the byte
        # grams, which with 0.5 reached trec07p 0.0087 against 0.0064.
        self.rates = rates
        # Repeat the update until beyond the margin, at most this often
        # (2, 8 and 16 rounds gave the same figure).
        self.max_rounds = max_rounds


class Model:
    """weights and squared-gradient sums: float32 buffers of 2**bits each.

    Each feature family owns a range of ids (features.family_ranges).
    """

    def __init__(self, bits: int, weights, sq_grads, trained_spam: int = 0,
                 trained_good: int = 0, generation: int = 0):
        self.bits = bits
        self.weights = weights
        self.sq_grads = sq_grads
        self.trained_spam = trained_spam
        self.trained_good = trained_good
        self.generation = generation
        self._arrays = None

    def copy(self) -> "Model":
        """A private, writable copy (of an mmap'd model, say)."""
        return Model(self.bits, memoryview(bytearray(self.weights.cast("B"))).cast("f"),
                     memoryview(bytearray(self.sq_grads.cast("B"))).cast("f"),
                     self.trained_spam, self.trained_good, self.generation)

    @property
    def trained(self) -> int:
        return self.trained_spam + self.trained_good

    def _family_logit(self, ids) -> float:
        if not ids:
            return 0.0
        return math.fsum(map(self.weights.__getitem__, ids)) / math.sqrt(len(ids))

    def logit(self, families) -> float:
        return sum(weight * self._family_logit(ids) for weight, ids in zip(FAMILY_WEIGHTS, families))

    def pr(self, families) -> float:
        return -self.logit(families) / LN10

    def _numpy_views(self):
        if self._arrays is None:
            np = _numpy()
            self._arrays = (np.frombuffer(self.weights, dtype=np.float32),
                            np.frombuffer(self.sq_grads, dtype=np.float32))
        return self._arrays

    def learn(self, families, is_spam: bool, policy: TrainPolicy, count: bool = True) -> int:
        """Train each family until it alone is beyond its margin on the right side.

        Returns how many updates were applied (0: it was already right).
        count=False for a rehearsal: the message was counted when first taught.
        """
        np = _numpy()
        w, g2 = self._numpy_views()
        target = 1.0 if is_spam else 0.0
        rounds = 0
        for ids, rate, margin in zip(families, policy.rates, policy.margins):
            if not len(ids):
                continue
            index = ids if isinstance(ids, np.ndarray) else np.fromiter(ids, np.int64, len(ids))
            scale = 1.0 / math.sqrt(len(index))
            bound = margin * LN10
            for _ in range(policy.max_rounds):
                z = float(w[index].sum(dtype=np.float64)) * scale
                if (z >= bound) if is_spam else (z <= -bound):
                    break
                z = max(-50.0, min(50.0, z))         # exp can't overflow
                gradient = (target - 1.0 / (1.0 + math.exp(-z))) * scale
                if gradient == 0.0:
                    break                             # saturated: nothing to learn, and no 0/0
                total = g2[index].astype(np.float64) + gradient * gradient
                g2[index] = total
                w[index] = w[index] + (gradient * rate) / np.sqrt(total)
                rounds += 1
        if rounds and count:
            if is_spam:
                self.trained_spam += 1
            else:
                self.trained_good += 1
        return rounds

    def shift_to(self, families, pr: float) -> None:
        """Move this message's score to exactly pr, spread evenly over its word features.

        For corrections the user asks for: the gradient steps above shrink as a
        feature is trained (and vanish near P = 0 or 1), so a message taught one
        way and then the other could stay on the wrong side. The bias (id 0) is
        left alone: it would move every other message too.
        """
        ids = families[0]
        own = [i for i in ids if i != 0]        # the words family starts at id 0
        if not own:
            return
        needed = (-pr * LN10 - self.logit(families)) / FAMILY_WEIGHTS[0]
        delta = needed * math.sqrt(len(ids)) / len(own)
        w = self.weights
        for i in own:
            w[i] += delta
