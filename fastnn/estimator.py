"""MLPClassifier: the network as a scikit-learn style classifier, single-label (softmax) or
multilabel (a sigmoid per label)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.core import checks
from fastnn.perceptron import MultilayerPerceptron, NotFittedError, Target

__all__ = ["MLPClassifier", "NotFittedError"]


class MLPClassifier(MultilayerPerceptron):
    """One or more hidden layers, softmax output (or, for multilabel y, a sigmoid per label),
    trained by mini-batch gradient descent with plain SGD, momentum, Adam or RMSprop.

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
    y may also be an indicator matrix (n_samples, n_labels) of 0 and 1, several labels a
    sample (multilabel), as in scikit-learn: the outputs are then one sigmoid per label
    (out_activation_ "logistic"), trained on the binary cross-entropy summed over the labels;
    classes_ is 0..n_labels-1, predict gives the indicator matrix (probability > 0.5),
    predict_proba each label's probability and score the subset accuracy (every label of a
    sample right). Single-label y keeps a softmax output (out_activation_ "softmax") even for
    two classes, where scikit-learn uses one logistic output: n_outputs_ is then the number
    of classes.
    """

    _estimator_type = "classifier"  # how scikit-learn < 1.6 recognises a classifier
    _score_name = "accuracy"
    _validation_score_name = "validation_accuracy"

    def _target(self, y: Any, n_samples: int) -> Target:
        y = checks.classifier_target(y, n_samples)
        if y.ndim == 2:
            return Target(y, "logistic", y.shape[1], np.arange(y.shape[1]))
        classes, index = checks.sorted_labels(y, "y")
        if len(classes) < 2:
            raise ValueError(f"y has only one class {classes.tolist()}; a classifier needs two")
        return Target(index, "softmax", len(classes), classes)

    def _check_same_target(self, target: Target) -> None:
        if target.output != self._output() or not np.array_equal(target.classes, self.classes_):
            kind = "labels" if self._output() == "logistic" else "classes"
            raise ValueError(
                f"warm_start=True needs y with the {kind} of the previous fit, "
                f"{self.classes_.tolist()}; got {target.classes.tolist()}. Set "
                "warm_start=False to start anew"
            )

    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> MLPClassifier:
        """One epoch over X, y, each sample weighted by sample_weight if given (see `fit`); the
        first call needs every label the model will see in `classes` (not for a multilabel
        indicator matrix y). The optimizer's state and the schedule go on from the previous
        call. Early stopping does not apply."""
        return self._partial_fit(
            X, y, lambda y, n, first: self._partial_target(y, n, first, classes), sample_weight
        )

    def _partial_target(self, y: Any, n_samples: int, first: bool, classes: Any) -> Target:
        y = checks.classifier_target(y, n_samples)
        if y.ndim == 2:  # multilabel: the labels are the columns
            target = Target(y, "logistic", y.shape[1], np.arange(y.shape[1]))
            if not first and (self._output() != "logistic" or len(self.classes_) != y.shape[1]):
                raise ValueError(
                    f"y has {y.shape[1]} label columns; the model was fitted on "
                    f"{self._described_target()}"
                )
            return target
        if first and classes is None:
            raise ValueError(
                "partial_fit needs classes on its first call: every label the model will ever "
                "see, e.g. classes=np.unique(y_all)"
            )
        if not first and self._output() != "softmax":
            raise ValueError(
                f"y holds one label a sample; the model was fitted on {self._described_target()}"
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
        index = np.searchsorted(known, y).astype(np.int64)
        return Target(index, "softmax", len(known), known)

    def _described_target(self) -> str:
        if self._output() == "logistic":
            return f"an indicator matrix of {len(self.classes_)} labels"
        return f"single labels of the classes {self.classes_.tolist()}"

    # -- prediction -----------------------------------------------------------------------------

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in `classes_` order; multilabel:
        each label's probability."""
        return self._outputs(X)

    def predict(self, X: Any) -> np.ndarray:
        """The class of each sample; multilabel: the indicator matrix of the labels whose
        probability is above 0.5."""
        proba = self.predict_proba(X)
        if self._output() == "logistic":
            return (proba > 0.5).astype(np.int64)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of predict(X) against y (weighted by sample_weight if given); multilabel:
        the share of samples with every label right (subset accuracy)."""
        predicted = self.predict(X)
        y = checks.classifier_target(y, len(predicted))
        if predicted.ndim != y.ndim or predicted.shape[1:] != y.shape[1:]:
            raise ValueError(
                f"y of shape {y.shape} does not match the model's answers {predicted.shape}"
            )
        right = predicted == y if y.ndim == 1 else (predicted == y).all(axis=1)
        return float(np.average(right, weights=sample_weight))
