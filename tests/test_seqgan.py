"""SeqGAN on the synthetic oracle: the models, each training step, the whole procedure and the bench suite.

Everything runs at toy sizes (vocabularies of 3-60 tokens, sequences of 3-8) on the CPU; hand-computed
values come from an LSTM written out gate by gate here, independently of the module's code.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from click.testing import CliRunner

from rlcourse.app.bench.seqgan import render_seqgan_markdown
from rlcourse.app.cli import cli
from rlcourse.config import ConfigError, make_config
from rlcourse.supervised.seqgan import (
    Discriminator,
    DiscriminatorShape,
    LanguageModelShape,
    SeqGANConfig,
    make_generator,
    make_oracle,
    mle_epoch,
    nll_oracle,
    policy_gradient_step,
    rollout_rewards,
    run_seqgan,
    train_discriminator,
)

SMALL = LanguageModelShape(vocab_size=60, embed_dim=8, hidden_dim=8, seq_len=8)
SMALL_D = DiscriminatorShape(embed_dim=8, filter_sizes=(1, 2, 3), num_filters=(8, 8, 8), dropout=0.25)
#: A whole run in well under a second: SeqGANConfig overrides shared by the procedure and CLI tests.
TINY_RUN = {
    "vocab_size": 40, "embed_dim": 8, "hidden_dim": 8, "seq_len": 6, "num_samples": 128, "batch_size": 16,
    "pretrain_epochs": 2, "pretrain_eval_every": 1, "adversarial_batches": 2, "adversarial_eval_every": 1,
    "rollouts": 2, "d_embed_dim": 8, "d_filter_sizes": [1, 2], "d_num_filters": [4, 4], "d_pretrain_rounds": 1,
    "d_rounds": 1, "d_epochs": 1, "d_negatives": 32, "eval_samples": 32, "final_eval_samples": 48,
}  # fmt: skip


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- the oracle
def test_the_oracle_is_seed_deterministic():
    first, again, other = make_oracle(SMALL, rng(3)), make_oracle(SMALL, rng(3)), make_oracle(SMALL, rng(4))
    for a, b in zip(first.parameters(), again.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(first.readout.weight, other.readout.weight)
    assert torch.equal(first.sample(50, rng(9)), again.sample(50, rng(9)))
    assert not torch.equal(first.sample(50, rng(9)), first.sample(50, rng(10)))
    assert not any(p.requires_grad for p in first.parameters())


def test_the_oracle_parameters_are_standard_normal():
    oracle = make_oracle(LanguageModelShape(vocab_size=2000), rng(0))
    weights = oracle.readout.weight
    assert abs(float(weights.mean())) < 0.02 and abs(float(weights.std()) - 1.0) < 0.02
    assert torch.count_nonzero(oracle.lstm.bias_hh_l0) == 0  # one bias per gate, as in the paper


def _lstm_by_hand(model, tokens: list[int]) -> float:
    """−Σ_t log p(y_t | y_<t) of one sequence, with the LSTM equations written out gate by gate."""
    w_ih, w_hh, b = model.lstm.weight_ih_l0, model.lstm.weight_hh_l0, model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0
    size = model.shape.hidden_dim
    h, c, total, previous = torch.zeros(size), torch.zeros(size), 0.0, model.shape.start_token
    for token in tokens:
        x = model.embedding.weight[previous]
        z = w_ih @ x + w_hh @ h + b
        i, f, g, o = (z[k * size : (k + 1) * size] for k in range(4))  # PyTorch's gate order
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        logits = model.readout.weight @ h + model.readout.bias
        total -= float(logits[token] - torch.logsumexp(logits, dim=0))
        previous = token
    return total


def test_nll_oracle_of_one_sequence_matches_the_lstm_by_hand():
    oracle = make_oracle(LanguageModelShape(vocab_size=7, embed_dim=3, hidden_dim=4, seq_len=5), rng(1))
    sequence = [3, 0, 6, 6, 2]
    expected = _lstm_by_hand(oracle, sequence) / len(sequence)  # per token
    assert float(nll_oracle(oracle, torch.tensor([sequence]))) == pytest.approx(expected, rel=1e-5)
    # a batch is the mean over its tokens: the same sequence twice scores the same
    assert float(nll_oracle(oracle, torch.tensor([sequence, sequence]))) == pytest.approx(expected, rel=1e-5)


def test_stepping_one_token_at_a_time_matches_the_fused_lstm():
    model = make_generator(SMALL, rng(2), std=0.5)
    tokens = model.sample(4, rng(3))
    h, _ = model.prefix_states(tokens)  # after reading tokens[:, :t+1]
    fused, _ = model.lstm(model.embedding(model.inputs_of(tokens)))  # after reading the start and tokens[:, :t]
    assert torch.allclose(h[:-1].transpose(0, 1), fused[:, 1:], atol=1e-6)


def test_the_oracles_own_samples_score_better_than_uniform_sequences():
    oracle = make_oracle(SMALL, rng(0))
    own = float(nll_oracle(oracle, oracle.sample(500, rng(1))))
    uniform = float(nll_oracle(oracle, torch.randint(0, SMALL.vocab_size, (500, SMALL.seq_len), generator=rng(2))))
    assert own < uniform - 1.0, (own, uniform)
    assert uniform > math.log(SMALL.vocab_size)  # a peaked oracle: worse than a uniform guess's ln V


def test_sampling_follows_the_models_distribution():
    model = make_generator(LanguageModelShape(vocab_size=3, embed_dim=2, hidden_dim=2, seq_len=2), rng(0), std=1.5)
    first = model.sample(20_000, rng(1))[:, 0]
    h, _ = model.step(torch.zeros(1, dtype=torch.long), model.initial_state(1))
    expected = torch.softmax(model.readout(h), dim=-1)[0]
    observed = torch.bincount(first, minlength=3).float() / len(first)
    assert torch.allclose(observed, expected.detach(), atol=0.015), (observed, expected)


# --------------------------------------------------------------------------- the training steps
def test_mle_loss_falls_on_oracle_data():
    oracle = make_oracle(SMALL, rng(0))
    data = oracle.sample(512, rng(1))
    model = make_generator(SMALL, rng(2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    before = float(nll_oracle(oracle, model.sample(500, rng(3))))
    losses = [float(mle_epoch(model, optimizer, data, 64, 5.0, rng(4))) for _ in range(6)]
    after = float(nll_oracle(oracle, model.sample(500, rng(3))))
    assert losses[-1] < losses[0] - 0.5, losses
    assert after < before - 0.5, (before, after)


def test_the_discriminator_separates_oracle_samples_from_uniform_sequences():
    oracle = make_oracle(SMALL, rng(0))
    uniform = lambda n, seed: torch.randint(0, SMALL.vocab_size, (n, SMALL.seq_len), generator=rng(seed))  # noqa: E731
    discriminator = Discriminator(SMALL.vocab_size, SMALL.seq_len, SMALL_D, rng(1))
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
    stats = train_discriminator(
        discriminator, optimizer, oracle.sample(512, rng(2)), uniform(512, 3), 6, 64, 0.2, rng(4)
    )
    assert float(stats["accuracy"]) > 0.8  # its own training accuracy (last epoch, with dropout)
    real, fake = discriminator.prob_real(oracle.sample(500, rng(5))), discriminator.prob_real(uniform(500, 6))
    accuracy = (float((real > 0.5).sum()) + float((fake <= 0.5).sum())) / 1000
    assert accuracy > 0.9, accuracy


class _FirstTokenIsOne:
    """A stand-in critic: D(Y) = 1 if the first token is 1, else 0 (a prefix property)."""

    def prob_real(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens[:, 0] == 1).float()


def test_rollout_rewards_have_one_value_per_token_and_the_last_is_d_of_the_sequence():
    model = make_generator(SMALL, rng(0), std=0.5)
    discriminator = Discriminator(SMALL.vocab_size, SMALL.seq_len, SMALL_D, rng(1))
    tokens = model.sample(5, rng(2))
    rewards = rollout_rewards(model, discriminator, tokens, 3, rng(3))
    assert rewards.shape == (5, SMALL.seq_len) and bool(((rewards > 0) & (rewards < 1)).all())
    assert torch.allclose(rewards[:, -1], discriminator.prob_real(tokens))
    # the roll-outs keep their prefix: a D that reads only the first token gives every position its value
    forced = tokens.clone()
    forced[:2, 0] = 1
    forced[2:, 0] = 0
    flags = rollout_rewards(model, _FirstTokenIsOne(), forced, 4, rng(4))
    assert torch.equal(flags, (forced[:, :1] == 1).float().expand(-1, SMALL.seq_len))


def test_rollout_rewards_estimate_q_by_exact_enumeration():
    """V = 3, T = 3: Q(Y_{1:t-1}, y_t) = Σ_completions p(completion | Y_{1:t}) · D(Y), enumerated exactly."""
    shape = LanguageModelShape(vocab_size=3, embed_dim=2, hidden_dim=3, seq_len=3)
    model = make_generator(shape, rng(0), std=1.5)
    score = torch.tensor([0.1, 0.5, 0.9])  # D(Y) = score[y_1] · score[y_2] + 0.05 · y_0 (tokens 0-indexed)

    class Table:
        def prob_real(self, tokens: torch.Tensor) -> torch.Tensor:
            return score[tokens[:, 1]] * score[tokens[:, 2]] + 0.05 * tokens[:, 0]

    sequences = torch.tensor(list(itertools.product(range(3), repeat=3)))
    with torch.no_grad():
        p = model.log_probs(sequences).exp()  # [27, 3]: p(y_t | y_<t)
    values = Table().prob_real(sequences)
    tokens = torch.tensor([[2, 0, 1], [1, 2, 2]])
    estimate = rollout_rewards(model, Table(), tokens, 4000, rng(1))
    for row, sequence in enumerate(tokens.tolist()):
        for t in range(2):  # prefix y_0..y_t fixed, the rest enumerated
            match = (sequences[:, : t + 1] == torch.tensor(sequence[: t + 1])).all(dim=1)
            weight = p[match][:, t + 1 :].prod(dim=1)
            exact = float((weight * values[match]).sum())
            assert float(estimate[row, t]) == pytest.approx(exact, abs=0.03), (row, t)
        assert float(estimate[row, 2]) == pytest.approx(float(Table().prob_real(tokens[row : row + 1])))


def test_one_adversarial_step_changes_the_generator():
    model = make_generator(SMALL, rng(0))
    discriminator = Discriminator(SMALL.vocab_size, SMALL.seq_len, SMALL_D, rng(1))
    before = [p.detach().clone() for p in model.parameters()]
    tokens = model.sample(16, rng(2))
    rewards = rollout_rewards(model, discriminator, tokens, 2, rng(3))
    loss = policy_gradient_step(model, torch.optim.Adam(model.parameters(), lr=0.01), tokens, rewards, 5.0)
    assert math.isfinite(float(loss))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_policy_gradient_raises_the_likelihood_of_rewarded_tokens():
    model = make_generator(SMALL, rng(0))
    tokens = model.sample(32, rng(1))
    rewards = (tokens[:, :1] % 2 == 0).float().expand(-1, SMALL.seq_len).contiguous()  # reward even first tokens
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with torch.no_grad():
        before = model.log_probs(tokens)[:, 0]
    for _ in range(20):
        policy_gradient_step(model, optimizer, tokens, rewards, 5.0, baseline="mean")
    with torch.no_grad():
        after = model.log_probs(tokens)[:, 0]
    rewarded = rewards[:, 0] > 0
    assert float((after - before)[rewarded].mean()) > float((after - before)[~rewarded].mean()) + 0.1


def test_a_mean_baseline_with_equal_rewards_leaves_the_generator_alone():
    model = make_generator(SMALL, rng(0))
    before = [p.detach().clone() for p in model.parameters()]
    tokens = model.sample(8, rng(1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    policy_gradient_step(model, optimizer, tokens, torch.full(tokens.shape, 0.7), 5.0, baseline="mean")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_bad_inputs_are_clear_errors():
    model = make_generator(SMALL, rng(0))
    tokens = model.sample(4, rng(1))
    discriminator = Discriminator(SMALL.vocab_size, SMALL.seq_len, SMALL_D, rng(1))
    with pytest.raises(ValueError, match="rollouts"):
        rollout_rewards(model, discriminator, tokens, 0, rng(2))
    with pytest.raises(ValueError, match="rewards"):
        policy_gradient_step(model, torch.optim.Adam(model.parameters()), tokens, torch.ones(4, 3), 5.0)
    with pytest.raises(ValueError, match="baseline"):
        policy_gradient_step(model, torch.optim.Adam(model.parameters()), tokens, torch.ones(tokens.shape), 5.0, "x")
    with pytest.raises(ValueError, match="seq_len"):
        LanguageModelShape(seq_len=1)
    with pytest.raises(ValueError, match="filter widths"):
        Discriminator(SMALL.vocab_size, 2, SMALL_D, rng(0))
    with pytest.raises(ValueError, match="int64"):
        nll_oracle(model, tokens.float())
    with pytest.raises(ValueError, match="epochs"):
        train_discriminator(
            discriminator, torch.optim.Adam(discriminator.parameters()), tokens, tokens, 0, 4, 0.2, rng()
        )
    for bad, word in (({"rollouts": 0}, "rollouts"), ({"rolouts": 3}, "rollouts"), ({"baseline": "max"}, "baseline")):
        with pytest.raises(ConfigError, match=word):
            make_config(SeqGANConfig, bad)


# --------------------------------------------------------------------------- the procedure and the suite
def test_a_tiny_run_records_both_curves():
    config = make_config(SeqGANConfig, TINY_RUN)
    result = run_seqgan(config, "cpu", seed=0)
    assert [p["epoch"] for p in result.mle_curve] == [0, 1, 2]
    assert [p["batch"] for p in result.adversarial_curve] == [0, 1, 2]
    assert result.mle_nll == result.mle_curve[-1]["nll_oracle"] == result.adversarial_curve[0]["nll_oracle"]
    assert result.seqgan_nll == result.adversarial_curve[-1]["nll_oracle"]
    assert result.improvement == pytest.approx(result.mle_nll - result.seqgan_nll)
    assert result.oracle_nll < result.mle_curve[0]["nll_oracle"]  # the oracle's samples beat a fresh generator's
    assert set(result.seconds) == {"mle", "discriminator_pretraining", "adversarial"}
    again = run_seqgan(config, "cpu", seed=0)
    assert again.mle_curve == result.mle_curve and again.adversarial_curve == result.adversarial_curve


def test_the_control_runs_apart_from_the_seqgan_stage():
    config = make_config(SeqGANConfig, TINY_RUN)
    plain, with_control = run_seqgan(config, "cpu", seed=1), run_seqgan(config, "cpu", seed=1, control=True)
    assert plain.control_nll is None and plain.control_curve == []
    assert with_control.adversarial_curve == plain.adversarial_curve  # the control leaves SeqGAN's figures alone
    assert [p["batch"] for p in with_control.control_curve] == [0, 1, 2]
    assert with_control.control_curve[0]["nll_oracle"] == with_control.mle_nll  # it starts from the MLE generator
    assert all(p["reward"] in (None, 1.0) and p["d_accuracy"] is None for p in with_control.control_curve)
    assert with_control.control_nll == with_control.control_curve[-1]["nll_oracle"]


def _bench_args(tmp_path, *extra):
    hp = [f"{key}={json.dumps(value)}" for key, value in TINY_RUN.items() if key not in ("pretrain_epochs", "rollouts")]
    args = ["bench", "--suite", "seqgan", "--device", "cpu", "--seeds", "2", "--out", str(tmp_path)]
    return [*args, "--pretrain-epochs", "2", "--rollouts", "2", *(x for h in hp for x in ("--seqgan-hp", h)), *extra]


def test_the_suite_runs_end_to_end_through_the_cli(tmp_path):
    result = CliRunner().invoke(cli, _bench_args(tmp_path))
    assert result.exit_code == 0, result.output
    (md_path,) = tmp_path.glob("bench-seqgan-cpu-*.md")
    (json_path,) = tmp_path.glob("bench-seqgan-cpu-*.json")
    report = json.loads(json_path.read_text())
    assert report["meta"]["suite"] == "seqgan" and report["meta"]["seeds"] == 2
    assert [run["seed"] for run in report["runs"]] == [0, 1]
    assert report["config"]["pretrain_epochs"] == 2 and report["config"]["rollouts"] == 2
    assert report["config"]["vocab_size"] == 40
    for run in report["runs"]:
        assert len(run["mle_curve"]) == 3 and len(run["adversarial_curve"]) == 3
        assert run["improvement"] == pytest.approx(run["mle_nll"] - run["seqgan_nll"])
        assert len(run["control_curve"]) == 3
        assert run["control_improvement"] == pytest.approx(run["mle_nll"] - run["control_nll"])
        assert run["wall_s"] == pytest.approx(sum(run["stage_s"].values()) - run["stage_s"]["control"])
    summary = report["summary"]
    improvements = [run["improvement"] for run in report["runs"]]
    assert summary["improvement"]["mean"] == pytest.approx(sum(improvements) / 2)
    assert (summary["improvement"]["min"], summary["improvement"]["max"]) == (min(improvements), max(improvements))
    markdown = md_path.read_text()
    assert "SeqGAN on the synthetic oracle" in markdown and "## Adversarial training" in markdown
    assert "8.736" in markdown  # the paper's row
    mle = [run["mle_nll"] for run in report["runs"]]
    assert f"{sum(mle) / 2:,.3f} [{min(mle):,.3f}–{max(mle):,.3f}]" in markdown
    assert "no discriminator" in markdown
    # a long curve is thinned to about a dozen rows, from its first point to its last
    for run in report["runs"]:
        for key in ("adversarial_curve", "control_curve"):
            run[key] = [{"batch": b, "nll_oracle": 9.0 - b / 1000} for b in range(0, 101, 5)]
    rows = render_seqgan_markdown(report, report["meta"]).split("## Adversarial")[1].splitlines()
    batches = [line.split("|")[1].strip() for line in rows if line.startswith("| ") and "batch" not in line]
    assert batches[0] == "0" and batches[-1] == "100" and len(batches) == 12, batches
    assert any(line.startswith("| 100 | 8.900 [8.900–8.900] |") for line in rows)


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (["--rollouts", "0"], "--rollouts"),
        (["--pretrain-epochs", "-1"], "--pretrain-epochs"),
        (["--seqgan-hp", "d_epochs=0"], "d_epochs must be > 0"),
        (["--seqgan-hp", "rollouts=4"], "set rollouts once"),
        (["--seqgan-hp", "rolouts=3"], "unknown hyperparameter 'rolouts'"),
        (["--seqgan-hp", "d_rounds"], "expected key=value"),
        (["--seqgan-hp", "d_filter_sizes=[50]", "--seqgan-hp", "d_num_filters=[4]"], "at most seq_len"),
    ],
)
def test_bad_suite_options_exit_with_code_2(tmp_path, extra, word):
    result = CliRunner().invoke(cli, _bench_args(tmp_path, *extra))
    assert result.exit_code == 2, result.output
    assert word in result.output and "Traceback" not in result.output
    assert not list(tmp_path.glob("bench-seqgan-*"))
