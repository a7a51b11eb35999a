"""The ``harness sweep``, ``harness status`` and ``harness demo`` commands.

Registered on the ``harness`` group in :mod:`harness.cli` with ``cli.add_command(...)``.
Errors in suites, plans, locks and Ray set-up are one line with exit code 2 (no traceback).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from harness.errors import HarnessError

EXECUTORS = ("local", "ray")


def demo_suite_path() -> Path:
    """The embedded default suite of ``harness demo`` (shipped inside the package)."""
    return Path(str(resources.files("harness") / "suites" / "demo.yaml"))


def _load(path: Path):
    from harness.suite import SuiteError, load_suite

    try:
        return load_suite(path)
    except SuiteError as exc:
        raise HarnessError(str(exc)) from None


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _sweep(suite, results_dir: Path, *, executor: str, max_parallel, retry_failed: bool, address, cores):
    from harness.sweep.lock import LockedError
    from harness.sweep.plan import PlanError
    from harness.sweep.ray_executor import RayUnavailable, import_ray
    from harness.sweep.run import run_sweep

    try:
        if executor == "ray":
            import_ray(address)  # before anything is written
        return run_sweep(suite, results_dir, executor=executor, max_parallel=max_parallel, retry_failed=retry_failed,
                         address=address, cores=cores, console=_console())
    except (PlanError, LockedError, RayUnavailable) as exc:
        raise HarnessError(str(exc)) from None
    except OSError as exc:  # the sweep's own files (lock, suite.json) on a full or read-only disk
        from harness.store import describe_os_error

        raise HarnessError(describe_os_error(exc, "writing the sweep's files", "rerun the same command (finished "
                                             "runs are kept), or choose another --results-dir")) from None


@click.command("sweep")
@click.argument("suite", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Runs go to RESULTS_DIR/<suite name>/<run id>/.")
@click.option("--dry-run", is_flag=True, help="Print the plan (runs per axis, totals, core-hours) and run nothing.")
@click.option("--max-parallel", type=click.IntRange(min=1), default=None,
              help="At most this many runs at once [default: as many as fit on the cores].")
@click.option("--executor", type=click.Choice(EXECUTORS), default=None,
              help="local: subprocesses packed onto this machine's cores; ray: one Ray task per run "
                   "[default: local, or ray when --address is given].")
@click.option("--address", default=None, metavar="ADDRESS",
              help="Ray cluster to submit to (e.g. 10.0.0.5:6379 or ray://head:10001) [default: a local Ray instance].")
@click.option("--retry-failed", is_flag=True, help="Also rerun runs whose state is failed (from their checkpoint).")
@click.option("--cores", type=click.IntRange(min=1), default=None,
              help="Cores to pack runs onto (local) or CPUs of the local Ray instance [default: this machine's "
                   "physical cores]. More than the machine has oversubscribes it.")
def sweep(suite, results_dir, dry_run, max_parallel, executor, address, retry_failed, cores):
    """Run every run of the SUITE file that is not finished yet (resumable; Ctrl-C stops cleanly).

    Finished runs (done, diverged) are skipped, interrupted ones resume from their checkpoints,
    failed ones are rerun only with --retry-failed.

    Exit code: 0 every run finished, 1 some run failed or is unfinished, 130 interrupted,
    2 bad suite or arguments.
    """
    if executor == "local" and address:
        raise HarnessError("--address names a Ray cluster: use it with --executor ray")
    executor = executor or ("ray" if address else "local")
    s = _load(suite)
    if dry_run:
        from harness.sweep import plan
        from harness.sweep.run import print_plan

        try:
            recs = plan.records(s, results_dir)
        except plan.PlanError as exc:
            raise HarnessError(str(exc)) from None
        print_plan(s, recs, results_dir, _console(), cores=cores, retry_failed=retry_failed)
        return
    outcome = _sweep(s, results_dir, executor=executor, max_parallel=max_parallel, retry_failed=retry_failed,
                     address=address, cores=cores)
    raise SystemExit(outcome.exit_code)


def _status_targets(target: Path, results_dir: Path):
    """(suite, suite folder) pairs for a suite file, a suite folder, or a folder of suite folders."""
    from harness.suite import load_suite

    if target.is_file():
        s = _load(target)
        return [(s, results_dir / s.name)]
    if not target.is_dir():
        raise HarnessError(f"{target}: no such suite file or results folder")
    if (target / "suite.json").is_file() or (target / "suite.yaml").is_file():
        return [(_load(target), target)]
    subs = sorted(p for p in target.iterdir() if p.is_dir() and (p / "suite.json").is_file())
    if not subs:
        raise HarnessError(f"{target}: no suite.json here or in its subfolders (is it a sweep's results folder?)")
    out = []
    for p in subs:
        try:
            out.append((load_suite(p), p))
        except Exception as exc:  # noqa: BLE001 - one broken suite folder must not hide the others
            click.echo(f"{p}: cannot read its suite: {exc}", err=True)
    return out


@click.command("status")
@click.argument("target", metavar="SUITE_OR_DIR", type=click.Path(path_type=Path))
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Where a SUITE file's runs are (RESULTS_DIR/<suite name>).")
@click.option("--all", "show_all", is_flag=True, help="List every run with its state.")
def status(target, results_dir, show_all):
    """Print a sweep's table from disk: runs done / running / failed / total, frames, frames/s, ETA.

    SUITE_OR_DIR is a suite file, a suite's results folder (results/<name>), or a folder of them.
    """
    from harness.sweep import plan
    from harness.sweep.display import print_status
    from harness.sweep.lock import sweep_running

    console = _console()
    for s, folder in _status_targets(target, results_dir):
        base_results = folder.parent
        if folder.name != s.name:  # a renamed folder: read it where it is
            s.name = folder.name
            s._runs = None
        try:
            recs = plan.records(s, base_results, check=False)
        except Exception as exc:  # noqa: BLE001
            raise HarnessError(f"{folder}: {exc}") from None
        holder = sweep_running(folder)
        title = f"{s.name} ({folder})"
        if holder is not None:
            title += f": sweep running (pid {holder.get('pid')} on {holder.get('host')})"
        elif not folder.exists():
            title += ": nothing run yet"
        print_status(recs, title, console, live_sweep=holder is not None, show_all=show_all,
                     extra=plan.extra_folders(s, base_results))


@click.command("demo")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True)
@click.option("--suite", "suite_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Run this suite instead of the embedded demo suite.")
@click.option("--max-parallel", type=click.IntRange(min=1), default=None, help="At most this many runs at once.")
@click.option("--no-report", is_flag=True, help="Only run the sweep.")
def demo(results_dir, suite_path, max_parallel, no_report):
    """The embedded default job: the demo suite, then its report.

    The demo suite (harness/suites/demo.yaml): CartPole-v1, the four methods, 1 and 2 threads, two
    learning rates, two seeds; about 4 minutes on 2 free cores. Resumable like any sweep.
    """
    path = suite_path or demo_suite_path()
    s = _load(path)
    click.echo(f"demo: suite {s.name} from {path}")
    outcome = _sweep(s, results_dir, executor="local", max_parallel=max_parallel, retry_failed=False,
                     address=None, cores=None)
    if outcome.interrupted:
        raise SystemExit(outcome.exit_code)
    if not no_report:
        try:
            from harness.report import build_report
        except ImportError:
            click.echo("demo: harness.report is not available; the runs are in " + str(outcome.suite_dir))
        else:
            from harness.report import ReportError

            try:
                summary = build_report([outcome.suite_dir], out=None)
            except ReportError as exc:
                raise HarnessError(f"report: {exc}") from None
            click.echo(str(summary))
            click.echo(f"demo: open {Path(summary.index_html).resolve()}")
    raise SystemExit(outcome.exit_code)


COMMANDS = (sweep, status, demo)
