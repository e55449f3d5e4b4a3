"""N networks of one architecture as one (a population's members): stacked parameters, ``vmap``-ed forward passes.

``torch.func.stack_module_state`` stacks the members' parameters into tensors of shape ``[N, ...]``; every forward
pass is ``torch.func.vmap`` over ``functional_call`` of one member's architecture, so any
:class:`~rlcourse.agents.networks.PolicyModule` stacks without a line of its own (:mod:`rlcourse.agents.population`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rlcourse.agents.networks import PolicyModule

__all__ = ["StackedPolicy"]


class _MethodCall(nn.Module):
    """``forward(method, obs)`` calls ``net.<method>(obs)``: what ``functional_call`` needs to reach any method."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, method: str, obs: torch.Tensor) -> Any:
        return getattr(self.net, method)(obs)


class StackedPolicy(PolicyModule):
    """N networks of one architecture as one: parameters ``[N, ...]``, forward passes ``vmap``-ed over the members.

    Observations come member-major: ``[N * B, d]`` (member k's rows are ``k*B .. k*B+B-1``) or ``[N, B, d]``;
    outputs keep the input's leading shape. ``state_dict`` keys are the member network's, with ``.`` as ``:``.
    """

    def __init__(self, members: Sequence[PolicyModule]):
        super().__init__()
        first = members[0]
        if any(True for _ in first.buffers()):
            raise ValueError("a stacked policy stacks parameters only; this network has buffers")
        self.distribution = first.distribution
        self.count = len(members)
        stacked, _ = torch.func.stack_module_state(list(members))
        self._names = list(stacked)
        # pairs, not a dict: ParameterDict sorts a dict's keys, and _names must stay in step with its values
        self.stacked = nn.ParameterDict(
            [(name.replace(".", ":"), nn.Parameter(t.detach())) for name, t in stacked.items()]
        )
        # the architecture without weights (not a submodule: the stacked parameters are the only ones)
        self.__dict__["_caller"] = _MethodCall(copy.deepcopy(first).to("meta"))
        self.__dict__["_vmapped"] = {}

    def _run(self, method: str, obs: torch.Tensor) -> Any:
        lead = obs.shape[:-1]
        batched = obs.reshape(self.count, -1, obs.shape[-1])
        call = self._vmapped.get(method)
        if call is None:

            def one_member(params: dict[str, torch.Tensor], member_obs: torch.Tensor) -> Any:
                return torch.func.functional_call(self._caller, params, (method, member_obs))

            call = self._vmapped[method] = torch.func.vmap(one_member)
        params = {f"net.{name}": p for name, p in zip(self._names, self.stacked.values())}
        out = call(params, batched)
        return torch.utils._pytree.tree_map(lambda t: t.reshape(*lead, *t.shape[2:]), out)

    def policy_params(self, obs: torch.Tensor):
        return self._run("policy_params", obs)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self._run("value", obs)

    def params_and_value(self, obs: torch.Tensor, sequences: torch.Tensor | None = None):
        return self._run("params_and_value", obs)

    def clip_grad_norm_(self, max_norm: float | torch.Tensor) -> None:
        """Each member's gradients scaled so that *their* global norm is at most its ``max_norm`` (a number, or one
        per member), with ``torch.nn.utils.clip_grad_norm_``'s arithmetic."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(self.count, -1), dim=1) for g in grads])
        coef = torch.clamp(max_norm / (torch.linalg.vector_norm(norms, dim=0) + 1e-6), max=1.0)
        for grad in grads:
            grad.mul_(coef.view(-1, *[1] * (grad.dim() - 1)))

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k``'s weights under the plain network's names (a copy)."""
        return {name: p[k].detach().clone() for name, p in zip(self._names, self.stacked.values())}
