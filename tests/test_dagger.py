"""DAgger: the expert is asked only about the states the learner visits (a counting expert), the learner's
actions are the ones executed, it clones the identity expert, checkpoints keep the aggregate, and
``rlcourse train dagger`` runs end to end with one-line errors for unknown experts."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from identity_envs import IdentityEnv, MaskedIdentityEnv, mean_step_reward

from rlcourse.agents import DAgger
from rlcourse.agents.distributions import Categorical
from rlcourse.agents.experts import resolve_expert
from rlcourse.agents.networks import ActorCritic
from rlcourse.app.cli import cli, main
from rlcourse.supervised.imitation.dagger import AggregatedLabels, dagger_rollout, mixing_beta

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DIALOGUE = "rlcourse/SlotFilling-v0"


class CountingExpert:
    """The identity expert, remembering every observation it was asked about."""

    def __init__(self):
        self.asked: list[torch.Tensor] = []

    def __call__(self, obs, masks=None):
        self.asked.append(obs.clone())
        return obs.argmax(1)


class RecordingIdentityEnv(MaskedIdentityEnv):
    """The masked identity env, remembering what it showed and what it was made to do; its rule expert counts."""

    has_rule_expert = True

    def __init__(self, num_envs: int, device="cpu", ep_length: int = 4):
        super().__init__(num_envs, device, ep_length)
        self.shown: list[torch.Tensor] = []
        self.executed: list[torch.Tensor] = []
        self.expert = CountingExpert()

    def _observe(self):
        obs = super()._observe()
        self.shown.append(obs.clone())
        return obs

    def _transition(self, actions):
        self.executed.append(actions.clone())
        return super()._transition(actions)

    def rule_expert(self):
        return self.expert


def test_the_expert_labels_exactly_the_states_the_learner_visits():
    env = RecordingIdentityEnv(6, ep_length=100)  # no episode ends: each step observes once
    obs, _ = env.reset(seed=0)
    env.shown.clear()
    expert = CountingExpert()
    policy = ActorCritic(4, Categorical(4), (8,), "tanh")
    labels = AggregatedLabels(100, (4,), (), torch.int64, 4, "cpu")
    generator = torch.Generator().manual_seed(0)
    dagger_rollout(env, obs, policy, expert, labels, n_steps=5, beta=0.0, generator=generator)
    visited = torch.cat([obs[None], *[o[None] for o in env.shown[:4]]]).reshape(-1, 4)
    assert len(expert.asked) == 5 and labels.size == 30  # one label per visited state, no more
    assert torch.equal(torch.cat(expert.asked), visited)
    assert torch.equal(labels.obs[:30], visited) and torch.equal(labels.labels[:30], visited.argmax(1))
    # the learner drove (β = 0): the env saw its sampled actions, not the expert's labels
    executed = torch.cat(env.executed)
    assert not torch.equal(executed, visited.argmax(1))
    # the masks the learner acted under are stored with the labels
    assert labels.masks[:30].gather(1, labels.labels[:30, None]).all()


def test_beta_mixing_lets_the_expert_drive_the_first_iteration():
    assert mixing_beta(0, 1.0, 0.0) == 1.0 and mixing_beta(1, 1.0, 0.0) == 0.0
    assert mixing_beta(2, 0.8, 0.5) == pytest.approx(0.2)
    env = RecordingIdentityEnv(4)
    obs, _ = env.reset(seed=0)
    policy = ActorCritic(4, Categorical(4), (8,), "tanh")
    labels = AggregatedLabels(64, (4,), (), torch.int64, 4, "cpu")
    dagger_rollout(env, obs, policy, CountingExpert(), labels, 3, beta=1.0, generator=torch.Generator())
    assert torch.equal(torch.cat(env.executed), labels.labels[:12])  # β = 1: every executed action is the expert's


def test_dagger_clones_the_identity_expert_and_asks_it_once_per_step():
    env = RecordingIdentityEnv(8)
    agent = DAgger(env, seed=0, n_steps=8, gradient_steps=50, expert="expert")
    agent.learn(8 * 8 * 6)
    assert sum(len(o) for o in env.expert.asked) == agent.num_timesteps == agent.aggregate.size
    assert mean_step_reward(agent, MaskedIdentityEnv(32)) == 1.0
    assert agent.last_log["rollout/expert_fraction"] == 0.0 and agent.last_log["train/accuracy"] == 1.0


def test_a_dagger_checkpoint_keeps_the_aggregate(tmp_path):
    agent = DAgger(DIALOGUE, num_envs=4, seed=0, n_steps=4, gradient_steps=5).learn(16 * 3)
    agent.save(tmp_path / "dagger.pt")
    loaded = DAgger.load(tmp_path / "dagger.pt", device="cpu")
    assert loaded.aggregate.size == agent.aggregate.size == 48
    assert torch.equal(loaded.aggregate.obs[:48], agent.aggregate.obs[:48])
    assert torch.equal(loaded.aggregate.labels[:48], agent.aggregate.labels[:48])


def test_unknown_experts_are_named_with_what_is_accepted(tmp_path):
    env = IdentityEnv(2)
    with pytest.raises(ValueError, match="has no rule expert"):
        resolve_expert("expert", env)
    with pytest.raises(ValueError, match=r"unknown expert 'exprt'.*did you mean 'expert'"):
        resolve_expert("exprt", env)
    with pytest.raises(ValueError, match="unknown expert"):
        DAgger(DIALOGUE, num_envs=2, expert=str(tmp_path / "no-run"))


def test_a_run_expert_must_fit_the_env(tmp_path):
    from rlcourse.agents import PPO

    PPO("rlcourse/CartPole-v1", num_envs=2, device="cpu", n_steps=8, batch_size=16).save(tmp_path / "cartpole.pt")
    with pytest.raises(ValueError, match=r"acts on observations Box.*but rlcourse/SlotFilling-v0 has"):
        DAgger(DIALOGUE, num_envs=2, expert=str(tmp_path / "cartpole.pt"))


def test_train_dagger_end_to_end_and_its_bad_inputs(tmp_path, capsys):
    common = ["--runs-root", str(tmp_path / "runs"), "--device", "cpu", "--no-progress", "--eval-episodes", "4"]
    args = ["train", "dagger", DIALOGUE, "--expert", "expert", "--total-steps", "256", "--num-envs", "8"]
    result = CliRunner().invoke(cli, [*args, "--hp", "n_steps=8", "--hp", "gradient_steps=10", *common])
    assert result.exit_code == 0, result.output
    assert "success rate" in result.output
    for bad, expected in (
        (["train", "dagger", DIALOGUE, "--expert", "exprt"], "did you mean 'expert'"),
        (["train", "dagger", "rlcourse/CartPole-v1"], "has no rule expert"),
        (["train", "ppo", DIALOGUE, "--expert", "expert"], "--expert is for dagger"),
    ):
        code = main([*bad, "--runs-root", str(tmp_path / "bad"), "--device", "cpu"])
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and expected in lines[0] and "Traceback" not in out + err, err
    assert not (tmp_path / "bad").exists()


def test_dagger_can_start_from_expert_demonstrations(tmp_path, monkeypatch):
    from rlcourse.registry import make_vec
    from rlcourse.supervised.imitation.demos import load_demonstrations, record_episodes, save_demonstrations

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = make_vec(DIALOGUE, 4, "cpu")
    rule = env.rule_expert()
    save_demonstrations(record_episodes(env, lambda obs, masks: rule(obs), 4, seed=0), "dialogue/d0-v0", env, "rule")
    demos = load_demonstrations("dialogue/d0-v0")
    agent = DAgger(DIALOGUE, num_envs=4, n_steps=2, gradient_steps=2, demos="dialogue/d0-v0")
    assert agent.aggregate.size == len(demos)  # D₀ is in the aggregate before the learner plays
    assert torch.equal(agent.aggregate.labels[: len(demos)], demos.actions)
    agent.learn(8)
    assert agent.aggregate.size == len(demos) + 8
