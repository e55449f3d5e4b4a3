"""SeqGAN on the synthetic oracle (Yu et al. 2017): a token generator trained by the policy gradient against a critic.

The task. A randomly initialised LSTM language model, the *oracle* p_o (vocabulary 5,000, embedding and
hidden size 32, every parameter ~ N(0, 1)), draws 10,000 sequences of 20 tokens: the training data. A
generator G_θ of the same shape learns from them; it is scored by **NLL-oracle**, the oracle's mean
negative log-likelihood per token of the generator's own samples,

    NLL-oracle = −E_{Y~G_θ} [ (1/T) Σ_t log p_o(y_t | Y_{1:t-1}) ]   (nats per token),

which the oracle can compute exactly, unlike any real corpus's likelihood. It is a per-token average, as
in the paper's code (``target_loss``: the oracle's cross-entropy averaged over the batch and the 20
positions); the paper's 9.038 (MLE) and 8.736 (SeqGAN) are per token, close to ln 5000 = 8.52 of a
uniform guess, because a peaked random oracle punishes every token it would rarely emit.

The two stages:

* **MLE** pre-training (teacher forcing) minimises the per-step cross-entropy against the data, which is
  maximum likelihood (notes:10448-10460 [Sequence Generation by GAN]); sequence generation as imitation of
  human text is behaviour cloning (notes:14242-14260 [Imitation Learning]).
* **Adversarial**: a discriminator D_φ(Y) tells data from G_θ's samples and replaces the human who scores
  the output (notes:10620-10664 [Sequence Generation by GAN]; RL with D as the reward,
  notes:10732-10762 [Sequence Generation by GAN]). The generator maximises the expected reward
  J(θ) = E_{Y~G_θ}[D_φ(Y)] (notes:10482-10532 [Sequence Generation by GAN]) by the policy gradient
  ∇J ≈ (1/N) Σ_i Σ_t Q(Y^i_{1:t-1}, y^i_t) ∇ log G_θ(y^i_t | Y^i_{1:t-1})
  (notes:10534-10576 [Sequence Generation by GAN]). A sequence-level D would push down every token of a bad
  sequence, its good first words too (notes:10764-10778 [Sequence Generation by GAN]); so each token gets
  its own Q, estimated by **Monte-Carlo search** as AlphaGo does: complete the prefix Y_{1:t} ``rollouts``
  times with G_θ and average D over the completions; the last token's Q is D of the whole sequence
  (notes:10782-10794 [Sequence Generation by GAN]). D is retrained on fresh negatives after every generator
  step, alternating as a GAN does. Rewards are D's probabilities, all positive, so, as the paper does, no
  baseline is subtracted by default; ``baseline="mean"`` subtracts the batch mean of Q at each position,
  the notes' advice for positive rewards (notes:10578-10602 [Sequence Generation by GAN]).

Departures from the paper's code, none of which changes the method: one logit instead of a two-way
softmax in D; roll-outs use the current generator (the code's delayed copy with rate 0.8 is never wired
into its roll-out graph, so it uses the current one too); the policy-gradient loss is averaged over the
batch instead of summed (Adam makes the scale immaterial); the discriminator's size is a setting, since
the paper's 1,720 filters cost ~10× a 288-filter CNN on the CPU.

Modules: :mod:`~rlcourse.supervised.seqgan.models` (oracle, generator, discriminator),
:mod:`~rlcourse.supervised.seqgan.training` (one step of each kind), :mod:`~rlcourse.supervised.seqgan.experiment`
(the whole procedure, :func:`run_seqgan`).
"""

from rlcourse.supervised.seqgan.experiment import SeqGANConfig, SeqGANResult, run_seqgan
from rlcourse.supervised.seqgan.models import (
    Discriminator,
    DiscriminatorShape,
    LanguageModel,
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

__all__ = [
    "BASELINES",
    "Discriminator",
    "DiscriminatorShape",
    "LanguageModel",
    "LanguageModelShape",
    "SeqGANConfig",
    "SeqGANResult",
    "make_generator",
    "make_oracle",
    "mle_epoch",
    "nll_oracle",
    "policy_gradient_step",
    "rollout_rewards",
    "run_seqgan",
    "train_discriminator",
]
