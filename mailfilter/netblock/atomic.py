"""Write a whole file or nothing: temp file in the same directory, fsync,
rename over the target, fsync the directory. A reader (iptables-restore in a
timer, Postfix) never sees half a blocklist, and a failed run leaves the old
file as it was."""

from ..atomicfile import replace


def write_text(path: str, text: str, mode: int = 0o644) -> None:
    replace(path, (text.encode("utf-8"),), mode)
