"""What `mailfilter check` asks Dovecot: does it deliver through mailfilter
(LMTP/LDA + Sieve filter, contrib/dovecot/95-mailfilter-lmtp.conf), and
does it train on moves (IMAPSieve, 95-mailfilter-imapsieve.conf)?

Dovecot is asked with `doveconf -c CONFIG -h KEY...`, which reads the
configuration the way Dovecot does (includes, protocol sections); nothing
is parsed by hand and nothing is written.
"""

import os
import re
import shutil
import subprocess

CONFIG = "/etc/dovecot/dovecot.conf"
KEYS = ("mail_location", "plugin/sieve_before", "plugin/sieve_filter_bin_dir",
        "plugin/sieve_pipe_bin_dir", "plugin/imapsieve_mailbox1_before", "plugin/imapsieve_mailbox2_before")
# Where the shipped scripts live once installed as the README says.
SHARE = "/opt/mailfilter/share/mailfilter/dovecot"
_PROGRAM = re.compile(r"""\b(filter|pipe)\s+(?::\w+\s+)*"([^"/]+)\"""")
_COMMAND = re.compile(r"(/\S*/mailfilter)\b")


class Settings:
    """Dovecot's answers for the keys above, and per protocol mail_plugins."""

    def __init__(self, values: dict, plugins: dict):
        self.values = values
        self.plugins = plugins          # protocol -> its mail_plugins, split

    def get(self, key: str) -> str:
        return self.values.get(key, "")


def read_settings(config: str = CONFIG):
    """Settings, or None when there is no Dovecot (or its config can't be read)."""
    doveconf = shutil.which("doveconf") or shutil.which("doveconf", path="/usr/bin:/usr/sbin")
    if not doveconf or not os.path.exists(config):
        return None

    def ask(*args):
        done = subprocess.run([doveconf, "-c", config, *args], capture_output=True, text=True, timeout=30)
        return done.stdout.split("\n") if done.returncode == 0 else None
    values = ask("-h", *KEYS)
    if values is None:
        return None
    plugins = {}
    for protocol in ("imap", "lmtp", "lda"):
        answer = ask("-f", f"protocol={protocol}", "-h", "mail_plugins")
        plugins[protocol] = answer[0].split() if answer else []
    return Settings(dict(zip(KEYS, (v.strip() for v in values))), plugins)


def _script_path(location: str) -> str:
    """A Sieve script location (file:PATH;options or PATH) as a path."""
    path = location.split(":", 1)[1] if location.startswith("file:") else location
    return path.split(";", 1)[0]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def _program_problems(script: str, bin_dir: str, verb: str):
    """Why the `verb` ("filter" or "pipe") of a Sieve script can't run
    mailfilter, or [] when it can: the program named must be executable in
    bin_dir and the mailfilter it calls must exist."""
    text = _read(script)
    if not text:
        return [f"{script} is missing or unreadable"]
    programs = [name for kind, name in _PROGRAM.findall(text) if kind == verb]
    if not programs:
        return [f"{script} has no `{verb}` of a mailfilter program"]
    problems = []
    for name in programs:
        program = os.path.join(bin_dir, name) if bin_dir else None
        if not program or not os.access(program, os.X_OK):
            problems.append(f"`{verb} \"{name}\"` in {script}, but {program or f'sieve_{verb}_bin_dir'} "
                            f"is not an executable program")
            continue
        for command in _COMMAND.findall(_read(program)):
            if not os.access(command, os.X_OK):
                problems.append(f"{program} runs {command}, which is not there")
    return problems


def delivery(settings, protocol: str = "lmtp"):
    """(ok, what, fix) for delivery by Dovecot's LMTP (protocol "lmtp") or
    LDA ("lda") through mailfilter."""
    name = "LMTP" if protocol == "lmtp" else "LDA (dovecot-lda)"
    fix = (f"install {SHARE}/95-mailfilter-lmtp.conf in /etc/dovecot/conf.d/ and the scripts it "
           f"names, then sievec and systemctl restart dovecot (README: Install for a whole server, step 7)")
    if settings is None:
        return False, f"Postfix hands local mail to Dovecot's {name}, but Dovecot's config can't be read", fix
    before = settings.get("plugin/sieve_before")
    if not before:
        return False, f"Postfix hands local mail to Dovecot's {name}, which runs no sieve_before script", fix
    if "sieve" not in settings.plugins.get(protocol, []):
        return False, f"Dovecot's {name} does not load the sieve plugin (mail_plugins)", fix
    problems = _program_problems(_script_path(before), settings.get("plugin/sieve_filter_bin_dir"), "filter")
    if problems:
        return False, f"Dovecot's {name} does not filter through mailfilter: " + "; ".join(problems), fix
    return True, f"Dovecot's {name} delivers through mailfilter ({_script_path(before)})", None


def imapsieve(settings):
    """(ok, what) for training by moves with IMAPSieve; None if it isn't set up."""
    if settings is None or not settings.get("plugin/imapsieve_mailbox1_before"):
        return None
    scripts = [_script_path(settings.get(k)) for k in ("plugin/imapsieve_mailbox1_before",
                                                        "plugin/imapsieve_mailbox2_before") if settings.get(k)]
    problems = []
    if "imap_sieve" not in settings.plugins.get("imap", []):
        problems.append("imap does not load the imap_sieve plugin (mail_plugins)")
    for script in scripts:
        problems += _program_problems(script, settings.get("plugin/sieve_pipe_bin_dir"), "pipe")
    if problems:
        return False, "Dovecot's IMAPSieve does not train mailfilter: " + "; ".join(problems)
    return True, f"Dovecot's IMAPSieve trains on moves into and out of Junk ({', '.join(scripts)})"


def dbox_location(settings):
    """The mail_location when Dovecot keeps mail in mdbox or sdbox, else None."""
    location = settings.get("mail_location") if settings else ""
    return location if location.startswith(("mdbox:", "sdbox:")) else None
