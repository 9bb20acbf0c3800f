"""What MLPClassifier and MLPRegressor share: the parameters (fastnn.core.hyperparameters), the
weights, fit and partial_fit around the one training loop (fastnn.core.training), early
stopping, prediction through a backend, and save. Each estimator says what its y is (`Target`)
and what it answers."""

from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from fastnn.backends import get_backend
from fastnn.core import checks, training
from fastnn.core.augment import check_augment
from fastnn.core.hyperparameters import preset_params, resolved_learning_rate
from fastnn.core.model import Params, check_dtype, init_params
from fastnn.core.optim import Optimizer, OptimizerState, Schedule
from fastnn.files import persist
from fastnn.files.atomic import check_writable
from fastnn.files.history import EPOCH_RECORDS, History, generator_state
from fastnn.scikit import ScikitLearnProtocol

if TYPE_CHECKING:
    import onnx


class NotFittedError(ValueError, AttributeError):
    """The model was used before `fit`; like scikit-learn's, both a ValueError and an
    AttributeError. When scikit-learn is loaded, what is raised is also its NotFittedError."""


class Target(NamedTuple):
    """y as the network trains on it, with what it says about the network's outputs."""

    values: np.ndarray  # label indices (n,) int64 for "softmax", else (n, n_outputs) floats
    output: str  # the output kind (fastnn.core.model.OUTPUTS): scikit-learn's out_activation_
    n_outputs: int  # the network's outputs
    classes: np.ndarray | None  # the classifier's classes_; None for a regressor


class MultilayerPerceptron(ScikitLearnProtocol):
    """The base of MLPClassifier and MLPRegressor (see MLPClassifier for the parameters)."""

    # The score of `score` and early stopping's held-out rows, as verbose prints it, and under
    # which name `save` records the best held-out score.
    _score_name = "score"
    _validation_score_name = "validation_score"

    def __init__(
        self,
        hidden_layer_sizes: int | tuple[int, ...] = (256,),
        *,
        activation: str = "relu",
        init: str = "he",
        backend: str = "numba",
        solver: str = "adam",
        learning_rate_init: float | None = None,
        learning_rate: str = "cosine",
        power_t: float = 0.5,
        momentum: float = 0.0,
        nesterovs_momentum: bool = True,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        rho: float = 0.99,
        alpha: float = 0.0,
        batch_size: int | str = 128,
        max_iter: int = 10,
        dropout: float | tuple[float, ...] = 0.0,
        input_dropout: float = 0.0,
        max_norm: float | None = None,
        augment: str | dict[str, Any] | None = None,
        dtype: str = "float32",
        random_state: int | np.random.RandomState | np.random.Generator | None = None,
        n_threads: int | None = None,
        shuffle: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        image_shape: tuple[int, int] | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.init = init
        self.backend = backend
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.power_t = power_t
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.rho = rho
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.max_norm = max_norm
        self.augment = augment
        self.dtype = dtype
        self.random_state = random_state
        self.n_threads = n_threads
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.image_shape = image_shape

    @classmethod
    def from_preset(cls, name: str = "default", **params: Any) -> MultilayerPerceptron:
        """The training command's preset `name` (see fastnn.core.hyperparameters.PRESETS) as an
        estimator: its network, update rule, max_iter (the command's epochs), batch size,
        dtype, backend and random_state (its seed); `params` override them."""
        return cls(**{**preset_params(name), **params})

    # -- what each estimator says ---------------------------------------------------------------

    def _target(self, y: Any, n_samples: int) -> Target:
        """y of fit checked, as the network trains on it."""
        raise NotImplementedError

    def _check_same_target(self, target: Target) -> None:
        """Raise ValueError unless `target` fits the fitted model (warm_start, partial_fit)."""
        raise NotImplementedError

    # -- checks ---------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "coefs_"):
            raise checks.also_scikit_learns(NotFittedError)(
                f"This {type(self).__name__} is not fitted yet: call fit (or partial_fit) "
                "first, or load a saved model with fastnn.load."
            )

    def _check_X(self, X: Any, *, reset: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """X checked for fit (reset) or for the fitted model, and its str column names if any."""
        if reset:
            return checks.features(X, self.dtype, None, None)
        self._check_fitted()
        names = getattr(self, "feature_names_in_", None)
        return checks.features(
            X, self.coefs_[0].dtype, self.n_features_in_, names, type(self).__name__
        )

    def _check_warm_start(self, hidden: tuple[int, ...], target: Target) -> None:
        self._check_same_target(target)
        fitted = (self._params().hidden_sizes, self.coefs_[0].dtype.name)
        if fitted != (hidden, check_dtype(self.dtype)):
            raise ValueError(
                f"warm_start=True needs the network of the previous fit (hidden layers "
                f"{fitted[0]}, {fitted[1]}); hidden_layer_sizes or dtype changed. Set "
                "warm_start=False to start anew"
            )

    # -- training -------------------------------------------------------------------------------

    def _params(self) -> Params:
        """The weights as a Params; its arrays are coefs_ and intercepts_ themselves."""
        return Params(self.coefs_, self.intercepts_)

    def _start(
        self, params: Params, output: str, classes: np.ndarray | None, names: np.ndarray | None
    ) -> None:
        """Take params as the weights, with their output kind (and a classifier's classes), and
        begin a fresh training record."""
        self.coefs_ = params.coefs
        self.intercepts_ = params.intercepts
        self.out_activation_ = output
        self.n_outputs_ = params.n_out
        self.n_layers_ = len(params.coefs) + 1
        if classes is not None:
            self.classes_ = classes
        self.n_features_in_ = params.n_in
        if names is None:
            self.__dict__.pop("feature_names_in_", None)
        else:
            self.feature_names_in_ = names
        self.loss_curve_: list[float] = []
        self.loss_: float | None = None
        self.best_loss_: float | None = None
        self.n_iter_ = 0
        self.validation_scores_: list[float] | None = None
        self.validation_loss_curve_: list[float] | None = None
        self.best_validation_score_: float | None = None
        self.t_ = 0  # samples trained on, as scikit-learn counts them (invscaling uses it)
        self._shuffle_rng: np.random.Generator | None = None  # made by _train if still None
        # Each epoch's training accuracy, mean learning rate and seconds, saved for the report's
        # curves (fastnn.files.history.EPOCH_RECORDS), and the name of the data, if save was
        # told it.
        self._epoch_records: dict[str, list[float]] = {name: [] for name in EPOCH_RECORDS}
        self._dataset: str | None = None
        self._fresh_optimizer()

    def _fresh_optimizer(self) -> None:
        """Forget the optimizer's state and the schedule's position: _train starts new ones."""
        self._optimizer_state: OptimizerState | None = None
        self._schedule: Schedule | None = None

    def _fresh(
        self, hidden: tuple[int, ...], n_features: int, target: Target, names: np.ndarray | None
    ) -> int:
        """Start from random weights; returns the seed of the validation split."""
        seeds = self._seeds()
        params = init_params(
            n_features, hidden, target.n_outputs, self.init, seeds.init, self.dtype
        )
        self._start(params, target.output, target.classes, names)
        self._shuffle_rng = np.random.default_rng(seeds.order)
        self._dropout_seed = seeds.dropout
        return seeds.split

    def _seeds(self) -> training.Seeds:
        """The run's seeds (training.Seeds, as the command's from its --seed): from
        random_state's whole number, else from 63 bits drawn from the OS or from the
        RandomState or Generator, new ones each call."""
        seed = self.random_state
        if isinstance(seed, np.random.RandomState | np.random.Generator):
            seed = int.from_bytes(seed.bytes(8), "little") >> 1
        elif seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0]) >> 1
        return training.Seeds.of(seed)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MultilayerPerceptron:
        """Train for up to `max_iter` epochs: from fresh weights, or with warm_start=True and a
        fitted model, on from its weights, as scikit-learn does (the epoch count, loss curve
        and sample order go on too, so 2 epochs and then 3 are the bits of 5 in one go).

        sample_weight (n_samples,): each sample's weight in the loss, as scikit-learn's: every
        batch descends the weighted mean of its losses, with the L2 penalty over its weight
        sum; integer weights train as the rows repeated that many times would in one batch. A
        batch whose weights sum to 0 makes no update. With early stopping the validation rows
        keep their weights, and the validation loss and score are weighted means."""
        hidden = checks.hyperparameters(self)
        warm = self.warm_start and hasattr(self, "coefs_")
        X, names = self._check_X(X, reset=not warm)
        checks.augmentable(X, self.augment)
        check_augment(self.augment, X.shape[1], self.image_shape, 0)  # before anything changes
        target = self._target(y, len(X))
        weights = checks.sample_weights(sample_weight, len(X))
        if warm:
            self._check_warm_start(hidden, target)
        n_val = math.ceil(self.validation_fraction * len(X)) if self.early_stopping else 0
        if n_val >= len(X):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} of {len(X)} samples leaves "
                "none to train on; use more samples or a smaller validation_fraction"
            )
        if warm:
            split_seed = self._seeds().split
        else:
            split_seed = self._fresh(hidden, X.shape[1], target, names)
        self._fresh_optimizer()  # as scikit-learn's fit, warm or not
        values, validation = target.values, None
        if n_val:
            order = np.random.default_rng(split_seed).permutation(len(X))
            held, kept = order[:n_val], order[n_val:]
            validation = X[held], values[held], None if weights is None else weights[held]
            X, values = X[kept], values[kept]
            weights = None if weights is None else weights[kept]
            if validation[2] is not None and not validation[2].sum() > 0:
                raise ValueError(
                    "the sample weights of the validation rows (early stopping) sum to 0, so "
                    "they cannot score the model: give those rows weight, or set "
                    "early_stopping=False"
                )
            if not warm or self.validation_scores_ is None:
                self.validation_scores_, self.validation_loss_curve_ = [], []
        self._train(X, values, self.max_iter, validation, weights)
        return self

    def _partial_fit(
        self, X: Any, y: Any, target_of: Any, sample_weight: Any
    ) -> MultilayerPerceptron:
        """One epoch over X, y (see the estimators' partial_fit), weighted by sample_weight as
        in `fit`: `target_of(y, n, first)` checks y, for the first call or against the fitted
        model."""
        hidden = checks.hyperparameters(self)
        first = not hasattr(self, "coefs_")
        X, names = self._check_X(X, reset=first)
        checks.augmentable(X, self.augment)
        check_augment(self.augment, X.shape[1], self.image_shape, 0)  # before anything changes
        target = target_of(y, len(X), first)
        weights = checks.sample_weights(sample_weight, len(X))
        if first:
            self._fresh(hidden, X.shape[1], target, names)
        self._train(X, target.values, 1, None, weights)
        return self

    def _train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        epochs: int,
        validation: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None,
        weights: np.ndarray | None,
    ) -> None:
        """Run epochs in place on coefs_/intercepts_, with early stopping on `validation`
        (X, y and sample weights or None), each row of X weighted by `weights` (or None).

        Ctrl-C ends training after the current epoch and keeps its weights, with a warning, as
        scikit-learn does; a run that diverges raises TrainingDiverged with the weights from
        before the epoch that did it.
        """
        backend = get_backend(self.backend)
        self._make_weights_writable()
        params = self._params()
        output = self._output()
        batch_size = training.batch_rows(self.batch_size, len(X))
        if self.shuffle and self._shuffle_rng is None:  # a loaded model's first training
            self._shuffle_rng = np.random.default_rng(self._seeds().order)
        optimizer = Optimizer.of(self)  # checked with the rest by fit or partial_fit
        state = self._optimizer_state
        if state is None or not state.fits(optimizer, params):
            state = self._optimizer_state = OptimizerState.fresh(optimizer, params)
        rate = resolved_learning_rate(self.get_params(), output)
        settings = (self.learning_rate, rate, self.power_t, self.max_iter)
        if self._schedule is None or self._schedule.settings != settings:
            # New, or changed by set_params between calls: the new settings hold from here.
            self._schedule = Schedule(*settings)
            self._schedule.samples_seen = self.t_
        if getattr(self, "_dropout_seed", None) is None:  # loaded from a file without it
            self._dropout_seed = self._seeds().dropout
        how = training.Training.of(
            self, state=state, schedule=self._schedule, batch_size=batch_size,
            n_hidden=len(params.hidden_sizes), n_features=X.shape[1], seed=self._dropout_seed,
            image_shape=self.image_shape, output=output,
        )  # fmt: skip
        stalls = training.Stalls(self.tol, self.n_iter_no_change)
        best: Params | None = None

        def after_epoch(result: training.EpochResult) -> bool:
            nonlocal best
            self.n_iter_ = result.epoch
            self.t_ = how.schedule.samples_seen
            self.loss_curve_.append(result.loss)
            self.loss_ = result.loss
            self._record_epoch(result)
            line = f"epoch {result.epoch}: loss {result.loss:.6f}, {1000 * result.seconds:.1f} ms"
            score = -result.loss  # progress, as scikit-learn judges it without a validation set
            if validation is None:
                self.best_loss_ = min(result.loss, self.best_loss_ or math.inf)
            else:
                X_val, y_val, weights_val = validation
                loss, score = training.evaluate(
                    backend, params, X_val, y_val, self.activation, output, weights_val
                )
                self.validation_scores_.append(score)
                self.validation_loss_curve_.append(loss)
                line += f", validation loss {loss:.6f}, {self._score_name} {score:.4f}"
                if score > stalls.best:  # any gain keeps the weights, as scikit-learn does
                    best = params.copy()
                    self.best_validation_score_ = score
            if self.verbose:
                print(line, flush=True)
            if not stalls.add(score):  # only a gain > tol resets the count
                return False
            if self.learning_rate == "adaptive":
                return how.schedule.stalled()
            return validation is not None

        try:
            outcome = training.run_epochs(
                backend, params, X, y, how, epochs=epochs, first_epoch=self.n_iter_ + 1,
                rng=self._shuffle_rng if self.shuffle else None, n_threads=self.n_threads,
                after_epoch=after_epoch, say=print if self.verbose else None,
                sample_weight=weights,
            )  # fmt: skip
        finally:
            if best is not None:  # early stopping: end with the best weights seen
                for param, kept in zip(params.arrays(), best.arrays(), strict=True):
                    param[...] = kept
            self._freeze_weights()
        if outcome.diverged:
            message = (
                f"{type(self).__name__}: {outcome.diverged} The learning rate is the parameter "
                "learning_rate_init."
            )
            if not outcome.collapsed:
                raise training.TrainingDiverged(message)
            # The weights are finite, just useless: scikit-learn's estimators answer such
            # with a warning, and searches over learning rates go on.
            warnings.warn(message, training.TrainingCollapsedWarning, stacklevel=3)
        if outcome.interrupted:
            warnings.warn(
                f"Training interrupted by user (Ctrl-C) after epoch {self.n_iter_}: the model "
                "keeps the weights it had then.",
                UserWarning,
                stacklevel=3,
            )

    def _record_epoch(self, result: training.EpochResult) -> None:
        # A model unpickled from before the records existed has none: it starts them here.
        records = self.__dict__.setdefault("_epoch_records", {name: [] for name in EPOCH_RECORDS})
        values = (result.train_accuracy, result.learning_rate, result.seconds)
        for name, value in zip(EPOCH_RECORDS, values, strict=True):
            if math.isfinite(value):  # a regressor has no training accuracy (nan)
                records[name].append(float(value))

    def _freeze_weights(self) -> None:
        """Fitted weights are read-only: a change is a new array (or a copy made writable), so
        that the backends may prepare a fitted model once for all its predictions."""
        for a in self.coefs_ + self.intercepts_:
            a.flags.writeable = False

    def _make_weights_writable(self) -> None:
        """Training updates the weights in place: a model whose weights are read-only (e.g.
        memory-mapped by joblib.load(..., mmap_mode="r")) continues from copies."""
        if not all(a.flags.writeable for a in self.coefs_ + self.intercepts_):
            self.coefs_ = [np.array(a) for a in self.coefs_]
            self.intercepts_ = [np.array(a) for a in self.intercepts_]

    # -- prediction -----------------------------------------------------------------------------

    def _output(self) -> str:
        # A classifier pickled before the output kinds existed has no out_activation_: softmax.
        return getattr(self, "out_activation_", "softmax")

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's outputs (n_samples, n_outputs_) for X: probabilities, or for a
        regressor the predictions."""
        X, _ = self._check_X(X, reset=False)
        backend = get_backend(self.backend)
        with backend.threads(self.n_threads):
            return training.predict_proba(  # X checked above
                backend, self._params(), X, self.activation, self._output(), check_input=False
            )

    def save(
        self,
        path: str | os.PathLike,
        scores: dict[str, float | None] | None = None,
        *,
        dataset: str | None = None,
    ) -> None:
        """Write the fitted model to one .npz file (see fastnn.files.persist), with what it takes to
        go on training: the optimizer's state and the training history. `dataset` names the
        data it was trained on ("mnist", "fashion-mnist" or any name), kept in the saved config
        for `python -m fastnn.report`; a loaded model keeps the name its file had."""
        self._check_fitted()
        if dataset is not None and not isinstance(dataset, str):
            raise ValueError(f"dataset must be a name (a str); got {dataset!r}")
        check_writable(path, "model file")  # a folder, or a file where a folder must be
        dataset = dataset or getattr(self, "_dataset", None)
        config = self.get_params() if dataset is None else {**self.get_params(), "dataset": dataset}
        if not (config["random_state"] is None or checks.is_int(config["random_state"])):
            config["random_state"] = None  # a RandomState or Generator: see the class's doc
        records = getattr(self, "_epoch_records", {})
        known = {}
        if self.best_validation_score_ is not None:
            known[self._validation_score_name] = self.best_validation_score_
        schedule = self._schedule
        history = History(
            epochs=self.n_iter_,
            samples_seen=self.t_,
            loss_curve=self.loss_curve_,
            validation_scores=self.validation_scores_,
            validation_losses=self.validation_loss_curve_,
            rate=None
            if schedule is None or schedule.learning_rate == "cosine"
            else schedule.current,
            order_state=generator_state(self._shuffle_rng),
            dropout_seed=getattr(self, "_dropout_seed", None),
            **{name: records.get(name) for name in EPOCH_RECORDS},
        )
        persist.save_model(
            path, self._params(), activation=self.activation,
            classes=getattr(self, "classes_", None), output=self._output(),
            config=config, scores={**known, **(scores or {})},
            state=self._optimizer_state, history=history.to_json(),
        )  # fmt: skip

    def to_onnx(self, path: str | os.PathLike, *, input: str | None = None) -> onnx.ModelProto:
        """Write the fitted network as an ONNX file, for onnxruntime or any ONNX runtime to
        serve without fastnn, and return it. `input` is "pixels" (uint8, scaled in the graph)
        or "floats" (of the model's dtype); by default pixels for 784 features (28 x 28
        images) or with image_shape given, else floats. Outputs as scikit-learn's converters
        name them: a classifier's `label` and `probabilities`, a regressor's `variable`.
        Needs the onnx extra; see fastnn.export.onnx."""
        from fastnn.export.onnx import write_onnx  # onnx is optional: loaded on first export

        return write_onnx(self, path, input=input)
