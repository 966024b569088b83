"""Credentials passed in storage_options never reach the registry's files, its audit
events, logs, reprs or error messages."""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelreg import ModelregError, Registry
from modelreg.stores import _cloud
from modelreg.stores.artifacts import FsspecArtifactStore
from tests.emulators import AZURITE_KEY, Bucket, unique_name


def _error_texts(exc: BaseException) -> list[str]:
    """Everything a user could see of an error: message, repr and the whole chained traceback."""
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def _all_file_bytes(*roots: Path) -> list[tuple[Path, bytes]]:
    out = []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for n in names:
                p = Path(dirpath) / n
                out.append((p, p.read_bytes()))
    return out


def _exercise(reg: Registry, tmp_path: Path, scheme: str, options: dict[str, Any]) -> list[str]:
    """Register, download, search, audit, then provoke errors; return all error texts and reprs seen."""
    seen: list[str] = [repr(reg), repr(reg.artifacts), repr(reg.metadata), str(reg.artifacts.url)]
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(200_000))
    mv = reg.register("churn", src, params={"lr": 0.1}, capture="env")
    reg.transition("churn/1", "staging", comment="ok")
    reg.download(mv.ref, tmp_path / "out")
    seen += [mv.model_dump_json(), *(e.model_dump_json() for e in reg.metadata.list_events("churn"))]
    # errors: a bucket that does not exist, a blob that is missing
    missing = FsspecArtifactStore(f"{scheme}://{unique_name('absent')}/blobs", retries=1, **options)
    seen.append(repr(missing))
    with pytest.raises(ModelregError) as err:
        missing.put_file(mv.digest, src)
    seen += _error_texts(err.value)
    reg.artifacts.delete(mv.digest)
    reg.cache.clear()
    with pytest.raises(ModelregError) as err2:
        reg.download(mv.ref, tmp_path / "out2")
    seen += _error_texts(err2.value)
    with pytest.raises(ModelregError) as err3:
        missing.open(mv.digest)
    seen += _error_texts(err3.value)
    return seen


def _check_nowhere(secret: str, seen: list[str], roots: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    assert all(secret not in text for text in seen), [t for t in seen if secret in t][:1]
    leaked = [p for p, data in _all_file_bytes(*roots) if secret.encode() in data]
    assert leaked == []
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert caplog.records  # the SDKs did log at DEBUG, and nothing of it held the secret


def test_s3_secret_is_never_shown_or_stored(s3_bucket: Bucket, tmp_path: Path, caplog) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    options = {**s3_bucket.storage_options, "secret": secret}  # moto accepts any secret
    caplog.set_level(logging.DEBUG)
    with Registry(
        metadata=f"sqlite:///{tmp_path}/reg/reg.db", artifacts=f"{s3_bucket.url}/blobs", storage_options=options
    ) as reg:
        seen = _exercise(reg, tmp_path, "s3", options)
    _check_nowhere(secret, seen, [tmp_path, Path(os.environ["MODELREG_CACHE_DIR"])], caplog)


def test_azure_key_is_never_shown_or_stored(azure_container: Bucket, tmp_path: Path, caplog) -> None:
    options = dict(azure_container.storage_options)  # the connection string holds the account key
    caplog.set_level(logging.DEBUG)
    with Registry(
        metadata=f"sqlite:///{tmp_path}/reg/reg.db", artifacts=f"{azure_container.url}/blobs", storage_options=options
    ) as reg:
        seen = _exercise(reg, tmp_path, "az", options)
    _check_nowhere(AZURITE_KEY, seen, [tmp_path, Path(os.environ["MODELREG_CACHE_DIR"])], caplog)


def test_secrets_are_found_and_masked() -> None:
    options = {
        "key": "AKIAEXAMPLE",
        "secret": "s3cr3t",
        "token": "anon",
        "endpoint_url": "http://127.0.0.1:9000",
        "client_kwargs": {"aws_session_token": "tok-123"},
        "connection_string": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=QUJDRA==;BlobEndpoint=http://h/a;",
        "sas_token": "sv=2020&sig=abcd",
    }
    found = _cloud.secrets_in(options)
    for value in ("AKIAEXAMPLE", "s3cr3t", "tok-123", "QUJDRA==", "sv=2020&sig=abcd"):
        assert value in found
    assert "anon" not in found and "http://127.0.0.1:9000" not in found
    text = _cloud.mask("failed with s3cr3t and AccountKey=QUJDRA==; and AccountKey=other;", found)
    assert "s3cr3t" not in text and "QUJDRA==" not in text and "other" not in text
