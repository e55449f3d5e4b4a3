"""Loading optimizer state without breaking a captured CUDA graph or a device's optimizer setup.

A captured graph reads and writes the optimizer's state tensors (Adam's moments, its step count,
the learning rate) at the addresses it saw at capture. ``Optimizer.load_state_dict`` allocates new
ones and replaces the param groups wholesale, so agents load through
:func:`load_optimizer_keeping_setup`, which copies the saved values into the live tensors instead.
"""

from __future__ import annotations

from typing import Any

import torch

#: Optimizers whose per-parameter state starts as zeros (step, first and second moments), so a zeroed
#: state is exactly a fresh one.
ZERO_STATE_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop)
#: Param-group flags that decide which state entries those optimizers keep (a state of other keys is not reused).
STATE_SHAPING_FLAGS = ("amsgrad", "momentum", "centered")


def refill_live_state(optimizer: torch.optim.Optimizer, live_state: dict[Any, dict[str, Any]]) -> None:
    """Put the optimizer's state tensors of before a load back in place, holding the loaded values.

    A captured CUDA graph reads and writes the state tensors at the addresses it saw; ``load_state_dict``
    allocates new ones. The first capture happens right after a load (``graphs.capture`` restores the
    pre-warm-up snapshot), and a fresh run's snapshot has no optimizer state at all: without this, the
    graph would create the state inside the capture, and every replay would start the optimizer afresh
    (Adam/RMSprop reset at every iteration). So a parameter whose state the load leaves empty keeps its
    tensors, zeroed (a fresh state), and one with loaded state gets the values copied in.
    """
    for param, old in live_state.items():
        loaded = optimizer.state.get(param)
        if loaded is None:  # the loaded state is fresh for this parameter
            for value in old.values():
                if isinstance(value, torch.Tensor):
                    value.zero_()
            optimizer.state[param] = old
            continue
        if loaded.keys() == old.keys() and all(
            not isinstance(value, torch.Tensor)
            or (isinstance(old[key], torch.Tensor) and old[key].shape == value.shape)
            for key, value in loaded.items()
        ):
            for key, value in loaded.items():
                if isinstance(value, torch.Tensor):
                    old[key].copy_(value)
                else:
                    old[key] = value
            optimizer.state[param] = old


def load_optimizer_keeping_setup(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load an optimizer's state but keep how this run drives it.

    ``load_state_dict`` replaces the param groups wholesale; that would swap a device learning-rate
    tensor (read by a captured CUDA graph) for the checkpoint's copy, and bring back another device's
    ``capturable``/``fused`` flags. The saved values are copied into the live objects instead.
    """
    live = [
        {key: group[key] for key in ("lr", "capturable", "fused", "foreach") if key in group}
        for group in optimizer.param_groups
    ]
    live_state = {param: dict(entries) for param, entries in optimizer.state.items()}
    shape_flags = [{key: group.get(key) for key in STATE_SHAPING_FLAGS} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    same_shape = shape_flags == [
        {key: group.get(key) for key in STATE_SHAPING_FLAGS} for group in optimizer.param_groups
    ]
    if isinstance(optimizer, ZERO_STATE_OPTIMIZERS) and same_shape:
        refill_live_state(optimizer, live_state)
    for group, kept in zip(optimizer.param_groups, live):
        saved_lr = float(group["lr"])
        group.update(kept)
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(saved_lr)
        else:
            group["lr"] = saved_lr
        if group.get("capturable") or group.get("fused"):
            # A CPU checkpoint keeps `step` on the CPU; a capturable or fused optimizer needs it beside its parameter.
            for param in group["params"]:
                step = optimizer.state.get(param, {}).get("step")
                if isinstance(step, torch.Tensor) and step.device != param.device:
                    optimizer.state[param]["step"] = step.to(device=param.device, dtype=torch.float32)
