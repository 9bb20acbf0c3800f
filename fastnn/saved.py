"""fastnn.load: a fitted MLPClassifier or MLPRegressor back from a model file, ready to predict
and to go on training where it stopped."""

from __future__ import annotations

import os
import warnings
from typing import Any

from fastnn.core import checks
from fastnn.core.hyperparameters import resolved_learning_rate
from fastnn.core.optim import Optimizer, Schedule
from fastnn.estimator import MLPClassifier
from fastnn.files import persist
from fastnn.files.history import EPOCH_RECORDS, History
from fastnn.perceptron import MultilayerPerceptron
from fastnn.regressor import MLPRegressor


def load(path: str | os.PathLike) -> MLPClassifier | MLPRegressor:
    """A fitted MLPClassifier, or MLPRegressor for a file of "identity" outputs, from a file
    written by `save`, `persist.save_model` or `python -m fastnn.train --save`.

    Entries of the saved config named like the estimator's parameters are restored; the
    architecture (hidden layers, activation, dtype) always comes from the file. A model saved
    with its optimizer state and history (format version 2) goes on where it stopped:
    partial_fit continues the optimizer, the schedule and the sample order; n_iter_ and
    loss_curve_ go on counting. One saved without them starts those afresh.
    """
    return from_saved(persist.read_model(path), path)


def load_classifier(path: str | os.PathLike) -> MLPClassifier:
    """`load` for the commands that answer with one class an image (predict, serve): a
    ModelFileError for a model of other outputs (see `single_label`)."""
    saved = persist.read_model(path)
    single_label(saved, path)
    return from_saved(saved, path)


def single_label(saved: persist.SavedModel, path: str | os.PathLike) -> None:
    """Raise ModelFileError unless the model file `saved` holds a single-label classifier
    (softmax outputs), what the image commands take."""
    if saved.output != "softmax":
        what = "a regressor's" if saved.output == "identity" else "a multilabel classifier's"
        raise persist.ModelFileError(
            f"{path}: the model has {saved.output} outputs ({what}); this command needs a "
            "classifier of one class a sample. Use it from Python: fastnn.load(path)"
        )


def from_saved(saved: persist.SavedModel, path: str | os.PathLike) -> MLPClassifier | MLPRegressor:
    """The estimator of a model file already read by persist.read_model (see `load`); `path`
    names the file in errors."""
    names = MultilayerPerceptron._param_names()
    params = {k: v for k, v in saved.config.items() if k in names}
    hidden, sizes = saved.params.hidden_sizes, params.get("hidden_layer_sizes")
    # JSON turned a tuple into a list; keep an int as it was given.
    one = type(sizes) is int and (sizes,) == hidden
    params["hidden_layer_sizes"] = sizes if one else hidden
    params.update(activation=saved.activation, dtype=saved.params.dtype.name)
    threads = params.get("n_threads")
    if checks.is_int(threads) and threads > (os.cpu_count() or 1):
        # A preference of the machine that trained it, not part of the model.
        warnings.warn(
            f"{path}: the model was saved with n_threads={threads}, more than this machine's "
            f"{os.cpu_count()} CPUs; n_threads is reset to None (Numba's default)",
            UserWarning,
            stacklevel=2,
        )
        params["n_threads"] = None
    model = checked_model(saved, params, path)
    model._start(saved.params, saved.output, saved.classes, None)
    model._freeze_weights()  # as a fitted model's: see MultilayerPerceptron._freeze_weights
    model.best_validation_score_ = saved.scores.get(model._validation_score_name)
    dataset = saved.config.get("dataset")
    model._dataset = dataset if isinstance(dataset, str) else None
    if saved.state is not None:
        model._optimizer_state = saved.state
    history = History.from_json(saved.history, path)
    if history is not None:
        model.n_iter_, model.t_ = history.epochs, history.samples_seen
        model.loss_curve_ = list(history.loss_curve)
        model.validation_scores_ = history.validation_scores
        model.validation_loss_curve_ = history.validation_losses
        model.loss_ = model.loss_curve_[-1] if model.loss_curve_ else None
        if history.validation_scores is None and model.loss_curve_:
            model.best_loss_ = min(model.loss_curve_)
        model._shuffle_rng = history.order_generator()
        model._dropout_seed = history.dropout_seed  # None: _train derives one
        # Records the file lacks (saved before they existed) start with the coming epochs.
        model._epoch_records = {name: list(getattr(history, name) or []) for name in EPOCH_RECORDS}
        rate = resolved_learning_rate(model.get_params(), model._output())
        model._schedule = Schedule(model.learning_rate, rate, model.power_t, model.max_iter)
        model._schedule.samples_seen = history.samples_seen
        if history.rate is not None:
            model._schedule.current = history.rate
    return model


def checked_model(
    saved: persist.SavedModel, params: dict[str, Any], path: str | os.PathLike
) -> MLPClassifier | MLPRegressor:
    """The estimator of the model file `saved` (MLPRegressor for "identity" outputs, else
    MLPClassifier) with `params`, the file's hyperparameters, checked as fit
    checks them, and the optimizer state the file holds against the solver they name: the one
    check of a saved configuration, for fastnn.load and python -m fastnn.train --resume.
    Raises ModelFileError naming the file (`path`) and what is unusable."""
    estimator = MLPRegressor if saved.output == "identity" else MLPClassifier
    model = estimator(**params)
    try:
        checks.hyperparameters(model)  # the one validation of every hyperparameter
    except ValueError as exc:
        raise persist.ModelFileError(
            f"{path}: the saved configuration is not usable: {exc}"
        ) from None
    if saved.state is not None and not saved.state.fits(Optimizer.of(model), saved.params):
        raise persist.ModelFileError(
            f"{path}: the saved optimizer state does not fit the saved solver "
            f"{model.solver!r} (momentum {model.momentum})"
        )
    return model
