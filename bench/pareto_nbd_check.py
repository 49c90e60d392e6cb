#!/usr/bin/env python3
"""Does Pareto/NBD earn its place beside BG/NBD? (issue 16: "BG/NBD, and Pareto/NBD if it
earns its place"; docs/BENCHMARKS.md, "Session 28").

On the tasks of bench/real_accuracy.py (the same cohorts and labels from the raw file, the
same fit population: every purchaser before T, on purchase days), fits BG/NBD and
Pareto/NBD (bench/real_accuracy_models.py) and prints each one's AUC and log loss of
P(outcome within H) and their difference. No sibyl run: this asks whether the classic
model sibyl builds on should be the other classic model.

  bench/pareto_nbd_check.py --self-check            (recovery and closed-form check on simulated buyers)
  bench/pareto_nbd_check.py                         (Online Retail II, issue 16's 15 tasks)
  bench/pareto_nbd_check.py --cdnow CDNOW_sample.txt (CDNOW's 13 default tasks)

Python with numpy and scipy (scripts/install_deps.sh installs them).
"""
import argparse
import os
import sys
import tempfile

import numpy as np
from scipy import special

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import real_accuracy as ra  # noqa: E402
from real_accuracy_models import (bgnbd_p_buy, classification_metrics, fit_bgnbd, fit_pnbd,  # noqa: E402
                                  pnbd_ll, pnbd_p_buy)

DEFAULT_TASKS = "buy_30d,buy_90d,churn_90d,churn_30d,big_line_30d,buy_30d_sweep"


def closed_form_ll(r, alpha, s, beta, x, tx, T):
    """Fader & Hardie's (2005) Pareto/NBD log-likelihood through the Gaussian hypergeometric function."""
    c = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    first = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    if alpha >= beta:
        a1, b1, big = r + s + x, s + 1, alpha
        z = lambda t: (alpha - beta) / (alpha + t)  # noqa: E731
    else:
        a1, b1, big = r + s + x, r + x, beta
        z = lambda t: (beta - alpha) / (beta + t)  # noqa: E731
    A0 = (special.hyp2f1(a1, b1, a1 + 1, z(tx)) / (big + tx) ** a1
          - special.hyp2f1(a1, b1, a1 + 1, z(T)) / (big + T) ** a1)
    return c + np.log(np.exp(first) + s / (r + s + x) * A0)


def self_check():
    rng = np.random.default_rng(3)
    n, r, alpha, s, beta, end, H = 20000, 0.55, 10.5, 0.6, 12.0, 270.0, 30.0
    lam, mu = rng.gamma(r, 1 / alpha, n), rng.gamma(s, 1 / beta, n)
    age = end - rng.uniform(0, 90, n)
    life = rng.exponential(1 / mu)
    x, tx, y = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t, last, count = 0.0, 0.0, 0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > min(age[i], life[i]):
                break
            count, last = count + 1, t
        x[i], tx[i] = count, last
        if life[i] > age[i]:  # memoryless: the next purchase after T, before the end of life or H
            y[i] = rng.exponential(1 / lam[i]) < min(H, life[i] - age[i])
    ours = pnbd_ll(np.log([r, alpha, s, beta]), x[:200], tx[:200], age[:200])
    closed = closed_form_ll(r, alpha, s, beta, x[:200], tx[:200], age[:200])
    worst = float(np.max(np.abs(ours - closed)))
    fit = fit_pnbd(x, tx, age)
    p, alive = pnbd_p_buy(fit, x, tx, age, H)
    print(f"log-likelihood vs the closed form: largest difference {worst:.2e} over 200 customers")
    print(f"fitted r {fit['r']:.3f} alpha {fit['alpha']:.2f} s {fit['s']:.3f} beta {fit['beta']:.2f} "
          f"(true {r}, {alpha}, {s}, {beta})")
    print(f"mean P(buy within {H:g} d) {p.mean():.4f}, realised {y.mean():.4f}; "
          f"mean P(alive) {alive.mean():.4f}, true share alive {(life > age).mean():.4f}")
    ok = worst < 1e-6 and abs(p.mean() - y.mean()) < 0.005 and abs(fit["r"] - r) < 0.1 and abs(fit["s"] - s) < 0.15
    print("self-check", "passed" if ok else "FAILED")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cdnow", default="", help="CDNOW's transaction file: its 13 default tasks")
    ap.add_argument("--tasks", default="", help=f"task ids or groups (default Online Retail: {DEFAULT_TASKS})")
    ap.add_argument("--self-check", action="store_true", help="check the model on simulated Pareto/NBD buyers")
    args = ap.parse_args()
    if args.self_check:
        return self_check()
    if args.cdnow:
        csv, table = ra.cdnow_to_csv(args.cdnow, tempfile.mkdtemp(prefix="pnbd_")), ra.CDNOW_TASKS
    else:
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
        csv, table = os.path.join(root, "online_retail_ii", "online_retail_ii_2009_2010.csv.gz"), ra.TASKS
    wanted = [t for t in (args.tasks or ("" if args.cdnow else DEFAULT_TASKS)).split(",") if t]
    tasks = [t for t in ra.select_tasks(table, wanted) if t["kind"] != "revenue"]
    raw = ra.Raw(csv)
    diffs = []
    for task in tasks:
        T, H, kind = ra.utc(task["T"]), task["H"], task["kind"]
        out = raw.only(task["line_filter"]) if task.get("line_filter") else raw
        users = raw.cohort(T, task["cohort_days"])
        y = out.label(users, T, H, kind)
        fx, ftx, fage, _ = out.rfm_days(raw.cohort(T), T)
        bg, pn = fit_bgnbd(fx, ftx, fage), fit_pnbd(fx, ftx, fage)
        x, tx, age, _ = out.rfm_days(users, T)
        p_bg = bgnbd_p_buy(bg, x, tx, age, H)
        p_pn = np.clip(pnbd_p_buy(pn, x, tx, age, H)[0], 1e-9, 1 - 1e-9)
        if kind == "churn":
            p_bg, p_pn = 1 - p_bg, 1 - p_pn
        mb, mp = classification_metrics(y, p_bg), classification_metrics(y, p_pn)
        diffs.append((mp["auc"] - mb["auc"], mp["log_loss"] - mb["log_loss"]))
        print(f"{task['id']:28s} {len(users):5d} users  BG/NBD AUC {mb['auc']:.4f} log loss {mb['log_loss']:.4f}  "
              f"Pareto/NBD {mp['auc']:.4f} {mp['log_loss']:.4f} (r {pn['r']:.3f} alpha {pn['alpha']:.1f} "
              f"s {pn['s']:.3f} beta {pn['beta']:.3g})  difference {diffs[-1][0]:+.4f} {diffs[-1][1]:+.4f}", flush=True)
    d = np.array(diffs)
    se = d.std(axis=0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.zeros(2)
    print(f"Pareto/NBD - BG/NBD over {len(d)} tasks: AUC {d[:, 0].mean():+.4f} (se {se[0]:.4f}), "
          f"log loss {d[:, 1].mean():+.4f} (se {se[1]:.4f}); AUC higher on {int((d[:, 0] > 0).sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
