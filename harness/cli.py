"""The ``harness`` command line."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

if "numpy" not in sys.modules:  # one BLAS thread per worker, set before numpy loads (engine.worker.one_blas_thread)
    for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import click

from harness.config import OPTIMIZERS, SCHEDULES, ConfigError, EngineSettings, EvalSettings, make_run_config
from harness.envs import EnvSettings
from harness.errors import HarnessError  # noqa: F401 - part of this module's interface
from harness.seeds import seed_option

EXIT_CODES = {"done": 0, "failed": 1, "diverged": 3, "interrupted": 130}




def _hyperparameter_fields() -> dict[str, dataclasses.Field]:
    """Every hyperparameter of the installed algorithms, by name (first definition wins)."""
    from harness.plugins import available_algorithms, load_algorithm

    fields: dict[str, dataclasses.Field] = {}
    for name in available_algorithms():
        try:
            cls = load_algorithm(name)
        except Exception:  # noqa: BLE001 - a broken plug-in must not break the CLI
            continue
        for f in dataclasses.fields(cls.Hyperparameters):
            fields.setdefault(f.name, f)
    return fields


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _option_for(prefix: str, f: dataclasses.Field, group: str) -> click.Option:
    default = _default_of(f)
    flag = f"--{prefix}{f.name.replace('_', '-')}"
    dest = f"{group}__{f.name}"
    help_text = f"[{group}] default {default!r}"
    if isinstance(default, bool):
        return click.Option([f"{flag}/--no-{prefix}{f.name.replace('_', '-')}", dest], default=None, help=help_text)
    if isinstance(default, (tuple, list)):
        return click.Option([flag, dest], default=None, metavar="A,B,...", help=help_text + " (comma-separated)")
    if isinstance(default, (int, float)):
        kind = type(default)
    else:  # no default (None): the annotation says what a value is ("float | None")
        kind = {"int": int, "float": float}.get(str(f.type).split("|")[0].strip(), str)
    if kind is int:
        kind = _IntLike()
    return click.Option([flag, dest], type=kind, default=None, help=help_text)


class _IntLike(click.ParamType):
    """Integers that may be written as 4e6."""

    name = "integer"

    def convert(self, value, param, ctx):
        try:
            f = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if f != int(f):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        return int(f)


def _collect(kwargs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {"hp": {}, "env": {}, "engine": {}, "eval": {}}
    for key in list(kwargs):
        if "__" in key:
            group, name = key.split("__", 1)
            value = kwargs.pop(key)
            if value is None:
                continue
            if isinstance(value, str) and group == "hp":
                value = tuple(float(x) for x in value.split(","))
            groups[group][name] = value
    return groups


def _dynamic_options() -> list[click.Option]:
    """``harness train``'s options for every hyperparameter and setting (``--t-max``, ``--noop-max``,
    ``--eval-episodes``, ...), after its fixed ones."""
    fields = _hyperparameter_fields()
    options = [_option_for("", f, "hp") for f in fields.values()]
    options += [_option_for("", f, "env") for f in dataclasses.fields(EnvSettings)]
    options += [_option_for("", f, "engine") for f in dataclasses.fields(EngineSettings)]
    options += [_option_for("eval-", f, "eval") for f in dataclasses.fields(EvalSettings)]
    return options


class _TrainCommand(click.Command):
    """``harness train``, whose options include every installed algorithm's hyperparameters.
    Finding them imports the algorithms and torch (3-4 s), so they join the command when it is
    parsed or shown, not when the command line is imported: ``harness report``, ``gate`` and
    ``status`` never pay for torch."""

    _extended = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self._extended:
            self._extended = True
            self.params.extend(_dynamic_options())
        return super().get_params(ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="async-rl-harness")
def cli() -> None:
    """Benchmark asynchronous deep RL methods (Mnih et al. 2016) on Atari and gymnasium tasks."""


def _progress_printer(label: str):
    tty = sys.stderr.isatty()
    state = {"last": 0.0}

    def show(p) -> None:
        if not tty and time.monotonic() - state["last"] < 10:
            return
        state["last"] = time.monotonic()
        ret = "n/a" if p.recent_return is None else f"{p.recent_return:.1f}"
        eta = "?" if p.eta_seconds is None else time.strftime("%H:%M:%S", time.gmtime(p.eta_seconds))
        line = (f"{label} frames {p.frames:,}/{p.budget:,} ({100 * p.frames / p.budget:.0f}%)  "
                f"{p.frames_per_second:,.0f} frames/s  recent return {ret}  episodes {p.episodes}  ETA {eta}")
        click.echo(("\r" + line + "\x1b[K") if tty else line, err=True, nl=not tty)

    return show


def run_one(cfg, out: Path, resume: bool = True, label: str = "") -> int:
    """Train ``cfg`` into ``out`` with a progress line; print the outcome; return the exit code."""
    from harness.engine import train
    from harness.engine.run import RunFolderError

    try:
        result = train(cfg, out, resume=resume, on_progress=_progress_printer(label or cfg.algorithm))
    except RunFolderError as exc:
        click.echo(f"harness: error: {exc}", err=True)
        return exc.exit_code
    if result.already_finished:
        click.echo(f"{out} holds this run, already {result.state} at {result.frames:,} frames; nothing to do "
                   f"(--fresh trains it again)")
        return EXIT_CODES.get(result.state, 1)
    if sys.stderr.isatty():
        click.echo("", err=True)
    summary = (f"{result.state}: {result.frames:,} frames in {result.wall_seconds:.1f} s "
               f"({result.frames_per_second:,.0f} frames/s)")
    if result.error and result.state != "failed":
        summary += f" — {result.error}"
    click.echo(summary)
    click.echo(f"output: {out}")
    if result.state == "failed":  # what went wrong and what to do: one line, like every error
        click.echo(f"harness: error: {result.error or 'the run failed'}", err=True)
    return EXIT_CODES.get(result.state, 1)


@cli.command(cls=_TrainCommand)
@click.option("--algo", "algorithm", required=True, help="one_step_q, one_step_sarsa, n_step_q, a3c, a3c_lstm, or module:Class")
@click.option("--env", required=True, help="Atari game (Pong, ALE/Pong-v5) or gymnasium id (CartPole-v1)")
@click.option("--threads", type=int, default=1, show_default=True, help="actor-learners (the paper's threads)")
@click.option("--lr", type=float, default=None, help="initial learning rate [default: the algorithm's for this observation kind]")
@click.option("--seed", type=int, default=0, show_default=True, callback=seed_option,
              help="run seed, 0 <= seed < 2**32")
@click.option("--frames", type=_IntLike(), default=1_000_000, show_default=True, help="budget in emulator frames (4 per step on Atari)")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="shared_rmsprop", show_default=True)
@click.option("--schedule", type=click.Choice(SCHEDULES), default="hogwild", show_default=True,
              help="hogwild: a process per actor-learner; virtual: N actor-learners on N modelled cores, in one "
                   "process, in the order N real cores would apply their updates (README 'Schedules')")
@click.option("--time-model", "time_model", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="schedule virtual: per-step and per-update costs from this harness bench record (JSON) instead "
                   "of the defaults for the kind of task and method")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="run folder")
@click.option("--fresh", is_flag=True, help="ignore an existing checkpoint in --out and start from scratch")
@click.option("--env-module", "env_modules", multiple=True, help="module that registers gymnasium envs on import, or module:function to call (minatar.gym:register_envs)")
def train(algorithm, env, threads, lr, seed, frames, optimizer, schedule, time_model, out, fresh, env_modules,
          **kwargs) -> None:
    """Train one run into OUT (config.json, status.json, episodes.csv, evals.csv).

    Running it again resumes the same run from its checkpoint (a finished one is left as it is);
    another run's folder, or one in use by another process, is refused. Exit code: 0 done, 1 failed
    (status.json says why), 3 diverged, 130 interrupted, 2 bad arguments or an unusable --out.
    """
    groups = _collect(kwargs)
    try:
        cfg = make_run_config(
            algorithm=algorithm, env=env, threads=threads, lr=lr, seed=seed, frames=frames,
            optimizer=optimizer, hyperparameters=groups["hp"], env_settings=groups["env"],
            engine=groups["engine"], eval=groups["eval"], env_modules=tuple(env_modules),
            schedule=schedule, time_model=time_model,
        )
    except ConfigError as exc:
        raise HarnessError(str(exc)) from None
    raise SystemExit(run_one(cfg, out, resume=not fresh))


from harness.sweep.cli import demo, status, sweep  # noqa: E402

cli.add_command(sweep)
cli.add_command(status)
cli.add_command(demo)

from harness.check.cli import check  # noqa: E402
from harness.gate_cli import gate  # noqa: E402
from harness.report.cli import report  # noqa: E402

cli.add_command(check)
cli.add_command(report)
cli.add_command(gate)


@cli.group("export")
def export() -> None:
    """Write results in other tools' formats (README "Use the results")."""


@export.command("tensorboard")
@click.argument("results_dirs", metavar="RESULTS_DIR...", nargs=-1, required=True,
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="TensorBoard log directory (tensorboard --logdir OUT); one run per run folder.")
@click.option("--baseline", type=click.Choice(["no-op", "human-start"]), default="no-op", show_default=True,
              help="Human/random table for the human-normalised Atari scores of the HParams metrics.")
def export_tensorboard_command(results_dirs, out, baseline):
    """Write each run folder under RESULTS_DIR... as a TensorBoard run: training returns, evaluations,
    learning rate, frames/s, policy lag and the HParams dashboard. Run it again to add what is new."""
    from harness.export import ExportError, export_tensorboard

    for d in results_dirs:
        if not d.is_dir():
            raise HarnessError(f"results directory {d} does not exist")
    try:
        counts = export_tensorboard(results_dirs, out, baseline=baseline)
    except ExportError as exc:
        raise HarnessError(str(exc)) from None
    except OSError as exc:
        raise HarnessError(f"cannot write to {out}: {exc.strerror or exc}") from None
    click.echo(f"{counts['runs']} run(s) written to {out} ({counts['episodes']:,} new episodes, {counts['evals']:,} "
               f"new evaluations, {counts['finished']} newly finished), {counts['unchanged']} unchanged"
               + (f"; {counts['problems']} problem(s) with the inputs (harness report lists them)" if counts["problems"] else "")
               + f"\nview: tensorboard --logdir {out}")


def _csv_list(kind):
    def convert(ctx, param, value):
        try:
            return [kind(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a comma-separated list of {kind.__name__}") from None

    return convert


@cli.command()
@click.option("--algo", "algorithms", default="a3c", show_default=True, callback=_csv_list(str), help="comma-separated algorithms")
@click.option("--env", default="Pong", show_default=True)
@click.option("--threads", default="1,2", show_default=True, callback=_csv_list(int), help="comma-separated worker counts")
@click.option("--seconds", type=float, default=20.0, show_default=True, help="length of each measurement")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("bench.json"), show_default=True,
              help="JSON record (a CSV of the rows is written beside it)")
@click.option("--compare", "baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="baseline JSON: exit 1 if train/bound or efficiency fell by more than --tolerance")
@click.option("--tolerance", type=float, default=0.2, show_default=True)
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="training runs per thread count; the median is reported (noisy machines)")
@click.option("--unshared-control", is_flag=True,
              help="also train each thread count > 1 with unshared θ and optimizer statistics: the machine's "
                   "efficiency without the cost of Hogwild sharing (a control, not a method)")
@click.option("--optimizer", type=click.Choice(["shared_rmsprop", "rmsprop", "momentum_sgd"]), default="shared_rmsprop",
              show_default=True, help="the engine's optimizer for every measurement")
@click.option("--env-module", "env_modules", multiple=True,
              help="module that registers gymnasium envs on import, or module:function to call (minatar.gym:register_envs)")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="with --compare: write the speed gate's Markdown summary to FILE (also appended to $GITHUB_STEP_SUMMARY)")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="with --compare: write JUnit XML to FILE, one test case per compared configuration")
@click.option("--schedule", "schedules", default="hogwild", show_default=True, callback=_csv_list(str),
              help="comma-separated schedules (hogwild, virtual, sync); virtual and sync rows say how their real "
                   "frames/s compare with one Hogwild worker (vs_one_worker)")
@click.option("--reference", is_flag=True,
              help="also measure every configuration on the autograd reference path (gradient = autograd), "
                   "side by side with the default fast path in the same rounds")
def bench(algorithms, env, threads, seconds, out, baseline, tolerance, repeat, unshared_control, optimizer,
          env_modules, markdown_path, junit_path, schedules, reference) -> None:
    """Measure env, acting, learning and training throughput per worker count (see docs/BENCHMARKS.md)."""
    from harness import bench as b
    from harness.plugins import AlgorithmError, load_algorithm
    from harness.store import usable_cores

    try:
        for a in algorithms:
            load_algorithm(a)
        make_run_config(algorithm=algorithms[0], env=env, env_modules=tuple(env_modules))
    except (AlgorithmError, ConfigError) as exc:
        raise HarnessError(str(exc)) from None
    if not threads or min(threads) < 1:
        raise HarnessError("--threads needs worker counts >= 1, e.g. 1,2,4")
    if seconds <= 0:
        raise HarnessError("--seconds must be > 0")
    if (markdown_path or junit_path) and baseline is None:
        raise HarnessError("--markdown and --junit report the speed gate: give --compare BASELINE.json too")
    bad = [s for s in schedules if s not in SCHEDULES]
    if bad or not schedules:
        raise HarnessError(f"--schedule: {', '.join(bad) or 'nothing given'}: use a comma-separated list of "
                           f"{', '.join(SCHEDULES)}")
    if max(threads) > usable_cores() and "hogwild" in schedules:
        click.echo(f"warning: {max(threads)} threads on {usable_cores()} usable cores: oversubscribed runs "
                   "measure the scheduler, not the method (flagged in the output)", err=True)
    try:
        result = b.run_bench(algorithms, env, threads, seconds, log=lambda m: click.echo(m, err=True), repeat=repeat,
                             unshared_control=unshared_control, optimizer=optimizer, env_modules=tuple(env_modules),
                             schedules=tuple(schedules), gradients=("fast", "autograd") if reference else ("fast",))
    except b.BenchError as exc:
        click.echo(f"harness: error: {exc}", err=True)
        raise SystemExit(1) from None
    json_path, csv_path = b.write_outputs(result, out)
    click.echo(b.format_table(result))
    click.echo(f"wrote {json_path} and {csv_path}")
    if baseline is not None:
        base = b.load_baseline(baseline)
        if not b.compare_rows(result, base, tolerance):
            click.echo(f"harness: error: no configuration measured here is in {baseline} (algorithm, env, threads, "
                       "sharing, optimizer, schedule, gradient): nothing was gated; measure the baseline's "
                       "configurations or write a new baseline", err=True)
            raise SystemExit(1)
        problems = b.compare(result, base, tolerance)
        if markdown_path or junit_path or os.environ.get("GITHUB_STEP_SUMMARY"):
            from harness.ci_output import publish

            text, cases = b.compare_report(result, base, tolerance, str(baseline))
            publish(text, cases, "harness bench", markdown_path, junit_path)
        for p in problems:
            click.echo(f"regression: {p}", err=True)
        if problems:
            raise SystemExit(1)
        click.echo(f"no regression against {baseline} (tolerance {tolerance:.0%})")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: click errors become one line on stderr with exit code 2."""
    try:
        rv = cli.main(args=argv, prog_name="harness", standalone_mode=False)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        click.echo(f"harness: error: {exc.format_message()}", err=True)
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        click.echo("harness: aborted", err=True)
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise SystemExit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
