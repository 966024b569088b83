"""modelreg.flavors with PyTorch: a module as safetensors weights plus a factory, an
ExportedProgram (unsafe: torch.export.load unpickles), and dicts of tensors. Each round trip loads
in a fresh interpreter (this module is the factory's home: ``tests.test_flavors_pytorch:make_net``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from modelreg import flavors
from modelreg.errors import InvalidInputError, UnsafeModelError

ROOT = Path(__file__).resolve().parents[1]
FACTORY = f"{__name__}:make_net"


def make_net(hidden: int = 8) -> nn.Module:
    """The factory the saved modules name: builds the architecture, the weights come from the file."""
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, 2))


class Tied(nn.Module):
    """A module whose two layers share one weight tensor (safetensors' save_model handles it)."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(3, 3, bias=False)
        self.decode = nn.Linear(3, 3, bias=False)
        self.decode.weight = self.encode.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(torch.tanh(self.encode(x)))


def make_tied() -> Tied:
    return Tied()


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)


def trained_net(hidden: int = 8) -> nn.Module:
    torch.manual_seed(0)
    net = make_net(hidden)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    return net.eval()


CHILD = """
    import json, sys
    import numpy as np
    import torch
    from modelreg.flavors import load

    folder, inputs, out = sys.argv[1:4]
    options = json.loads(sys.argv[4])
    model = load(folder, **options)
    if hasattr(model, "module") and not isinstance(model, torch.nn.Module):  # an ExportedProgram
        model = model.module()
    with torch.no_grad():
        y = model(torch.from_numpy(np.load(inputs, allow_pickle=False)))
    np.save(out, y.numpy(), allow_pickle=False)
    print(json.dumps({"class": type(model).__module__ + "." + type(model).__qualname__,
                      "training": bool(getattr(model, "training", False))}))
"""


def load_elsewhere(folder: Path, x: np.ndarray, tmp_path: Path, **options: Any) -> tuple[np.ndarray, dict[str, Any]]:
    np.save(tmp_path / "x.npy", x, allow_pickle=False)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(CHILD),
            str(folder),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
            json.dumps(options),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return np.load(tmp_path / "y.npy", allow_pickle=False), json.loads(proc.stdout.strip().splitlines()[-1])


def test_detect() -> None:
    net = make_net()
    exported = torch.export.export(net.eval(), (torch.zeros(2, 4),))
    assert flavors.detect(net) == "pytorch"
    assert flavors.detect(exported) == "pytorch"
    assert flavors.detect(torch.zeros(3)) == "safetensors"
    assert flavors.detect(net.state_dict()) == "safetensors"


def test_module_round_trip_with_a_factory(inputs: np.ndarray, tmp_path: Path) -> None:
    net = trained_net(hidden=16)
    info = flavors.save(net, tmp_path / "m", factory=make_net, factory_kwargs={"hidden": 16}, input_example=inputs[:2])
    assert (info.flavor, info.format, info.path, info.unsafe) == ("pytorch", "safetensors", "model.safetensors", False)
    assert info.options == {"factory": FACTORY, "factory_kwargs": {"hidden": 16}, "training": False}
    assert set(info.libraries) == {"torch", "safetensors"}
    assert "torch==" + info.libraries["torch"].partition("+")[0] in info.requirements  # no local label ("+cpu")
    assert info.signature is not None and info.signature.inputs[0].shape == [None, 4]
    with torch.no_grad():
        expected = net(torch.from_numpy(inputs)).numpy()
    got, meta = load_elsewhere(tmp_path / "m", inputs, tmp_path, factory=FACTORY)
    assert meta == {"class": "torch.nn.modules.container.Sequential", "training": False}  # dropout off, as saved
    np.testing.assert_array_equal(got, expected)
    got, _ = load_elsewhere(tmp_path / "m", inputs, tmp_path, allow_unsafe=True)
    np.testing.assert_array_equal(got, expected)


def test_the_stored_factory_is_called_only_when_confirmed(inputs: np.ndarray, tmp_path: Path) -> None:
    flavors.save(trained_net(), tmp_path / "m", factory=FACTORY)
    with pytest.raises(UnsafeModelError) as refused:
        flavors.load(tmp_path / "m")
    message = str(refused.value)
    assert f"loading calls the factory the model file names, {FACTORY!r}" in message
    assert f"Pass factory={FACTORY!r} (or the function itself) to confirm" in message
    net = flavors.load(tmp_path / "m", factory=make_net)
    assert isinstance(net, nn.Sequential)
    with pytest.raises(InvalidInputError, match=r"the factory returned a dict, not an nn.Module"):
        flavors.load(tmp_path / "m", factory=dict)


def test_shared_weights_survive(tmp_path: Path) -> None:
    model = Tied()
    flavors.save(model, tmp_path / "m", factory=make_tied)
    loaded = flavors.load(tmp_path / "m", factory=make_tied)
    assert loaded.decode.weight is loaded.encode.weight
    torch.testing.assert_close(loaded.encode.weight, model.encode.weight)


def test_a_module_needs_an_importable_factory(tmp_path: Path) -> None:
    net = trained_net()
    with pytest.raises(InvalidInputError, match=r"saving an nn.Module needs factory="):
        flavors.save(net, tmp_path / "a")
    with pytest.raises(InvalidInputError, match=r"cannot be imported by another process"):
        flavors.save(net, tmp_path / "b", factory=lambda: make_net())
    with pytest.raises(InvalidInputError, match=r"cannot import 'tests.nowhere:make_net'"):
        flavors.save(net, tmp_path / "c", factory="tests.nowhere:make_net")
    with pytest.raises(InvalidInputError, match=r"is not an import path"):
        flavors.save(net, tmp_path / "d", factory="make_net()")
    with pytest.raises(InvalidInputError, match=r"factory_kwargs must be JSON data"):
        flavors.save(net, tmp_path / "e", factory=make_net, factory_kwargs={"hidden": object()})
    assert not any((tmp_path / n).exists() for n in "abcde")


def test_exported_program_needs_allow_unsafe(inputs: np.ndarray, tmp_path: Path) -> None:
    net = trained_net()
    exported = torch.export.export(net, (torch.from_numpy(inputs),))
    info = flavors.save(exported, tmp_path / "m")
    assert (info.format, info.path, info.unsafe) == ("pt2", "model.pt2", True)
    with pytest.raises(UnsafeModelError) as refused:
        flavors.load(tmp_path / "m")
    assert "runs pickle code from the artifact" in str(refused.value)
    assert "allow_unsafe=True" in str(refused.value)
    with torch.no_grad():
        expected = net(torch.from_numpy(inputs)).numpy()
    got, meta = load_elsewhere(tmp_path / "m", inputs, tmp_path, allow_unsafe=True)
    assert meta["class"].startswith("torch.fx")
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_tensors_as_safetensors(tmp_path: Path) -> None:
    state = trained_net().state_dict()
    info = flavors.save(state, tmp_path / "dict")
    assert (info.flavor, info.options["framework"]) == ("safetensors", "torch")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, json; from modelreg.flavors import load; d = load(sys.argv[1]);"
            "print(json.dumps({k: [type(v).__name__, v.flatten().tolist()] for k, v in d.items()}))",
            str(tmp_path / "dict"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {k: ["Tensor", v.flatten().tolist()] for k, v in state.items()}
    single = torch.arange(6, dtype=torch.int32).reshape(2, 3)
    flavors.save(single, tmp_path / "single")
    loaded = flavors.load(tmp_path / "single")
    assert isinstance(loaded, torch.Tensor)
    torch.testing.assert_close(loaded, single)


def test_a_missing_torch_names_the_extra(tmp_path: Path) -> None:
    flavors.save(trained_net(), tmp_path / "m", factory=make_net)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['torch'] = None\n"
            "from modelreg.errors import MissingDependencyError\n"
            "from modelreg.flavors import load\n"
            "try:\n    load(sys.argv[1], factory=sys.argv[2])\n"
            "except MissingDependencyError as e:\n    print(e)\n",
            str(tmp_path / "m"),
            FACTORY,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "the pytorch flavor needs torch, which is not installed: pip install" in proc.stdout
    assert '[pytorch]"' in proc.stdout


def test_a_module_is_built_on_the_meta_device_unless_the_state_dict_cannot_complete_it(tmp_path: Path) -> None:
    """Loading builds the module without initialising weights that the saved ones replace (the meta
    device), and falls back to the ordinary build when a tensor would be left without a value."""
    import torch

    from tests.helpers.torch_nets import make_net, make_scaled

    net = make_net(8, 16).eval()
    flavors.save(net, tmp_path / "net", factory="tests.helpers.torch_nets:make_net", factory_kwargs={"hidden": 16})
    built: list[str] = []

    def spy(**kw: Any) -> Any:
        built.append(str(torch.empty(0).device))  # the default device the factory runs under
        return make_net(**kw)

    loaded = flavors.load(tmp_path / "net", factory=spy)
    assert built == ["meta"]  # one build, on the meta device: no random initialisation
    x = torch.randn(4, 8)
    assert torch.equal(loaded(x), net(x))
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad and not p.is_meta for p in loaded.parameters())

    scaled = make_scaled(4)
    flavors.save(scaled, tmp_path / "scaled", factory="tests.helpers.torch_nets:make_scaled", factory_kwargs={})
    built.clear()

    def spy_scaled(**kw: Any) -> Any:
        built.append(str(torch.empty(0).device))
        return make_scaled(**kw)

    again = flavors.load(tmp_path / "scaled", factory=spy_scaled)
    assert built == ["meta", "cpu"]  # the unsaved buffer stayed empty on meta: built again, normally
    assert torch.equal(again.scale, torch.full((2,), 3.0))
    assert torch.equal(again(torch.ones(1, 4)), scaled(torch.ones(1, 4)))
