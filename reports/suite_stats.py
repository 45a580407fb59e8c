"""The numbers behind "which family wins across datasets": average ranks, the Friedman test (and
autorank's choice of omnibus and post-hoc test), the Bayesian signed-rank test per pair, win / tie /
loss counts from each dataset's own paired tests, and the first sentence of the suite report.

Why these: one dataset is one data point; across datasets the settled methods are Demšar (2006):
rank the entries on each dataset, test the average ranks (Friedman, then a post-hoc test, drawn as a
critical-difference diagram), and Benavoli et al. (2017): a Bayesian signed-rank test with a region
of practical equivalence (ROPE), which says how probable "better", "practically equal" and "worse"
are instead of only rejecting "equal". The libraries do the arithmetic: scipy, autorank, baycomp.
``scores`` is always a frame of mean test accuracy, one row per dataset, one column per entry
(families and the baseline), higher is better.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

MIN_DATASETS = 5  # Demšar (2006): fewer datasets give the rank tests too little power; autorank refuses
ALPHA = 0.05


def average_ranks(scores: pd.DataFrame) -> pd.Series:
    """Mean rank of each entry over the datasets (1 = best on a dataset, ties share the mean rank)."""
    ranks = scores.apply(lambda row: pd.Series(sps.rankdata(-row.to_numpy()), index=row.index), axis=1)
    return ranks.mean().sort_values(kind="stable")


def friedman(scores: pd.DataFrame) -> tuple[float, float] | None:
    """Friedman's chi-square and its p-value (scipy), or None with fewer than 3 entries or 2 datasets."""
    if scores.shape[1] < 3 or scores.shape[0] < 2:
        return None
    result = sps.friedmanchisquare(*[scores[c].to_numpy() for c in scores.columns])
    return float(result.statistic), float(result.pvalue)


def rank_test(scores: pd.DataFrame, alpha: float = ALPHA, force_mode: str | None = None):
    """autorank's result (its choice of omnibus and post-hoc test from normality and variance checks;
    ``force_mode="nonparametric"``: Friedman + Nemenyi, whose result autorank draws as a critical-
    difference diagram), or None with fewer than ``MIN_DATASETS`` datasets or 2 entries."""
    if scores.shape[0] < MIN_DATASETS or scores.shape[1] < 2:
        return None
    import autorank

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # autorank prints notes
        warnings.simplefilter("ignore")
        return autorank.autorank(
            scores, alpha=alpha, verbose=False, order="descending", random_state=0, force_mode=force_mode
        )


def bayes_pair(a: np.ndarray, b: np.ndarray, rope: float) -> tuple[float, float, float]:
    """(P(a better), P(practically equal), P(b better)) from baycomp's Bayesian signed-rank test;
    ``rope`` in accuracy (0.01 = 1 point)."""
    import baycomp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        left, equal, right = baycomp.two_on_multiple(np.asarray(a, float), np.asarray(b, float), rope=rope)
    return float(left), float(equal), float(right)


def bayes_pairs(scores: pd.DataFrame, rope: float, order: list[str]) -> pd.DataFrame:
    """Every pair of entries (``order``: best average rank first, so ``a`` is the better-ranked one)."""
    rows = []
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            if len(scores) < 2:
                p = (math.nan,) * 3
            else:
                p = bayes_pair(scores[a].to_numpy(), scores[b].to_numpy(), rope)
            rows.append({"a": a, "b": b, "p_a_better": p[0], "p_equal": p[1], "p_b_better": p[2]})
    return pd.DataFrame(rows, columns=["a", "b", "p_a_better", "p_equal", "p_b_better"])


def win_tie_loss(pairs: dict[str, pd.DataFrame], a: str, b: str) -> tuple[int, int, int]:
    """On how many datasets ``a`` beats ``b`` / neither is significantly ahead / ``b`` beats ``a``,
    from each dataset's own paired test (Holm within the dataset: ``stats.pairwise``)."""
    win = tie = loss = 0
    for frame in pairs.values():
        row = frame[((frame.a == a) & (frame.b == b)) | ((frame.a == b) & (frame.b == a))]
        if row.empty or not bool(row["significant"].iloc[0]):
            tie += 1
        elif row["a"].iloc[0] == a:
            win += 1
        else:
            loss += 1
    return win, tie, loss


def ahead_count(scores: pd.DataFrame, a: str, b: str) -> int:
    """Datasets on which ``a``'s mean test accuracy is above ``b``'s."""
    return int((scores[a] > scores[b]).sum())


def points(rope: float) -> str:
    """0.01 -> "1 accuracy point", 0.005 -> "0.5 accuracy points"."""
    return f"{rope * 100:g} accuracy point{'' if rope == 0.01 else 's'}"


def headline(
    scores: pd.DataFrame,
    ranks: pd.Series,
    bayes: pd.DataFrame,
    rope: float,
    families: list[str],
    test: dict[str, Any] | None,
) -> str:
    """The first sentence: the cross-dataset answer and how sure it is (or what cannot be concluded)."""
    n = len(scores)
    first = ranks.index[0] if ranks.index[0] in families else f"the {ranks.index[0]} baseline"
    parts = [f"Across {n} dataset{'s' if n != 1 else ''} {first} ranks first (mean rank {ranks.iloc[0]:.1f})"]
    fams = [f for f in ranks.index if f in families]
    if len(fams) >= 2:
        a, b = fams[0], fams[1]
        row = bayes[((bayes.a == a) & (bayes.b == b))]
        ahead = ahead_count(scores, a, b)
        prob = (
            f" (P({a} better) = {row['p_a_better'].iloc[0]:.2f}, P(practically equal) = "
            f"{row['p_equal'].iloc[0]:.2f}, ROPE {points(rope)})"
            if len(row) and not math.isnan(row["p_a_better"].iloc[0])
            else ""
        )
        parts.append(f"{a} ranks ahead of {b} on {ahead} of {n}{prob}")
    if n < MIN_DATASETS:
        parts.append(
            f"with only {n} dataset{'s' if n != 1 else ''} the rank tests cannot establish a general "
            f"winner (Demšar recommends at least {MIN_DATASETS}): this says which family won on these "
            "datasets, not on data like them"
        )
    elif test is not None:
        verdict = "significant" if test["p"] < ALPHA else "not significant"
        parts.append(f"the rank test is {verdict} ({test['name']} p = {test['p']:.3g})")
    return "; ".join(parts) + "."
