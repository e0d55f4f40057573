"""Raw message -> verdict: view, features, model score, thresholds, rules.

One Classifier serves any number of messages (eval, train, a resident
daemon); the filter process makes one and classifies once. It knows nothing
of files, stores or sockets: it is given a model and rules
(pipeline.user_classifier loads a user's).
"""

import os

from . import features, rules, view
from .model import Model
from .rawmail import HeaderBlock, normalized, rewrite_header, scan_header
from .state import Config

FORCED_PR = 999.99
_INF = float("inf")


class Verdict:
    __slots__ = ("label", "pr", "rule")

    def __init__(self, label: str, pr: float, rule=None):
        self.label = label      # SPAM, GOOD or UNSURE
        self.pr = pr            # log10(P(good)/P(spam)); positive means good
        self.rule = rule        # the priolist rule that forced it, if any

    @property
    def status(self) -> str:
        return f"{self.label} ( {format_pr(self.pr)} )"

    @property
    def spamminess(self) -> float:
        """Higher is spammier: the TREC score."""
        return -self.pr


def format_pr(pr: float) -> str:
    text = f"{pr:+.2f}"
    return "0.00" if text in ("+0.00", "-0.00") else text


def label_for(pr: float, config: Config) -> str:
    if pr <= config.spam_threshold:
        return "SPAM"
    if pr >= config.good_threshold:
        return "GOOD"
    return "UNSURE"


def recipient_of(view_headers, env=os.environ):
    recipient = env.get("RECIPIENT")
    if recipient:
        return recipient.strip()
    for name, value in view_headers:
        if name == "delivered-to":
            return value.strip()
    return None


def rules_text(data: bytes, block: HeaderBlock, message_view) -> str:
    """What priolist rules match against: unfolded headers, blank line, text."""
    head = data[block.start:min(block.end, block.start + rules.MAX_MATCH_CHARS)]
    head_text = normalized(head).decode("utf-8", "replace")
    head_text = head_text.replace("\n ", " ").replace("\n\t", " ")
    return head_text + "\n\n" + "\n".join(message_view.texts)


class Classifier:
    def __init__(self, config: Config, model: Model, rule_list=()):
        self.config = config
        self.model = model
        self.rules = list(rule_list)

    def features(self, data: bytes, block: HeaderBlock = None):
        """(view, feature ids) of a raw message or the prefix we read of it."""
        if block is None:
            block = scan_header(data)
        message_view = view.parse(data, self.config.max_text_bytes, block)
        raw = data
        if any(f.is_ours for f in block.fields):
            # The byte grams see the message as learn teaches it: without
            # our old or forged X-CRM114-* lines (the view skips them too).
            # Else a delivered copy scored otherwise than it was taught.
            raw = rewrite_header(data, block, [])
        ids = features.feature_ids(message_view, raw, self.model.bits)
        # The one hook for a shared model (personal.py): a model that serves
        # one user of many adds that user's own ids to each family, and
        # supplies their weights. Plain models have no extra_ids.
        extra_ids = getattr(self.model, "extra_ids", None)
        if extra_ids is not None:
            ids = extra_ids(ids)
        return message_view, ids

    def classify(self, data: bytes, block: HeaderBlock) -> Verdict:
        message_view, ids = self.features(data, block)
        return self.verdict(data, block, message_view, ids)

    def verdict(self, data, block, message_view, ids) -> Verdict:
        if self.rules:
            rule = rules.check(self.rules, rules_text(data, block, message_view),
                               recipient_of(message_view.headers))
            if rule is not None:
                return Verdict("GOOD" if rule.good else "SPAM", FORCED_PR if rule.good else -FORCED_PR, rule)
        pr = self.model.pr(ids)
        if pr != pr or pr in (_INF, -_INF):
            # The filter never scans the whole model (38 ms of an 8 MB one);
            # a non-finite score is the sign, and the pipeline turns this
            # into UNSURE ( 0.00 ) with the line logged.
            from .store import ModelError
            raise ModelError("the model holds infinite or NaN weights: run `mailfilter rebuild`")
        if not self.model.trained:
            # A model never taught has no opinion: not GOOD ( 0.00 ), which
            # a good_threshold of 0 would make of it.
            return Verdict("UNSURE", pr)
        return Verdict(label_for(pr, self.config), pr)
