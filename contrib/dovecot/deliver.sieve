# /etc/dovecot/mailfilter/deliver.sieve (95-mailfilter-lmtp.conf: sieve_before)
# Every message delivered by LMTP or dovecot-lda goes through mailfilter,
# whose output (the same message, plus its X-CRM114-* headers) replaces it.
require ["vnd.dovecot.filter", "fileinto", "mailbox"];

filter "mailfilter-filter";

# The report that answers a command mail (training by mail) is for the INBOX.
if exists "X-CRM114-Action" {
  keep;
  stop;
}
if header :matches "X-CRM114-Status" "SPAM*" {
  fileinto :create "Junk";
  stop;
}
# GOOD and UNSURE go on to the user's own Sieve script, or to INBOX.
