"""Hyperparameter search for the emotion recipe with Optuna (issue 24): ``mien train emotion ... --tune N``.

Each trial is a short run of mien's own trainer (``--epochs``, ``--limit-train``, ``--limit-eval`` set its budget)
in ``OUT/trials/NNN``, scored by its best PublicTest accuracy; after each epoch the trial reports that accuracy
and the median pruner stops trials doing worse than the median of earlier ones at the same epoch. The study lives
in SQLite under OUT (or ``--study-storage``): the same command adds N more trials, with a sampler seeded past the
trials already there so none is repeated. At the end: ``best_params.json`` (the parameters, their score and the
exact `mien train emotion` command that trains a full run with them), ``optimization_history.png`` and
``param_importances.png``. Test faces are never seen by the search (selection is on PublicTest, as for a run).
"""
from __future__ import annotations

import argparse
import copy
import json
import shlex
from pathlib import Path

from mien.emotion.errors import TrainingError

STUDY_NAME = "mien-emotion"
TUNED = ("lr", "weight_decay", "label_smoothing", "dropout", "augment", "mixup", "random_erasing")


def suggest(trial, optimizer: str) -> dict:
    """The search space over the recipe's knobs (learning-rate range by optimizer)."""
    low, high = (5e-3, 0.2) if optimizer == "sgd" else (1e-4, 3e-3)
    return {"lr": trial.suggest_float("lr", low, high, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-2, log=True),
            "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
            "dropout": trial.suggest_float("dropout", 0.1, 0.5),
            "augment": trial.suggest_categorical("augment", ["light", "strong"]),
            "mixup": trial.suggest_categorical("mixup", [0.0, 0.2, 0.4]),
            "random_erasing": trial.suggest_float("random_erasing", 0.0, 0.5)}


def make_pruner():
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)


def tune(args: argparse.Namespace, log=print) -> dict:
    """Run ``args.tune`` more trials of the study in ``args.out``; write and return the best parameters."""
    try:
        import optuna
    except ImportError:
        raise TrainingError("--tune runs an Optuna study: pip install 'mien[tune]' (or pip install optuna)") from None
    from mien.emotion.training.train import train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    storage = args.study_storage or f"sqlite:///{(out / 'study.sqlite3').resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    done = _trials_in(storage)
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, load_if_exists=True, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=args.seed + done), pruner=make_pruner())

    def objective(trial) -> float:
        params = suggest(trial, args.optimizer)
        run = copy.copy(args)
        for key, value in params.items():
            setattr(run, key, value)
        run.tune, run.resume, run.out = 0, False, str(out / "trials" / f"{trial.number:03d}")
        log(f"trial {trial.number}: {json.dumps(params)}")

        def report(epoch: int, accuracy: float) -> None:
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"PublicTest {accuracy:.4f} at epoch {epoch} is under the median")

        metrics = train(run, on_epoch=report)
        return float(metrics["best_public_test_accuracy"])

    study.optimize(objective, n_trials=args.tune, catch=())
    return write_results(study, args, out, log)


def _trials_in(storage: str) -> int:
    """Trials already in the study (0 if there is none yet)."""
    import optuna

    try:
        return len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials)
    except KeyError:
        return 0


def write_results(study, args: argparse.Namespace, out: Path, log=print) -> dict:
    """best_params.json with the command that trains a full run, and the study's plots (when there is enough)."""
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise TrainingError(f"{out}: no trial of the study completed ({len(study.trials)} pruned or failed)")
    best = study.best_trial
    command = ["mien", "train", "emotion", "--data", str(args.data), "--out", "RUN", "--optimizer", args.optimizer,
               "--arch", args.arch]
    for key in TUNED:
        command += [f"--{key.replace('_', '-')}", str(best.params[key])]
    result = {"study": STUDY_NAME, "trials": len(study.trials), "complete": len(complete),
              "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
              "best_trial": best.number, "best_public_test_accuracy": best.value, "params": best.params,
              "budget": {"epochs": args.epochs, "limit_train": args.limit_train, "limit_eval": args.limit_eval},
              "command": shlex.join(command) + " --epochs 60  # a full run (RUN: its folder)"}
    tmp = out / "best_params.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out / "best_params.json")
    _plots(study, out, log)
    log(f"best of {len(study.trials)} trials: {best.value:.4f} PublicTest (trial {best.number}); {result['command']}")
    return result


def _plots(study, out: Path, log=print) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt
    from optuna import exceptions as optuna_warnings
    from optuna.visualization import matplotlib as ovm

    plots = {"optimization_history.png": ovm.plot_optimization_history}
    if sum(t.value is not None for t in study.trials) >= 2:
        plots["param_importances.png"] = ovm.plot_param_importances
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():  # optuna marks its matplotlib plots experimental
                warnings.simplefilter("ignore", optuna_warnings.ExperimentalWarning)
                ax = plot(study)
        except (ValueError, RuntimeError) as exc:  # e.g. importances of parameters that never varied
            log(f"{name}: not drawn ({exc})")
            continue
        if name == "optimization_history.png":
            ax.set_ylabel("best PublicTest accuracy of the trial")
        fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
        fig.set_size_inches(8, 4.5)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
