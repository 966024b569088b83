"""End-to-end tests: the real ``modelreg ui`` server in a subprocess, driven by Debian's Chromium via Playwright.

Screenshots of every main page go to ``test-artifacts/screenshots/``. With
``MODELREG_DOCS_SCREENSHOTS=1`` the ones used by docs/ui.md are also saved to
``docs/img/``. Chromium is ``/usr/bin/chromium`` (Debian's package) unless
``MODELREG_CHROMIUM`` names another binary; Playwright never downloads a browser.
With ``CI=true`` a missing Chromium or Playwright fails these tests instead of
skipping them.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelreg import InvalidTransitionError, Registry, Stage
from tests.ui.demo import XSS, populate

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_IMG = ROOT / "docs" / "img"
DOCS_SHOTS = {"models", "model", "version", "compare", "audit", "confirm", "error", "read-only", "requests"}
CHROMIUM = os.environ.get("MODELREG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
ACTOR = "web-user"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser tests must run, not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable('Playwright is not installed: pip install -e ".[dev]"')
    if not Path(CHROMIUM).exists():
        _unavailable(f"Chromium is not at {CHROMIUM}: apt-get install chromium (the noxfile does this)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Server:
    url: str
    path: Path
    proc: subprocess.Popen

    def registry(self) -> Registry:
        return Registry(self.path)


def _start(path: Path, home: Path, *extra: str) -> Server:
    env = {**os.environ, "MODELREG_ACTOR": ACTOR, "MODELREG_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("MODELREG_URI", None)
    # a relative --registry keeps this machine's temporary paths out of the screenshots
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg.ui", "--registry", path.name, "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=path.parent,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        first = lines.get(timeout=60)
    except queue.Empty:
        proc.kill()
        pytest.fail(f"modelreg ui did not start: {proc.stderr.read()}")
    m = re.search(r"at (http://127\.0\.0\.1:\d+/)", first)
    if not m:
        proc.kill()
        pytest.fail(f"unexpected first line from modelreg ui: {first!r}; stderr: {proc.stderr.read()}")
    url = m.group(1)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)
    return Server(url.rstrip("/"), path, proc)


def _stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
    err = server.proc.stderr.read()
    server.proc.stdout.close()
    server.proc.stderr.close()
    assert "Traceback" not in err, f"the server logged an error:\n{err}"


@pytest.fixture(scope="module")
def registry_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ui-e2e")
    reg = Registry(base / "models", actor="setup")
    populate(reg, base / "work", spread=True)
    reg.close()
    return base / "models"


@pytest.fixture(scope="module")
def server(registry_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = _start(registry_path, tmp_path_factory.mktemp("home"))
    yield s
    _stop(s)


@pytest.fixture(scope="module")
def ro_server(registry_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = _start(registry_path, tmp_path_factory.mktemp("home"), "--read-only")
    yield s
    _stop(s)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(20_000)
    pg = context.new_page()
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.csp_errors = []  # type: ignore[attr-defined]

    def on_dialog(d: Any) -> None:
        pg.dialogs.append(d.message)  # type: ignore[attr-defined]
        d.dismiss()

    pg.on("dialog", on_dialog)
    pg.on("console", lambda m: pg.csp_errors.append(m.text) if "Content Security Policy" in m.text else None)  # type: ignore[attr-defined]
    yield pg
    assert pg.csp_errors == []  # type: ignore[attr-defined]
    context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    target = SHOTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 5000
    if os.environ.get("MODELREG_DOCS_SCREENSHOTS") == "1" and name in DOCS_SHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)  # the docs show the first screenful only
        page.screenshot(path=str(DOCS_IMG / f"ui-{name}.png"), full_page=False)


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as _expect

    return _expect(locator)


# -- scenarios -------------------------------------------------------------------------------------------


def test_browse_models_model_and_version(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    rows = page.locator("#models-table tbody tr")
    expect(rows).to_have_count(3)
    shot(page, "models")
    page.get_by_role("link", name="churn", exact=True).click()
    expect(page).to_have_url(server.url + "/model/churn")
    expect(page.locator("#model-name")).to_have_text("churn")
    expect(page.locator("#versions-table tbody tr")).to_have_count(8)
    expect(page.locator("svg.chart circle")).to_have_count(8)
    expect(page.locator("svg.timeline")).to_be_visible()
    shot(page, "model")
    page.locator("#v5").get_by_role("link", name="v5").click()
    expect(page).to_have_url(server.url + "/version/churn/5")
    expect(page.locator("#version-title")).to_contain_text("production")
    expect(page.locator("#version-title")).to_contain_text("@champion")
    with server.registry() as reg:
        mv = reg.get_version("churn/5")
    expect(page.locator("#files")).to_contain_text(mv.digest.split(":")[1][:16])
    expect(page.locator("#lineage")).to_contain_text(mv.lineage.run_id)
    page.locator("#metric-history summary").click()
    expect(page.locator("#metric-history tbody tr")).to_have_count(len(mv.metrics) + 4)
    shot(page, "version")


def test_search_by_text_and_by_query(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    page.locator("#search-box").fill("fraud")
    page.locator("#search-box").press("Enter")
    expect(page.locator("#models-table tbody tr")).to_have_count(1)
    expect(page.locator("#models-table")).to_contain_text("fraud/detector")
    query = "metrics.auc > 0.895"
    page.locator("#search-box").fill(query)
    page.locator("#search-box").press("Enter")
    with server.registry() as reg:
        expected = reg.search(query)
    assert expected
    expect(page.locator("#search-results tbody tr")).to_have_count(len(expected))
    for mv in expected:
        expect(page.locator("#search-results")).to_contain_text(f"v{mv.version}")
    shot(page, "search")
    page.locator("#search-box").fill("metrics.auc >")
    page.locator("#search-box").press("Enter")
    expect(page.locator("#search-error")).to_contain_text("in search query")


def test_register_via_the_api_then_see_it(page: Any, server: Server, tmp_path: Path) -> None:
    page.goto(server.url + "/")
    expect(page.locator("#models-table")).not_to_contain_text("iris")
    f = tmp_path / "iris.onnx"
    f.write_bytes(b"iris weights" * 100)
    with server.registry() as reg:
        mv = reg.register("iris", f, capture=None, metrics={"accuracy": 0.97}, actor="notebook")
    page.reload()
    expect(page.locator("#models-table tbody tr")).to_have_count(4)
    page.get_by_role("link", name="iris", exact=True).click()
    expect(page.locator("#versions-table tbody tr")).to_have_count(1)
    page.locator("#v1").get_by_role("link", name="v1").click()
    expect(page.locator("#version-title")).to_contain_text("experimental")
    expect(page.locator("#files")).to_contain_text(mv.digest.split(":")[1][:16])
    expect(page.locator("#metrics")).to_contain_text("0.97")


def test_transition_asks_for_confirmation_then_moves_the_version(page: Any, server: Server) -> None:
    page.goto(server.url + "/version/fraud/detector/3")
    expect(page.locator("#version-title")).to_contain_text("staging")
    page.locator("#transition-stage").select_option("production")
    page.locator("#transition-form input[name=comment]").fill("recall +4 points")
    page.locator("#transition-button").click()
    expect(page.locator(".confirm-card")).to_contain_text("Move fraud/detector/3 from staging to production.")
    expect(page.locator(".confirm-card")).to_contain_text("Version 2 is in production now and will move to archived.")
    with server.registry() as reg:
        assert reg.get_version("fraud/detector/3").stage == Stage.STAGING  # not yet
    shot(page, "confirm")
    page.locator("#confirm-button").click()
    expect(page).to_have_url(server.url + "/version/fraud/detector/3?done=transition")
    expect(page.locator(".flash.ok")).to_have_text("Stage changed.")
    expect(page.locator("#version-title")).to_contain_text("production")
    with server.registry() as reg:
        assert reg.get_version("fraud/detector/3").stage == Stage.PRODUCTION
        assert reg.get_version("fraud/detector/2").stage == Stage.ARCHIVED
        last = reg.history("fraud/detector", 3)[-1]
    assert (last.action, last.actor, last.comment) == ("transition", ACTOR, "recall +4 points")


def test_cancel_on_the_confirmation_page_changes_nothing(page: Any, server: Server) -> None:
    page.goto(server.url + "/version/churn/6")
    with server.registry() as reg:
        before = len(reg.history("churn"))
    page.locator("#tag-form input[name=key]").fill("reviewed")
    page.locator("#tag-form input[name=value]").fill("no")
    page.locator("#tag-form button").click()
    expect(page.locator(".confirm-card")).to_contain_text("Set the tag reviewed = 'no' on churn/6.")
    page.locator("#cancel-button").click()
    expect(page).to_have_url(server.url + "/version/churn/6")
    with server.registry() as reg:
        assert "reviewed" not in reg.get_version("churn/6").tags
        assert len(reg.history("churn")) == before


def test_the_registrys_error_is_shown_as_it_is(page: Any, server: Server) -> None:
    page.goto(server.url + "/version/pricing/1")
    page.locator("#transition-stage").select_option("staging")
    page.locator("#transition-button").click()
    expect(page.locator("#confirm-button")).to_be_visible()
    with server.registry() as reg:  # someone else is faster
        reg.transition("pricing", 1, "staging", actor="colleague")
        with pytest.raises(InvalidTransitionError) as info:
            reg.transition("pricing", 1, "staging")
    page.locator("#confirm-button").click()
    expect(page.locator("#error-message")).to_have_text(str(info.value))
    expect(page.locator(".error-card h1")).to_contain_text("409")
    shot(page, "error")


def test_compare_selected_versions(page: Any, server: Server) -> None:
    page.goto(server.url + "/model/churn")
    button = page.locator("#compare-button")
    expect(button).to_be_disabled()
    for v in (7, 5, 4):
        page.locator(f"#v{v} input[type=checkbox]").check()
    expect(button).to_be_enabled()
    expect(page.locator("#compare-hint")).to_have_text("3 versions selected")
    button.click()
    expect(page).to_have_url(re.compile(r"/compare\?v=churn%2F7&v=churn%2F5&v=churn%2F4$"))
    expect(page.locator("#compare-table thead th")).to_have_count(4)
    all_rows = page.locator("#compare-table tbody tr").count()
    shot(page, "compare")
    page.locator("#diff-toggle").click()
    expect(page.locator("#diff-toggle")).to_have_text("Show all rows")
    assert 0 < page.locator("#compare-table tbody tr.differs").count() < all_rows
    assert (
        page.locator("#compare-table tbody tr.differs").count()
        == page.locator("#compare-table tbody tr:not(.section)").count()
    )


def test_audit_log_with_verification_and_actor_filter(page: Any, server: Server) -> None:
    page.goto(server.url + "/audit")
    expect(page.locator("#verify-status")).to_contain_text("verified")
    with server.registry() as reg:
        total = len(reg.history())
        bens = [e for e in reg.history("churn") if e.actor == "ben"]
    expect(page.locator("#audit-table tbody tr")).to_have_count(total)
    shot(page, "audit")
    page.locator("#audit-filter select[name=model]").select_option("churn")
    page.locator("#audit-filter select[name=actor]").select_option("ben")
    page.locator("#audit-filter button").click()
    expect(page.locator("#audit-table tbody tr")).to_have_count(len(bens))


def test_metric_picker_and_sortable_columns(page: Any, server: Server) -> None:
    page.goto(server.url + "/model/churn")
    page.locator("#metric-form select").select_option("f1")  # submits itself (static JS under a strict CSP)
    expect(page.locator("svg.chart")).to_have_attribute("aria-label", "f1 by version")
    page.locator("#versions-table thead").get_by_role("link", name="auc").click()
    expect(page).to_have_url(re.compile(r"sort=metric%3Aauc"))
    with server.registry() as reg:
        best = max(reg.list_versions("churn"), key=lambda v: v.current_metrics["auc"])
    expect(page.locator("#versions-table tbody tr").first).to_have_id(f"v{best.version}")


def test_read_only_server_hides_and_refuses_changes(page: Any, ro_server: Server) -> None:
    page.goto(ro_server.url + "/version/churn/8")
    expect(page.locator("#read-only-badge")).to_be_visible()
    expect(page.locator("#actions")).to_have_count(0)
    expect(page.locator("form[method=post]")).to_have_count(0)
    shot(page, "read-only")
    status, text = page.evaluate(
        """async () => {
            const r = await fetch('/action/transition', {method: 'POST',
                body: new URLSearchParams({ref: 'churn/8', stage: 'staging', confirm: 'yes'})});
            return [r.status, await r.text()];
        }"""
    )
    assert status == 403 and "read-only" in text
    with ro_server.registry() as reg:
        assert reg.get_version("churn/8").stage == Stage.EXPERIMENTAL


def test_user_text_renders_as_text(page: Any, server: Server) -> None:
    with server.registry() as reg:
        reg.set_description("pricing/1", XSS, actor="mallory")
        reg.set_tags("pricing/1", {"note": XSS}, actor="mallory")
    page.goto(server.url + "/version/pricing/1")
    expect(page.locator("#version-description")).to_have_text(XSS)
    expect(page.locator("#tags")).to_contain_text(XSS)
    page.goto(server.url + "/?q=" + XSS)
    expect(page.locator("#search-box")).to_have_value(XSS)
    page.goto(server.url + "/audit?model=pricing")
    expect(page.locator("#audit-table")).to_contain_text("mallory")
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_approval_requests_approve_in_the_browser(page: Any, tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models", actor="setup")
    populate(reg, tmp_path / "work", spread=True)
    reg.set_policy({"gates": {"production": {"approvals": [{"count": 1}]}}}, actor="admin")
    req = reg.request_transition("churn/7", "production", "best offline auc, latency within budget", actor="ana")
    reg.request_transition("fraud/detector/3", "production", actor="chen")
    reg.close()
    server = _start(tmp_path / "models", tmp_path / "home")
    try:
        page.goto(server.url + "/model/churn")
        expect(page.get_by_text(req.id)).to_be_visible()
        page.get_by_role("link", name="Requests").click()
        expect(page.locator("#requests-table tbody tr")).to_have_count(2)
        shot(page, "requests")
        page.locator(f"#requests-table tr:has-text('{req.id}') button:has-text('Approve')").click()
        confirm = page.locator(".confirm-card")
        expect(confirm).to_contain_text(f"Approve request {req.id}: move churn/7 from staging to production")
        page.locator("#confirm-button").click()
        expect(page.locator(".flash.ok")).to_contain_text("every gate is met")
        expect(page.locator("#requests-table tbody tr")).to_have_count(1)
        with server.registry() as reg:
            assert reg.get_version("churn/7").stage == Stage.PRODUCTION
            assert reg.get_request(req.id).approvers == [ACTOR]
    finally:
        _stop(server)
