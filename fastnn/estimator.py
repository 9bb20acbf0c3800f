"""MLPClassifier: the network as a scikit-learn style estimator, and `load`."""

from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from fastnn.backends import get_backend
from fastnn.core import checks, training
from fastnn.core.augment import check_augment
from fastnn.core.hyperparameters import preset_params, resolved_learning_rate
from fastnn.core.model import Params, check_dtype, init_params
from fastnn.core.optim import Optimizer, OptimizerState, Schedule
from fastnn.files import persist
from fastnn.files.history import EPOCH_RECORDS, History, generator_state
from fastnn.scikit import ScikitLearnProtocol

if TYPE_CHECKING:
    import onnx


class NotFittedError(ValueError, AttributeError):
    """The model was used before `fit`; like scikit-learn's, both a ValueError and an
    AttributeError. When scikit-learn is loaded, what is raised is also its NotFittedError."""


class MLPClassifier(ScikitLearnProtocol):
    """One or more hidden layers, softmax output, trained by mini-batch gradient descent with
    plain SGD, momentum, Adam or RMSprop.

    Parameters follow scikit-learn's MLPClassifier where they exist there, names and formulas
    (see fastnn.core.optim). The defaults are fastnn's, the training command's too (see
    fastnn.core.hyperparameters): 256 hidden ReLUs, Adam on a cosine schedule, 10 epochs of
    batches of 128, float32. `learning_rate_init=None` (the default) takes the solver's rate:
    0.003 for adam and rmsprop, 0.5 * (1 - momentum) for sgd (scikit-learn's is 0.001 for
    every solver). The schedules are scikit-learn's "constant", "invscaling" and "adaptive",
    which apply to every solver here, and "cosine" (per step down towards 0 over max_iter
    epochs). fastnn's own: `backend` ("numba" or "numpy"), `dtype`, `init` ("he", "xavier",
    "uniform"), `n_threads`, `rho`, RMSprop's decay (PyTorch's alpha), `dropout`, the
    probability of dropping a hidden unit in training (one for all hidden layers or one per
    layer; see fastnn.core.dropout), `input_dropout`, that of dropping an input feature, and
    `max_norm`, the longest a hidden unit's incoming weight vector may get (fastnn.core.optim).
    `augment` transforms every training image afresh in every epoch: "shift", "affine" or
    "elastic", or a dict with "kind" and strengths such as {"kind": "elastic", "alpha": 8};
    rows are 28x28 images unless `image_shape` says otherwise (see fastnn.core.augment).
    The optimizer's state lives with the model: partial_fit goes on with it, fit starts a
    fresh one (with warm_start=True, from the fitted weights), and `save` stores it.
    Pixels (uint8, or integers of any type all within 0..255) are scaled to [0, 1]; other
    numbers are used as they are (with a warning if they are floats that look like pixels).
    `batch_size="auto"` means min(200, n_samples), as in scikit-learn; "full" every sample.
    Without early stopping training runs exactly `max_iter` epochs. An epoch after which the
    loss is not finite or has blown up raises fastnn.core.training.TrainingDiverged; one after
    which the network gives one output for every input stops training with a
    fastnn.core.training.TrainingCollapsedWarning; either way the weights from before that epoch
    are kept. Ctrl-C stops training after the current epoch, keeping its weights (a warning
    says so). `from_preset` gives the training command's presets as estimators.
    `random_state` takes what scikit-learn's does: None (fresh seeds from the OS at every fit),
    a whole number (the same model at every fit), or a np.random.RandomState or
    np.random.Generator. Such an instance is used as scikit-learn uses one: each fit from fresh
    weights draws 63 bits from it to seed fastnn's own generators, so it advances and two fits
    with the same instance differ, while a RandomState(0) made anew gives the same model each
    time (not the one random_state=0 gives). get_params and the repr show it as it is (and
    scikit-learn's clone copies it in its current state); `save` records None for it, as a
    generator's state is not a setting to write down (the file keeps the sample order and
    dropout seed, so training goes on after a load exactly as it would have).
    """

    _estimator_type = "classifier"  # how scikit-learn < 1.6 recognises a classifier

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
    def from_preset(cls, name: str = "default", **params: Any) -> MLPClassifier:
        """The training command's preset `name` (see fastnn.core.hyperparameters.PRESETS) as an
        estimator: its network, update rule, max_iter (the command's epochs), batch size,
        dtype, backend and random_state (its seed); `params` override them."""
        return cls(**{**preset_params(name), **params})

    # -- checks ---------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "coefs_"):
            raise checks.also_scikit_learns(NotFittedError)(
                "This MLPClassifier is not fitted yet: call fit (or partial_fit) first, "
                "or load a saved model with fastnn.load."
            )

    def _check_X(self, X: Any, *, reset: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """X checked for fit (reset) or for the fitted model, and its str column names if any."""
        if reset:
            return checks.features(X, self.dtype, None, None)
        self._check_fitted()
        names = getattr(self, "feature_names_in_", None)
        return checks.features(X, self.coefs_[0].dtype, self.n_features_in_, names)

    # -- training -------------------------------------------------------------------------------

    def _params(self) -> Params:
        """The weights as a Params; its arrays are coefs_ and intercepts_ themselves."""
        return Params(self.coefs_, self.intercepts_)

    def _start(self, params: Params, classes: np.ndarray, names: np.ndarray | None) -> None:
        """Take params as the weights and begin a fresh training record."""
        self.coefs_ = params.coefs
        self.intercepts_ = params.intercepts
        self.classes_ = classes
        self.n_features_in_ = params.n_in
        if names is None:
            self.__dict__.pop("feature_names_in_", None)
        else:
            self.feature_names_in_ = names
        self.loss_curve_: list[float] = []
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
        self,
        hidden: tuple[int, ...],
        n_features: int,
        classes: np.ndarray,
        names: np.ndarray | None,
    ) -> int:
        """Start from random weights; returns the seed of the validation split."""
        seeds = self._seeds()
        params = init_params(n_features, hidden, len(classes), self.init, seeds.init, self.dtype)
        self._start(params, classes, names)
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

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train for up to `max_iter` epochs: from fresh weights, or with warm_start=True and a
        fitted model, on from its weights, as scikit-learn does (the epoch count, loss curve
        and sample order go on too, so 2 epochs and then 3 are the bits of 5 in one go)."""
        hidden = checks.hyperparameters(self)
        warm = self.warm_start and hasattr(self, "coefs_")
        X, names = self._check_X(X, reset=not warm)
        check_augment(self.augment, X.shape[1], self.image_shape, 0)  # before anything changes
        classes, y_index = checks.sorted_labels(checks.labels(y, len(X)), "y")
        if len(classes) < 2:
            raise ValueError(f"y has only one class {classes.tolist()}; a classifier needs two")
        if warm:
            self._check_warm_start(hidden, classes)
        n_val = math.ceil(self.validation_fraction * len(X)) if self.early_stopping else 0
        if n_val >= len(X):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} of {len(X)} samples leaves "
                "none to train on; use more samples or a smaller validation_fraction"
            )
        if warm:
            split_seed = self._seeds().split
        else:
            split_seed = self._fresh(hidden, X.shape[1], classes, names)
        self._fresh_optimizer()  # as scikit-learn's fit, warm or not
        validation = None
        if n_val:
            order = np.random.default_rng(split_seed).permutation(len(X))
            validation = X[order[:n_val]], y_index[order[:n_val]]
            X, y_index = X[order[n_val:]], y_index[order[n_val:]]
            if not warm or self.validation_scores_ is None:
                self.validation_scores_, self.validation_loss_curve_ = [], []
        self._train(X, y_index, self.max_iter, validation)
        return self

    def _check_warm_start(self, hidden: tuple[int, ...], classes: np.ndarray) -> None:
        if not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"warm_start=True needs y with the classes of the previous fit, "
                f"{self.classes_.tolist()}; got {classes.tolist()}. Set warm_start=False to "
                "start anew"
            )
        fitted = (self._params().hidden_sizes, self.coefs_[0].dtype.name)
        if fitted != (hidden, check_dtype(self.dtype)):
            raise ValueError(
                f"warm_start=True needs the network of the previous fit (hidden layers "
                f"{fitted[0]}, {fitted[1]}); hidden_layer_sizes or dtype changed. Set "
                "warm_start=False to start anew"
            )

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over X, y; the first call needs every label the model will see in
        `classes`. The optimizer's state and the schedule go on from the previous call. Early
        stopping does not apply."""
        hidden = checks.hyperparameters(self)
        first = not hasattr(self, "coefs_")
        X, names = self._check_X(X, reset=first)
        check_augment(self.augment, X.shape[1], self.image_shape, 0)  # before anything changes
        y = checks.labels(y, len(X))
        if first and classes is None:
            raise ValueError(
                "partial_fit needs classes on its first call: every label the model will ever "
                "see, e.g. classes=np.unique(y_all)"
            )
        known = (
            self.classes_ if not first else checks.sorted_labels(np.asarray(classes), "classes")[0]
        )
        if classes is not None and not first and not np.array_equal(np.unique(classes), known):
            raise ValueError(f"classes differ from the earlier calls' {known.tolist()}")
        if len(known) < 2:
            raise ValueError(f"classes has {len(known)} label(s); a classifier needs two")
        unknown = ~np.isin(y, known)
        if unknown.any():
            shown = list(dict.fromkeys(y[unknown].tolist()))[:5]
            raise ValueError(
                f"y holds labels not in classes: {shown}; classes are {known.tolist()}"
            )
        if first:
            self._fresh(hidden, X.shape[1], known, names)
        self._train(X, np.searchsorted(known, y).astype(np.int64), 1, None)
        return self

    def _train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        epochs: int,
        validation: tuple[np.ndarray, np.ndarray] | None,
    ) -> None:
        """Run epochs in place on coefs_/intercepts_, with early stopping on `validation`.

        Ctrl-C ends training after the current epoch and keeps its weights, with a warning, as
        scikit-learn does; a run that diverges raises TrainingDiverged with the weights from
        before the epoch that did it.
        """
        backend = get_backend(self.backend)
        self._make_weights_writable()
        params = self._params()
        batch_size = training.batch_rows(self.batch_size, len(X))
        if self.shuffle and self._shuffle_rng is None:  # a loaded model's first training
            self._shuffle_rng = np.random.default_rng(self._seeds().order)
        optimizer = Optimizer.of(self)  # checked with the rest by fit or partial_fit
        state = self._optimizer_state
        if state is None or not state.fits(optimizer, params):
            state = self._optimizer_state = OptimizerState.fresh(optimizer, params)
        rate = resolved_learning_rate(self.get_params())
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
            image_shape=self.image_shape,
        )  # fmt: skip
        stalls = training.Stalls(self.tol, self.n_iter_no_change)
        best: Params | None = None

        def after_epoch(result: training.EpochResult) -> bool:
            nonlocal best
            self.n_iter_ = result.epoch
            self.t_ = how.schedule.samples_seen
            self.loss_curve_.append(result.loss)
            self._record_epoch(result)
            line = f"epoch {result.epoch}: loss {result.loss:.6f}, {1000 * result.seconds:.1f} ms"
            score = -result.loss  # progress, as scikit-learn judges it without a validation set
            if validation is not None:
                loss, score = training.evaluate(backend, params, *validation, self.activation)
                self.validation_scores_.append(score)
                self.validation_loss_curve_.append(loss)
                line += f", validation loss {loss:.6f}, accuracy {score:.4f}"
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
            )  # fmt: skip
        finally:
            if best is not None:  # early stopping: end with the best weights seen
                for param, kept in zip(params.arrays(), best.arrays(), strict=True):
                    param[...] = kept
            self._freeze_weights()
        if outcome.diverged:
            message = (
                f"MLPClassifier: {outcome.diverged} The learning rate is the parameter "
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

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in `classes_` order."""
        X, _ = self._check_X(X, reset=False)
        backend = get_backend(self.backend)
        with backend.threads(self.n_threads):
            return training.predict_proba(backend, self._params(), X, self.activation)

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of predict(X) against y (weighted by sample_weight if given)."""
        predicted = self.predict(X)
        y = checks.labels(y, len(predicted))
        return float(np.average(predicted == y, weights=sample_weight))

    def to_onnx(self, path: str | os.PathLike, *, input: str | None = None) -> onnx.ModelProto:
        """Write the fitted network as an ONNX file, for onnxruntime or any ONNX runtime to
        serve without fastnn, and return it. `input` is "pixels" (uint8, scaled in the graph)
        or "floats" (of the model's dtype); by default pixels for 784 features (28 x 28
        images) or with image_shape given, else floats. Outputs `label` and `probabilities`,
        as scikit-learn's converters name them. Needs the onnx extra; see fastnn.export.onnx."""
        from fastnn.export.onnx import write_onnx  # onnx is optional: loaded on first export

        return write_onnx(self, path, input=input)

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
        dataset = dataset or getattr(self, "_dataset", None)
        config = self.get_params() if dataset is None else {**self.get_params(), "dataset": dataset}
        if not (config["random_state"] is None or checks.is_int(config["random_state"])):
            config["random_state"] = None  # a RandomState or Generator: see the class's doc
        records = getattr(self, "_epoch_records", {})
        known = {}
        if self.best_validation_score_ is not None:
            known["validation_accuracy"] = self.best_validation_score_
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
            path, self._params(), activation=self.activation, classes=self.classes_,
            config=config, scores={**known, **(scores or {})},
            state=self._optimizer_state, history=history.to_json(),
        )  # fmt: skip
