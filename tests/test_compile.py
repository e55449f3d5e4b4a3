"""``compile=True`` runs each agent's hot functions through ``torch.compile`` and learns the same thing.

A short CPU run with and without compile, from the same seed, must end with the same parameters up to
float rounding (the compiled kernels fuse and reorder arithmetic, so bit equality is not expected),
and the compiled function must really be a compiled one, not the eager method under another name.
"""

from __future__ import annotations

import pytest
import torch

from rlcourse.agents import ALGOS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: (algorithm, env, small settings, the attributes holding its compiled functions)
CASES = [
    (
        "rainbow",
        "rlcourse/CartPole-v1",
        {
            "num_envs": 4,
            "learning_starts": 64,
            "train_freq": 16,
            "gradient_steps": 4,
            "batch_size": 32,
            "net_arch": [32, 32],
        },
        ("_loss_fn",),
    ),
    (
        "ddpg",
        "Pendulum-v1",
        {
            "num_envs": 1,
            "learning_starts": 32,
            "train_freq": 8,
            "gradient_steps": 4,
            "batch_size": 16,
            "net_arch": [32, 32],
        },
        ("_critic_loss_fn", "_actor_loss_fn"),
    ),
    ("a2c", "rlcourse/CartPole-v1", {"num_envs": 4, "net_arch": [32, 32]}, ("_loss_fn",)),
]


def _parameters(agent) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value
        for name, module in agent._modules().items()
        for key, value in module.state_dict().items()
    }


@pytest.mark.parametrize(("algo", "env_id", "settings", "compiled"), CASES, ids=[case[0] for case in CASES])
def test_compiled_agent_matches_eager(algo, env_id, settings, compiled):
    runs = {}
    for use_compile in (False, True):
        agent = ALGOS[algo](env_id, device="cpu", seed=3, compile=use_compile, **settings)
        for name in compiled:
            function = getattr(agent, name)
            # torch.compile wraps the bound method; eager keeps the method itself
            assert (getattr(function, "__self__", None) is agent) is not use_compile, (name, function)
        agent.learn(4 * agent.steps_per_iteration + settings.get("learning_starts", 0))
        if hasattr(agent, "n_updates"):  # the off-policy agents: the compiled loss really ran
            assert int(agent.n_updates) > 0
        runs[use_compile] = _parameters(agent)
    eager, fused = runs[False], runs[True]
    assert eager.keys() == fused.keys()
    for key in eager:
        torch.testing.assert_close(fused[key], eager[key], rtol=1e-4, atol=1e-5, msg=key)
