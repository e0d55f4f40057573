#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine with Python 3.11:
# installs the real mail tools the tests drive, then mailfilter itself into ./.venv.
# Safe to run again; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

debs="procmail maildrop bogofilter crm114 postfix iptables ipset nftables iproute2 time sqlite3 openssl dovecot-core dovecot-imapd dovecot-lmtpd dovecot-sieve python3-venv man-db spamc systemd util-linux redis-server"
missing=""
for p in $debs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # postfix asks questions on install; "No configuration" keeps it off until an admin sets it up.
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        apt-get install -y -qq $missing >/dev/null
    else
        echo "bootstrap: please install as root: apt-get install$missing" >&2
        exit 1
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# A regular (not editable) install: the editable finder costs ~7 ms of every
# filter process's start-up. Tests run the source tree via PYTHONPATH.
.venv/bin/python -m pip install -q '.[test,bench,fuzz,chart,redis]'
