"""Postfix mail submission for your own users: `submission` (587, STARTTLS
required, RFC 6409) and `submissions` (465, implicit TLS, RFC 8314).

Both services accept mail only from clients that authenticated with SASL
over TLS, so neither can ever be an open relay. master.cf is only ever
changed through `postconf -M` / `postconf -P`, which parse it as Postfix
does and rewrite it atomically; we compare what postconf reads back with
what we want, so a second run finds nothing to do.
"""

import datetime
import difflib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from typing import NamedTuple

ONLY_AUTHENTICATED = "permit_sasl_authenticated,reject"
_COMMON = [
    ("smtpd_tls_security_level", "encrypt"),
    ("smtpd_sasl_auth_enable", "yes"),
    ("smtpd_tls_auth_only", "yes"),
    # Evaluated at RCPT time (smtpd_delay_reject=yes), so SASL has happened by then.
    ("smtpd_client_restrictions", ONLY_AUTHENTICATED),
    ("smtpd_relay_restrictions", ONLY_AUTHENTICATED),
    ("smtpd_recipient_restrictions", ONLY_AUTHENTICATED),
    # Milters (DKIM signers) treat this mail as outgoing, not incoming.
    ("milter_macro_daemon_name", "ORIGINATING"),
]
SERVICES = {
    "submission": {"port": 587, "params": [("syslog_name", "postfix/submission")] + _COMMON},
    "submissions": {"port": 465, "params": [("syslog_name", "postfix/submissions"),
                                            ("smtpd_tls_wrappermode", "yes")] + _COMMON},
}
# --sasl dovecot: the Postfix side of Dovecot SASL, on these two services only
# (port 25 keeps no AUTH). The path is relative to the queue directory, so it
# is the same socket whether smtpd runs chrooted or not.
SASL = {"dovecot": [("smtpd_sasl_type", "dovecot"), ("smtpd_sasl_path", "private/auth")]}


class PostfixError(Exception):
    """Postfix refuses the configuration, or an edit failed (EX_CONFIG)."""


class MissingConfig(PostfixError):
    """The configuration directory or one of its files is not there (EX_NOINPUT)."""


def _postconf(config_dir, *args):
    cmd = ["postconf", "-c", config_dir, *args]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise PostfixError("postconf not found: install Postfix (apt-get install postfix)") from None
    return res


def _explain(config_dir, stderr):
    """postconf's fatal message as `master.cf:LINE: what`, finding the line
    ourselves when postconf quotes the entry instead of numbering it."""
    master = os.path.join(config_dir, "master.cf")
    fatal = [l for l in stderr.splitlines() if "fatal:" in l] or stderr.strip().splitlines() or ["failed"]
    msg = fatal[-1].split("fatal: ", 1)[-1]
    m = re.match(r"file (\S+): line (\d+): (.*)", msg)
    if m:
        return f"{m.group(1)}:{m.group(2)}: {m.group(3)}"
    quoted = re.search(r'in "([^"]+)"', msg)
    if quoted and os.path.exists(master):
        words = quoted.group(1).split()
        with open(master, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.split()[:len(words)] == words:
                    return f"{master}:{lineno}: {msg}"
    return f"{master}: {msg}"


def read_master(config_dir):
    """{(name, type): [fields]} as Postfix reads master.cf; raises PostfixError
    if Postfix itself would refuse the file, or it defines a service twice."""
    if not os.path.isdir(config_dir):
        raise MissingConfig(f"{config_dir}: no such directory; give the Postfix configuration "
                            "directory (postconf -h config_directory)")
    for name in ("main.cf", "master.cf"):
        if not os.path.isfile(os.path.join(config_dir, name)):
            raise MissingConfig(f"{os.path.join(config_dir, name)}: missing; is {config_dir} a Postfix "
                                "config directory?")
    res = _postconf(config_dir, "-M")
    if res.returncode != 0:
        raise PostfixError(f"{_explain(config_dir, res.stderr)}; refusing to edit a master.cf Postfix cannot read")
    services = {}
    for line in res.stdout.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        key = (fields[0], fields[1])
        if key in services:
            raise PostfixError(f"{config_dir}/master.cf: service {key[0]}/{key[1]} is defined twice; "
                               "refusing to guess which one to edit")
        services[key] = fields
    return services


def read_params(config_dir, name):
    res = _postconf(config_dir, "-P", f"{name}/inet")
    params = {}
    for line in res.stdout.splitlines():
        key, _, value = line.partition(" = ")
        params[key.split("/", 2)[2]] = value
    return params


def known_tcp_ports(config_dir):
    """Postfix's own name -> port table (known_tcp_ports, Postfix 3.6 and
    later): `lmtp=24, smtp=25, smtps=submissions=465, submission=587`."""
    res = _postconf(config_dir, "-h", "known_tcp_ports")
    ports = {}
    if res.returncode != 0:
        return ports                        # an older Postfix: /etc/services alone
    for item in res.stdout.replace(",", " ").split():
        *names, port = item.split("=")
        if port.isascii() and port.isdigit():
            for name in names:
                ports[name] = int(port)
    return ports


def services_ports(path):
    """name -> port for the TCP services in a services(5) file, aliases too."""
    ports = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and fields[1].endswith("/tcp"):
                    number = fields[1][:-4]
                    if number.isascii() and number.isdigit():
                        for name in [fields[0]] + fields[2:]:
                            ports.setdefault(name, int(number))
    except OSError:
        pass                                # services_file_problems says so
    return ports


def listen_port(service, names):
    """(host, port) an inet service of master.cf listens on, as Postfix reads
    its name `[host:]port`; port None when names can't resolve it."""
    host, _, port = service.rpartition(":")
    if port.isascii() and port.isdigit():
        return host, int(port)
    return host, names.get(port)


def wanted_params(name, sasl=None):
    return SERVICES[name]["params"] + SASL.get(sasl, [])


def chroot_column(services, chroot=None):
    if chroot is None:
        smtp = services.get(("smtp", "inet"))
        chroot = smtp[4] if smtp else "-"
    return chroot


def port_names(config_dir, services_file="/etc/services"):
    """name -> port, as Postfix turns a service name into a port."""
    names = services_ports(services_file)
    names.update(known_tcp_ports(config_dir))     # Postfix looks there first
    return names


def listeners(config_dir, services, names):
    """[(master.cf service, our service)]: the admin's own listener on 587 or
    465, under whatever name, else ours under its standard name."""
    found = []
    for name, spec in SERVICES.items():
        on_port = [key[0] for key in services
                   if key[1] == "inet" and listen_port(key[0], names)[1] == spec["port"]]
        by_host = {}
        for service in on_port:
            host = listen_port(service, names)[0]
            if host in by_host:
                raise PostfixError(f"{config_dir}/master.cf: {by_host[host]}/inet and {service}/inet both "
                                   f"listen on {host or 'every address'} port {spec['port']}; Postfix uses "
                                   "only the last of them; remove one, then run this again")
            by_host[host] = service
        found += [(service, name) for service in on_port or [name]]
    return found


class Current(NamedTuple):
    """master.cf and the port names as Postfix reads them now: what the plan,
    the port-name check and the SASL check all start from, read once."""
    services: dict          # read_master()
    names: dict             # port_names()
    listening: list         # [(master.cf service, our service, its -o settings now)]


def read_current(config_dir, services_file="/etc/services") -> Current:
    services = read_master(config_dir)
    names = port_names(config_dir, services_file)
    listening = [(service, name, read_params(config_dir, service) if (service, "inet") in services else {})
                 for service, name in listeners(config_dir, services, names)]
    return Current(services, names, listening)


def plan(current: Current, chroot=None, sasl=None):
    """The postconf arguments that bring master.cf to what we want, in order.

    An existing listener on 587 or 465 is edited under its own name, however
    master.cf spells it (`smtps`, `ssmtp`, `465`, `127.0.0.1:submission`;
    each one, if there are several for different addresses). Adding a
    `submissions` entry beside `smtps` made two entries for one port, and
    Postfix 3.7's master then warned "duplicate master.cf entry for service
    "smtps" (465) -- using the last entry": the admin's own listener was
    silently dropped for ours."""
    chroot = chroot_column(current.services, chroot)
    steps = []
    for service, name, have in current.listening:
        steps += _service_steps(current.services, service, have, wanted_params(name, sasl), chroot)
    return steps


def _service_steps(services, service, have, params, chroot):
    steps = []
    entry = [service, "inet", "n", "-", chroot, "-", "-", "smtpd"]
    current = services.get((service, "inet"))
    if current is None or current[2:8] != entry[2:8] or current[8:] and _has_args(current):
        steps.append(("-M", f"{service}/inet={' '.join(entry)}"))
        # -M replaces the whole entry: carry the admin's own -o settings over.
        keep = {k: v for k, v in have.items() if k not in dict(params)}
        have = {}
        steps += [("-P", f"{service}/inet/{k}={v}") for k, v in keep.items()]
    for key, value in params:
        if have.get(key) != value:
            steps.append(("-P", f"{service}/inet/{key}={value}"))
    return steps


def _has_args(fields):
    # postconf -M shows -o settings inline; anything else after the command is foreign.
    args = fields[8:]
    i = 0
    while i < len(args):
        if args[i] == "-o" and i + 1 < len(args):
            i += 2
            continue
        return True
    return False


def shell_commands(steps, config_dir, explicit_dir):
    prefix = ["postconf"] + (["-c", config_dir] if explicit_dir else [])
    return [shlex.join(prefix + [flag, arg]) for flag, arg in steps]


def apply_steps(config_dir, steps):
    for flag, arg in steps:
        res = _postconf(config_dir, flag, arg)
        if res.returncode != 0:
            raise PostfixError(f"postconf {flag} {arg}: {res.stderr.strip()}")


def preview_diff(config_dir, steps):
    """Apply to a scratch copy and diff master.cf: the diff postconf itself makes."""
    master = os.path.join(config_dir, "master.cf")
    with tempfile.TemporaryDirectory(prefix="mailfilter-submission.") as scratch:
        for name in ("main.cf", "master.cf"):
            shutil.copy2(os.path.join(config_dir, name), scratch)
        apply_steps(scratch, steps)
        with open(master, encoding="utf-8", errors="replace") as a, \
                open(os.path.join(scratch, "master.cf"), encoding="utf-8", errors="replace") as b:
            return "".join(difflib.unified_diff(a.readlines(), b.readlines(), master, master + " (after)"))


def backup(config_dir):
    master = os.path.join(config_dir, "master.cf")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = f"{master}.mailfilter-{stamp}"
    n = 1
    while os.path.exists(path):
        n += 1
        path = f"{master}.mailfilter-{stamp}.{n}"
    shutil.copy2(master, path)
    return path


def services_file_problems(names, path="/etc/services"):
    """Our service names that Postfix could not turn into a port: neither
    its known_tcp_ports (Postfix 3.6 and later) nor the services file
    (`path`, read into `names` by port_names) has them."""
    if not os.access(path, os.R_OK):
        return [f"cannot read {path}"]
    missing = []
    for name, spec in SERVICES.items():
        if names.get(name) != spec["port"]:
            missing.append(f"{path} has no '{name} {spec['port']}/tcp' and Postfix's known_tcp_ports "
                           f"lacks it: Postfix cannot resolve the service name; add the line:  "
                           f"{name}\t{spec['port']}/tcp")
    return missing


def main_cf_warnings(config_dir):
    res = _postconf(config_dir, "-h", "smtpd_tls_cert_file", "smtpd_tls_chain_files", "smtpd_delay_reject")
    values = (res.stdout.splitlines() + ["", "", ""])[:3]
    warnings = []
    if not values[0].strip() and not values[1].strip():
        warnings.append("main.cf sets no smtpd_tls_cert_file or smtpd_tls_chain_files: "
                        "clients cannot start TLS, so submission cannot be used until a certificate is set")
    if values[2].strip() == "no":
        warnings.append("main.cf has smtpd_delay_reject = no: smtpd_client_restrictions would reject "
                        "every client before it can authenticate; set it to yes")
    return warnings


def sasl_warnings(config_dir, current: Current, chroot=None, sasl=None):
    """Why AUTH would fail for everyone on the two services as they will be."""
    from . import sasl as sasl_check
    params = {service: dict(have, **dict(wanted_params(name, sasl))) for service, name, have in current.listening}
    return sasl_check.problems(config_dir, params, chroot_column(current.services, chroot))


def run(config_dir="/etc/postfix", explicit_dir=False, apply=False, chroot=None,
        services_file="/etc/services", sasl=None, out=print, warn=None) -> int:
    from .. import exitcodes
    from ..log import info, report, warning
    warn = warn or warning
    try:
        current = read_current(config_dir, services_file)
        steps = plan(current, chroot, sasl)
        for problem in services_file_problems(current.names, services_file):
            warn(problem)
        for w in main_cf_warnings(config_dir):
            warn(w)
        for w in sasl_warnings(config_dir, current, chroot, sasl):
            warn(w)
        if not steps:
            out(f"{config_dir}/master.cf already has submission and submissions as wanted; nothing to change")
            return exitcodes.OK
        if not apply:
            out("# the commands (run them, or run again with --apply):")
            for cmd in shell_commands(steps, config_dir, explicit_dir):
                out(cmd)
            out("")
            out("# what they change:")
            out(preview_diff(config_dir, steps).rstrip("\n"))
            return exitcodes.OK
        saved = backup(config_dir)
        try:
            apply_steps(config_dir, steps)
            left = plan(read_current(config_dir, services_file), chroot, sasl)
            if left:
                raise PostfixError(f"after applying, postconf still differs ({left[0][1]}); restored {saved}")
        except PostfixError:
            shutil.copy2(saved, os.path.join(config_dir, "master.cf"))
            raise
        info(f"{config_dir}/master.cf: submission (587) and submissions (465) set; backup {saved}")
        out(f"changed {config_dir}/master.cf ({len(steps)} postconf edits); backup: {saved}")
        out("now: postfix check && postfix reload")
        out("then, from outside: mailfilter relaytest YOUR-MAIL-HOST --port 587,465 --user SOMEONE")
        return exitcodes.OK
    except MissingConfig as err:
        report(str(err))
        return exitcodes.NOINPUT
    except PostfixError as err:
        report(str(err))
        return exitcodes.CONFIG
    except OSError as err:
        report(f"{config_dir}: {err.strerror or err}")
        return exitcodes.CANTCREAT if apply else exitcodes.NOINPUT
