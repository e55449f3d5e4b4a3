"""Demonstrations as Minari datasets: written with Minari's API, read back by ``minari.load_dataset`` and by
:func:`load_demonstrations` (shapes, the final observation at episode ends, action masks), and the errors
for unknown datasets and datasets of another env."""

from __future__ import annotations

import minari
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlcourse.registry import make_vec
from rlcourse.supervised.imitation.demos import (
    MASKS_KEY,
    Demonstrations,
    load_demonstrations,
    record_episodes,
    save_demonstrations,
)
from rlcourse.vec_env import TensorVecEnv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CountingEnv(TensorVecEnv):
    """obs = [steps taken in this episode]; sub-env b's episodes last 2 + b % 3 steps; action 1 is valid on even counts.

    The episode's final observation (its length) differs from the next episode's first (0), so a dataset
    that stored SAME_STEP's reset observation as the last one would show it.
    """

    single_observation_space = spaces.Box(0.0, 100.0, (1,), dtype=np.float32)
    single_action_space = spaces.Discrete(2)
    has_action_masks = True
    state_names = ("count",)

    def __init__(self, num_envs: int, device="cpu"):
        super().__init__(num_envs, device)
        self.count = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self.length = 2 + torch.arange(self.num_envs, device=self.device) % 3

    def _reset_where(self, mask):
        self.count.masked_fill_(mask, 0)

    def _transition(self, actions):
        self.count += 1
        terminated = self.count >= self.length
        return actions.float(), terminated, torch.zeros_like(terminated), {}

    def _observe(self):
        return self.count.float().unsqueeze(1)

    def action_masks(self):
        return torch.stack([torch.ones_like(self.count, dtype=torch.bool), self.count % 2 == 0], dim=1)


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def first_valid_last(obs, masks):
    return masks[:, 1].long()  # action 1 where it is valid, else 0


def test_a_dataset_is_written_with_minari_and_read_back_by_minari(minari_root):
    env = CountingEnv(3)
    recorded = record_episodes(env, first_valid_last, num_episodes=7, seed=0)
    path = save_demonstrations(recorded, "test/counting/expert-v0", env, "test expert")
    assert path == minari_root / "test/counting/expert-v0"
    dataset = minari.load_dataset("test/counting/expert-v0")
    assert dataset.total_episodes == 7
    lengths = []
    for episode in dataset.iterate_episodes():
        steps = len(episode.rewards)
        lengths.append(steps)
        # the last observation is the episode's own final one (its length), not the next episode's reset
        np.testing.assert_array_equal(episode.observations[:, 0], np.arange(steps + 1))
        assert episode.terminations.tolist() == [False] * (steps - 1) + [True]
        assert episode.infos[MASKS_KEY].shape == (steps, 2)
        np.testing.assert_array_equal(episode.infos[MASKS_KEY][:, 1], np.arange(steps) % 2 == 0)
        np.testing.assert_array_equal(episode.actions, episode.infos[MASKS_KEY][:, 1].astype(np.int64))
    # every sub-env gives its first episodes (lengths 2, 3, 4 in turn), so short episodes are not favoured
    assert sorted(lengths) == [2, 2, 2, 3, 3, 4, 4]


def test_load_demonstrations_gives_flat_transitions_with_true_next_states_and_masks(minari_root):
    env = CountingEnv(3)
    save_demonstrations(record_episodes(env, first_valid_last, 6, seed=1), "test/counting/expert-v0", env, "x")
    demos = load_demonstrations("test/counting/expert-v0", env=env)
    n = 2 * (2 + 3 + 4)
    assert isinstance(demos, Demonstrations) and len(demos) == n and demos.num_episodes == 6
    assert demos.obs.shape == (n, 1) and demos.obs.dtype == torch.float32
    assert demos.actions.shape == (n,) and demos.actions.dtype == torch.int64
    assert demos.rewards.dtype == torch.float32 and demos.terminated.dtype == torch.bool
    torch.testing.assert_close(demos.next_obs, demos.obs + 1)  # the true next state, at episode ends too
    assert int(demos.terminated.sum()) == 6 and not demos.truncated.any()
    assert demos.action_masks.shape == (n, 2)
    assert torch.equal(demos.action_masks[:, 1], demos.obs[:, 0].long() % 2 == 0)
    # a dataset folder works as well as an id, and the whole batch moves between devices
    by_path = load_demonstrations(minari_root / "test/counting/expert-v0")
    assert torch.equal(by_path.obs, demos.obs) and by_path.to("cpu").obs.device.type == "cpu"


def test_sample_is_uniform_over_transitions_and_reproducible(minari_root):
    env = CountingEnv(2)
    save_demonstrations(record_episodes(env, first_valid_last, 4, seed=0), "test/c-v0", env, "x")
    demos = load_demonstrations("test/c-v0")
    first = demos.sample(4000, torch.Generator().manual_seed(3))
    again = demos.sample(4000, torch.Generator().manual_seed(3))
    assert torch.equal(first.obs, again.obs) and len(first) == 4000
    assert first.action_masks.shape == (4000, 2)
    torch.testing.assert_close(first.next_obs, first.obs + 1)  # rows stay aligned
    # uniform over the 10 transitions: obs 0 appears in 4 of them, obs 3 in 1
    share = (first.obs == 0).float().mean().item()
    assert abs(share - 0.4) < 0.05


def test_dialogue_demonstrations_have_the_env_s_masks(minari_root):
    env = make_vec("rlcourse/SlotFilling-v0", 8, "cpu")
    expert = env.rule_expert()
    save_demonstrations(
        record_episodes(env, lambda obs, masks: expert(obs), 16, seed=0), "dialogue/expert-v0", env, "rule"
    )
    demos = load_demonstrations("dialogue/expert-v0", env=env)
    assert demos.obs.shape[1:] == env.single_observation_space.shape
    assert demos.action_masks.shape == (len(demos), env.single_action_space.n)
    assert demos.action_masks.gather(1, demos.actions[:, None]).all()  # the expert only took valid actions
    assert minari.load_dataset("dialogue/expert-v0").spec.env_spec.id == "rlcourse/SlotFilling-v0"


def test_unknown_datasets_are_a_value_error_that_lists_the_local_ones(minari_root, tmp_path):
    env = CountingEnv(2)
    save_demonstrations(record_episodes(env, first_valid_last, 2, seed=0), "test/counting/expert-v0", env, "x")
    with pytest.raises(
        ValueError, match=r"no Minari dataset 'test/counting/expert-v1'.*did you mean 'test/counting/expert-v0'"
    ):
        load_demonstrations("test/counting/expert-v1")
    with pytest.raises(ValueError, match=r"no Minari dataset .*nowhere.*local datasets: test/counting/expert-v0"):
        load_demonstrations(tmp_path / "nowhere")


def test_a_dataset_of_another_env_is_refused_naming_both_spaces(minari_root):
    cartpole = make_vec("rlcourse/CartPole-v1", 2, "cpu")
    recorded = record_episodes(cartpole, lambda obs, masks: torch.zeros(2, dtype=torch.int64), 2, seed=0)
    save_demonstrations(recorded, "cartpole/zeros-v0", cartpole, "zeros")
    dialogue = make_vec("rlcourse/SlotFilling-v0", 1, "cpu")
    with pytest.raises(
        ValueError, match=r"Box\(4,\).*Discrete\(2\).*rlcourse/SlotFilling-v0 has.*Box\(\d+,\).*Discrete"
    ):
        load_demonstrations("cartpole/zeros-v0", env=dialogue)


def test_an_existing_dataset_is_never_overwritten(minari_root):
    env = CountingEnv(2)
    recorded = record_episodes(env, first_valid_last, 2, seed=0)
    save_demonstrations(recorded, "test/once-v0", env, "x")
    with pytest.raises(ValueError, match="exists already"):
        save_demonstrations(recorded, "test/once-v0", env, "x")
