"""The baselines and the measures of bench/real_accuracy.py (docs/BENCHMARKS.md).

BG/NBD and Gamma-Gamma fitted by maximum likelihood (Fader, Hardie & Lee 2005), the
recency-frequency regressions (RF-LR, RF-linear), and the metrics every model is judged
on: AUC, PR AUC, log loss, ECE and its floor, the revenue measures, and the paired
bootstrap of a difference over users. Pure functions of numpy arrays: the task logic, the
raw file and sibyl stay in real_accuracy.py.
"""
import numpy as np
from scipy import optimize, special, stats


# ---------------------------------------------------------------------------- BG/NBD, Gamma-Gamma
def bgnbd_ll(params, x, tx, T):
    r, alpha, a, b = np.exp(params)
    common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    lb = special.betaln(a, b)
    t1 = special.betaln(a, b + x) - lb - (r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        t2 = np.where(x > 0, special.betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - lb - (r + x) * np.log(alpha + tx),
                      -np.inf)
    return common + np.logaddexp(t1, t2)


def fit_log_params(log_likelihood, starts, x, tx, T):
    """Maximum likelihood over log-parameters: Nelder-Mead, then L-BFGS-B from where it
    stopped, from each start; the best result (scipy's OptimizeResult)."""
    def nll(p):
        with np.errstate(all="ignore"):
            v = -log_likelihood(p, x, tx, T).sum()
        return v if np.isfinite(v) else 1e300
    best = None
    for start in starts:
        res = optimize.minimize(nll, np.array(start), method="Nelder-Mead",
                                options={"maxiter": 20000, "xatol": 1e-8, "fatol": 1e-8})
        res = optimize.minimize(nll, np.clip(res.x, -25, 25), method="L-BFGS-B", bounds=[(-25, 25)] * len(start))
        if best is None or res.fun < best.fun:
            best = res
    return best


def fit_bgnbd(x, tx, T):
    best = fit_log_params(bgnbd_ll, ([0.0, 0.0, 0.0, 0.0], [np.log(0.5), np.log(10.0), np.log(0.5), np.log(2.0)]),
                          x, tx, T)
    r, alpha, a, b = np.exp(best.x)
    return dict(r=r, alpha=alpha, a=a, b=b, nll=float(best.fun), converged=bool(best.success))


def bgnbd_p_alive(p, x, tx, T):
    r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(x > 0, (a / np.maximum(b + x - 1, 1e-12)) * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + tx))), 0.0)
    return 1.0 / (1.0 + ratio)


def bgnbd_p_buy(p, x, tx, T, H):
    r, alpha = p["r"], p["alpha"]
    return bgnbd_p_alive(p, x, tx, T) * (1.0 - ((alpha + T) / (alpha + T + H)) ** (r + x))


def bgnbd_expected(p, x, tx, T, H):
    r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
    z = H / (alpha + T + H)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    num = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + H)) ** (r + x) * hyp)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        den = 1 + np.where(x > 0, (a / np.maximum(b + x - 1, 1e-12)) * ((alpha + T) / (alpha + tx)) ** (r + x), 0.0)
    return num / den


def fit_gamma_gamma(x, m):
    sel = (x > 0) & (m > 0)
    x, m = x[sel], m[sel]

    def nll(params):
        p, q, g = np.exp(params)
        ll = (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * np.log(g)
              + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(g + m * x))
        v = -ll.sum()
        return v if np.isfinite(v) else 1e300
    res = optimize.minimize(nll, np.array([0.0, 0.0, 0.0]), method="Nelder-Mead",
                            options={"maxiter": 20000, "xatol": 1e-8, "fatol": 1e-8})
    res = optimize.minimize(nll, np.clip(res.x, -25, 25), method="L-BFGS-B", bounds=[(-25, 25)] * 3)
    p, q, g = np.exp(res.x)
    return dict(p=p, q=q, gamma=g, users=int(sel.sum()), nll=float(res.fun), converged=bool(res.success))


def gg_expected_spend(gg, x, m):
    p, q, g = gg["p"], gg["q"], gg["gamma"]
    pop = p * g / (q - 1) if q > 1 else float(np.mean(m[m > 0]))
    cond = (g + m * x) * p / (p * x + q - 1)
    return np.where((x > 0) & (m > 0), cond, pop)


# ---------------------------------------------------------------------------- Pareto/NBD (a reference)
# Schmittlein, Morrison & Colombo (1987): purchases at rate lambda ~ Gamma(r, alpha) while
# alive, a lifetime ~ Exponential(mu), mu ~ Gamma(s, beta); unlike BG/NBD a customer may
# drop out at any time, so a one-time buyer's P(alive) falls with age. Not one of the
# protocol's baselines (EVALUATION.md): bench/pareto_nbd_check.py compares it with BG/NBD.
# The one integral left, over the time of death in [t_x, T], is taken by Gauss-Legendre
# quadrature rather than through the Gaussian hypergeometric function (Fader & Hardie's
# closed form; the two agree to 1e-13, checked by the script's --self-check), which loses precision
# near z = 1.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(48)


def pnbd_terms(params, x, tx, T):
    """log P(data, alive at T) and the whole log-likelihood log P(data), per customer."""
    r, alpha, s, beta = np.exp(params)
    c = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    alive = c - (r + x) * np.log(alpha + T) + s * (np.log(beta) - np.log(beta + T))
    half, mid = (T - tx) / 2, (T + tx) / 2
    tau = mid[:, None] + half[:, None] * _GL_X[None, :]
    log_f = -(r + x)[:, None] * np.log(alpha + tau) + np.log(s) + s * np.log(beta) - (s + 1) * np.log(beta + tau)
    top = log_f.max(axis=1)
    with np.errstate(divide="ignore"):
        integral = np.log((np.exp(log_f - top[:, None]) * _GL_W[None, :]).sum(axis=1) * half) + top
    return alive, np.logaddexp(alive, c + np.where(T > tx, integral, -np.inf))


def pnbd_ll(params, x, tx, T):
    return pnbd_terms(params, x, tx, T)[1]


def fit_pnbd(x, tx, T):
    best = fit_log_params(pnbd_ll, ([0.0, 0.0, 0.0, 0.0], [np.log(0.5), np.log(10.0), np.log(0.5), np.log(10.0)],
                                    [np.log(0.5), np.log(50.0), np.log(1.0), np.log(200.0)]), x, tx, T)
    r, alpha, s, beta = np.exp(best.x)
    return dict(r=r, alpha=alpha, s=s, beta=beta, nll=float(best.fun), converged=bool(best.success))


def pnbd_p_buy(p, x, tx, T, H):
    """P(at least one purchase in (T, T+H]) and P(alive at T). Given alive at T the posterior
    of (lambda, mu) is Gamma(r+x, alpha+T) x Gamma(s, beta+T), independent, so P(no purchase
    in H | alive) = E[e^-(lambda+mu)H] + integral over 0..H of E[mu e^-mu tau] E[e^-lambda tau]."""
    r, alpha, s, beta = p["r"], p["alpha"], p["s"], p["beta"]
    with np.errstate(all="ignore"):
        alive, whole = pnbd_terms(np.log([r, alpha, s, beta]), x, tx, T)
        p_alive = np.exp(alive - whole)
    a, b = alpha + T, beta + T
    survive_quiet = (a / (a + H)) ** (r + x) * (b / (b + H)) ** s
    tau = H / 2 + H / 2 * _GL_X
    die_quiet = (s * b[:, None] ** s * (b[:, None] + tau[None, :]) ** (-(s + 1))
                 * (a[:, None] / (a[:, None] + tau[None, :])) ** (r + x)[:, None] * _GL_W[None, :]).sum(axis=1) * H / 2
    return p_alive * (1 - survive_quiet - die_quiet), p_alive


# ---------------------------------------------------------------------------- RF-LR
def standardise(F, mu=None, sd=None):
    if mu is None:
        mu, sd = F.mean(0), F.std(0)
        sd[sd == 0] = 1.0
    return (F - mu) / sd, mu, sd


def fit_logistic(X, y, l2=1.0):
    X1 = np.hstack([np.ones((len(X), 1)), X])
    w = np.zeros(X1.shape[1])
    pen = np.full(X1.shape[1], l2); pen[0] = 0.0
    for _ in range(100):
        p = special.expit(X1 @ w)
        g = X1.T @ (p - y) + pen * w
        Hm = (X1 * (p * (1 - p))[:, None]).T @ X1 + np.diag(pen) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(Hm, g)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def fit_ridge(X, y, l2=1.0):
    X1 = np.hstack([np.ones((len(X), 1)), X])
    pen = np.full(X1.shape[1], l2); pen[0] = 0.0
    return np.linalg.solve(X1.T @ X1 + np.diag(pen), X1.T @ y)


def apply1(X, w):
    return np.hstack([np.ones((len(X), 1)), X]) @ w


# ---------------------------------------------------------------------------- metrics
def roc_auc(y, s):
    pos = y > 0.5
    n1, n0 = pos.sum(), (~pos).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    rk = stats.rankdata(s)
    return float((rk[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def pr_auc(y, s):
    """Average precision (step-wise, ties grouped), as sklearn's average_precision_score."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    P = y.sum()
    if P == 0:
        return float("nan")
    prec = tp / (tp + fp)
    rec = tp / P
    return float(np.sum(np.diff(np.r_[0.0, rec]) * prec))


def ece_of(y, p):
    bins = np.minimum((np.clip(p, 0, 1) * 10).astype(int), 9)
    ece = 0.0
    for b in range(10):
        m = bins == b
        if m.any():
            ece += m.sum() / len(p) * abs(p[m].mean() - y[m].mean())
    return float(ece)


def at_base_rate(y, p):
    """The scores with one log-odds shift c chosen so that their mean equals the realised
    rate (Newton on the mean). A DIAGNOSTIC that reads the labels: what the ECE would be if
    the base rate at T had been known. The difference to the plain ECE is the shift in the
    base rate between the training cutoff and T, which no feature before T shows; the rest
    is the shape of the calibration."""
    lp = np.log(np.clip(p, 1e-9, 1 - 1e-9)) - np.log(np.clip(1 - p, 1e-9, 1 - 1e-9))
    c = 0.0
    for _ in range(50):
        q = special.expit(lp + c)
        step = (q.mean() - y.mean()) / max((q * (1 - q)).mean(), 1e-12)
        c -= step
        if abs(step) < 1e-12:
            break
    return special.expit(lp + c), c


def ece_floor(p, draws=200, seed=16):
    """The ECE a perfectly calibrated model with these scores shows on this many users:
    labels drawn as Bernoulli(p), `draws` times (mean and 90th percentile). Ten bins over a
    few hundred users hold a few dozen each, so the estimate has a floor of its own; an
    ECE near it cannot tell calibrated from not (a cohort of ~400 users sits near 0.04)."""
    rng = np.random.default_rng(seed)
    e = np.array([ece_of(rng.binomial(1, p).astype(float), p) for _ in range(draws)])
    return dict(mean=float(e.mean()), q90=float(np.quantile(e, 0.9)), draws=draws)


def classification_metrics(y, p):
    pc = np.clip(p, 1e-15, 1 - 1e-15)
    shifted, c = at_base_rate(y, p)
    return dict(auc=roc_auc(y, p), pr_auc=pr_auc(y, p),
                log_loss=float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))),
                brier=float(np.mean((p - y) ** 2)), ece=ece_of(y, p),
                ece_at_base_rate=ece_of(y, shifted), base_rate_shift_logit=float(c),
                mean_score=float(p.mean()), base_rate=float(y.mean()))


def top_share(y, p, q=0.1):
    """Share of the realised amount held by the q of users with the highest predictions (the
    top decile a team would target). Users tied at the cut count pro rata, so a tie is worth
    what a random order inside it would give, never more."""
    k = q * len(p)
    if k <= 0 or y.sum() <= 0:
        return float("nan")
    v = np.sort(p)[::-1][min(int(np.ceil(k)) - 1, len(p) - 1)]
    above, at = p > v, p == v
    return float((y[above].sum() + (k - above.sum()) / at.sum() * y[at].sum()) / y.sum())


def revenue_metrics(y, p):
    """Spearman over every user is the issue's ranking measure, but with most actuals tied at
    0 it rewards predictions tied where the actuals tie: clipping RF-linear at 0 ties about
    half of CDNOW's users and lifts its Spearman by 0.02-0.03 over the same model unclipped
    (docs/BENCHMARKS.md, "Session 24"). So two measures that ties cannot move are reported
    beside it: Spearman among the users who bought (how well the amounts are ordered) and the
    top decile's share of the realised amount."""
    buyers = y > 0
    order = np.argsort(p, kind="mergesort")
    # The Poisson deviance is the loss sibyl chooses its amount models on (docs/ML.md); a
    # prediction below a cent counts as a cent, so a baseline clipped at 0 stays finite.
    floor = np.maximum(p, 0.01)
    deviance = 2 * np.where(buyers, y * np.log(np.where(buyers, y, 1) / floor), 0) - 2 * (y - floor)
    deciles = []
    for chunk in np.array_split(order, 10):
        deciles.append(dict(users=int(len(chunk)), mean_pred=float(p[chunk].mean()), mean_actual=float(y[chunk].mean())))
    return dict(spearman=float(stats.spearmanr(p, y).correlation), mae=float(np.mean(np.abs(p - y))),
                rmse=float(np.sqrt(np.mean((p - y) ** 2))), mean_pred=float(p.mean()), mean_actual=float(y.mean()),
                auc_any_revenue=roc_auc((y > 0).astype(float), p),
                spearman_buyers=float(stats.spearmanr(p[buyers], y[buyers]).correlation) if buyers.sum() > 2 else float("nan"),
                top_decile_share=top_share(y, p), poisson_deviance=float(deviance.mean()), deciles=deciles)


def paired_bootstrap(y, s, others, fn, n=1000, seed=16):
    """95% interval of fn(sibyl) - fn(other) over n resamples of users (the same resample for all)."""
    rng = np.random.default_rng(seed)
    diffs = {k: [] for k in others}
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        yb = y[idx]
        a = fn(yb, s[idx])
        for k, o in others.items():
            diffs[k].append(a - fn(yb, o[idx]))
    out = {}
    for k, d in diffs.items():
        d = np.array(d)
        d = d[np.isfinite(d)]
        out[k] = dict(lo=float(np.percentile(d, 2.5)), hi=float(np.percentile(d, 97.5)), mean=float(d.mean()),
                      resamples=int(len(d)))
    return out
