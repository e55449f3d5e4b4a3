"""``rlcourse play``: watch a run's policy (or an env's rule expert) play a few episodes."""

from __future__ import annotations

from pathlib import Path

import click

from rlcourse.app.inputs import CONTEXT, BadInput, device_of
from rlcourse.app.runs import load_run_agent
from rlcourse.config import parse_hp


@click.command("play", context_settings=CONTEXT)
@click.argument("run_dir", required=False)
@click.option(
    "--episodes", type=click.IntRange(min=1, max=1000), default=3, show_default=True, help="Dialogues to print."
)
@click.option(
    "--expert",
    "expert_env",
    metavar="ENV",
    help="Play the env's rule expert instead of a run (rlcourse/SlotFilling-v0).",
)
@click.option(
    "--env-opt",
    "env_opts",
    multiple=True,
    metavar="KEY=VALUE",
    help="With --expert: an env option (nlu=tcbot); repeatable.",
)
@click.option("--stochastic", is_flag=True, help="Sample the policy's actions instead of taking the most likely one.")
@click.option(
    "--seed", type=click.IntRange(min=0), default=None, help="Seed of the dialogues (default: fixed per run)."
)
@click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N."
)
def play_command(
    run_dir: str | None,
    episodes: int,
    expert_env: str | None,
    env_opts: tuple[str, ...],
    stochastic: bool,
    seed: int | None,
    device: str,
) -> None:
    """Print sample dialogues played by a run's policy (or by a rule expert).

    RUN_DIR is a run folder or a checkpoint file of a text env such as rlcourse/SlotFilling-v0.
    Lines in parentheses show where the NLU misheard the user.
    """
    resolved_device = device_of(device)
    if (run_dir is None) == (expert_env is None):
        raise BadInput("give either RUN_DIR or --expert ENV")
    if expert_env is not None:
        from rlcourse.registry import make_vec

        env = make_vec(expert_env, 1, resolved_device, **parse_hp(env_opts, flag="--env-opt"))
        if not env.has_rule_expert:
            raise BadInput(f"{expert_env} has no rule expert")
        if not env.has_transcripts:
            raise BadInput(f"{expert_env} has no transcripts to print")
        expert = env.rule_expert()
        texts = env.play_transcripts(lambda obs, masks: expert(obs), episodes, seed=0 if seed is None else seed)
        title = f"rule expert on {expert_env} {env.options()}"
    else:
        if env_opts:
            raise BadInput("--env-opt goes with --expert; a run plays on the env it was trained on")
        agent = load_run_agent(Path(run_dir), device)
        texts = agent.transcripts(episodes, deterministic=not stochastic, seed=seed)
        title = f"{agent.algo} on {agent.env_id} {agent.env.options()} after {agent.num_timesteps:,} steps"
    click.echo(f"# {title}")
    for index, text in enumerate(texts):
        click.echo(f"\n--- dialogue {index + 1} ---\n{text}")


__all__ = ["play_command"]
