"""Populations: N independent agents of one algorithm (PPO, A2C) trained as one batched computation.

A researcher trains five seeds, then sweeps hyperparameters; on one device those N runs can be one run whose
every tensor has a member dimension. Each member is exactly a plain agent of its seed:

* its **network** is built under its seed, as the plain agent builds it, and the N networks are stacked into
  parameters of shape ``[N, ...]`` (:class:`StackedPolicy`, a :class:`~rlcourse.agents.networks.PolicyModule`
  whose forward pass is ``torch.func.vmap`` over the members), so the algorithm's code is unchanged;
* its **envs** are ``num_envs`` consecutive sub-envs of one env of ``N × num_envs`` (member-major), and its
  **random streams** (env, action sampling, minibatch order) are generators of its own, seeded as the plain run
  seeds them (:class:`~rlcourse.vec_env.GeneratorGroup`, the env's ``split_streams``);
* its **update** is its own: the loss is the sum over members of each member's mean loss (the algorithm's means
  run over the last, per-sample dimension), so each member's gradient is its own; the gradient norm is clipped
  per member (:meth:`StackedPolicy.clip_grad_norm_`); one Adam (or RMSprop) over stacked parameters is N
  independent ones, as both work elementwise; advantages are normalised per member; each member's minibatch is
  drawn from its own samples in its own order (``RolloutBuffer.flat`` with groups);
* plain-number **hyperparameters** may differ per member (``member_hparams``): they become device tensors of one
  value per member (per env for γ and λ, which weigh each env's rewards); a per-member learning rate scales each
  member's step of an optimizer run at rate 1 (Adam's and RMSprop's steps are linear in the rate);
* its **statistics and logs** are its own: training statistics have shape ``[N]``, each member logs to
  ``<run>/seed_<k>/`` as a plain run would, and the run folder holds the aggregate (mean, IQM, min, max).

So member k's run equals the plain run with seed k on the CPU: the same actions and returns, and parameters
equal within float tolerance (the batched matrix products round differently). The algorithms are those of
:mod:`~rlcourse.agents.ppo` (notes:12953-12959 [PPO]) and :mod:`~rlcourse.agents.a2c`
(notes:13642-13758 [Actor-Critic]); nothing of them is written twice here.

Limits, each refused with a clear error: the env must declare ``groupable`` (``rlcourse/CartPole-v1``) and have a
Discrete action space; no normalisation or plug-in wrappers, no data-parallel training, no ``target_kl`` early
stop, no ``kl_penalty`` objective, no KL penalty to a reference policy, no sequence (``token_gru``) networks.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlcourse.agents.a2c import A2C
from rlcourse.agents.base import Agent, derive_seeds, evaluation_seeds
from rlcourse.agents.member_logs import MemberEpisodeStats, MemberEventFiles, interquartile_mean, summarise_members
from rlcourse.agents.ppo import PPO
from rlcourse.agents.stacked_policy import StackedPolicy
from rlcourse.checkpoint import CheckpointError, load_checkpoint
from rlcourse.config import DEFAULT_PRESET, ENV_KWARGS_KEY, config_to_dict, make_config
from rlcourse.evaluation import evaluate_groups
from rlcourse.logger import RunLogger
from rlcourse.run_dir import RunDir
from rlcourse.vec_env import GeneratorGroup, TensorVecEnv

__all__ = [
    "A2CPopulation",
    "POPULATIONS",
    "PPOPopulation",
    "StackedPolicy",
    "interquartile_mean",
    "parse_seeds",
    "population_class",
]

#: Hyperparameters that may differ between members, per algorithm: plain numbers the update reads as tensors.
VARIABLE_HPARAMS = {
    "ppo": ("learning_rate", "clip_range", "ent_coef", "vf_coef", "gamma", "gae_lambda", "max_grad_norm"),
    "a2c": ("learning_rate", "ent_coef", "vf_coef", "gamma", "gae_lambda", "max_grad_norm"),
}
#: Varied hyperparameters that weigh each env's rewards, so they are laid out one value per env, not per member.
PER_ENV_HPARAMS = ("gamma", "gae_lambda")
#: How members draw random numbers (see :class:`Population`).
STREAMS = ("member", "batch")
#: Where a population's checkpoint records its members.
POPULATION_KEY = "population"


# --------------------------------------------------------------------------- seeds and varied settings
def parse_seeds(text: str) -> list[int]:
    """``"0-1023"``, ``"0,3,7"`` or ``"0-3,10-11"`` → the seeds, in order; a ``ValueError`` saying what is wrong."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        start, dash, end = part.partition("-")
        if not (start.isdigit() and (not dash or end.isdigit())):
            raise ValueError(f"seeds {text!r}: {part!r} is not a seed or a range START-END of non-negative integers")
        low, high = int(start), int(end) if dash else int(start)
        if high < low:
            raise ValueError(f"seeds {text!r}: the range {part!r} runs downward (write START-END with START <= END)")
        seeds.extend(range(low, high + 1))
    return check_seeds(seeds, f"seeds {text!r}")


def check_seeds(seeds: Sequence[int], what: str = "seeds") -> list[int]:
    """``seeds`` as a list of distinct non-negative integers (at least one), or a ``ValueError`` naming the fault."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, range, np.ndarray)):
        raise ValueError(f"{what} must be a sequence of non-negative integers, got {type(seeds).__name__}")
    values = list(seeds)
    if not values:
        raise ValueError(f"{what} is empty: a population needs at least one seed")
    for seed in values:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"{what} must be non-negative integers, got {seed!r}")
    repeated = sorted({int(s) for s in values if values.count(s) > 1}) if len(set(values)) < len(values) else []
    if repeated:
        raise ValueError(f"{what} repeats {repeated[:5]}: every member needs a seed of its own")
    return [int(seed) for seed in values]


def check_member_hparams(
    member_hparams: dict[str, Sequence[float]] | None, count: int, algo: str
) -> dict[str, list[float]]:
    """The varied hyperparameters as ``{name: [one float per member]}``, or a ``ValueError`` naming the fault."""
    if member_hparams is None:
        return {}
    if not isinstance(member_hparams, dict):
        raise ValueError(f"member_hparams must map names to lists of values, got {type(member_hparams).__name__}")
    allowed = VARIABLE_HPARAMS[algo]
    checked = {}
    for name, values in member_hparams.items():
        if name not in allowed:
            raise ValueError(
                f"{name!r} cannot differ between members of a {algo} population; the plain-number settings that can: "
                f"{', '.join(allowed)}"
            )
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise ValueError(f"member_hparams[{name!r}] must be a list of numbers, one per member")
        values = list(values)
        if len(values) != count:
            raise ValueError(f"member_hparams[{name!r}] has {len(values)} values for {count} members")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"member_hparams[{name!r}] must hold plain numbers, got {value!r}")
        checked[name] = [float(value) for value in values]
    return checked


# --------------------------------------------------------------------------- the population
class Population:
    """What turns an algorithm into a population of it; mixed in before the algorithm (:class:`PPOPopulation`).

    Args:
        env: an env id whose env declares ``groupable`` (``rlcourse/CartPole-v1``).
        seeds: one seed per member; member k trains as the plain agent of ``seeds[k]`` does.
        num_envs: envs *per member* (default: the preset's, else the algorithm's default).
        member_hparams: ``{name: [one value per member]}`` for the plain-number settings of
            :data:`VARIABLE_HPARAMS`; every other setting is shared.
        streams: ``"member"`` (the default): every member draws from generators of its own, seeded as the plain
            run of its seed, so member k *is* that run; ``"batch"``: the env and the action sampling draw from one
            generator each for the whole batch, seeded from all the seeds. Members still draw different numbers and
            stay independent, but are no longer their plain runs; a draw is then one kernel instead of N (what
            costs at a thousand members on a GPU, where a plain run is not bitwise an eager one anyway).
        **kwargs: the algorithm's arguments (device, run_dir, preset, hyperparameters, ...).

    ``learn(total_timesteps)`` trains every member for ``total_timesteps`` env steps of its own. Statistics have
    one value per member; ``last_log`` holds the aggregate and ``member_logs`` each member's.
    """

    algo: ClassVar[str]
    config_class: ClassVar[type]
    seeds: list[int]

    def __init__(
        self,
        env: str,
        seeds: Sequence[int],
        num_envs: int | None = None,
        member_hparams: dict[str, Sequence[float]] | None = None,
        streams: str = "member",
        *,
        preset: str | None = DEFAULT_PRESET,
        normalize: Any = None,
        distributed: bool = False,
        **kwargs: Any,
    ):
        if "seed" in kwargs:  # Agent's own seed is the first member's; a second value would be a bare TypeError
            raise ValueError(f"a population takes one seed per member (seeds=...), not seed={kwargs['seed']!r}")
        self.seeds = check_seeds(seeds)
        count = len(self.seeds)
        if streams not in STREAMS:
            raise ValueError(f"streams must be one of {', '.join(STREAMS)}, got {streams!r}")
        self.streams = streams
        if distributed:
            raise ValueError("a population (seeds) cannot train data-parallel (distributed=True)")
        if normalize:
            raise ValueError("a population cannot normalise observations or rewards (each member would need its own)")
        if isinstance(env, TensorVecEnv):
            raise ValueError("a population builds its own env (one group of envs per member): pass an env id")
        varied = check_member_hparams(member_hparams, count, self.algo)
        preset_values = self._preset_values(env, preset)
        per_member = preset_values.get("num_envs", self.default_num_envs) if num_envs is None else num_envs
        if isinstance(per_member, bool) or not isinstance(per_member, (int, np.integer)) or per_member <= 0:
            raise ValueError(f"num_envs must be a positive integer (envs per member), got {per_member!r}")
        fields = {field.name for field in dataclasses.fields(self.config_class)}
        shared = {k: v for k, v in preset_values.items() if k in fields}
        shared.update({k: v for k, v in kwargs.items() if k in fields})
        configs = [make_config(self.config_class, shared)]
        for k, seed in enumerate(self.seeds):  # every member's settings pass the algorithm's own checks
            if varied:
                try:
                    make_config(self.config_class, {**shared, **{name: v[k] for name, v in varied.items()}})
                except ValueError as error:
                    raise ValueError(f"member {k} (seed {seed}): {error}") from None
        self._check_supported(configs[0])
        self.member_hparams = varied
        self.members = count
        self.envs_per_member = int(per_member)
        self.member_shape = (count,)
        self.member_logs: list[dict[str, float]] = [{} for _ in self.seeds]
        self.member_eval: list[dict[str, float]] = []
        self._member_lr: torch.Tensor | None = None
        self._member_files: MemberEventFiles | None = None
        super().__init__(
            env,
            num_envs=count * self.envs_per_member,
            seed=self.seeds[0],
            preset=preset,
            normalize=normalize,
            **kwargs,
        )

    @classmethod
    def _check_supported(cls, config: Any) -> None:
        """Refuse what a population cannot train member by member (see the module docstring)."""
        refusals = {
            "target_kl": "its early stop would end every member's update together",
            "kl_ref_coef": "a KL penalty to a reference policy is not per member yet",
        }
        for name, why in refusals.items():
            if getattr(config, name, None):
                raise ValueError(f"{name} is not supported by a population: {why}")
        if getattr(config, "objective", "clip") != "clip":
            raise ValueError("objective=kl_penalty is not supported by a population; use objective=clip")
        if getattr(config, "policy_network", "mlp") != "mlp":
            raise ValueError("a population stacks mlp policies only (policy_network=mlp)")

    # ----------------------------------------------------------------- what each member gets of its own
    @property
    def steps_per_iteration(self) -> int:
        """Env steps of one iteration *per member* (what ``num_timesteps`` counts: each member's own steps)."""
        return self.config.n_steps * self.envs_per_member

    def _seed_streams(self, stream_seed: int) -> None:
        """Each member's env, sampling and prediction streams, seeded as the plain agent of its seed seeds them."""
        env = self.env
        if env.unwrapped is not env or not env.groupable:
            raise ValueError(
                f"a population needs an env that gives each member a random stream of its own (declares groupable, "
                f"such as rlcourse/CartPole-v1), unwrapped; {self.env_id or type(env).__name__} does not"
            )
        if not isinstance(env.single_action_space, spaces.Discrete):
            raise ValueError(f"a population needs a Discrete action space, got {env.single_action_space}")
        streams = [derive_seeds(seed, 3) for seed in self.seeds]
        self._predict_generator = torch.Generator(device=self.device)
        self._predict_generator.manual_seed(streams[0][2])
        if self.streams == "batch":  # one env stream and one sampling stream for all, from every member's seed
            env_seed, agent_seed = derive_seeds(int(np.random.SeedSequence(self.seeds).generate_state(1)[0]), 2)
            self.generator = torch.Generator(device=self.device)
            self.generator.manual_seed(agent_seed)
            self.obs, _ = env.reset(seed=env_seed)
        else:
            self.generator = GeneratorGroup([torch.Generator(device=self.device) for _ in self.seeds])
            self.generator.manual_seed([agent_seed for _, agent_seed, _ in streams])
            env.split_streams(self.members)
            self.obs, _ = env.reset(seed=[env_seed for env_seed, _, _ in streams])
        self.episodes = MemberEpisodeStats(env.outcome_keys, self.device, self.members)

    def _network(self, build: Callable[[], nn.Module]) -> nn.Module:
        """One network per member, each built right after ``torch.manual_seed(seed)`` as the plain agent's is."""
        members = []
        for seed in self.seeds:
            torch.manual_seed(seed)
            members.append(build())
        torch.manual_seed(self.seeds[0])
        return StackedPolicy(members).to(self.device)

    def _build(self) -> None:
        """The algorithm's build, with each varied setting as a device tensor of one value per member (per env)."""
        self._plain_config = self.config
        values = {}
        for name, per_member in self.member_hparams.items():
            tensor = torch.tensor(per_member, dtype=torch.float32, device=self.device)
            values[name] = tensor.repeat_interleave(self.envs_per_member) if name in PER_ENV_HPARAMS else tensor
        learning_rates = values.pop("learning_rate", None)
        self.config = _with_values(self.config, values)
        super()._build()
        if learning_rates is not None:  # the optimizer steps at rate 1; each member's step is scaled by its own rate
            self.config = _with_values(self.config, {"learning_rate": learning_rates})
            self._member_lr = learning_rates.clone()
            super()._set_learning_rate(1.0)

    def _set_learning_rate(self, lr: float | torch.Tensor) -> None:
        if isinstance(lr, torch.Tensor):
            self._member_lr.copy_(lr)
        else:
            super()._set_learning_rate(lr)

    def _learning_rate_stat(self) -> torch.Tensor:
        return super()._learning_rate_stat() if self._member_lr is None else self._member_lr.clone()

    def _optimizer_step(self, skip: torch.Tensor | None) -> None:
        """The optimizer's step; with per-member learning rates, each member's step (taken at rate 1) times its rate."""
        if self._member_lr is None:
            return super()._optimizer_step(skip)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        before = [p.detach().clone() for p in params]
        super()._optimizer_step(skip)
        with torch.no_grad():
            for param, old in zip(params, before):
                param.sub_(old).mul_(self._member_lr.view(-1, *[1] * (param.dim() - 1))).add_(old)
        return None

    def _record_batches(self, needed: bool) -> None:
        if needed:
            raise ValueError("callbacks that read rollout batches are not supported by a population")

    # ----------------------------------------------------------------- logs
    def _log(self, logger: RunLogger, stats: dict[str, torch.Tensor], fps: float) -> dict[str, float]:
        """Read every member's statistics at once; log the aggregate here and each member to its own folder."""
        names = list(stats)
        columns = [stats[name].double().expand(self.members) for name in names]
        table = torch.cat([torch.stack(columns, 1), self.episodes.sums], 1).tolist()  # the interval's one sync
        self.episodes.sums.zero_()
        for k, row in enumerate(table):
            scalars = dict(zip(names, row[: len(names)]))
            scalars.update(self.episodes.summarise(row[len(names) :]))
            scalars["time/fps"], scalars["time/iterations"] = fps, float(self.iteration)
            self.member_logs[k] = {**self.member_logs[k], **scalars}
            if self._member_files is not None:
                self._member_files.add(k, scalars, self.num_timesteps)
        aggregate = {name: sum(log[name] for log in self.member_logs) / self.members for name in names}
        tags = ["rollout/ep_rew_mean", "rollout/ep_len_mean", *[f"rollout/{key}_rate" for key in self.env.outcome_keys]]
        for tag in tags:
            reported = [log[tag] for log in self.member_logs if tag in log]
            if reported:
                aggregate.update(summarise_members(reported, tag))
        aggregate["time/fps"] = fps * self.members  # env steps per second, every member's together
        aggregate["time/iterations"] = float(self.iteration)
        self.last_log = {**self.last_log, **aggregate}
        logger.scalars(aggregate, self.num_timesteps)
        if self._member_files is not None:
            self._member_files.flush(force=False)
        return aggregate

    def learn(self, *args: Any, **kwargs: Any) -> Agent:
        if self.run_dir is not None and self._member_files is None:
            self._member_files = MemberEventFiles(self.run_dir.path, self.seeds)
        try:
            return super().learn(*args, **kwargs)
        finally:
            if self._member_files is not None:
                self._member_files.flush()

    def _config_record(self) -> dict[str, Any]:
        """The shared settings (a varied one keeps its shared value here; ``member_hparams`` holds each member's)."""
        return config_to_dict(self._plain_config)

    def _hparams(self) -> dict[str, Any]:
        varied = {f"member_{name}": f"{min(v)}..{max(v)}" for name, v in self.member_hparams.items()}
        return {**super()._hparams(), "num_envs": self.envs_per_member, "members": self.members, **varied}

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, n_episodes: int = 100, deterministic: bool = True, seed: int | None = None) -> dict[str, float]:
        """Every member plays ``n_episodes`` on envs seeded as the plain run of its seed seeds its evaluation.

        Returns the aggregate over members (mean, ``_iqm``, ``_min``, ``_max`` of the mean return and of each
        outcome rate, and ``members``); :attr:`member_eval` holds each member's own result.
        """
        if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes <= 0:
            raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
        if seed is not None:
            raise ValueError("a population evaluates each member with its own seed; seed cannot be set")
        streams = [evaluation_seeds(member_seed) for member_seed in self.seeds]
        sampling = GeneratorGroup([torch.Generator(device=self.device) for _ in self.seeds])
        sampling.manual_seed([agent_seed for _, agent_seed in streams])
        env = self._spawn_env(int(n_episodes) * self.members)
        env.split_streams(self.members)

        def policy(obs: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
            return self._env_action(self._act(obs, masks, deterministic, sampling))

        try:
            with torch.no_grad():
                self.member_eval = evaluate_groups(env, policy, self.members, [s for s, _ in streams])
        finally:
            env.close()
        result: dict[str, float] = {"n_episodes": int(n_episodes), "members": self.members}
        for key in self.member_eval[0]:
            if key != "n_episodes":
                result.update(summarise_members([member[key] for member in self.member_eval], key))
        return result

    def write_eval(self, n_episodes: int = 100, path: str | Path | None = None) -> dict[str, float]:
        """Evaluate and write ``eval.json``: the aggregate, and under ``seeds`` one row per member."""
        result = self.evaluate(n_episodes)
        if self.run_dir is not None:
            self.run_dir.path.mkdir(parents=True, exist_ok=True)
            table = [{"seed": seed, **member} for seed, member in zip(self.seeds, self.member_eval)]
            self.run_dir.write_eval({"num_timesteps": self.num_timesteps, **result, "seeds": table}, path)
        return result

    def predict(self, obs: Any, deterministic: bool = True, action_masks: Any = None) -> Any:
        raise ValueError(
            "predict() is for one agent; a population acts for all its members at once: member_weights(k) gives "
            "member k's network weights for a plain agent"
        )

    def member_weights(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k``'s policy weights under the plain agent's names (``PPO(...).policy.load_state_dict``)."""
        return self.policy.member_state_dict(k)

    # ----------------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        """The plain checkpoint of the batch (stacked networks, every member's streams), plus who the members are."""
        state = super().checkpoint_state()
        state[POPULATION_KEY] = {
            "seeds": list(self.seeds),
            "envs_per_member": self.envs_per_member,
            "member_hparams": {name: list(values) for name, values in self.member_hparams.items()},
            "streams": self.streams,
        }
        return state

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str | torch.device = "auto",
        run_dir: str | Path | RunDir | None = None,
        **kw: Any,
    ) -> Population:
        """Rebuild a population from its checkpoint (every member's networks, optimizer state and streams)."""
        if run_dir is not None and not isinstance(run_dir, RunDir):
            run_dir = RunDir(run_dir)
        if kw.pop("env", None) is not None or kw.pop("distributed", False):
            raise ValueError("a population builds its own env and trains in one process (no env, distributed=False)")
        payload = load_checkpoint(path)
        record = payload.get(POPULATION_KEY)
        if payload.get("algo") != cls.algo or not isinstance(record, dict):
            raise CheckpointError(f"{str(path)!r} is not a checkpoint of a {cls.algo} population")
        try:
            agent = cls(
                payload["env_id"],
                seeds=record["seeds"],
                num_envs=kw.pop("num_envs", record["envs_per_member"]),
                member_hparams=record["member_hparams"] or None,
                streams=record.get("streams", "member"),
                device=device,
                run_dir=run_dir,
                env_kwargs=payload.get(ENV_KWARGS_KEY) or None,
                preset=None,
                **{**payload["config"], **kw},
            )
        except KeyError as missing:
            raise CheckpointError(f"{str(path)!r} lacks the entry {missing}") from None
        agent.load_state(payload, source=str(path))
        return agent


def _with_values(config: Any, values: dict[str, Any]) -> Any:
    """A copy of ``config`` with some fields set to per-member tensors (past the dataclass's number checks)."""
    changed = copy.copy(config)
    for name, value in values.items():
        object.__setattr__(changed, name, value)
    return changed


class PPOPopulation(Population, PPO):
    """N PPO agents trained as one batched computation (see the module docstring)."""


class A2CPopulation(Population, A2C):
    """N A2C agents trained as one batched computation (see the module docstring)."""


#: The algorithms that train as populations: algo name -> population class.
POPULATIONS: dict[str, type[Population]] = {"ppo": PPOPopulation, "a2c": A2CPopulation}


def population_class(algo: str) -> type[Population]:
    """The population class of ``algo``, or a ``ValueError`` saying which algorithms have one."""
    if algo not in POPULATIONS:
        raise ValueError(f"populations (seeds) are supported by {' and '.join(POPULATIONS)}, not {algo}")
    return POPULATIONS[algo]
