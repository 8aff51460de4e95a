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

from bench.harness import ROOT, cpu_seconds, free_port, stop_process

ADMIN_TOKEN = "bench-admin-token"


class RemoteSandbox:
    client_id = "BENCH-CLIENT"
    consumer_key = "bench-consumer-key-0123456789"

    def __init__(self, seed: int = 7):
        self.seed, self.port = seed, free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RemoteSandbox:
        cmd = [sys.executable, "-m", "sandbox", "--port", str(self.port), "--client-id", self.client_id,
               "--consumer-key", self.consumer_key, "--admin-token", ADMIN_TOKEN, "--seed", str(self.seed)]  # fmt: skip
        self._proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self._proc.stdout.readline().decode()  # type: ignore[union-attr]
        if "listening" not in line:
            self.stop()
            raise RuntimeError(f"sandbox did not start: {line!r}")
        return self

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None

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

    def cpu_seconds(self) -> float:
        return cpu_seconds(self._proc.pid if self._proc else None) or 0.0
