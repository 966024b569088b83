"""A PyTorch module factory for the model-object tests (importable by a fresh process)."""

from __future__ import annotations

from typing import Any


def make_net(in_features: int = 8, hidden: int = 16) -> Any:
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(in_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2), torch.nn.Softmax(dim=1)
    )
