"""Time charsets.decode under every charset label Python accepts, at n and 8n.

A charset label is attacker text, and Python's codec registry answers to
~450 names, some of them no charset at all. Each must decode in time linear
in the input, or be refused (charsets.decode then guesses the charset). This
prints the table the README's Reliability section quotes:

    python -m bench.codec_timing [--small BYTES] [--all]

Inputs per label: random bytes, ASCII words, and three that make punycode
work (its decoder inserts each extended character into a list: quadratic;
"abc-999..." of 256 KiB took 2 s, with errors="replace" ~8x more per 2x). The cost is the
slowest input at each size, best of two runs (process time).
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mailfilter import charsets  # noqa: E402


def labels():
    import encodings
    import encodings.aliases
    import pkgutil
    return sorted(set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
                  | {m.name for m in pkgutil.iter_modules(encodings.__path__)})


def inputs(n):
    r = random.Random(14)
    words = b"free money offer click here now meeting tomorrow report".split()
    ascii_text = b" ".join(r.choice(words) for _ in range(n // 5))[:n]
    return [bytes(r.getrandbits(8) for _ in range(n)),
            ascii_text,
            b"abc-" + b"9" * (n - 4),                               # punycode's worst case
            b"-" + b"a" * (n - 1),
            ("\u00e9a" * (n // 2)).encode("punycode")[:n]]


def cost(label, samples):
    best = float("inf")
    for _ in range(2):
        start = time.process_time()
        for data in samples:
            charsets.decode(data, label)
        best = min(best, time.process_time() - start)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", type=int, default=32 * 1024, help="n in bytes (default 32 KiB)")
    p.add_argument("--all", action="store_true", help="print every label, not only the slowest")
    args = p.parse_args(argv)
    import warnings
    warnings.simplefilter("ignore")          # unicode_escape warns on random bytes
    small, large = inputs(args.small), inputs(8 * args.small)
    rows = []
    for label in labels():
        a, b = cost(label, small), cost(label, large)
        rows.append((b, a, label, charsets.codec_for(label)))
    rows.sort(reverse=True)
    print(f"{len(rows)} labels; n = {args.small // 1024} KiB, 8n = {8 * args.small // 1024} KiB, 5 inputs each")
    print(f"{'label':<24} {'codec used':<18} {'n s':>8} {'8n s':>8} {'8n/n':>6}")
    for b, a, label, codec in (rows if args.all else rows[:15]):
        ratio = b / a if a > 1e-4 else float("nan")
        print(f"{label:<24} {str(codec or 'guessed'):<18} {a:8.4f} {b:8.4f} {ratio:6.1f}")
    print(f"total at 8n: {sum(r[0] for r in rows):.2f} s; slowest label: {rows[0][2]} {rows[0][0]:.3f} s")


if __name__ == "__main__":
    main()
