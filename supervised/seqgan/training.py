"""The SeqGAN training steps: MLE pre-training, the discriminator's update, Monte-Carlo rewards, the policy gradient.

Each function is one step of the procedure in :mod:`rlcourse.supervised.seqgan`, batched on the models'
device, with every random draw from the ``torch.Generator`` passed in. Losses and statistics come back as
0-d tensors (nothing here reads a value back to the host).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlcourse.supervised.seqgan.models import Discriminator, LanguageModel, vocab_rows

__all__ = [
    "BASELINES",
    "mle_epoch",
    "nll_oracle",
    "policy_gradient_step",
    "rollout_rewards",
    "train_discriminator",
]

#: What the policy gradient subtracts from Q: nothing (the paper), or the batch mean of Q at each position.
BASELINES = ("none", "mean")


@torch.no_grad()
def nll_oracle(oracle: LanguageModel, tokens: torch.Tensor) -> torch.Tensor:
    """NLL-oracle: −(1/(N·T)) Σ_i Σ_t log p_oracle(y^i_t | y^i_<t), the oracle's mean negative log-likelihood
    per token (nats) of the sequences ``tokens`` [N, T], as the paper's code computes it (its ``target_loss``
    averages the oracle's cross-entropy over the batch and the 20 positions). 0-d tensor."""
    if tokens.ndim != 2 or tokens.dtype != torch.long:
        raise ValueError(f"tokens must be an int64 tensor [N, T], got {tuple(tokens.shape)} {tokens.dtype}")
    total = torch.zeros((), device=tokens.device, dtype=torch.float64)
    chunk = max(1, vocab_rows(tokens.device, oracle.shape.vocab_size) // tokens.shape[1])
    for part in tokens.split(chunk):  # 10,000 × 20 × 5,000 logits at once would be 4 GB
        logits = oracle.logits(part)
        picked = logits.gather(-1, part.unsqueeze(-1)).squeeze(-1)
        total += (torch.logsumexp(logits, dim=-1) - picked).sum(dtype=torch.float64)
    return (total / tokens.numel()).float()


def _minibatches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """A shuffled split of 0..n-1 into minibatches of ``batch_size`` (the last one may be smaller)."""
    return list(torch.randperm(n, generator=generator, device=device).split(batch_size))


def mle_epoch(
    model: LanguageModel,
    optimizer: torch.optim.Optimizer,
    data: torch.Tensor,
    batch_size: int,
    grad_clip: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """One epoch of teacher-forced maximum likelihood on ``data`` [N, T] (shuffled minibatches, each loss the mean
    per-token cross-entropy, gradients clipped to global norm ``grad_clip``). Returns the epoch's mean loss.

    On the CPU a minibatch's gradient is summed over a few parts whose [rows, V] blocks stay in cache: the
    same gradient, about 30 % sooner.
    """
    losses = []
    block = 2 * vocab_rows(data.device, model.shape.vocab_size)
    for index in _minibatches(len(data), batch_size, generator, data.device):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.zeros((), device=data.device)
        for part in index.tensor_split(-(-index.numel() * data.shape[1] // block)):
            part_loss = -model.log_probs(data[part]).sum() / (index.numel() * data.shape[1])
            part_loss.backward()
            loss += part_loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        losses.append(loss)
    return torch.stack(losses).mean()


def train_discriminator(
    discriminator: Discriminator,
    optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    fake: torch.Tensor,
    epochs: int,
    batch_size: int,
    l2: float,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """``epochs`` passes of logistic regression "real vs generated" on ``real`` ∪ ``fake`` (each [N, T]), shuffled.

    Loss: binary cross-entropy of D's logit, plus ``l2 · ½‖w‖²`` on the output layer (the paper's 0.2), with
    dropout from ``generator``. Returns ``loss`` (last epoch's mean) and ``accuracy`` (last epoch, D(Y) > ½ on
    the right side, measured with dropout on, as it trains).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    tokens = torch.cat([real, fake])
    labels = torch.cat([torch.ones(len(real), device=real.device), torch.zeros(len(fake), device=real.device)])
    for _ in range(epochs):
        losses, correct = [], []
        for index in _minibatches(len(tokens), batch_size, generator, tokens.device):
            logit = discriminator.logit(tokens[index], dropout=generator)
            weights = discriminator.out.weight
            loss = F.binary_cross_entropy_with_logits(logit, labels[index]) + l2 * 0.5 * (
                weights.square().sum() + discriminator.out.bias.square().sum()
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            correct.append(((logit.detach() > 0) == (labels[index] > 0.5)).float().sum())
    return {"loss": torch.stack(losses).mean(), "accuracy": torch.stack(correct).sum() / len(tokens)}


@torch.no_grad()
def rollout_rewards(
    model: LanguageModel, discriminator: Discriminator, tokens: torch.Tensor, rollouts: int, generator: torch.Generator
) -> torch.Tensor:
    """Monte-Carlo estimates Q(Y_{1:t-1}, y_t) [B, T] of each token of the sequences ``tokens`` [B, T].

    For t < T: the mean over ``rollouts`` completions of D(Y_{1:t} + completion), each completion drawn
    from ``model`` after its prefix Y_{1:t}; for t = T: D(Y) itself (the sequence is complete).

    All (T−1)·rollouts·B completions run in one lockstep batch: at position p only the completions whose
    prefix is shorter than p draw a token, so the model runs exactly the Σ_t (T−t) steps the estimate needs.
    """
    if isinstance(rollouts, bool) or not isinstance(rollouts, int) or rollouts <= 0:
        raise ValueError(f"rollouts must be a positive integer, got {rollouts!r}")
    batch, length = tokens.shape
    h_prefix, c_prefix = model.prefix_states(tokens)  # [T, B, H]: entry g has read tokens 0..g
    group = rollouts * batch  # rows of one prefix length; row = g·group + r·batch + b, prefix tokens 0..g
    hidden = h_prefix[:-1].unsqueeze(1).expand(-1, rollouts, -1, -1).reshape(-1, h_prefix.shape[-1]).clone()
    cell = c_prefix[:-1].unsqueeze(1).expand(-1, rollouts, -1, -1).reshape(-1, c_prefix.shape[-1]).clone()
    completed = tokens.repeat((length - 1) * rollouts, 1)
    for position in range(1, length):
        active = position * group  # the groups g < position: their prefix ends before this position
        drawn = model.draw(hidden[:active], generator)
        completed[:active, position] = drawn
        if position < length - 1:
            hidden[:active], cell[:active] = model.step(drawn, (hidden[:active], cell[:active]))
    partial = discriminator.prob_real(completed).view(length - 1, rollouts, batch).mean(dim=1)  # [T-1, B]
    return torch.cat([partial, discriminator.prob_real(tokens).unsqueeze(0)]).T.contiguous()


def policy_gradient_step(
    model: LanguageModel,
    optimizer: torch.optim.Optimizer,
    tokens: torch.Tensor,
    rewards: torch.Tensor,
    grad_clip: float,
    baseline: str = "none",
) -> torch.Tensor:
    """One ascent step on J(θ) ≈ (1/B) Σ_i Σ_t (Q^i_t − b_t) log G_θ(y^i_t | Y^i_{1:t-1}) for sampled ``tokens``
    [B, T] and their rewards [B, T]; ``baseline`` "none" (b = 0, the paper) or "mean" (b_t = the batch mean of
    Q at position t). Gradients are clipped to global norm ``grad_clip``. Returns the surrogate loss −J."""
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    if rewards.shape != tokens.shape:
        raise ValueError(f"rewards must have the tokens' shape {tuple(tokens.shape)}, got {tuple(rewards.shape)}")
    advantages = rewards - rewards.mean(dim=0, keepdim=True) if baseline == "mean" else rewards
    loss = -(model.log_probs(tokens) * advantages).sum(dim=1).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach()
