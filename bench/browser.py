"""Benchmark 5: seconds from navigation to a rendered Transactions table for the heavy user, in Chromium
(Playwright) against `streamlit run app.py`, beside Streamlit alone rendering the same table (the floor,
bench/browser_floor.py) in the same run: cold, warm and returning-browser visits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.harness import ROOT, free_port, stop_process, summarize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
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
        stop_process(self._proc, timeout=15)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class CpuMeter:
    """CPU seconds that Chromium (all its processes) and one Streamlit server spend during a visit."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self._start: dict[int, float] = {}

    def _sample(self) -> dict[int, float]:
        import psutil

        out: dict[int, float] = {}
        for proc in psutil.Process().children(recursive=True):
            try:
                if proc.pid == self.server_pid or "chrom" in proc.name().lower():
                    out[proc.pid] = sum(proc.cpu_times()[:2])
            except psutil.Error:
                continue  # exited meanwhile
        return out

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> tuple[float, float]:
        """(Chromium, server) CPU seconds since start(); before the visit's context closes, since a
        renderer's CPU is lost with its process."""
        spent = {pid: t - self._start.get(pid, 0.0) for pid, t in self._sample().items()}
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
                state="attached", timeout=120_000
            )
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
        token = auth.issue_session_token(username, auth.get_user(s, username).session_epoch)
    engine.dispose()
    t: dict[str, list[float]] = defaultdict(list)  # seconds, or CPU seconds, by figure
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        cache = browser.new_context(viewport=VIEWPORT)  # the returning browser: its cache lives for the whole run
        floor = StreamlitServer(database_url, workdir / "floor-data", script=FLOOR_SCRIPT).start()
        floor_url, floor_meter = f"{floor.url}/?rows={expect_rows}", CpuMeter(floor.pid)
        try:
            _visit(browser, floor_url, expect_rows)  # its first script run and imports: not part of the floor
            for _ in range(PRIMING_VISITS):
                _visit(browser, floor_url, expect_rows, context=cache)
            for i in range(server_starts):
                t0 = time.perf_counter()
                server = StreamlitServer(database_url, workdir / f"app-data-{i}").start()
                t["server_start"].append(time.perf_counter() - t0)
                app_url = f"{server.url}/transactions"
                login = {"name": get_settings().auth_cookie_name, "value": token, "url": server.url}
                app_meter = CpuMeter(server.pid)
                try:
                    t["cold"].append(_visit(browser, app_url, expect_rows, login)[1])
                    cache.add_cookies([login])
                    for _ in range(PRIMING_VISITS):  # a new port is a new origin: its cache starts empty
                        _visit(browser, app_url, expect_rows, context=cache)
                    for _ in range(warm_visits):  # interleaved, so the app and its floor share the machine's mood
                        cpu: list[tuple[float, float]] = []
                        title, table = _visit(browser, app_url, expect_rows, login, meter=app_meter, cpu=cpu)
                        t["warm_title"].append(title)
                        t["warm"].append(table)
                        t["floor_table"].append(_visit(browser, floor_url, expect_rows, meter=floor_meter, cpu=cpu)[1])
                        t["floor_shell"].append(_visit(browser, f"{floor_url}&table=0", expect_rows, table=False)[1])
                        t["returning"].append(_visit(browser, app_url, expect_rows, context=cache)[1])
                        t["floor_returning"].append(_visit(browser, floor_url, expect_rows, context=cache)[1])
                        for who, (chromium, streamlit) in zip(("warm", "floor"), cpu):
                            t[f"{who}_browser_cpu"].append(chromium)
                            t[f"{who}_server_cpu"].append(streamlit)
                except Exception as exc:
                    raise RuntimeError(f"browser visit failed: {exc}; server log: {server.log_tail()} "
                                       f"floor log: {floor.log_tail()}") from exc  # fmt: skip
                finally:
                    server.stop()
                last = {
                    k: ", ".join(f"{x:.2f}" for x in t[k][-warm_visits:]) for k in ("warm", "floor_table", "returning")
                }
                progress(f"  browser: server start {i + 1}: cold {t['cold'][-1]:.2f} s, warm {last['warm']} s "
                         f"(floor {last['floor_table']} s), returning browser {last['returning']} s")  # fmt: skip
        finally:
            floor.stop()
            browser.close()
    return {"rows": expect_rows, "priming_visits": PRIMING_VISITS, "page_rows": PAGE_ROWS, "cpus": os.cpu_count(),
            "server_starts": server_starts, "warm_visits_per_start": warm_visits,
            **{f"{key}_seconds": summarize(values) for key, values in t.items()}}  # fmt: skip
