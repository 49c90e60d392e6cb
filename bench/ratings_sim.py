#!/usr/bin/env python3
"""A ratings log with known truth, run through bench/real_accuracy.py (session 18).

Issue 16 measured sibyl worst on a real ratings log, for an outcome with a property filter
("rates 5 stars within 14 days", a cohort of active users). That log is held out; this
simulates its shape so that the whole path (ingest, predict create, train --as-of T,
score, export, the baselines, the paired bootstrap) runs on it, with the simulator's true
probabilities as the ceiling:

  * users arrive over a year and rate in sessions (a few minutes to an hour of ratings)
    at a personal Poisson rate (Gamma(1, 0.08) sessions a day while active);
  * after each session a user leaves for good with a personal probability (Beta(1, 6)),
    the BG/NBD dropout: the user leaves the activity, not its five-star part;
  * a session holds 1 + Poisson(m) ratings, m log-normal around 6;
  * each rating is five stars with a personal probability (Beta(0.7, 2)), else 1-4.

The log is written in the Online Retail layout (Quantity = stars, Price 1, one Invoice a
session) so that examples/online_retail_mapping.json ingests it and the benchmark's raw
reader computes cohorts, labels and baselines from it unchanged: the outcome is a
`Product Purchased` line with quantity >= 5. The truth is P(at least one five-star rating
in [T, T+H)) given each user's latent state at T (active or gone, rates), by Monte Carlo
(400 continuations a user). Tasks: five stars within 14 days at three cutoffs and within
30 days at one; cohort: rated in the 60 days before T.

  /usr/bin/python3 bench/ratings_sim.py [--sibyl build/sibyl] [--work out/ratings_sim]
                                        [--seeds 1,2,3] [--sim-seed 7] [--json FILE]
"""
import argparse
import datetime as dt
import gzip
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import real_accuracy as ra  # noqa: E402

DAY = 86400
START = dt.datetime(2009, 12, 1, tzinfo=dt.timezone.utc)
END = dt.datetime(2010, 12, 10, tzinfo=dt.timezone.utc)
TASKS = [("2010-11-01", 14), ("2010-10-01", 14), ("2010-09-01", 14), ("2010-11-01", 30)]
COHORT_DAYS = 60


def simulate(seed, users, path):
    rng = np.random.default_rng(seed)
    start, end = START.timestamp(), END.timestamp()
    arrive = rng.uniform(start, end - 20 * DAY, users)
    rate = rng.gamma(1.0, 0.08, users)           # sessions a day while active
    leave = rng.beta(1.0, 6.0, users)            # P(leaving) after each session
    extra = np.exp(rng.normal(np.log(6), 1.0, users))  # ratings a session beyond the first
    five = rng.beta(0.7, 2.0, users)             # P(a rating is five stars)
    gone = np.full(users, np.inf)
    session = 0
    with gzip.open(path, "wt") as f:
        f.write("Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n")
        for u in range(users):
            t = arrive[u]
            while t < end:
                session += 1
                n = 1 + rng.poisson(extra[u])
                times = t + np.sort(rng.uniform(0, 3600, n))
                stars = np.where(rng.random(n) < five[u], 5, rng.integers(1, 5, n))
                for k in range(n):
                    if times[k] < end:
                        when = dt.datetime.fromtimestamp(int(times[k]), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
                        f.write(f"{session},M{k},RATING,{stars[k]},{when},1.0,{100000 + u},Nowhere\n")
                if rng.random() < leave[u]:
                    gone[u] = t
                    break
                t += rng.exponential(1.0 / rate[u]) * DAY

    def truth(T, H, draws=400):
        out = {}
        for u in range(users):
            p = 0.0
            if arrive[u] < T and gone[u] >= T:  # active at T (rates are memoryless)
                hits = 0
                for _ in range(draws):
                    t = T + rng.exponential(1.0 / rate[u]) * DAY
                    while t < T + H * DAY:
                        if rng.random() > (1 - five[u]) ** (1 + rng.poisson(extra[u])):
                            hits += 1
                            break
                        if rng.random() < leave[u]:
                            break
                        t += rng.exponential(1.0 / rate[u]) * DAY
                p = hits / draws
            out[str(100000 + u)] = p
        return out

    return {f"{T}/{H}": truth(ra.utc(T), H) for T, H in TASKS}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sibyl", default="build/sibyl")
    ap.add_argument("--work", default="out/ratings_sim")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--sim-seed", type=int, default=7)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    csv = os.path.join(work, "ratings.csv.gz")
    print(f"== simulating {args.users} raters (seed {args.sim_seed}) into {csv}")
    truth = simulate(args.sim_seed, args.users, csv)

    ra.TASKS[:] = [dict(id=f"five_star_{H}d_{T.replace('-', '_')}", group="five_star", kind="propensity", H=H, T=T,
                        cohort_days=COHORT_DAYS, line_filter=("quantity", 5.0)) for T, H in TASKS]
    mapping = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "online_retail_mapping.json")
    sys.argv = ["real_accuracy.py", "--csv", csv, "--mapping", mapping, "--sibyl", os.path.abspath(args.sibyl),
                "--work", os.path.join(work, "run"), "--seeds", args.seeds] + (["--json", args.json] if args.json else [])
    os.makedirs(os.path.join(work, "run"))
    ra.main()

    print("\n== the truth on the same users and labels (the ceiling)")
    raw = ra.Raw(csv)
    for task in ra.TASKS:
        T = ra.utc(task["T"])
        users = raw.cohort(T, task["cohort_days"])
        y = raw.only(task["line_filter"]).label(users, T, task["H"], "propensity")
        p = np.array([truth[f"{task['T']}/{task['H']}"][u] for u in users])
        print(f"   {task['id']}: {len(users)} users, base rate {y.mean():.3f}, truth AUC {ra.roc_auc(y, p):.4f}, "
              f"mean truth {p.mean():.3f}")


if __name__ == "__main__":
    main()
