"""`mailfilter demo`: the main job on embedded sample mail, through a real procmail.

It trains a fresh model on the samples shipped in mailfilter/samples/train,
then delivers mailfilter/samples/inbox through procmail with the same recipe
contrib/procmailrc documents, into a fresh Maildir, and shows where each
message went and the header it got.
"""

import os
import shlex
import shutil
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


def main(argv, prog) -> int:
    p = common.parser(prog, "Filter sample mail through a real procmail recipe and show the result.",
                      "Needs procmail (apt-get install procmail). Leaves its work in --dir\n"
                      "(default: a new temporary directory) so you can look at the Maildir.")
    p.add_argument("--dir", help="work directory (default: a new temporary one)")
    args = p.parse_args(argv)
    procmail = shutil.which("procmail")
    if not procmail:
        print("mailfilter demo: procmail is not installed; run: apt-get install procmail", file=sys.stderr)
        return exitcodes.CONFIG
    workdir = os.path.abspath(args.dir or tempfile.mkdtemp(prefix="mailfilter-demo-"))
    home = args.home or os.path.join(workdir, "state")
    maildir = os.path.join(workdir, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        os.makedirs(os.path.join(maildir, ".Junk", sub), exist_ok=True)
    mailfilter = [sys.executable, "-m", "mailfilter"]
    command = " ".join(shlex.quote(a) for a in mailfilter + ["--home", home])
    rcfile = os.path.join(workdir, "procmailrc")
    with open(rcfile, "w") as fh:
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
    print(f"\nprocmail's log: {workdir}/procmail.log")
    return exitcodes.OK
