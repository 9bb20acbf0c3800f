"""`python -m fastnn.bench --time-to-accuracy`: seconds of training until the MNIST test
accuracy first reaches each target (97%, 98% and 98.5% unless told).

Contenders: fastnn's MNIST presets, each by its own recipe on the numba backend, and where
installed a plain PyTorch loop and scikit-learn's MLPClassifier. Each trains epoch by epoch,
its test accuracy measured after each one off the clock, until the highest target or the
recipe's last epoch. fastnn's epochs are partial_fit calls on `from_preset`'s model, whose
max_iter stays the recipe's: the cosine schedule, planned over max_iter, goes on across calls,
so they give the bits of one `fit` (the tests check it for every preset), at its cost (10
epochs of `default` on 60,000 rows: fit 4.85 and 4.90 s, partial_fit 4.93 and 4.87 s).

The peers' recipes were picked on a dev split, not the test set: trained on the first 50,000
training rows, by the seconds to 98% on the other 10,000 (seed 0, 2 threads, seconds from quiet
runs); the epoch that first reached 98%, batch 128 unless said. PyTorch, Adam, a per-step
cosine over E epochs: 784-512-10 lr 0.002 E=8: 5 (5.2 s, best 98.28%, chosen), E=6: 5, E=10: 6,
batch 256 or lr 0.001 or 0.0015: never; 784-256-10 lr 0.003 E=10: 6 (5.4 s), E=8: 7, E=6: never
(97.98%), batch 64 E=6: 5 (7.0 s); 784-768-10 lr 0.002 E=8: 5, but 40% slower an epoch;
784-1024-10 lr 0.001 E=6: never; 784-512-512-10 lr 0.001 E=8: 5 (11.9 s); a constant lr 0.001:
784-512-10 in 9 (8.6 s), 784-256-10 never. scikit-learn, Adam (a constant rate), alpha 1e-4:
784-256-10 lr 0.001 or 0.002, or batch 64: never in 10 epochs (best 97.83%); 784-512-10 lr
0.001: 10 (19.2 s; chosen, with 15 epochs at most), lr 0.002: 11, alpha 1e-3: 10, batch 256:
12; 784-1024-10 lr 0.001: 8, at about twice the work an epoch. None reached 98.5%.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import sys
import time
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from fastnn.backends import get_backend
from fastnn.bench.machine import machine
from fastnn.bench.peers import PeerUnavailable as Unavailable
from fastnn.bench.report import BUSY_OTHER_CORES, markdown_table, write_json, write_outputs
from fastnn.bench.timing import blas_threads, others_cpu, settle
from fastnn.core import interrupt
from fastnn.core.hyperparameters import PRESETS
from fastnn.data import DataError, Dataset, load_dataset, scale
from fastnn.estimator import MLPClassifier
from fastnn.files.atomic import check_writable, write_text
from fastnn.train.options import preset_options
from fastnn.version import __version__

TARGETS = (0.97, 0.98, 0.985)
NOT_RACED = ("seeds",)  # the tutorials' run (hidden 10, full batch) never comes near 97%
CLASSES = np.arange(10)
TORCH_RECIPE = dict(hidden=512, lr=0.002, batch=128, epochs=8)  # see the docstring
SKLEARN_RECIPE = dict(hidden=512, lr=0.001, batch=128, alpha=1e-4, epochs=15)
DEFAULT_JSON, DEFAULT_PNG = "time-to-accuracy.json", "time-to-accuracy.png"
STOP_NOTICE = "Ctrl-C: stopping after this epoch, writing what was measured (Ctrl-C again: quit)"
Log = Callable[[str], None]


class Racer(NamedTuple):
    name: str
    recipe: str
    epochs: int  # the recipe's epochs: the most it trains
    train_epoch: Callable[[], object]  # one more epoch: on the clock
    accuracy: Callable[[], float]  # on the test set, now: off the clock


def fastnn_presets() -> list[str]:
    """The MNIST presets, so that one added later races without a change here."""
    return [n for n, p in PRESETS.items() if p.get("dataset") == "mnist" and n not in NOT_RACED]


def describe(preset: str) -> str:
    """The preset's options that differ from the defaults (a later preset's new ones too)."""
    words = [w for w in preset_options(preset) if w not in ("--dev-size", "--log-every")]
    options = f"`{' '.join(words)}`" if words else "the defaults"
    return f"{options}; numba, uint8 pixels as loaded"


def fastnn_racer(preset: str, data: Dataset, threads: int, seed: int) -> Racer:
    try:
        get_backend("numba")
    except ValueError as exc:
        raise Unavailable(str(exc)) from None
    settings = dict(backend="numba", n_threads=threads, random_state=seed)
    # Off the clock, as for every contender: load (or compile) the kernels this preset uses.
    warm_up = MLPClassifier.from_preset(preset, **settings)
    warm_up.partial_fit(data.X_train[:256], data.y_train[:256], CLASSES)
    model = MLPClassifier.from_preset(preset, **settings)
    return Racer(
        f"fastnn {preset}", describe(preset), model.max_iter,
        lambda: model.partial_fit(data.X_train, data.y_train, CLASSES),
        lambda: model.score(data.X_test, data.y_test),
    )  # fmt: skip


def torch_racer(data: Dataset, threads: int, seed: int) -> Racer:
    try:
        import torch
    except ImportError:
        raise Unavailable("not installed") from None
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    r, nn = TORCH_RECIPE, torch.nn
    X, Xt = torch.from_numpy(scale(data.X_train)), torch.from_numpy(scale(data.X_test))
    y, yt = torch.from_numpy(data.y_train.astype(np.int64)), torch.from_numpy(data.y_test)
    model = nn.Sequential(nn.Linear(X.shape[1], r["hidden"]), nn.ReLU(),
                          nn.Linear(r["hidden"], len(CLASSES)))  # fmt: skip
    loss_fn = nn.CrossEntropyLoss()
    # Off the clock: torch's first call sets itself up; the first step's zero_grad clears this.
    loss_fn(model(X[: r["batch"]]), y[: r["batch"]]).backward()
    optimizer = torch.optim.Adam(model.parameters(), lr=r["lr"])
    steps = r["epochs"] * -(-len(X) // r["batch"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    shuffle = torch.Generator().manual_seed(seed)

    def train_epoch() -> None:
        order = torch.randperm(len(X), generator=shuffle)
        for start in range(0, len(X), r["batch"]):
            rows = order[start : start + r["batch"]]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(X[rows]), y[rows]).backward()
            optimizer.step()
            schedule.step()

    def accuracy() -> float:
        with torch.no_grad():
            return float((model(Xt).argmax(dim=1) == yt).double().mean())

    recipe = (
        f"784-{r['hidden']}-10 ReLU, Adam lr {r['lr']:g} with a per-step cosine over "
        f"{r['epochs']} epochs, batch {r['batch']}, a plain loop over shuffled float32 X/255"
    )
    return Racer(f"pytorch {torch.__version__}", recipe, r["epochs"], train_epoch, accuracy)


def sklearn_racer(data: Dataset, threads: int, seed: int) -> Racer:  # on BLAS's threads
    try:
        import sklearn
        from sklearn.neural_network import MLPClassifier as SklearnMLP
    except ImportError:
        raise Unavailable("not installed") from None
    r = SKLEARN_RECIPE
    X, Xt = scale(data.X_train), scale(data.X_test)  # float32, which scikit-learn keeps
    model = SklearnMLP((r["hidden"],), solver="adam", learning_rate_init=r["lr"],
                       batch_size=r["batch"], alpha=r["alpha"], random_state=seed)  # fmt: skip
    recipe = (
        f"784-{r['hidden']}-10 ReLU, adam lr {r['lr']:g} (constant), batch {r['batch']}, "
        f"alpha {r['alpha']:g}, up to {r['epochs']} epochs of partial_fit on float32 X/255"
    )
    return Racer(
        f"scikit-learn {sklearn.__version__}", recipe, r["epochs"],
        lambda: model.partial_fit(X, data.y_train, classes=CLASSES),
        lambda: float(model.score(Xt, data.y_test)),
    )  # fmt: skip


PEERS = {"torch": torch_racer, "sklearn": sklearn_racer}  # by their --contenders names


def race(racer: Racer, targets: list[float], stop: interrupt.StopRequest, log: Log) -> dict:
    """Train epoch by epoch to the highest target or the recipe's end; JSON-ready."""
    points, trained = [], 0.0
    with others_cpu() as others:
        for epoch in range(1, racer.epochs + 1):
            start = time.perf_counter()
            racer.train_epoch()
            trained += time.perf_counter() - start
            accuracy = racer.accuracy()
            points.append(dict(epoch=epoch, seconds=trained, accuracy=accuracy))
            log(f"  epoch {epoch}: {trained:.2f} s of training, test accuracy {accuracy:.4f}")
            if accuracy >= targets[-1] or stop.requested:
                break
            settle()  # or the next epoch pays for the threads the evaluation left spinning
    # Each target's first point (epoch, seconds, accuracy) at or above it, or None.
    reached = {f"{t:g}": next((p for p in points if p["accuracy"] >= t), None) for t in targets}
    best = max(p["accuracy"] for p in points)
    ended = "target" if best >= targets[-1] else "interrupted" if stop.requested else "epochs"
    return dict(
        name=racer.name, recipe=racer.recipe, recipe_epochs=racer.epochs, points=points,
        reached=reached, best_accuracy=best, epochs=len(points), ended=ended,
        others_cores=others["cores"],
    )  # fmt: skip


def collect(args: argparse.Namespace, data: Dataset, log: Log) -> dict:
    """Race the chosen contenders one after the other; the JSON-ready result."""
    targets, results, skipped = sorted(args.targets), [], {}
    with (
        interrupt.stop_requests(STOP_NOTICE) as stop,
        blas_threads(args.threads) as blas_limited,
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", message="Training interrupted")  # the report says so
        for name in args.contenders:
            make = PEERS.get(name, functools.partial(fastnn_racer, name))
            try:
                racer = None if stop.requested else make(data, args.threads, args.seed)
            except Unavailable as exc:
                racer, skipped[name] = None, str(exc)
            if racer is None or stop.requested:  # Ctrl-C before or while it was set up
                skipped.setdefault(name, "not run (interrupted)")
                log(f"{name}: {skipped[name]}, skipped")
                continue
            log(f"{racer.name}: {racer.recipe} ...")
            results.append(race(racer, targets, stop, log))
    result = dict(
        fastnn_version=__version__, date=datetime.date.today().isoformat(),
        command=args.command, machine=machine(), threads=args.threads,
        blas_threads_limited=blas_limited, seed=args.seed, targets=targets,
        train_rows=len(data.X_train), test_rows=len(data.X_test), contenders=results,
        skipped=skipped, interrupted=stop.requested,
    )  # fmt: skip
    result["markdown"] = markdown(result)
    return result


def markdown(result: dict) -> str:
    m, targets, contenders = result["machine"], result["targets"], result["contenders"]
    headers = ["contender", *(f"s to {100 * t:g}%" for t in targets), "best test accuracy",
               "epochs"]  # fmt: skip
    rows = [
        [c["name"]]
        + ["not reached" if hit is None else f"{hit['seconds']:.3g} (epoch {hit['epoch']})"
           for hit in c["reached"].values()]
        + [f"{100 * c['best_accuracy']:.2f}%", f"{c['epochs']} of {c['recipe_epochs']}"]
        for c in contenders
    ]  # fmt: skip
    lines = [
        f"**Time to accuracy on MNIST, fastnn {result['fastnn_version']}, {result['date']}**: "
        f"{m['cpu']}, {m['cores']} cores, {result['threads']} threads; Python {m['python']}, "
        f"NumPy {m['numpy']}, Numba {m['numba']}.",
        "",
        f"`{result['command']}`: each contender trains on {result['train_rows']:,} rows epoch "
        f"by epoch until its accuracy on the {result['test_rows']:,} test images reaches "
        f"{100 * targets[-1]:g}% or its recipe ends. Seconds of training only, summed to the "
        "end of the first epoch at the target (not the tests, nor loading kernels).",
        "",
        markdown_table(headers, rows),
        "",
    ]
    lines += [f"- {c['name']}: {c['recipe']}." for c in contenders]
    lines += [f"- {name}: {why}, skipped." for name, why in result["skipped"].items()]
    busy = [f"{c['name']} ({c['others_cores']:.1f})" for c in contenders
            if (c["others_cores"] or 0) > BUSY_OTHER_CORES]  # fmt: skip
    lines += [f"- **Busy machine**: other processes kept this many cores busy on average "
              f"while these trained: {', '.join(busy)}; their seconds can be several times too "
              "long. Rerun on an idle machine."] if busy else []  # fmt: skip
    lines += ["- Interrupted (Ctrl-C): the results so far."] if result["interrupted"] else []
    return "\n".join(lines) + "\n"


def write_png(path: str, result: dict) -> None:
    """Test error against training seconds, both on log axes, one line per contender."""
    from matplotlib.ticker import FormatStrFormatter

    from fastnn.report.plots import plt, save_png  # plots sets the Agg backend: files only

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for c in result["contenders"]:
        ax.plot([p["seconds"] for p in c["points"]], [100 * (1 - p["accuracy"]) for p in
                c["points"]], marker="o", markersize=4, label=c["name"])  # fmt: skip
    for target in result["targets"]:
        ax.axhline(100 * (1 - target), linestyle=":", color="gray", linewidth=1)
        ax.annotate(f"{100 * target:g}% accuracy", (1, 100 * (1 - target)), fontsize=7,
                    xycoords=("axes fraction", "data"), ha="right", va="bottom")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log", nonpositive="mask")  # an error of 0 cannot be drawn on a log axis
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))  # plain numbers, not 10^0
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))  # errors span about a decade
    ax.set(xlabel="seconds of training (cumulative; the test after each epoch not counted)",
           ylabel="test error (%)")  # fmt: skip
    cpu = result["machine"]["cpu"]
    ax.set_title(f"MNIST time to accuracy, {cpu}, {result['threads']} threads", fontsize=10)
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save_png(fig, path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("time to accuracy")
    g.add_argument("--time-to-accuracy", action="store_true",
                   help="instead of timing epochs, train each contender until the MNIST test "
                   "accuracy first reaches each target (checked after every epoch, off the "
                   "clock); print the training seconds to each, and write them per epoch to "
                   f"{DEFAULT_JSON} and {DEFAULT_PNG} (test error against seconds)")  # fmt: skip
    names = [*fastnn_presets(), *PEERS]
    g.add_argument("--contenders", nargs="+", choices=names, metavar="NAME",
                   help=f"any of {', '.join(names)}: fastnn's MNIST presets, PyTorch, "
                   "scikit-learn (default: all; those not installed are skipped)")  # fmt: skip
    default = " ".join(map(str, TARGETS))
    g.add_argument("--targets", nargs="+", type=float, metavar="ACC",
                   help=f"test accuracies to time, as fractions (default: {default})")  # fmt: skip
    g.add_argument("--seed", type=int, help="every contender's random seed (default: 0)")


def resolve(p: argparse.ArgumentParser, args: argparse.Namespace) -> bool:
    """Whether this mode was chosen, its defaults filled in; refuse the other mode's options."""
    ours = dict(contenders="--contenders", targets="--targets", seed="--seed")
    theirs = dict(repeats="--repeats", full_batch_iters="--full-batch-iters", peers="--peers",
                  startup="--startup", quick="--quick")  # fmt: skip
    wrong = ours if not args.time_to_accuracy else theirs
    if given := [flag for key, flag in wrong.items() if getattr(args, key) not in (None, False)]:
        mode = "without" if wrong is ours else "with"
        p.error(f"{', '.join(given)} cannot be used {mode} --time-to-accuracy")
    if args.time_to_accuracy:
        if not all(0 < t <= 1 for t in args.targets or ()):
            p.error(f"--targets: accuracies above 0 and at most 1, as 0.98; got {args.targets}")
        args.contenders = list(dict.fromkeys(args.contenders or [*fastnn_presets(), *PEERS]))
        args.targets = sorted(set(args.targets or TARGETS))
        args.seed = args.seed or 0
        args.json, args.png = args.json or DEFAULT_JSON, args.png or DEFAULT_PNG
    return args.time_to_accuracy


def run(args: argparse.Namespace) -> int:
    log = functools.partial(print, file=sys.stderr, flush=True)
    outputs = [("--json", args.json), ("--png", args.png), ("--markdown", args.markdown)]
    try:
        for option, path in outputs:  # before minutes of training, not after
            if path:
                check_writable(path, option)
        ds = load_dataset("mnist", data_dir=args.data, download=False)
    except (DataError, ValueError) as exc:
        print(f"fastnn.bench: error: {exc}", file=sys.stderr)
        return 1
    data = ds._replace(X_train=ds.X_train[: args.rows], y_train=ds.y_train[: args.rows])
    result = collect(args, data, log)
    print(result["markdown"])
    written = write_outputs([
        ("--json", args.json, lambda: write_json(args.json, result)),
        ("--png", args.png, lambda: write_png(args.png, result)),
        ("--markdown", args.markdown, lambda: write_text(args.markdown, result["markdown"])),
    ], log)  # fmt: skip
    # After Ctrl-C, STOP_NOTICE and the report's last line have said what happened.
    return interrupt.EXIT_INTERRUPTED if result["interrupted"] else 0 if written else 1
