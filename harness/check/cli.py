"""The ``harness check`` command group: ``harness check algorithm`` and ``harness check env``.

Exit codes: 0 every check passed, 1 a check failed (the message says what to fix), 2 an unknown
algorithm or environment name or a bad option (one line, no traceback). An advisory check (gymnasium's
own env checker) that fails is reported but does not change the exit code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from harness.check.defaults import ALGORITHM_MIN_FPS as DEFAULT_MIN_FPS
from harness.check.defaults import ALGORITHM_STAGES, DEFAULT_ENV, DEFAULT_FRAMES, DEFAULT_STEPS, ENV_MIN_FPS, ENV_STAGES
from harness.errors import HarnessError
from harness.seeds import seed_option
from harness.check.report import FAIL, PASS, CheckReport, CheckRow, format_row, table_header


def _usage_error(message: str) -> click.ClickException:
    return HarnessError(message)


def _whole(value: str) -> int:
    f = float(value)
    if f != int(f) or f <= 0:
        raise ValueError
    return int(f)


class _Frames(click.ParamType):
    name = "frames"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return _whole(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number > 0 (2000, 2e3)", param, ctx)


def _parse_hp(items: tuple[str, ...]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _usage_error(f"--hp takes KEY=VALUE, got {item!r}")
        v = yaml.safe_load(value)
        if isinstance(v, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                v = float(v)
            except ValueError:
                pass
        out[key.strip().replace("-", "_")] = tuple(v) if isinstance(v, list) else v
    return out


def _stages(all_stages: tuple[str, ...], only: tuple[str, ...], skip: tuple[str, ...]) -> tuple[str, ...]:
    chosen = tuple(s for s in all_stages if (not only or s in only) and s not in skip)
    if not chosen:
        raise _usage_error("--only/--skip leave no check stage to run")
    return chosen


def _printer():
    def show(row: CheckRow) -> None:
        line = format_row(row)
        colour = {PASS: "green", FAIL: "yellow" if row.advisory else "red"}.get(row.status, "yellow")
        click.echo(line.replace(row.status.upper(), click.style(row.status.upper(), fg=colour, bold=True), 1))

    return show


def _finish(report: CheckReport, json_out: Path | None, junit: Path | None = None, markdown: Path | None = None) -> None:
    if junit or markdown or os.environ.get("GITHUB_STEP_SUMMARY"):
        from harness.ci_output import publish

        text, cases = report.ci_report()
        publish(text, cases, f"harness check {report.kind}", markdown, junit)
    if json_out is not None:
        if str(json_out) == "-":
            click.echo(report.to_json())
        else:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(report.to_json() + "\n")
    if report.passed:
        click.echo(click.style(report.summary(), fg="green", bold=True))
        raise SystemExit(0)
    click.echo(click.style(report.summary(), fg="red", bold=True))
    for row in report.failures:
        tb = row.values.get("traceback")
        if tb:
            click.echo(f"\n{row.name}: the worker's traceback:\n" + "\n".join("    " + ln for ln in tb.rstrip().splitlines()))
    raise SystemExit(1)


@click.group()
def check() -> None:
    """Conformance checks for algorithms and environments (plug-ins included).

    Exit code: 0 all checks passed, 1 a check failed (the output says what to fix), 2 unknown name.
    """


@check.command("algorithm")
@click.argument("name")
@click.option("--env", default=DEFAULT_ENV, show_default=True, help="environment of the training checks")
@click.option("--env-module", "env_modules", multiple=True, help="module that registers gymnasium envs on import, or module:function to call (minatar.gym:register_envs)")
@click.option("--frames", type=_Frames(), default=DEFAULT_FRAMES, show_default=True,
              help="frame budget of each short training run (one with 2 workers, three with 1)")
@click.option("--seed", type=int, default=0, show_default=True, callback=seed_option,
              help="the run seed the checks use, 0 <= seed < 2**32")
@click.option("--hp", "hp", multiple=True, metavar="KEY=VALUE", help="hyperparameter override (repeatable)")
@click.option("--min-fps", type=float, default=None,
              help=f"performance floor, frames/s of one worker [default: {DEFAULT_MIN_FPS['vector']:g} for vector "
                   f"observations, {DEFAULT_MIN_FPS['image']:g} for images]")
@click.option("--perf-seconds", type=float, default=2.0, show_default=True, help="duration of the performance test")
@click.option("--only", type=click.Choice(ALGORITHM_STAGES), multiple=True,
              help="run only this stage (repeatable); the in-process API checks always run, as prerequisites")
@click.option("--skip", type=click.Choice(ALGORITHM_STAGES), multiple=True, help="skip this stage (repeatable)")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="keep the training runs' folders in DIR")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the report as JSON to FILE ('-': stdout)")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write JUnit XML to FILE, one test case per check")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write a Markdown summary to FILE (appended to $GITHUB_STEP_SUMMARY when set)")
def check_algorithm_cmd(name, env, env_modules, frames, seed, hp, min_fps, perf_seconds, only, skip, keep, json_out,
                        junit, markdown):
    """Check algorithm NAME (registered name, entry point, or module:Class).

    \b
    api          the contract; network builds for images [4,84,84] uint8 and vectors; actions
                 valid; loss a finite scalar with a gradient; 2 async workers change θ
    seed         init follows torch.manual_seed; act uses only its rng; 1-worker runs with the
                 same seed give identical episodes, different seeds different ones
    performance  frames/s of one worker (act + loss + update) against a floor
    """
    from harness.check.algorithm import check_algorithm

    stages = _stages(ALGORITHM_STAGES, only, skip)
    overrides = _parse_hp(hp)
    click.echo(f"harness check algorithm {name}  (env {env}, {frames:,} frames per run, seed {seed})")
    click.echo(table_header())
    try:
        report = check_algorithm(name, env=env, env_modules=env_modules, frames=frames, seed=seed,
                                 hyperparameters=overrides, min_fps=min_fps, perf_seconds=perf_seconds,
                                 stages=stages, workdir=keep, progress=_printer())
    except ValueError as exc:  # AlgorithmError, EnvError, unknown hyperparameter: not check failures
        raise _usage_error(str(exc)) from None
    _finish(report, json_out, junit, markdown)


@check.command("env")
@click.argument("env_id")
@click.option("--env-module", "env_modules", multiple=True, help="module that registers gymnasium envs on import, or module:function to call (minatar.gym:register_envs)")
@click.option("--seed", type=int, default=0, show_default=True, callback=seed_option,
              help="the run seed the checks use, 0 <= seed < 2**32")
@click.option("--steps", type=_Frames(), default=DEFAULT_STEPS, show_default=True, help="random steps of the step-contract check")
@click.option("--min-fps", type=float, default=ENV_MIN_FPS, show_default=True, help="performance floor, frames/s")
@click.option("--perf-seconds", type=float, default=2.0, show_default=True, help="duration of the performance test")
@click.option("--only", type=click.Choice(ENV_STAGES), multiple=True, help="run only this stage (repeatable)")
@click.option("--skip", type=click.Choice(ENV_STAGES), multiple=True, help="skip this stage (repeatable)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the report as JSON to FILE ('-': stdout)")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write JUnit XML to FILE, one test case per check")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write a Markdown summary to FILE (appended to $GITHUB_STEP_SUMMARY when set)")
def check_env_cmd(env_id, env_modules, seed, steps, min_fps, perf_seconds, only, skip, json_out, junit, markdown):
    """Check environment ENV_ID (Atari game or gymnasium id) as the harness drives it.

    \b
    api          builds with a Discrete action space and a Box observation space; reset and step
                 return what the engine expects, observations inside the space
    gymnasium    gymnasium.utils.env_checker.check_env on gymnasium.make(ENV_ID): advisory, its
                 FAIL is reported but not counted in the exit status (its warnings never fail it)
    network      every built-in algorithm's network takes a loss and a backward pass on it
    seed         reset(seed) reproducible; whether workers 0 and 1 get different episodes (reported)
    performance  frames/s of random play against a floor
    """
    from harness.check.env import check_env

    stages = _stages(ENV_STAGES, only, skip)
    click.echo(f"harness check env {env_id}  (seed {seed}, {steps:,} steps)")
    click.echo(table_header())
    try:
        report = check_env(env_id, env_modules=env_modules, seed=seed, steps=steps, min_fps=min_fps,
                           perf_seconds=perf_seconds, stages=stages, progress=_printer())
    except ValueError as exc:  # EnvError: an unknown name
        raise _usage_error(str(exc)) from None
    _finish(report, json_out, junit, markdown)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(check())
