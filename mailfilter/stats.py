"""`mailfilter stats`: what one user's filter has learned and done.

In the spirit of `sa-learn --dump magic` (nspam, nham, the newest learn)
and `rspamc stat` (messages scanned per action, learned per class):

    the model      its generation, age (mtime), size, features version and
                   update counters (Store.describe())
    trained        messages per class, as the ledger labels them now
    verdicts       SPAM/GOOD/UNSURE (and failures, command mails) marked by
                   the pipe filter and `serve`, in all and per month (verdicts.py)
    recent learns  the newest ledger rows: when, which label, the subject
                   and the sender's domain

gather() reads only (the ledger through a read-only SQLite connection) and
returns a dict, which is also the --json output; format_text() is the
terminal's view of it.
"""

import os
import time

from .verdicts import counts as verdict_counts


def show(home: str, recent: int = 10, as_json: bool = False) -> str:
    """The stats of the state directory home, as text or JSON. Raises
    InputError (66) when there is no such directory, ConfigError (78) for a
    bad mailfilter.conf. Creates nothing."""
    from . import exitcodes
    from .errors import InputError
    from .state import State
    if not os.path.isdir(home):
        raise InputError(f"no state directory {home}: nothing filtered or learned there yet "
                         f"(or give --home / --user)", exitcodes.NOINPUT)
    state = State(home)
    info = gather(state, state.load_config(), recent)
    if as_json:
        import json
        return json.dumps(info, indent=2, ensure_ascii=False) + "\n"
    return format_text(info)


def gather(state, config, recent: int = 10, now: float = None) -> dict:
    from .store import open_store
    now = time.time() if now is None else now
    store = open_store(state, config)
    problems = []
    describe = getattr(store, "describe", None)
    try:
        model = dict(describe()) if describe else {"generation": store.generation()}
    except Exception as err:  # noqa: BLE001 - a store that can't be reached: say so, show the rest
        model = {"error": f"the model's store: {err}"}
    if model.get("mtime") is not None:
        model["age_seconds"] = max(0.0, now - model["mtime"])
    if model.get("error"):
        problems.append(model["error"])
    elif model.get("features_current") is False:
        problems.append(f"the model was written by other features (v{model.get('feature_version')}): "
                        f"run `mailfilter rebuild`")
    trained = {"spam": 0, "good": 0}
    entries = []
    try:
        learned = store.learned(recent)
        trained = {"spam": learned["spam"], "good": learned["good"]}
        entries = learned["recent"]
    except NotImplementedError:
        problems.append("this store does not list what it learned")
    except Exception as err:  # noqa: BLE001 - sqlite3.Error, OSError: show the rest anyway
        problems.append(f"ledger: cannot read: {err}")
    info = {
        "state_directory": state.home,
        "model": model,
        "trained": trained,
        "verdicts": verdict_counts(state.home),
        "recent": [_entry(e) for e in entries],
        "problems": problems,
    }
    if "trained_spam" in model:
        info["model_updates"] = {"spam": model["trained_spam"], "good": model["trained_good"]}
    return info


def _entry(entry) -> dict:
    return {"trained_at": entry.trained_at, "time": _iso(entry.trained_at), "label": entry.label,
            "subject": entry.subject, "sender_domain": entry.sender_domain,
            "digest": entry.digest, "pr_before": entry.pr_before}


def _iso(when: float) -> str:
    """Local time with its UTC offset, as RFC 3339 writes it."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(when))
    return text[:-2] + ":" + text[-2:]


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def format_text(info: dict) -> str:
    lines = [f"mailfilter stats for {info['state_directory']}"]
    model = info["model"]
    if model.get("exists") is False:
        lines.append("model:     none yet (every message is UNSURE until something is learned)")
    else:
        parts = [f"generation {model.get('generation', '?')}"]
        if model.get("feature_version") is not None:
            parts.append(f"features v{model['feature_version']}")
        if model.get("size") is not None:
            parts.append(_mib(model["size"]))
        for key, value in model.items():       # a store's own figures (Redis: keys, memory, ...)
            if key not in _SHOWN and isinstance(value, (int, float, str)) and not isinstance(value, bool):
                parts.append(f"{key} {value}")
        line = "model:     " + ", ".join(parts)
        if model.get("mtime") is not None:
            line += (f"; written {time.strftime('%Y-%m-%d %H:%M', time.localtime(model['mtime']))}"
                     f" ({_ago(model.get('age_seconds', 0))})")
        lines.append(line)
    trained = info["trained"]
    line = f"trained:   {trained['spam']} spam, {trained['good']} good messages"
    if "model_updates" in info:
        updates = info["model_updates"]
        line += f" ({updates['spam']} spam and {updates['good']} good updates of the model)"
    lines.append(line)
    verdicts = info["verdicts"]
    total = verdicts["total"]
    if not verdicts["months"]:
        lines.append("verdicts:  none counted yet (the filter and `serve` count each message they mark)")
    else:
        first = next(iter(verdicts["months"]))
        lines.append(f"verdicts:  {_verdict_line(total)} since {first}")
        month = time.strftime("%Y-%m", time.gmtime())
        if month in verdicts["months"] and len(verdicts["months"]) > 1:
            lines.append(f"           {_verdict_line(verdicts['months'][month])} in {month}")
    if info["recent"]:
        lines.append("recent learns, newest first:")
        width = max(len(e["sender_domain"] or "-") for e in info["recent"])
        for e in info["recent"]:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["trained_at"]))
            lines.append(f"  {when}  {e['label']:<4}  {(e['sender_domain'] or '-'):<{width}}  "
                         f"{e['subject'] if e['subject'] is not None else '(no subject recorded)'}")
    else:
        lines.append("recent learns: none")
    for problem in info["problems"]:
        lines.append(f"problem:   {problem}")
    return "\n".join(lines) + "\n"


# describe() keys format_text() already shows, or that say nothing to a reader.
_SHOWN = {"generation", "feature_version", "feature_crc", "features_current", "size", "mtime",
          "age_seconds", "exists", "path", "kind", "format", "bits", "trained_spam", "trained_good", "error"}


def _verdict_line(tally: dict) -> str:
    n = sum(tally.values())
    text = f"{n} messages: {tally['spam']} SPAM, {tally['good']} GOOD, {tally['unsure']} UNSURE"
    extra = []
    if tally.get("failed"):
        extra.append(f"{tally['failed']} could not be classified")
    if tally.get("command"):
        extra.append(f"{tally['command']} command mails answered")
    return text + (f" ({', '.join(extra)})" if extra else "")
