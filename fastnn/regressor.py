"""MLPRegressor: the network as a scikit-learn style regressor, one or several outputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.core import checks
from fastnn.core.metrics import r2_score
from fastnn.perceptron import MultilayerPerceptron, Target


class MLPRegressor(MultilayerPerceptron):
    """One or more hidden layers and an identity output (out_activation_ "identity"), trained
    on scikit-learn's squared error by mini-batch gradient descent with plain SGD, momentum,
    Adam or RMSprop.

    Its parameters are MLPClassifier's (see there), from the same schema
    (fastnn.core.hyperparameters), with the same defaults: 256 hidden ReLUs, Adam on a cosine
    schedule, 10 epochs of batches of 128, float32. scikit-learn's MLPRegressor has the same
    names but its own defaults (100 hidden units, 200 epochs, ...), and a `loss` ("poisson"),
    which fastnn does not have. Standardise X and y first, as for scikit-learn's: the
    learning rates are chosen for numbers of about unit size.

    y is 1-D (one output; a column (n, 1) is taken as 1-D with a DataConversionWarning, as
    scikit-learn does) or 2-D (n_samples, n_outputs); predict answers in the same shape, as
    float64. The loss reported (loss_, loss_curve_, best_loss_) is scikit-learn's
    squared_loss, half the squared error averaged over the samples and the outputs; the
    gradients are scikit-learn's too, those of half the squared error summed over the outputs
    (and averaged over the samples), so with k outputs the loss descended is k times the one
    reported. `score` is R^2 (averaged over the outputs), as are validation_scores_ with early
    stopping.
    """

    _estimator_type = "regressor"  # how scikit-learn < 1.6 recognises a regressor
    _score_name = "R^2"
    _validation_score_name = "validation_r2"

    def _target(self, y: Any, n_samples: int) -> Target:
        y = checks.regression_target(y, n_samples)
        return Target(y, "identity", y.shape[1], None)

    def _check_same_target(self, target: Target) -> None:
        if target.n_outputs != self.n_outputs_:
            raise ValueError(
                f"y has {target.n_outputs} output(s) but the model was fitted on "
                f"{self.n_outputs_}: pass y with that many columns (warm_start=False to start "
                "anew)"
            )

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over X, y, each sample weighted by sample_weight if given (see `fit`). The
        optimizer's state and the schedule go on from the previous call. Early stopping does
        not apply."""
        return self._partial_fit(X, y, self._partial_target, sample_weight)

    def _partial_target(self, y: Any, n_samples: int, first: bool) -> Target:
        target = self._target(y, n_samples)
        if not first:
            self._check_same_target(target)
        return target

    def predict(self, X: Any) -> np.ndarray:
        """The predictions, float64: (n_samples,) for a model fitted on 1-D y, else
        (n_samples, n_outputs)."""
        outputs = self._outputs(X).astype(np.float64)
        return outputs.ravel() if self.n_outputs_ == 1 else outputs

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R^2 of predict(X) against y, averaged over the outputs (weighted by sample_weight if
        given), as scikit-learn's r2_score."""
        predicted = self.predict(X)
        predicted = predicted.reshape(len(predicted), -1)
        y = checks.regression_target(y, len(predicted))
        if y.shape != predicted.shape:
            raise ValueError(
                f"y has {y.shape[1]} output(s); the model predicts {predicted.shape[1]}"
            )
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        return r2_score(predicted, y, weights)
