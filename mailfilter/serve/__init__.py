"""The resident filter: `mailfilter serve` (spamd's protocol, for the stock
spamc) and `mailfilter milter` (Postfix, at SMTP time).

Both are thin front ends: a message is classified and marked by
mailfilter.pipeline, exactly as the pipe filter does it, and a TELL is a
learning.Session, exactly as `mailfilter learn`. What this package adds is
only the plumbing around them:

    protocol.py    spamd's request and response format (no sockets)
    connection.py  one spamc connection: read, classify or learn, answer
    models.py      one user's classifier, kept open and reloaded when stale
    peers.py       who is on the other end of a socket (uid)
    workers.py     per-user worker processes that the server hands sockets to
    server.py      listeners (Unix, loopback TCP, systemd), authorisation, dispatch
    client.py      a small spamd client: the milter's and eval's way in
    milter.py      the milter protocol, and the milter built on client.py
    remote_eval.py `mailfilter eval --spamd`: the TREC run through the daemon

Who may use whose model (the README's "Who can read whose model") is
decided in server.py, before any of a user's files is opened, and enforced
by the kernel: a user's model is only ever opened by a worker process
running as that user.
"""
