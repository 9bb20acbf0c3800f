"""What a run of python -m fastnn.train writes: its output paths checked before training, and
at the end the model, the plots, the report, the predictions and the metrics, each as a
(what, where, how) for `train.write_outputs`."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fastnn.core import training
from fastnn.core.hyperparameters import SHORT_NAMES
from fastnn.data import CLASS_NAMES, write_kaggle_submission
from fastnn.files.atomic import check_writable, write_text
from fastnn.files.history import History, continued, generator_state
from fastnn.files.persist import save_model
from fastnn.train.options import DEFAULT_SUBMISSION
from fastnn.train.run import Run
from fastnn.version import __version__

N_CLASSES = 10
AUGMENT_DRAWS = 16  # of one image in augment.png
SAMPLES = 16  # test images in samples.png, the mistakes first


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any training, output paths that cannot be written."""
    for option, path in (("--save", args.save), ("--metrics", args.metrics)):
        if path:
            check_writable(path, option)
    for option, folder in (("--plots", args.plots), ("--report", args.report)):
        if folder:
            check_writable(folder, option, folder=True)
    if args.predict_csv:
        explicit = args.submission is not None
        args.submission = args.submission or DEFAULT_SUBMISSION
        check_writable(args.submission, "--submission", replace=explicit)


def planned_outputs(
    r: Run, history: list[dict], stopped: dict, summary: dict, started: float
) -> list[tuple[str, str, Callable[[], None]]]:
    """(what, where, how) for each output asked for; the metrics last, to time everything."""
    args = r.args
    outputs = ("metrics", "plots", "report", "save", "resume")
    config = {k: v for k, v in vars(args).items() if k not in outputs}
    # Under the estimator's names as well, with the batch size actually used, so that
    # fastnn.load gives an estimator with every hyperparameter of this run.
    as_estimator = {name: config[short] for short, name in SHORT_NAMES.items()}
    # max_iter: the epoch the run was planned to end at, which --resume goes on towards.
    as_estimator["max_iter"] = r.planned
    saved_config = dict(config, **as_estimator, batch_size=r.how.batch_size, **stopped)
    scores = {k: summary[k] for k in ("dev_accuracy", "test_accuracy")}
    record = training_history(r, history, stopped)
    writes = []
    if args.save:
        writes.append(("the model", args.save, lambda: save_model(
            args.save, r.params, activation=args.activation, classes=np.arange(N_CLASSES),
            config=saved_config, scores=scores, state=r.how.state, history=record.to_json(),
        )))  # fmt: skip
    X_show, y_show = (r.X_dev, r.y_dev) if r.X_test is None else (r.X_test, r.y_test)
    if args.plots:

        def write_plots() -> None:
            from fastnn.report import plots  # matplotlib takes a while to import: only when asked

            predicted = training.predict_proba(r.backend, r.params, X_show, args.activation)
            labels = predicted.argmax(1)
            shown = plots.mistakes_first(labels, y_show, SAMPLES)
            wrong = int((labels != y_show).sum())
            which = "dev" if r.X_test is None else "test"
            plots.plot_curves(history, args.plots)
            if len(y_show):
                plots.plot_samples(
                    X_show[shown], labels[shown], y_show[shown], args.plots,
                    names=CLASS_NAMES["fashion-mnist"] if is_fashion(args) else None,
                    title=f"{which} images, the {wrong:,} mistakes (of {len(y_show):,}) first",
                )  # fmt: skip
            if r.how.augmentation is not None:  # 16 rows of one image: 16 draws
                image = X_show[:1] if len(X_show) else r.X[:1]
                copies = np.repeat(image, AUGMENT_DRAWS, axis=0)
                draws = r.backend.augment(copies, r.how.augmentation.at(1))
                side = r.how.augmentation.image_shape
                plots.plot_augmentations(
                    draws.reshape(-1, *side), image[0].reshape(side), args.plots
                )

        # Without a test set or a dev set (a Kaggle train.csv, --dev-size 0) there is nothing
        # to show in samples.png.
        names = "loss.png, accuracy.png" + (" and samples.png" if len(y_show) else "")
        names += "" if r.how.augmentation is None else ", augment.png"
        writes.append((names, args.plots, write_plots))
    if args.report:

        def write_report() -> None:
            from fastnn.report import page as report_page  # matplotlib: only when asked

            proba = training.predict_proba(r.backend, r.params, X_show, args.activation)
            csv = kaggle_csv(args)
            dataset = args.dataset if csv is None else csv.name
            report_page.write_report(args.report, report_page.ReportInput(
                r.params, np.arange(N_CLASSES), saved_config, scores, record, X_show, y_show,
                proba, dataset, "dev set" if r.X_test is None else "test set", r.backend.name,
            ))  # fmt: skip

        writes.append(("the report (report.html and its figures)", args.report, write_report))
    if r.X_new is not None:
        proba = training.predict_proba(r.backend, r.params, r.X_new, args.activation)
        labels = proba.argmax(axis=1)
        writes.append((f"{len(labels)} predictions", args.submission,
                       lambda: write_kaggle_submission(args.submission, labels)))  # fmt: skip
    if args.metrics:

        def write_metrics() -> None:
            metrics = dict(fastnn_version=__version__, config=config, **stopped,
                           epochs=history, **summary)  # fmt: skip
            metrics["wall_seconds"] = time.perf_counter() - started
            write_text(args.metrics, json.dumps(metrics, indent=2) + "\n")

        writes.append(("metrics", args.metrics, write_metrics))
    return writes


def kaggle_csv(args: argparse.Namespace) -> Path | None:
    """The Kaggle train.csv the run trains on, if it does (else it reads args.dataset)."""
    path = Path(args.data) if args.data else None
    return path if path is not None and path.suffix.lower() == ".csv" else None


def is_fashion(args: argparse.Namespace) -> bool:
    """Whether the run's labels are Fashion-MNIST's articles (not a Kaggle digits CSV)."""
    return args.dataset == "fashion-mnist" and kaggle_csv(args) is None


def training_history(r: Run, history: list[dict], stopped: dict) -> History:
    """The record of the training so far that the model file keeps: what --resume needs to go
    on, and the per-epoch curves (a resumed run's earlier epochs first) that fastnn.report
    draws."""
    args = r.args

    def curve(name: str, new: list[float]) -> list[float]:
        return continued(None if r.earlier is None else getattr(r.earlier, name), new)

    dev = [(h["dev_accuracy"], h["dev_loss"]) for h in history]
    measured = all(a is not None and loss is not None for a, loss in dev)  # no dev rows: none
    return History(
        epochs=r.first_epoch - 1 + stopped["epochs_completed"],
        samples_seen=r.how.schedule.samples_seen,
        loss_curve=curve("loss_curve", [h["loss"] for h in history]),
        validation_scores=curve("validation_scores", [a for a, _ in dev]) if measured else None,
        validation_losses=curve("validation_losses", [b for _, b in dev]) if measured else None,
        rate=None if args.learning_rate == "cosine" else r.how.schedule.current,
        order_state=generator_state(r.order_rng),
        dropout_seed=r.how.dropout_seed,
        train_scores=curve("train_scores", [h["train_accuracy"] for h in history]),
        learning_rates=curve("learning_rates", [h["learning_rate"] for h in history]),
        epoch_seconds=curve("epoch_seconds", [h["seconds"] for h in history]),
    )
