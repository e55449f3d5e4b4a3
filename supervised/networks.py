"""The small networks the plug-ins build: plain MLPs, where no hidden layers at all means a linear model."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "elu": nn.ELU, "relu": nn.ReLU}


def check_layers(sizes: tuple[int, ...], name: str = "net_arch") -> None:
    """Hidden layer sizes must be positive; an empty list is allowed (a linear model)."""
    if any(size <= 0 for size in sizes):
        raise ValueError(f"{name} must list positive layer sizes (or none, for a linear model), got {list(sizes)!r}")


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str = "tanh") -> nn.Sequential:
    """``in_dim -> hidden... -> out_dim`` with PyTorch's default initialisation."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(in_dim, size), ACTIVATIONS[activation]()]
        in_dim = size
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)
