"""The epoch timing of fastnn.bench: the backends on each workload, taking turns, numba's
epoch layer by layer, each non-SGD workload against its plain-SGD twin, and the other libraries
on the workloads they run."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import numpy as np

from fastnn.backends import Backend
from fastnn.bench.memory import measure_memory
from fastnn.bench.peers import run_peers
from fastnn.bench.timing import measure, others_cpu, speedup
from fastnn.bench.workloads import (
    PEER_WORKLOADS,
    Workload,
    backend_contender,
    prepare,
    workload,
)
from fastnn.core.sparse import is_sparse

Data = dict[str, tuple[np.ndarray, np.ndarray]]  # dataset name -> (X_train, y_train)
Log = Callable[[str], None]


def numba_first_layer(X: np.ndarray) -> str:
    """The first layer's path the numba backend takes on X now: "dense" or "sparse"."""
    if is_sparse(X):  # a scipy matrix goes to the sparse first layer as it is (issue 30)
        return "sparse"
    from fastnn.backends.numba_packing import dense_input  # loads Numba: only where it runs

    return "dense" if dense_input(X) else "sparse"


def run_workloads(
    workloads: Sequence[Workload],
    data: Data,
    backends: Sequence[Backend],
    args: argparse.Namespace,
    peak: dict[str, float],
    log: Log,
) -> list[dict]:
    """Every backend's epoch on each workload, taking turns; with `args.layers`, numba's
    epoch layer by layer too (see bench.layers); with `args.memory`, the peak memory of the
    fastest backend's training on the sparse workloads (see bench.memory). JSON-ready, one entry
    a workload."""
    numba = next((b for b in backends if b.name == "numba"), None)
    entries = []
    for w in workloads:
        p = prepare(w, *data[w.dataset], rows=args.rows, full_batch_iters=args.full_batch_iters)
        contenders = [backend_contender(b, p) for b in backends]
        log(f"{w.name}: {len(p.order):,} rows, {args.repeats} repeats ...")
        with others_cpu() as others:
            results = measure(contenders, args.repeats, p.counted_flops_per_sample, peak[w.dtype])
        medians = {name: r["median_epoch_s"] for name, r in results.items()}
        log("  " + ", ".join(f"{name} {s:.3g} s" for name, s in medians.items()))
        path = work = shares = None
        if numba is not None:
            path = numba_first_layer(p.X)  # what numba's first layer did here
            work = p.work_flops_per_sample(path == "dense")
            if args.layers and w.sparse:
                log("  numba's layers alone: not timed on a CSR matrix")
            elif args.layers:
                from fastnn.bench.layers import layer_shares  # compiled kernels: numba's only

                log(f"  numba's layers alone, one thread, {args.repeats} repeats ...")
                epoch_s, threads = medians["numba"], args.threads
                shares = layer_shares(p, path, args.repeats, epoch_s, threads)
        memory = None
        if args.memory and w.sparse:
            fastest = "numpy" if numba is None else numba.name
            log(f"  peak memory of {fastest}'s training, in a child process ...")
            memory = measure_memory(p, fastest, args.threads)
        entries.append(
            dict(
                name=w.name,
                label=w.label(),
                dataset=w.dataset,
                dense=w.dense,
                sparse=w.sparse,
                hidden=list(w.hidden),
                depth=len(w.hidden),
                solver=w.solver,
                learning_rate=w.learning_rate,
                sgd_twin=w.sgd_twin,
                batch_size=p.batch_size,
                full_batch=w.full_batch,
                dtype=w.dtype,
                init=w.init,
                rows=len(p.order),
                epochs_per_run=p.iterations,
                flops_per_sample=p.flops_per_sample,
                sparse_flops_per_sample=p.sparse_flops_per_sample,
                numba_first_layer=path,
                work_flops_per_sample=work,
                layers=shares,
                memory=memory,
                results=results,
                numpy_over_numba=speedup(medians.get("numpy"), medians.get("numba")),
                others_cores=others["cores"],
            )
        )
    return entries


def optimizer_costs(entries: Sequence[dict]) -> list[dict]:
    """Each workload's epoch time over that of its plain-SGD twin, per backend: what the
    solver's extra work costs. Only where both were run."""
    by_name = {e["name"]: e for e in entries}
    costs = []
    for entry in entries:
        twin = by_name.get(entry["sgd_twin"])
        if twin is None:
            continue
        over_sgd = {
            backend: speedup(  # speedup(a, b) is a / b: here the solver's time over SGD's
                entry["results"][backend]["median_epoch_s"],
                twin["results"][backend]["median_epoch_s"],
            )
            for backend in entry["results"]
        }
        costs.append(
            dict(
                workload=entry["name"],
                sgd_twin=twin["name"],
                solver=entry["solver"],
                over_sgd=over_sgd,
            )
        )
    return costs


def run_peers_on(
    names: Sequence[str],
    data: Data,
    numba: Backend | None,
    args: argparse.Namespace,
    peak: dict[str, float],
    log: Log,
) -> list[dict]:
    """The other libraries on those of `names` that they run, one result per workload."""
    chosen = [name for name in PEER_WORKLOADS if name in names]
    if not chosen:
        log(f"peers: they run only {', '.join(PEER_WORKLOADS)}, none of them chosen")
    results = []
    for name in chosen:
        w = workload(name)
        p = prepare(w, *data[w.dataset], rows=args.rows)
        results.append(run_peers(p, numba, args.threads, args.repeats, peak[w.dtype], log))
    return results
