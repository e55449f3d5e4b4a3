"""Stable-Baselines3's side of the bench: RL Zoo's settings, the models built from them, and how they are timed.

RL Zoo's published hyperparameters live in ``sb3_zoo.yml`` beside this module (third-party settings, used
by the bench only). SB3 always runs on the CPU; it is timed with the harness's
:class:`~rlcourse.app.bench.harness.TrainingClock`, evaluated off the clock with SB3's own
``evaluate_policy`` (:func:`sb3_watcher`), and its steady-state throughput is measured the way the
harness measures ours (:func:`sb3_throughput`). Stable-Baselines3 is imported only when a model is built.
"""

from __future__ import annotations

import math
import time
from importlib import resources
from typing import Any, NamedTuple

import torch

from rlcourse.app.bench.harness import (
    EVAL_EPISODES,
    FINAL_EVAL_EPISODES,
    THROUGHPUT_MIN_ITERATIONS,
    THROUGHPUT_WARMUP_ITERATIONS,
    TrainingClock,
    default_eval_every,
)
from rlcourse.config import yaml_load

#: How RL Zoo writes a linearly decaying value: ``lin_<start>``.
LINEAR_PREFIX = "lin_"


class ZooSetup(NamedTuple):
    """An SB3 counterpart: the SB3 class, the Gymnasium env, RL Zoo's env count, budget and hyperparameters."""

    sb3_class: str
    env_id: str
    n_envs: int
    n_timesteps: int
    hparams: dict[str, Any]


def load_zoo() -> dict[str, ZooSetup]:
    """``sb3_zoo.yml``: algorithm -> :class:`ZooSetup`."""
    data = yaml_load((resources.files("rlcourse.app.bench") / "sb3_zoo.yml").read_text())
    return {
        algo: ZooSetup(
            entry["sb3_class"],
            entry["env_id"],
            int(entry["n_envs"]),
            int(entry["n_timesteps"]),
            dict(entry.get("hyperparams") or {}),
        )
        for algo, entry in data.items()
    }


#: SB3's side of a bench row, per algorithm (DQN, A2C, DDPG and PPO).
SB3_ZOO: dict[str, ZooSetup] = load_zoo()


def sb3_model(algo: str, env: Any, seed: int) -> Any:
    """SB3's model for ``algo`` on ``env`` with RL Zoo's hyperparameters (CPU)."""
    import numpy as np
    import stable_baselines3
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.utils import LinearSchedule

    setup = SB3_ZOO[algo]
    kwargs: dict[str, Any] = {}
    for key, value in setup.hparams.items():
        if key == "noise_std":
            dims = env.action_space.shape[-1]
            kwargs["action_noise"] = NormalActionNoise(np.zeros(dims), value * np.ones(dims))
        elif isinstance(value, str) and value.startswith(LINEAR_PREFIX):
            kwargs[key] = LinearSchedule(float(value.removeprefix(LINEAR_PREFIX)), 0.0, 1.0)
        else:
            kwargs[key] = value
    return getattr(stable_baselines3, setup.sb3_class)("MlpPolicy", env, device="cpu", seed=seed, verbose=0, **kwargs)


def rollout_steps(model: Any) -> int:
    """Env steps (over all envs) SB3 collects between two updates: ``n_steps`` or ``train_freq`` per env."""
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    # (Not hasattr(model, "n_steps"): SB3's DQN has one too, for n-step returns.)
    per_env = model.n_steps if isinstance(model, OnPolicyAlgorithm) else model.train_freq.frequency
    return per_env * model.n_envs


def sb3_watcher(clock: TrainingClock, eval_env: Any, eval_every: int) -> Any:
    """An SB3 callback that evaluates before every ``eval_every``-th rollout, off the training clock.

    Evaluating at the start of a rollout scores the policy after its last update, on exactly the
    env steps it was trained on (the analogue of rlcourse's after-iteration callback). Once the
    target is reached it stops evaluating; training goes on to the end of the budget.
    """
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    class SB3Watcher(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.rollouts = 0

        def _on_training_start(self) -> None:
            clock.resume()

        def _on_rollout_start(self) -> None:
            if self.rollouts > 0 and self.rollouts % eval_every == 0 and clock.steps_to_target is None:
                clock.pause()
                mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True)
                clock.record_eval(float(mean), self.model.num_timesteps)
                clock.resume()
            self.rollouts += 1

        def _on_step(self) -> bool:
            return True

        def _on_training_end(self) -> None:
            clock.pause()

    return SB3Watcher()


def sb3_throughput(model: Any, seconds: float) -> tuple[float, int]:
    """SB3's steady-state steps/s, measured as :func:`~rlcourse.app.bench.harness.measure_throughput` does ours.

    Warm-up rollouts, then one ``learn`` of a number of rollouts fixed from the warm-up's pace
    (at least :data:`~rlcourse.app.bench.harness.THROUGHPUT_MIN_ITERATIONS`). Returns ``(steps_per_s, rollouts)``.
    """
    chunk = rollout_steps(model)
    start = time.perf_counter()
    model.learn(THROUGHPUT_WARMUP_ITERATIONS * chunk, reset_num_timesteps=False)
    pace = (time.perf_counter() - start) / THROUGHPUT_WARMUP_ITERATIONS
    rollouts = max(THROUGHPUT_MIN_ITERATIONS, math.ceil(seconds / max(pace, 1e-9)))
    before = model.num_timesteps
    start = time.perf_counter()
    model.learn(rollouts * chunk, reset_num_timesteps=False)
    return (model.num_timesteps - before) / (time.perf_counter() - start), rollouts


def sb3_learn_to_target(
    algo: str,
    env_id: str,
    seed: int,
    steps: int,
    target: float,
    eval_every: int | None = None,
    throughput_seconds: float | None = None,
) -> dict[str, Any]:
    """One seed of an SB3 row: RL Zoo's settings for ``algo`` on the Gymnasium ``env_id``, ``steps`` env steps.

    Evaluated every ``eval_every`` rollouts (default: about as often as rlcourse, in env steps) against
    ``target``, then 100 final episodes. ``steps_per_s`` is the steady state after training when
    ``throughput_seconds`` is given (:func:`sb3_throughput`), else over the training run (which includes
    SB3's random warm-up steps), as ``train_steps_per_s`` always is.
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_vec_env(env_id, n_envs=SB3_ZOO[algo].n_envs, seed=seed)
    eval_env = make_vec_env(env_id, n_envs=EVAL_EPISODES, seed=seed + 1_000_003)
    model = sb3_model(algo, env, seed)
    every = eval_every or default_eval_every(rollout_steps(model), steps)
    clock = TrainingClock(torch.device("cpu"), target)
    model.learn(steps, callback=sb3_watcher(clock, eval_env, every))
    steps_trained = int(model.num_timesteps)
    final_mean, final_std = evaluate_policy(model, eval_env, n_eval_episodes=FINAL_EVAL_EPISODES, deterministic=True)
    train_steps_per_s = steps_trained / clock.elapsed if clock.elapsed > 0 else None
    throughput = {"steps_per_s": train_steps_per_s}
    if throughput_seconds is not None:
        steps_per_s, rollouts = sb3_throughput(model, throughput_seconds)
        throughput = {"steps_per_s": steps_per_s, "throughput_iterations": rollouts}
    env.close()
    eval_env.close()
    return {
        "seed": seed,
        **throughput,
        "setup_s": None,
        "train_s": clock.elapsed,
        "train_steps_per_s": train_steps_per_s,
        "time_to_target_s": clock.time_to_target,
        "steps_to_target": clock.steps_to_target,
        "steps_trained": steps_trained,
        "eval_every": every,
        "final_mean": float(final_mean),
        "final_std": float(final_std),
    }
