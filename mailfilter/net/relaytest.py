"""`mailfilter relaytest`: prove that a mail server relays nothing for strangers.

It talks to the server the way a relay abuser would: for each port, a
foreign sender to a foreign recipient, then the classic tricks (your own
domain or <> as the sender, the percent hack, bang paths, quoted local parts,
source routes, [IP] literals, odd case and trailing dots), before and after
STARTTLS, each time once with an honest EHLO and once claiming the server's
own host name. An accepted RCPT is the verdict: DATA is never sent, every
transaction ends with RSET and every session with QUIT, so nothing is queued
even on an open relay. With credentials it also logs in and checks that the
submission ports do accept a foreign recipient after AUTH.

Politeness: one session at a time, a pause between attempts (--delay), a cap
on sessions (--max-connections), and at most PER_CONNECTION transactions per
session so the server's error counters never start tarpitting us.
"""

import contextlib
import getpass
import ipaddress
import json
import os
import re
import socket
import ssl
import sys
import time
from types import SimpleNamespace
from typing import NamedTuple

from .. import exitcodes
from ..errors import InputError, MailfilterError
from . import netns as netns_mod
from .smtpclient import Connection, SmtpTrouble, wrap_implicit

DEFAULT_PORTS = (25, 587, 465)
IMPLICIT_TLS_PORTS = {465}
SUBMISSION_PORTS = {587, 465}
DEFAULT_FROM = "relaytest@example.net"
DEFAULT_TO = "relaytest@example.com"
# RFC 5737 TEST-NET-1: a foreign address literal that no one can own.
FOREIGN_LITERAL = "[192.0.2.25]"
# Postfix delays every reply by smtpd_error_sleep_time (1 s) once a session
# has made smtpd_soft_error_limit (10) errors, and hangs up at
# smtpd_hard_error_limit (20); 8 refusals per session stay clear of both.
PER_CONNECTION = 8
PASSWORD_ENV = "MAILFILTER_RELAYTEST_PASSWORD"
RELAYED = 1     # the exit status when anything relayed

# When nothing relayed, the exit status names the worst problem met.
_EXIT_FOR_KIND = [("protocol", exitcodes.PROTOCOL), ("auth", exitcodes.NOPERM),
                  ("unreachable", exitcodes.UNAVAILABLE), ("timeout", exitcodes.TEMPFAIL),
                  ("temporary", exitcodes.TEMPFAIL), ("limit", exitcodes.TEMPFAIL)]


class Unreachable(SmtpTrouble):
    kind = "unreachable"


class Temporary(SmtpTrouble):
    kind = "temporary"
    intact = True       # raised between replies: the session can still say QUIT


class AuthFailed(SmtpTrouble):
    kind = "auth"
    intact = True


class LimitReached(SmtpTrouble):
    kind = "limit"


class Trick(NamedTuple):
    title: str
    mail_from: str
    rcpt_to: str
    control: bool = False


def _odd_case(domain):
    return "".join(c.upper() if i % 2 == 0 else c.lower() for i, c in enumerate(domain))


def address_literal(address):
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"


def tricks(domain, sender, recipient, literal):
    """The attempts, the control first: postmaster of your own domain, which
    every server must accept (RFC 5321 4.5.1) and is not a relay."""
    local, _, foreign = recipient.rpartition("@")
    mine = f"{sender.rpartition('@')[0] or 'relaytest'}@{domain}"
    odd = _odd_case
    return [
        Trick("control: your postmaster", sender, f"postmaster@{domain}", control=True),
        Trick("foreign sender", sender, recipient),
        Trick("your domain as sender", mine, recipient),
        Trick("empty sender <>", "", recipient),
        Trick("odd case", f"{mine.rpartition('@')[0]}@{odd(domain)}", f"{local}@{odd(foreign)}"),
        Trick("trailing dots", f"{mine}.", f"{recipient}."),
        Trick("percent hack", sender, f"{local}%{foreign}@{domain}"),
        Trick("percent hack, odd case, dot", sender, f"{local}%{foreign}@{odd(domain)}."),
        Trick("bang path", sender, f"{foreign}!{local}@{domain}"),
        Trick("bang path, no domain", sender, f"{foreign}!{local}"),
        Trick("quoted local part", sender, f'"{local}@{foreign}"@{domain}'),
        Trick("source route", sender, f"@{domain}:{local}@{foreign}"),
        Trick("two @", sender, f"{local}@{foreign}@{domain}"),
        Trick("percent hack via [IP]", sender, f"{local}%{foreign}@{literal}"),
        Trick("source route via [IP]", sender, f"@{literal}:{local}@{foreign}"),
        Trick("foreign [IP] literal", sender, f"{local}@{FOREIGN_LITERAL}"),
    ]


class Phase:
    """How a session is opened: TLS (none, starttls, implicit), whose name
    goes in EHLO (ours or theirs), and whether it logs in first."""
    __slots__ = ("tls", "helo", "auth")

    def __init__(self, tls, helo, auth=False):
        self.tls, self.helo, self.auth = tls, helo, auth

    def describe(self, helo_name, user):
        tls = {"none": "before STARTTLS", "starttls": "after STARTTLS", "implicit": "TLS"}[self.tls]
        who = "this client's name" if self.helo == "ours" else "the server's own name"
        auth = f", logged in as {user}" if self.auth else ""
        return f"{tls}{auth}, EHLO {helo_name} ({who})"


class Pacer:
    """A pause between attempts and a cap on sessions."""

    def __init__(self, delay, max_connections):
        self.delay = delay
        self.left = max_connections
        self.used = 0
        self._last = None

    def pause(self):
        if self._last is not None and self.delay > 0:
            time.sleep(max(0.0, self._last + self.delay - time.monotonic()))
        self._last = time.monotonic()

    def connection(self):
        if self.left <= 0:
            raise LimitReached(f"stopped at the connection limit (--max-connections {self.used})")
        self.left -= 1
        self.used += 1
        self.pause()


def _hostname_in(reply):
    """The server's name from its greeting or EHLO line, if it looks like one."""
    words = reply.lines[0].split() if reply and reply.lines else []
    if words and re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\.?", words[0]):
        return words[0].rstrip(".")
    return None


def guess_domain(hostname):
    if not hostname:
        return None
    labels = hostname.split(".")
    if all(label.isdigit() for label in labels):
        return None
    return ".".join(labels[1:]) if len(labels) > 2 else hostname


def _connect(address, port, timeout, make_socket):
    sock = make_socket(netns_mod.family_of(address))
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
    except ConnectionRefusedError:
        sock.close()
        raise Unreachable("connection refused (nothing listens there)") from None
    except socket.timeout:
        sock.close()
        raise Unreachable(f"no answer to the connection within {timeout:g} s "
                          "(down, or a firewall drops it)") from None
    except OSError as err:
        sock.close()
        raise Unreachable(f"cannot connect: {err.strerror or err}") from None
    return sock


class Target:
    """One address and port, and what its sessions taught us."""

    def __init__(self, address, reach, port, implicit):
        self.address, self.reach, self.port, self.implicit = address, reach, port, implicit
        self.source = None
        self.greeting = None
        self.server_name = None
        self.starttls = None          # offered before TLS?
        self.auth_after_tls = None    # AUTH offered once TLS is up?
        self.problem = None           # (kind, message) that stopped it
        self.notes = []               # (kind, message), each once
        self.attempts = []

    def note(self, kind, message):
        if (kind, message) not in self.notes:
            self.notes.append((kind, message))

    def label(self):
        shown = f"[{self.address}]" if ":" in self.address else self.address
        return f"{shown} port {self.port}"


def _open_session(target, phase, s, pacer):
    """A session ready for MAIL: connected, greeted, EHLO, TLS, AUTH as the
    phase says. Returns (connection, helo name, refusal) where refusal is a
    5xx greeting that turns every attempt away."""
    pacer.connection()
    sock = _connect(target.reach, target.port, s.timeout, s.make_socket)
    target.source = target.source or sock.getsockname()[0]
    if phase.tls == "implicit":
        ctx = s.verified_ctx if phase.auth else s.probe_ctx
        sock = wrap_implicit(sock, ctx, s.sni if not phase.auth else s.host, s.timeout)
    conn = Connection(sock, s.timeout)
    conn.tls = phase.tls == "implicit"
    try:
        greeting = conn.greeting()
        target.greeting = target.greeting or greeting.text
        target.server_name = target.server_name or _hostname_in(greeting)
        if 400 <= greeting.code < 500:
            raise Temporary(f"the server is turning sessions away for now: {greeting.text}")
        if greeting.code >= 500:
            return conn, None, greeting
        if phase.helo == "ours":
            helo_name = s.helo or address_literal(sock.getsockname()[0])
        else:
            helo_name = target.server_name or s.domain
        reply = conn.hello(helo_name)
        if reply.ok and phase.helo == "ours":
            target.server_name = target.server_name or _hostname_in(reply)
        if phase.tls == "none" and target.starttls is None:
            target.starttls = "STARTTLS" in conn.extensions
        if phase.tls == "starttls":
            reply = conn.starttls(s.verified_ctx if phase.auth else s.probe_ctx,
                                  s.host if phase.auth else s.sni)
            if reply.code != 220:
                raise (Temporary if reply.code < 500 else SmtpTrouble)(f"STARTTLS refused: {reply.text}")
            conn.hello(helo_name)
        if conn.tls and target.auth_after_tls is None and phase.helo == "ours":
            target.auth_after_tls = "AUTH" in conn.extensions
        if phase.auth:
            reply = conn.auth(s.user, s.password)
            if reply.code != 235:
                raise AuthFailed(f"AUTH as {s.user} refused: {reply.text}")
        return conn, helo_name, None
    except SmtpTrouble as trouble:
        conn.quit() if getattr(trouble, "intact", False) else conn.close()
        raise
    except BaseException:
        conn.close()
        raise


def _record(target, phase, helo_name, trick, sent, replies, stage, verdict, expected):
    target.attempts.append({
        "port": target.port, "address": target.address,
        "tls": phase.tls, "helo": helo_name, "helo_as": phase.helo, "auth": phase.auth,
        "trick": trick.title,
        "mail_from": f"<{trick.mail_from}>", "rcpt_to": f"<{trick.rcpt_to}>",
        "sent": sent, "replies": replies, "stage": stage,
        "reply": replies[-1] if replies else "",
        "verdict": verdict, "expected": expected,
    })


def _transact(conn, target, phase, helo_name, trick):
    """MAIL, RCPT, RSET: one attempt. Raises SmtpTrouble if the session ends."""
    expected = "accepted" if trick.control or phase.auth else "refused"
    sent, replies = [], []

    def say(line):
        sent.append(line)
        reply = conn.command(line)
        replies.append(reply.text)
        if reply.code == 421:
            _record(target, phase, helo_name, trick, sent, replies, line[:4], "not tested", expected)
            raise Temporary(f"the server closed the session: {reply.text}")
        return reply

    reply = say(f"MAIL FROM:<{trick.mail_from}>")
    if not 200 <= reply.code < 300:
        stage = "MAIL"
        verdict = "not tested" if reply.code < 500 else "refused"
    else:
        reply = say(f"RCPT TO:<{trick.rcpt_to}>")
        stage = "RCPT"
        if 200 <= reply.code < 300:
            verdict = "accepted" if expected == "accepted" else "RELAYED"
        else:
            # A 4xx is a refusal too: Postfix's own default relay rule
            # (defer_unauth_destination) answers 454.
            verdict = "refused"
    _record(target, phase, helo_name, trick, sent, replies, stage, verdict, expected)
    if verdict == "not tested":
        target.note("temporary", f"MAIL FROM answered {reply.text}, so some attempts were not tested")
    if stage == "RCPT":
        # Only an accepted MAIL opens a transaction. An RSET after a refused
        # one is one more error on the server's count (a port that wants
        # STARTTLS first refuses RSET too), and Postfix slows every reply
        # by a second after 10 errors.
        conn.command("RSET")


def _session(target, phase, batch, s, pacer):
    conn, helo_name, refusal = _open_session(target, phase, s, pacer)
    try:
        for trick in batch:
            if refusal is not None:
                _record(target, phase, helo_name, trick, [], [refusal.text], "greeting", "refused",
                        "accepted" if trick.control or phase.auth else "refused")
                continue
            pacer.pause()
            _transact(conn, target, phase, helo_name, trick)
    finally:
        conn.quit()


def _phases(target, s):
    if target.implicit:
        phases = [Phase("implicit", "ours"), Phase("implicit", "theirs")]
    else:
        phases = [Phase("none", "ours"), Phase("none", "theirs"),
                  Phase("starttls", "ours"), Phase("starttls", "theirs")]
    if s.user:
        phases.append(Phase("implicit" if target.implicit else "starttls", "ours", auth=True))
    return phases


def probe(target, s, pacer):
    """Every phase and trick against one address and port; problems are
    recorded on the target, never raised."""
    literal = address_literal(target.address)
    all_tricks = tricks(s.domain, s.from_address, s.to_address, literal)
    try:
        for phase in _phases(target, s):
            if phase.tls == "starttls" and target.starttls is False:
                if phase.auth:
                    target.note("auth", "no STARTTLS, so no login test: a password is never sent "
                                        "in plain text")
                else:
                    target.note("note", "STARTTLS not offered: tested in plain text only")
                continue
            if phase.auth and target.auth_after_tls is False:
                target.note("warning" if target.port in SUBMISSION_PORTS else "note",
                            "no AUTH offered after TLS, so no login test")
                continue
            if phase.auth:
                # Logged in, only the control and the plain foreign recipient:
                # both must be accepted, and the tricks would prove nothing more.
                batch_tricks = all_tricks[:2]
            elif target.port in SUBMISSION_PORTS:
                # Not logged in, a submission port rightly refuses even its
                # own postmaster, so the control would prove nothing.
                batch_tricks = all_tricks[1:]
            else:
                batch_tricks = all_tricks
            for i in range(0, len(batch_tricks), PER_CONNECTION):
                _session(target, phase, batch_tricks[i:i + PER_CONNECTION], s, pacer)
    except SmtpTrouble as trouble:
        target.problem = (trouble.kind, str(trouble))


def _resolve(host):
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        if err.errno in (socket.EAI_AGAIN,):
            raise MailfilterError(f"{host}: the name could not be looked up now ({err.strerror}); "
                                  "try again later", exitcodes.TEMPFAIL) from None
        raise MailfilterError(f"{host}: no such host ({err.strerror})", exitcodes.NOHOST) from None
    addresses = []
    for info in infos:
        address = info[4][0]
        if address not in addresses:
            addresses.append(address)
    return addresses


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _own_name():
    """This host's FQDN for EHLO, or None when it has none (then the address
    literal of the connection's source is the honest name, RFC 5321 4.1.4)."""
    name = socket.getfqdn()
    return name if "." in name and not name.startswith("localhost") else None


def _password(user, password_file):
    if password_file:
        try:
            with open(password_file, encoding="utf-8") as fh:
                return fh.readline().rstrip("\r\n")
        except OSError as err:
            raise InputError(f"{password_file}: {err.strerror or err}", exitcodes.NOINPUT) from None
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if sys.stdin.isatty():
        return getpass.getpass(f"password for {user}: ")
    raise InputError(f"--user {user} needs a password: --password-file FILE or ${PASSWORD_ENV}",
                     exitcodes.USAGE)


def _contexts(cafile):
    probe_ctx = ssl.create_default_context()
    # A relay probe must go on whatever certificate the server shows; only a
    # password waits for a verified one (verified_ctx).
    probe_ctx.check_hostname = False
    probe_ctx.verify_mode = ssl.CERT_NONE
    try:
        verified = ssl.create_default_context(cafile=cafile)
    except FileNotFoundError:
        raise InputError(f"{cafile}: no such file", exitcodes.NOINPUT) from None
    except (OSError, ssl.SSLError) as err:
        raise InputError(f"{cafile}: not a PEM certificate file ({err})", exitcodes.NOINPUT) from None
    return probe_ctx, verified


def _summary(report):
    counts = {}
    for t in report["targets"]:
        for a in t["attempts"]:
            counts[a["verdict"]] = counts.get(a["verdict"], 0) + 1
    return counts


def exit_status(report):
    if any(a["verdict"] == "RELAYED" for t in report["targets"] for a in t["attempts"]):
        return RELAYED
    kinds = {t["problem"]["kind"] for t in report["targets"] if t["problem"]}
    kinds |= {n["kind"] for t in report["targets"] for n in t["notes"]}
    for kind, code in _EXIT_FOR_KIND:
        if kind in kinds:
            return code
    return exitcodes.OK


def _cut(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


def render(report, out):
    """The terminal table: one block per port and phase."""
    out(f"relay test of {report['host']}: your domain {report['domain']}, "
        f"foreign sender <{report['from_address']}>, foreign recipient <{report['to_address']}>")
    if report["netns"]:
        out(f"from a throw-away network namespace ({report['netns']['name']}), "
            f"so the server sees an address it does not trust")
    out("DATA is never sent: the answer to RCPT is the verdict; RSET and QUIT end every session.")
    w_trick = max([len(a["trick"]) for t in report["targets"] for a in t["attempts"]] + [5])
    w_from = max([len(a["mail_from"]) for t in report["targets"] for a in t["attempts"]] + [9])
    w_to = max([len(a["rcpt_to"]) for t in report["targets"] for a in t["attempts"]] + [7])
    for t in report["targets"]:
        block = None
        for a in t["attempts"]:
            key = (a["tls"], a["helo"], a["auth"])
            if key != block:
                block = key
                phase = Phase(a["tls"], a["helo_as"], a["auth"])
                out("")
                via = f" (at {t['connected_to']})" if t["connected_to"] != t["address"] else ""
                out(f"{t['label']}{via} from {t['source']}, {phase.describe(a['helo'], report['user'])}")
                out(f"  {'trick':<{w_trick}}  {'MAIL FROM':<{w_from}}  {'RCPT TO':<{w_to}}  "
                    f"{'verdict':<10}  reply")
            verdict = a["verdict"]
            if a["expected"] == "accepted" and verdict == "refused":
                verdict = "refused!"
            out(f"  {a['trick']:<{w_trick}}  {a['mail_from']:<{w_from}}  {a['rcpt_to']:<{w_to}}  "
                f"{verdict:<10}  {_cut(a['reply'], 72)}")
    counts = report["counts"]
    relay_tries = sum(1 for t in report["targets"] for a in t["attempts"] if a["expected"] == "refused")
    out("")
    if counts.get("RELAYED"):
        out(f"OPEN RELAY: {counts['RELAYED']} of {relay_tries} relay attempts were accepted "
            "(RELAYED above); fix this before the server goes live")
    elif relay_tries:
        out(f"nothing relayed: all {relay_tries} relay attempts were refused"
            + (f" ({counts['not tested']} not tested)" if counts.get("not tested") else ""))


def run(host, ports=DEFAULT_PORTS, domain=None, from_address=DEFAULT_FROM, to_address=DEFAULT_TO,
        helo=None, user=None, password_file=None, cafile=None, use_netns=False, as_json=False,
        delay=0.5, max_connections=50, timeout=30.0, tls_ports=(), out=print, warn=None,
        error=None) -> int:
    from ..log import report as log_error, warning
    warn = warn or warning
    error = error or log_error
    try:
        return _run(host, ports, domain, from_address, to_address, helo, user, password_file, cafile,
                    use_netns, as_json, delay, max_connections, timeout, set(tls_ports), out, warn, error)
    except MailfilterError as err:
        error(str(err))
        return err.code
    except KeyboardInterrupt:
        error("interrupted")
        return 130


def _run(host, ports, domain, from_address, to_address, helo, user, password_file, cafile,
         use_netns, as_json, delay, max_connections, timeout, tls_ports, out, warn, error):
    addresses = _resolve(host)
    local = [a for a in addresses if netns_mod.is_local(a)]
    if use_netns and len(local) < len(addresses):
        other = [a for a in addresses if a not in local][0]
        raise InputError(f"--netns tests this machine from a namespace on it, but {host} ({other}) "
                         "is not this machine", exitcodes.USAGE)
    if local and not use_netns:
        warn(f"{host} ({local[0]}) is this machine: the server trusts its own addresses (Postfix's "
             "mynetworks), so a test from here proves little; as root, add --netns to test from "
             "an untrusted address in a throw-away network namespace")
    password = _password(user, password_file) if user else None
    probe_ctx, verified_ctx = _contexts(cafile)
    settings = SimpleNamespace(host=host, sni=None if _is_ip(host) else host, domain=domain,
                               from_address=from_address, to_address=to_address,
                               helo=helo or _own_name(), user=user, password=password,
                               probe_ctx=probe_ctx, verified_ctx=verified_ctx, timeout=timeout,
                               make_socket=lambda family: socket.socket(family, socket.SOCK_STREAM))
    pacer = Pacer(delay, max_connections)
    targets = []
    with contextlib.ExitStack() as stack:
        ns = None
        if use_netns:
            ns = stack.enter_context(netns_mod.Throwaway({netns_mod.family_of(a) for a in addresses}))
            settings.make_socket = ns.socket
        for address in addresses:
            reach = ns.target(address) if ns else address
            for port in ports:
                targets.append(Target(address, reach, port, port in IMPLICIT_TLS_PORTS or port in tls_ports))
        if settings.domain is None:
            settings.domain = _learn_domain(targets, settings, pacer)
        for target in targets:
            if target.problem is None:
                probe(target, settings, pacer)
    report = {
        "host": host, "addresses": addresses, "this_machine": bool(local),
        "netns": {"name": ns.name, "client": [ns.client[f] for f in sorted(ns.families)]} if ns else None,
        "domain": settings.domain, "from_address": from_address, "to_address": to_address,
        "user": user, "connections": pacer.used,
        "targets": [{
            "label": t.label(), "address": t.address, "port": t.port, "implicit_tls": t.implicit,
            "connected_to": t.reach, "source": t.source, "greeting": t.greeting,
            "starttls": t.starttls, "auth_after_tls": t.auth_after_tls,
            "problem": {"kind": t.problem[0], "message": t.problem[1]} if t.problem else None,
            "notes": [{"kind": k, "message": m} for k, m in t.notes], "attempts": t.attempts,
        } for t in targets],
    }
    report["counts"] = _summary(report)
    report["exit"] = code = exit_status(report)
    for t in report["targets"]:
        for note in t["notes"]:
            if note["kind"] != "note":
                warn(f"{t['label']}: {note['message']}")
        for a in t["attempts"]:
            if a["expected"] == "accepted" and a["verdict"] == "refused":
                if a["auth"]:
                    warn(f"{t['label']}: refused {a['rcpt_to']} even after AUTH as {user}: your users "
                         f"cannot send through it ({a['reply']})")
                else:
                    warn(f"{t['label']}: refused even {a['rcpt_to']} ({a['reply']}): it may be turning "
                         "this client away altogether, and then its refusals prove little")
                break
        if t["problem"]:
            error(f"{t['label']}: {t['problem']['message']}")
    if as_json:
        out(json.dumps(report, indent=2))
    elif any(t["attempts"] for t in report["targets"]):
        render(report, out)
    return code


def _learn_domain(targets, s, pacer):
    """Your domain from the first greeting that names a host (mail.example.org
    -> example.org), for a run without --domain."""
    for target in targets:
        try:
            conn, _, _ = _open_session(target, Phase("implicit" if target.implicit else "none", "ours"),
                                       s, pacer)
            conn.quit()
        except SmtpTrouble as trouble:
            target.problem = (trouble.kind, str(trouble))
            continue
        domain = guess_domain(target.server_name)
        if domain:
            return domain
        raise InputError(f"{target.label()}: cannot tell your mail domain from the greeting "
                         f"{target.greeting!r}; give it with --domain", exitcodes.USAGE)
    # Nothing answered: the problems recorded say why; the tricks need no domain then.
    return "example.invalid"
