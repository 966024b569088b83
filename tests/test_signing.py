"""Signed versions: OpenSSF model-signing bundles made by modelreg, checked by modelreg and by the
stock ``model_signing`` verifier; refusals; the ``signatures`` policy gate."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from modelreg import IntegrityError, InvalidInputError, PolicyViolation, Registry, SignatureError
from modelreg.cli import main as cli_main
from modelreg.signing import SigningKey, fingerprint, statement_for
from tests.emulators import Bucket

KeyPair = tuple[Path, Path]


def _make_key(folder: Path, name: str, curve: str = "P-256") -> KeyPair:
    """A key pair written as `openssl ecparam -genkey` and `openssl ec -pubout` write them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
    key = ec.generate_private_key(curves[curve])
    priv, pub = folder / f"{name}.pem", folder / f"{name}.pub"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return priv, pub


@pytest.fixture
def keys(tmp_path: Path) -> Callable[[str], KeyPair]:
    folder = tmp_path / "keys"
    folder.mkdir()
    return lambda name, curve="P-256": _make_key(folder, name, curve)


def _folder(tmp_path: Path, name: str = "model", extra: dict[str, bytes] | None = None) -> Path:
    folder = tmp_path / name
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00\x01" * 5000)
    (folder / "sub" / "config.json").write_text('{"layers": 3}')
    for rel, data in (extra or {}).items():
        (folder / rel).write_bytes(data)
    return folder


def _stock_verify(model: Path, bundle: Path, public_key: Path) -> None:
    import model_signing

    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(model, bundle)


# -- signing and checking ------------------------------------------------------------------------------
def test_sign_register_download_fetch_and_verify_on_a_folder(tmp_path: Path, keys: Callable[..., KeyPair]) -> None:
    priv, pub = keys("ana")
    reg = Registry(tmp_path / "reg", signing_key=priv, actor="ana")
    mv = reg.register("churn", _folder(tmp_path), capture=None, sign=True)
    (info,) = reg.signatures(mv.ref)
    assert info.valid is True and info.problem is None
    assert info.key == fingerprint(pub.read_text()) == reg.signing_key.fingerprint
    assert (info.actor, info.role, info.key_name) == ("ana", "author", "ana")
    ev = reg.history("churn")[-1]
    assert (ev.action, ev.version, ev.actor) == ("sign", 1, "ana")
    assert ev.after["key"] == info.key and ev.after["bundle"] == info.bundle and ev.after["digest"] == mv.digest
    # the bundle is a content-addressed blob of the artifact store
    assert reg.artifacts.exists(info.bundle)

    out = reg.download("churn/1", tmp_path / "out")
    assert (out / "weights.bin").read_bytes() == b"\x00\x01" * 5000
    path = reg.fetch("churn/1", require_signature=True)  # its own key is trusted by default
    assert (path / "sub" / "config.json").read_text() == '{"layers": 3}'
    assert reg.verify().ok
    reg.close()


def test_several_signatures_one_per_key_with_roles(tmp_path: Path, keys: Callable[..., KeyPair]) -> None:
    a, _ = keys("author")
    ci, _ = keys("ci", "P-384")
    rel, _ = keys("release", "P-521")
    reg = Registry(tmp_path / "reg")
    reg.register("churn", _folder(tmp_path), capture=None)
    reg.sign("churn/1", key=a, role="author")
    reg.sign("churn/1", key=ci, role="ci", comment="pipeline 812")
    reg.sign("churn/1", key=rel, role="release")
    reg.sign("churn/1", key=ci, role="ci")  # the same key again replaces its earlier link
    infos = reg.signatures("churn/1")
    assert [i.role for i in infos] == ["author", "release", "ci"]
    assert all(i.valid for i in infos)
    assert [e.action for e in reg.history("churn")].count("sign") == 4
    assert reg.verify().ok


def test_a_single_file_version_is_signed_as_model_signing_names_it(
    tmp_path: Path, keys: Callable[..., KeyPair]
) -> None:
    priv, pub = keys("ana")
    src = tmp_path / "model.onnx"
    src.write_bytes(b"onnx bytes")
    reg = Registry(tmp_path / "reg", signing_key=priv)
    mv = reg.register("churn", src, capture=None, sign=True)
    statement = statement_for(mv)
    assert [r["name"] for r in statement["predicate"]["resources"]] == ["."]
    out = reg.download("churn/1", tmp_path / "out")
    bundle = reg.export_signature("churn/1", tmp_path / "model.sig")
    _stock_verify(out, bundle, pub)


def test_keys_from_the_environment_and_only_public_material_is_stored(
    tmp_path: Path, keys: Callable[..., KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    priv, pub = keys("env")
    monkeypatch.setenv("MODELREG_SIGNING_KEY", priv.read_text())
    reg = Registry(tmp_path / "reg")
    reg.register("churn", _folder(tmp_path), capture=None, sign=True)
    assert reg.signatures("churn/1")[0].key == fingerprint(pub.read_text())
    monkeypatch.delenv("MODELREG_SIGNING_KEY")
    other, other_pub = keys("file")
    monkeypatch.setenv("MODELREG_SIGNING_KEY_FILE", str(other))
    reg2 = Registry(tmp_path / "reg")
    assert reg2.sign("churn/1").key == fingerprint(other_pub.read_text())
    state = json.dumps(reg2.metadata.get_state("churn").extensions)
    assert "PRIVATE" not in state and priv.read_text() not in state
    assert "BEGIN PUBLIC KEY" in state  # the public halves, to verify with
    events = json.dumps([e.model_dump(mode="json") for e in reg2.history("churn")])
    assert "PRIVATE" not in events


def test_signing_needs_a_key_and_refuses_other_keys(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    reg = Registry(tmp_path / "reg")
    src = tmp_path / "m.bin"
    src.write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="signing key"):
        reg.register("churn", src, capture=None, sign=True)
    assert reg.list_models() == []  # refused before anything was registered
    reg.register("churn", src, capture=None)
    with pytest.raises(InvalidInputError, match="no signing key"):
        reg.sign("churn/1")
    ed = tmp_path / "ed.pem"
    ed.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(InvalidInputError, match="elliptic-curve"):
        reg.sign("churn/1", key=ed)
    with pytest.raises(InvalidInputError, match="not a usable PEM private key"):
        reg.sign("churn/1", key=src)


# -- refusals -----------------------------------------------------------------------------------------
def _swap_record(root: Path, name: str, victim: int, donor: int) -> None:
    """Give version ``victim`` the file manifest of version ``donor``, as someone with write access to
    the metadata database could: every blob still matches the (forged) manifest."""
    with sqlite3.connect(root / "modelreg.db") as conn:
        (donor_record,) = conn.execute(
            "SELECT record FROM versions WHERE name=? AND version=?", (name, donor)
        ).fetchone()
        (victim_record,) = conn.execute(
            "SELECT record FROM versions WHERE name=? AND version=?", (name, victim)
        ).fetchone()
        forged = {**json.loads(victim_record), "artifact": json.loads(donor_record)["artifact"]}
        conn.execute(
            "UPDATE versions SET record=?, digest=? WHERE name=? AND version=?",
            (json.dumps(forged), forged["artifact"]["digest"], name, victim),
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights.bin": b"\xff" * 10}, "file 'weights.bin' is not the signed content"),
        ({"extra.py": b"import os; os.system('curl evil')"}, "file 'extra.py' is not covered by the signature"),
    ],
)
def test_a_tampered_or_extra_file_is_refused(
    tmp_path: Path, keys: Callable[..., KeyPair], change: dict[str, bytes], message: str
) -> None:
    priv, _ = keys("ana")
    reg = Registry(tmp_path / "reg", signing_key=priv)
    reg.register("churn", _folder(tmp_path), capture=None, sign=True)
    good = _folder(tmp_path, "other")
    for rel, data in change.items():
        (good / rel).write_bytes(data)
    reg.register("churn", good, capture=None)
    _swap_record(tmp_path / "reg", "churn", victim=1, donor=2)
    fresh = Registry(tmp_path / "reg", signing_key=priv)
    with pytest.raises(SignatureError, match=message) as exc:
        fresh.download("churn/1", tmp_path / "out")
    assert "Nothing was served" in str(exc.value)
    assert not (tmp_path / "out" / "model").exists()
    with pytest.raises(SignatureError, match=message):
        fresh.fetch("churn/1")
    report = fresh.verify()
    assert not report.ok
    assert [(p.kind, p.version) for p in report.problems] == [("signature", 1)]
    assert message in report.problems[0].detail
    (info,) = fresh.signatures("churn/1")
    assert info.valid is False and message in (info.problem or "")
    assert isinstance(exc.value, IntegrityError)  # SignatureError is a kind of IntegrityError


def test_a_signature_claimed_for_another_key_is_refused(tmp_path: Path, keys: Callable[..., KeyPair]) -> None:
    priv, _ = keys("ana")
    _, mallory_pub = keys("mallory")
    reg = Registry(tmp_path / "reg", signing_key=priv)
    reg.register("churn", _folder(tmp_path), capture=None, sign=True)
    claimed = fingerprint(mallory_pub.read_text())

    def relabel(state):  # the link now claims the bundle was made with another key
        draft = state.model_copy(deep=True)
        sigs = draft.extensions["signatures"]
        (link,) = sigs["versions"]["1"]
        sigs["keys"][claimed] = mallory_pub.read_text()
        link["key"] = claimed
        return draft, []

    reg.metadata.update("churn", relabel)
    with pytest.raises(SignatureError, match="wrong key"):
        reg.download("churn/1", tmp_path / "out")
    assert "wrong key" in reg.verify().problems[0].detail


def test_a_bundle_altered_in_the_store_is_refused(tmp_path: Path, keys: Callable[..., KeyPair]) -> None:
    priv, _ = keys("ana")
    reg = Registry(tmp_path / "reg", signing_key=priv, cache=False)
    reg.register("churn", _folder(tmp_path), capture=None, sign=True)
    (info,) = reg.signatures("churn/1")
    hexdigest = info.bundle.split(":")[1]
    blob = tmp_path / "reg" / "blobs" / "sha256" / hexdigest[:2] / hexdigest[2:]
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes().replace(b'"keyid":""', b'"keyid":"x"'))
    with pytest.raises(SignatureError, match="corrupted"):
        reg.download("churn/1", tmp_path / "out")


def test_require_signature_refuses_unsigned_and_untrusted_versions(
    tmp_path: Path, keys: Callable[..., KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, ana_pub = keys("ana")
    _, bob_pub = keys("bob")
    reg = Registry(tmp_path / "reg")
    reg.register("churn", _folder(tmp_path), capture=None)
    with pytest.raises(InvalidInputError, match="require_signature needs trusted keys"):
        reg.fetch("churn/1", require_signature=True)
    with pytest.raises(SignatureError, match=r"has no valid signature from a trusted key.*signatures: none"):
        reg.fetch("churn/1", require_signature=True, trusted_keys=[ana_pub])
    reg.sign("churn/1", key=ana)
    with pytest.raises(SignatureError, match="no valid signature from a trusted key") as exc:
        reg.fetch("churn/1", require_signature=True, trusted_keys=[bob_pub])
    assert "modelreg sign churn/1" in str(exc.value)
    with pytest.raises(SignatureError, match="no valid signature from a trusted key"):
        reg.download("churn/1", tmp_path / "out", require_signature=True, trusted_keys=[bob_pub])
    assert reg.fetch("churn/1", require_signature=True, trusted_keys=[ana_pub]).is_dir()
    # trusted keys as fingerprints, from the registry or the environment
    fp = fingerprint(ana_pub.read_text())
    assert Registry(tmp_path / "reg", trusted_keys=[fp]).fetch("churn/1", require_signature=True).is_dir()
    monkeypatch.setenv("MODELREG_TRUSTED_KEYS", f"{fingerprint(bob_pub.read_text())}, {ana_pub}")
    assert Registry(tmp_path / "reg").download("churn/1", tmp_path / "out", require_signature=True).is_dir()
    trusted = Registry(tmp_path / "reg").signatures("churn/1", trusted_keys=[bob_pub])
    assert [(i.valid, i.trusted) for i in trusted] == [(True, False)]


# -- S3 -------------------------------------------------------------------------------------------------
@pytest.mark.s3
def test_sign_and_verify_on_s3(s3_bucket: Bucket, tmp_path: Path, keys: Callable[..., KeyPair]) -> None:
    priv, pub = keys("ana")
    options = {**s3_bucket.storage_options, "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}}}
    reg = Registry(f"{s3_bucket.url}/reg", storage_options=options, signing_key=priv)
    reg.register("churn", _folder(tmp_path), capture=None, sign=True)
    reg.register("churn", _folder(tmp_path, "v2", {"extra.bin": b"2"}), capture=None)
    reader = Registry(f"{s3_bucket.url}/reg", storage_options=options, trusted_keys=[pub])
    (info,) = reader.signatures("churn/1")
    assert info.valid
    out = reader.download("churn/1", tmp_path / "out", require_signature=True)
    assert reader.fetch("churn/1", require_signature=True).is_dir()
    reader.export_signature("churn/1", tmp_path / "churn.sig")
    _stock_verify(out, tmp_path / "churn.sig", pub)
    with pytest.raises(SignatureError, match="no valid signature"):
        reader.fetch("churn/2", require_signature=True)
    assert reader.verify().ok
    report = reader.gc(grace=__import__("datetime").timedelta(0), dry_run=True)
    assert info.bundle not in report.removed  # a linked bundle is in use
    reg.close()
    reader.close()


# -- interop with the stock verifier --------------------------------------------------------------------------
def test_the_stock_model_signing_verifier_accepts_a_downloaded_version(
    tmp_path: Path, keys: Callable[..., KeyPair]
) -> None:
    priv, pub = keys("ana")
    _, other_pub = keys("other")
    reg = Registry(tmp_path / "reg", signing_key=priv)
    reg.register("churn", _folder(tmp_path, extra={"sub/deeper.bin": b"d", "a.b": b"dot"}), capture=None, sign=True)
    out = reg.download("churn/1", tmp_path / "out")
    bundle = reg.export_signature("churn/1", tmp_path / "churn.sig")
    _stock_verify(out, bundle, pub)  # accepted
    with pytest.raises(ValueError, match="Key mismatch"):
        _stock_verify(out, bundle, other_pub)
    (out / "new.txt").write_text("added")
    with pytest.raises(ValueError, match="Extra files"):
        _stock_verify(out, bundle, pub)


def test_modelreg_verifies_a_bundle_made_by_the_stock_signer(tmp_path: Path, keys: Callable[..., KeyPair]) -> None:
    """The other direction: model_signing's own bundle for the same files is one modelreg can check."""
    import model_signing

    from modelreg.signing import compare_statement, verify_bundle

    priv, pub = keys("ana")
    folder = _folder(tmp_path)
    model_signing.signing.Config().use_elliptic_key_signer(private_key=priv).sign(folder, tmp_path / "stock.sig")
    reg = Registry(tmp_path / "reg")
    mv = reg.register("churn", folder, capture=None)
    statement = verify_bundle((tmp_path / "stock.sig").read_bytes(), pub.read_text())
    assert compare_statement(statement, mv) == []
    assert sorted(r["name"] for r in statement["predicate"]["resources"]) == sorted(
        r["name"] for r in statement_for(mv)["predicate"]["resources"]
    )


# -- the signatures gate -------------------------------------------------------------------------------------
def test_a_gate_counts_only_valid_signatures_from_trusted_keys(tmp_path: Path, keys: Callable[..., KeyPair]) -> None:
    trusted, trusted_pub = keys("release")
    untrusted, untrusted_pub = keys("intern")
    reg = Registry(tmp_path / "reg")
    reg.register("churn", _folder(tmp_path), capture=None)
    reg.set_policy({"gates": {"production": {"signatures": {"keys": [trusted_pub.read_text()], "min": 1}}}})
    stored = reg.get_policy().gate("production").signatures
    assert stored is not None and stored.keys == [fingerprint(trusted_pub.read_text())]

    with pytest.raises(PolicyViolation, match=r"signatures: production needs 1 valid signature.*has 0") as exc:
        reg.transition("churn/1", "production")
    assert "reg.sign('churn/1', key='key.pem')" in str(exc.value)
    reg.sign("churn/1", key=untrusted)
    lines = reg.check_transition("churn/1", "production")
    assert len(lines) == 1 and "is not a trusted key" in lines[0]
    assert fingerprint(untrusted_pub.read_text())[:19] in lines[0]
    with pytest.raises(PolicyViolation, match="is not a trusted key"):
        reg.transition("churn/1", "production")
    reg.sign("churn/1", key=trusted)
    assert reg.check_transition("churn/1", "production") == []
    assert reg.transition("churn/1", "production").stage.value == "production"


def test_a_gate_needs_distinct_keys_and_ignores_invalid_signatures(
    tmp_path: Path, keys: Callable[..., KeyPair]
) -> None:
    a, a_pub = keys("a")
    b, b_pub = keys("b")
    reg = Registry(tmp_path / "reg")
    reg.register("churn", _folder(tmp_path), capture=None)
    reg.register("churn", _folder(tmp_path, "v2", {"x.bin": b"x"}), capture=None)
    fps = [fingerprint(a_pub.read_text()), fingerprint(b_pub.read_text())]
    reg.set_policy({"gates": {"staging": {"signatures": {"keys": fps, "min": 2}}}})
    reg.sign("churn/1", key=a)
    assert "needs 2 valid signatures" in reg.check_transition("churn/1", "staging")[0]
    reg.sign("churn/1", key=b)
    assert reg.check_transition("churn/1", "staging") == []
    reg.sign("churn/2", key=a)
    reg.sign("churn/2", key=b)
    _swap_record(tmp_path / "reg", "churn", victim=2, donor=1)  # version 2's manifest is forged
    fresh = Registry(tmp_path / "reg")
    (line,) = fresh.check_transition("churn/2", "staging")
    assert "has 0" in line and "is invalid" in line
    # a request waits for signatures too, and completes once they are there
    req = fresh.request_transition("churn/1", "staging")
    assert req.status == "completed"


def test_a_signatures_gate_is_validated(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    with pytest.raises(InvalidInputError, match="neither a key fingerprint"):
        reg.set_policy({"gates": {"production": {"signatures": ["not a key"]}}})
    with pytest.raises(InvalidInputError, match="min 2 signatures but trusts only 1"):
        reg.set_policy({"gates": {"production": {"signatures": {"keys": ["ab" * 32], "min": 2}}}})
    with pytest.raises(InvalidInputError, match="private key"):
        reg.set_policy({"gates": {"production": {"signatures": ["-----BEGIN EC PRIVATE KEY-----\nx\n"]}}})
    policy = reg.set_policy({"gates": {"production": {"signatures": ["AB" * 32]}}})
    assert policy.gate("production").signatures.keys == ["sha256:" + "ab" * 32]


# -- gc, CLI, import hygiene -----------------------------------------------------------------------------------
def test_gc_keeps_linked_bundles_and_frees_those_of_purged_versions(
    tmp_path: Path, keys: Callable[..., KeyPair]
) -> None:
    from datetime import timedelta

    priv, _ = keys("ana")
    reg = Registry(tmp_path / "reg", signing_key=priv)
    reg.register("churn", _folder(tmp_path), capture=None, sign=True)
    reg.register("churn", _folder(tmp_path, "v2", {"x.bin": b"x"}), capture=None, sign=True)
    one, two = reg.signatures("churn/1")[0], reg.signatures("churn/2")[0]
    assert one.bundle not in reg.gc(grace=timedelta(0), dry_run=True).removed
    reg.purge("churn/2")
    removed = reg.gc(grace=timedelta(0)).removed
    assert two.bundle in removed and one.bundle not in removed
    assert reg.verify().ok
    reg.sign("churn/1", key=keys("b")[0])  # later signing drops the purged version's links
    assert set(reg.metadata.get_state("churn").extensions["signatures"]["versions"]) == {"1"}


def test_cli_sign_and_signatures(
    tmp_path: Path, keys: Callable[..., KeyPair], capsys: pytest.CaptureFixture[str]
) -> None:
    priv, pub = keys("ana")
    root = tmp_path / "reg"
    Registry(root).register("churn", _folder(tmp_path), capture=None)
    assert cli_main(["--registry", str(root), "sign", "churn/1", "--key", str(priv), "--role", "ci"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("signed churn/1 with key sha256:") and "(ana)" in out
    assert cli_main(["--registry", str(root), "signatures", "churn/1", "--trusted", str(pub)]) == 0
    out = capsys.readouterr().out
    assert "valid, trusted" in out and " ci " in out
    sig = tmp_path / "churn.sig"
    assert cli_main(["--registry", str(root), "--json", "signatures", "churn/1", "--export", str(sig)]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["valid"] is True and listed["role"] == "ci"
    out_dir = Registry(root).download("churn/1", tmp_path / "out")
    _stock_verify(out_dir, sig, pub)
    assert cli_main(["--registry", str(root), "sign", "churn/1"]) == 2  # no key: invalid input
    assert "no signing key" in capsys.readouterr().err


def test_save_model_forwards_sign(tmp_path: Path, keys: Callable[..., KeyPair]) -> None:
    import numpy as np

    priv, _ = keys("ana")
    reg = Registry(tmp_path / "reg", signing_key=priv)
    mv = reg.save_model("weights", {"w": np.arange(6, dtype="float32")}, sign=True, capture=None)
    (info,) = reg.signatures(mv.ref)
    assert info.valid and info.role == "author"


def test_signing_key_repr_and_sign_without_a_registry(tmp_path: Path, keys: Callable[..., KeyPair]) -> None:
    priv, pub = keys("ana")
    key = SigningKey.load(priv)
    assert key.fingerprint == fingerprint(pub.read_bytes()) and "ana" in repr(key)
    assert SigningKey.load(key) is key
    assert SigningKey.load(priv.read_text()).fingerprint == key.fingerprint


def test_cli_register_sign_and_download_fetch_require_signature(
    tmp_path: Path, keys: Callable[..., KeyPair], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    priv, pub = keys("ana")
    other, other_pub = keys("bob")
    root = str(tmp_path / "reg")
    args = ["--registry", root, "--actor", "ana"]
    register = [*args, "register", "churn"]
    assert cli_main([*register, str(_folder(tmp_path)), "--no-capture", "--signing-key", str(priv)]) == 0
    capsys.readouterr()
    (info,) = Registry(root).signatures("churn/1")
    assert info.valid and info.key == fingerprint(pub.read_text()) and (info.role, info.actor) == ("author", "ana")
    # --sign alone takes the key from the environment; without one, nothing is registered
    v2 = _folder(tmp_path, "v2", {"x.bin": b"2"})
    assert cli_main([*register, str(v2), "--no-capture", "--sign"]) == 2
    assert "needs a signing key" in capsys.readouterr().err
    assert [mv.version for mv in Registry(root).list_versions("churn")] == [1]
    monkeypatch.setenv("MODELREG_SIGNING_KEY_FILE", str(other))
    assert cli_main([*register, str(v2), "--no-capture", "--sign"]) == 0
    assert Registry(root).signatures("churn/2")[0].key == fingerprint(other_pub.read_text())
    monkeypatch.delenv("MODELREG_SIGNING_KEY_FILE")
    assert cli_main([*register, str(_folder(tmp_path, "v3", {"y.bin": b"3"})), "--no-capture"]) == 0
    capsys.readouterr()

    out = tmp_path / "out"
    assert cli_main([*args, "download", "churn/1", str(out), "--require-signature", "--trusted-key", str(pub)]) == 0
    assert Path(capsys.readouterr().out.strip()) == out / "model"
    assert cli_main([*args, "fetch", "churn/1", "--require-signature", "--trusted-key", str(pub)]) == 0
    assert Path(capsys.readouterr().out.strip()).is_dir()
    fp_bob = fingerprint(other_pub.read_text())
    assert cli_main([*args, "fetch", "churn/1", "--trusted-key", fp_bob]) == 1  # a trusted key implies the check
    assert "no valid signature from a trusted key" in capsys.readouterr().err
    out3 = tmp_path / "out3"
    assert cli_main([*args, "download", "churn/3", str(out3), "--require-signature", "--trusted-key", str(pub)]) == 1
    assert "signatures: none" in capsys.readouterr().err
    assert not out3.exists() or not any(out3.iterdir())
    assert cli_main([*args, "fetch", "churn/3", "--require-signature"]) == 2  # no trusted keys at all
    assert "require_signature needs trusted keys" in capsys.readouterr().err
    monkeypatch.setenv("MODELREG_TRUSTED_KEYS", fp_bob)
    assert cli_main([*args, "fetch", "churn/2", "--require-signature"]) == 0
