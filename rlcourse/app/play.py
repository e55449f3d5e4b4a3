"""``rlcourse play``: watch a run's policy (or an env's rule expert) play a few episodes.

What is shown follows what the env declares, never what it happens to have:

* a text env (``has_transcripts``) prints its dialogues;
* every other env prints one table per episode: each step's observation, action, reward and running
  return, and how the episode ended (terminated or truncated);
* ``--video FILE`` plays the episodes on the single-env adapter (``gym.make(id, render_mode="rgb_array")``)
  through Gymnasium's ``RecordVideo``, for envs whose render modes include ``rgb_array``, and prints the
  same table.

The episodes are the agent's ``predict`` on a fresh one-env copy, so ``play`` never touches a run's state.
The first episode starts from ``reset(seed=...)``, the next ones follow in the same stream, as a single
env's episodes do; with the same seed the table and the video show the same episodes on the CPU.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from rlcourse.app.inputs import CONTEXT, BadInput, device_of
from rlcourse.app.runs import load_run_agent
from rlcourse.config import parse_hp

#: Steps after which an episode's table stops (an env without a time limit may never end an episode).
MAX_STEPS_SHOWN = 10_000
#: The render mode ``--video`` needs.
VIDEO_MODE = "rgb_array"
VIDEO_INSTALL_HINT = '--video needs moviepy, which is not installed: pip install "rlcourse[video]"'


# --------------------------------------------------------------------------- episodes, as plain numbers
@dataclasses.dataclass
class Step:
    """One step of an episode: the observation acted on, the action, and what the step gave back."""

    observation: np.ndarray
    action: np.ndarray
    reward: float
    terminated: bool
    truncated: bool


@dataclasses.dataclass
class Episode:
    """The steps of one episode and the observation it ended in."""

    steps: list[Step]
    final_observation: np.ndarray

    @property
    def total_reward(self) -> float:
        return float(sum(step.reward for step in self.steps))

    @property
    def end(self) -> str:
        last = self.steps[-1] if self.steps else None
        if last is not None and last.terminated:
            return "terminated"
        if last is not None and last.truncated:
            return "truncated"
        return f"not ended after {len(self.steps):,} steps"


class FirstSubEnv:
    """Sub-env 0 of a batched env with numpy in and out, as play needs it: ``reset(seed)`` and ``step(action)``.

    The step that ends an episode gives its ``final_obs``; the next unseeded ``reset`` continues with the
    episode SAME_STEP autoreset has begun (as the single-env adapter does).
    """

    def __init__(self, env: Any):
        self.env = env
        self._next_obs = None

    def reset(self, seed: int | None) -> np.ndarray:
        if seed is None and self._next_obs is not None:
            obs = self._next_obs
        else:
            obs, _ = self.env.reset(seed=seed)
        self._next_obs = None
        return obs[0].cpu().numpy()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        import torch

        actions = torch.as_tensor(np.asarray(action)).to(self.env.device)
        obs, reward, terminated, truncated, info = self.env.step(
            actions.reshape(1, *self.env.single_action_space.shape)
        )
        ended_by = bool(terminated[0]), bool(truncated[0])
        if any(ended_by):
            self._next_obs, obs = obs, info["final_obs"]
        return obs[0].cpu().numpy(), float(reward[0]), *ended_by

    def action_masks(self) -> np.ndarray | None:
        return self.env.action_masks()[0].cpu().numpy() if self.env.has_action_masks else None


class GymnasiumEnv:
    """A Gymnasium env (the single-env adapter, or Gymnasium's own) behind the same two calls as :class:`FirstSubEnv`."""

    def __init__(self, env: Any, has_action_masks: bool):
        self.env = env
        self.has_action_masks = has_action_masks

    def reset(self, seed: int | None) -> np.ndarray:
        return np.asarray(self.env.reset(seed=seed)[0])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        obs, reward, terminated, truncated, _ = self.env.step(action)
        return np.asarray(obs), float(reward), bool(terminated), bool(truncated)

    def action_masks(self) -> np.ndarray | None:
        return self.env.unwrapped.action_masks() if self.has_action_masks else None


def play_episodes(env: FirstSubEnv | GymnasiumEnv, policy: Callable, episodes: int, seed: int) -> list[Episode]:
    """``episodes`` episodes of ``policy(obs, action_masks) -> action`` on ``env``, the first from ``reset(seed)``."""
    played = []
    for index in range(episodes):
        obs = env.reset(seed if index == 0 else None)
        steps: list[Step] = []
        while len(steps) < MAX_STEPS_SHOWN:
            action = np.asarray(policy(obs, env.action_masks()))
            next_obs, reward, terminated, truncated = env.step(action)
            steps.append(Step(obs, action, reward, terminated, truncated))
            obs = next_obs
            if terminated or truncated:
                break
        played.append(Episode(steps, obs))
    return played


# --------------------------------------------------------------------------- the table
def compact(value: np.ndarray) -> str:
    """An observation or action on one line: 3 decimals, at most 8 numbers (the first and last 3 of more).

    A long one-hot vector (a Discrete observation as :class:`~rlcourse.gym_vec.GymVecEnv` encodes it) is
    shown as its index, which the abbreviated numbers would hide.
    """
    array = np.asarray(value)
    if array.ndim == 0:
        return f"{array.item():.3f}" if np.issubdtype(array.dtype, np.floating) else str(array.item())
    if array.ndim == 1 and array.size > 8 and np.isin(array, (0, 1)).all() and array.sum() == 1:
        return f"one-hot {int(array.argmax())} of {array.size}"
    shape = f"{tuple(array.shape)} " if array.ndim > 1 else ""
    text = np.array2string(
        array.reshape(-1),
        precision=3,
        floatmode="fixed",
        suppress_small=True,
        sign=" ",
        threshold=8,
        edgeitems=3,
        max_line_width=1_000_000,
    )
    return shape + text


def episode_table(episode: Episode) -> str:
    """One row per step (step, observation, action, reward, return, end) and a closing line with the return."""
    rows, total = [], 0.0
    for number, step in enumerate(episode.steps, start=1):
        total += step.reward
        end = "terminated" if step.terminated else "truncated" if step.truncated else ""
        rows.append(
            (str(number), compact(step.observation), compact(step.action), f"{step.reward:.3f}", f"{total:.3f}", end)
        )
    header = ("step", "observation", "action", "reward", "return", "end")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    aligns = (">", "<", ">", ">", ">", "<")
    lines = [
        "  ".join(f"{cell:{align}{width}}" for cell, align, width in zip(row, aligns, widths)).rstrip()
        for row in [header, *rows]
    ]
    lines.append(
        f"return {episode.total_reward:.3f} in {len(episode.steps)} steps, {episode.end}; "
        f"final observation {compact(episode.final_observation)}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the video
def video_target(path: str) -> Path:
    """``--video FILE`` checked before anything runs: an .mp4 path in a folder that exists."""
    target = Path(path)
    if target.suffix.lower() != ".mp4":
        raise BadInput(f"--video: {path!r} must be an .mp4 file")
    if target.is_dir():
        raise BadInput(f"--video: {path!r} is a folder; give the path of an .mp4 file")
    if not target.parent.is_dir():
        raise BadInput(f"--video: the folder {str(target.parent)!r} does not exist")
    try:
        import moviepy  # noqa: F401  (RecordVideo writes through it)
    except ImportError:
        raise click.ClickException(VIDEO_INSTALL_HINT) from None
    return target


def render_modes(env_id: str) -> list[str]:
    """The render modes ``env_id`` declares: an rlcourse env's batched class, or a Gymnasium env's class."""
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    from rlcourse.registry import list_envs, vec_env_class

    if env_id in list_envs():
        return list(vec_env_class(env_id).metadata.get("render_modes", []))
    entry_point = gym.spec(env_id).entry_point
    creator = entry_point if callable(entry_point) else load_env_creator(entry_point)
    return list(getattr(creator, "metadata", {}).get("render_modes", []))


def drawing_env(agent: Any) -> Any:
    """The agent's env as one Gymnasium env in ``render_mode="rgb_array"``, showing the agent's observations.

    An rlcourse env is the single-env adapter with the run's env options; a Gymnasium id is Gymnasium's own
    env with the run's ``env_kwargs``, its Discrete observations one-hot encoded as :class:`~rlcourse.gym_vec.GymVecEnv`
    shows them to the agent.
    """
    import gymnasium as gym

    from rlcourse.registry import list_envs

    env_id = agent.env_id
    modes = render_modes(env_id)
    if VIDEO_MODE not in modes:
        raise BadInput(
            f"--video needs an env that draws frames (render mode {VIDEO_MODE}); "
            f"{env_id} has render modes: {', '.join(modes) or 'none'}"
        )
    options = agent.env.options()
    if env_id in list_envs():
        return gym.make(env_id, render_mode=VIDEO_MODE, **options)
    env = gym.make(env_id, render_mode=VIDEO_MODE, **options.get("env_kwargs", {}))
    if isinstance(env.observation_space, gym.spaces.Discrete):
        env = gym.wrappers.FlattenObservation(env)  # one-hot, shifted by the space's start
    return env


def join_videos(parts: list[Path], target: Path) -> None:
    """The episode videos, in order, as one file at ``target`` (stream copy with moviepy's ffmpeg: no re-encoding)."""
    if len(parts) == 1:
        os.replace(parts[0], target)
        return
    import imageio_ffmpeg

    listing = parts[0].parent / "parts.txt"
    listing.write_text("".join(f"file '{part.resolve()}'\n" for part in parts))
    joined = parts[0].parent / "joined.mp4"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "concat", "-safe", "0"]
    done = subprocess.run([*command, "-i", str(listing), "-c", "copy", str(joined)], capture_output=True, text=True)
    if done.returncode != 0:
        raise click.ClickException(f"ffmpeg could not join the episode videos: {done.stderr.strip()}")
    os.replace(joined, target)


def record_video(agent: Any, policy: Callable, episodes: int, seed: int, target: Path) -> list[Episode]:
    """Play the episodes through ``RecordVideo`` and leave them, one after another, in ``target``.

    RecordVideo writes one file per episode (``<prefix>-episode-<k>.mp4``) into a folder of its own; that
    folder is a temporary one beside ``target``, and the files are joined into ``target`` at the end, so
    ``target`` only ever appears whole.
    """
    import gymnasium as gym
    import torch
    from gymnasium.wrappers import RecordVideo

    from rlcourse.wrappers import wrapped_observation

    def seen_policy(obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """``policy`` on what the agent sees of the drawing env's raw observation (a normalised run's statistics)."""
        batch = torch.as_tensor(obs, device=agent.device).unsqueeze(0)
        return policy(wrapped_observation(agent.env, batch)[0].cpu().numpy(), masks)

    env = drawing_env(agent)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.stem}-") as scratch:
        folder = Path(scratch) / "episodes"  # RecordVideo warns about a folder that exists already
        recorder = RecordVideo(env, str(folder), episode_trigger=lambda _: True, name_prefix="play")
        try:
            played = play_episodes(GymnasiumEnv(recorder, agent.env.has_action_masks), seen_policy, episodes, seed)
        except BaseException as error:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # about the unfinished video, which goes with the scratch folder
                recorder.close()
            if isinstance(error, gym.error.DependencyNotInstalled):  # e.g. Gymnasium's own renderers need pygame
                raise click.ClickException(f"{agent.env_id} cannot draw frames here: {error}") from None
            raise
        recorder.close()  # saves the last episode's video
        join_videos([folder / f"play-episode-{k}.mp4" for k in range(episodes)], target)
    return played


# --------------------------------------------------------------------------- the command
@click.command("play", context_settings=CONTEXT)
@click.argument("run_dir", required=False)
@click.option(
    "--episodes",
    type=click.IntRange(min=1, max=1000),
    default=3,
    show_default=True,
    help="Episodes to play (dialogues, for a text env).",
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
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Seed of the episodes (default: fixed per run; the table's is the run's seed).",
)
@click.option(
    "--video",
    metavar="FILE",
    help="Also record the episodes into one .mp4 video at FILE (replaced if it exists). Gymnasium's RecordVideo "
    "writes one video per episode into a temporary folder beside FILE; they are joined, in order, into FILE. "
    'Needs an env with the rgb_array render mode and moviepy (pip install "rlcourse[video]").',
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
    video: str | None,
    device: str,
) -> None:
    """Show a run's policy (or a rule expert) playing a few episodes.

    RUN_DIR is a run folder or a checkpoint file. A text env such as rlcourse/SlotFilling-v0 prints its
    dialogues (lines in parentheses show where the NLU misheard the user); every other env prints one table
    per episode: each step's observation, action, reward and running return, and how the episode ended.
    """
    resolved_device = device_of(device)
    if (run_dir is None) == (expert_env is None):
        raise BadInput("give either RUN_DIR or --expert ENV")
    target = video_target(video) if video is not None else None
    if expert_env is not None:
        if target is not None:
            raise BadInput("--video records a run's policy; it does not go with --expert")
        play_expert(expert_env, env_opts, episodes, seed, resolved_device)
        return
    if env_opts:
        raise BadInput("--env-opt goes with --expert; a run plays on the env it was trained on")
    agent = load_run_agent(Path(run_dir), device)
    if agent.member_shape:  # a --seeds run acts for all its seeds at once
        raise BadInput(
            f"{run_dir} is a run of {agent.member_shape[0]} seeds trained as one batch; play shows one agent "
            "('rlcourse eval' evaluates every seed)"
        )
    options = agent.env.options()
    title = f"{agent.algo} on {agent.env_id}{f' {options}' if options else ''} after {agent.num_timesteps:,} steps"
    if agent.env.has_transcripts and target is None:
        echo_dialogues(title, agent.transcripts(episodes, deterministic=not stochastic, seed=seed))
        return

    seed = agent.seed if seed is None else seed
    deterministic = not stochastic

    def policy(obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        return agent.predict(obs, deterministic=deterministic, action_masks=masks)

    if target is not None:
        played = record_video(agent, policy, episodes, seed, target)
    else:
        env = agent.env.spawn(1)
        try:
            played = play_episodes(FirstSubEnv(env), policy, episodes, seed)
        finally:
            env.close()
    click.echo(f"# {title} ({'deterministic' if deterministic else 'stochastic'} actions, seed {seed})")
    for index, episode in enumerate(played):
        click.echo(f"\n--- episode {index + 1} ---\n{episode_table(episode)}")
    if target is not None:
        frames = sum(len(episode.steps) + 1 for episode in played)
        click.echo(f"\n# video: {target} ({len(played)} episode{'s' * (len(played) != 1)}, {frames} frames)")


def play_expert(env_id: str, env_opts: tuple[str, ...], episodes: int, seed: int | None, device: Any) -> None:
    """``--expert ENV``: the env's rule expert's dialogues."""
    from rlcourse.registry import make_vec

    env = make_vec(env_id, 1, device, **parse_hp(env_opts, flag="--env-opt"))
    if not env.has_rule_expert:
        raise BadInput(f"{env_id} has no rule expert")
    if not env.has_transcripts:
        raise BadInput(f"{env_id} has no transcripts to print")
    expert = env.rule_expert()
    texts = env.play_transcripts(lambda obs, masks: expert(obs), episodes, seed=0 if seed is None else seed)
    echo_dialogues(f"rule expert on {env_id} {env.options()}", texts)


def echo_dialogues(title: str, texts: list[str]) -> None:
    click.echo(f"# {title}")
    for index, text in enumerate(texts):
        click.echo(f"\n--- dialogue {index + 1} ---\n{text}")


__all__ = ["play_command"]
