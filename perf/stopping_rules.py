"""Replay stopping rules on a finished benchmark's studies: where would each have stopped?

    python -m perf.stopping_rules RUN_DIR/optuna.journal --name imdb --families cnn,rnn

For every prefix of 10 to N finished trials of each family (the same trials, no training) it
evaluates Optuna's regret bound (``RegretBoundEvaluator``, what ``--stop-when-converged`` uses)
against the binomial standard error of the best validation accuracy, Optuna's EMMR rule
(``EMMREvaluator`` with ``MedianErrorEvaluator``), Optuna's ``BestValueStagnationEvaluator`` (15
trials), and "the best has not moved by more than one standard error in 15 trials". Prints one line
per prefix and, per family, where each rule would first have stopped: (trials, best validation then,
how many of the final top 3 it had found). Used on the flagship (perf/README, "Time budget and
convergence"). Not a ``perf.run`` measurement: it needs a finished 50-trial benchmark.
"""

from __future__ import annotations

import argparse
import warnings

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.terminator import (
    BestValueStagnationEvaluator,
    EMMREvaluator,
    MedianErrorEvaluator,
    RegretBoundEvaluator,
)
from optuna.trial import TrialState

from textbench.search.converge import best_gain
from textbench.search.pruners import binomial_se


def main() -> None:
    warnings.simplefilter("ignore")  # the terminator is experimental
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("journal")
    parser.add_argument("--name", default="imdb")
    parser.add_argument("--families", default="cnn,rnn")
    args = parser.parse_args()
    s = JournalStorage(JournalFileBackend(args.journal))
    for family in args.families.split(","):
        name = f"{args.name}-{family}"
        st = optuna.load_study(study_name=name, storage=s)
        n_val = st.user_attrs["settings"]["validation_size"]
        trials = sorted(
            [t for t in st.get_trials(deepcopy=False) if t.state.is_finished()], key=lambda t: t.number
        )
        final_best = max(t.value for t in trials if t.state == TrialState.COMPLETE)
        top3 = {
            t.number
            for t in sorted([t for t in trials if t.state == TrialState.COMPLETE], key=lambda t: -t.value)[:3]
        }
        emmr = EMMREvaluator(seed=0)
        median = MedianErrorEvaluator(emmr)
        regret = RegretBoundEvaluator(seed=0)
        stag = BestValueStagnationEvaluator(max_stagnation_trials=15)
        stops = {}
        for n in range(10, len(trials) + 1):
            prefix = trials[:n]
            done = [t for t in prefix if t.state == TrialState.COMPLETE]
            if len(done) < 10:
                continue
            best = max(t.value for t in done)
            se = binomial_se(best, n_val)
            tmp = optuna.create_study(direction="maximize")
            tmp.add_trials(prefix)
            all_t = tmp.get_trials(deepcopy=False)
            e = emmr.evaluate(all_t, tmp.direction)
            m = median.evaluate(all_t, tmp.direction)
            r = regret.evaluate(all_t, tmp.direction)
            g = stag.evaluate(all_t, tmp.direction)
            # stagnation within noise: the best has not moved by more than one SE in 15 trials
            gain = best_gain(prefix, 15)  # what --stop-when-converged's second test uses
            noise_stag = gain is not None and gain < se
            rule = {
                "regret<se": r < se,
                "emmr<median": e < m,
                "stagnation15": g < 0,
                "stag15-within-se": bool(noise_stag),
            }
            for k, hit in rule.items():
                if hit and k not in stops:
                    top_now = {t.number for t in sorted(done, key=lambda t: -t.value)[:3]}
                    stops[k] = (n, round(best, 4), len(top_now & top3))
            print(
                f"{name} n={n} best={best:.4f} se={se:.4f} regret={r:.4f} emmr={e:.5f} "
                f"median_thr={m:.5f} stag={g}",
                flush=True,
            )
        print(
            f"== {name}: final best {final_best:.4f}; first stop (trials, best then, of the final top 3):",
            stops,
            flush=True,
        )


if __name__ == "__main__":
    main()
