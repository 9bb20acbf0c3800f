"""Turning a bench result (the JSON-ready dict that fastnn.bench.cli builds) into the
markdown table for the README, the JSON file and the bar chart."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from fastnn.atomic import atomic_path, write_text

BACKENDS = ("numpy", "numba")
MISSING = "n/a"
# Above this spread of bar heights the chart switches to a log axis, or the short bars vanish.
LOG_SCALE_SPREAD = 30
# Other processes keeping more cores than this busy make a row's times unreliable: threads
# that wait for each other stall whenever one of them has lost its core.
BUSY_OTHER_CORES = 0.25


def seconds(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3g}"


def times(ratio: float | None, digits: int = 1) -> str:
    return MISSING if ratio is None else f"{ratio:.{digits}f}×"


def count(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.0f}"


def rate(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1f}"


def percent(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1f}%"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table, first column left-aligned and the numbers right-aligned."""
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


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
        )
        for entry in result["workloads"]
    ]
    return markdown_table(headers, rows)


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


def startup_line(startup: dict) -> str:
    if "skipped" in startup:
        return f"Startup not measured: {startup['skipped']}."
    if "error" in startup:
        return f"Startup (`{startup['command']}`) failed: {startup['error']}"
    return (
        f"Second process start with a warm Numba cache, `{startup['command']}`: "
        f"{startup['second_wall_s']:.2f} s wall, all included (target: at most "
        f"{startup['target_s']:g} s; its epoch took {startup['second_epoch_s']:.2f} s; loading "
        f"the data alone takes {startup['data_load_s']:.2f} s, overlapped with Numba's start-up; "
        f"the first, cache-filling run took {startup['first_wall_s']:.2f} s)."
    )


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
    lines += contention_notes(result)
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
    for backend, form in result["inputs"].items():
        lines.append(f"- Input to {backend}: {form}.")
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
    if result.get("peers"):
        lines += peer_lines(result["peers"])
    if result.get("startup"):
        lines += ["", startup_line(result["startup"])]
    return "\n".join(lines) + "\n"


def write_json(path: str | os.PathLike, result: dict) -> None:
    write_text(path, json.dumps(result, indent=2) + "\n")


def write_png(path: str | os.PathLike, result: dict) -> None:
    """Grouped bars: the median time of every backend on every workload."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or assumed
    import matplotlib.pyplot as plt

    entries = result["workloads"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(entries)), 4.5))
    width = 0.8 / len(BACKENDS)
    heights = []
    for i, backend in enumerate(BACKENDS):
        values = [_get(e, backend, "median_epoch_s") for e in entries]
        xs = [j + (i - (len(BACKENDS) - 1) / 2) * width for j in range(len(entries))]
        shown = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        if shown:
            bars = ax.bar(*zip(*shown, strict=True), width=width, label=backend)
            ax.bar_label(bars, labels=[seconds(v) for _, v in shown], fontsize=7)
            heights += [v for _, v in shown]
    if heights and max(heights) / min(heights) > LOG_SCALE_SPREAD:
        ax.set_yscale("log")
    ax.set_xticks(range(len(entries)), [e["name"] for e in entries], rotation=20, ha="right")
    ax.set(ylabel="median seconds per epoch (full batch: per step)")
    ax.set_title(f"fastnn epoch time, {result['date']}, {result['settings']['threads']} threads")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
