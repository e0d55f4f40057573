"""Can AUTH on the submission ports work? What stands in the way, one line each.

`smtpd_sasl_auth_enable=yes` makes Postfix advertise AUTH whether or not it
can check a password. Debian's default, smtpd_sasl_type = cyrus with no
smtpd.conf, knows no users at all, so every login fails. We look where
Postfix would look:
- dovecot: the auth socket (smtpd_sasl_path, relative to the queue
  directory), whether the mail_owner user may open it, and Dovecot's own
  handshake on it (VERSION, then the MECH lines: PLAIN or LOGIN must be
  among them for mail clients).
- cyrus: the smtpd.conf Cyrus SASL reads (Debian's Postfix looks in
  /etc/postfix/sasl/ unless cyrus_sasl_config_path says otherwise) and, for
  pwcheck_method: saslauthd, saslauthd's socket (inside the queue directory
  when smtpd is chrooted).
Only read, never changed: the Dovecot side is the admin's to write, and the
warning says what to write.
"""

import grp
import os
import pwd
import socket
import stat
import subprocess

CYRUS_DIRS = ["/etc/postfix/sasl", "/usr/lib/sasl2", "/etc/sasl2"]
SASLAUTHD_MUX = "/var/run/saslauthd/mux"
DOVECOT_LISTENER = ("unix_listener {path} {{ mode = 0660  user = {owner}  group = {owner} }}")


def _main_values(config_dir, names):
    res = subprocess.run(["postconf", "-c", config_dir, "-xh", *names], capture_output=True, text=True,
                         timeout=60)
    values = res.stdout.splitlines() + [""] * len(names)
    return dict(zip(names, values))


def _server_types(config_dir):
    res = subprocess.run(["postconf", "-c", config_dir, "-a"], capture_output=True, text=True, timeout=60)
    return res.stdout.split()


def _may_open(st, user):
    """Can `user` connect to a socket with this stat (write permission)?"""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return True          # postfix checks its own mail_owner; not ours to second-guess
    if st.st_uid == pw.pw_uid:
        return bool(st.st_mode & stat.S_IWUSR)
    groups = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    if st.st_gid in groups:
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def dovecot_handshake(path, timeout=3.0):
    """The mechanisms Dovecot's auth service offers on `path`; raises OSError
    or ValueError (not Dovecot's protocol)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        data = b""
        while b"\nDONE\n" not in data and len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    lines = data.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0].startswith("VERSION\t1\t"):
        raise ValueError(f"it does not speak Dovecot's auth protocol (it sent {data[:40]!r})")
    return [line.split("\t")[1].upper() for line in lines if line.startswith("MECH\t")]


def _dovecot(path, main, chrooted):
    queue = main["queue_directory"]
    if path.startswith("inet:"):
        return []        # a remote Dovecot: nothing here to look at
    where = os.path.join(queue, path.lstrip("/")) if chrooted or not path.startswith("/") else path
    owner = main["mail_owner"] or "postfix"
    fix = DOVECOT_LISTENER.format(path=where, owner=owner)
    try:
        st = os.stat(where)
    except FileNotFoundError:
        return [f"Dovecot's auth socket {where} does not exist, so every AUTH fails: in Dovecot's "
                f"10-master.conf, give service auth a `{fix}` and restart Dovecot"]
    except OSError as err:
        return [f"Dovecot's auth socket {where}: {err.strerror or err}"]
    if not stat.S_ISSOCK(st.st_mode):
        return [f"Dovecot's auth socket {where} is not a socket, so every AUTH fails"]
    if not _may_open(st, owner):
        return [f"Postfix (user {owner}) may not open Dovecot's auth socket {where} "
                f"(mode {stat.S_IMODE(st.st_mode):04o}), so every AUTH fails: use `{fix}`"]
    try:
        mechanisms = dovecot_handshake(where)
    except (OSError, ValueError) as err:
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        return [f"Dovecot's auth socket {where}: {why}; is Dovecot running?"]
    if not {"PLAIN", "LOGIN"} & set(mechanisms):
        return [f"Dovecot offers {' '.join(mechanisms) or 'no mechanism'} on {where}, not PLAIN or "
                "LOGIN, which mail clients use: set auth_mechanisms = plain login"]
    return []


def _cyrus(path, main, chrooted):
    name = (path or "smtpd") + ".conf"
    dirs = [d for d in main["cyrus_sasl_config_path"].split(":") if d] or CYRUS_DIRS
    conf = next((os.path.join(d, name) for d in dirs if os.path.isfile(os.path.join(d, name))), None)
    if conf is None:
        return [f"smtpd_sasl_type = cyrus, but there is no {name} in {', '.join(dirs)}: Cyrus SASL then "
                "knows no users and every AUTH fails; with Dovecot on this machine use --sasl dovecot, "
                "else set up saslauthd (pwcheck_method: saslauthd)"]
    settings = {}
    try:
        with open(conf, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and not key.lstrip().startswith("#"):
                    settings[key.strip().lower()] = value.strip()
    except OSError as err:
        return [f"{conf}: {err.strerror or err}"]
    if "saslauthd" in settings.get("pwcheck_method", "").split():
        mux = settings.get("saslauthd_path") or SASLAUTHD_MUX
        where = os.path.join(main["queue_directory"], mux.lstrip("/")) if chrooted else mux
        if not os.path.exists(where):
            return [f"{conf} uses saslauthd, but its socket {where} does not exist, so every AUTH fails"
                    + ("; smtpd is chrooted, so the socket must be inside the queue directory"
                       if chrooted else "; is saslauthd running?")]
    return []


def problems(config_dir, service_params, chroot):
    """Warnings for the services' effective SASL settings.

    `service_params`: {service: {param: value}} as master.cf will have them
    (after --apply), which override main.cf; `chroot`: their chroot column."""
    main = _main_values(config_dir, ["smtpd_sasl_type", "smtpd_sasl_path", "queue_directory",
                                     "cyrus_sasl_config_path", "mail_owner"])
    chrooted = chroot == "y"
    available = _server_types(config_dir)
    seen, warnings = set(), []
    for service, params in service_params.items():
        kind = params.get("smtpd_sasl_type") or main["smtpd_sasl_type"] or "cyrus"
        path = params.get("smtpd_sasl_path") or main["smtpd_sasl_path"] or "smtpd"
        if (kind, path) in seen:
            continue        # both services use the same: say it once
        seen.add((kind, path))
        if available and kind not in available:
            found = [f"Postfix here has no {kind} SASL (postconf -a lists {' '.join(available)}), "
                     "so every AUTH fails"]
        elif kind == "dovecot":
            found = _dovecot(path, main, chrooted)
        elif kind == "cyrus":
            found = _cyrus(path, main, chrooted)
        else:
            found = []
        warnings += [f"{service}: {w}" for w in found]
    return warnings
