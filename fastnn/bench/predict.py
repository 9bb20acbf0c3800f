"""The predict section of fastnn.bench: class probabilities from a fitted network, fastnn's numba
and numpy backends and PyTorch side by side, in one process, the contenders taking turns.

- Batch: BATCH_ROWS rows (fewer under --rows) through the network of each chosen workload, once
  for each network (a workload that differs from an earlier one in its solver only has the same
  one), and through BEST_NETWORK; one call a run, the median run after a warm-up round.
- One row at a time, as fastnn.serve's draw page and any online use ask: at each of
  ONE_ROW_HIDDEN on MNIST's pixels, `calls` calls a contender and round, each call timed, rows
  taken in turn; the median call of all rounds after the warm-up round.

fastnn's contenders are what a user holds: a model file of the weights (as `fastnn.train --save`
writes one) loaded by fastnn.load with the backend and the threads set, and its
MLPClassifier.predict_proba, as fastnn.serve calls it. PyTorch: the same weights in nn.Linear
layers with ReLU between them, eval(), under torch.inference_mode, softmax; numpy in and out
(from_numpy and .numpy() inside the timing), as fastnn's calls take and give. Each contender
takes X as in training (see Prepared.input_form). Before the timing each contender's
probabilities are set against numpy's: the largest difference is reported, so that a fast
wrong answer shows.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fastnn.bench.data import N_CLASSES
from fastnn.bench.peers import OURS, PeerUnavailable, torch_network
from fastnn.bench.text import MISSING, markdown_table, times
from fastnn.bench.timing import time_alternating
from fastnn.bench.workloads import Contender, Prepared, Workload, prepare, workload
from fastnn.files.persist import save_model
from fastnn.saved import load

BATCH_ROWS = 10_000
ONE_ROW_HIDDEN = ((128,), (512,), (800, 800))
ONE_ROW_CALLS = 200
QUICK_ONE_ROW_CALLS = 20
# The `best` preset's layers, which issue 28 measured prediction on: in batches too.
BEST_NETWORK = Workload("mnist-h800-800", "mnist", (800, 800), 128, "float32", "he")
REFERENCE = "fastnn numpy"
NOTES = (
    "fastnn: a model file of the network's weights loaded by fastnn.load with the backend and "
    "threads set, and its MLPClassifier.predict_proba (what fastnn.serve calls); PyTorch (with "
    "--peers, where installed): the same weights in nn.Linear layers, eval(), "
    "torch.inference_mode, softmax, numpy in and out. "
    "Inputs as in training: numba takes MNIST's uint8 pixels as loaded, the others X/255 in "
    "float; on the dense networks all take the same float32 X. Weights as initialised (seed 0): "
    "the arithmetic does not depend on them."
)


class Predictor(NamedTuple):
    name: str
    predict: Callable[[np.ndarray], np.ndarray]  # rows -> class probabilities
    X: np.ndarray  # the rows, in this contender's input form


def fastnn_predictor(p: Prepared, backend: str, threads: int, folder: Path) -> Predictor:
    path = folder / f"{p.workload.name}-{backend}.npz"
    config = dict(backend=backend, n_threads=threads)
    save_model(path, p.params0, activation="relu", classes=np.arange(N_CLASSES), config=config)
    model = load(path)
    X = p.scaled() if backend == "numpy" else p.X  # as in training
    return Predictor(f"fastnn {backend}", model.predict_proba, X)


def torch_predictor(p: Prepared, threads: int) -> Predictor:
    try:
        import torch
    except ImportError:
        raise PeerUnavailable("not installed") from None
    torch.set_num_threads(threads)
    network = torch_network(p.params0).eval()

    def predict(X: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(network(torch.from_numpy(X)), dim=1).numpy()

    return Predictor(f"pytorch {torch.__version__}", predict, p.scaled())


def predictors(
    p: Prepared, backends: Sequence[str], threads: int, with_torch: bool, folder: Path
) -> tuple[list[Predictor], dict[str, str]]:
    """The contenders on p's network (fastnn's by backend name), and the peers skipped."""
    ordered = sorted(backends, key=lambda backend: backend != "numba")  # ours first
    found = [fastnn_predictor(p, backend, threads, folder) for backend in ordered]
    skipped = {}
    if with_torch:
        try:
            found.append(torch_predictor(p, threads))
        except PeerUnavailable as exc:
            skipped["pytorch"] = str(exc)
    return found, skipped


def differences(found: Sequence[Predictor], rows: int) -> dict[str, float]:
    """Each contender's largest difference from the reference's probabilities on the first
    rows (none without the reference)."""
    reference = next((f for f in found if f.name == REFERENCE), None)
    if reference is None:
        return {}
    expected = reference.predict(reference.X[:rows]).astype(np.float64)
    return {f.name: float(np.abs(f.predict(f.X[:rows]) - expected).max()) for f in found}


def ratios(values: dict[str, float]) -> dict[str, float | None]:
    """Each contender's time over fastnn numba's: how many times faster numba is."""
    ours = values.get(OURS)
    return {name: (v / ours if ours else None) for name, v in values.items()}


def time_batch(found: Sequence[Predictor], repeats: int) -> dict[str, float]:
    """The median seconds of predicting all of each contender's rows at once."""
    contenders = [
        Contender(f.name, "", lambda: None, lambda _, f=f: f.predict(f.X), len(f.X)) for f in found
    ]
    runs = time_alternating(contenders, repeats)
    return {name: statistics.median(seconds) for name, seconds in runs.items()}


def time_one_row(found: Sequence[Predictor], calls: int, repeats: int) -> dict[str, float]:
    """The median seconds of one call on one row, over `calls` calls a contender and round."""
    seconds: dict[str, list[float]] = {f.name: [] for f in found}

    def run(f: Predictor) -> None:
        for call in range(calls):
            r = call % len(f.X)
            row = f.X[r : r + 1]
            start = time.perf_counter()
            f.predict(row)
            seconds[f.name].append(time.perf_counter() - start)

    def forget_warm_up(round_: int) -> None:
        if round_ == 0:
            for kept in seconds.values():
                kept.clear()

    contenders = [Contender(f.name, "", lambda: None, lambda _, f=f: run(f), calls) for f in found]
    time_alternating(contenders, repeats, on_round=forget_warm_up)
    return {name: statistics.median(kept) for name, kept in seconds.items()}


def networks(names: Sequence[str]) -> list[Workload]:
    """The chosen workloads' networks, each once, then BEST_NETWORK; not the sparse workload's,
    whose prediction on a CSR matrix the bench does not time, nor the regressor's, which gives
    no probabilities to time."""
    chosen, seen = [], set()
    for w in [*map(workload, names), BEST_NETWORK]:
        if w.sparse or w.output != "softmax":
            continue
        key = (w.dataset, w.standardise, w.hidden, w.dtype)
        if key not in seen:
            seen.add(key)
            chosen.append(w)
    return chosen


def measure_predict(
    names: Sequence[str],
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    backends: Sequence[str],
    threads: int,
    rows: int | None,
    calls: int,
    repeats: int,
    with_torch: bool,
    log: Callable[[str], None],
) -> dict:
    """The predict section, JSON-ready: `names` the chosen workloads, `data` the training sets
    by name (MNIST's always: the one-row networks take its rows), `backends` fastnn's."""
    batch_rows = min(rows or BATCH_ROWS, BATCH_ROWS)
    batch, one_row, skipped = [], [], {}
    with tempfile.TemporaryDirectory(prefix="fastnn-bench-") as tmp:
        for w in networks(names):
            p = prepare(w, *data[w.dataset], rows=batch_rows)
            found, skipped_here = predictors(p, backends, threads, with_torch, Path(tmp))
            skipped.update(skipped_here)
            log(f"predict: {len(p.X):,} rows through {w.name}'s network ...")
            agreement = differences(found, len(p.X))
            seconds = time_batch(found, repeats)
            batch.append(
                dict(
                    network=w.name, label=w.network_label(), rows=len(p.X), seconds=seconds,
                    over_numba=ratios(seconds), max_difference=agreement,
                )
            )  # fmt: skip
        for hidden in ONE_ROW_HIDDEN:
            w = Workload(f"mnist-h{'-'.join(map(str, hidden))}", "mnist", hidden, 128,
                         "float32", "he")  # fmt: skip
            p = prepare(w, *data["mnist"], rows=max(calls, 1))
            found, _ = predictors(p, backends, threads, with_torch, Path(tmp))
            log(f"predict: one row at a time through {w.name}'s network, {calls} calls ...")
            agreement = differences(found, 1)
            seconds = time_one_row(found, calls, repeats)
            one_row.append(
                dict(
                    network=w.name, label=w.network_label(), seconds=seconds,
                    over_numba=ratios(seconds), max_difference=agreement,
                )
            )  # fmt: skip
    return dict(
        threads=threads, batch_rows=batch_rows, calls=calls, repeats=repeats, batch=batch,
        one_row=one_row, skipped=skipped, notes=NOTES,
    )  # fmt: skip


def milliseconds(s: float) -> str:
    return f"{s * 1e3:.3g}"


def microseconds(s: float) -> str:
    return f"{s * 1e6:,.0f}"


def _table(
    runs: Sequence[dict], unit: str, cell: Callable[[float], str], contenders: Sequence[str]
) -> str:
    others = [name for name in contenders if name != OURS] if OURS in contenders else []
    headers = ["network", *(f"{name} {unit}" for name in contenders)]
    headers += [f"{name} / numba" for name in others]
    headers.append("largest difference from numpy's P")
    rows = []
    for run in runs:
        cells = [run["label"] + (f", {run['rows']:,} rows" if "rows" in run else "")]
        for name in contenders:
            value = run["seconds"].get(name)
            cells.append(MISSING if value is None else cell(value))
        cells += [times(run["over_numba"].get(name)) for name in others]
        diffs = run["max_difference"]
        cells.append(f"{max(diffs.values()):.1e}" if diffs else MISSING)
        rows.append(cells)
    return markdown_table(headers, rows)


def predict_lines(section: dict) -> list[str]:
    """The predict section's tables and notes, for the report."""
    runs = section["batch"] + section["one_row"]
    contenders = list(dict.fromkeys(name for run in runs for name in run["seconds"]))
    lines = [
        "",
        f"**Prediction**, {section['threads']} threads: predict_proba on each network's "
        f"rows at once, the median of {section['repeats']} run(s) (ms):",
        "",
        _table(section["batch"], "ms", milliseconds, contenders),
        "",
        f"One row a call, the median of {section['calls']} calls a contender in each of "
        f"{section['repeats']} round(s) (µs):",
        "",
        _table(section["one_row"], "µs", microseconds, contenders),
        "",
        f"- {section['notes']} `name / numba`: how many times faster fastnn numba is.",
    ]
    lines += [f"- {name} (predict): {why}, skipped." for name, why in section["skipped"].items()]
    return lines
