"""Turning a bench result (the JSON-ready dict that fastnn.bench.cli builds) into the
markdown table for the README, the JSON file and the bar chart, and writing those asked for."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from fastnn.bench.epochs import Log
from fastnn.bench.peers import OURS
from fastnn.bench.predict import predict_lines
from fastnn.bench.startup import startup_line
from fastnn.bench.text import MISSING, count, markdown_table, percent, rate, seconds, times
from fastnn.files.atomic import write_text

if TYPE_CHECKING:  # matplotlib is imported where a chart is drawn, if one is
    from matplotlib.figure import Figure

BACKENDS = ("numpy", "numba")
# Above this spread of bar heights the chart switches to a log axis, or the short bars vanish.
LOG_SCALE_SPREAD = 30
# Other processes keeping more cores than this busy make a row's times unreliable: threads
# that wait for each other stall whenever one of them has lost its core.
BUSY_OTHER_CORES = 0.25
# More than this change in the matmul rate between the start and the end of the timed part.
SPEED_DRIFT = 0.15


def _get(entry: dict, backend: str, key: str) -> float | None:
    return entry["results"].get(backend, {}).get(key)


def workload_table(result: dict) -> str:
    headers = (
        "workload",
        "numpy median s",
        "numba median s",
        "numpy / numba (numba N× faster)",
        "numba samples/s",
        "numba GFLOP/s",
        "% of matmul peak",
        "numba work GFLOP/s",
        "% of FMA peak",
        "numba's first layer",
    )
    rows = [
        (
            entry["label"],
            seconds(_get(entry, "numpy", "median_epoch_s")),
            seconds(_get(entry, "numba", "median_epoch_s")),
            times(entry["numpy_over_numba"]),
            count(_get(entry, "numba", "samples_per_s")),
            rate(_get(entry, "numba", "gflops")),
            percent(_get(entry, "numba", "pct_of_peak")),
            rate(_get(entry, "numba", "work_gflops")),
            percent(_get(entry, "numba", "pct_of_fma_peak")),
            entry.get("numba_first_layer") or MISSING,
        )
        for entry in result["workloads"]
    ]
    return markdown_table(headers, rows)


def layer_lines(result: dict) -> list[str]:
    """Where numba's epoch goes, layer by layer (see fastnn.bench.layers), if it was timed."""
    timed = [entry for entry in result["workloads"] if entry.get("layers")]
    if not timed:
        return []
    headers = (
        "workload", "layer", "one thread, s per epoch: inputs · forward · dA · dW",
        "GFLOP/s, one thread", "% of one thread's FMA peak", "share of numba's epoch",
    )  # fmt: skip
    rows = []
    for entry in timed:
        for layer in entry["layers"]["layers"]:
            parts = (layer["seconds"].get(part) for part in ("inputs", "forward", "dA", "dW"))
            rows.append((
                entry["name"], f"{layer['layer']}: {layer['fan_in']}→{layer['fan_out']}, "
                f"{layer['path']}", " · ".join("–" if v is None else f"{v:.3g}" for v in parts),
                rate(layer["gflops"]), percent(layer.get("pct_of_one_thread_fma_peak")),
                percent(layer["share"]),
            ))  # fmt: skip
        rows.append((entry["name"], "rest", "", "", "", percent(entry["layers"]["rest_share"])))
    one = result.get("fma_peak_one_thread") or {}
    peaks = ", ".join(f"{dtype} {f['gflops']:.1f} GFLOP/s" for dtype, f in one.items())
    return [
        "",
        "Where numba's epoch goes, layer by layer:",
        "",
        markdown_table(headers, rows),
        "",
        "- Each layer's products (forward A W, dA = dZ W.T passed down, dW = A.T dZ) timed "
        "alone on one thread over an epoch's batches, in the epoch's shapes and with its "
        "kernels (fastnn.kernels.dense.add_products; a sparse first layer's scan_row, "
        "hidden_row and add_block_terms), medians. The first layer goes the path numba took: "
        "its inputs are its reading of them (rows of X in the parameters' dtype where dense, "
        "the lists of non-zero features where sparse), and its forward and dW what each adds "
        "to that reading. GFLOP/s: the products' FLOPs over their one-thread seconds"
        + (f", against one thread's FMA peak ({peaks})" if peaks else "")
        + ". Share: a layer's one-thread seconds over numba's epoch times its threads; the "
        "rest is activations, softmax, biases, the update, waiting, and whatever the products "
        "cost more inside the epoch, where they share the caches (see fastnn/bench/layers.py).",
    ]


def memory_line(entry: dict) -> str:
    """The peak memory of a workload's training (see fastnn.bench.memory) against its target."""
    m = entry["memory"]
    if "skipped" in m:
        return f"- Memory, {entry['name']}: not measured ({m['skipped']})."
    verdict = "within it" if m["within_target"] else "**over it**"
    return (
        f"- Memory, {entry['name']} (fastnn {m['backend']}, one epoch of {m['rows']:,} rows, "
        f"{m['threads']} thread(s), in a child process of its own): the resident high-water "
        f"mark rose {m['training_mb']:.1f} MB above the baseline of {m['baseline_mb']:.0f} MB "
        "(Python, fastnn, the backend and the matrix loaded, the kernels compiled); with the "
        f"matrix's own {m['matrix_mb']:.1f} MB that is {m['used_mb']:.1f} MB, against the "
        f"target of the matrix plus the model ({m['model_mb']:.1f} MB: parameters and optimizer "
        f"state) plus 200 MB, {m['target_mb']:.1f} MB: {verdict}."
    )


def optimizer_cost_line(cost: dict) -> str:
    """A non-SGD workload's epoch time over its plain-SGD twin's, per backend."""
    ratios = ", ".join(f"{b} {times(r, digits=2)}" for b, r in cost["over_sgd"].items())
    pair = f"{cost['workload']} / {cost['sgd_twin']}"
    return f"- {cost['solver']} epoch over plain SGD's ({pair}): {ratios}."


def peer_table(peers: dict) -> str:
    headers = ("implementation", "median epoch s", "samples/s", "GFLOP/s", "numba N× faster")
    rows = [
        (
            name,
            seconds(r["median_epoch_s"]),
            count(r["samples_per_s"]),
            rate(r["gflops"]),
            times(r.get("numba_speedup")),
        )
        for name, r in peers["results"].items()
    ]
    return markdown_table(headers, rows)


def peer_lines(peers: Sequence[dict]) -> list[str]:
    """Each peer workload's title and table, then the notes and skipped peers of all of them,
    each said once: most are the same for every workload."""
    lines = []
    for run in peers:
        lines += ["", run["title"]]
        if run["results"]:
            lines += ["", peer_table(run)]
    lines.append("")
    said = [f"- {note}" for run in peers for note in run["notes"]]
    said += [f"- {name}: {why}, skipped." for run in peers for name, why in run["skipped"].items()]
    return lines + list(dict.fromkeys(said))  # in order, without repeats


def contention_notes(result: dict) -> list[str]:
    """Say how much other work ran beside each row, and warn where it was too much."""
    measured = [(e["name"], e["others_cores"]) for e in result["workloads"]]
    measured += [
        (f"peers on {p['workload']}", p.get("others_cores")) for p in result["peers"] or ()
    ]
    measured = [(name, cores) for name, cores in measured if cores is not None]
    if not measured:
        return []
    busy = [f"{name} ({cores:.1f})" for name, cores in measured if cores > BUSY_OTHER_CORES]
    if not busy:
        most = max(cores for _, cores in measured)
        note = f"- A quiet machine: other processes kept at most {most:.2f} cores busy on "
        return [note + "average while a row was timed (from /proc/stat)."]
    return [
        f"- **Busy machine**: other processes kept this many cores busy on average while these "
        f"rows were timed: {', '.join(busy)}. Threads that wait for each other stall whenever "
        "another process holds a core, so those times can be several times too slow; rerun "
        "on an idle machine."
    ]


def speed_note(result: dict) -> list[str]:
    """Warn when the machine ran at another speed at the end of the timing than at its start.
    A shared virtual machine can slow down by half for minutes while nothing else runs in it
    (seen: float32 matmul 236 then 113 GFLOP/s), which /proc/stat does not show."""
    before = result["matmul_peak_gflops"]["float32"]
    after = result["matmul_peak_after_gflops"]["float32"]
    if abs(after / before - 1) <= SPEED_DRIFT:
        return []
    return [
        f"- **The machine's speed changed during the run**: NumPy's float32 matmul ran at "
        f"{before:.1f} GFLOP/s before the workloads and {after:.1f} after, with nothing else "
        "running that /proc/stat shows. Times from this run are not comparable with other "
        "runs'; ratios, timed side by side, are affected less. Rerun later."
    ]


def fma_line(fma: dict, threads: int) -> str:
    rates = ", ".join(
        f"{dtype} {f['gflops']:.1f} GFLOP/s ({f['vector_bits']}-bit vectors"
        + (f" in {f['register_bits']}-bit registers)" if f["register_bits"] < f["vector_bits"]
           else ")")
        for dtype, f in fma.items()
    )  # fmt: skip
    return (
        f"- FMA peak (measured: {threads} thread(s) of independent fused multiply-adds in "
        f"registers, see fastnn/bench/peak.py): {rates}. Work GFLOP/s counts the FLOPs the "
        "numba kernels do, the first layer's over every input where it ran dense and over the "
        "non-zero ones where it ran sparse, over the time taken: its share of the FMA peak is "
        "how close to the machine's arithmetic limit they run."
    )


def markdown(result: dict) -> str:
    """The whole report: heading, tables and the notes that say what was measured."""
    m, s = result["machine"], result["settings"]
    peak = result["matmul_peak_gflops"]
    lines = [
        f"**Epoch times, fastnn {result['fastnn_version']}, {result['date']}**: {m['cpu']}, "
        f"{m['cores']} cores, {s['threads']} threads; Python {m['python']}, NumPy {m['numpy']}, "
        f"Numba {m['numba']}.",
        "",
        f"`{result['command']}`: median of {s['repeats']} timed run(s) per cell, the "
        f"contenders taking turns, after {s['warmup_rounds']} untimed warm-up round (JIT "
        f"compilation excluded); each run starts after {s['settle_s']} s of quiet, so that "
        "none pays for threads the previous one left spinning.",
        "",
        workload_table(result),
        "",
    ]
    lines += [optimizer_cost_line(cost) for cost in result["optimizer_costs"]]
    lines += contention_notes(result) + speed_note(result)
    for entry in result["workloads"]:
        if entry["full_batch"]:
            lines.append(
                f"- {entry['label']}: seconds per gradient step over all {entry['rows']:,} "
                f"rows, each timed run taking {entry['epochs_per_run']} step(s)."
            )
    epoch_rows = sorted({e["rows"] for e in result["workloads"] if not e["full_batch"]})
    if epoch_rows:
        listed = " or ".join(f"{r:,}" for r in epoch_rows)
        lines.append(f"- Mini-batch rows: seconds per epoch over {listed} training rows.")
    if any(not (e.get("dense") or e.get("sparse")) for e in result["workloads"]):
        lines += [f"- Input to {b} on the pixels: {form}." for b, form in result["inputs"].items()]
    if result.get("dense_input"):
        lines.append(f"- Input to both on the dense workloads: {result['dense_input']}.")
    if result.get("sparse_input"):
        lines.append(
            f"- Input to both on the sparse workload: {result['sparse_input']}. Its GFLOP/s and "
            "% of matmul peak are n/a: a dense-equivalent count (every feature times the "
            "hidden units) would be hundreds of times the work; its work GFLOP/s counts the "
            "first layer over the non-zero features."
        )
    lines += [memory_line(e) for e in result["workloads"] if e.get("memory")]
    if not result["numba_available"]:
        lines.append(f"- numba: not measured ({result['numba_unavailable']}).")
    lines += [
        "- GFLOP/s is dense-equivalent, the dense FLOPs over the time taken "
        f"({result['flop_formula']}). Numba may skip zero pixels, so it is an effective rate, "
        "not work done: above 100% of the matmul peak, skipping saved more than the kernel "
        "lost to the ceiling.",
        f"- Matmul peak (numpy, {s['matmul_size']}×{s['matmul_size']}, best of "
        f"{s['matmul_tries']}): float32 {peak['float32']:.1f} GFLOP/s, float64 "
        f"{peak['float64']:.1f} GFLOP/s; each workload is set against the peak of its dtype. "
        "It is this machine's practical rate through numpy's BLAS, not a hard limit.",
    ]
    if result.get("fma_peak"):
        lines.append(fma_line(result["fma_peak"], s["threads"]))
    lines += layer_lines(result)
    if result.get("peers"):
        lines += peer_lines(result["peers"])
    if result.get("predict"):
        lines += predict_lines(result["predict"])
    if result.get("startup"):
        lines += ["", startup_line(result["startup"])]
    return "\n".join(lines) + "\n"


def write_json(path: str | os.PathLike, result: dict) -> None:
    write_text(path, json.dumps(result, indent=2) + "\n")


def _bars(result: dict) -> dict[str, dict[str, tuple[float, float | None]]]:
    """Per workload, each contender's median seconds and how many cores other processes kept
    busy meanwhile: numpy and numba, then the peers (PyTorch, JAX, scikit-learn) where they
    ran. fastnn numba's own row in the peer runs is left out: numba has its bar already."""
    bars: dict[str, dict[str, tuple[float, float | None]]] = {}
    for entry in result["workloads"]:
        bars[entry["name"]] = {
            backend: (value, entry.get("others_cores"))
            for backend in BACKENDS
            if (value := _get(entry, backend, "median_epoch_s")) is not None
        }
    for run in result.get("peers") or ():
        shown = bars.setdefault(run["workload"], {})
        for name, r in run["results"].items():
            if name != OURS and r.get("median_epoch_s") is not None:
                shown[name] = (r["median_epoch_s"], run.get("others_cores"))
    return bars


def _pyplot() -> ModuleType:
    from fastnn.report.plots import (
        plt,  # matplotlib only when a figure is asked for; plots sets Agg
    )

    return plt


def figure(result: dict) -> Figure:
    """Grouped bars: the median time of every backend, and of every peer that ran, on every
    workload; bars timed on a busy machine are hatched, and a line under the chart says how
    busy it was."""
    plt = _pyplot()
    bars = _bars(result)
    names = list(bars)
    contenders = list(dict.fromkeys(name for shown in bars.values() for name in shown))
    colours = {name: f"C{i}" for i, name in enumerate(contenders)}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * len(names)), 4.8))
    labelled, heights, busy = set(), [], []
    for j, workload in enumerate(names):
        shown = bars[workload]
        width = 0.8 / max(len(shown), 1)
        for i, (name, (value, others)) in enumerate(shown.items()):
            crowded = others is not None and others > BUSY_OTHER_CORES
            if crowded:
                busy.append(others)
            bar = ax.bar(
                j + (i - (len(shown) - 1) / 2) * width, value, width=width, color=colours[name],
                label=None if name in labelled else name, hatch="//" if crowded else None,
                edgecolor="black" if crowded else None, linewidth=0,
            )  # fmt: skip
            labelled.add(name)
            ax.bar_label(bar, labels=[seconds(value)], fontsize=7)
            heights.append(value)
    if heights and max(heights) / min(heights) > LOG_SCALE_SPREAD:
        ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set(ylabel="median seconds per epoch (full batch: per step)")
    ax.set_title(f"fastnn epoch time, {result['date']}, {result['settings']['threads']} threads")
    if labelled:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    note = _load_note(result, busy)
    if note:
        fig.text(0.01, -0.02, note, fontsize=8, va="top", wrap=True,
                 color="darkred" if busy else "dimgray")  # fmt: skip
    return fig


def _load_note(result: dict, busy: list[float]) -> str:
    """How busy the machine was while timing, as contention_notes measured it."""
    measured = [e.get("others_cores") for e in result["workloads"]]
    measured += [run.get("others_cores") for run in result.get("peers") or ()]
    measured = [cores for cores in measured if cores is not None]
    if busy:
        return (
            f"Busy machine: hatched bars were timed while other processes kept up to "
            f"{max(busy):.1f} cores busy on average (over {BUSY_OTHER_CORES} counts as busy); "
            "those times can be several times too slow."
        )
    if measured:
        return f"A quiet machine: other processes kept at most {max(measured):.2f} cores busy."
    return ""


def write_png(path: str | os.PathLike, result: dict) -> None:
    """The chart of `figure` as a PNG file."""
    from fastnn.report.plots import save_png

    save_png(figure(result), path)


def write_outputs(writers: Sequence[tuple[str, str | None, Callable[[], None]]], log: Log) -> bool:
    """Call each (option, path, write) whose path was given; whether all of them succeeded."""
    ok = True
    for option, path, write in writers:
        if not path:
            continue
        try:
            write()
        except OSError as exc:  # e.g. a full disk: say so, and still write the others
            ok = False
            print(f"fastnn.bench: error: could not write {option} {path}: {exc.strerror or exc}",
                  file=sys.stderr)  # fmt: skip
        else:
            log(f"wrote {path}")
    return ok
