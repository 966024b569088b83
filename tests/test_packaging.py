"""Extras and lazy imports: `import modelreg` pulls in no cloud SDK, a missing extra names its pip command,
and the installed AWS libraries agree with each other."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelreg.extras import install_command

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["s3fs", "gcsfs", "adlfs", "boto3", "botocore", "aiobotocore", "azure", "google", "moto"]


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )


def test_import_modelreg_loads_no_cloud_sdk(tmp_path: Path) -> None:
    out = run_python(
        f"""
        import json, sys
        import modelreg
        from modelreg import Registry
        reg = Registry({str(tmp_path / "reg")!r})
        open({str(tmp_path / "m.bin")!r}, "wb").write(b"x" * 1000)
        reg.register("churn", {str(tmp_path / "m.bin")!r}, capture=None)
        reg.download("churn/1", {str(tmp_path / "out")!r})
        heavy = {HEAVY!r}
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
    """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


BLOCKER = """
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == {module!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("s3://bucket/models", "s3fs", "s3"),
        ("gs://bucket/models", "gcsfs", "gcs"),
        ("az://container/models", "adlfs", "azure"),
    ],
)
def test_a_missing_extra_names_the_pip_command(tmp_path: Path, url: str, module: str, extra: str) -> None:
    out = run_python(
        BLOCKER.format(module=module)
        + f"""
    import modelreg
    from modelreg.stores.artifacts import FsspecArtifactStore
    for attempt in (lambda: FsspecArtifactStore({url!r}), lambda: modelreg.Registry({url!r})):
        try:
            attempt()
        except modelreg.MissingDependencyError as exc:
            assert isinstance(exc, ImportError) and isinstance(exc, modelreg.ModelregError)
            print(exc)
        else:
            raise SystemExit("no error")
    """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    fix = install_command(extra, cwd=tmp_path)  # pip install "modelreg[s3]", or -e "<checkout>[s3]" here
    for line in lines:
        assert line.endswith(f"install it with: {fix}") and module in line


def test_extras_are_declared() -> None:
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = meta["project"]["optional-dependencies"]
    assert any(r.startswith("s3fs") for r in extras["s3"])
    assert any(r.startswith("gcsfs") for r in extras["gcs"])
    assert any(r.startswith("adlfs") for r in extras["azure"])
    assert "modelreg[s3,gcs,azure,ui]" in extras["all"]  # every optional feature: the backends and the UI
    from modelreg.extras import EXTRAS

    named = {e for item in extras["all"] for e in item.split("[", 1)[1].rstrip("]").split(",")}
    assert named == set(EXTRAS), "modelreg.extras.EXTRAS (what doctor reports) lists the extras of [all]"
    deps = " ".join(meta["project"]["dependencies"])
    for heavy in HEAVY:
        assert heavy not in deps


def test_installed_botocore_satisfies_aiobotocore() -> None:
    """boto3 (pulled in by moto) must not drag botocore outside aiobotocore's pinned range."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement

    wanted = [Requirement(r) for r in requires("aiobotocore") or [] if r.startswith("botocore")]
    assert wanted, "aiobotocore declares its botocore range"
    installed = version("botocore")
    for req in wanted:
        assert req.specifier.contains(installed, prereleases=True), f"botocore {installed} vs aiobotocore {req}"
    boto3_needs = [Requirement(r) for r in requires("boto3") or [] if r.startswith("botocore")]
    for req in boto3_needs:
        assert req.specifier.contains(installed, prereleases=True), f"botocore {installed} vs boto3 {req}"


def test_pip_check_is_clean() -> None:
    out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
