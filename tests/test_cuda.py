"""CUDA-only checks of the captured training iteration (skipped on machines without a GPU; run on the device machine)."""

import pytest
import torch

from rlcourse.agents import PPO

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

FAST = dict(n_steps=16, batch_size=1024 * 16 // 8, n_epochs=4, learning_rate=3e-3)


def _weights(agent):
    return torch.cat([p.detach().flatten() for p in agent.policy.parameters()])


def test_cuda_graph_pqn_learns_cartpole():
    from rlcourse.agents import PQN

    agent = PQN("rlcourse/CartPole-v1", device="cuda", seed=0, preset="large_batch_4096")
    assert agent.cuda_graphs
    agent.learn(agent.preset_timesteps)
    assert agent.evaluate(n_episodes=50)["mean_reward"] >= 475


def test_cuda_graph_ppo_learns_cartpole():
    agent = PPO("rlcourse/CartPole-v1", num_envs=1024, device="cuda", seed=0, **FAST)
    assert agent.cuda_graphs
    agent.learn(3_000_000)
    assert agent.evaluate(n_episodes=50)["mean_reward"] >= 475


def test_cuda_graph_runs_repeat_for_a_seed():
    runs = []
    for _ in range(2):
        agent = PPO("rlcourse/CartPole-v1", num_envs=256, device="cuda", seed=3, **FAST)
        agent.learn(agent.steps_per_iteration * 5)
        runs.append((_weights(agent), agent.last_log["rollout/ep_rew_mean"]))
    assert torch.equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


def test_graph_and_eager_take_the_same_first_step():
    # The first iteration's rollout comes from the same initial policy; the episode statistics must agree
    # closely (RNG streams differ between graph replay and eager, so not bitwise).
    stats = {}
    for graphs in (False, True):
        agent = PPO("rlcourse/CartPole-v1", num_envs=4096, device="cuda", seed=0, cuda_graphs=graphs, **FAST)
        agent.learn(agent.steps_per_iteration)
        stats[graphs] = agent.last_log
    assert stats[True]["rollout/ep_len_mean"] == pytest.approx(stats[False]["rollout/ep_len_mean"], rel=0.1)
    assert stats[True]["train/approx_kl"] == pytest.approx(stats[False]["train/approx_kl"], rel=0.5)


def test_evaluate_does_not_disturb_a_captured_run():
    a = PPO("rlcourse/CartPole-v1", num_envs=256, device="cuda", seed=5, **FAST)
    b = PPO("rlcourse/CartPole-v1", num_envs=256, device="cuda", seed=5, **FAST)
    a.learn(a.steps_per_iteration * 3, callbacks=[lambda agent: agent.evaluate(5) and None])
    b.learn(b.steps_per_iteration * 3)
    assert torch.equal(_weights(a), _weights(b))


def test_resume_on_cuda_continues_and_learns(tmp_path):
    agent = PPO("rlcourse/CartPole-v1", num_envs=1024, device="cuda", seed=1, anneal_lr=True, **FAST)
    agent.learn(3_000_000, callbacks=[lambda a: a.num_timesteps < 1_000_000])
    agent.save(tmp_path / "c.pt")
    resumed = PPO.load(tmp_path / "c.pt", device="cuda")
    assert resumed.cuda_graphs and isinstance(resumed.optimizer.param_groups[0]["lr"], torch.Tensor)
    resumed.learn(resumed.total_timesteps - resumed.num_timesteps, reset_num_timesteps=False)
    assert resumed.num_timesteps >= 3_000_000
    assert resumed.last_log["train/learning_rate"] == 0.0  # the annealed schedule carried over
    assert resumed.evaluate(n_episodes=50)["mean_reward"] >= 475


def test_cuda_checkpoint_loads_on_the_cpu(tmp_path):
    agent = PPO("rlcourse/CartPole-v1", num_envs=256, device="cuda", seed=2, **FAST)
    agent.learn(agent.steps_per_iteration * 3)
    agent.save(tmp_path / "c.pt")
    on_cpu = PPO.load(tmp_path / "c.pt", device="cpu")
    obs = torch.zeros(4, 4)
    assert torch.equal(on_cpu.predict(obs), agent.predict(obs.cuda()).cpu())


@pytest.mark.parametrize(
    ("algo", "settings", "updates_per_iteration"),
    [
        ("a2c", {"num_envs": 8}, 1),
        ("ppo", {"num_envs": 64, "n_steps": 16, "batch_size": 256, "n_epochs": 2}, 8),
        ("dqn", {"num_envs": 8, "learning_starts": 0, "train_freq": 4, "gradient_steps": 3, "batch_size": 16}, 3),
        ("pqn", {"num_envs": 64, "n_steps": 16, "batch_size": 256, "n_epochs": 2}, 8),
    ],
)
def test_captured_updates_carry_the_optimizer_state_across_replays(algo, settings, updates_per_iteration):
    """Each replay must continue the optimizer (its step count grows), not start Adam/RMSprop afresh: a graph
    first captured on a fresh run would otherwise create the state inside the capture and re-zero it every replay."""
    from rlcourse.agents import ALGOS

    agent = ALGOS[algo]("rlcourse/CartPole-v1", device="cuda", seed=0, **settings)
    assert agent.cuda_graphs
    iterations = 7
    agent.learn(iterations * agent.steps_per_iteration)
    steps = {float(state["step"]) for state in agent.optimizer.state.values()}
    assert steps == {float(iterations * updates_per_iteration)}


def test_several_agents_train_one_after_another_in_one_process(monkeypatch):
    """A dead agent's CUDA graph must not be freed inside the next agent's capture: A2C, then PPO, then DQN, each
    captured, with the earlier ones left to the garbage collector. To make the hazard certain rather than a matter
    of when the collector happens to run, a collection is forced as each capture begins (inside
    ``torch.cuda.graph.__enter__``, once the stream captures), if the collector is on: without
    ``graphs.no_garbage_collection`` it frees the dead agents' graphs there (cudaErrorStreamCaptureInvalidated)."""
    import gc

    from rlcourse.agents import ALGOS

    enter = torch.cuda.graph.__enter__

    def enter_then_collect(self):
        result = enter(self)
        if gc.isenabled():
            gc.collect()
        return result

    monkeypatch.setattr(torch.cuda.graph, "__enter__", enter_then_collect)
    settings = {
        "a2c": {"num_envs": 64},
        "ppo": {"num_envs": 256, "n_steps": 16, "batch_size": 1024},
        "dqn": {"num_envs": 64, "learning_starts": 0, "train_freq": 4, "gradient_steps": 2},
    }
    for _round in range(2):
        for algo, kwargs in settings.items():
            agent = ALGOS[algo]("rlcourse/CartPole-v1", device="cuda", seed=0, **kwargs)
            assert agent.cuda_graphs
            agent.learn(agent.steps_per_iteration * 4)
            assert agent.num_timesteps == agent.steps_per_iteration * 4
            assert agent.evaluate(n_episodes=4)["n_episodes"] == 4


def test_the_callback_batch_is_filled_by_the_captured_iteration():
    from rlcourse.callbacks import Callback

    class Check(Callback):
        needs_batch = True
        checked = 0

        def on_rollout_end(self, batch):
            assert torch.equal(batch.rewards, torch.ones_like(batch.rewards)), "CartPole pays 1 per step"
            continuing = ~batch.dones[:-1]
            assert torch.equal(batch.next_obs[:-1][continuing], batch.obs[1:][continuing])
            Check.checked += 1

    agent = PPO("rlcourse/CartPole-v1", num_envs=256, device="cuda", seed=0, **FAST)
    agent.learn(agent.steps_per_iteration * 3, callbacks=[Check()])
    assert agent.cuda_graphs and Check.checked == 3


def test_fused_viterbi_on_cuda_decodes_as_the_eager_step_does():
    from rlcourse.supervised.nlu import crf

    torch.manual_seed(0)
    model = crf.LinearChainCRF(7, crf.bio_constraints(["O", "B-a", "I-a", "B-b", "I-b", "B-c", "I-c"])).cuda()
    with torch.no_grad():
        model._transitions.normal_()
    emissions = torch.randn(512, 12, 7, device="cuda")
    mask = torch.arange(12, device="cuda") < torch.randint(1, 13, (512, 1), device="cuda")
    fused = model.viterbi(emissions, mask)  # CUDA: the compiled step
    eager = model.cpu().viterbi(emissions.cpu(), mask.cpu())
    assert torch.equal(fused[0].cpu(), eager[0])
    torch.testing.assert_close(fused[1].cpu(), eager[1])
