"""The network helper: country blocking, spam-source reports, Postfix set-up.

Nothing here is on the per-message path; the filter never imports it.

    rir          RIR delegation files: parse, verify (.md5), fetch
    inputs       which delegation files to read (given, fetched, cached)
    countries    country codes and presets, checked against the data
    sets         per-country CIDR sets, merged and minus the allow-list (netaddr)
    writers      one function per firewall or table format
    krfilter     `mailfilter krfilter`: options to the written file
    sources      `mailfilter sources`: first external relay -> country report
    drops        `mailfilter drops`: what the rules dropped, log samples and counter totals
    droplog      the kernel's LOG lines, from kern.log (gzip too) or journald JSON, streamed
    dropcounters the rules' packet counters, from nft JSON or iptables -L
    submission   `mailfilter submission`: Postfix 587/465 through postconf
    sasl         can AUTH on those ports work (Dovecot socket, Cyrus, saslauthd)
    relaytest    `mailfilter relaytest`: relay tricks against a server, RCPT as verdict
    smtpclient   the small SMTP client relaytest speaks through
    netns        is an address ours; a throw-away namespace to test from outside
    addresslist  the admin's CIDR lists (krfilter --allow, sources --trust)
"""
