"""What a saved model carries besides its weights and optimizer state so that training can go
on exactly where it stopped: epochs and samples so far, the loss curve, the schedule's rate and
the state of the generator that shuffles each epoch's samples; and, for the report's training
curves (fastnn.report), each epoch's training accuracy, learning rate and seconds.

It is stored as JSON in the model file's header (`history`), so reading it back checks every
field: a damaged or tampered file is a ModelFileError, never a wrong continuation.
"""

from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

import numpy as np

from fastnn.files.persist import ModelFileError

# Fields that files written by fastnn 0.1.0 before they existed lack, and what they then are.
OPTIONAL = {
    "validation_losses": None,
    "dropout_seed": None,
    "train_scores": None,
    "learning_rates": None,
    "epoch_seconds": None,
}
# The per-epoch records beside loss_curve that the report draws. Each holds one number for each
# of the LAST len(record) epochs of loss_curve: all of them, unless the model went on training
# from a file saved before the record existed (then only the epochs trained since).
EPOCH_RECORDS = ("train_scores", "learning_rates", "epoch_seconds")


class History(NamedTuple):
    epochs: int  # epochs trained so far (scikit-learn's n_iter_)
    samples_seen: int  # samples trained on so far (scikit-learn's t_)
    loss_curve: list[float]
    validation_scores: list[float] | None
    validation_losses: list[float] | None  # the loss beside each of validation_scores
    rate: float | None  # the schedule's current rate ("invscaling", "adaptive"), if one
    order_state: dict[str, Any] | None  # the epoch-order generator's state, if one
    dropout_seed: int | None  # the seed of the dropout masks (see fastnn.core.dropout)
    train_scores: list[float] | None = None  # each epoch's training accuracy, 0 to 1
    learning_rates: list[float] | None = None  # each epoch's mean rate over its batches
    epoch_seconds: list[float] | None = None  # each epoch's training time

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_json(cls, record: dict[str, Any], path: str | os.PathLike) -> History | None:
        """The history saved in `record`; None if the file has none (version 1, or saved by
        hand through persist.save_model without one)."""
        if not record:
            return None

        def fail(what: str) -> ModelFileError:
            return ModelFileError(f"{path}: the saved training history is damaged: {what}")

        record = {**OPTIONAL, **record}
        if set(record) != set(cls._fields):
            raise fail(f"its fields are {sorted(record)}, not {sorted(cls._fields)}")
        for name in ("epochs", "samples_seen"):
            if type(record[name]) is not int or record[name] < 0:
                raise fail(f"{name} must be a whole number >= 0")
        for name in ("loss_curve", "validation_scores", "validation_losses"):
            values = record[name]
            if values is None and name != "loss_curve":
                continue
            if not isinstance(values, list) or not all(_is_number(v) for v in values):
                raise fail(f"{name} must be a list of numbers")
        for name in EPOCH_RECORDS:
            values = record[name]
            if values is None:
                continue
            top = 1 if name == "train_scores" else math.inf
            if not (
                isinstance(values, list)
                and len(values) <= len(record["loss_curve"])
                and all(_is_number(v) and 0 <= v <= top for v in values)
            ):
                bounds = "from 0 to 1" if top == 1 else ">= 0"
                raise fail(f"{name} must be a list of numbers {bounds}, no longer than loss_curve")
        rate = record["rate"]
        if rate is not None and not (_is_number(rate) and rate > 0):
            raise fail("rate must be a positive number")
        seed = record["dropout_seed"]
        if seed is not None and not (type(seed) is int and 0 <= seed < 2**64):
            raise fail("dropout_seed must be a whole number from 0 to 2**64 - 1")
        order_state = record["order_state"]
        if order_state is not None and _generator(order_state) is None:
            raise fail("order_state is not the state of a NumPy PCG64 generator")
        return cls(**record)

    def epochs_of(self, values: list[float]) -> list[int]:
        """The epoch numbers (from 1) of a per-epoch record: the last len(values) epochs."""
        last = max(self.epochs, len(self.loss_curve))
        return list(range(last - len(values) + 1, last + 1))

    def order_generator(self) -> np.random.Generator | None:
        return None if self.order_state is None else _generator(self.order_state)


def continued(earlier: list[float] | None, new: list[float]) -> list[float]:
    """A per-epoch record after more epochs: the earlier epochs' (none if the model came from a
    file saved before the record existed) followed by the new ones."""
    return [*(earlier or []), *new]


def generator_state(rng: np.random.Generator | None) -> dict[str, Any] | None:
    """The state of `rng` as JSON can hold it (PCG64's state is two 128-bit integers)."""
    return None if rng is None else rng.bit_generator.state


def _generator(state: Any) -> np.random.Generator | None:
    """A PCG64 generator in `state`, or None if `state` is not one."""
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        return None
    bits = np.random.PCG64()
    try:
        bits.state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        return None
    return np.random.Generator(bits)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)
