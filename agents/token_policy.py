"""The sequence policy network: π(next token | tokens so far) and V(tokens so far) from one GRU (``policy: token_gru``).

For envs whose observation is a sequence of token ids (the chatbot), an MLP over ids would treat token 17
as "more" than token 16. This network embeds the tokens and reads them with a GRU, the seq2seq chatbot of
notes:5396-5406 (encoder and decoder share their parameters, the choice the notes suggest when data is
small): the GRU's state after the last non-PAD token feeds the policy head (the next token's logits) and
the value head. The GRU is :class:`~rlcourse.supervised.chat.language_model.TokenGRU`, the language model's
own, so an MLE-trained model warm-starts the policy (``--init-from``) weight for weight.

Acting without re-reading the prefix: while a rollout plays, each observation is the previous one plus one
token, so the network keeps each sub-env's GRU state and its last observation. A row whose observation
extends the kept one by exactly one token advances by one GRU step; any other row (a new reply, a new
context) is read from scratch. Generating a reply of R tokens then costs R steps instead of the
O(R·L) of reading the whole prefix every step (``incremental: false`` measures that; figures in docs/).
Which rows are read from scratch is a data-dependent subset, so the rollout of this network reads one
count per step to the host; the update reads whole sequences with the fused GRU, like the language model.
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from torch import nn

from rlcourse.agents.distributions import Categorical
from rlcourse.agents.networks import PolicyModule
from rlcourse.supervised.chat.language_model import TokenGRU, last_token_index
from rlcourse.supervised.chat.scorer import token_vocabulary


class TokenActorCritic(PolicyModule):
    """π and V over token-id observations, from one shared :class:`TokenGRU` (``net_arch = (embedding, hidden)``)."""

    keeps_state = True

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        net_arch: tuple[int, ...],
        incremental: bool = True,
    ):
        super().__init__()
        vocab_size = token_vocabulary(observation_space, action_space, "policy token_gru")
        if len(net_arch) != 2:
            raise ValueError(f"policy token_gru takes net_arch = [embedding size, GRU size], got {list(net_arch)}")
        self.distribution = Categorical(vocab_size)
        self.lm = TokenGRU(vocab_size, *net_arch)
        self.value_head = nn.Linear(net_arch[1], 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        self.incremental = incremental
        self._kept_obs: torch.Tensor | None = None
        self._kept_state: torch.Tensor | None = None

    def policy_params(self, obs: torch.Tensor) -> torch.Tensor:
        return self.lm.head(self.lm.features(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.lm.features(obs)).squeeze(-1)

    def params_and_value(
        self, obs: torch.Tensor, sequences: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """π's logits and V of ``obs`` ``[N, L]``; with ``sequences`` (:meth:`rollout_sequences` of these samples) the
        GRU reads each distinct sequence once and every sample takes its state from there."""
        if sequences is None:
            return self._heads(self.lm.features(obs))
        distinct, row = torch.unique(sequences, dim=0, return_inverse=True)
        outputs = self.lm.encode(distinct)
        return self._heads(outputs[row, last_token_index(obs)])

    @torch.no_grad()
    def rollout_sequences(self, obs: torch.Tensor, actions: torch.Tensor, dones: torch.Tensor) -> torch.Tensor:
        """``[T, B, L]``: for every sample of a rollout, the longest sequence of its episode that the rollout saw.

        Within an episode each observation is the one before plus the token just chosen, so the GRU's states along
        the episode's last sequence (its final observation) are the states of all its samples: the update reads
        each episode once, not each of its prefixes. A sample whose observation is not a prefix of that sequence
        (an env of another layout) keeps its own observation, so the result is right either way.
        """
        last = last_token_index(obs.flatten(0, 1)).view(obs.shape[:2])
        slot = (last + 1).clamp(max=obs.shape[-1] - 1).unsqueeze(-1)
        extended = obs.long().scatter(-1, slot, actions.long().unsqueeze(-1))  # the observation the action led to
        ends = torch.empty_like(extended)
        ends[-1] = extended[-1]
        for t in range(obs.shape[0] - 2, -1, -1):
            ends[t] = torch.where(dones[t].view(-1, 1), extended[t], ends[t + 1])
        positions = torch.arange(obs.shape[-1], device=obs.device)
        prefix = ((ends == obs.long()) | (positions > last.unsqueeze(-1))).all(-1, keepdim=True)
        return torch.where(prefix, ends, obs.long())

    def _heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lm.head(features), self.value_head(features).squeeze(-1)

    @torch.no_grad()
    def rollout_params_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`params_and_value` while a rollout plays, advancing each kept GRU state by one token where it can."""
        if not self.incremental:
            return self.params_and_value(obs)
        kept_obs, kept_state = self._kept_obs, self._kept_state
        if kept_obs is None or kept_obs.shape != obs.shape or kept_obs.device != obs.device:
            state = self.lm.features(obs)
        else:
            last = last_token_index(obs)
            extends = (last == last_token_index(kept_obs) + 1) & (
                (obs == kept_obs) | (torch.arange(obs.shape[1], device=obs.device) == last.unsqueeze(1))
            ).all(1)
            token = obs.gather(1, last.unsqueeze(1)).squeeze(1)
            state = self.lm.step(kept_state, token)
            fresh = (~extends).nonzero().squeeze(1)  # the one host read: how many rows start over
            if fresh.numel():
                state[fresh] = self.lm.features(obs[fresh])
        self._kept_obs, self._kept_state = obs.clone(), state
        return self._heads(state)

    def train(self, mode: bool = True) -> TokenActorCritic:
        self._kept_obs = self._kept_state = None  # the kept states belong to the weights they were computed with
        return super().train(mode)

    def forget(self) -> None:
        """Drop the kept states (after the weights change, or before acting in another env)."""
        self._kept_obs = self._kept_state = None
