"""modelreg.api.client.RemoteRegistry against a live server."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelreg.api.client import RemoteRegistry
from modelreg.api.errors import Forbidden, Unauthorized
from modelreg.errors import AlreadyExistsError, IntegrityError, InvalidReferenceError, PolicyViolation, VersionNotFound
from tests.api.conftest import Api


def test_remote_registry_round_trip(api: Api, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights" * 1000)
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"a")
    (folder / "sub" / "b.txt").write_bytes(b"b")
    with RemoteRegistry(api.url, token=api.tokens["writer"]) as remote:
        mv = remote.register("churn", model, metrics={"auc": 0.9}, tags={"team": "fraud"}, format="onnx")
        assert mv == api.registry.get_version("churn/1") and mv.created_by == "writer@example.com"
        assert remote.upload_blob(model).created is False
        folder_mv = remote.register("churn", folder)
        assert folder_mv.artifact.digest == api.registry.register("local", folder, capture=None).artifact.digest
        assert remote.get_version("churn").version == 2
        assert [m.name for m in remote.list_models()] == ["churn", "local"]
        assert [v.version for v in remote.list_versions("churn")] == [1, 2]
        assert remote.transition("churn/1", "production").stage == "production"
        assert remote.get_version("churn@production").version == 1
        assert remote.set_alias("churn", "champion", 1).aliases == ["champion"]
        assert remote.delete_alias("churn", "champion").version == 1
        assert remote.set_tags("churn/1", {"x": "y"}).tags == {"team": "fraud", "x": "y"}
        assert remote.set_description("churn/1", "d").description == "d"
        assert remote.log_metrics("churn/1", {"auc": 0.95}).logged_metrics == {"auc": 0.95}
        assert [v.version for v in remote.search("metrics.auc > 0.5", order_by="version desc", limit=1)] == [1]
        assert remote.history("churn", 1)[-1].action == "log_metrics"
        page = remote.events(actions=["transition"])
        assert [e.action for e in page.events] == ["transition"]
        assert remote.verify("churn").ok
        out = remote.download("churn/1", tmp_path / "out")
        assert out.read_bytes() == model.read_bytes()
        with pytest.raises(AlreadyExistsError):
            remote.download("churn/1", tmp_path / "out")
        assert remote.download("churn/2", tmp_path / "out", path="sub/b.txt").read_bytes() == b"b"
        with pytest.raises(VersionNotFound) as exc:
            remote.get_version("churn/9")
        with pytest.raises(VersionNotFound) as local:
            api.registry.get_version("churn/9")
        assert str(exc.value) == str(local.value)
        with pytest.raises(InvalidReferenceError):
            remote.get_version("churn@@x")
        with pytest.raises(Forbidden):
            remote.approve("churn:00000000")
    with RemoteRegistry(api.url, token="mrt_wrong") as stranger, pytest.raises(Unauthorized):
        stranger.list_models()


def test_download_resumes_and_verifies(api: Api, tmp_path: Path) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB: streamed
    model = tmp_path / "big.bin"
    model.write_bytes(data)
    dest = tmp_path / "dest"
    dest.mkdir()
    with RemoteRegistry(api.url, token=api.tokens["writer"]) as remote:
        remote.register("big", model)
        (dest / "big.bin.part").write_bytes(data[:3_000_000])  # an interrupted download
        assert remote.download("big/1", dest).read_bytes() == data
        assert not (dest / "big.bin.part").exists()
        (dest / "big.bin.part").write_bytes(b"garbage" * 1000)  # a wrong partial file is caught
        with pytest.raises(IntegrityError):
            remote.download("big/1", dest, overwrite=True)
        assert not (dest / "big.bin.part").exists()
        assert remote.download("big/1", dest, overwrite=True).read_bytes() == data


def test_policy_violation_is_raised_as_in_python(api: Api, tmp_path: Path) -> None:
    api.registry.set_policy({"gates": {"production": {"approvals": 1}}}, actor="server-admin")
    model = tmp_path / "m.bin"
    model.write_bytes(b"m")
    with RemoteRegistry(api.url, token=api.tokens["writer"]) as remote:
        remote.register("churn", model)
        with pytest.raises(PolicyViolation, match="unmet gate"):
            remote.transition("churn/1", "production")
        req = remote.request_transition("churn/1", "production")
        assert [r.id for r in remote.list_requests()] == [req.id]
    with RemoteRegistry(api.url, token=api.tokens["approver"]) as approver:
        assert approver.approve(req.id).status == "completed"
