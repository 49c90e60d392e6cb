#!/usr/bin/env python3
"""How much room the real-data tasks leave above the classic baselines (issue 16).

For each probability task of bench/real_accuracy.py (same raw-file rules, cohorts and
labels), a logistic regression is fitted AT T ITSELF, on the labels it is judged on, with
everything the two baselines know about a customer: RF-LR's eight recency-frequency
columns and BG/NBD's logit P(outcome within H) and logit P(alive), fitted on the customer
base at T as the baseline is. No method that learns before T can know the target window's
own relation between history and outcome, so this model is a generous reference for what
a purchase history alone allows. Three versions:

  cross-fitted   5 folds of users: each user scored by a model fitted on the other folds
                 (an honest AUC, but for the knowledge of the target window)
  quadratic      the same with every square and pairwise product of the standardised
                 columns (L2 = 10), a smooth non-linear surface
  in-sample      the better of the two above fitted and judged on the same users: it has
                 seen the answers, so it is an upper bound, not a model

Each is printed minus the best baseline's AUC on that task (the higher of BG/NBD and
RF-LR, taken per task, as issue 16's target takes it), with how many tasks reach +0.01.

  bench/real_accuracy_ceiling.py --csv ../shared/data/online_retail_ii/online_retail_ii_2009_2010.csv.gz
  bench/real_accuracy_ceiling.py --cdnow CDNOW_sample.txt [--tasks cdnow_buy_30d] [--json out.json]

Needs numpy and scipy (scripts/install_deps.sh). Exit codes: 0 done, 1 unknown task names,
2 bad arguments.
"""
import argparse
import json
import os
import sys

import numpy as np
from scipy import special

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from real_accuracy import CDNOW_TASKS, DAY, TASKS, Raw, cdnow_to_csv, resolve_tasks, utc  # noqa: E402
from real_accuracy_models import (apply1, bgnbd_p_alive, bgnbd_p_buy, fit_bgnbd, fit_logistic,  # noqa: E402
                                  roc_auc, standardise)

PROBABILITY_FLOOR = 1e-6


def fitted_scores(X_fit, y_fit, X_apply, l2):
    """Logistic regression on standardised columns, fitted on one set and applied to another."""
    Xs, mu, sd = standardise(X_fit)
    w = fit_logistic(Xs, y_fit, l2)
    X1, _, _ = standardise(X_apply, mu, sd)
    return special.expit(apply1(X1, w))


def cross_fitted(X, y, l2, folds, rng):
    """Each row scored by a model fitted on the other folds (users dealt at random)."""
    fold = rng.permutation(len(y)) % folds
    scores = np.zeros(len(y))
    for f in range(folds):
        held = fold == f
        scores[held] = fitted_scores(X[~held], y[~held], X[held], l2)
    return scores


def with_products(X):
    """Standardised columns, their squares and every pairwise product."""
    Xs, _, _ = standardise(X)
    p = Xs.shape[1]
    return np.column_stack([Xs] + [Xs[:, i] * Xs[:, j] for i in range(p) for j in range(i, p)])


def one_task(raw, task, folds, seed):
    T, H, kind = utc(task["T"]), task["H"], task["kind"]
    history = raw.only(task["line_filter"]) if task.get("line_filter") else raw
    users = raw.cohort(T, task["cohort_days"])
    y = history.label(users, T, H, kind)
    # The baselines, as bench/real_accuracy.py fits them.
    bg = fit_bgnbd(*history.rfm_days(raw.cohort(T), T)[:3])
    x, tx, age, _ = history.rfm_days(users, T)
    p_buy = np.clip(bgnbd_p_buy(bg, x, tx, age, H), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    p_alive = np.clip(bgnbd_p_alive(bg, x, tx, age), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    bgnbd = 1 - p_buy if kind == "churn" else p_buy
    T0 = T - H * DAY
    users0 = raw.cohort(T0, task["cohort_days"])
    columns = history.rf_features(users, T)
    rflr = fitted_scores(history.rf_features(users0, T0), history.label(users0, T0, H, kind), columns, 1.0)
    best = max(roc_auc(y, bgnbd), roc_auc(y, rflr))
    # The reference models: everything both baselines know, fitted on T's own labels.
    X = np.column_stack([columns, special.logit(p_buy), special.logit(p_alive)])
    Xq = with_products(X)
    rng = np.random.default_rng(seed)
    linear = roc_auc(y, cross_fitted(X, y, 1.0, folds, rng))
    quadratic = roc_auc(y, cross_fitted(Xq, y, 10.0, folds, rng))
    in_sample = max(roc_auc(y, fitted_scores(X, y, X, 1.0)), roc_auc(y, fitted_scores(Xq, y, Xq, 10.0)))
    return dict(id=task["id"], users=len(users), positives=int(y.sum()), best_baseline_auc=best,
                cross_fitted=linear - best, quadratic=quadratic - best, in_sample=in_sample - best)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", help="an Online Retail II CSV (as bench/real_accuracy.sh reads it)")
    ap.add_argument("--cdnow", help="CDNOW's transaction file: run its tasks instead")
    ap.add_argument("--tasks", default="", help="task ids or groups, comma-separated (default: the default run)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default="", help="write the per-task figures here")
    args = ap.parse_args()
    if bool(args.csv) == bool(args.cdnow):
        ap.error("give exactly one of --csv and --cdnow")
    if args.folds < 2:
        ap.error("--folds must be at least 2")
    table, csv_path = TASKS, args.csv
    if args.cdnow:
        work = os.path.join("out", "real_accuracy_ceiling")
        os.makedirs(work, exist_ok=True)
        table, csv_path = CDNOW_TASKS, cdnow_to_csv(args.cdnow, work)
    tasks = [t for t in resolve_tasks(table, [w for w in args.tasks.split(",") if w]) if t["kind"] != "revenue"]
    raw = Raw(csv_path)
    rows = []
    print(f"{'task':30}{'users':>7}{'best AUC':>10}{'cross-fitted':>14}{'quadratic':>11}{'in-sample':>11}  (minus the best baseline)")
    for task in tasks:
        r = one_task(raw, task, args.folds, args.seed)
        rows.append(r)
        print(f"{r['id']:30}{r['users']:>7}{r['best_baseline_auc']:>10.4f}{r['cross_fitted']:>+14.4f}"
              f"{r['quadratic']:>+11.4f}{r['in_sample']:>+11.4f}", flush=True)
    for key in ("cross_fitted", "quadratic", "in_sample"):
        gaps = np.array([r[key] for r in rows])
        print(f"{key:>13}: mean {gaps.mean():+.4f}, at least +0.01 on {int(np.sum(gaps >= 0.01))} of {len(gaps)} tasks")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(folds=args.folds, seed=args.seed, tasks=rows), f, indent=1)


if __name__ == "__main__":
    main()
