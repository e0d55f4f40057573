#!/usr/bin/env bash
# Install mailfilter for a whole server, from a clone of this repository, as root:
#
#   bash contrib/install.sh              # install, or upgrade in place
#   bash contrib/install.sh --uninstall  # remove it (users' state directories stay)
#
# What goes where (Debian 12 and later; PEP 668 leaves the system's Python alone):
#   /opt/mailfilter/venv-VERSION-STAMP   a virtual environment of Debian's /usr/bin/python3
#                                        with mailfilter and the exact dependencies it is
#                                        tested with (pip, from PyPI or --wheels DIR)
#   /opt/mailfilter/current              -> the venv in use, switched atomically on upgrade
#   /opt/mailfilter/share/mailfilter/    recipes, systemd units, example configs
#   /usr/local/bin/mailfilter, maildir-train   links, on procmail's and maildrop's own PATH
#   /usr/local/share/man/man{1,5,8}/     mailfilter(1), mailfilter.conf(5), maildir-train(8)
#   /usr/local/share/bash-completion/completions/   completion for both commands
#
# Why a venv and not a Debian package of the tree: Debian 12 has no python3-mmh3 and
# no python3-mail-parser, and its python3-watchdog (2.2) and python3-netaddr (0.8) are
# older than the versions mailfilter is tested with (watchdog >= 3, netaddr >= 0.10).
# A .deb would have to vendor a compiled extension and run untested versions.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/mailfilter
BINDIR=/usr/local/bin
DATADIR=/usr/local/share
PYTHON=/usr/bin/python3
WHEELS=""
UNINSTALL=""

usage() {
    cat <<EOF
usage: bash contrib/install.sh [--prefix DIR] [--bindir DIR] [--datadir DIR]
                               [--python PATH] [--wheels DIR] [--uninstall]

Installs mailfilter into a virtual environment under --prefix (default
$PREFIX) made with --python (default $PYTHON), links the commands into
--bindir (default $BINDIR: on procmail's and maildrop's PATH) and puts the
manual pages and bash completion under --datadir (default $DATADIR). Run it
again to upgrade: the new environment is built beside the old one and
switched in with one rename, so mail being delivered meanwhile never meets
half an install. --wheels DIR installs from wheels in DIR only (no network;
make them elsewhere with: pip download -d DIR mailfilter-clone/).
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --bindir) BINDIR="$2"; shift 2 ;;
        --datadir) DATADIR="$2"; shift 2 ;;
        --python) PYTHON="$2"; shift 2 ;;
        --wheels) WHEELS="$(cd "$2" && pwd)"; shift 2 ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 64 ;;
    esac
done

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit "${2:-1}"; }

COMMANDS="mailfilter maildir-train"
MANPAGES="man1/mailfilter.1 man5/mailfilter.conf.5 man8/maildir-train.8"

if [ -n "$UNINSTALL" ]; then
    for c in $COMMANDS; do
        [ -L "$BINDIR/$c" ] && rm -f "$BINDIR/$c"
        rm -f "$DATADIR/bash-completion/completions/$c"
    done
    for m in $MANPAGES; do rm -f "$DATADIR/man/$m"; done
    rm -rf "$PREFIX"
    say "removed $PREFIX, the links in $BINDIR, the manual pages and completions."
    say "users' state directories (~/.local/share/mailfilter) and /etc/mailfilter are kept."
    exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root (it writes $PREFIX and $BINDIR)" 77

# Debian's python3 lacks ensurepip without python3-venv; it is the one package needed.
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$PYTHON" = /usr/bin/python3 ] && command -v apt-get >/dev/null; then
        say "installing python3-venv (needed to make the virtual environment)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
        die "$PYTHON cannot make a virtual environment (on Debian: apt-get install python3-venv)" 69
    fi
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$PYTHON is older than 3.11, which mailfilter needs" 69

VERSION="$("$PYTHON" -c 'import re,sys; print(re.search(r"^version = \"([^\"]+)\"", open(sys.argv[1]).read(), re.M).group(1))' "$SRC/pyproject.toml")"
STAMP="$(date +%Y%m%d%H%M%S)"
VENV="$PREFIX/venv-$VERSION-$STAMP"

umask 022
mkdir -p "$PREFIX"
say "building $VENV with $PYTHON"
"$PYTHON" -m venv "$VENV"
trap 'rm -rf "$VENV"; die "failed; the installed version (if any) is untouched"' ERR
PIP=("$VENV/bin/python" -m pip --quiet --disable-pip-version-check --no-cache-dir)
if [ -n "$WHEELS" ]; then
    PIP+=(--no-index --find-links "$WHEELS")
fi
# Build from a copy: pip would otherwise leave build/ and *.egg-info in the clone.
BUILD="$(mktemp -d)"
tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' \
    --exclude=__pycache__ -cf - . | tar -C "$BUILD" -xf -
"${PIP[@]}" install "$BUILD"
rm -rf "$BUILD"
# The proof it runs, before anything points at it.
"$VENV/bin/mailfilter" --version >/dev/null
echo "Subject: install check" | "$VENV/bin/mailfilter" classify --home "$VENV/.check" >/dev/null
rm -rf "$VENV/.check"
trap - ERR

# Switch: one rename of a symlink, so a delivery sees the old or the new one.
ln -sfn "$(basename "$VENV")" "$PREFIX/current.new"
mv -T "$PREFIX/current.new" "$PREFIX/current"
# Keep the previous environment (for a quick roll-back); remove older ones.
for old in $(ls -1dt "$PREFIX"/venv-* | tail -n +3); do rm -rf "$old"; done

mkdir -p "$BINDIR"
for c in $COMMANDS; do
    ln -sfn "$PREFIX/current/bin/$c" "$BINDIR/$c.new"
    mv -T "$BINDIR/$c.new" "$BINDIR/$c"
done

SHARE="$PREFIX/share/mailfilter"
mkdir -p "$SHARE"
for f in procmailrc maildroprc maildir-train.conf maildir-train.service maildir-train@.service \
         maildir-train-user.service krfilter-refresh krfilter-refresh.service \
         krfilter-refresh.timer krfilter-refresh.cron; do
    # The units name /usr/local/bin; keep them true for another --bindir.
    sed "s|/usr/local/bin/|$BINDIR/|g" "$SRC/contrib/$f" > "$SHARE/$f.new"
    chmod --reference="$SRC/contrib/$f" "$SHARE/$f.new"
    mv "$SHARE/$f.new" "$SHARE/$f"
done
# Dovecot: IMAPSieve training and LMTP delivery (README, step 7).
mkdir -p "$SHARE/dovecot/bin"
for f in 95-mailfilter-imapsieve.conf 95-mailfilter-lmtp.conf report-spam.sieve report-good.sieve \
         deliver.sieve bin/mailfilter-learn bin/mailfilter-filter; do
    sed "s|/usr/local/bin/|$BINDIR/|g" "$SRC/contrib/dovecot/$f" > "$SHARE/dovecot/$f.new"
    chmod --reference="$SRC/contrib/dovecot/$f" "$SHARE/dovecot/$f.new"
    mv "$SHARE/dovecot/$f.new" "$SHARE/dovecot/$f"
done
install -m 644 "$SRC/README.md" "$SHARE/README.md"

for m in $MANPAGES; do
    install -D -m 644 "$SRC/man/$(basename "$m")" "$DATADIR/man/$m"
done
for c in $COMMANDS; do
    install -D -m 644 "$SRC/contrib/completion/$c.bash" "$DATADIR/bash-completion/completions/$c"
done
if command -v mandb >/dev/null; then
    mandb -q "$DATADIR/man" 2>/dev/null || true      # for apropos; `man` itself needs no index
fi

say "installed mailfilter $VERSION: $("$BINDIR/mailfilter" --version)"
say "  commands:   $BINDIR/mailfilter, $BINDIR/maildir-train -> $PREFIX/current/bin/"
say "  recipes, units, examples: $SHARE/"
say "  manuals:    man mailfilter, man 8 maildir-train, man 5 mailfilter.conf"
say "next: README.md, \"Install for a whole server\", step 2 (Postfix hands mail to procmail or maildrop)"
