# /etc/dovecot/mailfilter/report-good.sieve (95-mailfilter-imapsieve.conf)
# A message left Junk for another folder: the user says it is not spam,
# unless the folder is the trash (deleting spam says nothing about it).
require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];

if environment :matches "imap.mailbox" "*" {
  set "mailbox" "${1}";
}
if string :comparator "i;ascii-casemap" "${mailbox}" ["Trash", "Deleted Items", "Deleted Messages"] {
  stop;
}
pipe :copy "mailfilter-learn" ["good"];
