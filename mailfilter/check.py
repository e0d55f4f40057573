"""`mailfilter check`: one user's set-up, looked at the way mail reaches it.

Each finding is one line: what was looked at and, when something is wrong,
the command that fixes it. Run as root for any user (it only reads, and
reads as root, so it reports ownership explicitly rather than tripping
over it) or as the user for themselves.

What is looked at, in the order mail meets it: the MTA handing mail to
procmail or maildrop (or to Dovecot's LMTP, whose Sieve script runs
mailfilter: dovecotcheck.py), the recipe that calls mailfilter and whether
mailfilter is on that program's PATH, the state directory and its owner,
mailfilter.conf, the model (its feature version and what it was taught),
the Maildir, the learn folders and the trainer's config, and where
failures are logged.
"""

import os
import pwd
import re
import stat
import subprocess

# procmail's and maildrop's own PATH for the commands a recipe runs
# (procmailrc(5), maildropfilter(7)): where `mailfilter` must be found.
AGENT_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
TRAINER_CONFIG = "/etc/mailfilter/maildir-train.conf"
SYSTEM_RECIPES = {"procmail": "/etc/procmailrc", "maildrop": "/etc/maildroprc"}
USER_RECIPES = {"procmail": ".procmailrc", "maildrop": ".mailfilter"}


class Finding:
    __slots__ = ("ok", "what", "fix")

    def __init__(self, ok: bool, what: str, fix: str = None):
        self.ok, self.what, self.fix = ok, what, fix

    def line(self) -> str:
        if self.ok:
            return f"ok:      {self.what}"
        return f"problem: {self.what}" + (f"; fix: {self.fix}" if self.fix else "")


class Target:
    """Whose set-up: the account, its state directory and its Maildir."""

    def __init__(self, pw, home: str, maildir: str, as_user: bool, trainer_config: str = TRAINER_CONFIG,
                 dovecot_config: str = None):
        self.pw = pw
        self.dovecot_config = dovecot_config
        self._dovecot = False         # dovecotcheck.Settings (or None) once asked
        self.trainer_config = trainer_config
        self.name = pw.pw_name
        self.home = home              # state directory
        self.maildir = maildir
        self.as_user = as_user        # --user given: fixes say --user NAME
        self.agent = None             # "procmail", "maildrop" or "dovecot", once the MTA says which

    @property
    def dovecot(self):
        if self._dovecot is False:
            from .dovecotcheck import CONFIG, read_settings
            self._dovecot = read_settings(self.dovecot_config or CONFIG)
        return self._dovecot

    def cmd(self, text: str) -> str:
        """A mailfilter command line for the fix, as whoever will type it."""
        return f"mailfilter {text}" + (f" --user {self.name}" if self.as_user else "")

    def tilde(self, path: str) -> str:
        home = self.pw.pw_dir.rstrip("/")
        if path == home or path.startswith(home + "/"):
            return ("~" if not self.as_user else f"~{self.name}") + path[len(home):]
        return path


def run(target: Target) -> list:
    findings = []
    for step in (_delivery, _recipe, _state_directory, _config, _model, _maildir, _trainer, _logging):
        findings.extend(step(target))
    return findings


def _agent_of(command: str):
    """Which delivery agent a mailbox_command runs, if one we know."""
    for agent in ("procmail", "maildrop"):
        if agent in command:
            return agent
    return None


# -- delivery --------------------------------------------------------------------------------------

def _postconf(name: str):
    """(value, None), or (None, why not) when Postfix can't be asked."""
    import shutil
    postconf = shutil.which("postconf") or shutil.which("postconf", path="/usr/sbin:/sbin")
    if not postconf:
        return None, "not found"
    try:
        done = subprocess.run([postconf, "-h", name], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, str(err)
    if done.returncode != 0:
        return None, (done.stderr.strip().splitlines() or ["failed"])[-1]
    return done.stdout.strip(), None


def _delivery(t: Target):
    transport, _ = _postconf("mailbox_transport")
    if transport and transport.startswith("lmtp:"):
        from .dovecotcheck import delivery
        t.agent = "dovecot"
        ok, what, fix = delivery(t.dovecot)
        return [Finding(True, f"Postfix delivers through: mailbox_transport = {transport}"),
                Finding(ok, what, fix)]
    command, why = _postconf("mailbox_command")
    if command and "dovecot-lda" in command:
        from .dovecotcheck import delivery
        t.agent = "dovecot"
        ok, what, fix = delivery(t.dovecot, "lda")
        return [Finding(True, f"Postfix delivers through: mailbox_command = {command}"), Finding(ok, what, fix)]
    if why == "not found":
        return [Finding(True, "no Postfix here (no postconf); make sure your MTA runs procmail or "
                              "maildrop for local mail")]
    if command is None:
        return [Finding(False, f"Postfix is installed but postconf fails: {why}",
                        "configure Postfix first (dpkg-reconfigure postfix: Internet Site)")]
    forward = os.path.join(t.pw.pw_dir, ".forward")
    if _agent_of(command):
        t.agent = _agent_of(command)
        return [Finding(True, f"Postfix delivers through: mailbox_command = {command}")]
    if _mentions(forward, ("procmail", "maildrop")):
        return [Finding(True, f"{t.tilde(forward)} pipes mail to procmail or maildrop")]
    return [Finding(False, f"Postfix does not hand mail to procmail or maildrop (mailbox_command = "
                           f"{command or '(empty)'})",
                    "postconf -e 'mailbox_command = /usr/bin/procmail -a \"$EXTENSION\"' && "
                    "postfix reload (or mailbox_command = /usr/bin/maildrop)")]


# -- the recipe -------------------------------------------------------------------------------------

def _read(path: str):
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None


def _mentions(path: str, words) -> bool:
    text = _read(path)
    return text is not None and any(w in text for w in words)


def _calls_mailfilter(text: str) -> bool:
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if "mailfilter" in code.replace(".mailfilter", "") or "MAILFILTER_CMD" in code:
            return True
    return False


def _recipe(t: Target):
    if t.agent == "dovecot":
        return []                   # Dovecot's Sieve script is the recipe: see _delivery
    found = []
    agents = set()              # which agents have a recipe that calls mailfilter
    for agent, name in USER_RECIPES.items():
        path = os.path.join(t.pw.pw_dir, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            if agent == "maildrop" and stat.S_ISDIR(st.st_mode):
                continue            # mailfilter 0.1's state directory: see _state_directory
            found.append(Finding(False, f"{t.tilde(path)} is not a regular file", "remove it"))
            continue
        text = _read(path) or ""
        if not _calls_mailfilter(text):
            continue
        agents.add(agent)
        problems = []
        if st.st_uid != t.pw.pw_uid:
            problems.append(f"owned by uid {st.st_uid}, not {t.name}")
        # procmail skips a recipe others may write; maildrop refuses one
        # that group or others may access at all.
        if agent == "procmail" and st.st_mode & 0o022:
            problems.append("writable by group or others (procmail ignores it)")
        if agent == "maildrop" and st.st_mode & 0o077:
            problems.append("accessible by group or others (maildrop refuses it)")
        if problems:
            found.append(Finding(False, f"{agent} recipe {t.tilde(path)}: {', '.join(problems)}",
                                 f"chown {t.name}: {path} && chmod 600 {path}"))
        else:
            found.append(Finding(True, f"{agent} recipe {t.tilde(path)} calls mailfilter"))
        found.extend(_recipe_details(t, path, text))
    for agent, path in SYSTEM_RECIPES.items():
        text = _read(path)
        if text and _calls_mailfilter(text):
            agents.add(agent)
            found.append(Finding(True, f"{agent} recipe {path} calls mailfilter (for every user)"))
            found.extend(_recipe_details(t, path, text))
    if agents and t.agent and t.agent not in agents:
        found.append(Finding(False, f"Postfix runs {t.agent}, but only a {' and '.join(sorted(agents))} "
                                    f"recipe calls mailfilter, so {t.name}'s mail is not filtered",
                             f"install -o {t.name} -m 600 /opt/mailfilter/share/mailfilter/"
                             f"{'procmailrc' if t.agent == 'procmail' else 'maildroprc'} "
                             f"{os.path.join(t.pw.pw_dir, USER_RECIPES[t.agent])}"))
    if not found:
        found.append(Finding(False, "no procmail or maildrop recipe calls mailfilter",
                             f"install -o {t.name} -m 600 /opt/mailfilter/share/mailfilter/procmailrc "
                             f"{os.path.join(t.pw.pw_dir, '.procmailrc')} (or maildroprc as "
                             f"{os.path.join(t.pw.pw_dir, '.mailfilter')})"))
    return found


# The command a recipe runs: bare or with a path, after a separator (as in
# "| mailfilter", "${MAILFILTER_CMD:-mailfilter}", MAILFILTER_CMD="mailfilter"),
# never the ".mailfilter" of maildrop's file name.
_COMMAND = re.compile(r"""(?:^|[\s|=:"'`-])(/?(?:[\w.+-]+/)*mailfilter)(?=$|[\s"'`}])""")
_HOME = re.compile(r"--home[= ]+([^\s\"'`}]+)")


def _recipe_details(t: Target, path: str, text: str):
    """The command the recipe runs: on the agent's PATH, the same --home."""
    findings = []
    commands, homes = [], []
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        commands += [c for c in _COMMAND.findall(code) if c not in commands]
        homes += _HOME.findall(code) if _COMMAND.search(code) else []
    for command in commands:
        if "/" in command:
            if not os.access(command, os.X_OK):
                findings.append(Finding(False, f"{t.tilde(path)} runs {command}, which is not there",
                                        "install mailfilter (contrib/install.sh) or fix the path"))
            continue
        where = [os.path.join(d, command) for d in AGENT_PATH if os.access(os.path.join(d, command), os.X_OK)]
        if where:
            findings.append(Finding(True, f"`{command}` is {where[0]}, on the delivery agents' PATH"))
        else:
            findings.append(Finding(False, f"{t.tilde(path)} runs `{command}`, which is not on procmail's "
                                           f"and maildrop's PATH ({':'.join(AGENT_PATH)})",
                                    "install it for the whole server: bash contrib/install.sh "
                                    "(links /usr/local/bin/mailfilter)"))
    for home in homes:
        if "$" not in home and os.path.abspath(os.path.expanduser(home)) != t.home:
            findings.append(Finding(False, f"{t.tilde(path)} uses --home {home}, but this check looked at "
                                           f"{t.home}", f"mailfilter check --home {home}"))
    return findings


# -- the state directory ------------------------------------------------------------------------------

def _state_directory(t: Target):
    from .state import DEFAULT_DIR, LEGACY_DIR
    findings = []
    try:
        st = os.stat(t.home)
    except FileNotFoundError:
        return [Finding(True, f"state directory {t.tilde(t.home)} does not exist yet; the first "
                              "message or command makes it")]
    except OSError as err:
        return [Finding(False, f"state directory {t.tilde(t.home)}: {err.strerror}", None)]
    if not stat.S_ISDIR(st.st_mode):
        return [Finding(False, f"state directory {t.tilde(t.home)} is not a directory",
                        "move it away; mailfilter makes the directory itself")]
    owner = _user_name(st.st_uid)
    if st.st_uid != t.pw.pw_uid:
        findings.append(Finding(False, f"state directory {t.tilde(t.home)} belongs to {owner}, not {t.name}: "
                                       f"{t.name}'s filter can't use it",
                                f"chown -R {t.name}: {t.home}"))
    else:
        mode = st.st_mode & 0o777
        findings.append(Finding(mode & 0o077 == 0,
                                f"state directory {t.tilde(t.home)} ({t.name}, {mode:04o})",
                                None if mode & 0o077 == 0 else f"chmod 700 {t.home} (the model reveals "
                                                               "what the mail says)"))
    wrong = []
    for entry in sorted(os.listdir(t.home)):
        path = os.path.join(t.home, entry)
        est = os.lstat(path)
        if est.st_uid != t.pw.pw_uid:
            wrong.append(f"{entry} ({_user_name(est.st_uid)})")
    if wrong:
        findings.append(Finding(False, f"not {t.name}'s, so {t.name}'s filter and learning can't use them: "
                                       f"{', '.join(wrong)}",
                                f"chown -R {t.name}: {t.home} (and next time use --user {t.name})"))
    legacy = os.path.join(t.pw.pw_dir, LEGACY_DIR)
    if os.path.abspath(t.home) == os.path.abspath(legacy):
        new = os.path.join(t.pw.pw_dir, DEFAULT_DIR)
        findings.append(Finding(True, f"{t.tilde(legacy)} is mailfilter 0.1's state directory and still "
                                      f"works; to free the name for maildrop's filter file, move it "
                                      f"(as {t.name}, with no training running): "
                                      f"mkdir -p {os.path.dirname(new)} && mv {legacy} {new}"))
    return findings


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _config(t: Target):
    from .errors import ConfigError
    from .state import State
    try:
        State(t.home).load_config()
    except ConfigError as err:
        return [Finding(False, f"{err}", "correct that line; until then every message is UNSURE ( 0.00 )")]
    return []


# -- the model ---------------------------------------------------------------------------------------

def _model(t: Target):
    from . import features
    from .errors import ConfigError
    from .state import Config, State
    from .store import modelfile
    state = State(t.home)
    try:
        config = state.load_config()
    except ConfigError:
        config = Config()
    if config.store:
        return _shared_model(t, state, config)
    path = state.model_path
    if not os.path.exists(path):
        return [_no_model(t)]
    identity = modelfile.FeatureIdentity(features.VERSION, features.SPEC)
    try:
        model = modelfile.map_readonly(path, config.model_bits, identity)
    except modelfile.ModelError as err:
        return [Finding(False, f"{err}", t.cmd("rebuild") if "rebuild" in str(err) else
                        f"move {path} away and train again")]
    except OSError as err:
        return [Finding(False, f"{path}: {err.strerror}", None)]
    findings = [Finding(True, f"model {t.tilde(path)}: features v{features.VERSION}, generation "
                              f"{model.generation}, trained on {model.trained_spam} spam and "
                              f"{model.trained_good} good")]
    return findings + _untaught(t, model.trained_spam, model.trained_good)


def _no_model(t: Target) -> Finding:
    return Finding(False, "no model yet: every message is UNSURE until something is learned",
                   t.cmd(f"train --spam {t.tilde(os.path.join(t.maildir, '.Junk'))} "
                         f"--good {t.tilde(t.maildir)}") + ", or move mail into learn-spam and "
                                                            "learn-good (maildir-train)")


def _shared_model(t: Target, state, config):
    """A model shared on Redis (`store =`): there is no model file here to
    look at (checking for one said "no model yet" of a site's trained
    model); what Redis holds, and the local copy used while it is away."""
    from . import features
    from .errors import ConfigError
    from .store import ModelError, open_store
    try:
        store = open_store(state, config)
        info = store.describe()
    except ConfigError as err:
        return [Finding(False, f"{err}", "correct the store line or its credentials file")]
    except ModelError as err:
        fix = "see README \"Several mail hosts\"" if "shared reset" in str(err) else None
        return [Finding(False, f"{err}", fix)]
    findings = []
    if info.get("queued_learns"):
        findings.append(Finding(False, f"{info['queued_learns']} learns queued here while Redis was away",
                                f"mailfilter shared replay --home {t.home}" +
                                (f" (as {t.name})" if t.as_user else "") + " (a learn replays them too)"))
    if not info.get("reachable"):
        return findings + [Finding(False, f"shared model {info['url']}: unreachable ({info.get('error')}); "
                                          f"mail is classified with the local copy (generation "
                                          f"{info['local_copy_generation']}) and learns queue",
                                   "start Redis, or correct the store URL in mailfilter.conf")]
    if not info.get("generation"):
        return findings + [_no_model(t)]
    findings.append(Finding(True, f"shared model {info['url']}: features v{features.VERSION}, generation "
                                  f"{info['generation']}, trained on {info['trained_spam']} spam and "
                                  f"{info['trained_good']} good (every user's); this user's ledger: "
                                  f"{info['user_ledger_entries']} messages"))
    return findings + _untaught(t, info["trained_spam"], info["trained_good"])


def _untaught(t: Target, spam: int, good: int):
    findings = []
    for count, kind, where in ((spam, "spam", os.path.join(t.maildir, ".Junk")),
                               (good, "good mail", t.maildir)):
        if count == 0:
            option = "--spam" if kind == "spam" else "--good"
            findings.append(Finding(False, f"the model has learned no {kind} yet, so it can't tell the two "
                                           f"apart", t.cmd(f"train {option} {t.tilde(where)}")))
    return findings


# -- the Maildir and the trainer ---------------------------------------------------------------------

def _maildir(t: Target):
    from .dovecotcheck import dbox_location
    location = dbox_location(t.dovecot)
    if location:
        return [Finding(True, f"Dovecot keeps mail in {location.split(':', 1)[0]} ({location}), not a Maildir")]
    try:
        st = os.stat(t.maildir)
    except FileNotFoundError:
        return [Finding(True, f"Maildir {t.tilde(t.maildir)} does not exist yet; the recipe makes it on "
                              "the first delivery")]
    except OSError as err:
        return [Finding(False, f"Maildir {t.tilde(t.maildir)}: {err.strerror}", None)]
    if st.st_uid != t.pw.pw_uid:
        return [Finding(False, f"Maildir {t.tilde(t.maildir)} belongs to {_user_name(st.st_uid)}",
                        f"chown -R {t.name}: {t.maildir}")]
    missing = [sub for sub in ("cur", "new", "tmp") if not os.path.isdir(os.path.join(t.maildir, sub))]
    if missing:
        return [Finding(False, f"Maildir {t.tilde(t.maildir)} lacks {', '.join(missing)}/",
                        f"as {t.name}: mkdir -p {' '.join(os.path.join(t.maildir, m) for m in missing)}")]
    return [Finding(True, f"Maildir {t.tilde(t.maildir)}")]


def _trainer(t: Target):
    from .dovecotcheck import imapsieve
    trains = imapsieve(t.dovecot)
    if trains is not None:
        ok, what = trains
        return [Finding(ok, what, None if ok else "install the scripts 95-mailfilter-imapsieve.conf names "
                                                  "(README: Install for a whole server, step 7)")]
    findings = []
    folders = [os.path.join(t.maildir, prefix + name) for name in ("learn-spam", "learn-good")
               for prefix in (".", "")]
    present = [f for f in folders if os.path.isdir(os.path.join(f, "cur"))]
    listed = _listed_in_trainer_config(t.trainer_config, t.name)
    if listed:
        findings.append(Finding(True, f"{t.name} is listed in {t.trainer_config} (maildir-train --config)"))
    if present:
        findings.append(Finding(True, "learn folders: " + ", ".join(t.tilde(p) for p in present)))
    elif listed:
        findings.append(Finding(False, "no learn-spam / learn-good folders yet: the trainer makes them "
                                       "when it starts for this user",
                                "systemctl reload maildir-train (or restart it), then check again"))
    else:
        findings.append(Finding(False, "no learn-spam / learn-good folders, and no trainer for this user",
                                f"add a line `{t.name}` to {t.trainer_config} and systemctl reload "
                                f"maildir-train (or run maildir-train --user as {t.name})"))
    return findings


def _listed_in_trainer_config(path: str, name: str) -> bool:
    text = _read(path)
    if not text:
        return False
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and (words[0] == name or f"user={name}" in words[1:]):
            return True
    return False


# -- logging -------------------------------------------------------------------------------------------

def _logging(t: Target):
    from .log import fallback_path, syslog_reachable
    if syslog_reachable():
        return [Finding(True, "syslog is reachable: failures go to the mail log (facility mail)")]
    path = fallback_path(t.home)
    where = f"no syslog on /dev/log: the filter logs failures to {t.tilde(path)}"
    if not os.path.exists(t.home):
        return [Finding(True, where)]
    if os.path.exists(path):
        return [Finding(False, f"{where}, which has entries (tail {path})",
                        f"fix what it says, then remove it: rm {path}")]
    return [Finding(True, where + " (none so far)")]
