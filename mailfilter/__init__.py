"""mailfilter: a learning spam filter for procmail and maildrop."""

__version__ = "0.1.0"
