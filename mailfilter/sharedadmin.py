"""What `mailfilter shared` does: one call per action, answers as dicts."""

from . import exitcodes
from .errors import ConfigError, InputError, MailfilterError


def shared_store(state, config):
    """The state directory's Redis store; ConfigError when it has none."""
    from .store import open_store
    store = open_store(state, config)
    if not getattr(store, "shared", False):
        raise ConfigError(f"{state.config_path}: no `store = redis://...` here (the model is this "
                          f"state directory's own)")
    return store


def run(state, config, action: str, path=None, replace: bool = False) -> dict:
    from .store import ModelError
    from .store.redisstore import Unreachable
    store = shared_store(state, config)
    try:
        if action == "info":
            return store.describe()
        if action == "replay":
            before = store.queued()
            applied = store.replay()
            return {"queued_before": before, "applied": applied, "queued": store.queued()}
        from .store import redisdump
        if action == "export":
            return redisdump.export_store(store, path)
        if action == "import":
            return redisdump.import_store(store, path, replace_existing=replace)
        if action == "reset":
            return redisdump.reset_store(store)
    except Unreachable as err:
        raise MailfilterError(f"{store.where}: unreachable: {err}", exitcodes.UNAVAILABLE) from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", exitcodes.NOINPUT) from None
    except ModelError as err:
        raise InputError(str(err), exitcodes.DATAERR) from None
    raise ValueError(action)
