"""What a run was started with, so that `--resume RUN_DIR` alone continues it.

    a new run:  every option of the command (the shared ones and the workflow's own; given,
                from the environment or default) → run.json "params", paths made absolute;
                and "cwd", the directory the run started in
    --resume:   run.json "params" → the value of every option not given again. Given again, the
                option's `OnResume` decides: CHANGE (a budget, -j) takes the new value, KEEP (an
                agent, the repository, the command) must equal the recorded one, else the resume
                is refused in one line naming each difference; FRESH options are never recorded.
                → the run goes on in "cwd" (a relative command, items file or item means what
                it meant), and run.json records the values this pass used

Every option is KEEP unless it is declared otherwise (`Option.on_resume` for a workflow's own,
`options.SHARED_ON_RESUME` for the shared ones): an option added later is recorded and restored
with no code here, and cannot be changed by a resume until someone decides that is safe.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from agentos.errors import ConfigError
from agentos.item.workflow import OnResume, Workflow
from agentos.run.options import SHARED_ON_RESUME
from agentos.rundir.journal import MANIFEST, read_manifest

log = logging.getLogger("agentos")

#: where a value came from when the user chose it (not a default)
_GIVEN = frozenset({ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT})


def policies(workflow: Workflow) -> dict[str, OnResume]:
    """Every option's OnResume that is not KEEP, by parameter name."""
    found = dict(SHARED_ON_RESUME)
    found.update({opt.dest: opt.on_resume for opt in workflow.options})
    return found


@dataclass(eq=False)
class Invocation:
    """This pass's command line, as run.json records it and as the resume hint repeats it."""

    #: the recorded options: JSON values by parameter name (FRESH ones left out)
    params: dict[str, Any]
    #: how to run this command again (`agentos requirements`, or a script's path)
    command_path: str
    cwd: str = field(default_factory=os.getcwd)
    resumed: bool = False  # params came (in part) from an earlier pass's run.json

    @classmethod
    def from_click(
        cls, ctx: click.Context, params: dict[str, Any], workflow: Workflow
    ) -> Invocation:
        """The invocation of `ctx`; with --resume, `params` are completed from the run
        directory's run.json first (in place), and the process moves to the directory the run
        started in."""
        rules = policies(workflow)
        resumed = False
        cwd = os.getcwd()
        if params.get("resume") is not None:
            cwd = restore(ctx, params, rules, workflow.name)
            resumed = True
        recorded = {
            param.name: json_value(params[param.name])
            for param in ctx.command.params
            if param.name in params and rules.get(param.name, OnResume.KEEP) != OnResume.FRESH
        }
        return cls(recorded, _command_path(ctx), cwd, resumed)

    def resume_command(self, run_dir: Path) -> str:
        """The exact command that continues the run in `run_dir`, from any directory."""
        return f"{self.command_path} --resume {shlex.quote(os.path.abspath(run_dir))}"


def _command_path(ctx: click.Context) -> str:
    """`agentos run`; for a stand-alone script (its command is the root: no `agentos` group
    above it), the interpreter and the script's path."""
    script = sys.argv[0] if sys.argv else ""
    if ctx.parent is None and script.endswith(".py"):
        return shlex.join([sys.executable, os.path.abspath(script)])
    return ctx.command_path


def json_value(value: Any) -> Any:
    """An option's value as run.json keeps it: paths absolute (they mean the same from any
    directory), tuples as lists."""
    if isinstance(value, Path):
        return str(value) if str(value) == "-" else os.path.abspath(value)
    if isinstance(value, (tuple, list)):
        return [json_value(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def restore(
    ctx: click.Context, params: dict[str, Any], rules: dict[str, OnResume], workflow: str
) -> str:
    """Complete `params` (in place) from the run.json of the run directory `params["resume"]`;
    refuse a resume that changes what the run is. Returns the directory the run started in,
    which is now the working directory."""
    run_dir = Path(os.path.abspath(params["resume"]))
    params["resume"] = run_dir
    manifest = _manifest(run_dir)
    if manifest is None:
        return os.getcwd()  # made by an agentos that recorded no options: nothing to restore
    recorded_workflow = manifest.get("workflow")
    if recorded_workflow not in (None, workflow):
        raise ConfigError(
            f"cannot resume {run_dir}: it is a run of `agentos {recorded_workflow}`, not of "
            f"`agentos {workflow}`; resume it with: agentos {recorded_workflow} --resume "
            f"{shlex.quote(str(run_dir))}"
        )
    recorded = manifest.get("params")
    if not isinstance(recorded, dict):
        return os.getcwd()
    differences: list[str] = []
    changed: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if name is None or name not in params or name not in recorded:
            continue
        rule = rules.get(name, OnResume.KEEP)
        if rule == OnResume.FRESH:
            continue
        if ctx.get_parameter_source(name) in _GIVEN:
            params[name] = _absolute(params[name])  # typed here, whatever directory runs it
            if rule == OnResume.KEEP and json_value(params[name]) != recorded[name]:
                changed.append(_name(param))
                differences.append(
                    f"{_name(param)} {_shown(recorded[name])} there, "
                    f"{_shown(json_value(params[name]))} now"
                )
            continue
        try:
            params[name] = param.type_cast_value(ctx, recorded[name])
        except click.BadParameter as exc:
            raise ConfigError(
                f"cannot resume {run_dir}: its {MANIFEST} has {_name(param)} "
                f"{_shown(recorded[name])}, which this agentos refuses ({exc.format_message()}); "
                "give it again"
            ) from None
    if differences:
        raise ConfigError(
            f"cannot resume {run_dir}: it was started with other values "
            f"({'; '.join(differences)}); drop {' and '.join(changed)} to resume it as it was "
            "started, or start a new run without --resume"
        )
    return _go_to(manifest.get("cwd"))


def _manifest(run_dir: Path) -> dict[str, Any] | None:
    """run.json of `run_dir`; a directory that is no run directory at all is refused here."""
    if not run_dir.is_dir():
        raise ConfigError(
            f"--resume {run_dir}: no such directory; pass the directory a run printed"
        )
    manifest = read_manifest(run_dir)
    if manifest is None and not (run_dir / "journal.jsonl").is_file():
        if (run_dir / ".lock").exists():  # made by a run stopped before it recorded anything
            raise ConfigError(
                f"{run_dir} holds no record of a run (it was stopped before it started): "
                "nothing to resume; run the command again without --resume"
            )
        raise ConfigError(
            f"{run_dir} is not an agentos run directory (no {MANIFEST}); "
            "pass the directory a previous run printed"
        )
    return manifest


def _go_to(cwd: Any) -> str:
    """Continue where the run started: a relative command, items file or item (`agentos run
    -- ./check.sh {}` over `ls`) means what it meant then."""
    here = os.getcwd()
    if not isinstance(cwd, str) or not cwd:
        return here
    if not os.path.isdir(cwd):
        log.warning("the run started in %s, which is gone; resuming in %s", cwd, here)
        return here
    if os.path.realpath(cwd) != os.path.realpath(here):
        os.chdir(cwd)
        log.info("resuming in %s, where the run started", cwd)
    return cwd


def _absolute(value: Any) -> Any:
    if isinstance(value, Path) and str(value) != "-":
        return Path(os.path.abspath(value))
    if isinstance(value, tuple) and any(isinstance(v, Path) for v in value):
        return tuple(_absolute(v) for v in value)
    return value


def _name(param: click.Parameter) -> str:
    if isinstance(param, click.Argument):
        return "the command"
    return max(param.opts, key=len)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return repr(shlex.join(str(v) for v in value))
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    return repr(value)
