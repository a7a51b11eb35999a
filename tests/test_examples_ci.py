"""examples/ci: the copy-paste CI files are valid YAML for their systems and call only documented
``harness`` commands with options that exist (each command is parsed by the CLI itself)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest
import yaml

from harness.cli import cli

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / "examples" / "ci"


def _harness_commands(lines: list[str]) -> list[str]:
    out = []
    for block in lines:
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("harness "):
                out.append(line.split(" || ")[0])
    return out


def _parse(command: str, tmp_path: Path) -> None:
    """Parse one ``harness ...`` line with the CLI's own parser (no command runs): the subcommands
    must exist and the leaf command must accept every option and argument."""
    args = shlex.split(command.replace('"$ALGO"', "a3c"))[1:]
    cmd: click.Command = cli
    ctx = click.Context(cli, info_name="harness")
    while isinstance(cmd, click.Group):
        name, args = args[0], args[1:]
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"harness has no command {name!r}: {command}"
        cmd, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
    cmd.make_context(cmd.name, list(args), parent=ctx.parent)


@pytest.fixture
def user_repo(tmp_path, monkeypatch):
    """A checkout as the examples expect it: the suite and the two baselines committed under ci/."""
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "learning-smoke.yaml").write_text((ROOT / "suites" / "learning-smoke.yaml").read_text())
    for name in ("gate-baseline.json", "bench-baseline.json"):
        (tmp_path / "ci" / name).write_text("{}")
    (tmp_path / "candidate" / "learning-smoke").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_github_actions_workflow(user_repo):
    wf = yaml.safe_load((CI / "github-actions.yml").read_text())
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "pull_request" in triggers and wf["jobs"]
    runs = []
    for job in wf["jobs"].values():
        assert isinstance(job["runs-on"], str) and isinstance(job["steps"], list)
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            runs += [step["run"]] if "run" in step else []
    commands = _harness_commands(runs)
    assert {c.split()[1] for c in commands} == {"check", "sweep", "gate", "bench", "report"}
    for c in commands:
        _parse(c, user_repo)


def test_gitlab_ci_job(user_repo):
    jobs = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    (job,) = jobs.values()
    assert isinstance(job["image"], str) and isinstance(job["script"], list)
    assert job["artifacts"]["reports"]["junit"]
    commands = _harness_commands(job["script"] + job.get("after_script", []))
    assert {c.split()[1] for c in commands} == {"check", "sweep", "gate", "bench", "report"}
    for c in commands:
        _parse(c, user_repo)


def test_an_unknown_option_would_be_caught(user_repo):
    with pytest.raises(click.UsageError):
        _parse("harness gate check candidate/learning-smoke --baseline ci/gate-baseline.json --nope", user_repo)


def test_the_suite_the_examples_copy_is_the_learning_smoke_suite():
    from harness.suite import load_suite

    suite = load_suite(ROOT / "suites" / "learning-smoke.yaml")
    assert suite.name == "learning-smoke"  # the examples read candidate/learning-smoke
    assert suite.games == ["CartPole-v1"] and len(suite.seeds) >= 3  # seeds: the gate's bootstrap needs several
    assert set(suite.algorithms) == {"one_step_q", "one_step_sarsa", "n_step_q", "a3c"}
