"""Generated English mail: the "mostly English" a test model learns first.

A seeded generator of ordinary good mail (colleagues, family, mailing lists,
newsletters, shop and bank notices) and ordinary spam (pharmacy, loans,
prizes, phishing, replicas, stock tips, dating, SEO, crypto, side jobs), in
the shapes real mail has: plain and HTML, multipart, base64 and QP,
us-ascii, ISO-8859-1 and UTF-8, mailers' own headers, list headers. Every
message went through the same mail server as the Japanese cases in
tests/fixtures/japanese (the same local Received hop and Return-Path), so
what the site adds says nothing about a message's language or label.

Written for tests/test_japanese.py; nothing is copied from real mail.
"""

import base64
import quopri
import random
import unicodedata

ME = "you@example.com"

FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
         "nick", "olivia", "peggy", "quentin", "rupert", "sybil", "trent", "ursula", "victor", "wendy"]
LAST = ["smith", "jones", "taylor", "brown", "wilson", "evans", "thomas", "roberts", "walker", "wright",
        "hall", "green", "baker", "clarke", "hughes", "edwards", "turner", "parker", "cooper", "ward"]
ORGS = ["acme-tools.example.com", "northwind.example.org", "bluefin.example.net", "riverbank.co-uk.example",
        "lattice.example.com", "copperleaf.example.org", "harbor-labs.example.net", "quillsoft.example.com"]
ISPS = ["mail.example.net", "post.example.org", "smtp.co-uk.example", "mx.us.example"]
MAILERS = ["Mozilla Thunderbird 115.9.0", "Microsoft Outlook 16.0", "Apple Mail (2.3774.500.171)",
           "Mutt/2.2.12 (2023-09-09)", "Evolution 3.50.2", None, None]
PROJECTS = ["the billing migration", "the Q3 roadmap", "the warehouse audit", "the API redesign",
            "the hiring plan", "the office move", "the customer survey", "the release checklist",
            "the budget review", "the training course", "the vendor contract", "the data cleanup"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
WORK_LINES = [
    "I went through {p} again and left comments in the shared document.",
    "Can we move our call about {p} to {d} afternoon?",
    "The numbers for {p} look better than last month, see the attached sheet.",
    "I talked to finance about {p}; they need the final figures by {d}.",
    "Thanks for the quick turnaround on {p}.",
    "Could you check whether the second section of {p} still matches what we agreed?",
    "I will be out on {d}, so please send questions about {p} before then.",
    "The team agreed to split {p} into two phases.",
    "Let me know if anything in {p} is blocking you.",
    "I added the missing references and fixed the table on page four.",
    "We still need sign-off from legal before we can share it outside.",
    "The printer on the third floor is fixed, by the way.",
]
FAMILY_LINES = [
    "We had a lovely time at the lake last weekend.",
    "The kids say hello and want to know when you are visiting.",
    "Dad finally fixed the garden fence.",
    "Are you still coming for dinner on {d}?",
    "I found the old photo album, I will bring it next time.",
    "The weather here has been grey all week.",
    "Don't forget grandma's birthday next month.",
    "Call me when you get a chance, no rush.",
]
TECH_TOPICS = [
    ("systemd unit fails after upgrade", ["After upgrading to the new release my service unit fails with "
                                          "status=203/EXEC.",
                                          "The binary path has not changed and the file is executable.",
                                          "Running it by hand as the service user works fine."]),
    ("postfix relay question", ["I want postfix to relay outgoing mail through my ISP's submission port.",
                                "I set relayhost and sasl_passwd but the log says authentication failed.",
                                "Is smtp_sasl_security_options the missing piece?"]),
    ("git rebase lost my commits", ["During an interactive rebase I dropped the wrong line.",
                                    "Is there a way to get the commits back from the reflog?",
                                    "Nothing has been pushed yet."]),
    ("python packaging and extras", ["Our package has optional dependencies for the web interface.",
                                     "pip install with the extra works locally but not in CI.",
                                     "The CI image uses an older pip, could that matter?"]),
    ("backup script with rsync", ["My nightly rsync backup copies everything again each night.",
                                  "I use --archive and the target is a mounted NAS share.",
                                  "Could the timestamps on the share be the reason?"]),
    ("kernel panic on resume", ["Since the last update the laptop panics when it resumes from suspend.",
                                "The previous kernel works, so I am booting that for now.",
                                "I can capture a log with netconsole if that helps."]),
]
LISTS = ["linux-help", "postfix-users", "gitusers", "pydev", "backup-talk", "laptop-linux"]
NEWS_ITEMS = ["New trail map for the national park", "Five tips for a better sourdough",
              "Our spring sale starts Friday",
              "Interview with this year's award winner", "How we rebuilt our search", "Community meetup recap",
              "A new branch opens downtown", "Release notes for version 4.2", "Reading list for the summer"]
SHOPS = ["Northwind Outfitters", "Bluefin Books", "Copperleaf Garden", "Harbor Home", "Lattice Electronics"]

SPAM_KINDS = {
    "pharmacy": (["Cheap meds online - {n}% OFF", "Your prescription refill is ready", "Best prices on pills"],
                 ["Order generic medication without a prescription.", "Discreet shipping worldwide in {n} days.",
                  "Save up to {n}% on the most popular brands.", "Licensed online pharmacy, no doctor visit needed."]),
    "loan": (["Pre-approved: ${m} loan waiting", "Bad credit? Get cash today", "Lower your payments now"],
             ["You have been pre-approved for a personal loan of ${m}.", "No credit check, funds in 24 hours.",
              "Consolidate your debt with one low monthly payment.", "Apply in two minutes from your phone."]),
    "prize": (["Congratulations! You have WON", "Claim your ${m} reward", "Final notice: unclaimed prize"],
              ["Your email address was selected in our annual draw.", "To release the funds, send the processing fee.",
               "Reply with your full name, address and bank details.", "This offer expires in 48 hours."]),
    "phish": (["Your account has been suspended", "Action required: verify your account", "Unusual sign-in activity"],
              ["We detected unusual activity on your account.",
               "Verify your identity within 24 hours to avoid closure.",
               "Click the secure link below and confirm your details.",
               "Failure to do so will result in permanent suspension."]),
    "replica": (["Luxury watches at {n}% off", "Replica handbags - top quality", "Designer brands for less"],
                ["Swiss-style replica watches, indistinguishable from the original.",
                 "Free shipping on orders over ${m}.", "Top quality replicas, limited stock."]),
    "stock": (["This stock is about to explode", "Hot pick: {n}x potential", "Insider alert"],
              ["Our analysts expect this small cap to rise {n}x before the announcement.",
               "Get in before the news breaks.", "Last pick went up {n}% in a week."]),
    "dating": (["Lonely tonight?", "Someone near you wants to chat", "Meet singles in your area"],
               ["Thousands of singles are waiting to meet you.", "Sign up free and start chatting now.",
                "She viewed your profile {n} times today."]),
    "seo": (["Get your site on page one", "SEO proposal for your website", "More traffic guaranteed"],
            ["We noticed your website is not ranking for important keywords.",
             "Our team guarantees first page results in {n} days.", "Packages start at ${m} per month."]),
    "crypto": (["Turn ${m} into ${m}0 with crypto", "The bitcoin secret banks hate",
                "Passive income from trading bots"],
               ["Our trading bot made {n}% last month on autopilot.", "Start with just ${m} and withdraw anytime.",
                "Spots are limited, join before midnight."]),
    "workhome": (["Work from home - earn ${m} a week", "Easy online job, no experience", "Be your own boss"],
                 ["Earn ${m} per week working from home in your spare time.", "No experience needed, just a phone.",
                  "Reply now to receive the starter kit."]),
}


def _date(rng) -> str:
    day = rng.randint(1, 28)
    month = rng.choice(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])
    return (f"{rng.choice(['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'])}, {day:02d} {month} 2024 "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} "
            f"{rng.choice(['+0000', '-0500', '+0100', '-0800', '+0900'])}")


def _ident(rng) -> str:
    alphabet = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
    return "4" + "".join(rng.choice(alphabet) for _ in range(13))


def _ip(rng) -> str:
    return rng.choice(["192.0.2", "198.51.100", "203.0.113"]) + f".{rng.randint(1, 254)}"


def _local_hop(rng, helo, rdns, date, proto="ESMTP") -> str:
    # The same hop the Japanese cases carry (tests/fixtures/japanese/mailkit.received).
    return (f"from {helo} ({rdns} [{_ip(rng)}])\n\tby mx.example.com (Postfix) with {proto} id {_ident(rng)}\n"
            f"\tfor <{ME}>; {date}")


def _body(text: str, rng, html: bool = False, charsets=("us-ascii", "utf-8", "iso-8859-1")):
    """(MIME header lines, body bytes)."""
    charset = rng.choice(charsets)
    data = text.encode("utf-8" if charset == "utf-8" else "latin-1")
    cte = rng.choice(["7bit", "7bit", "quoted-printable", "base64"])
    if cte == "base64":
        enc = base64.encodebytes(data)
    elif cte == "quoted-printable":
        enc = quopri.encodestring(data)
    else:
        enc = data if data.endswith(b"\n") else data + b"\n"
    subtype = "html" if html else "plain"
    return [f"Content-Type: text/{subtype}; charset={charset}", f"Content-Transfer-Encoding: {cte}"], enc


def _assemble(headers, mime_lines, body: bytes) -> bytes:
    lines = [f"{k}: {v}" for k, v in headers] + ["MIME-Version: 1.0"] + mime_lines
    return ("\n".join(lines) + "\n\n").encode("ascii") + body


ACCENTED = ["José García", "Zoë Müller", "Renée Dubois", "Søren Nørgaard", "Łukasz Wójcik", "Inês Araújo"]


def _encoded(text: str, rng) -> str:
    """text as one RFC 2047 encoded-word, the way English mail carries
    accented names and typographic quotes."""
    charset = rng.choice(["UTF-8", "UTF-8", "ISO-8859-1"])
    data = text.encode("utf-8" if charset == "UTF-8" else "latin-1", "replace")
    if rng.random() < 0.5:
        return f"=?{charset}?B?{base64.b64encode(data).decode('ascii')}?="
    q = "".join(chr(b) if chr(b).isalnum() and b < 128 else ("_" if b == 32 else f"={b:02X}") for b in data)
    return f"=?{charset}?Q?{q}?="


def _person(rng):
    if rng.random() < 0.15:
        name = rng.choice(ACCENTED)
        plain = unicodedata.normalize("NFKD", name.replace("Ł", "L").replace("ø", "o"))
        ascii_name = plain.encode("ascii", "ignore").decode()
        user = ".".join(part.lower() for part in ascii_name.split())
        return _encoded(name, rng), f"{user}@{rng.choice(ORGS + ISPS)}"
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return f"{first.title()} {last.title()}", f"{first}.{last}@{rng.choice(ORGS + ISPS)}"


def good_message(rng, kind: str) -> bytes:
    date = _date(rng)
    name, email = _person(rng)
    headers = []
    mailer = rng.choice(MAILERS)
    if kind == "work":
        project = rng.choice(PROJECTS)
        lines = rng.sample(WORK_LINES, rng.randint(3, 5))
        text = f"Hi {rng.choice(FIRST).title()},\n\n" + "\n".join(
            line.format(p=project, d=rng.choice(DAYS)) for line in lines) + f"\n\nThanks,\n{name.split()[0]}\n"
        subject = rng.choice(["Re: {p}", "Notes on {p}", "{p}: next steps",
                              "Quick question about {p}"]).format(p=project)
        to = ME
    elif kind == "family":
        greeting = rng.choice(["Hi love,", "Hey,", "Hello dear,"])
        lines = rng.sample(FAMILY_LINES, rng.randint(2, 4))
        text = greeting + "\n\n" + "\n".join(
            line.format(d=rng.choice(DAYS)) for line in lines) + "\n\nLove,\nMum\n"
        subject = rng.choice(["News from home", "This weekend", "Photos", "Re: dinner", "hello"])
        to = ME
    elif kind == "list":
        topic, lines = rng.choice(TECH_TOPICS)
        lst = rng.choice(LISTS)
        text = "Hello list,\n\n" + " ".join(lines) + f"\n\nAny pointers welcome.\n{name}\n\n" \
            f"_______________________________________________\n{lst} mailing list\n{lst}@lists.example.org\n" \
            f"https://lists.example.org/mailman/listinfo/{lst}\n"
        subject = rng.choice(["", "Re: "]) + f"[{lst}] {topic}"
        to = f"{lst}@lists.example.org"
        headers += [("List-Id", f"<{lst}.lists.example.org>"), ("Precedence", "list"),
                    ("List-Unsubscribe", f"<mailto:{lst}-request@lists.example.org?subject=unsubscribe>"),
                    ("List-Post", f"<mailto:{lst}@lists.example.org>"), ("X-BeenThere", f"{lst}@lists.example.org"),
                    ("Sender", f"\"{lst}\" <{lst}-bounces@lists.example.org>")]
    elif kind == "newsletter":
        shop = rng.choice(SHOPS)
        items = rng.sample(NEWS_ITEMS, 3)
        text = f"{shop} newsletter\n\n" + "\n".join(f"* {item}" for item in items) + \
            f"\n\nRead more on our website.\nYou are receiving this because you subscribed at {shop}.\n" \
            "Unsubscribe: https://news.example.com/u/" + str(rng.randint(1000, 9999)) + "\n"
        subject = f"{shop}: {items[0]}"
        if rng.random() < 0.3:
            subject = _encoded(f"{shop}: \u201c{items[0]}\u201d", rng)
        email = "news@" + shop.lower().split()[0] + ".example.com"
        name = shop
        to = ME
        headers += [("List-Unsubscribe", "<https://news.example.com/unsubscribe>"), ("Precedence", "bulk")]
        mailer = None
    else:                       # notice: the legitimate twins of phishing
        shop = rng.choice(SHOPS)
        number = rng.randint(100000, 999999)
        text, subject = rng.choice([
            (f"Thank you for your order #{number}.\nItems: 1 x garden hose, 1 x watering can\nTotal: $42.50\n"
             "We will email you when it ships.\nView your order in your account.\n", f"Your {shop} order #{number}"),
            (f"Your order #{number} has shipped.\nTracking number: 1Z{number}US\n"
             f"Estimated delivery: {rng.choice(DAYS)}\n",
             f"Shipped: order #{number}"),
            ("Your monthly statement is ready.\nSign in to online banking to view it.\n"
             "We will never ask for your password by email.\n", "Your statement is ready"),
            ("We received a request to reset your password.\nIf this was you, use the link below within 30 minutes.\n"
             f"https://account.example.com/reset?t={number}\nIf not, you can ignore this email.\n",
             "Password reset request"),
        ])
        email = "no-reply@" + shop.lower().split()[0] + ".example.com"
        name = shop
        to = ME
        mailer = None
    helo = email.split("@")[1]
    headers = [("Return-Path", f"<{email}>"),
               ("Received", _local_hop(rng, helo, helo if rng.random() > 0.1 else "unknown", date)),
               ("From", f"{name} <{email}>" if name.startswith("=?") or name.isascii() else name), ("To", to),
               ("Subject", subject), ("Date", date),
               ("Message-ID", f"<{rng.getrandbits(64):x}@{helo}>")] + headers
    if mailer:
        headers.append(("X-Mailer" if rng.random() < 0.5 else "User-Agent", mailer))
    mime, body = _body(text, rng)
    return _assemble(headers, mime, body)


def spam_message(rng, kind: str) -> bytes:
    subjects, lines = SPAM_KINDS[kind]
    n, m = rng.randint(2, 95), rng.choice([50, 100, 250, 500, 1000, 5000])
    domain = rng.choice(["deals", "best", "secure", "promo", "win", "cash", "rx", "meet"]) + \
        str(rng.randint(1, 99)) + rng.choice([".top.example", ".biz.example", ".info.example"])
    url = f"http://{domain}/{rng.choice(['go', 'r', 'offer', 'verify', 'join'])}/{rng.randint(100, 9999)}"
    text_lines = [line.format(n=n, m=m) for line in rng.sample(lines, min(len(lines), rng.randint(2, 4)))]
    html = rng.random() < 0.4
    if html:
        text = "<html><body>" + "".join(f"<p>{line}</p>" for line in text_lines) + \
            f"<p><a href=\"{url}\">CLICK HERE</a></p></body></html>\n"
    else:
        text = "\n".join(text_lines) + f"\n\n{url}\n"
    date = _date(rng)
    sender = f"{rng.choice(FIRST)}{rng.randint(1, 999)}@{domain}"
    helo = rng.choice([domain, "pc", "user-pc", f"[{_ip(rng)}]", "localhost", "win-" + str(rng.randint(100, 999))])
    headers = [("Return-Path", f"<{sender}>"),
               ("Received", _local_hop(rng, helo, "unknown" if rng.random() < 0.6 else helo, date,
                                       rng.choice(["ESMTP", "SMTP"]))),
               ("From", rng.choice(["Support", "Rewards Team", "Customer Service",
                                    rng.choice(FIRST).title()]) + f" <{sender}>"),
               ("To", ME if rng.random() < 0.85 else "undisclosed-recipients:;"),
               ("Subject", rng.choice(subjects).format(n=n, m=m)), ("Date", date)]
    if rng.random() < 0.25:
        tail = rng.choice(["today only", "act now", "last chance"])
        headers[-2] = ("Subject", _encoded(headers[-2][1] + " \u2013 " + tail, rng))
    if rng.random() < 0.6:
        headers.append(("Message-ID", f"<{rng.getrandbits(48):x}@{domain}>"))
    if rng.random() < 0.3:
        headers.append(("X-Mailer", rng.choice(["Microsoft Outlook Express 6.00.2900.2180", "The Bat! (v3.5)",
                                                "Microsoft Office Outlook 12.0"])))
    mime, body = _body(text, rng, html, ("us-ascii", "iso-8859-1", "utf-8", "windows-1252"))
    if "windows-1252" in mime[0]:
        mime[0] = mime[0].replace("windows-1252", "Windows-1252")
    return _assemble(headers, mime, body)


def corpus(good: int, spam: int, seed: int = 2024):
    """[(name, raw bytes, is_spam)]: `good` good messages of five kinds and
    `spam` spam of ten, reproducibly."""
    rng = random.Random(seed)
    out = []
    good_kinds = ["work", "work", "family", "list", "list", "newsletter", "notice"]
    for i in range(good):
        out.append((f"good-{i:04d}.eml", good_message(rng, rng.choice(good_kinds)), False))
    for i in range(spam):
        out.append((f"spam-{i:04d}.eml", spam_message(rng, rng.choice(sorted(SPAM_KINDS))), True))
    return out
