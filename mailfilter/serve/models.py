"""One user's classifier, held open in a worker and reloaded when stale.

The pipe filter loads a user's config, rules and mmap'd model for every
message (pipeline.user_classifier); a worker keeps them and, before each
message, asks whether any of them changed:

* the store's generation (store.generation(): +1 per commit of any writer,
  `mailfilter learn`, `train`, maildir-train or our own TELL), so a learn
  is seen by the very next classification; not for a model that follows
  the store itself (a shared store's: store.open_resident, which keeps a
  local copy of the global weights, refreshed when Redis's generation
  moves, and scores on it while Redis is away);
* for the file store, the model file's identity (inode, size, mtime): a
  model replaced or damaged by hand keeps its generation, and a file
  truncated under our mmap would otherwise fault (SIGBUS) when read;
* mailfilter.conf, the system config and priolist.mfp (inode, size, mtime),
  as the pipe filter reads them afresh each time.

Checking costs one pread and four stats (~15 us); a reload costs what the
pipe filter pays per message. A load that fails (a corrupt model, a bad
config) raises inside pipeline.classify, so the message goes out
`UNSURE ( 0.00 )` with the notice and the cause is logged; the next
message tries again.
"""

import os

from ..log import report
from ..state import SYSTEM_CONFIG, Config, State


def _identity(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class UserModel:
    """The classifier of the state directory `home` (its model, config, rules)."""

    def __init__(self, home: str, system_config: str = SYSTEM_CONFIG):
        self.state = State(home)
        self.system_config = system_config
        self._classifier = None
        self._store = None
        self._follows = False
        self._key = None

    def _files_key(self):
        state = self.state
        return (_identity(state.model_path), _identity(state.config_path),
                _identity(self.system_config), _identity(state.rules_path))

    def classifier(self):
        """The current classifier (pipeline's get_classifier). Raises if it
        can't be loaded; pipeline.classify turns that into UNSURE."""
        if self._classifier is not None:
            key = (self._generation(),) + self._files_key()
            if key == self._key:
                return self._classifier
        self._classifier = None
        self._load()
        return self._classifier

    def _load(self) -> None:
        from ..classifier import Classifier
        from ..rules import load as load_rules
        from ..store import open_store
        self.state.ensure()
        # The key is taken before the files are read: a change while we
        # load makes it stale, and the next message loads again.
        files = self._files_key()
        config = self.state.load_config(self.system_config)
        store = open_store(self.state, config)
        generation = store.generation()
        model = store.open_resident()
        rule_list, errors = load_rules(self.state.rules_path)
        for error in errors:
            report(error)
        self._store = store
        self._follows = getattr(model, "follows_store", False)
        self._key = (None if self._follows else generation,) + files
        self._classifier = Classifier(config, model, rule_list)

    def _generation(self):
        # A model that follows the store reloads itself: asking the store
        # here would be a second Redis round trip per message.
        return None if self._follows else self._store.generation()

    def config_for(self, outcome):
        """The config whose thresholds the verdict used (defaults when
        loading failed), for spamc's "score / threshold"."""
        if self._classifier is not None and not outcome.failed:
            return self._classifier.config
        return Config()

    def learn(self, raw: bytes, is_spam: bool, dedupe: bool = True) -> str:
        """Teach raw through the one write path; "learned", "corrected" or
        "skipped". Raises connection.LearnRefused with a sysexits code."""
        import sqlite3

        from ..errors import ConfigError
        from ..learning import session_for
        from ..store import ModelError
        from .connection import LearnRefused
        from .protocol import EX_CONFIG, EX_DATAERR, EX_TEMPFAIL
        try:
            self.state.ensure()
            config = self.state.load_config(self.system_config)
            with session_for(self.state, config) as session:
                return session.learn(raw, is_spam, dedupe=dedupe).action
        except ConfigError as err:
            raise LearnRefused(EX_CONFIG, str(err)) from None
        except ModelError as err:
            raise LearnRefused(EX_DATAERR, str(err)) from None
        except (OSError, sqlite3.Error) as err:
            # A full disk: the old model stands; spamc -L exits non-zero.
            raise LearnRefused(EX_TEMPFAIL, f"could not save: {err}") from None
