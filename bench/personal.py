"""`python -m bench.personal`: does a shared model with per-user weights
beat a model per user and one global model? (issue 13)

Enron-Spam (Metsis et al. 2006, preprocessed: Subject line and body) holds
six users' mailboxes, enron1..6/{ham,spam}. The six are interleaved by the
date in each file name, as if one site's users received them, and run
through the TREC online protocol (classify a message, then teach it with
its true label) three ways:

  alone     each user their own model, only their own mail (today's
            mailfilter: one state directory each)
  global    one model for everyone, no personal ids
  personal  one shared table, each message scored and taught with its
            user's personal ids added (personal.py): global + personal

Everything goes through the product: evaluate.run (the TREC protocol of
`mailfilter eval`: pipeline.read_file, Classifier.classify, learning.teach)
one message at a time, with the user's model. `--redis` runs the personal
way through the Redis store itself (a private redis-server, a
learning.Session per message: lock, whole copy, commit of the deltas) and
checks that every score equals the in-process run's.

The corpus is for research use: nothing of it is committed, only figures.

    python -m bench.personal --corpus /work/corpora/enron-spam-preprocessed
    python -m bench.personal --corpus DIR --limit 3000 --redis
"""

import argparse
import json
import os
import re
import statistics
import sys
import time

from mailfilter import metrics
from mailfilter.classifier import Classifier
from mailfilter.evaluate import run
from mailfilter.learning import policy_for
from mailfilter.state import Config
from mailfilter.store import modelfile
from mailfilter.store.redisstore import PersonalModel
from mailfilter import personal

USERS = [f"enron{i}" for i in range(1, 7)]
_NAME = re.compile(r"^(\d+)\.(\d{4}-\d{2}-\d{2})\.")
FIRST = 500


def load(corpus: str, limit=None):
    """[(date, user, number, is_spam, path)], the six users interleaved.

    Enron-Spam's ham is dated 1999-2002 and its spam 2001-2005, so ordering
    by date alone would teach all the ham and then all the spam. Each
    user's mailbox has its own arrival order, the number in the file name
    (Metsis et al. merged each user's ham and spam, both in date order,
    into that order). So a message's time is its date for ham and, for spam,
    the date of the ham just before it in its user's order; users are
    interleaved by that time (then user, then number)."""
    entries = []
    for user in USERS:
        mine = []
        for label in ("ham", "spam"):
            directory = os.path.join(corpus, user, label)
            for name in os.listdir(directory):
                m = _NAME.match(name)
                if m:
                    mine.append((int(m.group(1)), m.group(2), label == "spam", os.path.join(directory, name)))
        mine.sort()
        when = min(date for _, date, spam, _ in mine if not spam)
        for number, date, spam, path in mine:
            if not spam:
                when = max(when, date)
            entries.append((when, user, number, spam, path))
    entries.sort()
    return entries[:limit] if limit else entries


def _entry(e):
    return (e[3], os.path.basename(e[4]), e[4])


def scores_alone(entries, config):
    out = {}
    for user in USERS:
        mine = [e for e in entries if e[1] == user]
        model = modelfile.empty(config.model_bits)
        result = run(Classifier(config, model), policy_for(config), [_entry(e) for e in mine])
        out.update(zip([e[4] for e in mine], result.scores))
    return out


def scores_global(entries, config):
    model = modelfile.empty(config.model_bits)
    result = run(Classifier(config, model), policy_for(config), [_entry(e) for e in entries])
    return dict(zip([e[4] for e in entries], result.scores))


def scores_personal(entries, config, salt=b"bench"):
    table = modelfile.empty(config.model_bits)
    classifiers = {u: Classifier(config, PersonalModel(table.bits, table.weights, table.sq_grads,
                                                       seed=personal.user_seed(u, salt)))
                   for u in USERS}
    policy = policy_for(config)
    out = {}
    for e in entries:
        out[e[4]] = run(classifiers[e[1]], policy, [_entry(e)]).scores[0]
    return out


def scores_redis(entries, config, work):
    """The personal way through the Redis store and learning.Session."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from redis_lab import RedisLab
    from mailfilter.learning import Session
    from mailfilter.state import State
    from mailfilter.store import open_store
    lab = RedisLab(os.path.join(work, "redis")).start()
    try:
        stores = {}
        salt = b"bench"             # the in-process run's salt, so both place each user's ids alike
        for user in USERS:
            home = os.path.join(work, user)
            os.makedirs(home, exist_ok=True)
            cfg = Config(model_bits=config.model_bits, store=lab.url)
            store = open_store(State(home), cfg)
            store.user = user       # the bench plays six users as one account
            for kind in ("ledger", "lock", "applied"):
                setattr(store, "k_" + kind, f"{store.spec.prefix}{kind}:{user}")
            stores[user] = (store, cfg)
            store.init(salt)
        out = {}
        for n, e in enumerate(entries):
            store, cfg = stores[e[1]]
            with Session(store, cfg) as session:
                out[e[4]] = run(session.classifier, session.policy, [_entry(e)], session=session).scores[0]
            if n % 500 == 0:
                print(f"  redis: {n}/{len(entries)}", file=sys.stderr)
        memory = lab.client().info("memory")["used_memory"]
        return out, memory
    finally:
        lab.stop()


def figures(entries, scores):
    per_user, first = {}, {}
    for user in USERS:
        mine = [e for e in entries if e[1] == user]
        if not mine:
            continue
        spam = [e[3] for e in mine]
        s = [scores[e[4]] for e in mine]
        per_user[user] = metrics.one_minus_roca_percent(s, spam)
        first[user] = metrics.one_minus_roca_percent(s[:FIRST], spam[:FIRST])
    return {"per_user": per_user, "mean": statistics.mean(per_user.values()),
            "first": first, "first_mean": statistics.mean(first.values())}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.personal", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="/work/corpora/enron-spam-preprocessed")
    p.add_argument("--limit", type=int, help="only the first N messages (interleaved)")
    p.add_argument("--ways", default="alone,global,personal")
    p.add_argument("--redis", action="store_true", help="also run the personal way through Redis")
    p.add_argument("--work", default="/tmp/bench-personal")
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    config = Config()
    entries = load(args.corpus, args.limit)
    print(f"{len(entries)} messages, {sum(e[3] for e in entries)} spam", file=sys.stderr)
    results = {}
    ways = {"alone": scores_alone, "global": scores_global, "personal": scores_personal}
    for way in args.ways.split(","):
        started = time.perf_counter()
        scores = ways[way](entries, config)
        results[way] = figures(entries, scores)
        results[way]["seconds"] = round(time.perf_counter() - started, 1)
        if way == "personal":
            personal_scores = scores
        print(f"{way}: mean {results[way]['mean']:.3f}  first {FIRST}: {results[way]['first_mean']:.3f}  "
              f"({results[way]['seconds']} s)", file=sys.stderr)
    if args.redis:
        started = time.perf_counter()
        scores, memory = scores_redis(entries, config, args.work)
        same = all(scores[k] == personal_scores[k] for k in scores)
        results["redis"] = figures(entries, scores)
        results["redis"].update(seconds=round(time.perf_counter() - started, 1),
                                same_scores_as_in_process=same, redis_used_memory=memory)
        print(f"redis: mean {results['redis']['mean']:.3f} same scores: {same} "
              f"({results['redis']['seconds']} s)", file=sys.stderr)
    table(results)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump({"messages": len(entries), "results": results}, fh, indent=1)


def table(results):
    ways = [w for w in ("alone", "global", "personal", "redis") if w in results]
    print("| user | " + " | ".join(ways) + " | " + " | ".join(f"{w} first {FIRST}" for w in ways) + " |")
    print("|---" * (1 + 2 * len(ways)) + "|")
    for user in USERS:
        if user not in results[ways[0]]["per_user"]:
            continue
        cells = [f"{results[w]['per_user'][user]:.3f}" for w in ways]
        cells += [f"{results[w]['first'][user]:.3f}" for w in ways]
        print(f"| {user} | " + " | ".join(cells) + " |")
    cells = [f"**{results[w]['mean']:.3f}**" for w in ways] + [f"**{results[w]['first_mean']:.3f}**" for w in ways]
    print("| mean | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
