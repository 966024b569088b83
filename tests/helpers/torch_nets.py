"""A PyTorch module factory for the model-object tests (importable by a fresh process)."""

from __future__ import annotations

from typing import Any


def make_net(in_features: int = 8, hidden: int = 16) -> Any:
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(in_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2), torch.nn.Softmax(dim=1)
    )


def make_scaled(in_features: int = 4) -> Any:
    """A module with a buffer that its state dict does not hold (``persistent=False``)."""
    import torch

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(in_features, 2)
            self.register_buffer("scale", torch.full((2,), 3.0), persistent=False)

        def forward(self, x: Any) -> Any:
            return self.linear(x) * self.scale

    return Scaled()
