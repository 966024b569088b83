"""Registering the same content again repairs a blob that was damaged in the store."""

from __future__ import annotations

import os

import pytest

from modelreg import IntegrityError, Registry


@pytest.mark.parametrize("damage", ["truncate", "pad"])
def test_register_again_repairs_a_damaged_blob(tmp_path, damage: str) -> None:
    reg = Registry(tmp_path / "reg")
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(200_000))
    mv = reg.register("churn", src, capture=None)
    hexpart = mv.digest.split(":", 1)[1]
    blob = tmp_path / "reg" / "blobs" / "sha256" / hexpart[:2] / hexpart[2:]
    os.chmod(blob, 0o644)
    data = blob.read_bytes()
    blob.write_bytes(data[:1000] if damage == "truncate" else data + b"x")

    with pytest.raises(IntegrityError, match=r"model\.bin"):
        reg.download("churn/1", tmp_path / "out")
    assert not reg.verify().ok

    reg.register("churn", src, capture=None)  # the advice in the IntegrityError message
    assert blob.read_bytes() == src.read_bytes()
    assert reg.verify().ok
    out = reg.download("churn/1", tmp_path / "out2")
    assert out.read_bytes() == src.read_bytes()
