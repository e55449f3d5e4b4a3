"""The SeqGAN synthetic-oracle experiment end to end: oracle data, MLE pre-training, adversarial training, curves.

:class:`SeqGANConfig` holds every setting (the paper's by default); :func:`run_seqgan` runs one seed and
returns a :class:`SeqGANResult` with the NLL-oracle curves of both stages. The order is the paper's:

1. the oracle (seed ``oracle_seed``) samples ``num_samples`` training sequences;
2. the generator is pre-trained by MLE for ``pretrain_epochs`` epochs;
3. the discriminator is pre-trained for ``d_pretrain_rounds`` rounds, each on fresh negatives;
4. each of ``adversarial_batches`` adversarial batches: one policy-gradient step of the generator on
   ``batch_size`` samples with Monte-Carlo rewards (``rollouts`` completions per prefix), then ``d_rounds``
   discriminator rounds on fresh negatives.

A round is ``d_epochs`` epochs over ``d_negatives`` fresh generator samples and as many training
sequences. NLL-oracle is measured on ``eval_samples`` fresh generator samples before training, every
``pretrain_eval_every`` epochs and every ``adversarial_eval_every`` adversarial batches, and on
``final_eval_samples`` at the end of each stage (the stage's figure). The oracle and its data depend on ``oracle_seed`` only, everything else on ``seed``.

5. optionally (``control=True``), a control: the same policy-gradient steps from the same MLE generator
   with every reward 1 and no discriminator. REINFORCE with positive rewards and no baseline raises the
   likelihood of whatever the generator sampled, which sharpens its distribution and by itself lowers
   NLL-oracle (a metric that rewards low entropy); the control measures that part of the gain.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from rlcourse.config import check_fields, hp
from rlcourse.supervised.seqgan.models import (
    Discriminator,
    DiscriminatorShape,
    LanguageModelShape,
    make_generator,
    make_oracle,
)
from rlcourse.supervised.seqgan.training import (
    BASELINES,
    mle_epoch,
    nll_oracle,
    policy_gradient_step,
    rollout_rewards,
    train_discriminator,
)

__all__ = ["SeqGANConfig", "SeqGANResult", "run_seqgan"]

#: Settings that must be > 0; the stage lengths (and d_l2) may be 0.
_POSITIVE = (
    "num_samples", "batch_size", "d_epochs", "d_negatives", "rollouts", "eval_samples", "final_eval_samples",
    "pretrain_eval_every",
    "adversarial_eval_every", "oracle_std", "generator_std", "pretrain_lr", "adversarial_lr", "grad_clip", "d_lr",
)  # fmt: skip
_NONNEGATIVE = ("pretrain_epochs", "d_pretrain_rounds", "d_rounds", "adversarial_batches", "d_l2")


@dataclass
class SeqGANConfig:
    """Settings of the synthetic benchmark; the defaults are the paper's (Yu et al. 2017, §4, and its code)."""

    vocab_size: int = hp(5000, "tokens of the oracle and the generator")
    embed_dim: int = hp(32, "embedding size of both LSTMs")
    hidden_dim: int = hp(32, "hidden size of both LSTMs")
    seq_len: int = hp(20, "tokens per sequence")
    num_samples: int = hp(10_000, "training sequences drawn from the oracle")
    oracle_std: float = hp(1.0, "the oracle's parameters ~ N(0, oracle_std²)")
    generator_std: float = hp(0.1, "the generator's initial parameters ~ N(0, generator_std²)")
    batch_size: int = hp(64, "sequences per MLE, policy-gradient and discriminator minibatch")
    pretrain_epochs: int = hp(120, "MLE epochs over the training sequences")
    pretrain_lr: float = hp(0.01, "Adam learning rate of MLE")
    grad_clip: float = hp(5.0, "global gradient-norm clip of every generator step")
    adversarial_batches: int = hp(200, "adversarial batches: one generator step and d_rounds rounds each")
    rollouts: int = hp(16, "Monte-Carlo completions per prefix")
    adversarial_lr: float = hp(0.01, "Adam learning rate of the policy gradient (a fresh Adam)")
    baseline: Literal["none", "mean"] = hp("none", "subtracted from Q: none (the paper) or the per-position batch mean")
    d_embed_dim: int = hp(64, "discriminator embedding size")
    d_filter_sizes: tuple[int, ...] = hp(DiscriminatorShape.filter_sizes, "discriminator convolution widths")
    d_num_filters: tuple[int, ...] = hp(DiscriminatorShape.num_filters, "discriminator filters per width")
    d_dropout: float = hp(0.25, "discriminator dropout probability (the paper keeps 0.75)")
    d_l2: float = hp(0.2, "L2 weight on the discriminator's output layer")
    d_lr: float = hp(1e-4, "Adam learning rate of the discriminator")
    d_pretrain_rounds: int = hp(50, "discriminator rounds before the adversarial stage")
    d_rounds: int = hp(5, "discriminator rounds after each generator step")
    d_epochs: int = hp(3, "epochs per discriminator round")
    d_negatives: int = hp(10_000, "fresh generator samples per discriminator round (and as many real ones)")
    eval_samples: int = hp(10_000, "generator samples per NLL-oracle measurement of a curve")
    final_eval_samples: int = hp(10_000, "generator samples of the NLL-oracle measurement that ends each stage")
    pretrain_eval_every: int = hp(5, "MLE epochs between NLL-oracle measurements")
    adversarial_eval_every: int = hp(5, "adversarial batches between NLL-oracle measurements")

    def __post_init__(self) -> None:
        check_fields(self, positive=_POSITIVE, nonnegative=_NONNEGATIVE, net_arch=None)
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {self.baseline!r}")
        self.d_filter_sizes, self.d_num_filters = tuple(self.d_filter_sizes), tuple(self.d_num_filters)
        self.lm_shape()  # the shapes check their own sizes
        self.discriminator_shape()
        if max(self.d_filter_sizes) > self.seq_len:
            raise ValueError(f"d_filter_sizes must be at most seq_len={self.seq_len}, got {list(self.d_filter_sizes)}")

    def lm_shape(self) -> LanguageModelShape:
        return LanguageModelShape(self.vocab_size, self.embed_dim, self.hidden_dim, self.seq_len)

    def discriminator_shape(self) -> DiscriminatorShape:
        return DiscriminatorShape(self.d_embed_dim, self.d_filter_sizes, self.d_num_filters, self.d_dropout)


@dataclass
class SeqGANResult:
    """One seed's run. Curves are lists of dicts; every NLL is NLL-oracle in nats per token."""

    oracle_nll: float  #: NLL-oracle of fresh oracle samples (the floor: the oracle's entropy per token)
    mle_nll: float = math.nan  #: after MLE pre-training
    seqgan_nll: float = math.nan  #: after the adversarial stage
    #: epoch, nll_oracle, train_nll (the epoch's mean MLE loss; None before training)
    mle_curve: list[dict[str, float | None]] = field(default_factory=list)
    #: batch, nll_oracle, reward (mean Q of the batch; None at 0), d_accuracy (last round's; None if none ran)
    adversarial_curve: list[dict[str, float | None]] = field(default_factory=list)
    control_nll: float | None = None  #: after the control stage (``control=True``), else None
    control_curve: list[dict[str, float | None]] = field(default_factory=list)  #: batch, nll_oracle
    seconds: dict[str, float] = field(default_factory=dict)  #: wall time of each stage

    @property
    def improvement(self) -> float:
        """How much the adversarial stage lowered NLL-oracle (positive: better)."""
        return self.mle_nll - self.seqgan_nll


def run_seqgan(
    config: SeqGANConfig,
    device: torch.device | str = "cpu",
    seed: int = 0,
    oracle_seed: int = 0,
    say: Callable[[str], None] | None = None,
    control: bool = False,
) -> SeqGANResult:
    """Run the whole experiment once (see the module docstring) and return its curves.

    With ``control``, the MLE generator then also runs the adversarial stage's policy-gradient steps with no
    discriminator at all (Q ≡ 1 for every token; with no baseline, Adam makes any positive constant the
    same): what the stage gains from the critic's judgement, and what from the policy gradient alone. The
    control draws from its own generator, so it leaves the SeqGAN figures as they are without it.
    """
    run = _Run(config, torch.device(device), seed, oracle_seed, say or (lambda line: None))
    result = SeqGANResult(run.oracle_nll)
    say = run.say
    say(f"oracle samples: NLL-oracle {result.oracle_nll:.3f}")
    result.mle_curve = run.pretrain()
    result.mle_nll = result.mle_curve[-1]["nll_oracle"]
    result.seconds["mle"] = run.clock.lap()
    pretrained = copy.deepcopy(run.model.state_dict()) if control else None

    for _ in range(config.d_pretrain_rounds):
        run.discriminator_round()
    if run.stats:
        say(f"discriminator pre-trained: accuracy {float(run.stats['accuracy']):.3f}")
    result.seconds["discriminator_pretraining"] = run.clock.lap()

    def monte_carlo(tokens: torch.Tensor) -> torch.Tensor:
        return rollout_rewards(run.model, run.discriminator, tokens, config.rollouts, run.rng)

    result.adversarial_curve = run.policy_gradient_stage(monte_carlo, config.d_rounds, "adversarial", result.mle_nll)
    result.seqgan_nll = result.adversarial_curve[-1]["nll_oracle"]
    result.seconds["adversarial"] = run.clock.lap()

    if pretrained is not None:
        run.model.load_state_dict(pretrained)
        run.rng = torch.Generator(device=run.device).manual_seed(seed + _CONTROL_SEED_OFFSET)
        run.stats = {}
        result.control_curve = run.policy_gradient_stage(_reward_one, 0, "control", result.mle_nll)
        result.control_nll = result.control_curve[-1]["nll_oracle"]
        result.seconds["control"] = run.clock.lap()
    return result


def _reward_one(tokens: torch.Tensor) -> torch.Tensor:
    return torch.ones(tokens.shape, device=tokens.device)


#: The control stage's generator is seeded with ``seed + this``, apart from the run's own stream.
_CONTROL_SEED_OFFSET = 1_000_003


class _Run:
    """One run's models, data and random stream, and the stages that share them."""

    def __init__(self, config: SeqGANConfig, device: torch.device, seed: int, oracle_seed: int, say: Any):
        self.config, self.device, self.say = config, device, say
        self.clock = _Clock(device)
        oracle_rng = torch.Generator(device=device).manual_seed(oracle_seed)
        self.rng = torch.Generator(device=device).manual_seed(seed)
        self.oracle = make_oracle(config.lm_shape(), oracle_rng, config.oracle_std)
        self.data = self.oracle.sample(config.num_samples, oracle_rng)
        self.oracle_nll = float(nll_oracle(self.oracle, self.oracle.sample(config.eval_samples, oracle_rng)))
        self.model = make_generator(config.lm_shape(), self.rng, config.generator_std)
        self.discriminator = Discriminator(config.vocab_size, config.seq_len, config.discriminator_shape(), self.rng)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.d_lr)
        self.stats: dict[str, torch.Tensor] = {}  # of the last discriminator round

    def measure(self, final: bool = False) -> float:
        """NLL-oracle of ``eval_samples`` (``final``: ``final_eval_samples``) fresh generator samples."""
        samples = self.config.final_eval_samples if final else self.config.eval_samples
        return float(nll_oracle(self.oracle, self.model.sample(samples, self.rng)))

    def pretrain(self) -> list[dict[str, float | None]]:
        """MLE pre-training; its curve."""
        config = self.config
        optimizer = torch.optim.Adam(self.model.parameters(), lr=config.pretrain_lr)
        last = config.pretrain_epochs
        curve: list[dict[str, float | None]] = [{"epoch": 0, "nll_oracle": self.measure(last == 0), "train_nll": None}]
        for epoch in range(1, last + 1):
            loss = mle_epoch(self.model, optimizer, self.data, config.batch_size, config.grad_clip, self.rng)
            if epoch % config.pretrain_eval_every == 0 or epoch == last:
                curve.append({"epoch": epoch, "nll_oracle": self.measure(epoch == last), "train_nll": float(loss)})
                self.say(f"MLE epoch {epoch}: NLL-oracle {curve[-1]['nll_oracle']:.3f}, training NLL {float(loss):.3f}")
        return curve

    def discriminator_round(self) -> None:
        """``d_epochs`` epochs on ``d_negatives`` fresh generator samples and as many training sequences."""
        config = self.config
        real = self.data[torch.randperm(len(self.data), generator=self.rng, device=self.device)[: config.d_negatives]]
        fake = self.model.sample(config.d_negatives, self.rng)
        self.stats = train_discriminator(
            self.discriminator, self.d_optimizer, real, fake, config.d_epochs, config.batch_size, config.d_l2, self.rng
        )

    def policy_gradient_stage(
        self, reward_of: Callable[[torch.Tensor], torch.Tensor], d_rounds: int, name: str, start_nll: float
    ) -> list[dict[str, float | None]]:
        """``adversarial_batches`` policy-gradient steps with rewards ``reward_of(tokens)``, each followed by
        ``d_rounds`` discriminator rounds (a fresh Adam); the curve, from ``start_nll`` at batch 0."""
        config = self.config
        optimizer = torch.optim.Adam(self.model.parameters(), lr=config.adversarial_lr)
        curve = [{"batch": 0, "nll_oracle": start_nll, "reward": None, "d_accuracy": self._accuracy()}]
        for batch in range(1, config.adversarial_batches + 1):
            tokens = self.model.sample(config.batch_size, self.rng)
            rewards = reward_of(tokens)
            policy_gradient_step(self.model, optimizer, tokens, rewards, config.grad_clip, config.baseline)
            for _ in range(d_rounds):
                self.discriminator_round()
            if batch % config.adversarial_eval_every == 0 or batch == config.adversarial_batches:
                last = batch == config.adversarial_batches
                curve.append(
                    {"batch": batch, "nll_oracle": self.measure(last), "reward": float(rewards.mean()),
                     "d_accuracy": self._accuracy()}
                )  # fmt: skip
                accuracy = curve[-1]["d_accuracy"]
                self.say(
                    f"{name} batch {batch}: NLL-oracle {curve[-1]['nll_oracle']:.3f}, mean reward "
                    f"{curve[-1]['reward']:.3f}, D accuracy {'—' if accuracy is None else f'{accuracy:.3f}'}"
                )
        return curve

    def _accuracy(self) -> float | None:
        return float(self.stats["accuracy"]) if self.stats else None


class _Clock:
    """Wall time between laps, after the device has finished its queued work."""

    def __init__(self, device: torch.device):
        self.device = device
        self.last = self._now()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def lap(self) -> float:
        now = self._now()
        seconds, self.last = now - self.last, now
        return seconds
