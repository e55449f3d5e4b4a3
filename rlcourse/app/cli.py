"""The ``rlcourse`` command line: ``train``, ``tune``, ``eval``, ``play``, ``list`` and ``bench``.

Error policy: every bad input (unknown algorithm, env, preset or hyperparameter, bad value, missing file,
unusable checkpoint, absent CUDA, unknown option) ends the program with exit code 2 and exactly one
line ``rlcourse: error: <reason>`` on stderr, never a traceback. :func:`main` gets this by running the
click group with ``standalone_mode=False`` and turning click's usage errors and the library's
``ValueError``s (``ConfigError``, ``CheckpointError``, ``RunDirError``, device errors) into that line.
Inputs are all checked before training starts; a ``ValueError`` raised *during* training is a defect,
so it is re-raised as a ``RuntimeError`` and keeps its traceback.

Ctrl-C ends the program with exit code 130 and the one line ``rlcourse: error: interrupted``, wherever it
lands once this module is imported: in a command's own imports, while its env is built, or later (during
training, the agent first saves a checkpoint and says how to resume). ``python -m rlcourse`` also covers
the import of this module; only the interpreter's own start-up comes before either.

``train`` lives in :mod:`rlcourse.app.train`, ``tune`` in :mod:`rlcourse.app.tune_command`, ``play`` in
:mod:`rlcourse.app.play`, ``bench`` in :mod:`rlcourse.app.bench.command`; they are imported only when run
(:class:`RLCourseGroup`), and every torch-heavy module (agents, TensorBoard, SB3) only inside a command, so
``rlcourse --help`` never waits for torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from rlcourse import __version__
from rlcourse.app.inputs import CONTEXT, BadInput, algo_class, cli_wording, device_of
from rlcourse.config import did_you_mean, field_docs, list_presets, preset_names


# --------------------------------------------------------------------------- the group
class RLCourseGroup(click.Group):
    """A click group whose heavy commands (``train``, ``play``, ``bench``) are imported only when run.

    ``rlcourse --help`` lists them from :attr:`lazy_commands` without importing them; ``rlcourse train --help``
    imports ``train`` and shows its full help.
    """

    #: name -> (module, attribute, one-line help shown by ``rlcourse --help`` without importing it)
    lazy_commands = {
        "train": ("rlcourse.app.train", "train", "Train ALGO on ENV and evaluate it."),
        "play": (
            "rlcourse.app.play",
            "play_command",
            "Show a run's policy (or a rule expert) playing a few episodes.",
        ),
        "collect": (
            "rlcourse.app.collect",
            "collect_command",
            "Record an expert's or a run's episodes as a Minari dataset of demonstrations.",
        ),
        "fit": (
            "rlcourse.app.fit",
            "fit_command",
            "Fit a supervised plug-in (the dialogue's slot-tagger NLU, the chatbot's language model and preference reward model) and save it.",
        ),
        "tune": ("rlcourse.app.tune_command", "tune_command", "Tune ALGO's hyperparameters on ENV with Optuna."),
        "bench": (
            "rlcourse.app.bench.command",
            "bench_command",
            "Benchmark rlcourse against Stable-Baselines3 (same process, same machine).",
        ),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy_commands:
            return super().get_command(ctx, name)
        module_name, attribute, _ = self.lazy_commands[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:  # the module exists but one of its dependencies is missing
                raise click.ClickException(
                    f"'rlcourse {name}' needs the package {error.name!r}, which is not installed"
                ) from None
            raise click.ClickException(
                f"'rlcourse {name}' is not available in this installation ({module_name} is missing)"
            ) from None
        return getattr(module, attribute)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Like click's, but an unknown command's "did you mean" considers the lazy commands too."""
        name = click.utils.make_str(args[0]) if args else ""
        if name and not name.startswith("-") and not ctx.resilient_parsing and self.get_command(ctx, name) is None:
            hint = did_you_mean(name, self.list_commands(ctx))
            raise click.UsageError(
                f"No such command {name!r}." + (f" {hint[0].upper()}{hint[1:]}" if hint else ""), ctx
            )
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, but lazy commands are described from :attr:`lazy_commands`, without importing them."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.lazy_commands:
                rows.append((name, self.lazy_commands[name][2]))
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group("rlcourse", cls=RLCourseGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="rlcourse", message="%(prog)s %(version)s")
def cli() -> None:
    """rlcourse: batched on-device Gymnasium environments and course-style RL agents.

    \b
    rlcourse train ppo rlcourse/SlotFilling-v0       train the dialogue policy (preset)
    rlcourse train ppo rlcourse/CartPole-v1          train with the shipped preset
    rlcourse train ALGO ENV --preset NAME            a named preset variant (rlcourse list)
    rlcourse tune ppo rlcourse/CartPole-v1           search hyperparameters with Optuna
    rlcourse eval runs/rlcourse_CartPole-v1/ppo/NAME  evaluate a run's checkpoint
    rlcourse play RUN_DIR                            watch a run play (dialogues, step tables, --video)
    rlcourse list [--hp ppo]                         algorithms, envs, presets, hyperparameters
    tensorboard --logdir runs                        watch the runs
    """


# --------------------------------------------------------------------------- small helpers
def _format_value(value: Any) -> str:
    """A default as one would write it in YAML or ``--hp``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return str(value)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


# --------------------------------------------------------------------------- eval
@cli.command("eval", context_settings=CONTEXT)
@click.argument("run_dir")
@click.option("--episodes", type=click.IntRange(min=1), default=100, show_default=True, help="Episodes to play.")
@click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N."
)
def eval_command(run_dir: str, episodes: int, device: str) -> None:
    """Evaluate a run's checkpoint deterministically and write eval.json.

    RUN_DIR is a run folder (its checkpoint.pt is used) or a checkpoint file: checkpoint.pt's evaluation
    goes to eval.json beside it, another file's (best.pt) to eval-<name>.json, so the run's final
    evaluation is never overwritten.
    """
    from rlcourse.app.runs import describe_eval, load_run_agent

    device_of(device)  # a bad --device fails before the checkpoint is read
    agent = load_run_agent(Path(run_dir), device)
    target = agent.run_dir.eval_for(Path(run_dir) if Path(run_dir).is_file() else agent.run_dir.checkpoint)
    result = agent.write_eval(episodes, target)
    click.echo(f"{agent.algo} on {agent.env_id} after {agent.num_timesteps:,} steps: {describe_eval(result)}")
    click.echo(f"  written to {target}")


# --------------------------------------------------------------------------- list
@cli.command("list", context_settings=CONTEXT)
@click.option("--hp", "hp_algo", metavar="ALGO", help="Show every hyperparameter of ALGO with its default and meaning.")
def list_command(hp_algo: str | None) -> None:
    """List algorithms, envs and presets with their variants; with --hp ALGO, its hyperparameters."""
    from rlcourse.agents import ALGOS
    from rlcourse.registry import list_envs

    if hp_algo is not None:
        config_class = algo_class(hp_algo).config_class
        docs = field_docs(config_class)
        rows = [(f.name, _format_value(f.default), docs[f.name]) for f in dataclasses.fields(config_class)]
        click.echo(
            f"{hp_algo} hyperparameters ({config_class.__name__}); set them with --hp KEY=VALUE or --config FILE:"
        )
        name_width = max(len(r[0]) for r in rows)
        default_width = max(len(r[1]) for r in rows)
        for name, default, doc in rows:
            click.echo(f"  {name:<{name_width}}  {default:<{default_width}}  {doc}")
        presets = list_presets(hp_algo)
        if presets:
            click.echo(f"Presets in rlcourse/presets/{hp_algo}.yml override these for: {', '.join(presets)}")
            _echo_preset_variants(hp_algo, "  ")
        return
    click.echo("Algorithms (rlcourse train ALGO ENV):")
    width = max(len(name) for name in ALGOS)
    for name, agent_class in sorted(ALGOS.items()):
        click.echo(
            f"  {name:<{width}}  {_first_line(inspect.getmodule(agent_class).__doc__) or _first_line(agent_class.__doc__)}"
        )
    click.echo("Batched rlcourse envs (any registered Gymnasium id works too, e.g. Pendulum-v1):")
    for env_id in list_envs():
        click.echo(f"  {env_id}")
    click.echo("Presets (used automatically for these envs; pick another variant with --preset NAME):")
    for name in sorted(ALGOS):
        click.echo(f"  {name:<{width}}  {', '.join(list_presets(name)) or '(none)'}")
        _echo_preset_variants(name, "  " + " " * (width + 4))
    click.echo("Hyperparameters: rlcourse list --hp ALGO")


def _echo_preset_variants(algo: str, indent: str) -> None:
    """One line per env with named variants beyond ``default``: ``<env>: default, large_batch_4096, ...``."""
    for env_id in list_presets(algo):
        names = preset_names(algo, env_id)
        if names != ["default"]:
            click.echo(f"{indent}{env_id}: {', '.join(names)}")


# --------------------------------------------------------------------------- entry point
def _error(message: str) -> None:
    """The one stderr line of a failed command."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    click.echo(f"rlcourse: error: {' '.join(lines) or 'failed'}", err=True)


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", None)  # click >= 8.2


def main(args: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script ``rlcourse`` and ``python -m rlcourse``)."""
    try:
        return _run(args)
    except KeyboardInterrupt:  # Ctrl-C outside click's own handling (e.g. while an error is being reported)
        _error("interrupted")
        return 130


def _run(args: Sequence[str] | None) -> int:
    try:
        result = cli.main(args=list(args) if args is not None else None, prog_name="rlcourse", standalone_mode=False)
    except click.exceptions.UsageError as error:
        if _NO_ARGS_IS_HELP is not None and isinstance(error, _NO_ARGS_IS_HELP):
            click.echo(error.format_message())  # plain `rlcourse`: show the help, as `rlcourse --help` does
            return 0
        usage = error.ctx is not None and not isinstance(error, BadInput)  # click's own parse errors
        hint = f" (see '{error.ctx.command_path} --help')" if usage else ""
        _error(error.format_message() + hint)
        return error.exit_code
    except click.exceptions.ClickException as error:
        _error(error.format_message())
        return error.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C inside a command into Abort
        _error("interrupted")
        return 130
    except ValueError as error:  # ConfigError, CheckpointError, device and env errors: all bad input
        _error(cli_wording(str(error)))  # the library names Python arguments (device="cpu"); say --device cpu
        return 2
    except BrokenPipeError:  # `rlcourse list | head -1`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


__all__ = ["cli", "main"]
