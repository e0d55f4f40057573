"""`mailfilter demo`: the main job on embedded sample mail, through a real procmail.

It trains a fresh model on the samples shipped in mailfilter/samples/train,
then delivers mailfilter/samples/inbox through procmail with the same recipe
contrib/procmailrc documents, into a fresh Maildir, and shows where each
message went and the header it got.
"""

import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile

from .. import exitcodes
from ..view import decode_header_value
from . import common

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples")

RCFILE = """\
# Written by `mailfilter demo`: the recipe of contrib/procmailrc.
SHELL=/bin/sh
PYTHONPATH={pythonpath}
MAILDIR={maildir}/
DEFAULT={maildir}/
LOGFILE={workdir}/procmail.log
:0fw
| {command}
# The filter exits 75 only when it could not write the message: requeue it.
:0 e
{{ EXITCODE=75 HOST }}
:0:
* ^X-CRM114-Status: SPAM
.Junk/
"""


# What the demo writes in its work directory (procmail writes the log and
# the Maildir, as whoever runs the demo: root, often).
_WRITTEN = ("procmailrc", "procmail.log", "Maildir", "state")


def _own_workdir(path: str) -> None:
    """Create path 0700, or accept it only if it is a directory that no one
    but us can write to, holding no symbolic link where we write. Else
    ValueError. Run as root, the demo wrote through a `procmailrc` symlink
    a user had left in a shared --dir (issue 14)."""
    try:
        os.mkdir(path, 0o700)
        return
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{path} is not a directory (a symbolic link?); give a directory of your own")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ValueError(f"{path} is owned by uid {st.st_uid} or writable by others: use a directory "
                         f"only you can write to (or none: a fresh temporary one is made)")
    for name in _WRITTEN:
        entry = os.path.join(path, name)
        if os.path.islink(entry):
            raise ValueError(f"{entry} is a symbolic link; remove it or use another --dir")


def main(argv, prog) -> int:
    p = common.parser(prog, "Filter sample mail through a real procmail recipe and show the result.",
                      "Needs procmail (apt-get install procmail). Leaves its work in --dir\n"
                      "(default: a new temporary directory) so you can look at the Maildir.\n"
                      "An existing --dir must be yours and writable by no one else (exit 73).")
    p.add_argument("--dir", help="work directory (default: a new temporary one)")
    args = p.parse_args(argv)
    procmail = shutil.which("procmail")
    if not procmail:
        print("mailfilter demo: procmail is not installed; run: apt-get install procmail", file=sys.stderr)
        return exitcodes.CONFIG
    workdir = os.path.abspath(args.dir or tempfile.mkdtemp(prefix="mailfilter-demo-"))
    try:
        _own_workdir(workdir)
    except ValueError as err:
        print(f"mailfilter demo: {err}", file=sys.stderr)
        return exitcodes.CANTCREAT
    home = args.home or os.path.join(workdir, "state")
    maildir = os.path.join(workdir, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        os.makedirs(os.path.join(maildir, ".Junk", sub), exist_ok=True)
    mailfilter = [sys.executable, "-m", "mailfilter"]
    command = " ".join(shlex.quote(a) for a in mailfilter + ["--home", home])
    rcfile = os.path.join(workdir, "procmailrc")
    if os.path.lexists(rcfile):
        os.unlink(rcfile)           # ours, from an earlier run: _own_workdir checked it
    # O_EXCL | O_NOFOLLOW: never write through a name someone else prepared.
    fd = os.open(rcfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        # PYTHONPATH: so the demo also runs from a source tree that isn't installed.
        fh.write(RCFILE.format(maildir=maildir, workdir=workdir, command=command,
                               pythonpath=os.path.dirname(os.path.dirname(SAMPLES))))

    print(f"1. training a new model in {home} on the samples in {SAMPLES}/train")
    subprocess.run(mailfilter + ["train", "--home", home, "--no-progress", "--passes", "5",
                                 "--spam", os.path.join(SAMPLES, "train", "spam"),
                                 "--good", os.path.join(SAMPLES, "train", "good")], check=True)
    sys.stdout.flush()
    print(f"\n2. delivering {SAMPLES}/inbox through procmail -m {rcfile}")
    inbox = sorted(os.listdir(os.path.join(SAMPLES, "inbox")))
    for name in inbox:
        with open(os.path.join(SAMPLES, "inbox", name), "rb") as fh:
            subprocess.run([procmail, "-m", rcfile], stdin=fh, check=True)

    print(f"\n3. where the mail went (Maildir {maildir}):")
    unsure = 0
    for folder in ("new", os.path.join(".Junk", "new")):
        for entry in sorted(os.listdir(os.path.join(maildir, folder))):
            with open(os.path.join(maildir, folder, entry), "rb") as fh:
                head = fh.read(8192).split(b"\n\n", 1)[0].decode("utf-8", "replace")
            subject = status = ""
            for line in head.splitlines():
                if line.lower().startswith("subject:"):
                    subject = decode_header_value(line[8:].encode()).strip()
                elif line.lower().startswith("x-crm114-status:"):
                    status = line[16:].strip()
            where = "INBOX" if folder == "new" else "Junk "
            print(f"   {where}  {status:<20} {subject[:60]}")
            unsure += status.startswith("UNSURE")
    if unsure:
        # A model of 65 messages is sure of little: the thresholds are set
        # for one trained on a few thousand (README "Thresholds").
        print("\nUNSURE mail stays in INBOX, marked: this model has seen only the samples. Teach it what it\n"
              "was unsure of (`mailfilter learn --spam < MESSAGE`, or move the message into learn-spam),\n"
              "as users do in their first weeks.")
    print(f"\nprocmail's log: {workdir}/procmail.log")
    return exitcodes.OK
