"""Every agent on every registered rlcourse env whose spaces it supports, and a clear error on the others.

Also, for every agent: an unsupported action space or an image observation is refused with an error
that names the problem and what is supported.

The issue's contract: an agent works on any env that fits its action space, the custom envs included
as they land. For each (algorithm, env) pair the agent trains two iterations, acts (with the env's
action masks where it has them), and evaluates; a mask-carrying env must never see a masked action.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from identity_envs import ContinuousIdentityEnv, IdentityEnv

from rlcourse.agents import ALGOS
from rlcourse.registry import list_envs, make_vec

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

OFF_POLICY = dict(net_arch=[16, 16], buffer_size=512, learning_starts=16, batch_size=16, train_freq=4, gradient_steps=1)
#: Small settings per algorithm: a couple of cheap iterations each.
SMALL = {
    "ppo": dict(n_steps=8, batch_size=16, n_epochs=1, net_arch=[16, 16]),
    "a2c": dict(n_steps=4, net_arch=[16, 16]),
    "reinforce": dict(n_steps=8, net_arch=[16, 16]),
    "a3c": dict(n_steps=4, net_arch=[16, 16], num_workers=1),
    "dqn": OFF_POLICY,
    "rainbow": dict(OFF_POLICY, n_atoms=11, v_min=-40.0, v_max=40.0),
    "ddpg": OFF_POLICY,
    "bc": dict(net_arch=[16, 16], gradient_steps=2),
    "dagger": dict(net_arch=[16, 16], n_steps=4, gradient_steps=2),
    "pqn": dict(n_steps=8, batch_size=16, n_epochs=1, net_arch=[16, 16]),
}
#: The action spaces each algorithm takes.
SUPPORTS = {
    "ppo": (spaces.Discrete, spaces.Box),
    "a2c": (spaces.Discrete, spaces.Box),
    "reinforce": (spaces.Discrete, spaces.Box),
    "a3c": (spaces.Discrete, spaces.Box),
    "dqn": (spaces.Discrete,),
    "rainbow": (spaces.Discrete,),
    "ddpg": (spaces.Box,),
    "bc": (spaces.Discrete, spaces.Box),
    "dagger": (spaces.Discrete, spaces.Box),
    "pqn": (spaces.Discrete,),
}


def _trains_here(algo: str, env_id: str) -> bool:
    """BC needs a dataset and DAgger an expert (tests/test_bc.py and test_dagger.py cover them); DAgger runs on
    every env with a rule expert."""
    if algo == "bc":
        return False
    return algo != "dagger" or make_vec(env_id, 1, "cpu").has_rule_expert


PAIRS = [(algo, env_id) for algo in sorted(ALGOS) for env_id in list_envs() if _trains_here(algo, env_id)]


def test_every_algorithm_has_small_settings():
    assert set(SMALL) == set(ALGOS) == set(SUPPORTS)


@pytest.mark.parametrize(("algo", "env_id"), PAIRS, ids=[f"{a}-{e.split('/')[-1]}" for a, e in PAIRS])
def test_agent_trains_acts_and_evaluates_or_refuses_clearly(algo, env_id):
    action_space = make_vec(env_id, 1, "cpu").single_action_space
    if not isinstance(action_space, SUPPORTS[algo]):
        with pytest.raises(ValueError, match="action space"):
            ALGOS[algo](env_id, num_envs=2, device="cpu", seed=0, **SMALL[algo])
        return
    agent = ALGOS[algo](env_id, num_envs=2, device="cpu", seed=0, **SMALL[algo])
    agent.learn(2 * agent.steps_per_iteration + SMALL[algo].get("learning_starts", 0))
    assert agent.num_timesteps > 0
    env = make_vec(env_id, 8, "cpu")
    obs, _ = env.reset(seed=1)
    masks = env.action_masks() if env.has_action_masks else None
    for deterministic in (True, False):
        actions = agent.predict(obs, deterministic=deterministic, action_masks=masks)
        assert env.single_action_space.contains(actions[0].numpy() if actions.dim() > 1 else int(actions[0]))
        if masks is not None:
            assert bool(masks.gather(1, actions[:, None]).all()), "a masked action was chosen"
    result = agent.evaluate(n_episodes=2)
    assert torch.isfinite(torch.tensor(result["mean_reward"]))


#: What each algorithm's error names as supported, and the action spaces it must refuse.
SUPPORTED_NAMES = dict.fromkeys(SUPPORTS, ("Discrete", "1-D Box")) | {
    "dqn": ("Discrete",),
    "rainbow": ("Discrete",),
    "ddpg": ("1-D Box",),
    "pqn": ("Discrete",),
}
NEVER_SUPPORTED = [
    spaces.Dict({"move": spaces.Discrete(2)}),
    spaces.MultiDiscrete([2, 3]),
    spaces.MultiBinary(3),
    spaces.Box(-1.0, 1.0, (2, 2), dtype=np.float32),
]
REFUSALS = [
    (algo, space)
    for algo in sorted(ALGOS)
    for space in NEVER_SUPPORTED
    + [
        space
        for space in (spaces.Discrete(2), spaces.Box(-1.0, 1.0, (2,), dtype=np.float32))
        if not isinstance(space, SUPPORTS[algo])
    ]
]


@pytest.mark.parametrize(
    ("algo", "action_space"), REFUSALS, ids=[f"{a}-{type(s).__name__}{s.shape}" for a, s in REFUSALS]
)
def test_unsupported_action_space_names_the_supported_ones(algo, action_space):
    env = IdentityEnv(2)
    env.single_action_space = action_space  # on the instance: the agent reads the space, never steps here
    with pytest.raises(ValueError) as error:
        ALGOS[algo](env, device="cpu", **SMALL[algo])
    message = str(error.value)
    assert type(action_space).__name__ in message and all(name in message for name in SUPPORTED_NAMES[algo]), message


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_image_observations_are_refused(algo):
    env = ContinuousIdentityEnv(2) if algo == "ddpg" else IdentityEnv(2)
    env.single_observation_space = spaces.Box(0.0, 1.0, (2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="flat Box observation"):
        ALGOS[algo](env, device="cpu", **SMALL[algo])
