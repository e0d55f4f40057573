"""The ledger's row types (documented in store/__init__.py).

Not imported by the filter: only writers (learning.py) and readers of the
ledger (stats) need them.
"""

from collections import namedtuple

# What commit() records for one taught message.
LedgerRow = namedtuple("LedgerRow", "digest label pr_before subject sender_domain",
                       defaults=(None, None))
# What Store.learned() gives back: a LedgerRow's fields, and when it was taught.
LedgerEntry = namedtuple("LedgerEntry", "digest label trained_at pr_before subject sender_domain")
# Subjects are cut to this many characters (ledgerfields.clean) before they are stored.
SUBJECT_CHARS = 80


def ledger_row(row) -> LedgerRow:
    """A row given to commit(), as a LedgerRow: a LedgerRow, or a plain
    tuple of its first 3 (or all 5) fields."""
    return row if isinstance(row, LedgerRow) else LedgerRow(*row)
