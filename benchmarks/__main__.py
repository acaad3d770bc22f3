"""`python -m benchmarks [--quick] [--only NAME[,NAME]]`: start the local stack, measure, report.

Prints a table per benchmark and writes benchmarks/results/latest.json and latest.md (a full
run) or partial.json / partial.md (--quick or --only, which git ignores). Exits 1 when an
invariant check failed or a benchmark crashed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType

from benchmarks import (
    backend,
    calls,
    coldstart,
    contention,
    cost,
    localstate,
    notifier,
    segmented,
    sweeper,
    uploads,
    worker,
)
from benchmarks.core import BenchResult, Context, Reporter, changed_files, code_stamp, machine, machine_line
from benchmarks.report import write_results

BENCHMARKS: dict[str, ModuleType] = {
    m.NAME: m
    for m in (coldstart, calls, contention, sweeper, worker, cost, segmented, notifier, localstate, uploads)
}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these benchmarks (repeat or comma-separate): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--out", type=Path, default=None, help="directory for the result files")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (stack logs)")
    args = parser.parse_args(argv)
    names = [n.strip() for chunk in args.only for n in chunk.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    args.names = names or list(BENCHMARKS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reporter = Reporter(sys.stdout)
    tmp = Path(tempfile.mkdtemp(prefix="vidproc-bench-"))
    product_log = (tmp / "in-process.log").open("w")
    m = machine()
    load = os.getloadavg()[0]
    m["load_1m_at_start"] = round(load, 2)
    reporter.say(f"benchmarks: {', '.join(args.names)}{' (quick)' if args.quick else ''}")
    reporter.say(f"machine: {machine_line(m)}")
    if load > 0.5 * m["nproc"]:
        reporter.say(f"WARNING: the machine is busy (load average {load:.1f}): the numbers will be inflated")
    results: list[BenchResult] = []
    stamp = code_stamp()
    started = time.perf_counter()
    # The product's logs and EMF metrics print to stdout: in this process they go to a file.
    with contextlib.redirect_stdout(product_log):
        from tests.support.stack import running_api, running_aws_stack

        reporter.say("starting the local stack (DynamoDB Local, moto, chalice local) ...")
        t0 = time.perf_counter()
        with running_aws_stack(tmp / "logs", tmp / "state") as stack, running_api(stack) as api_url:
            reporter.say(f"stack up in {time.perf_counter() - t0:.1f} s; logs in {tmp / 'logs'}")
            backend.install(stack.ddb_url)  # before any client is built: every call is seen
            ctx = Context(stack=stack, api_url=api_url, tmp=tmp, quick=args.quick, reporter=reporter)
            for name in args.names:
                results.append(run_one(BENCHMARKS[name], ctx))
            results.append(global_invariant(ctx))
    product_log.close()
    total = time.perf_counter() - started

    for res in results:
        reporter.say("")
        for table in res.tables:
            reporter.say(table.text())
            reporter.say("")
        for check in res.checks:
            if not check.ok:
                reporter.say(f"FAILED CHECK [{res.name}] {check.name}: {check.detail}")
        if res.error:
            reporter.say(f"ERROR [{res.name}]\n{res.error}")
    changed = changed_files(stamp, code_stamp())
    if changed:
        m["code_changed_during_run"] = changed
        reporter.say(f"WARNING: the code under test changed during the run: {', '.join(changed)}")
    ok = all(res.ok for res in results)
    partial = args.quick or len(args.names) < len(BENCHMARKS)
    out_dir = args.out or RESULTS_DIR
    stem = "partial" if partial else "latest"
    written = write_results(out_dir, stem, m, results, args.quick, total, ok)
    reporter.say(f"\nwrote {', '.join(str(p) for p in written)}")
    checks = [c for res in results for c in res.checks]
    failed = [c for c in checks if not c.ok]
    reporter.say(
        f"{len(checks) - len(failed)}/{len(checks)} invariant checks passed; "
        f"{sum(1 for r in results if r.error)} benchmark(s) crashed; {total:.0f} s in all"
    )
    if ok and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        reporter.say(f"kept {tmp} (stack logs, in-process product logs)")
    return 0 if ok else 1


def run_one(module: ModuleType, ctx: Context) -> BenchResult:
    res = BenchResult(name=module.NAME, title=module.TITLE)
    ctx.reporter.say(f"\n[{module.NAME}] {module.TITLE}")
    started = time.perf_counter()
    try:
        module.run(ctx, res)
    except Exception:
        res.error = traceback.format_exc()
        ctx.reporter.say(f"  crashed: {res.error.strip().splitlines()[-1]}")
    res.seconds = time.perf_counter() - started
    for check in res.checks:
        if not check.ok:
            ctx.reporter.say(f"  FAILED CHECK {check.name}: {check.detail}")
    ctx.reporter.say(f"  done in {res.seconds:.1f} s")
    return res


def global_invariant(ctx: Context) -> BenchResult:
    """After everything: every workspace's balance is the sum of its ledger and never negative."""
    from tests.support.invariants import ledger_mismatches

    res = BenchResult(name="ledger", title="Ledger invariant over every workspace")
    problems = ledger_mismatches()
    res.check("every workspace: balance == ledger sum, balance >= 0", not problems, "; ".join(problems[:5]))
    return res


if __name__ == "__main__":
    sys.exit(main())
