"""What python -m fastnn.sweep prints and writes: the plan, a line per finished trial, the
ranked table, the best configuration as a python -m fastnn.train command line, the CSVs and
the figures."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pandas as pd

from fastnn.sweep import results, trial
from fastnn.sweep.space import configurations, format_value, halving_rungs

EXIT_FAILED = 1


def plan(settings: Any) -> str:
    """E.g. "12 configurations x 3 seeds = 36 trials of 2 epochs", or the halving's rungs."""
    n = len(configurations(settings.space, settings.random, settings.random_seed))
    seeds = len(settings.seeds)
    if not settings.halving:
        epochs = "each its max_iter" if "max_iter" in settings.space else settings.epochs
        return f"{n} configurations x {seeds} seeds = {n * seeds} trials of {epochs} epochs"
    rungs = halving_rungs(n, settings.epochs, settings.min_epochs, settings.factor)
    steps = ", then ".join(f"{count} for {epochs}" for epochs, count in rungs)
    total = sum(count for _, count in rungs) * seeds
    return f"halving x {seeds} seeds: {steps} epochs ({total} trials)"


def percent(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.2f}%"


def progress(row: dict[str, Any], settings: Any) -> str:
    names = settings.names()
    what = " ".join(f"{n}={format_value(row['params'].get(n))}" for n in names) or "config"
    head = f"{what} seed {row['seed']}, {row['epochs']} epochs"
    if row["status"] == "failed":
        return f"{head}: FAILED ({row['error']})"
    status = "" if row["status"] == "finished" else f" ({row['status']})"
    return (
        f"{head}: dev {percent(row['dev_accuracy'])}, test {percent(row['test_accuracy'])}, "
        f"{row['seconds']:.2f} s training{status} on {row['worker']}"
    )


def table_text(ranked: pd.DataFrame, names: list[str], top: int) -> str:
    """The ranked configurations as aligned text, best first."""
    shown = pd.DataFrame({"rank": range(1, len(ranked) + 1)})
    for name in names:
        shown[name] = [format_value(v) if not isinstance(v, str) else v for v in ranked[name]]
    shown["epochs"] = ranked["epochs"].astype(int)
    shown["seeds"] = ranked["seeds"].astype(int)
    spread = ranked["dev_accuracy_sd"].fillna(0)
    shown["dev accuracy"] = [
        f"{percent(m)} ± {100 * s:.2f}" if n > 1 else percent(m)
        for m, s, n in zip(ranked["dev_accuracy"], spread, ranked["seeds"], strict=True)
    ]
    shown["test accuracy"] = [percent(v) for v in ranked["test_accuracy"]]
    shown["s/trial"] = [f"{v:.2f}" for v in ranked["seconds"]]
    if ranked["failed"].any():
        shown["failed"] = ranked["failed"]
    return shown.head(top).to_string(index=False)


def best_command(settings: Any, ranked: pd.DataFrame, rows: list[dict[str, Any]]) -> str:
    """The winner as the python -m fastnn.train line that trains it (with the first seed)."""
    names = settings.names()
    best = ranked.iloc[0]
    for row in rows:
        cells = {n: results.cell(row["params"].get(n)) for n in names}
        if row["epochs"] == best["epochs"] and all(_same(cells[n], best[n]) for n in names):
            spec = settings.spec(row["params"], settings.seeds[0], 0, row["epochs"], 1)
            words = trial.command_args(spec, shown=True)
            return shlex.join(["python", "-m", "fastnn.train", *words])
    raise LookupError("the best configuration has no trial")


def _same(a: Any, b: Any) -> bool:
    missing = (a is None or a != a) and (b is None or b != b)  # None or NaN both
    return missing or a == b


def finish(
    settings: Any,
    rows: list[dict[str, Any]],
    ran: list[dict[str, Any]],
    out: Path,
    wall: float,
    top: int,
    figures: bool,
) -> int:
    """Print the table, the best command and the timing; write the CSVs and figures. The exit
    status: 1 if any trial failed (--resume runs those again), else 0."""
    names = settings.names()
    table = results.frame(rows, list(settings.space))
    ranked = results.ranked(table, names, settings.metric)
    results.write_csv(table, out / "results.csv")
    written = [out / "results.csv"]
    if not ranked.empty:
        results.write_csv(ranked, out / "ranked.csv")
        written.append(out / "ranked.csv")
        print(
            f"\nconfigurations by {settings.metric.replace('_', ' ')} (mean over seeds; test "
            f"accuracy is reported, never used to choose):"
        )
        print(table_text(ranked, names, top))
        print(f"\nbest: {best_command(settings, ranked, rows)}")
        if settings.train_rows is not None:
            print(
                f"(the sweep trained on the first {settings.train_rows} training rows; the "
                "command trains on all of them)"
            )
    if ran:
        own = sum(row.get("wall_seconds") or 0 for row in ran)
        print(
            f"\n{len(ran)} trials in {wall:.1f} s; one after another they took {own:.1f} s "
            f"(their own times, added up)"
        )
    if figures and not ranked.empty:
        from fastnn.sweep.figures import write_figures  # matplotlib: only when drawing

        written += write_figures(table, names, out)
    print("wrote " + ", ".join(str(p) for p in written))
    failed = [row for row in table.itertuples() if row.status == "failed"]
    if failed:
        print(
            f"{len(failed)} trials failed (their error is in results.csv); run them again "
            f"with: python -m fastnn.sweep --resume {shlex.quote(str(out))}"
        )
        return EXIT_FAILED
    return 0
