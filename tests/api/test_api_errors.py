"""Every error class maps to one HTTP status and comes back as {"error", "message", "remedy"}:
the class name and message Python raises."""

from __future__ import annotations

import inspect

import pytest

import modelreg.errors as errors
from modelreg.api import errors as api_errors
from modelreg.api.errors import error_body, status_of
from modelreg.errors import ModelregError, Remedy
from tests.api.conftest import Api, register

EXPECTED = {
    "ModelregError": 500,
    "InvalidInputError": 422,
    "InvalidReferenceError": 422,
    "ArtifactChangedError": 422,
    "NotFoundError": 404,
    "ModelNotFound": 404,
    "VersionNotFound": 404,
    "BlobNotFound": 404,
    "AlreadyExistsError": 409,
    "InvalidTransitionError": 409,
    "ConflictError": 409,
    "PolicyViolation": 403,
    "IntegrityError": 500,
    "BackendError": 500,
    "AccessDeniedError": 500,
    "StorageNotFoundError": 500,
    "UnreachableError": 503,
    "BackendBusyError": 503,
    "OutOfSpaceError": 507,
    "SchemaVersionError": 500,
    "MissingDependencyError": 500,
    "UnsafeModelError": 500,
    # the API's own
    "Unauthorized": 401,
    "Forbidden": 403,
    "RateLimited": 429,
    "PayloadTooLarge": 413,
    "RangeNotSatisfiable": 416,
    "MethodNotAllowed": 405,
}


def _classes() -> list[type[ModelregError]]:
    found = [getattr(errors, n) for n in errors.__all__] + [getattr(api_errors, n) for n in api_errors.__all__]
    return [c for c in found if inspect.isclass(c) and issubclass(c, ModelregError)]


def _expected(cls: type[BaseException]) -> int:
    """The table's status; a class added later inherits its nearest listed ancestor's."""
    for base in cls.__mro__:
        if base.__name__ in EXPECTED:
            return EXPECTED[base.__name__]
    return 500


def _make(cls: type[ModelregError], message: str) -> ModelregError:
    if cls is api_errors.RateLimited:
        return cls(message, retry_after=2)  # type: ignore[call-arg]
    if cls is api_errors.RangeNotSatisfiable:
        return cls(message, size=10)  # type: ignore[call-arg]
    if cls is errors.PolicyViolation:
        return cls(message, ["unmet gate"])
    return cls(message)


def test_the_table_covers_every_error_class() -> None:
    classes = _classes()
    assert len(classes) >= len(EXPECTED)
    for cls in classes:
        assert status_of(_make(cls, "boom")) == _expected(cls), cls.__name__
    assert status_of(RuntimeError("x")) == 500
    assert error_body(RuntimeError("secret detail")).model_dump() == {
        "error": "InternalError",
        "message": "internal server error; see the server's log",
        "remedy": None,
    }


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_each_error_class_over_http(api: Api, cls: type[ModelregError], monkeypatch: pytest.MonkeyPatch) -> None:
    served = api.server.app.state.api.registry
    message = f"{cls.__name__} happened; do something"

    def fail(name: str) -> None:
        raise _make(cls, message)

    monkeypatch.setattr(served, "get_model", fail)
    r = api.client("reader").get("/models/churn")
    assert r.status_code == _expected(cls)
    assert r.json() == {"error": cls.__name__, "message": message, "remedy": None}


def test_remedy_is_sent_in_both_forms(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    served = api.server.app.state.api.registry

    def fail(name: str) -> None:
        raise errors.AlreadyExistsError("it exists", remedy=Remedy("pass overwrite=True", "pass --overwrite"))

    monkeypatch.setattr(served, "get_model", fail)
    body = api.client("reader").get("/models/churn").json()
    assert body == {
        "error": "AlreadyExistsError",
        "message": "it exists; pass overwrite=True",
        "remedy": {"python": "pass overwrite=True", "cli": "pass --overwrite"},
    }


def test_unexpected_exceptions_are_500_without_detail(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    served = api.server.app.state.api.registry

    def fail(name: str) -> None:
        raise RuntimeError("a secret path /etc/x")

    monkeypatch.setattr(served, "get_model", fail)
    r = api.client("reader").get("/models/churn")
    assert r.status_code == 500 and "secret" not in r.text and r.json()["error"] == "InternalError"


def test_real_errors_carry_the_python_message(api: Api) -> None:
    w = api.client("writer")
    register(w, "churn", b"v1")
    cases = [
        (w.get("/versions/churn/9"), 404, "VersionNotFound"),
        (w.get("/versions/nope"), 404, "ModelNotFound"),
        (w.get("/versions/churn@champion"), 404, "VersionNotFound"),
        (w.get("/versions/churn@@x"), 422, "InvalidReferenceError"),
        (w.post("/versions/churn/1/transition", json={"stage": "experimental", "strict": True}), 409, None),
        (w.delete("/models/churn/aliases/nope"), 404, "VersionNotFound"),
        (w.post("/versions/churn/1/metrics", json={"metrics": {}}), 422, "InvalidInputError"),
        (w.get("/no/such/endpoint"), 404, "NotFoundError"),
        (w.delete("/models"), 405, "MethodNotAllowed"),
    ]
    for response, status, name in cases:
        assert response.status_code == status, response.text
        if name:
            assert response.json()["error"] == name
    for python_call, response in [
        (lambda: api.registry.get_version("churn/9"), cases[0][0]),
        (lambda: api.registry.get_version("nope"), cases[1][0]),
    ]:
        with pytest.raises(ModelregError) as exc:
            python_call()
        assert response.json()["message"] == str(exc.value)
        assert response.json()["error"] == type(exc.value).__name__
    assert "GET" in cases[-1][0].headers["allow"]
