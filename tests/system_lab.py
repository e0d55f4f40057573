"""The README's whole-server path, run for real inside a private mount namespace.

Started by tests/test_system_install.py as
    unshare --mount --propagation private PYTHON tests/system_lab.py WORKDIR ALICE BOB
with two fresh accounts (useradd -m, so no Maildir) made by the test.

The "clean root": /opt and /usr/local are overlays (upper layers in
WORKDIR) that start without any mailfilter, so contrib/install.sh runs with
its real default paths, and what it writes vanishes with the namespace.
Everything else is this Debian 12 system as an admin has it: /usr/bin/python3,
procmail, maildrop, Postfix, man-db. A private Postfix (its own config,
queue and log under WORKDIR, no network listener; mail enters through its
sendmail) delivers with local(8) and mailbox_command = procmail, then
maildrop, so the recipes run as the users with the environment Postfix
gives them, exactly as on a server. Nothing here writes outside WORKDIR,
the namespace and the two test accounts' homes.
"""

import json
import os
import pwd
import shutil
import subprocess
import sys
import time

from postfix_lab import master_cf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a root shell on Debian has, and nothing of the test's own (no venv,
# no PYTHONPATH, no pyenv): the installed commands must stand on their own.
ROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C.UTF-8"}
SHARE = "/opt/mailfilter/share/mailfilter"
POSTFIX_DOMAIN = "mx.example.org"


def step(text):
    print(f"== {text}", flush=True)


def sh(*args, check=True, env=None, input=None, timeout=300):
    done = subprocess.run([str(a) for a in args], capture_output=True, env=env or ROOT_ENV,
                          input=input, timeout=timeout, cwd="/")
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {done.returncode}:\n"
                             f"{done.stdout.decode(errors='replace')}\n{done.stderr.decode(errors='replace')}")
    return done


def overlay(path, work):
    upper, scratch = os.path.join(work, "upper"), os.path.join(work, "work")
    os.makedirs(upper)
    os.makedirs(scratch)
    sh("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={path},upperdir={upper},workdir={scratch}", path)


# -- a private Postfix --------------------------------------------------------------------------------

# No inet listener; local(8) delivers (through procmail or maildrop), and
# it writes the alias database's lookups through proxywrite.
MASTER_CF = master_cf(
    "proxywrite unix -       -       n       -       1       proxymap",
    "local     unix  -       n       n       -       -       local")


class Postfix:
    def __init__(self, root):
        self.root = root
        self.etc = os.path.join(root, "etc")
        for sub in ("etc", "spool", "data"):
            os.makedirs(os.path.join(root, sub))
        shutil.chown(os.path.join(root, "data"), "postfix")
        with open(os.path.join(self.etc, "master.cf"), "w") as fh:
            fh.write(MASTER_CF)
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": f"{root}/spool",
            "data_directory": f"{root}/data",
            "meta_directory": "/etc/postfix",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": POSTFIX_DOMAIN,
            "mydomain": "example.org",
            "myorigin": "$myhostname",
            "mydestination": "$myhostname, localhost",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "maillog_file": f"{root}/maillog",
            "maillog_file_prefixes": root,
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "proxy:unix:passwd.byname",
            "biff": "no",
            # The README's step: Postfix hands local mail to procmail.
            "mailbox_command": '/usr/bin/procmail -a "$EXTENSION"',
        }
        with open(os.path.join(self.etc, "main.cf"), "w") as fh:
            for key, value in settings.items():
                fh.write(f"{key} = {value}\n")
        self.env = {**ROOT_ENV, "MAIL_CONFIG": self.etc}

    def start(self):
        sh("postfix", "-c", self.etc, "start")

    def set(self, key, value):
        sh("postconf", "-c", self.etc, "-e", f"{key} = {value}")
        sh("postfix", "-c", self.etc, "reload")

    def stop(self):
        sh("postfix", "-c", self.etc, "stop", check=False)
        try:
            with open(os.path.join(self.root, "spool", "pid", "master.pid")) as fh:
                pid = int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            return
        for _ in range(150):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, 9)                 # our own master, by its pid file

    def log(self):
        try:
            with open(os.path.join(self.root, "maillog"), errors="replace") as fh:
                return fh.read()
        except OSError:
            return "(no maillog)"

    def send(self, rcpt, data):
        sh("/usr/sbin/sendmail", "-C", self.etc, "-f", "sender@example.net", f"{rcpt}@{POSTFIX_DOMAIN}",
           input=data)

    def wait_delivered(self, count, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if log.count("status=sent") >= count:
                return
            if "status=deferred" in log or "status=bounced" in log:
                break
            time.sleep(0.2)
        raise AssertionError(f"{count} deliveries expected; maillog:\n{self.log()}")


# -- the users' mail -----------------------------------------------------------------------------------

def messages(maildir, folder=""):
    out = []
    new = os.path.join(maildir, folder, "new")
    for name in sorted(os.listdir(new)) if os.path.isdir(new) else []:
        with open(os.path.join(new, name), "rb") as fh:
            out.append(fh.read())
    return out


def status(message):
    for line in message.split(b"\n\n", 1)[0].splitlines():
        if line.startswith(b"X-CRM114-Status: "):
            return line[17:].decode().split()[0]
    raise AssertionError(f"no X-CRM114-Status in {message[:400]!r}")


def all_owned_by(path, pw):
    bad = []
    for root, dirs, files in os.walk(path):
        for name in dirs + files + ["."]:
            st = os.lstat(os.path.join(root, name))
            if st.st_uid != pw.pw_uid:
                bad.append(os.path.join(root, name))
    assert bad == [], f"not {pw.pw_name}'s: {bad}"


def main(work, alice_name, bob_name):
    alice, bob = pwd.getpwnam(alice_name), pwd.getpwnam(bob_name)
    results = {}

    step("a clean root: no mailfilter under /opt or /usr/local")
    overlay("/opt", os.path.join(work, "opt"))
    overlay("/usr/local", os.path.join(work, "usr-local"))
    assert not os.path.exists("/opt/mailfilter") and not os.path.exists("/usr/local/bin/mailfilter")
    before = sh("man", "-w", "mailfilter", check=False).stdout.decode().strip()
    results["man_before"] = before

    step("install for a whole server: bash contrib/install.sh")
    done = sh("bash", os.path.join(REPO, "contrib", "install.sh"), timeout=600)
    results["install_output"] = done.stdout.decode()
    assert os.path.realpath("/usr/local/bin/mailfilter").startswith("/opt/mailfilter/venv-")
    version = sh("mailfilter", "--version").stdout.decode().strip()
    assert version.startswith("mailfilter "), version
    # The installed command runs Debian's python3 from the venv, not the test's.
    interpreter = open("/usr/local/bin/mailfilter").readline().strip()
    assert interpreter == "#!/opt/mailfilter/current/bin/python3" or \
        interpreter.startswith("#!/opt/mailfilter/venv-"), interpreter
    assert os.path.realpath("/opt/mailfilter/current/bin/python3") == os.path.realpath("/usr/bin/python3")
    # Step 7b's Dovecot files, ready to copy, calling the command just installed
    # (tests/test_dovecot.py runs them against a real Dovecot).
    for name in ("bin/mailfilter-learn", "bin/mailfilter-filter"):
        program = f"{SHARE}/dovecot/{name}"
        assert os.access(program, os.X_OK) and "exec /usr/local/bin/mailfilter" in open(program).read(), program
    for name in ("95-mailfilter-imapsieve.conf", "95-mailfilter-lmtp.conf", "report-spam.sieve",
                 "report-good.sieve", "deliver.sieve"):
        assert os.path.isfile(f"{SHARE}/dovecot/{name}"), name
    # realpath: Debian's /usr/local/man is a link to share/man.
    results["man_after"] = os.path.realpath(sh("man", "-w", "mailfilter").stdout.decode().strip())
    results["man_pages"] = [os.path.realpath(sh("man", "-w", *page).stdout.decode().strip())
                            for page in (["5", "mailfilter.conf"], ["8", "maildir-train"])]
    results["man_text"] = sh("man", "mailfilter", env={**ROOT_ENV, "MANWIDTH": "80", "MANPAGER": "cat"}
                             ).stdout.decode(errors="replace")[:3000]
    completion = sh("bash", "-c", "source /usr/local/share/bash-completion/completions/mailfilter && "
                                  "COMP_WORDS=(mailfilter ch); COMP_CWORD=1; _shtab_mailfilter; "
                                  "echo ${COMPREPLY[*]}").stdout.decode().strip()
    results["completion"] = completion
    samples = sh("/opt/mailfilter/current/bin/python", "-c",
                 "import mailfilter, os; print(os.path.join(os.path.dirname(mailfilter.__file__), 'samples'))"
                 ).stdout.decode().strip()
    spam = open(os.path.join(samples, "train", "spam", "00.eml"), "rb").read()
    good = open(os.path.join(samples, "train", "good", "00.eml"), "rb").read()
    good2 = open(os.path.join(samples, "train", "good", "01.eml"), "rb").read()

    step("each user gets the README's recipe; neither has a Maildir")
    sh("install", "-o", alice_name, "-g", alice_name, "-m", "600", f"{SHARE}/procmailrc",
       os.path.join(alice.pw_dir, ".procmailrc"))
    sh("install", "-o", bob_name, "-g", bob_name, "-m", "600", f"{SHARE}/maildroprc",
       os.path.join(bob.pw_dir, ".mailfilter"))
    bob_recipe = open(os.path.join(bob.pw_dir, ".mailfilter"), "rb").read()
    for pw in (alice, bob):
        assert not os.path.exists(os.path.join(pw.pw_dir, "Maildir"))

    postfix = Postfix(os.path.join(work, "postfix"))
    postfix.start()
    try:
        trainer_conf = os.path.join(work, "maildir-train.conf")
        with open(trainer_conf, "w") as fh:
            fh.write(f"{alice_name}\n{bob_name}\n")
        delivered = 0
        for pw, agent in ((alice, "procmail"), (bob, "maildrop")):
            step(f"{pw.pw_name}: Postfix -> {agent} -> mailfilter")
            if agent == "maildrop":
                postfix.set("mailbox_command", "/usr/bin/maildrop")
            maildir = os.path.join(pw.pw_dir, "Maildir")
            # First message, before any training: the recipe makes the Maildir.
            postfix.send(pw.pw_name, good)
            delivered += 1
            postfix.wait_delivered(delivered)
            first = messages(maildir)
            assert [status(m) for m in first] == ["UNSURE"], postfix.log()
            assert not os.path.exists(os.path.join(pw.pw_dir, "new")), "delivered beside the Maildir"
            # Train as root for the user: the files stay theirs.
            sh("mailfilter", "train", "--user", pw.pw_name, "--passes", "5", "--no-progress",
               "--spam", os.path.join(samples, "train", "spam"), "--good", os.path.join(samples, "train", "good"))
            postfix.send(pw.pw_name, spam)
            postfix.send(pw.pw_name, good2)
            delivered += 2
            postfix.wait_delivered(delivered)
            inbox, junk = messages(maildir), messages(maildir, ".Junk")
            assert sorted(status(m) for m in inbox) == ["GOOD", "UNSURE"], [status(m) for m in inbox]
            assert [status(m) for m in junk] == ["SPAM"], postfix.log()
            results[f"{agent}_junk_header"] = [line.decode() for line in junk[0].split(b"\n")
                                               if line.startswith(b"X-CRM114-")]
            all_owned_by(maildir, pw)
            all_owned_by(os.path.join(pw.pw_dir, ".local", "share", "mailfilter"), pw)

        assert open(os.path.join(bob.pw_dir, ".mailfilter"), "rb").read() == bob_recipe

        step("maildir-train --config (as root, once): learn folders made and subscribed")
        sh("maildir-train", "--config", trainer_conf, "--once", "--log", "stderr")
        bob_maildir = os.path.join(bob.pw_dir, "Maildir")
        for folder in (".learn-spam", ".learn-good"):
            assert os.path.isdir(os.path.join(bob_maildir, folder, "cur")), folder
        subscriptions = open(os.path.join(bob_maildir, "subscriptions")).read().split()
        assert {"learn-spam", "learn-good", "Junk"} <= set(subscriptions), subscriptions
        # bob decides a message in his INBOX is spam: his IMAP client moves it.
        name = sorted(os.listdir(os.path.join(bob_maildir, "new")))[0]
        os.rename(os.path.join(bob_maildir, "new", name), os.path.join(bob_maildir, ".learn-spam", "cur", name))
        sh("maildir-train", "--config", trainer_conf, "--once", "--log", "stderr")
        (filed,) = [f for f in os.listdir(os.path.join(bob_maildir, ".Junk", "cur")) if f.startswith(name)]
        moved = open(os.path.join(bob_maildir, ".Junk", "cur", filed), "rb").read()
        verdict = sh("mailfilter", "classify", "--home", os.path.join(bob.pw_dir, ".local", "share", "mailfilter"),
                     input=moved).stdout.decode()
        assert verdict.startswith("SPAM"), verdict
        all_owned_by(bob_maildir, bob)

        step("mailfilter check --user: nothing to fix for either")
        for pw in (alice, bob):
            if pw is alice:
                postfix.set("mailbox_command", '/usr/bin/procmail -a "$EXTENSION"')
            else:
                postfix.set("mailbox_command", "/usr/bin/maildrop")
            done = sh("mailfilter", "check", "--user", pw.pw_name, "--trainer-config", trainer_conf,
                      check=False, env=postfix.env)
            results[f"check_{pw is alice and 'alice' or 'bob'}"] = done.stdout.decode()
            assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        # And it notices when the MTA runs an agent the user has no recipe for.
        done = sh("mailfilter", "check", "--user", alice_name, "--trainer-config", trainer_conf,
                  check=False, env=postfix.env)
        assert done.returncode == 1 and "Postfix runs maildrop, but only a procmail recipe" in \
            done.stdout.decode(), done.stdout.decode()
    finally:
        results["maillog"] = postfix.log()[-4000:]
        postfix.stop()

    step("uninstall")
    sh("bash", os.path.join(REPO, "contrib", "install.sh"), "--uninstall")
    assert not os.path.lexists("/usr/local/bin/mailfilter") and not os.path.exists("/opt/mailfilter")
    assert os.path.isdir(os.path.join(alice.pw_dir, ".local", "share", "mailfilter"))    # users' state stays
    print("RESULTS " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
