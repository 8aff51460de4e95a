"""The SnapTrade sandbox in its own process (`python -m sandbox`), driven through its admin HTTP API,
so the CPU a sync spends can be measured without the emulator's share.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from typing import Any
from urllib.parse import urlencode

from bench.harness import ROOT, free_port

CLIENT_ID = "BENCH-CLIENT"
CONSUMER_KEY = "bench-consumer-key-0123456789"
ADMIN_TOKEN = "bench-admin-token"


class RemoteSandbox:
    def __init__(self, seed: int = 7, port: int | None = None):
        self.seed = seed
        self.port = port or free_port()
        self.client_id = CLIENT_ID
        self.consumer_key = CONSUMER_KEY
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> RemoteSandbox:
        cmd = [sys.executable, "-m", "sandbox", "--port", str(self.port), "--client-id", CLIENT_ID,
               "--consumer-key", CONSUMER_KEY, "--admin-token", ADMIN_TOKEN, "--seed", str(self.seed)]  # fmt: skip
        self._proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().decode()
        if "listening" not in line:
            self.stop()
            raise RuntimeError(f"sandbox did not start: {line!r}")
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None

    def __enter__(self) -> RemoteSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- admin API --------------------------------------------------------------------------------
    def _request(self, method: str, op: str, body: bytes | None = None, query: str = "") -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            path = f"/__sandbox__/{op}" + (f"?{query}" if query else "")
            conn.request(method, path, body=body, headers={"X-Sandbox-Admin-Token": ADMIN_TOKEN})
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"null")
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError(f"sandbox admin {op}: {resp.status} {data}")
        return data["result"]

    def control(self, op: str, **kwargs: Any) -> Any:
        return self._request("POST", op, json.dumps(kwargs).encode())

    def read(self, op: str, **params: Any) -> Any:
        return self._request("GET", op, query=urlencode({k: json.dumps(v) for k, v in params.items()}))

    def create_connection(self, snaptrade_user_id: str, broker: str, history_size: int) -> str:
        return self.control("create_connection", user_id=snaptrade_user_id, broker=broker, history_size=history_size)

    def accounts(self, snaptrade_user_id: str) -> list[dict[str, Any]]:
        return self.read("accounts", user_id=snaptrade_user_id)

    def request_counts(self) -> dict[str, int]:
        return self.read("request_counts")

    def reset_request_log(self) -> None:
        self.control("reset_request_log")

    def cpu_seconds(self) -> float:
        import psutil

        t = psutil.Process(self._proc.pid).cpu_times() if self._proc else None
        return (t.user + t.system) if t else 0.0
