"""Teaching the model: the one function `learn`, `train` and the Maildir trainer call.

A message is identified by rawmail.content_digest (our X-CRM114-* headers
stripped, line endings normalised), so the delivered copy of a message trains
exactly like the original. The same message with the same label again is
skipped; with the other label it is a correction.
"""

from dataclasses import dataclass

from . import store
from .classifier import Classifier, label_for
from .ledger import Ledger
from .model import TrainPolicy
from .rawmail import content_digest, strip_our_headers


@dataclass
class LearnResult:
    digest: str
    label: str            # "spam" or "good"
    action: str           # "learned", "corrected" or "skipped"
    pr_before: float
    pr_after: float


def policy_for(config) -> TrainPolicy:
    return TrainPolicy(margin=config.learn_margin)


# How far past the threshold a message the user taught must land (pR).
INSIST_BEYOND = 0.25


def teach(model, ids, is_spam: bool, config, policy: TrainPolicy) -> None:
    """The ordinary update (the one eval measures), then make sure of the verdict.

    When a user says "this is spam", afterwards it must classify as spam. The
    update usually gets there; when it doesn't (a young model, or a correction
    against earlier training), the score is moved just past the threshold.
    """
    model.learn(ids, is_spam, policy)
    if label_for(model.pr(ids), config) != ("SPAM" if is_spam else "GOOD"):
        model.shift_to(ids, config.spam_threshold - INSIST_BEYOND if is_spam
                       else config.good_threshold + INSIST_BEYOND)


def commit(state, model, ledger, rows) -> None:
    """Bump the generation, record rows (digest, label, pr_before), then save the model."""
    model.generation += 1
    ledger.record(rows, model.generation)
    store.save(state.model_path, model)


def learn_messages(state, config, messages, progress=None):
    """Train (raw bytes, is_spam) pairs under the writer lock; save once.

    Returns a LearnResult per message, in order. The model and the ledger
    change together or not at all.
    """
    policy = policy_for(config)
    results = []
    with store.writer_lock(state.lock_path):
        model = store.load_copy(state.model_path, config.model_bits)
        ledger = Ledger(state.ledger_path, model.generation)
        try:
            classifier = Classifier(config, model)
            pending = {}
            for raw, is_spam in messages:
                label = "spam" if is_spam else "good"
                raw = strip_our_headers(raw)
                digest = content_digest(raw)
                previous = pending.get(digest) or ledger.label_of(digest)
                _, ids = classifier.features(raw)
                before = model.pr(ids)
                if previous == label:
                    results.append(LearnResult(digest, label, "skipped", before, before))
                else:
                    teach(model, ids, is_spam, config, policy)
                    pending[digest] = label
                    results.append(LearnResult(digest, label, "corrected" if previous else "learned",
                                               before, model.pr(ids)))
                if progress:
                    progress(results[-1])
            if pending:
                commit(state, model, ledger,
                       [(r.digest, r.label, r.pr_before) for r in results if r.action != "skipped"])
        finally:
            ledger.close()
    return results
