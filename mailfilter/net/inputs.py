"""Which delegation files to read: the admin's local paths first, then
verified downloads, else whatever the cache already holds. Shared by
`krfilter` and `sources`."""

import glob
import os

from .. import exitcodes
from ..errors import InputError
from ..log import info, report
from . import rir


def default_cache_dir() -> str:
    if os.geteuid() == 0:
        return "/var/cache/mailfilter/rir"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "mailfilter", "rir")


def load(files, fetch=False, urls=(), cache_dir=None, lenient=False, warn=None, force=None,
         files_hint="name files (e.g. delegated-apnic-latest)"):
    """Parse every input; raise InputError(message, exit code) on the first
    problem. With fetch, every URL is tried (so the good ones update) before
    a failure is raised. files_hint says how this command names files.
    force is None where the command has no --force, else whether it was
    given: it accepts records that cover a whole address family (rir.parse)."""
    cache_dir = cache_dir or default_cache_dir()
    paths = list(files)
    if fetch:
        failures = []
        for url in urls or rir.DEFAULT_URLS:
            try:
                path, changed = rir.fetch(url, cache_dir)
                info(f"{path}: {'updated' if changed else 'unchanged'} (MD5 verified)")
                paths.append(path)
            except rir.FetchError as err:
                failures.append(err)
                report(str(err))
        if failures:
            code = exitcodes.DATAERR if any(f.bad_data for f in failures) else exitcodes.TEMPFAIL
            raise InputError(f"{len(failures)} of {len(urls or rir.DEFAULT_URLS)} downloads failed; "
                             "nothing written", code)
    elif not paths:
        paths = sorted(p for p in glob.glob(os.path.join(cache_dir, "delegated-*"))
                       if not p.endswith(".md5") and os.path.isfile(p))
        if not paths:
            raise InputError(f"no delegation files given and none cached in {cache_dir}; "
                             f"{files_hint} or use --fetch", exitcodes.NOINPUT)
    delegations = []
    for path in paths:
        try:
            delegations.append(rir.parse(path, lenient=lenient, warn=warn, force=bool(force)))
        except rir.DelegationError as err:
            if err.whole_space and force is not None:
                hint = " (--force accepts it, --lenient skips it)"
            else:
                hint = "" if lenient else " (--lenient skips malformed lines)"
            raise InputError(f"{err}{hint}", exitcodes.DATAERR) from None
        except OSError as err:
            raise InputError(f"{path}: cannot read: {err.strerror or err}", exitcodes.NOINPUT) from None
    return delegations
