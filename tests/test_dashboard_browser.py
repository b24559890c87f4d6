"""The Streamlit dashboard in a real browser: `streamlit run dashboards/app.py` on a generated lake, each page
opened in Debian's headless Chromium driven by Playwright (no browser is downloaded).

Each page must show its title as the one h1, render its key element, finish its script run without a
Streamlit exception and without a Python traceback in the browser console. A full-page screenshot of each
page goes to bench/screenshots/ (not committed) for a person to look at.

Skips only when /usr/bin/chromium is missing and PATIENT_INSIGHTS_REQUIRE_BROWSER is not "1"
(scripts/chromium.sh installs it; CI sets the variable).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

# (URL path, page title = the h1 and the st.Page title, key element that must be visible once rendered)
PAGES: list[tuple[str, str, str]] = [
    ("/", "Overview", '[data-testid="stMetric"]'),
    ("/patient", "Patient 360", '[data-testid="stTextInput"]'),
    ("/care_gaps", "Care gaps & segments", '[data-testid="stDataFrame"]'),
    ("/outreach", "Outreach", '[data-testid="stSelectbox"]'),
    ("/sentiment", "Sentiment", '[data-testid="stVegaLiteChart"]'),
    ("/data_quality", "Data quality", '[data-testid="stDataFrame"]'),
    ("/identity_review", "Identity review", '[data-testid="stMetric"]'),
]

REPO = Path(__file__).resolve().parents[1]
APP = Path("dashboards/app.py")  # relative to REPO, the server's working directory
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "bench" / "screenshots"
ROLE = "care_manager"
TAB_TITLE = "patient-insights"
EXCEPTION = '[data-testid="stException"]'

SERVER_START_TIMEOUT_S = 60
PAGE_TIMEOUT_MS = 30_000
# what a Streamlit script run may take after its key element is visible (later elements, last reruns)
SETTLE_TIMEOUT_MS = 15_000

pytestmark = pytest.mark.slow


def _require_chromium() -> None:
    """Skip without the browser, unless PATIENT_INSIGHTS_REQUIRE_BROWSER=1 makes that a failure."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found (scripts/chromium.sh installs it)"
    if os.environ.get("PATIENT_INSIGHTS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} and PATIENT_INSIGHTS_REQUIRE_BROWSER=1")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log: Path, lines: int = 20) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:  # refused, reset, timed out, HTTP errors (URLError is an OSError)
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server's whole process group: SIGTERM, then SIGKILL after 10 s."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def demo_lake(request: pytest.FixtureRequest) -> tuple[Path, Path]:
    """(lake, exports) of the session's generated dashboard lake (tests/conftest.py)."""
    _require_chromium()  # before building the lake, which takes a while
    return request.getfixturevalue("dashboard_lake")


@pytest.fixture(scope="module")
def server(demo_lake: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard served on a free loopback port; yields its base URL (no trailing slash)."""
    lake, exports = demo_lake
    port = _free_port()
    log = tmp_path_factory.mktemp("dashboard_server") / "streamlit.log"
    env = {
        **os.environ,
        "PATIENT_INSIGHTS_LAKE": str(lake),
        "PATIENT_INSIGHTS_EXPORTS": str(exports),
        "PATIENT_INSIGHTS_DASHBOARD_ROLE": ROLE,
    }
    command = [
        str(Path(sys.executable).with_name("streamlit")),
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        # nothing is edited during the test: no watcher thread competing for the two cores
        "--server.fileWatcherType",
        "none",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, ended as one at teardown
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _healthy(f"{base}/_stcore/health"):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode} before answering:\n{_log_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"streamlit did not answer {base}/_stcore/health within {SERVER_START_TIMEOUT_S} s; "
                    f"last lines of {log}:\n{_log_tail(log)}"
                )
            time.sleep(0.5)
        yield base
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    _require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--headless"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.parametrize(("path", "title", "selector"), PAGES, ids=[title for _, title, _ in PAGES])
def test_page_renders(server: str, browser: Browser, path: str, title: str, selector: str) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(server + path)
        page.locator("h1", has_text=title).first.wait_for(state="visible")
        # the key element, or the exception that stopped the script before it (reported below, not timed out)
        page.locator(f"{selector}, {EXCEPTION}").first.wait_for(state="visible")
        # the script run is over: no "Running..." status widget, and the app root not marked running
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=SETTLE_TIMEOUT_MS)
        page.locator('[data-testid="stApp"]:not([data-test-script-state="running"])').wait_for(
            state="attached", timeout=SETTLE_TIMEOUT_MS
        )

        exceptions = page.locator(EXCEPTION)
        assert exceptions.count() == 0, f"{title}: Streamlit exception shown:\n" + "\n---\n".join(
            exceptions.all_inner_texts()
        )
        assert page.locator(selector).first.is_visible(), f"{title}: {selector} is not visible"
        h1s = page.locator("h1").all_inner_texts()
        assert [text.strip() for text in h1s] == [title], f"{title}: expected one h1 {title!r}, got {h1s}"
        assert TAB_TITLE in page.title(), f"{title}: tab title {page.title()!r} lacks {TAB_TITLE!r}"

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{path.strip('/') or 'overview'}.png", full_page=True)
    finally:
        context.close()

    python_errors = [text for text in console_errors if "Traceback" in text or "Exception" in text]
    assert not python_errors, f"{title}: errors in the browser console:\n" + "\n---\n".join(python_errors)


def test_a_care_manager_finds_a_patient_and_opens_the_timeline(
    server: str, browser: Browser, demo_lake: tuple[Path, Path]
) -> None:
    """The care manager's path: type a name, get the header card, open the timeline tab."""
    import polars as pl

    lake, _ = demo_lake
    person = (
        pl.read_parquet(lake / "gold" / "patient_360" / "**" / "*.parquet")
        .drop_nulls(["given", "family"])
        .sort("person_id")
        .row(0, named=True)
    )
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page.goto(server + "/patient")
        search = page.locator('[data-testid="stTextInput"] input').first
        search.fill(f"{person['family']} {person['given'].split()[0]}")
        search.press("Enter")
        header = page.locator("h3", has_text=person["family"]).first
        header.wait_for(state="visible")
        page.get_by_role("tab", name="Timeline").click()
        page.locator('[data-testid="stDataFrame"]').first.wait_for(state="visible")
        assert page.locator(EXCEPTION).count() == 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "patient_found.png", full_page=True)
    finally:
        context.close()
