"""Make sure the peer filters are installed: apt-get them as root, else say what to install."""

import os
import shutil
import subprocess
import sys

# engine -> (Debian package, files that must exist for it to run)
NEEDS = {
    "bogofilter": ("bogofilter", ["bogofilter", "bogoutil"]),
    "crm114": ("crm114", ["crm", "cssutil", "/usr/share/crm114/mailreaver.crm"]),
    # Not an engine: GNU time measures each classify process's peak RSS.
    "gnu-time": ("time", ["/usr/bin/time"]),
}


def _present(thing):
    return os.path.exists(thing) if thing.startswith("/") else shutil.which(thing) is not None


def missing_packages(engines):
    return sorted({NEEDS[e][0] for e in engines if e in NEEDS and not all(map(_present, NEEDS[e][1]))})


def ensure(engines, allow_install=True, optional=("gnu-time",)):
    """Install missing packages with apt-get when root; otherwise exit with the command to run.

    Missing optional tools only cost their figures (and a warning)."""
    packages = missing_packages(list(engines) + list(optional))
    if packages and allow_install and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"bench: installing {' '.join(packages)} with apt-get", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env, check=False)
    lacking = missing_packages(optional)
    if lacking:
        print(f"bench: no peak-RSS figures without GNU time; install it with: apt-get install {' '.join(lacking)}",
              file=sys.stderr)
    packages = missing_packages(engines)
    if not packages:
        return
    raise SystemExit(f"bench: missing peer filter(s); install them as root with:\n"
                     f"  apt-get install {' '.join(packages)}\n"
                     f"or leave them out with --engines.")
