"""Notebook views: ``_repr_html_`` on the records and on the lists the Registry returns."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from modelreg import AuditEvent, Comparison, GcReport, ModelVersion, Problem, RegisteredModel, Registry, VerifyReport
from modelreg.html import (
    MAX_ROWS,
    EventList,
    ModelList,
    VersionList,
    fmt_shape,
    fmt_value,
    gc_html,
    human_size,
    table,
    verify_html,
    version_html,
)
from tests.ui.demo import XSS, iris_model_info

VOID = {"br", "img", "input", "meta", "link", "hr", "wbr"}


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> (open: {self.stack[-3:]})"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(fragment: str) -> _Balance:
    """Parse an HTML fragment, asserting it is well nested; return its text and tags."""
    p = _Balance()
    p.feed(fragment)
    p.close()
    assert not p.stack, f"unclosed tags: {p.stack}"
    assert "script" not in p.tags
    return p


def text_of(fragment: str) -> str:
    return " ".join(" ".join(parse(fragment).text).split())


def test_version_html_shows_stage_aliases_metrics_params_and_lineage(demo_registry: Registry) -> None:
    mv = demo_registry.get_version("churn/5")
    out = mv._repr_html_()
    text = text_of(out)
    assert "churn/5" in text and "production" in text and "@champion" in text
    assert f"{mv.current_metrics['auc']:.4g} (registered {mv.metrics['auc']:.4g})" in text
    assert "features.window_days" in text and "learning_rate" in text
    assert mv.lineage.code.commit[:12] in text and "(dirty)" in text
    assert "s3://acme-data/churn/train.parquet" in text and "churn/4" in text


def test_model_html_shows_holders_aliases_and_owner(demo_registry: Registry) -> None:
    model = demo_registry.get_model("churn")
    text = text_of(model._repr_html_())
    assert "production v5" in text and "staging v7" in text
    assert "@champion \u2192 v5" in text and model.owner in text


def test_version_list_is_a_plain_list_with_a_table(demo_registry: Registry) -> None:
    versions = demo_registry.list_versions("churn")
    assert isinstance(versions, VersionList) and isinstance(versions, list)
    assert versions == list(versions)
    out = versions._repr_html_()
    p = parse(out)
    assert p.tags.count("tr") == len(versions) + 1
    text = text_of(out)
    for mv in versions:
        assert f"v{mv.version}" in text
    assert "auc" in text and "f1" in text  # key metrics as columns
    assert isinstance(demo_registry.search("stage = 'production'"), VersionList)
    mixed = text_of(demo_registry.search("stage = 'production'")._repr_html_())
    assert "churn" in mixed and "fraud/detector" in mixed  # a model column when several models


def test_history_and_model_list_render_as_tables(demo_registry: Registry) -> None:
    events = demo_registry.history("churn")
    assert isinstance(events, EventList)
    out = events._repr_html_()
    assert parse(out).tags.count("tr") == len(events) + 1
    assert "stage: staging \u2192 production" in text_of(out)
    assert isinstance(demo_registry.history(), EventList)
    models = demo_registry.list_models()
    assert isinstance(models, ModelList)
    text = text_of(models._repr_html_())
    assert all(m.name in text for m in models)


def test_comparison_html_lists_each_difference(demo_registry: Registry) -> None:
    c = demo_registry.compare("churn/4", "churn/5")
    out = c._repr_html_()
    rows = parse(out).tags.count("tr") - 1
    assert rows == len(c.params) + len(c.metrics) + len(c.tags) + len(c.lineage) + len(c.files_added) + len(
        c.files_removed
    ) + len(c.files_changed)
    same = demo_registry.compare("churn/5", "churn/5")
    assert "no differences" in text_of(same._repr_html_()) and "same artifact" in text_of(same._repr_html_())


def test_audit_event_html(demo_registry: Registry) -> None:
    ev = demo_registry.history("churn")[-1]
    text = text_of(ev._repr_html_())
    assert ev.actor in text and ev.action in text and ev.hash[:16] in text


def test_every_view_escapes_user_text(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r")
    f = tmp_path / "m.bin"
    f.write_bytes(b"x")
    reg.register(
        "xss",
        f,
        capture=None,
        description=XSS,
        params={"p": XSS},
        tags={"t": XSS},
        metrics={"m": 1.0},
        lineage={"run_id": XSS, "run_url": XSS, "datasets": [{"uri": XSS}]},
    )
    reg.register("xss", f, capture=None, params={"p": 2})
    reg.update_model("xss", description=XSS, tags={"t": XSS})
    reg.transition("xss", 1, "staging", comment=XSS)
    outs = [
        reg.get_version("xss/1")._repr_html_(),
        reg.get_model("xss")._repr_html_(),
        reg.list_versions("xss")._repr_html_(),
        reg.history("xss")._repr_html_(),
        reg.compare("xss/1", "xss/2")._repr_html_(),
        reg.list_models()._repr_html_(),
        reg.history("xss")[-1]._repr_html_(),
    ]
    for out in outs:
        assert "<script>" not in out
        parse(out)
    assert "&lt;script&gt;" in outs[0]
    reg.close()


def test_plain_reprs_stay_short(demo_registry: Registry) -> None:
    objs = [
        demo_registry.get_version("churn/5"),
        demo_registry.get_model("churn"),
        demo_registry.history("churn")[-1],
        demo_registry.compare("churn/4", "churn/5"),
    ]
    for obj in objs:
        text = repr(obj)
        assert "\n" not in text and len(text) < 200, text
    assert repr(objs[2]).startswith("AuditEvent(#") and "churn/5" in repr(objs[2])
    assert repr(objs[3]).startswith("Comparison('churn/4' vs 'churn/5'")


def test_table_wraps_lists_by_kind(demo_registry: Registry) -> None:
    assert type(table(list(demo_registry.list_versions("churn")))) is VersionList
    assert type(table(list(demo_registry.history("churn")))) is EventList
    assert type(table(list(demo_registry.list_models()))) is ModelList
    assert type(table([])) is VersionList and "no versions" in table([])._repr_html_()
    with pytest.raises(TypeError):
        table([1, 2])
    with pytest.raises(TypeError):
        table([demo_registry.get_version("churn/1"), demo_registry.get_model("churn")])


def test_long_lists_show_first_and_last_rows(demo_registry: Registry) -> None:
    mv = demo_registry.get_version("churn/1")
    many = VersionList(mv.model_copy(update={"version": i}) for i in range(1, MAX_ROWS + 51))
    out = many._repr_html_()
    assert parse(out).tags.count("tr") == MAX_ROWS + 1
    assert f"showing {MAX_ROWS} of {MAX_ROWS + 50} rows" in out
    assert ">v1<" in out and f">v{MAX_ROWS + 50}<" in out and f">v{MAX_ROWS // 2 + 1}<" not in out


def test_formatting_helpers() -> None:
    assert human_size(0) == "0 B" and human_size(1536) == "1.5 KiB" and human_size(3 * 1024**3) == "3.0 GiB"
    assert fmt_value(0.123456) == "0.1235" and fmt_value(True) == "true" and fmt_value({"a": 1}) == '{"a": 1}'
    assert fmt_value("x" * 100, 10) == "x" * 9 + "\u2026"


def test_records_are_still_plain_pydantic_models() -> None:
    for cls in (ModelVersion, RegisteredModel, AuditEvent, Comparison, VerifyReport, GcReport):
        assert "_repr_html_" not in cls.model_fields
        assert callable(cls._repr_html_)


# -- saved models, verify and gc reports ----------------------------------------------------------------------


def test_version_html_shows_the_saved_model(demo_registry: Registry) -> None:
    info = iris_model_info(unsafe=True)
    mv = demo_registry.get_version("pricing/1").model_copy(update={"model": info})
    out = mv._repr_html_()
    assert out == version_html(mv)
    text = text_of(out)
    assert "model (sklearn)" in text
    assert "flavor sklearn sklearn.ensemble.RandomForestClassifier" in text
    assert "format joblib in model/model.joblib" in text
    assert "loading unsafe : loading can run code from the artifact (pickle)" in text  # "unsafe" in bold
    assert "libraries numpy 2.3.1 , scikit-learn 1.7.2" in text
    assert "requirements scikit-learn==1.7.2 numpy==2.3.1" in text
    assert "signature (columns)" in text
    assert "input sepal_length float64" in text and "output (unnamed) int64 (any)" in text
    # the signature is a table with one row per input and output, under its header row
    sig = out.split("signature (columns)", 1)[1].split("</table>", 1)[0]
    assert sig.count("<tr>") == 1 + len(info.signature.inputs) + len(info.signature.outputs)
    # a safe format says so; a version without a saved model has no such section
    safe = text_of(mv.model_copy(update={"model": iris_model_info(unsafe=False)})._repr_html_())
    assert "loading safe: loading runs no code" in safe and "unsafe" not in safe
    assert "model (" not in text_of(demo_registry.get_version("pricing/1")._repr_html_())


def test_saved_model_view_escapes_its_text(demo_registry: Registry) -> None:
    mv = demo_registry.get_version("pricing/1").model_copy(update={"model": iris_model_info(text=XSS)})
    out = mv._repr_html_()
    assert "<script>" not in out
    assert out.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 6  # class, a library, four columns
    parse(out)


def test_fmt_shape() -> None:
    assert fmt_shape(None) == "" and fmt_shape([]) == "()"
    assert fmt_shape([None, 4]) == "(any, 4)" and fmt_shape([3, 224, 224]) == "(3, 224, 224)"


def test_verify_report_html_clean_and_with_problems(demo_registry: Registry, reg_path: Path) -> None:
    import sqlite3

    clean = demo_registry.verify()
    assert clean.ok
    out = clean._repr_html_()
    assert out == verify_html(clean)
    text = text_of(out)
    assert text.startswith("OK: nothing is wrong")
    assert f"checked {clean.models_checked} model(s), {clean.events_checked} audit event(s)" in text
    assert parse(out).tags.count("tr") == 0  # nothing to list
    with sqlite3.connect(reg_path / "modelreg.db") as db:
        db.execute("UPDATE events SET actor='mallory' WHERE model='churn' AND seq=3")
    broken = demo_registry.verify()
    assert not broken.ok and broken.problems
    out = broken._repr_html_()
    text = text_of(out)
    n = len(broken.problems)
    assert f"{n} problem{'' if n == 1 else 's'} found" in text
    assert parse(out).tags.count("tr") == n + 1
    for p in broken.problems:
        assert p.kind in text and p.detail in text


def test_verify_report_html_escapes_and_elides() -> None:
    problems = [Problem(kind=XSS, model=XSS, version=3, detail=XSS)] + [
        Problem(kind="blob_missing", detail=f"blob {i} is missing") for i in range(MAX_ROWS + 9)
    ]
    out = VerifyReport(ok=False, problems=problems, models_checked=1)._repr_html_()
    assert "<script>" not in out and out.count("&lt;script&gt;") == 3
    assert parse(out).tags.count("tr") == MAX_ROWS + 1
    assert f"showing {MAX_ROWS} of {MAX_ROWS + 10} rows" in out
    assert "v3" in text_of(out)


def test_gc_report_html_dry_run_and_real(demo_registry: Registry, tmp_path: Path) -> None:
    from datetime import timedelta

    demo_registry.transition("pricing", 1, "archived")
    demo_registry.purge("pricing/1")
    dry = demo_registry.gc(grace=timedelta(0), dry_run=True)
    assert dry.removed
    out = dry._repr_html_()
    assert out == gc_html(dry)
    text = text_of(out)
    assert text.startswith(f"dry run: would remove {len(dry.removed)} unreferenced blob")
    assert f"kept (referenced) {dry.kept_referenced}" in text
    assert all(b in text for b in dry.removed)
    done = demo_registry.gc(grace=timedelta(0))
    text = text_of(done._repr_html_())
    assert text.startswith(f"removed {len(done.removed)} unreferenced blob") and "dry run" not in text
    assert human_size(done.bytes_freed) in text
    nothing = text_of(demo_registry.gc(grace=timedelta(0))._repr_html_())
    assert nothing.startswith("removed 0 unreferenced blobs, 0 B") and "blobs (" not in nothing


def test_gc_report_html_shows_a_cleaning_error_escaped() -> None:
    report = GcReport(removed=[XSS], bytes_freed=10, partials_error=XSS, partials_removed=2, partial_bytes_freed=2048)
    out = report._repr_html_()
    assert "<script>" not in out and out.count("&lt;script&gt;") == 2
    text = text_of(out)
    assert "interrupted uploads removed 2 (2.0 KiB)" in text and "cleaning uploads failed" in text
    parse(out)
