"""End-to-end tests: the real ``modelreg ui`` server in a subprocess, driven by Debian's Chromium via Playwright.

Every page is also checked at 360 px wide (no sideways scrolling, the whole nav on screen), with
axe-core (``npm ci`` installs it from package.json: no "serious" or "critical" violation), and
from the keyboard alone (tab to each main action and activate it).

Screenshots of every main page go to ``test-artifacts/screenshots/``. With
``MODELREG_DOCS_SCREENSHOTS=1`` the ones used by docs/ui.md are also saved to
``docs/img/``. Chromium is ``/usr/bin/chromium`` (Debian's package) unless
``MODELREG_CHROMIUM`` names another binary; Playwright never downloads a browser.
With ``CI=true`` a missing Chromium, Playwright or axe-core fails these tests instead of
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
from tests.ui.demo import XSS, add_model_version, iris_model_info, populate

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
LONG_ACTOR = "maria.fernanda.rodrigues-example@models.example.com"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1360, "height": 900}
NARROW = {"width": 360, "height": 740}  # a small phone, or a window split in three
APPROVAL_POLICY = {"gates": {"production": {"approvals": [{"count": 1}]}}}


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


def _governed_registry(base: Path) -> Path:
    """The demo registry, a version with a saved model (iris/1), a policy asking one approval for
    production, and two pending requests (churn/7 by ana, fraud/detector/3 by chen)."""
    reg = Registry(base / "models", actor="setup")
    populate(reg, base / "work", spread=True)
    add_model_version(reg, "iris", base / "work", iris_model_info())
    reg.set_policy(APPROVAL_POLICY, actor="admin")
    reg.request_transition("churn/7", "production", "best offline auc", actor="ana")
    reg.request_transition("fraud/detector/3", "production", actor="chen")
    reg.close()
    return base / "models"


@pytest.fixture(scope="module")
def gov_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """For the checks that change nothing (layout, axe); a long location and actor name in the header."""
    path = _governed_registry(tmp_path_factory.mktemp("ui-gov-with-a-long-folder-name"))
    s = _start(path, tmp_path_factory.mktemp("home"), "--registry", str(path), "--actor", LONG_ACTOR)
    yield s
    _stop(s)


@pytest.fixture(scope="module")
def kb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """For the keyboard scenarios, which change things."""
    s = _start(_governed_registry(tmp_path_factory.mktemp("ui-kb")), tmp_path_factory.mktemp("home"))
    yield s
    _stop(s)


def _page(browser: Any, viewport: dict[str, int]) -> tuple[Any, Any]:
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(20_000)
    pg = context.new_page()
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.csp_errors = []  # type: ignore[attr-defined]

    def on_dialog(d: Any) -> None:
        pg.dialogs.append(d.message)  # type: ignore[attr-defined]
        d.dismiss()

    pg.on("dialog", on_dialog)
    pg.on("console", lambda m: pg.csp_errors.append(m.text) if "Content Security Policy" in m.text else None)  # type: ignore[attr-defined]
    return context, pg


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context, pg = _page(browser, DESKTOP)
    yield pg
    assert pg.csp_errors == []  # type: ignore[attr-defined]
    context.close()


@pytest.fixture
def narrow_page(browser: Any) -> Iterator[Any]:
    context, pg = _page(browser, NARROW)
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
            reg.transition("pricing", 1, "staging", strict=True)  # the UI's moves are strict
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


# -- every page: narrow screens and axe-core ---------------------------------------------------------------------

PAGES = {
    "models": "/",
    "search": "/?q=metrics.auc > 0.85",
    "search-error": "/?q=metrics.auc >",
    "model": "/model/churn",
    "version": "/version/churn/7",
    "version-folder": "/version/fraud/detector/3",
    "saved-model": "/version/iris/1",
    "compare": "/compare?v=churn/7&v=churn/5&v=churn/4",
    "compare-empty": "/compare",
    "history": "/audit",
    "history-of-a-model": "/audit?model=churn",
    "requests": "/requests",
    "unknown-model": "/model/nope",
    "unknown-page": "/no/such/page",
}


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """The "serious" and "critical" axe-core violations of the page, every <details> opened first."""
    if not AXE.exists():
        _unavailable("axe-core is not installed: run `npm ci` in the repository root (see package.json)")
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    # evaluated through the DevTools protocol: the page's Content Security Policy does not apply
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))"""
    )
    return violations


def assert_accessible(page: Any) -> None:
    found = axe_violations(page)
    assert found == [], "\n".join(f"{v['impact']} {v['id']}: {v['help']} at {v['nodes']}" for v in found)


def assert_fits(page: Any) -> None:
    """No sideways scrolling, and every link of the nav (and the header) fully on screen and on top."""
    sizes = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert sizes[0] <= sizes[1], f"the page scrolls sideways: {sizes[0]} px of content in {sizes[1]} px"
    width = sizes[1]
    links = page.locator("header.topbar nav a")
    assert links.count() == 4  # Models, Compare, Audit, Requests (the registry has a policy)
    parts = [*(links.nth(i) for i in range(links.count())), page.locator(".brand"), page.locator(".whoami .pill")]
    boxes = []
    for target in parts:
        expect(target).to_be_visible()
        box = target.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (target, box)
        on_top = target.evaluate(
            """el => { const r = el.getBoundingClientRect();
                       return el.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2)); }"""
        )
        assert on_top, f"{target} is covered"
        boxes.append(box)
    for i, a in enumerate(boxes):  # and no two of them overlap
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["width"] <= b["x"] + 0.5
                or b["x"] + b["width"] <= a["x"] + 0.5
                or a["y"] + a["height"] <= b["y"] + 0.5
                or b["y"] + b["height"] <= a["y"] + 0.5
            )
            assert apart, f"header items overlap: {a} and {b}"


@pytest.mark.parametrize("path", list(PAGES.values()), ids=list(PAGES))
def test_every_page_fits_360_px_and_passes_axe(narrow_page: Any, gov_server: Server, path: str) -> None:
    r = narrow_page.goto(gov_server.url + path)
    assert r.status in (200, 400, 404)
    assert_fits(narrow_page)
    name = next(k for k, v in PAGES.items() if v == path)
    shot(narrow_page, f"narrow-{name}")
    assert_accessible(narrow_page)


@pytest.mark.parametrize("path", list(PAGES.values()), ids=list(PAGES))
def test_every_page_passes_axe_on_a_desktop(page: Any, gov_server: Server, path: str) -> None:
    page.goto(gov_server.url + path)
    assert_accessible(page)


def test_confirmation_and_read_only_pages_fit_and_pass_axe(
    narrow_page: Any, page: Any, gov_server: Server, ro_server: Server
) -> None:
    for pg in (narrow_page, page):
        pg.goto(gov_server.url + "/version/pricing/1")
        pg.locator("#transition-button").click()  # shows the confirmation; changes nothing
        expect(pg.locator(".confirm-card")).to_contain_text("Move pricing/1 from experimental to staging.")
        assert_accessible(pg)
        pg.goto(ro_server.url + "/version/churn/8")
        expect(pg.locator("#read-only-badge")).to_be_visible()
        assert_accessible(pg)
    narrow_page.goto(gov_server.url + "/version/pricing/1")
    narrow_page.locator("#transition-button").click()
    expect(narrow_page.locator("#confirm-button")).to_be_visible()
    narrow_page.wait_for_load_state("load")
    assert_fits(narrow_page)
    shot(narrow_page, "narrow-confirm")
    with gov_server.registry() as reg:
        assert reg.get_version("pricing/1").stage == Stage.EXPERIMENTAL


def test_requests_are_cards_with_their_buttons_in_view_at_360_px(narrow_page: Any, gov_server: Server) -> None:
    narrow_page.goto(gov_server.url + "/requests")
    buttons = narrow_page.locator("#requests-table button")
    assert buttons.count() == 4  # approve and reject, for each of the two pending requests
    for i in range(buttons.count()):
        box = buttons.nth(i).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"], box
    # each cell says what it is, the header row being out of sight
    expect(narrow_page.locator("#requests-table thead")).not_to_be_in_viewport()
    label = narrow_page.locator("#request-1 td[data-label=move]").evaluate(
        "td => getComputedStyle(td, '::before').content"
    )
    assert label == '"move"'


def test_the_nav_works_at_360_px(narrow_page: Any, gov_server: Server) -> None:
    narrow_page.goto(gov_server.url + "/version/churn/5")
    for label, path in (("Requests", "/requests"), ("Audit", "/audit"), ("Compare", "/compare"), ("Models", "/")):
        narrow_page.locator("header.topbar nav").get_by_role("link", name=label, exact=True).click()
        expect(narrow_page).to_have_url(gov_server.url + path)
        narrow_page.wait_for_load_state("load")  # the stylesheet too
        expect(narrow_page.locator("header.topbar nav a.active")).to_have_text(label)
        assert_fits(narrow_page)


# -- the keyboard alone -------------------------------------------------------------------------------------------


def focused(page: Any, selector: str) -> bool:
    return bool(page.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector))


def tab_to(page: Any, selector: str, *, limit: int = 250) -> None:
    """Press Tab until the element matching ``selector`` has the focus, and check that the focus shows."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if focused(page, selector):
            style = page.evaluate(
                "() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; }"
            )
            assert style[0] != "none" and style[1] != "0px", f"{selector} has the focus but shows no outline"
            return
    pytest.fail(f"{limit} presses of Tab never reached {selector}")


def confirm_with_keyboard(page: Any, expected: str) -> None:
    expect(page.locator(".confirm-card")).to_contain_text(expected)
    tab_to(page, "#confirm-button")
    page.keyboard.press("Enter")


def test_keyboard_skip_link_search_and_links(page: Any, kb_server: Server) -> None:
    page.goto(kb_server.url + "/")
    page.keyboard.press("Tab")
    assert focused(page, "a.skip-link")
    box = page.locator("a.skip-link").bounding_box()
    assert box is not None and box["y"] >= 0  # shown when focused
    page.keyboard.press("Enter")
    assert focused(page, "main#main")
    tab_to(page, "#search-box")
    page.keyboard.type("fraud")
    page.keyboard.press("Enter")
    expect(page.locator("#models-table tbody tr")).to_have_count(1)
    tab_to(page, '#models-table a[href="/model/fraud/detector"]')
    page.keyboard.press("Enter")
    expect(page).to_have_url(kb_server.url + "/model/fraud/detector")
    tab_to(page, 'header nav a[href="/audit"]')
    page.keyboard.press("Enter")
    expect(page).to_have_url(kb_server.url + "/audit")
    # a filter form: pick with the arrow keys, submit with Enter on its button
    tab_to(page, "#audit-filter select[name=actor]")
    page.keyboard.press("ArrowDown")  # "anyone" -> the first actor
    actor = page.locator("#audit-filter select[name=actor]").input_value()
    assert actor
    tab_to(page, "#audit-filter button")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"actor={re.escape(actor)}"))
    with kb_server.registry() as reg:
        count = sum(1 for e in reg.history() if e.actor == actor)
    expect(page.locator("#audit-table tbody tr")).to_have_count(count)


def test_keyboard_compare_metric_picker_and_details(page: Any, kb_server: Server) -> None:
    page.goto(kb_server.url + "/model/churn")
    tab_to(page, "#metric-form select")
    page.keyboard.press("ArrowDown")  # auc -> f1; the form submits itself
    expect(page.locator("svg.chart")).to_have_attribute("aria-label", "f1 by version")
    tab_to(page, "#v7 input[type=checkbox]")
    page.keyboard.press("Space")
    tab_to(page, "#v5 input[type=checkbox]")
    page.keyboard.press("Space")
    expect(page.locator("#compare-hint")).to_have_text("2 versions selected")
    tab_to(page, "#compare-button")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/compare\?v=churn%2F7&v=churn%2F5$"))
    expect(page.locator("#compare-summary")).to_contain_text("churn/7 vs churn/5")
    tab_to(page, "#diff-toggle")
    page.keyboard.press("Enter")
    expect(page.locator("#diff-toggle")).to_have_text("Show all rows")
    page.goto(kb_server.url + "/version/churn/5")
    tab_to(page, "#metric-history summary")
    page.keyboard.press("Enter")
    expect(page.locator("#metric-history")).to_have_attribute("open", "")
    # a sortable column, then the model's description behind its <summary>
    page.goto(kb_server.url + "/model/churn")
    tab_to(page, '#versions-table thead a.sort[href*="sort=metric%3Aauc"]')
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"sort=metric%3Aauc"))
    tab_to(page, "details.actions summary")
    page.keyboard.press("Enter")
    tab_to(page, "details.actions textarea")
    page.keyboard.press("Control+A")
    page.keyboard.type("edited from the keyboard")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    confirm_with_keyboard(page, "Replace the description of the model churn with:")
    expect(page.locator(".flash.ok")).to_have_text("Model description saved.")
    with kb_server.registry() as reg:
        assert reg.get_model("churn").description == "edited from the keyboard"


def test_keyboard_transition_alias_tag_and_description(page: Any, kb_server: Server) -> None:
    page.goto(kb_server.url + "/version/pricing/1")
    tab_to(page, "#transition-stage")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    expect(page.locator("#transition-stage")).to_have_value("staging")
    page.keyboard.press("Tab")
    assert focused(page, "#transition-form input[name=comment]")
    page.keyboard.type("by keyboard")
    page.keyboard.press("Tab")
    assert focused(page, "#transition-button")
    page.keyboard.press("Enter")
    confirm_with_keyboard(page, "Move pricing/1 from experimental to staging.")
    expect(page.locator(".flash.ok")).to_have_text("Stage changed.")
    # a tag, then Cancel on the confirmation: nothing changes
    tab_to(page, "#tag-form input[name=key]")
    page.keyboard.type("reviewed")
    page.keyboard.press("Tab")
    page.keyboard.type("yes")
    page.keyboard.press("Enter")
    expect(page.locator(".confirm-card")).to_contain_text("Set the tag reviewed = 'yes' on pricing/1.")
    tab_to(page, "#cancel-button")
    page.keyboard.press("Enter")
    expect(page).to_have_url(kb_server.url + "/version/pricing/1")
    # an alias, set then removed
    tab_to(page, "#alias-form input[name=alias]")
    page.keyboard.type("candidate")
    page.keyboard.press("Enter")
    confirm_with_keyboard(page, "Point the alias @candidate at pricing/1.")
    expect(page.locator(".flash.ok")).to_have_text("Alias set.")
    tab_to(page, 'button[form^="unalias-"]')
    page.keyboard.press("Enter")
    confirm_with_keyboard(page, "Remove the alias @candidate of pricing.")
    expect(page.locator(".flash.ok")).to_have_text("Alias removed.")
    # the description
    tab_to(page, "#description-form textarea")
    page.keyboard.press("Control+A")
    page.keyboard.type("typed without a mouse")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    confirm_with_keyboard(page, "Replace the description of pricing/1 with:")
    expect(page.locator(".flash.ok")).to_have_text("Description saved.")
    with kb_server.registry() as reg:
        mv = reg.get_version("pricing/1")
        events = reg.history("pricing", 1)
        aliases = reg.get_model("pricing").aliases
    assert mv.stage == Stage.STAGING and mv.description == "typed without a mouse"
    assert "reviewed" not in mv.tags and "candidate" not in aliases
    assert [e.action for e in events][-4:] == ["transition", "set_alias", "delete_alias", "set_description"]
    assert events[-4].comment == "by keyboard" and {e.actor for e in events[-4:]} == {ACTOR}


def test_keyboard_request_approve_reject_and_withdraw(page: Any, kb_server: Server) -> None:
    page.goto(kb_server.url + "/version/churn/8")
    expect(page.locator("#transition-stage option")).to_have_count(2)  # staging, archived: production needs approval
    tab_to(page, "#request-stage")
    expect(page.locator("#request-stage")).to_have_value("production")
    page.keyboard.press("Tab")
    page.keyboard.type("ready for review")
    tab_to(page, "#request-button")
    page.keyboard.press("Enter")
    confirm_with_keyboard(page, "Ask for approval to move churn/8 to production.")
    expect(page.locator(".flash.ok")).to_have_text("Approval requested.")
    with kb_server.registry() as reg:
        pending = {(r.model, r.version): r.id for r in reg.list_requests("pending")}
    assert set(pending) == {("churn", 7), ("fraud/detector", 3), ("churn", 8)}
    page.goto(kb_server.url + "/requests")
    tab_to(page, f'button[aria-label="Approve request {pending["churn", 7]}"]')
    page.keyboard.press("Enter")
    confirm_with_keyboard(page, f"Approve request {pending['churn', 7]}: move churn/7 from staging to production")
    expect(page.locator(".flash.ok")).to_contain_text("every gate is met")
    tab_to(page, f'button[aria-label="Reject request {pending["fraud/detector", 3]}"]')
    page.keyboard.press("Enter")
    confirm_with_keyboard(page, f"Reject request {pending['fraud/detector', 3]}")
    expect(page.locator(".flash.ok")).to_have_text("Request rejected.")
    tab_to(page, f'button[aria-label="Withdraw request {pending["churn", 8]}"]')
    page.keyboard.press("Enter")
    confirm_with_keyboard(page, f"Withdraw request {pending['churn', 8]}")
    expect(page.locator(".flash.ok")).to_have_text("Request withdrawn.")
    expect(page.locator("#requests-table")).to_contain_text("No pending requests")
    with kb_server.registry() as reg:
        assert reg.get_version("churn/7").stage == Stage.PRODUCTION
        assert reg.get_request(pending["churn", 7]).approvers == [ACTOR]
        assert reg.get_request(pending["fraud/detector", 3]).status == "rejected"
        assert reg.get_request(pending["churn", 8]).status == "cancelled"
        assert reg.get_request(pending["churn", 8]).comment == "ready for review"
