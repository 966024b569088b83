"""Server-side tests of the web UI: real registry on disk, requests through Starlette's TestClient."""

from __future__ import annotations

import hashlib
import io
import os
import re
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from modelreg import InvalidTransitionError, ModelNotFound, Registry, Stage, VersionNotFound
from modelreg.ui import create_app
from modelreg.ui.security import CSRF_COOKIE, CSRF_FIELD, CsrfSigner, redact_url
from tests.ui.demo import XSS

TOKEN_RE = re.compile(rf'name="{CSRF_FIELD}" value="([^"]+)"')


def token_of(page: str) -> str:
    m = TOKEN_RE.search(page)
    assert m, "page has no CSRF field"
    return m.group(1)


def act(client: TestClient, kind: str, data: dict[str, str], *, page: str | None = None, confirm: bool = True):
    """Submit an action the way a browser does: load a page with forms for the token, post, confirm."""
    if page is None:
        page = f"/version/{data['ref']}" if "ref" in data else f"/model/{data['name']}"
    token = token_of(client.get(page).text)
    first = client.post(f"/action/{kind}", data={**data, CSRF_FIELD: token}, follow_redirects=False)
    if not confirm or first.status_code != 200:
        return first
    assert 'id="confirm-button"' in first.text
    return client.post(f"/action/{kind}", data={**data, CSRF_FIELD: token, "confirm": "yes"}, follow_redirects=False)


def rows_of(page: str, table_id: str) -> list[str]:
    body = page.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr[ >].*?</tr>", body, flags=re.DOTALL)[1:]


# -- pages ------------------------------------------------------------------------------------


def test_models_page_lists_every_model_with_holders_and_owner(client: TestClient, demo_registry: Registry) -> None:
    r = client.get("/")
    assert r.status_code == 200
    rows = rows_of(r.text, "models-table")
    assert len(rows) == len(demo_registry.list_models()) == 3
    churn = next(row for row in rows if 'href="/model/churn"' in row)
    model = demo_registry.get_model("churn")
    assert f'href="/version/churn/{model.latest_version}"' in churn
    assert f'href="/version/churn/{model.stages["production"][0]}"' in churn
    assert f'href="/version/churn/{model.stages["staging"][0]}"' in churn
    assert f"<td>{model.owner}</td>" in churn


def test_search_box_filters_models_by_text(client: TestClient) -> None:
    rows = rows_of(client.get("/", params={"q": "FRAUD"}).text, "models-table")
    assert len(rows) == 1 and "fraud/detector" in rows[0]
    assert "No model matches" in client.get("/", params={"q": "zzz-nothing"}).text


def test_search_box_runs_the_search_language(client: TestClient, demo_registry: Registry) -> None:
    q = "metrics.auc > 0.895 and name = 'churn'"
    expected = {mv.ref for mv in demo_registry.search(q)}
    assert expected  # the demo has such versions
    page = client.get("/", params={"q": q}).text
    shown = set(re.findall(r'href="/version/([^"]+)"', page.split('id="search-results"', 1)[1]))
    assert shown == expected


def test_search_error_is_the_registrys_message(client: TestClient, demo_registry: Registry) -> None:
    with pytest.raises(Exception) as info:
        demo_registry.search("metrics.auc >")
    r = client.get("/", params={"q": "metrics.auc >"})
    assert r.status_code == 400
    assert str(escape(str(info.value))) in r.text


def test_model_page_versions_chart_and_timeline(client: TestClient, demo_registry: Registry) -> None:
    r = client.get("/model/churn")
    assert r.status_code == 200
    versions = demo_registry.list_versions("churn")
    rows = rows_of(r.text, "versions-table")
    assert [int(re.search(r'id="v(\d+)"', row).group(1)) for row in rows] == [v.version for v in reversed(versions)]
    for mv in versions:
        row = next(x for x in rows if f'id="v{mv.version}"' in x)
        assert f"stage-{mv.stage.value}" in row
        for alias in mv.aliases:
            assert f"@{alias}" in row
    # the chart has one point per version with the metric, the timeline a bar per production holder
    assert r.text.count('<circle class="dot') == sum("auc" in v.current_metrics for v in versions)
    held = {e.version for e in demo_registry.history("churn") if (e.after or {}).get("stage") == "production"}
    for v in held:
        assert f"<title>v{v} in production from" in r.text


def test_model_page_sorts_by_a_metric_column(client: TestClient, demo_registry: Registry) -> None:
    page = client.get("/model/churn", params={"sort": "metric:auc", "order": "desc"}).text
    order = [int(x) for x in re.findall(r'<tr id="v(\d+)"', page)]
    expected = sorted(demo_registry.list_versions("churn"), key=lambda v: v.current_metrics["auc"], reverse=True)
    assert order == [v.version for v in expected]
    asc = [int(x) for x in re.findall(r'<tr id="v(\d+)"', client.get("/model/churn?sort=metric:auc&order=asc").text)]
    assert asc == order[::-1]


def test_model_page_stage_filter_and_metric_choice(client: TestClient, demo_registry: Registry) -> None:
    page = client.get("/model/churn", params={"stage": "archived", "metric": "f1"}).text
    shown = {int(x) for x in re.findall(r'<tr id="v(\d+)"', page)}
    assert shown == {v.version for v in demo_registry.list_versions("churn", stage="archived")}
    assert 'aria-label="f1 by version"' in page


def test_model_page_paginates_long_version_lists(tmp_path: Path) -> None:
    from modelreg.ui.app import PAGE_SIZE

    reg = Registry(tmp_path / "r")
    f = tmp_path / "m.bin"
    f.write_bytes(b"x")
    for i in range(PAGE_SIZE + 5):
        reg.register("big", f, capture=None, metrics={"m": float(i)})
    with TestClient(create_app(reg)) as c:
        first = c.get("/model/big").text
        second = c.get("/model/big", params={"page": 2}).text
    assert len(re.findall(r'<tr id="v', first)) == PAGE_SIZE
    assert {int(x) for x in re.findall(r'<tr id="v(\d+)"', second)} == set(range(1, 6))
    reg.close()


def links_of(page: str, list_id: str) -> list[tuple[str, str]]:
    """(href, text) of every link in the element with ``list_id`` (the 404 page's next steps)."""
    body = page.split(f'id="{list_id}"', 1)[1].split("</ul>", 1)[0]
    return [(h, re.sub(r"<[^>]+>", "", t)) for h, t in re.findall(r'<a [^>]*href="([^"]*)"[^>]*>(.*?)</a>', body)]


def test_unknown_model_is_a_404_that_suggests_links_not_a_command(client: TestClient, demo_registry: Registry) -> None:
    with pytest.raises(ModelNotFound) as info:
        demo_registry.get_model("nope")
    assert "`modelreg list`" in str(info.value)  # the registry's message has a hint for the shell
    r = client.get("/model/nope")
    assert r.status_code == 404
    message = re.search(r'id="error-message">([^<]*)</p>', r.text).group(1)
    assert message == str(escape("no model named 'nope'"))  # the registry's message, its CLI hint left out
    assert "modelreg list" not in r.text and "`" not in message
    links = links_of(r.text, "next-steps")
    assert ("/?q=nope", "Search the models for \u201cnope\u201d") in links
    assert ("/", "Browse all models") in links
    assert client.get(links[0][0]).status_code == 200


def test_unknown_version_links_to_the_models_versions(client: TestClient, demo_registry: Registry) -> None:
    with pytest.raises(VersionNotFound) as info:
        demo_registry.get_version("churn/99")
    r = client.get("/version/churn/99")
    assert r.status_code == 404
    assert "`modelreg" in str(info.value) and "modelreg versions" not in r.text
    assert "has no version 99" in r.text
    links = links_of(r.text, "next-steps")
    assert links[0] == ("/model/churn", "See the versions of churn")
    assert ("/", "Browse all models") in links
    # a missing download says the same
    assert links_of(client.get("/download/churn/99").text, "next-steps")[0] == links[0]


def test_unknown_address_links_to_every_page(client: TestClient) -> None:
    r = client.get("/no/such/page")
    assert r.status_code == 404
    assert "There is no page at /no/such/page." in r.text
    hrefs = [h for h, _ in links_of(r.text, "next-steps")]
    assert hrefs == ["/", "/compare", "/audit", "/requests"]
    for href in hrefs:
        assert client.get(href).status_code == 200


def test_other_errors_keep_the_registrys_message_and_a_back_link(client: TestClient) -> None:
    r = client.get("/", params={"q": "metrics.auc >"})  # a 400 is not a 404: nothing is left out
    assert r.status_code == 400
    r = client.get("/version/churn@@x")
    assert r.status_code == 400
    assert links_of(r.text, "next-steps") == [("/", "Back")]


def test_version_page_shows_params_metrics_lineage_files_and_audit(client: TestClient, demo_registry: Registry) -> None:
    mv = demo_registry.get_version("churn/5")
    page = client.get("/version/churn/5").text
    for key in ("learning_rate", "features.window_days"):
        assert f"<code>{key}</code>" in page
    # post-hoc metrics: the registered value, the latest logged one and every point of the history
    points = demo_registry.metric_history("churn/5", "auc")
    assert len(points) > 2
    assert f"{len(demo_registry.metric_history('churn/5'))} values" in page
    assert f"<strong>{mv.current_metrics['auc']:.4g}</strong>" in page
    # lineage: run link, commit, datasets and a link to the parent version
    assert f'href="{mv.lineage.run_url}"' in page
    assert mv.lineage.code.commit[:12] in page
    for ds in mv.lineage.datasets:
        assert ds.uri in page
    assert 'href="/version/churn/4"' in page
    # files with sizes and digests, and the full audit history of this version
    for f in mv.artifact.files:
        assert f.digest in page
    audit = page.split('id="audit"', 1)[1]
    assert len(re.findall(r"<tr><td class=\"num\">", audit)) == len(demo_registry.history("churn", 5))


def test_version_reference_forms_redirect_to_the_canonical_page(client: TestClient) -> None:
    cases = {"churn@champion": "/version/churn/5", "churn@production": "/version/churn/5", "churn": "/version/churn/8"}
    for ref, target in cases.items():
        r = client.get(f"/version/{ref}", follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (302, target)


def test_download_single_file_matches_the_recorded_digest(client: TestClient, demo_registry: Registry) -> None:
    mv = demo_registry.get_version("churn/5")
    r = client.get("/download/churn/5")
    assert r.status_code == 200
    assert "sha256:" + hashlib.sha256(r.content).hexdigest() == mv.digest
    assert mv.artifact.name in r.headers["content-disposition"]
    assert r.headers["content-type"] == "application/octet-stream"


def test_download_folder_as_zip_and_one_file(client: TestClient, demo_registry: Registry) -> None:
    mv = demo_registry.get_version("fraud/detector/3")
    r = client.get("/download/fraud/detector/3")
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        got = {n.split("/", 1)[1]: "sha256:" + hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist()}
    assert got == {f.path: f.digest for f in mv.artifact.files}
    one = client.get("/download/fraud/detector/3", params={"file": "config.json"})
    config = next(f for f in mv.artifact.files if f.path == "config.json")
    assert "sha256:" + hashlib.sha256(one.content).hexdigest() == config.digest
    assert client.get("/download/fraud/detector/3", params={"file": "../etc/passwd"}).status_code == 404


def test_compare_two_or_more_versions(client: TestClient, demo_registry: Registry) -> None:
    page = client.get("/compare", params=[("v", "churn/4"), ("v", "churn/5"), ("v", "churn@challenger")]).text
    for ref in ("churn/4", "churn/5", "churn/7"):
        assert f'href="/version/{ref}"' in page
    diff = demo_registry.compare("churn/4", "churn/5")
    summary = f"{len(diff.metrics)} metrics, {len(diff.params)} params"
    assert summary in re.sub(r"\s+", " ", page)
    params = page.split('id="cmp-params"', 1)[1].split("</tbody>", 1)[0]
    differing = set(re.findall(r'<tr class="differs"><td><code>([^<]+)</code>', params))
    assert set(diff.params) <= differing
    only = client.get("/compare", params=[("v", "churn/4"), ("v", "churn/5"), ("diff", "1")]).text
    assert "<code>features.drop_na</code>" in page and "<code>features.drop_na</code>" not in only


def test_compare_needs_two_versions_and_reports_unknown_ones(client: TestClient) -> None:
    assert "Pick two or more versions" in client.get("/compare", params={"v": "churn/1"}).text
    r = client.get("/compare", params=[("v", "churn/1"), ("v", "churn/99")])
    assert r.status_code == 404 and "has no version 99" in r.text


def test_audit_page_shows_chain_status_and_filters(client: TestClient, demo_registry: Registry) -> None:
    page = client.get("/audit").text
    total = len(demo_registry.history())
    assert "Audit chains verified" in page and f"{total} events in 3 models" in page
    assert len(rows_of(page, "audit-table")) == total
    ben = client.get("/audit", params={"model": "churn", "actor": "ben"}).text
    expected = [e for e in demo_registry.history("churn") if e.actor == "ben"]
    assert len(rows_of(ben, "audit-table")) == len(expected) > 0


def test_audit_page_reports_a_tampered_chain(client: TestClient, demo_registry: Registry, reg_path: Path) -> None:
    with sqlite3.connect(reg_path / "modelreg.db") as db:
        db.execute("UPDATE events SET actor='mallory' WHERE model='churn' AND seq=3")
    problems, _ = demo_registry.verify_audit("churn")
    assert problems
    page = client.get("/audit").text
    assert "Audit chain broken" in page
    for p in problems:
        assert str(escape(p.detail)) in page


# -- actions, CSRF and confirmation -----------------------------------------------------------------------


def test_transition_needs_confirmation_then_changes_the_stage(client: TestClient, demo_registry: Registry) -> None:
    token = token_of(client.get("/version/churn/8").text)
    data = {"ref": "churn/8", "stage": "production", "comment": "ship it", CSRF_FIELD: token}
    confirm = client.post("/action/transition", data=data)
    assert confirm.status_code == 200
    assert "Move churn/8 from experimental to production." in confirm.text
    assert "Version 5 is in production now and will move to archived." in confirm.text
    assert demo_registry.get_version("churn/8").stage == Stage.EXPERIMENTAL  # nothing changed yet
    done = client.post("/action/transition", data={**data, "confirm": "yes"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/version/churn/8?done=transition"
    assert demo_registry.get_version("churn/8").stage == Stage.PRODUCTION
    assert demo_registry.get_version("churn/5").stage == Stage.ARCHIVED
    last = demo_registry.history("churn", 8)[-1]
    assert (last.action, last.actor, last.comment) == ("transition", "tester", "ship it")
    assert "Stage changed." in client.get(done.headers["location"]).text


def test_registry_errors_are_shown_as_they_are(client: TestClient, demo_registry: Registry) -> None:
    with pytest.raises(InvalidTransitionError) as info:
        demo_registry.transition("churn", 5, "experimental")
    r = act(client, "transition", {"ref": "churn/5", "stage": "experimental"}, page="/version/churn/5")
    assert r.status_code == 409
    assert f'<p class="error-message" id="error-message">{escape(str(info.value))}</p>' in r.text


def test_post_without_or_with_a_wrong_csrf_token_is_refused(client: TestClient, demo_registry: Registry) -> None:
    client.get("/")  # the browser has a token cookie
    data = {"ref": "churn/8", "stage": "staging", "confirm": "yes"}
    forged = CsrfSigner(b"another-secret").new_token()
    cookie_token = client.cookies.get(CSRF_COOKIE)
    for extra in ({}, {CSRF_FIELD: "nonsense"}, {CSRF_FIELD: forged}, {CSRF_FIELD: cookie_token + "x"}):
        r = client.post("/action/transition", data={**data, **extra}, follow_redirects=False)
        assert r.status_code == 403, extra
        assert "CSRF" in r.text
    # the right token, but from a page of another origin
    r = client.post(
        "/action/transition",
        data={**data, CSRF_FIELD: cookie_token},
        headers={"origin": "http://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    # the right token without the cookie (another browser)
    fresh = TestClient(client.app)
    r = fresh.post("/action/transition", data={**data, CSRF_FIELD: cookie_token}, follow_redirects=False)
    assert r.status_code == 403
    assert demo_registry.get_version("churn/8").stage == Stage.EXPERIMENTAL
    assert [e.action for e in demo_registry.history("churn", 8)] == ["register"]


def test_the_csrf_cookie_is_strict_and_http_only(client: TestClient) -> None:
    header = client.get("/").headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header


def test_alias_tag_and_description_actions(client: TestClient, demo_registry: Registry) -> None:
    page = "/version/churn/3"
    assert act(client, "set_alias", {"ref": "churn/3", "alias": "candidate"}, page=page).status_code == 303
    assert demo_registry.get_version("churn@candidate").version == 3
    assert act(client, "delete_alias", {"name": "churn", "alias": "candidate"}, page=page).status_code == 303
    assert "candidate" not in demo_registry.get_model("churn").aliases
    assert act(client, "set_tag", {"ref": "churn/3", "key": "reviewed", "value": "yes"}, page=page).status_code == 303
    assert demo_registry.get_version("churn/3").tags["reviewed"] == "yes"
    assert act(client, "remove_tag", {"ref": "churn/3", "key": "reviewed"}, page=page).status_code == 303
    assert "reviewed" not in demo_registry.get_version("churn/3").tags
    assert act(client, "set_description", {"ref": "churn/3", "description": "baseline"}, page=page).status_code == 303
    assert demo_registry.get_version("churn/3").description == "baseline"
    assert (
        act(client, "model_description", {"name": "churn", "description": "new text"}, page="/model/churn").status_code
        == 303
    )
    assert demo_registry.get_model("churn").description == "new text"
    actions = [e.action for e in demo_registry.history("churn")[-6:]]
    assert actions == ["set_alias", "delete_alias", "set_tags", "set_tags", "set_description", "update_model"]


def test_redirect_target_must_be_local(client: TestClient) -> None:
    r = act(client, "set_tag", {"ref": "churn/3", "key": "k", "value": "v", "next": "https://evil.example/"})
    assert r.headers["location"] == "/version/churn/3?done=set_tag"
    r = act(client, "set_tag", {"ref": "churn/3", "key": "k", "value": "w", "next": "//evil.example/x"})
    assert r.headers["location"] == "/version/churn/3?done=set_tag"


def test_read_only_hides_and_refuses_every_change(demo_registry: Registry) -> None:
    with TestClient(create_app(demo_registry, read_only=True)) as c:
        for url in ("/", "/model/churn", "/version/churn/5", "/compare?v=churn/4&v=churn/5", "/audit"):
            page = c.get(url).text
            assert 'method="post"' not in page, url
            assert "read-only" in page
        token = c.cookies.get(CSRF_COOKIE)
        for kind, data in (
            ("transition", {"ref": "churn/8", "stage": "staging"}),
            ("set_description", {"ref": "churn/8", "description": "x"}),
            ("set_alias", {"ref": "churn/8", "alias": "x"}),
        ):
            r = c.post(f"/action/{kind}", data={**data, CSRF_FIELD: token, "confirm": "yes"}, follow_redirects=False)
            assert r.status_code == 403 and "read-only" in r.text
    assert [e.action for e in demo_registry.history("churn", 8)] == ["register"]


# -- escaping and secrets ------------------------------------------------------------------------


def test_user_text_is_escaped_everywhere(tmp_path: Path) -> None:
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
        metrics={"auc": 0.5},
        lineage={"run_url": "javascript:alert(1)", "run_id": XSS},
    )
    reg.update_model("xss", description=XSS)
    reg.transition("xss", 1, "staging", comment=XSS)
    with TestClient(create_app(reg)) as c:
        pages = [
            c.get(u).text
            for u in ("/", "/model/xss", "/version/xss/1", "/compare?v=xss/1&v=xss/1", "/audit", f"/?q={XSS}")
        ]
        confirm = act(c, "set_description", {"ref": "xss/1", "description": XSS}, confirm=False).text
    for page in [*pages, confirm]:
        assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[2]
    assert 'href="javascript:' not in pages[2]
    reg.close()


def test_security_headers(client: TestClient) -> None:
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"


def test_host_header_is_checked_when_serving_loopback(demo_registry: Registry) -> None:
    from modelreg.ui.server import loopback_hosts

    app = create_app(demo_registry, allowed_hosts=loopback_hosts("127.0.0.1", 8421))
    with TestClient(app, base_url="http://127.0.0.1:8421") as c:
        assert c.get("/").status_code == 200
        assert c.get("/", headers={"host": "attacker.example:8421"}).status_code == 400


def test_no_credentials_are_ever_rendered(tmp_path: Path) -> None:
    secret = "FAKE-SECRET-d41d8cd98f00b204"
    reg = Registry(
        metadata=f"sqlite:///{tmp_path / 'reg.db'}",
        artifacts=f"memory://blobs-{tmp_path.name}",
        storage_options={"secret": secret, "key": secret, "token": secret},
    )
    f = tmp_path / "m.bin"
    f.write_bytes(b"weights")
    reg.register("m", f, capture=None, metrics={"auc": 0.7})
    with TestClient(create_app(reg)) as c:
        urls = [
            "/",
            "/model/m",
            "/version/m/1",
            "/compare?v=m/1&v=m/1",
            "/audit",
            "/model/missing",
            "/version/m/9",
            "/nowhere",
            "/download/m/1",
        ]
        for url in urls:
            r = c.get(url)
            assert secret not in r.text, url
            assert secret not in str(r.headers), url
        r = act(c, "transition", {"ref": "m/1", "stage": "production"})
        assert secret not in r.text
    reg.close()


def test_redact_url_removes_user_info_and_secret_parameters() -> None:
    assert redact_url("s3://AKIAXX:hunter2@bucket/reg") == "s3://***@bucket/reg"
    assert "hunter2" not in redact_url("https://acct.blob.core.windows.net/c?sv=1&sig=hunter2&se=2")
    assert redact_url("/home/me/models") == "/home/me/models"


# -- packaging ------------------------------------------------------------------------------------------------


def test_import_modelreg_does_not_import_the_web_stack() -> None:
    code = (
        "import sys, modelreg, modelreg.html, modelreg.ui, modelreg.ui.cli\n"
        "heavy = [m for m in ('starlette', 'jinja2', 'uvicorn', 'python_multipart') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_ui_dependency_names_the_extra() -> None:
    code = (
        "import sys\nsys.modules['uvicorn'] = None\n"
        "from modelreg.errors import MissingDependencyError\n"
        "try:\n    from modelreg.ui import create_app\nexcept MissingDependencyError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # 'pip install "modelreg[ui]"' from PyPI, 'pip install -e ".[ui]"' in a checkout: the extra is named either way
    assert "the web UI needs the 'uvicorn' package" in out
    assert re.search(r'pip install (-e )?"[^"]*\[ui\]"', out), out


# -- governance: approval requests ----------------------------------------------------------------------------

APPROVAL_POLICY = {"gates": {"production": {"approvals": [{"count": 1}]}}}


def test_policy_refusal_is_announced_then_shown_as_it_is(demo_registry: Registry) -> None:
    from modelreg.errors import PolicyViolation

    demo_registry.set_policy(APPROVAL_POLICY, actor="admin")
    gates = demo_registry.check_transition("churn/7", "production")
    with pytest.raises(PolicyViolation) as info:
        demo_registry.transition("churn", 7, "production", actor="ben")
    with TestClient(create_app(demo_registry, actor="ben")) as c:
        confirm = act(c, "transition", {"ref": "churn/7", "stage": "production"}, confirm=False)
        assert f"The policy will refuse this: {escape(gates[0])}" in confirm.text
        r = act(c, "transition", {"ref": "churn/7", "stage": "production"})
    assert r.status_code == 403
    assert f'id="error-message">{escape(str(info.value))}</p>' in r.text
    assert demo_registry.get_version("churn/7").stage == Stage.STAGING


def test_requests_page_approve_and_reject(demo_registry: Registry) -> None:
    demo_registry.set_policy(APPROVAL_POLICY, actor="admin")
    req = demo_registry.request_transition("churn/7", "production", "best offline auc", actor="ana")
    other = demo_registry.request_transition("churn/6", "production", actor="ana")
    with TestClient(create_app(demo_registry, actor="ben")) as c:
        page = c.get("/requests").text
        assert req.id in page and other.id in page and "best offline auc" in page
        assert page.count('action="/action/approve"') == 2
        assert req.id in c.get("/model/churn").text and req.id not in c.get("/version/churn/5").text
        confirm = act(c, "approve", {"request_id": req.id}, page="/requests", confirm=False).text
        assert f"Approve request {req.id}: move churn/7 from staging to production, requested by ana." in confirm
        done = act(c, "approve", {"request_id": req.id}, page="/requests")
        assert done.headers["location"] == "/requests?done=approve_completed"
        assert "every gate is met" in c.get(done.headers["location"]).text
        assert act(c, "reject", {"request_id": other.id}, page="/requests").status_code == 303
        closed = c.get("/requests", params={"status": "all"}).text
        assert "completed" in closed and "rejected" in closed
        assert "No pending requests" in c.get("/requests").text
    assert demo_registry.get_version("churn/7").stage == Stage.PRODUCTION
    assert demo_registry.get_request(other.id).status == "rejected"
    last = demo_registry.history("churn", 7)[-1]
    assert last.after["approved_by"] == ["ben"] and last.after["requested_by"] == "ana"


def test_request_from_the_ui_then_withdraw_it(demo_registry: Registry) -> None:
    demo_registry.set_policy(APPROVAL_POLICY, actor="admin")
    with TestClient(create_app(demo_registry, actor="ben")) as c:
        r = act(c, "request_transition", {"ref": "churn/3", "stage": "production", "comment": "please"})
        assert r.headers["location"] == "/version/churn/3?done=request_transition"
        [req] = demo_registry.list_requests(model="churn")
        assert (req.version, req.requester, req.comment) == (3, "ben", "please")
        assert req.id in c.get("/version/churn/3").text
        assert 'action="/action/cancel_request"' in c.get("/requests").text
        assert act(c, "cancel_request", {"request_id": req.id}, page="/requests").status_code == 303
    assert demo_registry.get_request(req.id).status == "cancelled"


def test_approving_your_own_request_shows_the_policy_message(demo_registry: Registry) -> None:
    from modelreg.errors import ModelregError

    demo_registry.set_policy(APPROVAL_POLICY, actor="admin")
    req = demo_registry.request_transition("churn/7", "production", actor="ben")
    with pytest.raises(ModelregError) as info:
        demo_registry.approve(req.id, actor="ben")
    with TestClient(create_app(demo_registry, actor="ben")) as c:
        r = act(c, "approve", {"request_id": req.id}, page="/requests")
    assert r.status_code in (403, 409)
    assert f'id="error-message">{escape(str(info.value))}</p>' in r.text


# -- the command -------------------------------------------------------------------------------------------------


def test_modelreg_ui_command_serves_on_loopback(demo_registry: Registry, reg_path: Path) -> None:
    """`modelreg ui` (through the main CLI) binds 127.0.0.1 by default and honours --read-only."""
    import os
    import queue
    import threading
    import urllib.error
    import urllib.request

    env = {**os.environ, "MODELREG_ACTOR": "cli-user"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "--registry", str(reg_path), "ui", "--port", "0", "--read-only"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
        first = lines.get(timeout=60)
        m = re.fullmatch(r"modelreg ui: serving (.+) \(read-only\) at (http://127\.0\.0\.1:\d+/)\n", first)
        assert m, first
        assert m.group(1) == str(reg_path)
        with urllib.request.urlopen(m.group(2) + "model/churn", timeout=30) as r:
            assert r.status == 200 and b"churn" in r.read()
        req = urllib.request.Request(m.group(2) + "action/transition", data=b"ref=churn/8&stage=staging&confirm=yes")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        info.value.close()
        assert info.value.code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert demo_registry.get_version("churn/8").stage == Stage.EXPERIMENTAL


# -- first hour: compare wording, request forms, location, saved models ----------------------------------------


def test_compare_summary_follows_the_column_order(client: TestClient, demo_registry: Registry) -> None:
    refs = ["churn/3", "churn/4", "churn/7"]
    page = client.get("/compare", params=[("v", r) for r in refs]).text
    head = page.split('id="compare-table"', 1)[1].split("</thead>", 1)[0]
    assert re.findall(r'href="/version/([^"]+)"', head) == refs
    summary = page.split('id="compare-summary"', 1)[1].split("</ul>", 1)[0]
    pairs = re.findall(r"<li><strong>([^<]+)</strong> vs <strong>([^<]+)</strong>", summary)
    assert pairs == [("churn/3", "churn/4"), ("churn/3", "churn/7")]  # first column vs each later one, in order
    for (a, b), item in zip(pairs, re.findall(r"<li>.*?</li>", summary, flags=re.DOTALL), strict=True):
        diff = demo_registry.compare(a, b)
        assert f"{len(diff.metrics)} metrics, {len(diff.params)} params" in re.sub(r"\s+", " ", item)


def test_empty_compare_page_points_at_the_form_above(client: TestClient) -> None:
    page = client.get("/compare").text
    assert "below" not in page
    message = re.search(r'<p class="empty">([^<]+)</p>', page).group(1)
    assert "boxes above" in message
    assert page.index('id="compare-refs"') < page.index('<p class="empty">')  # the form does come first


def test_no_request_form_when_the_policy_asks_for_no_approval(client: TestClient) -> None:
    page = client.get("/version/churn/8").text
    assert 'id="request-form"' not in page and "Request approval" not in page
    options = re.findall(r'<option value="(\w+)">move to', page.split('id="transition-form"', 1)[1])
    assert options == ["staging", "production", "archived"]


def test_request_form_only_for_the_stages_that_need_approval(demo_registry: Registry) -> None:
    demo_registry.set_policy(
        {
            "groups": {"risk": ["rita"]},
            "gates": {
                "production": {"approvals": [{"count": 2}, {"count": 1, "group": "risk"}]},
                "staging": {"metrics": ["metrics.auc >= 0.8"]},  # a gate, but no approval
            },
        },
        actor="admin",
    )
    with TestClient(create_app(demo_registry)) as c:
        page = c.get("/version/churn/8").text
        direct = re.findall(r'<option value="(\w+)">move to', page.split('id="transition-form"', 1)[1])
        assert direct == ["staging", "archived"]  # production would be refused: it needs approvals
        form = page.split('id="request-form"', 1)[1].split("</form>", 1)[0]
        assert re.findall(r'<option value="(\w+)">ask to move to', form) == ["production"]
        note = re.sub(r"<[^>]+>", "", page.split('id="approval-note">', 1)[1].split("</p>", 1)[0])
        assert "Moving to production needs 2 approvals and 1 approval from group &#39;risk&#39;" in note
        # from production, where no target needs approval, there is no request form at all
        prod = c.get("/version/churn/5").text
        assert 'id="request-form"' not in prod and 'id="transition-form"' in prod
        # the request itself works as before
        r = act(c, "request_transition", {"ref": "churn/8", "stage": "production"})
        assert r.status_code == 303
    assert [q.version for q in demo_registry.list_requests(model="churn")] == [8]


def test_header_keeps_every_slash_of_the_location(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "reg.db"
    db.parent.mkdir()
    reg = Registry(metadata=f"sqlite:///{db}", artifacts=str(tmp_path / "blobs"))
    assert reg.metadata.url.startswith("sqlite:////")
    with TestClient(create_app(reg)) as c:
        shown = re.search(r'<span class="location"[^>]*>([^<]+)</span>', c.get("/").text).group(1)
    assert shown == f"sqlite:///{db} + {tmp_path / 'blobs'}"
    assert shown.startswith("sqlite:////")
    reg.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:////home/me/registry/modelreg.db", "sqlite:////home/me/registry/modelreg.db"),
        ("sqlite:///relative/modelreg.db", "sqlite:///relative/modelreg.db"),
        ("file:///srv/models", "file:///srv/models"),
        ("memory://", "memory://"),
        ("s3://bucket/reg", "s3://bucket/reg"),
        ("s3://KEY:secret@bucket/reg", "s3://***@bucket/reg"),
        ("az://c/reg?sv=2024&sig=abc#frag", "az://c/reg?sv=2024&sig=***#frag"),
        ("C:\\Users\\me\\models", "C:\\Users\\me\\models"),
        ("/home/me/models", "/home/me/models"),
    ],
)
def test_redact_url_keeps_everything_but_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_version_page_shows_the_saved_model(demo_registry: Registry, tmp_path: Path) -> None:
    from tests.ui.demo import add_model_version, iris_model_info

    info = iris_model_info(unsafe=True)
    mv = add_model_version(demo_registry, "iris", tmp_path / "w", info)
    with TestClient(create_app(demo_registry)) as c:
        page = c.get(f"/version/{mv.ref}").text
        plain = c.get("/version/churn/5").text
    section = page.split('id="model-info"', 1)[1].split("</section>", 1)[0]
    assert '<code id="model-flavor">sklearn</code>' in section
    assert '<code id="model-format">joblib</code> in <code class="wrap">model/model.joblib</code>' in section
    assert "sklearn.ensemble.RandomForestClassifier" in section
    loading = section.split('id="model-loading">', 1)[1].split("</dd>", 1)[0]
    assert "unsafe" in loading and "run code" in loading
    libraries = section.split('id="model-libraries">', 1)[1].split("</dd>", 1)[0]
    assert re.findall(r"<code>([^<]+)</code>", libraries) == ["numpy 2.3.1", "scikit-learn 1.7.2"]
    assert "scikit-learn==1.7.2 numpy==2.3.1" in section
    rows = rows_of(section, "signature")
    assert len(rows) == len(info.signature.inputs) + len(info.signature.outputs) == 5
    assert "<code>sepal_length</code>" in rows[0] and "<code>float64</code>" in rows[0] and "input" in rows[0]
    assert "output" in rows[-1] and "(unnamed)" in rows[-1] and "(any)" in rows[-1]
    assert 'id="model-info"' not in plain  # a version of plain files has no such section


def test_saved_model_text_is_escaped_and_a_safe_model_says_so(demo_registry: Registry, tmp_path: Path) -> None:
    from tests.ui.demo import add_model_version, iris_model_info

    mv = add_model_version(demo_registry, "iris", tmp_path / "w", iris_model_info(unsafe=False, text=XSS))
    with TestClient(create_app(demo_registry)) as c:
        page = c.get(f"/version/{mv.ref}").text
    assert "<script>alert(1)" not in page
    section = page.split('id="model-info"', 1)[1].split("</section>", 1)[0]
    assert section.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 6  # class, a library, four columns
    loading = section.split('id="model-loading">', 1)[1].split("</dd>", 1)[0]
    assert "safe" in loading and "unsafe" not in loading


def test_version_page_shows_the_usage_log(demo_registry: Registry) -> None:
    demo_registry.fetch("churn/5", record_use=True, purpose=XSS)
    demo_registry.fetch("churn/5", record_use=True, purpose="nightly batch")
    with TestClient(create_app(demo_registry)) as c:
        page = c.get("/version/churn/5").text
        other = c.get("/version/churn/4").text
    section = page.split('id="usage"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr><td class=\"nowrap\">.*?</tr>", section, re.DOTALL)
    assert len(rows) == 2 and "nightly batch" in rows[0]  # the newest first
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in rows[1]
    assert "<code>fetch</code>" in rows[0] and str(os.getpid()) in rows[0]
    assert 'id="usage"' not in other  # no records: no section
