"""`mailfilter submission` against Debian's real postconf, on scratch
configuration directories; results read back with `postconf -c DIR -Mf/-P`."""

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WANT = {
    "submission": {
        "syslog_name": "postfix/submission", "smtpd_tls_security_level": "encrypt",
        "smtpd_sasl_auth_enable": "yes", "smtpd_tls_auth_only": "yes",
        "smtpd_client_restrictions": "permit_sasl_authenticated,reject",
        "smtpd_relay_restrictions": "permit_sasl_authenticated,reject",
        "smtpd_recipient_restrictions": "permit_sasl_authenticated,reject",
        "milter_macro_daemon_name": "ORIGINATING"},
}
WANT["submissions"] = dict(WANT["submission"], syslog_name="postfix/submissions", smtpd_tls_wrappermode="yes")


def postconf(confdir, *args):
    exe = shutil.which("postconf") or "/usr/sbin/postconf"
    assert os.path.exists(exe), "postfix is not installed; run contrib/bootstrap.sh (apt-get install postfix)"
    return subprocess.run([exe, "-c", str(confdir), *args], capture_output=True, text=True, check=True).stdout


def submission(*args):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "mailfilter", "submission", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def confdir(tmp_path):
    d = tmp_path / "postfix"
    d.mkdir()
    for name, dist in (("main.cf", "main.cf.dist"), ("master.cf", "master.cf.dist")):
        for src in (f"/usr/share/postfix/{dist}", f"/etc/postfix/{name}"):
            if os.path.exists(src):
                shutil.copy(src, d / name)
                break
        else:
            pytest.fail(f"no Postfix {name} template: install postfix (contrib/bootstrap.sh)")
    # Private places for what the SASL check looks at, so the machine's own
    # /var/spool/postfix and /etc/postfix/sasl never change the outcome.
    (tmp_path / "spool" / "private").mkdir(parents=True)
    (tmp_path / "sasl").mkdir()
    with open(d / "main.cf", "a") as fh:
        fh.write("\nsmtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem\n"
                 f"queue_directory = {tmp_path / 'spool'}\n"
                 f"cyrus_sasl_config_path = {tmp_path / 'sasl'}\n")
    return d


# Postfix's stock SASL set-up (cyrus, no smtpd.conf) knows no users: the one
# warning a stock main.cf gets.
NO_CYRUS_USERS = "smtpd_sasl_type = cyrus, but there is no smtpd.conf in "


def not_sasl(stderr):
    """The warnings other than that one."""
    return [line for line in stderr.splitlines() if NO_CYRUS_USERS not in line]


@pytest.fixture
def services(tmp_path):
    f = tmp_path / "services"
    f.write_text("smtp\t\t25/tcp\t\tmail\nsubmissions\t465/tcp\t\tssmtp smtps urd\nsubmission\t587/tcp\n")
    return f


def backups(d):
    return sorted(p for p in os.listdir(d) if p.startswith("master.cf.mailfilter-"))


def read_back(d):
    entries = {}
    for name in WANT:
        line = postconf(d, "-M", f"{name}/inet").split()
        params = {}
        for row in postconf(d, "-P", f"{name}/inet").splitlines():
            key, _, value = row.partition(" = ")
            params[key.split("/", 2)[2]] = value
        entries[name] = (line[:8], params)
    return entries


def test_default_prints_commands_and_diff_and_changes_nothing(confdir, services):
    before = (confdir / "master.cf").read_bytes()
    res = submission("--config-dir", confdir, "--services-file", services)
    assert res.returncode == 0, res.stderr
    assert f"postconf -c {confdir} -M 'submission/inet=submission inet n - y - - smtpd'" in res.stdout
    assert f"postconf -c {confdir} -P submissions/inet/smtpd_tls_wrappermode=yes" in res.stdout
    assert "+    -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject" in res.stdout
    assert (confdir / "master.cf").read_bytes() == before and backups(confdir) == []
    (line,) = res.stderr.splitlines()
    assert NO_CYRUS_USERS in line


def test_printed_commands_do_what_apply_does(confdir, services, tmp_path):
    by_hand = tmp_path / "by-hand"
    shutil.copytree(confdir, by_hand)
    res = submission("--config-dir", by_hand, "--services-file", services)
    commands = [l for l in res.stdout.splitlines() if l.startswith("postconf ")]
    subprocess.run(["bash", "-euc", "\n".join(commands)], check=True)
    assert submission("--config-dir", confdir, "--apply", "--services-file", services).returncode == 0
    assert (by_hand / "master.cf").read_text() == (confdir / "master.cf").read_text()


def test_apply_backup_and_idempotence(confdir, services):
    original = (confdir / "master.cf").read_bytes()
    res = submission("--config-dir", confdir, "--apply", "--services-file", services)
    assert res.returncode == 0, res.stderr
    entries = read_back(confdir)
    for name, params in WANT.items():
        fields, got = entries[name]
        assert fields == [name, "inet", "n", "-", "y", "-", "-", "smtpd"]
        assert got == params
    (saved,) = backups(confdir)
    assert (confdir / saved).read_bytes() == original
    assert f"backup: {confdir}/{saved}" in res.stdout

    after = (confdir / "master.cf").read_bytes()
    again = submission("--config-dir", confdir, "--apply", "--services-file", services)
    assert again.returncode == 0 and "nothing to change" in again.stdout
    assert (confdir / "master.cf").read_bytes() == after
    assert backups(confdir) == [saved]


def test_existing_entry_is_corrected_and_admin_settings_kept(confdir, services):
    postconf(confdir, "-M", "submission/inet=submission inet n - n - - smtpd")
    postconf(confdir, "-P", "submission/inet/smtpd_tls_security_level=may",
             "submission/inet/smtpd_recipient_restrictions=permit_mynetworks,permit",   # an open relay
             "submission/inet/smtpd_sasl_type=dovecot")
    res = submission("--config-dir", confdir, "--apply", "--chroot", "n", "--services-file", services)
    assert res.returncode == 0, res.stderr
    fields, params = read_back(confdir)["submission"]
    assert fields[4] == "n"
    assert params == dict(WANT["submission"], smtpd_sasl_type="dovecot")


def test_chroot_column_follows_smtp(confdir, services):
    postconf(confdir, "-M", "smtp/inet=smtp inet n - n - - smtpd")
    assert submission("-c", confdir, "--apply", "--services-file", services).returncode == 0
    assert read_back(confdir)["submissions"][0][4] == "n"


@pytest.mark.parametrize("bad,words", [
    ("bogus line here\n", "master.cf:{n}: bad field count"),
    ("smtp2 inet q - y - - smtpd\n", "master.cf:{n}: invalid private field"),
])
def test_bad_master_cf_is_refused(confdir, services, bad, words):
    master = confdir / "master.cf"
    with open(master, "a") as fh:
        fh.write(bad)
    n = len(master.read_text().splitlines())
    before = master.read_bytes()
    res = submission("--config-dir", confdir, "--apply", "--services-file", services)
    assert res.returncode == 78
    assert words.format(n=n) in res.stderr and "refusing to edit" in res.stderr
    assert master.read_bytes() == before and backups(confdir) == []


def test_service_defined_twice_is_refused(confdir, services):
    with open(confdir / "master.cf", "a") as fh:
        fh.write("submission inet n - y - - smtpd\nsubmission inet n - n - - smtpd\n")
    res = submission("--config-dir", confdir, "--apply", "--services-file", services)
    assert res.returncode == 78 and "submission/inet is defined twice" in res.stderr


def test_missing_config_dir(tmp_path):
    # A missing input is EX_NOINPUT (66), as for every other command; 78 is
    # for a configuration Postfix refuses (issue 11: it was 78).
    res = submission("--config-dir", tmp_path / "no-such-dir", "--apply")
    assert res.returncode == 66, res
    assert res.stderr == f"mailfilter: {tmp_path}/no-such-dir: no such directory; give the Postfix " \
                         "configuration directory (postconf -h config_directory)\n"
    res = submission("--config-dir", tmp_path, "--apply")
    assert res.returncode == 66 and "main.cf: missing" in res.stderr


def test_etc_services_check(confdir, tmp_path):
    f = tmp_path / "services"
    f.write_text("smtp\t\t25/tcp\t\tmail\nsubmission\t587/tcp\n")
    # Postfix 3.6 and later resolve the names from known_tcp_ports first:
    # nothing to warn about, whatever /etc/services says.
    res = submission("--config-dir", confdir, "--services-file", f)
    assert res.returncode == 0 and not_sasl(res.stderr) == []
    # An older Postfix (or an admin's empty known_tcp_ports) has only the file.
    with open(confdir / "main.cf", "a") as fh:
        fh.write("known_tcp_ports =\n")
    res = submission("--config-dir", confdir, "--services-file", f)
    assert res.returncode == 0
    assert f"{f} has no 'submissions 465/tcp'" in res.stderr
    assert "add the line:  submissions\t465/tcp" in res.stderr
    assert "'submission 587/tcp'" not in res.stderr
    # Debian's own file has both (an alias counts too).
    real = submission("--config-dir", confdir)
    assert "/etc/services has no" not in real.stderr


def test_main_cf_warnings(confdir, services):
    with open(confdir / "main.cf", "a") as fh:
        fh.write("smtpd_tls_cert_file =\nsmtpd_delay_reject = no\n")
    res = submission("--config-dir", confdir, "--services-file", services)
    assert "no smtpd_tls_cert_file" in res.stderr and "smtpd_delay_reject = no" in res.stderr


def test_help_teaches():
    res = submission("--help")
    assert res.returncode == 0
    for word in ("RFC 6409", "RFC 8314", "--apply", "examples:", "permit_sasl_authenticated,reject"):
        assert word in res.stdout


# --- an existing listener on 465 or 587, however master.cf names it (issue 14) ---
# Names resolve as Postfix resolves them: known_tcp_ports first (smtps and
# submissions are 465, submission 587), then the services file (ssmtp is an
# alias of 465 there). A second entry on the same port made Postfix's master
# stop with "bind: Address already in use".

EXISTING = {
    "smtps": "smtps     inet  n       -       y       -       -       smtpd\n  -o smtpd_tls_wrappermode=yes\n",
    "465": "465       inet  n       -       y       -       -       smtpd\n  -o smtpd_tls_wrappermode=yes\n",
    "ssmtp": "ssmtp     inet  n       -       y       -       -       smtpd\n  -o smtpd_tls_wrappermode=yes\n",
    "587": "587       inet  n       -       y       -       -       smtpd\n  -o smtpd_sasl_type=dovecot\n",
    "submission-on-loopback": "127.0.0.1:submission inet n - y - - smtpd\n",
    "both": "smtps     inet  n       -       y       -       -       smtpd\n"
            "587       inet  n       -       y       -       -       smtpd\n",
}


def inet_services(confdir):
    return [line.split()[0] for line in postconf(confdir, "-M").splitlines() if line.split()[1:2] == ["inet"]]


@pytest.mark.parametrize("case", list(EXISTING))
def test_existing_listener_is_edited_not_duplicated(confdir, services, case):
    with open(confdir / "master.cf", "a") as fh:
        fh.write(EXISTING[case])
    existing = [s for s in inet_services(confdir) if s != "smtp"]
    res = submission("--config-dir", confdir, "--apply", "--services-file", services)
    assert res.returncode == 0, res.stderr
    after = inet_services(confdir)
    # Exactly one listener per port: the admin's, under its own name, plus
    # ours for a port that had none.
    on465 = [s for s in after if s in ("smtps", "465", "ssmtp", "submissions")]
    on587 = [s for s in after if s.rsplit(":", 1)[-1] in ("587", "submission")]
    assert len(on465) == 1 and len(on587) == 1, after
    assert set(existing) <= set(after)
    for service, want in ((on465[0], WANT["submissions"]), (on587[0], WANT["submission"])):
        params = {}
        for row in postconf(confdir, "-P", f"{service}/inet").splitlines():
            key, _, value = row.partition(" = ")
            params[key.split("/", 2)[2]] = value
        assert {k: params.get(k) for k in want} == want, service
    if case == "587":
        assert "smtpd_sasl_type = dovecot" in postconf(confdir, "-P", "587/inet")     # the admin's own kept
    again = submission("--config-dir", confdir, "--apply", "--services-file", services)
    assert again.returncode == 0 and "nothing to change" in again.stdout


def test_two_entries_on_one_port_are_refused(confdir, services):
    with open(confdir / "master.cf", "a") as fh:
        fh.write("smtps inet n - y - - smtpd\n465 inet n - y - - smtpd\n")
    before = (confdir / "master.cf").read_bytes()
    res = submission("--config-dir", confdir, "--apply", "--services-file", services)
    assert res.returncode == 78
    assert "smtps/inet and 465/inet both listen on every address port 465" in res.stderr
    assert (confdir / "master.cf").read_bytes() == before and backups(confdir) == []


@pytest.mark.root
@pytest.mark.parametrize("case", ["smtps", "587", "both"])
def test_real_postfix_master_comes_up_with_one_listener_per_port(confdir, services, tmp_path, case):
    """The configuration `submission --apply` leaves, started for real: a
    private Postfix master in a network namespace binds 25, 465 and 587, 465
    speaks TLS at once, 587 offers STARTTLS, and the master finds one entry
    per port. With the duplicate entry, Postfix 3.7's master logged
    'duplicate master.cf entry for service "smtps" (465) -- using the last
    entry': the admin's own listener was silently dropped for ours."""
    from netns_lab import Pair
    from postfix_lab import Postfix, make_certificate
    with open(confdir / "master.cf", "a") as fh:
        fh.write(EXISTING[case])
    res = submission("--config-dir", confdir, "--apply", "--services-file", services)
    assert res.returncode == 0, res.stderr
    # The master.cf submission edited, under a main.cf of the private
    # instance's own (the fixture's main.cf.dist is a template that
    # Postfix won't run: it has an empty sendmail_path, for one), in a
    # namespace with loopback only.
    with Pair() as pair, Postfix(netns=pair.srv, master=(confdir / "master.cf").read_text()) as pf:
        cert, key = make_certificate(pf.root, ["mx.example.org"])
        pf.postconf("-e", f"smtpd_tls_cert_file = {cert}", f"smtpd_tls_key_file = {key}")
        pf.start()
        probe = pair.run_in(pair.srv, sys.executable, "-c", PROBE, timeout=60)
        assert probe.returncode == 0, probe.stderr.decode() + "\n" + pf.log()
        assert probe.stdout.decode().split("\n")[:3] == ["25 220", "587 220 STARTTLS", "465 220 TLS"]
        listening = pair.run_in(pair.srv, "ss", "-Hltn").stdout.decode()
        ports = sorted(int(line.split()[3].rsplit(":", 1)[1]) for line in listening.splitlines())
        # v4 and v6 wildcard sockets: two per port, never more.
        assert ports == [25, 25, 465, 465, 587, 587], listening
        pf.stop()
        log = pf.log()
        assert "daemon started" in log and "fatal" not in log and "duplicate master.cf entry" not in log, log


PROBE = r"""
import smtplib, socket, ssl
out = []
s = smtplib.SMTP("127.0.0.1", 25, timeout=20); out.append(f"25 {s.ehlo()[0] and 220}"); s.quit()
s = smtplib.SMTP("127.0.0.1", 587, timeout=20)
code, text = s.ehlo("client.example")
out.append("587 220 " + ("STARTTLS" if s.has_extn("starttls") else "no STARTTLS")); s.quit()
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", 465, timeout=20, context=ctx)
out.append("465 220 TLS" if s.sock.version() else "465 no TLS"); s.quit()
print("\n".join(out))
"""


def test_sasl_that_knows_no_users_is_named(confdir, services, tmp_path):
    res = submission("--config-dir", confdir, "--services-file", services)
    assert res.returncode == 0
    assert (f"mailfilter: submission: smtpd_sasl_type = cyrus, but there is no smtpd.conf in {tmp_path}/sasl: "
            "Cyrus SASL then knows no users and every AUTH fails; with Dovecot on this machine use "
            "--sasl dovecot, else set up saslauthd (pwcheck_method: saslauthd)\n") == res.stderr


@pytest.mark.parametrize("chroot", ["n", "y"])
def test_saslauthd_without_its_socket_is_named(confdir, services, tmp_path, chroot):
    # Short names: a unix socket's path must fit in 108 bytes.
    mux = "/mux" if chroot == "y" else str(tmp_path / "mux")
    (tmp_path / "sasl" / "smtpd.conf").write_text(f"pwcheck_method: saslauthd\nsaslauthd_path: {mux}\n")
    res = submission("--config-dir", confdir, "--services-file", services, "--chroot", chroot)
    where = f"{tmp_path}/spool{mux}" if chroot == "y" else mux
    assert f"uses saslauthd, but its socket {where} does not exist, so every AUTH fails" in res.stderr
    # A socket where Postfix looks (saslauthd is not installed here; its
    # socket's existence is all this check reads) ends the warning.
    import socket
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(where)
        res = submission("--config-dir", confdir, "--services-file", services, "--chroot", chroot)
    assert res.stderr == ""


def test_sasl_dovecot_writes_the_postfix_side(confdir, services, tmp_path):
    res = submission("--config-dir", confdir, "--services-file", services, "--sasl", "dovecot")
    assert res.returncode == 0
    for name in WANT:
        assert f"postconf -c {confdir} -P {name}/inet/smtpd_sasl_type=dovecot" in res.stdout
        assert f"postconf -c {confdir} -P {name}/inet/smtpd_sasl_path=private/auth" in res.stdout
    socket_path = tmp_path / "spool" / "private" / "auth"
    assert res.stderr == (
        f"mailfilter: submission: Dovecot's auth socket {socket_path} does not exist, so every AUTH fails: "
        "in Dovecot's 10-master.conf, give service auth a "
        f"`unix_listener {socket_path} {{ mode = 0660  user = postfix  group = postfix }}` "
        "and restart Dovecot\n")
    res = submission("--config-dir", confdir, "--services-file", services, "--sasl", "dovecot", "--apply")
    assert res.returncode == 0
    for name, params in WANT.items():
        assert read_back(confdir)[name][1] == dict(params, smtpd_sasl_type="dovecot",
                                                   smtpd_sasl_path="private/auth")
    again = submission("--config-dir", confdir, "--services-file", services, "--sasl", "dovecot", "--apply")
    assert "nothing to change" in again.stdout and len(backups(confdir)) == 1
    # Without --sasl, an admin's Dovecot settings stay, and are what is checked.
    plain = submission("--config-dir", confdir, "--services-file", services)
    assert "nothing to change" in plain.stdout and "Dovecot's auth socket" in plain.stderr


def test_sasl_socket_that_is_not_dovecot(confdir, services, tmp_path):
    import socket
    import threading
    path = str(tmp_path / "spool" / "private" / "auth")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        os.chmod(path, 0o666)
        server.listen(1)

        def answer():
            conn, _ = server.accept()
            conn.sendall(b"220 not dovecot\r\n")
            conn.close()
        # Not Dovecot: an SMTP-ish greeting where the auth handshake belongs.
        threading.Thread(target=answer, daemon=True).start()
        res = submission("--config-dir", confdir, "--services-file", services, "--sasl", "dovecot")
    assert f"Dovecot's auth socket {path}: it does not speak Dovecot's auth protocol" in res.stderr
