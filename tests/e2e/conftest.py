"""Fixtures for the end-to-end tests: one live `streamlit run app.py` in sandbox mode per session, and
Debian's Chromium driven by Playwright.

The server runs exactly as `make run` does, with a temporary DATA_DIR and SQLite database, no SnapTrade
credentials (so app.py starts the embedded emulator) and APP_BASE_URL set to the server itself, so the
portal's redirect and the emulator's webhooks reach it. SANDBOX_ADMIN_TOKEN makes the emulator's admin
API (`/__sandbox__/…`) usable from the tests. When a test fails, the tail of the server log is attached
to its report and every open page is screenshotted into test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from core.settings import Settings
from tests.e2e.ui import ARTIFACTS, ROOT, VIEWPORT

CHROMIUM = "/usr/bin/chromium"
# --no-sandbox: we run as root. The rest keeps Chromium from calling home on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
STARTUP_TIMEOUT = 90.0


@dataclass
class LiveApp:
    """A running `streamlit run app.py` and the SnapTrade emulator it embeds."""

    base_url: str
    sandbox_url: str
    admin_token: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen = field(repr=False)

    # --- the emulator's admin API (README: answers are {"result": …})
    def sandbox_get(self, control: str, **params: Any) -> Any:
        r = requests.get(f"{self.sandbox_url}/__sandbox__/{control}", timeout=30,
                         params={k: json.dumps(v) if not isinstance(v, str) else v for k, v in params.items()},
                         headers={"X-Sandbox-Admin-Token": self.admin_token})  # fmt: skip
        r.raise_for_status()
        return r.json()["result"]

    def sandbox_post(self, control: str, **kwargs: Any) -> Any:
        r = requests.post(f"{self.sandbox_url}/__sandbox__/{control}", json=kwargs, timeout=30,
                          headers={"X-Sandbox-Admin-Token": self.admin_token})  # fmt: skip
        r.raise_for_status()
        return r.json()["result"]

    def health(self) -> dict[str, Any]:
        r = requests.get(f"{self.base_url}/api/health", timeout=10)
        r.raise_for_status()
        return r.json()

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """`python -m core …` against the live app's database and embedded emulator, as an operator would."""
        port = int(self.base_url.rsplit(":", 1)[1])
        return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, input=stdin, capture_output=True,
                              text=True, timeout=180, env=_server_env(self.data_dir, port, self.admin_token))  # fmt: skip

    def log_tail(self, lines: int = 150) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(server log unreadable: {exc})"
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env(data_dir: Path, port: int, admin_token: str) -> dict[str, str]:
    # Nothing of the caller's app configuration leaks in (a SNAPTRADE_* pair would leave sandbox mode).
    app_vars = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in app_vars and not k.upper().startswith("SNAPTRADE_")}
    env.update(
        DATA_DIR=str(data_dir),
        DATABASE_URL=f"sqlite:///{data_dir / 'e2e.db'}",
        APP_BASE_URL=f"http://127.0.0.1:{port}",
        SANDBOX_ADMIN_TOKEN=admin_token,
        # Explicitly empty: wins over a developer's .env, so the app is always in sandbox mode.
        SNAPTRADE_CLIENT_ID="",
        SNAPTRADE_CONSUMER_KEY="",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


def _wait_until_ready(proc: subprocess.Popen, base_url: str, endpoint_file: Path, log_path: Path) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode} during start-up:\n"
                               f"{log_path.read_text(errors='replace')}")  # fmt: skip
        try:
            st_health = requests.get(f"{base_url}/_stcore/health", timeout=2)
            api_health = requests.get(f"{base_url}/api/health", timeout=2)
            if st_health.ok and st_health.text.strip() == "ok" and api_health.ok and endpoint_file.exists():
                return json.loads(endpoint_file.read_text())
            last = f"/_stcore/health {st_health.status_code}, /api/health {api_health.status_code}, " \
                   f"endpoint file {'present' if endpoint_file.exists() else 'absent'}"  # fmt: skip
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise RuntimeError(
        f"streamlit not ready after {STARTUP_TIMEOUT:.0f} s ({last}):\n{log_path.read_text(errors='replace')}"
    )


@pytest.fixture(scope="session")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    data_dir = tmp_path_factory.mktemp("e2e-data")
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    admin_token = secrets.token_urlsafe(18)
    log_path = data_dir / "streamlit.log"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true", f"--server.port={port}",
           "--server.address=127.0.0.1", "--browser.gatherUsageStats=false"]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_server_env(data_dir, port, admin_token), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    app = None
    try:
        endpoint = _wait_until_ready(proc, base_url, data_dir / "sandbox_endpoint.json", log_path)
        app = LiveApp(base_url=base_url, sandbox_url=endpoint["base_url"].rstrip("/"), admin_token=admin_token,
                      data_dir=data_dir, log_path=log_path, proc=proc)  # fmt: skip
        yield app
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if log_path.exists():
            (ARTIFACTS / "streamlit-server.log").write_bytes(log_path.read_bytes())


# --- browser ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/e2e/, emptied of the previous session's screenshots and exports."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob("*.png"), *ARTIFACTS.glob("*.csv")]:
        old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent (install the Debian package 'chromium'): browser e2e tests skipped")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # Streamlit reruns: the 5 s default is tight on a busy machine
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_context(browser, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Factory of fresh browser contexts (separate cookies: one per signed-in user). JS errors are collected
    on `context.page_errors`; on failure every open page is screenshotted as FAILED-<test>-<n>.png."""
    contexts: list[Any] = []

    def make(**kwargs: Any) -> Any:
        ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True, **kwargs)
        ctx.set_default_timeout(30_000)
        ctx.page_errors = []  # type: ignore[attr-defined]
        ctx.on("page", lambda page: page.on("pageerror", lambda exc: ctx.page_errors.append(f"{page.url}: {exc}")))
        contexts.append(ctx)
        return ctx

    yield make
    report = getattr(request.node, "rep_call", None)
    n = 0
    for ctx in contexts:
        if report is not None and report.failed:
            for page in ctx.pages:
                n += 1
                try:
                    page.screenshot(path=str(artifacts / f"FAILED-{request.node.name}-{n}.png"), full_page=True)
                except Exception:  # noqa: BLE001 - best effort; the failure itself is what matters
                    pass
        ctx.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
    if report.failed:
        app = getattr(item, "funcargs", {}).get("live_app")
        if isinstance(app, LiveApp):
            report.sections.append(("streamlit server log (last lines)", app.log_tail()))
