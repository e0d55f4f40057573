# /etc/dovecot/mailfilter/report-spam.sieve (95-mailfilter-imapsieve.conf)
# A message arrived in Junk by the user's COPY or MOVE: teach it as spam.
# :copy keeps the message where the user put it.
require ["vnd.dovecot.pipe", "copy", "imapsieve"];

pipe :copy "mailfilter-learn" ["spam"];
