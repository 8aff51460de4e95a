"""Benchmark 5: time from navigation to a rendered Transactions table for the heavy user, in Chromium
(Playwright, sync API) against `streamlit run app.py` on the seeded SQLite database.

Each server start gives one cold visit (empty st.cache_data, first run of the page script) and then warm
visits, each in a fresh browser context (a new Streamlit session, nothing in the browser's cache) signed in
with the app's re-login cookie. Each warm visit is followed by visits to the floor (bench/browser_floor.py:
Streamlit alone rendering a 50-row st.dataframe, and its shell without the table), served in the same run,
so the app's time reads as a ratio to what Streamlit itself needs on this machine.

Each warm visit is also repeated as a returning browser: one browser context kept for the whole run, so
Streamlit's scripts, styles and fonts come from its HTTP cache (and V8's code cache) as they do for a trader
who has opened the app before; every visit is still a new tab, hence a new Streamlit session. The floor is
measured the same way. Two untimed visits per server address fill that cache (the second lets Chromium
keep compiled code) before the timed ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.harness import ROOT, free_port, summarize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
TARGET_SECONDS = 2.0
TABLE = '[data-testid="stDataFrame"]'
FLOOR_SCRIPT = "bench/browser_floor.py"


def available() -> str | None:
    """Why the browser benchmark cannot run here, or None when it can."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


class StreamlitServer:
    def __init__(self, database_url: str, data_dir: Path, script: str = "app.py"):
        self.port = free_port()
        self.script = script
        self.database_url = database_url
        self.data_dir = data_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> StreamlitServer:
        env = {**os.environ, "DATABASE_URL": self.database_url, "DATA_DIR": str(self.data_dir), "WORKER_ENABLED": "false",
               "APP_BASE_URL": self.url}  # fmt: skip
        cmd = [sys.executable, "-m", "streamlit", "run", self.script, "--server.headless=true", f"--server.port={self.port}",
               "--server.address=127.0.0.1", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"]  # fmt: skip
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return self
            except OSError:
                time.sleep(0.2)
        log = self.log_tail()
        self.stop()
        raise RuntimeError(f"streamlit did not become healthy: {log}")

    def log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class CpuMeter:
    """CPU seconds spent during one visit by Chromium (all its processes: browser, renderer, GPU, network)
    and by one Streamlit server, read from the processes this benchmark started. On a machine with few
    cores the two compete, so this tells which side a visit's time goes to."""

    def __init__(self, server_pid: int):
        import psutil

        self._psutil = psutil
        self.server_pid = server_pid
        self._start: dict[int, float] = {}

    def _sample(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for proc in self._psutil.Process().children(recursive=True):
            try:
                if proc.pid == self.server_pid or "chrom" in proc.name().lower():
                    t = proc.cpu_times()
                    out[proc.pid] = t.user + t.system
            except self._psutil.Error:
                continue  # exited meanwhile
        return out

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> tuple[float, float]:
        """(Chromium, server) CPU seconds since start(); call before the visit's context closes, since a
        renderer's CPU is lost with its process."""
        now = self._sample()
        spent = {pid: t - self._start.get(pid, 0.0) for pid, t in now.items()}
        server = spent.pop(self.server_pid, 0.0)
        return sum(spent.values()), server


VIEWPORT = {"width": 1400, "height": 1000}
PAGE_ROWS = 50  # the Transactions page's default page size, and the floor's table
PRIMING_VISITS = 2


def _visit(browser, url: str, expect_rows: int, cookie: dict[str, str] | None = None, table: bool = True,
           context=None, meter: CpuMeter | None = None, cpu: list[tuple[float, float]] | None = None
           ) -> tuple[float, float]:  # fmt: skip
    """Seconds from navigation to the page title, and to the table with its 'Rows 1–50 of N' caption, visible
    (to the caption alone when `table` is False). In a fresh browser context unless `context` (a returning
    browser, with its cache) is given; either way in a new tab, so a new Streamlit session."""
    own = context is None
    if own:
        context = browser.new_context(viewport=VIEWPORT)
    page = None
    try:
        if cookie and own:
            context.add_cookies([cookie])
        page = context.new_page()
        if meter is not None:
            meter.start()
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.get_by_role("heading", name="Transactions").first.wait_for(state="visible", timeout=120_000)
        title = time.perf_counter() - t0
        page.get_by_text(f"of {expect_rows:,}", exact=False).first.wait_for(state="visible", timeout=120_000)
        if table:
            page.locator(TABLE).first.wait_for(state="visible", timeout=120_000)
            page.locator(f"{TABLE} canvas").first.wait_for(state="attached", timeout=120_000)
            # The grid's accessible mirror holds the rows once they are rendered: header + one page of 50.
            page.locator(f'{TABLE} [role="grid"][aria-rowcount="{PAGE_ROWS + 1}"]').first.wait_for(
                state="attached", timeout=120_000)
        elapsed = time.perf_counter() - t0
        if meter is not None and cpu is not None:
            cpu.append(meter.stop())
        return title, elapsed
    finally:
        if own:
            context.close()
        elif page is not None:
            page.close()


def run(database_url: str, username: str, expect_rows: int, *, server_starts: int, warm_visits: int,
        workdir: Path, progress=print) -> dict[str, Any]:  # fmt: skip
    from playwright.sync_api import sync_playwright
    from sqlmodel import Session

    from core.accounts import auth
    from core.settings import get_settings
    from core.storage.db import create_db_engine

    engine = create_db_engine(database_url)
    with Session(engine) as s:
        user = auth.get_user(s, username)
        token = auth.issue_session_token(username, user.session_epoch)
    engine.dispose()
    cookie = get_settings().auth_cookie_name
    cold: list[float] = []
    warm: list[float] = []
    titles: list[float] = []
    start_seconds: list[float] = []
    floor_table: list[float] = []
    floor_shell: list[float] = []
    returning: list[float] = []
    floor_returning: list[float] = []
    warm_cpu: list[tuple[float, float]] = []  # (Chromium, server) CPU seconds per warm visit
    floor_cpu: list[tuple[float, float]] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        cache = browser.new_context(viewport=VIEWPORT)  # the returning browser: its cache lives for the whole run
        floor = StreamlitServer(database_url, workdir / "floor-data", script=FLOOR_SCRIPT).start()
        floor_url = f"{floor.url}/?rows={expect_rows}"
        floor_meter = CpuMeter(floor.pid)
        try:
            _visit(browser, floor_url, expect_rows)  # its first script run and imports: not part of the floor
            for _ in range(PRIMING_VISITS):
                _visit(browser, floor_url, expect_rows, context=cache)
            for i in range(server_starts):
                t0 = time.perf_counter()
                server = StreamlitServer(database_url, workdir / f"app-data-{i}").start()
                start_seconds.append(time.perf_counter() - t0)
                app_url, login = f"{server.url}/transactions", {"name": cookie, "value": token, "url": server.url}
                app_meter = CpuMeter(server.pid)
                try:
                    title, table = _visit(browser, app_url, expect_rows, login)
                    cold.append(table)
                    cache.add_cookies([login])
                    for _ in range(PRIMING_VISITS):  # a new port is a new origin: its cache starts empty
                        _visit(browser, app_url, expect_rows, context=cache)
                    for _ in range(warm_visits):  # interleaved, so the app and its floor share the machine's mood
                        title, table = _visit(browser, app_url, expect_rows, login, meter=app_meter, cpu=warm_cpu)
                        titles.append(title)
                        warm.append(table)
                        floor_table.append(_visit(browser, floor_url, expect_rows, meter=floor_meter, cpu=floor_cpu)[1])
                        floor_shell.append(_visit(browser, f"{floor_url}&table=0", expect_rows, table=False)[1])
                        returning.append(_visit(browser, app_url, expect_rows, context=cache)[1])
                        floor_returning.append(_visit(browser, floor_url, expect_rows, context=cache)[1])
                except Exception as exc:
                    raise RuntimeError(f"browser visit failed: {exc}; server log: {server.log_tail()} "
                                       f"floor log: {floor.log_tail()}") from exc  # fmt: skip
                finally:
                    server.stop()
                progress(
                    f"  browser: server start {i + 1}: cold {cold[-1]:.2f} s, warm {', '.join(f'{w:.2f}' for w in warm[-warm_visits:])} s"
                    f" (floor: table {', '.join(f'{w:.2f}' for w in floor_table[-warm_visits:])} s);"
                    f" returning browser {', '.join(f'{w:.2f}' for w in returning[-warm_visits:])} s"
                    f" (floor {', '.join(f'{w:.2f}' for w in floor_returning[-warm_visits:])} s)"
                )
        finally:
            floor.stop()
            browser.close()
    return {"rows": expect_rows, "target_seconds": TARGET_SECONDS, "cold_seconds": summarize(cold),
            "warm_seconds": summarize(warm), "warm_title_seconds": summarize(titles), "server_start_seconds": summarize(start_seconds),
            "floor_table_seconds": summarize(floor_table), "floor_shell_seconds": summarize(floor_shell),
            "returning_seconds": summarize(returning), "floor_returning_seconds": summarize(floor_returning),
            "priming_visits": PRIMING_VISITS, "page_rows": PAGE_ROWS, "cpus": os.cpu_count(),
            "warm_browser_cpu_seconds": summarize([c[0] for c in warm_cpu]),
            "warm_server_cpu_seconds": summarize([c[1] for c in warm_cpu]),
            "floor_browser_cpu_seconds": summarize([c[0] for c in floor_cpu]),
            "floor_server_cpu_seconds": summarize([c[1] for c in floor_cpu]),
            "server_starts": server_starts, "warm_visits_per_start": warm_visits}  # fmt: skip
