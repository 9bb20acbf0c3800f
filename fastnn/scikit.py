"""What scikit-learn asks of an estimator besides fit and predict: its parameters by name
(get_params, set_params, the repr), its tags and whether it is fitted. Only scikit-learn calls
__sklearn_tags__, so scikit-learn is imported there alone and is never a dependency."""

from __future__ import annotations

import inspect
from typing import Any, Self

from fastnn.core.model import check_dtype


class ScikitLearnProtocol:
    """For an estimator (its `_estimator_type` "classifier" or "regressor") whose __init__
    takes its parameters by keyword and stores each under its own name; fitted once it has
    `coefs_`."""

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {sorted(valid)}."
                )
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        # Only scikit-learn calls this, so importing it here adds no dependency.
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

        classifier = self._estimator_type == "classifier"
        return Tags(
            estimator_type=self._estimator_type,
            target_tags=TargetTags(required=True, multi_output=True),
            input_tags=InputTags(sparse=True),  # scipy.sparse X: fastnn.core.checks
            classifier_tags=ClassifierTags(multi_label=True) if classifier else None,
            regressor_tags=None if classifier else RegressorTags(),
        )

    def _expected_failed_checks(self) -> dict[str, str]:
        """The checks of scikit-learn's check_estimator this estimator fails, each with why, for
        its expected_failed_checks (scikit-learn reads none off an estimator since 1.6).

        Sample-weight equivalence, on dense and on sparse data: in float32 the rows repeated
        and the rows weighted sum the same terms in other orders, and 10 epochs of those
        roundings move predict_proba by more than the check's rtol of 1e-7 (it passes in
        float64, where the two agree to 1e-12: tests/test_sample_weight.py)."""
        if check_dtype(self.dtype) == "float64":
            return {}
        why = "float32 rounding: weights and repeated rows sum in other orders"
        return {
            f"check_sample_weight_equivalence_on_{data}_data": why for data in ("dense", "sparse")
        }

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "coefs_")

    def __repr__(self) -> str:
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if repr(value) != repr(defaults[name].default)
        ]
        return f"{type(self).__name__}({', '.join(changed)})"
