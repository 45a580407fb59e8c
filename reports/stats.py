"""How sure are we: confidence intervals, paired comparisons on the shared test set, the verdict.

The protocol: per family, the *chosen* configuration is the final-stage config (rank) with the
highest mean validation accuracy over seeds (test is never used to select). Every family is
tested on the same examples, so families are compared with a paired, hierarchical bootstrap
(``paired_difference``: seeds, then test examples) that counts both sources of noise, and the
p-values are Holm-corrected across the comparisons made. Welch's t-test on the seed means is kept
as a secondary, seed-level check. A family is "at chance" when its accuracy is not shown above
the majority-class rate of the test split (``chance``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from textbench.core.durations import format_duration
from textbench.core.finetune import parameters_text

ALPHA = 0.05
CONFIDENCE = 0.95
N_BOOT = 4000
MIN_SEEDS = 3  # fewer seeds a side: the seed-to-seed spread is not estimated well enough to conclude on it


@dataclass(frozen=True)
class Comparison:
    """Mean of ``a`` minus mean of ``b``, its CI and Welch p-value (NaN when not testable)."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    dof: float
    n_a: int
    n_b: int

    @property
    def testable(self) -> bool:
        return not math.isnan(self.p_value)

    @property
    def significant(self) -> bool:
        return self.testable and self.p_value < ALPHA


@dataclass(frozen=True)
class Paired:
    """Accuracy of ``a`` minus accuracy of ``b`` on the same test examples: bootstrap CI and p-value."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_seeds_a: int
    n_seeds_b: int
    n_examples: int
    at_floor: bool = False  # no draw crossed zero: p is the smallest the draws can give, an upper bound


def correct_matrix(predictions, labels) -> np.ndarray:
    """(seeds x examples) 0/1 matrix: 1 where a run predicted the example's label."""
    preds = np.atleast_2d(np.asarray(predictions))
    labels = np.asarray(labels)
    if preds.shape[1] != len(labels):
        raise ValueError(f"predictions cover {preds.shape[1]} examples, labels {len(labels)}")
    return (preds == labels[None, :]).astype(float)


def paired_difference(
    pred_a, pred_b, labels, *, seed: int = 0, n_boot: int = N_BOOT, confidence: float = CONFIDENCE
) -> Paired:
    """Hierarchical paired bootstrap of accuracy(a) - accuracy(b) on one shared test set.

    ``pred_a`` and ``pred_b`` are (seeds x examples) predicted labels (one row per final-stage
    seed; a deterministic model such as the baseline is one row). Each bootstrap draw resamples
    each side's seeds with replacement, independently (two families' seeds share nothing that
    makes their runs comparable), then resamples the test examples with replacement, the *same*
    examples for both sides, which keeps the pairing: an example hard for both costs neither.
    The CI is the percentile interval; the two-sided p-value is twice the smaller tail of the
    draws beyond zero, with the usual +1 so it is never exactly 0. Identical, seed-free
    predictions give a difference of 0, an interval of [0, 0] and p = 1.
    """
    ca, cb = correct_matrix(pred_a, labels), correct_matrix(pred_b, labels)
    sa, sb, n = ca.shape[0], cb.shape[0], ca.shape[1]
    if n == 0:
        raise ValueError("no test examples to compare on")
    # Resampling examples only moves weight between *kinds* of example: the column of right/wrong
    # over every run of both sides. Drawing how many of each kind (a multinomial) is the same
    # bootstrap as drawing examples, at a cost set by the few kinds, not the 25,000 examples.
    kinds, counts = np.unique(np.vstack([ca, cb]), axis=1, return_counts=True)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    chunk = max(1, min(n_boot, 2_000_000 // kinds.shape[1]))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        weights = rng.multinomial(n, counts / n, size=b)  # (b x kinds): examples of each kind drawn
        per_seed = weights @ kinds.T / n  # (b x runs): each run's accuracy on the resampled examples
        pick_a = rng.integers(0, sa, size=(b, sa))
        pick_b = rng.integers(0, sb, size=(b, sb)) + sa
        draws[start : start + b] = np.take_along_axis(per_seed, pick_a, 1).mean(1) - np.take_along_axis(
            per_seed, pick_b, 1
        ).mean(1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    below, above = (draws <= 0).sum(), (draws >= 0).sum()
    p = min(1.0, 2 * (min(below, above) + 1) / (n_boot + 1))
    return Paired(
        float(ca.mean() - cb.mean()),
        float(low),
        float(high),
        float(p),
        sa,
        sb,
        n,
        at_floor=bool(min(below, above) == 0),
    )


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down correction: (reject, adjusted p) in the input order (statsmodels)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    reject, adjusted, _, _ = multipletests(p, alpha=alpha, method="holm")
    return reject, adjusted


def majority_rate(labels) -> float:
    """Accuracy of always predicting the most frequent class of ``labels``: the chance level."""
    labels = np.asarray(labels)
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else math.nan


def chance(predictions, labels, ci_low: float = math.nan) -> tuple[float, float, bool]:
    """(majority rate, one-sided exact binomial p, at chance?) for one configuration's test runs.

    The pooled count of correct predictions over all seeds is tested against the majority-class
    rate (``scipy.stats.binomtest``, alternative "greater"); the configuration is at chance when
    that test does not reject at ``ALPHA``, or when the seed-level CI's lower end (if given)
    does not clear the rate.
    """
    correct = correct_matrix(predictions, labels)
    rate = majority_rate(labels)
    k, n = int(correct.sum()), int(correct.size)
    p = float(sps.binomtest(k, n, min(rate, 1.0), alternative="greater").pvalue) if rate < 1 else 1.0
    at_chance = p >= ALPHA or (not math.isnan(ci_low) and ci_low <= rate)
    return rate, p, at_chance


def expected_max(values: Sequence[float], n: int) -> tuple[float, float]:
    """Expected best of ``n`` draws (with replacement) from ``values`` and its standard deviation.

    Dodge et al. 2019, "Show Your Work": with the N observed values sorted, v_(1) <= ... <= v_(N),
    P(max = v_(i)) = (i/N)^n - ((i-1)/N)^n, so E[max] = sum_i v_(i) [(i/N)^n - ((i-1)/N)^n];
    the variance uses the same weights.
    """
    v = np.sort(np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float))
    if v.size == 0 or n < 1:
        return math.nan, math.nan
    w = (np.arange(1, v.size + 1) / v.size) ** n - (np.arange(v.size) / v.size) ** n
    mean = float(w @ v)
    return mean, float(math.sqrt(max(w @ (v - mean) ** 2, 0.0)))


def mean_ci(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float, int, float, float]:
    """(mean, std, n, ci_low, ci_high) with a Student-t interval; std and CI are NaN when n < 2."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, 1, math.nan, math.nan
    std = float(x.std(ddof=1))
    if std <= 1e-12 * max(1.0, abs(mean)):  # all seeds scored the same: no spread to build an interval on
        return mean, 0.0, n, math.nan, math.nan
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, n, mean - half, mean + half


def summarize(
    final: pd.DataFrame,
    by: str | Sequence[str] = "family",
    value: str = "test_accuracy",
    bounds: tuple[float, float] = (0.0, 1.0),
) -> pd.DataFrame:
    """Per group of ``by``: mean, std, n, ci_low, ci_high of ``value`` (95% t interval).

    The interval is clipped to ``bounds``, the range of an accuracy: with 3 seeds a t interval
    around 0.99 easily reaches past 1, which no accuracy can.
    """
    keys = [by] if isinstance(by, str) else list(by)
    rows = []
    for key, group in final.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        mean, std, n, lo, hi = mean_ci(group[value].tolist())
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])  # NaN (one seed) stays NaN
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "mean": mean,
                "std": std,
                "n": n,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return pd.DataFrame(rows, columns=[*keys, "mean", "std", "n", "ci_low", "ci_high"])


def compare(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """Welch's t-test of mean(a) - mean(b); p and CI are NaN with < 2 values a side or no spread."""
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(xa.mean() - xb.mean()) if len(xa) and len(xb) else math.nan
    nan = Comparison(diff, math.nan, math.nan, math.nan, math.nan, len(xa), len(xb))
    if len(xa) < 2 or len(xb) < 2 or (xa.var(ddof=1) + xb.var(ddof=1)) <= 1e-20:
        return nan
    # Welch by its formulas: scipy's ttest_ind warns of precision loss when one side's seeds are tied
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
    p = float(2 * sps.t.sf(abs(diff) / se, dof))
    half = float(sps.t.ppf(0.5 + confidence / 2, dof)) * se
    return Comparison(diff, diff - half, diff + half, p, float(dof), len(xa), len(xb))


def choose(final: pd.DataFrame) -> pd.DataFrame:
    """Final-stage rows of each family's chosen rank: best mean validation accuracy, ties to rank 1."""
    if final.empty:
        return final.copy()
    final = final[final["rank"].notna()]  # the course notes' reference outside the top-k is not a candidate
    means = final.groupby(["family", "rank"])["validation_accuracy"].mean().rename("val").reset_index()
    means = means.sort_values(["family", "val", "rank"], ascending=[True, False, True], kind="stable")
    picked = means.drop_duplicates("family")[["family", "rank"]]
    return final.merge(picked, on=["family", "rank"]).reset_index(drop=True)


def leaderboard(final: pd.DataFrame) -> pd.DataFrame:
    """One row per family's chosen config: test mean/std/n/CI and mean validation, best test first."""
    cols = ["family", "rank", "trial_number", "validation_mean", "mean", "std", "n", "ci_low", "ci_high"]
    chosen = choose(final)
    if chosen.empty:
        return pd.DataFrame(columns=cols)
    info = (
        chosen.groupby("family")
        .agg(
            rank=("rank", "first"),
            trial_number=("trial_number", "first"),
            validation_mean=("validation_accuracy", "mean"),
        )
        .reset_index()
    )
    board = info.merge(summarize(chosen), on="family")[cols]
    return board.sort_values(["mean", "family"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def fmt_acc(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.3f}"


def fmt_diff(x: float) -> str:
    """Signed, three decimals; four when it would otherwise print as a signed zero."""
    if x is None or math.isnan(x):
        return "n/a"
    return f"{x:+.4f}" if 0 < abs(x) < 0.0005 else f"{x:+.3f}"


def fmt_p(p: float, bound: Any = False) -> str:
    """``p < 0.001`` or three significant digits (so 0.0496 never reads as 0.05); ``p ≤ ...`` when
    ``p`` is only a bound (a bootstrap in which no draw crossed zero cannot give a smaller p)."""
    if p is None or math.isnan(p):
        return "n/a"
    bound = bound is True or (
        isinstance(bound, np.bool_) and bool(bound)
    )  # a missing flag (NaN) is not a bound
    return "p < 0.001" if p < 0.001 else f"p {'≤' if bound else '='} {p:.3g}"


def _names(families: Sequence[str]) -> str:
    return ", ".join(families[:-1]) + f" and {families[-1]}" if len(families) > 1 else "".join(families)


def _validation_verdict(done: pd.DataFrame, families: list[str], no_final: list[str]) -> str:
    best = done.groupby("family")["value"].max().sort_values(ascending=False)
    idle = [f for f in families if f not in best.index]
    idle_note = f"; {_names(idle)} completed no trial" if idle else ""
    which = "" if set(no_final) >= set(families) else f" for {_names(no_final)}"
    if len(best) < 2:
        return (
            f"Only {best.index[0]} completed any trial, so nothing can be compared: its best validation "
            f"accuracy is {fmt_acc(best.iloc[0])}{idle_note}."
        )
    return (
        f"No final evaluation was run{which}: ranking by validation only, {best.index[0]} leads with a best "
        f"validation accuracy of {fmt_acc(best.iloc[0])} vs {fmt_acc(best.iloc[1])} for {best.index[1]} "
        f"(best of each search, not a test result){idle_note}."
    )


def _chosen_predictions(chosen: pd.DataFrame, family: str, predictions: dict | None) -> np.ndarray | None:
    """(seeds x examples) test predictions of one family's chosen configuration, in seed order."""
    if not predictions:
        return None
    rows = chosen[chosen["family"] == family].sort_values("seed")
    keys = [(family, int(t), int(sd)) for t, sd in zip(rows["trial_number"], rows["seed"], strict=True)]
    if not keys or any(k not in predictions for k in keys):
        return None
    return np.stack([predictions[k] for k in keys])


RANKING_COLUMNS = [
    "name",
    "kind",
    "rank",
    "trial_number",
    "validation_mean",
    "mean",
    "std",
    "n",
    "ci_low",
    "ci_high",
    "chance_rate",
    "chance_p",
    "at_chance",
]


def ranking(
    final: pd.DataFrame,
    baseline: dict[str, Any] | None = None,
    predictions: dict | None = None,
    labels=None,
    finetune: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Every family's chosen configuration and the references (the baseline, the fine-tuned pretrained
    model: kind ``baseline`` / ``pretrained``), best mean test accuracy first.

    ``predictions`` maps (family, trial number, seed) to that final run's test predictions and
    ``labels`` are the test labels; with them each entry gets the majority-class rate, the exact
    binomial p-value against it and ``at_chance``. Without them those columns are empty. The
    fine-tuned reference has seeds like a family: its mean, spread and CI are over them.
    """
    board, chosen = leaderboard(final), choose(final)
    labels = None if labels is None else np.asarray(labels)
    rows = []
    for _, r in board.iterrows():
        row = {
            "name": r["family"],
            "kind": "family",
            **{
                c: r[c]
                for c in ("rank", "trial_number", "validation_mean", "mean", "std", "n", "ci_low", "ci_high")
            },
        }
        preds = _chosen_predictions(chosen, r["family"], predictions)
        rows.append(row | _chance_columns(preds, labels, row["ci_low"]))
    if baseline and baseline.get("test_accuracy") is not None:
        row = {
            "name": baseline.get("name", "baseline"),
            "kind": "baseline",
            "rank": None,
            "trial_number": None,
            "validation_mean": baseline.get("validation_accuracy"),
            "mean": float(baseline["test_accuracy"]),
            "std": math.nan,
            "n": 1,
            "ci_low": math.nan,
            "ci_high": math.nan,
        }
        preds = predictions.get(("baseline",)) if predictions else None
        rows.append(row | _chance_columns(None if preds is None else preds[None], labels, math.nan))
    if finetune and finetune.get("runs"):
        runs = pd.DataFrame(finetune["runs"]).assign(family=finetune["name"])
        spread = summarize(runs).iloc[0].drop("family").to_dict()
        row = {
            "name": finetune["name"],
            "kind": "pretrained",
            "rank": None,
            "trial_number": None,
            "validation_mean": float(runs["validation_accuracy"].mean()),
            **spread,
        }
        rows.append(
            row | _chance_columns(_finetune_predictions(finetune, predictions), labels, row["ci_low"])
        )
    out = pd.DataFrame(rows, columns=RANKING_COLUMNS)
    return out.sort_values(["mean", "name"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _chance_columns(preds: np.ndarray | None, labels: np.ndarray | None, ci_low: float) -> dict[str, Any]:
    if preds is None or labels is None or preds.shape[1] != len(labels):
        return {
            "chance_rate": majority_rate(labels) if labels is not None else math.nan,
            "chance_p": math.nan,
            "at_chance": None,
        }
    rate, p, at = chance(preds, labels, ci_low)
    return {"chance_rate": rate, "chance_p": p, "at_chance": at}


def _finetune_predictions(finetune: dict[str, Any], predictions: dict | None) -> np.ndarray | None:
    """(seeds x examples) test predictions of the fine-tuned reference, in seed order."""
    keys = [("finetune", int(r["seed"])) for r in sorted(finetune["runs"], key=lambda r: r["seed"])]
    if not predictions or any(k not in predictions for k in keys):
        return None
    return np.stack([predictions[k] for k in keys])


def _seed_accuracies(chosen: pd.DataFrame, finetune: dict[str, Any] | None) -> dict[str, pd.Series]:
    """Per entry with seeds (families, the fine-tuned reference): its test accuracy per seed."""
    out = {f: g["test_accuracy"] for f, g in chosen.groupby("family")} if len(chosen) else {}
    if finetune and finetune.get("runs"):
        out[finetune["name"]] = pd.Series([r["test_accuracy"] for r in finetune["runs"]])
    return out


PAIRWISE_COLUMNS = [
    "a",
    "b",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "significant",
    "method",
    "welch_p",
    "n_seeds_a",
    "n_seeds_b",
    "p_bound",
]


def pairwise(
    final: pd.DataFrame,
    baseline: dict[str, Any] | None = None,
    predictions: dict | None = None,
    labels=None,
    seed: int = 0,
    finetune: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Every pair of ranking entries (higher mean first): the paired bootstrap on the shared test set
    when predictions are stored, else Welch's t on seed accuracies; Holm-corrected across all pairs.

    Welch's p-value is kept as a seed-level column for pairs of entries with seeds.
    """
    order = ranking(final, baseline, predictions, labels, finetune)
    chosen = choose(final)
    preds: dict[str, np.ndarray | None] = {}
    for name, kind in zip(order["name"], order["kind"], strict=True):
        if kind == "baseline":
            p = predictions.get(("baseline",)) if predictions else None
            preds[name] = None if p is None else p[None]
        elif kind == "pretrained":
            preds[name] = _finetune_predictions(finetune, predictions)
        else:
            preds[name] = _chosen_predictions(chosen, name, predictions)
    seeded = _seed_accuracies(chosen, finetune)
    rows = []
    names = order["name"].tolist()
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            acc = {n: seeded[n] for n in (a, b) if n in seeded}
            welch = compare(acc[a], acc[b]) if len(acc) == 2 else None
            if labels is not None and preds[a] is not None and preds[b] is not None:
                r = paired_difference(preds[a], preds[b], labels, seed=seed)
                row = {
                    "diff": r.diff,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "p_value": r.p_value,
                    "method": "paired bootstrap",
                    "n_seeds_a": r.n_seeds_a,
                    "n_seeds_b": r.n_seeds_b,
                    "p_bound": r.at_floor,
                }
            elif welch is not None:
                row = {
                    "diff": welch.diff,
                    "ci_low": welch.ci_low,
                    "ci_high": welch.ci_high,
                    "p_value": welch.p_value,
                    "method": "Welch t",
                    "n_seeds_a": welch.n_a,
                    "n_seeds_b": welch.n_b,
                    "p_bound": False,
                }
            else:
                continue  # a family against the baseline needs predictions: one baseline number has no spread
            rows.append({"a": a, "b": b, **row, "welch_p": welch.p_value if welch else math.nan})
    out = pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)
    testable = out["p_value"].notna().to_numpy()
    reject, adjusted = holm(out.loc[testable, "p_value"].to_numpy())
    out["p_holm"] = math.nan
    out.loc[testable, "p_holm"] = adjusted
    out["significant"] = False
    out.loc[testable, "significant"] = reject
    return out


def _baseline_label(name: str) -> str:
    """``tfidf-logreg baseline``; an unnamed one (the default name) is just ``baseline``."""
    return "baseline" if name in ("", "baseline") else f"{name} baseline"


def _pretrained_label(name: str, finetune: dict[str, Any] | None) -> str:
    """``bert-base-cased fine-tuned (pretrained reference, 108.3 M parameters, 2.1 h)``: a pretrained
    model read external text before this benchmark, and its cost is part of what it says."""
    finetune = finetune or {}
    cost = [
        parameters_text(finetune["n_params"]) if finetune.get("n_params") else None,
        f"{format_duration(finetune['seconds'])} of fine-tuning on {finetune.get('device', 'CPU')}"
        if finetune.get("seconds") is not None
        else None,
    ]
    return f"{name} (pretrained reference, {', '.join(filter(None, ['not searched', *cost]))})"


def _entry(row: pd.Series, finetune: dict[str, Any] | None = None) -> str:
    """``cnn 0.861 (95% CI 0.85 to 0.87)``, with "at chance" when it is."""
    name = _baseline_label(row["name"]) if row["kind"] == "baseline" else row["name"]
    if row["kind"] == "pretrained":
        name = _pretrained_label(row["name"], finetune)
    what = f"{name} {fmt_acc(row['mean'])}"
    extra = []
    if row["kind"] in ("family", "pretrained"):
        if not math.isnan(row["ci_low"]):
            extra.append(f"95% CI {fmt_acc(row['ci_low'])} to {fmt_acc(row['ci_high'])}")
        elif row["n"] >= 2:
            extra.append(f"all {row['n']} seeds equal")
        else:
            extra.append("one seed")
    if row["at_chance"] is True:
        extra.append("at chance")
    return what + (f" ({', '.join(extra)})" if extra else "")


def _headline(order: pd.DataFrame, finetune: dict[str, Any] | None = None) -> str:
    """The first sentence: the whole ranking, and a reference (the baseline, the fine-tuned pretrained
    model) beating every family when it does."""
    listing = ", ".join(_entry(r, finetune) for _, r in order.iterrows())
    fams, refs = order[order.kind == "family"], order[order.kind != "family"]
    whose = "each family's chosen configuration" + (" and the references" if len(refs) > 1 else "")
    beaten = []
    for _, ref in refs.iterrows():
        if len(fams) and ref["mean"] > fams["mean"].max():
            beaten.append(
                f"the {_baseline_label(ref['name'])}"
                if ref["kind"] == "baseline"
                else f"the {ref['name']} model"
            )
    if beaten:
        which = "the only family" if len(fams) == 1 else f"all {len(fams)} families"
        verb = "beats" if len(beaten) == 1 else "each beat"
        who = _names(beaten)
        return (
            f"{who[0].upper()}{who[1:]} {verb} {which} on test; ranking by mean test accuracy of {whose}: "
            f"{listing}."
        )
    return f"Ranking by mean test accuracy of {whose}: {listing}."


def _pair_sentence(r: pd.Series) -> str:
    interval = (
        f"unadjusted 95% CI {fmt_diff(r['ci_low'])} to {fmt_diff(r['ci_high'])}, "
        f"Holm-adjusted {fmt_p(r['p_holm'], r['p_bound'])}"
        if not math.isnan(r["p_holm"])
        else "not testable"
    )
    if r["significant"]:
        return f"{r['a']} is ahead of {r['b']} by {fmt_diff(r['diff'])} ({interval})"
    return f"no significant difference between {r['a']} and {r['b']} ({fmt_diff(r['diff'])}, {interval})"


def verdict(
    trials: pd.DataFrame,
    final: pd.DataFrame,
    baseline: dict[str, Any] | None = None,
    predictions: dict | None = None,
    labels=None,
    pairs: pd.DataFrame | None = None,
    finetune: dict[str, Any] | None = None,
) -> str:
    """``verdict_parts`` as one paragraph."""
    return " ".join(verdict_parts(trials, final, baseline, predictions, labels, pairs, finetune))


def verdict_parts(
    trials: pd.DataFrame,
    final: pd.DataFrame,
    baseline: dict[str, Any] | None = None,
    predictions: dict | None = None,
    labels=None,
    pairs: pd.DataFrame | None = None,
    finetune: dict[str, Any] | None = None,
) -> list[str]:
    """The answer to "which family wins on test, by how much, how sure", or what is missing.

    First sentence: the whole ranking (the references included, at-chance entries labelled). Then the
    pairwise conclusions between neighbours in the ranking, then what limits them (few seeds).
    ``pairs`` is ``pairwise(...)`` when the caller has it already (it costs a bootstrap per pair).
    """
    families = sorted(trials["family"].unique()) if len(trials) else []
    done = trials[(trials["state"] == "COMPLETE") & trials["value"].notna()]
    if not families:
        return ["No trials have been run yet: nothing to compare."]
    if done.empty:
        n_fail, n_pruned = (trials["state"] == "FAIL").sum(), (trials["state"] == "PRUNED").sum()
        return [
            f"No trial completed in any family ({n_fail} failed, {n_pruned} pruned): nothing to compare "
            "yet, see the trial counts and fail reasons below."
        ]
    board = leaderboard(final)
    no_final = [f for f in families if f not in set(board["family"])]
    if no_final:
        if len(families) == 1:
            return [
                f"Only one family ({families[0]}) in this benchmark and no final evaluation was run, so "
                f"nothing is compared: its best validation accuracy is {fmt_acc(done['value'].max())}."
            ]
        return [_validation_verdict(done, families, no_final)]
    order = ranking(final, baseline, predictions, labels, finetune)
    pairs = pairwise(final, baseline, predictions, labels, finetune=finetune) if pairs is None else pairs
    parts = [_headline(order, finetune)]
    if len(families) == 1 and len(order) == 1:
        parts = [
            f"Only one family ({families[0]}) in this benchmark, so nothing is compared: its chosen "
            f"configuration scores {_entry(order.iloc[0]).removeprefix(families[0] + ' ')} mean test "
            "accuracy "
            f"over {order['n'].iloc[0]} seeds."
        ]
    compared = set(pairs["a"]) | set(pairs["b"])
    names = [n for n in order["name"] if n in compared]  # a baseline without stored predictions is not paired
    neighbours = [pairs[(pairs.a == a) & (pairs.b == b)] for a, b in zip(names, names[1:], strict=False)]
    neighbours = [n.iloc[0] for n in neighbours if len(n)]
    if neighbours:
        method = pairs["method"].iloc[0]
        how = (
            f"paired on the same {'test examples'} (bootstrap over seeds and examples)"
            if method == "paired bootstrap"
            else "Welch's t-test on the seed accuracies"
        )
        sentence = "; ".join(_pair_sentence(r) for r in neighbours)
        parts.append(
            f"Between neighbours in that ranking ({how}, Holm-corrected over {len(pairs)} "
            f"comparison{'s' if len(pairs) != 1 else ''}): {sentence}."
        )
    at_chance = order[order["at_chance"] == True]["name"].tolist()  # noqa: E712 - None means unknown
    if at_chance:
        verb = "is" if len(at_chance) == 1 else "are"
        parts.append(
            f"{_names(at_chance)} {verb} at chance: not above the majority-class rate of "
            f"{fmt_acc(order['chance_rate'].iloc[0])} (exact binomial test on the pooled test "
            f"predictions, or the seed CI reaching it)."
        )
    seeds = int(board["n"].min())
    if seeds < 2:
        parts.append(
            "With a single seed per configuration, nothing is known about seed-to-seed variation: "
            "the intervals cover test-example noise only, and another seed could change the order."
        )
    elif seeds < MIN_SEEDS:
        parts.append(
            f"With only {seeds} seeds per configuration, the seed-to-seed spread is barely estimated "
            f"({seeds - 1} degree{'s' if seeds > 2 else ''} of freedom), so no seed-level conclusion can "
            "be drawn: the intervals rest mostly on the test examples and understate what another seed "
            "could do."
        )
    return parts


def expected_max_frame(trials: pd.DataFrame) -> pd.DataFrame:
    """Per family and budget n = 1..(completed trials): expected best validation accuracy and its sd.

    What a search of n trials would be expected to find, drawing from this search's completed
    trials (Dodge et al. 2019): a family that leads only at a large budget is a costlier winner.
    """
    done = trials[(trials["state"] == "COMPLETE") & trials["value"].notna()]
    rows = []
    for family, group in done.groupby("family", sort=True):
        values = group["value"].astype(float).tolist()
        for n in range(1, len(values) + 1):
            mean, sd = expected_max(values, n)
            rows.append({"family": family, "n": n, "mean": mean, "std": sd})
    return pd.DataFrame(rows, columns=["family", "n", "mean", "std"])


def crossings(curves: pd.DataFrame, baseline: dict[str, Any] | None = None) -> list[str]:
    """Sentences "with fewer than N trials, X would have been ahead" where expected-max curves cross.

    The leader is the family with the highest expected best at the largest budget all families
    reached; a family (or the baseline's validation accuracy) ahead of it at smaller budgets
    crosses it. Budgets beyond what every family ran are not compared.
    """
    if curves.empty:
        return []
    budget = int(curves.groupby("family")["n"].max().min())
    at = curves[curves["n"] <= budget].pivot(index="n", columns="family", values="mean")
    final = at.loc[budget].sort_values(ascending=False, kind="stable")
    leader = final.index[0]
    out = []
    for family in final.index[1:]:
        ahead = at.index[at[family] > at[leader]]
        if len(ahead):
            out.append(
                f"With fewer than {int(ahead.max()) + 1} trials, {family} would have been ahead of "
                f"{leader} (expected best validation accuracy)."
            )
    if baseline and baseline.get("validation_accuracy") is not None:
        b = float(baseline["validation_accuracy"])
        who = "the " + _baseline_label(baseline.get("name") or "")
        for family in final.index:
            below = at.index[at[family] < b]
            if final[family] > b and len(below):
                out.append(
                    f"With fewer than {int(below.max()) + 1} trials, {who} would have been "
                    f"ahead of {family} on validation."
                )
    return out


def winners_curse(best: pd.DataFrame, final: pd.DataFrame) -> pd.DataFrame:
    """Each chosen configuration's search validation score beside its final-stage validation mean.

    The search keeps the maximum of many noisy trials, so its score is biased upwards; re-training
    the same configuration with other seeds shows by how much.
    """
    cols = ["family", "trial_number", "search_validation", "final_validation_mean", "n", "drop"]
    chosen = choose(final)
    if chosen.empty or best.empty:
        return pd.DataFrame(columns=cols)
    per = (
        chosen.groupby("family")
        .agg(
            trial_number=("trial_number", "first"),
            final_validation_mean=("validation_accuracy", "mean"),
            n=("seed", "size"),
        )
        .reset_index()
    )
    search = best[["family", "number", "value"]].rename(
        columns={"number": "trial_number", "value": "search_validation"}
    )
    out = per.merge(search.astype({"trial_number": float}), on=["family", "trial_number"], how="left")
    out["drop"] = out["final_validation_mean"] - out["search_validation"]
    return out[cols]
