"""Command line: `python -m sandbox --port 8787 [--client-id ID] [--consumer-key KEY] [--seed N] ...`.

Serves until interrupted; prints the credentials to use (generated when not given).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from sandbox.emulator import Sandbox


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox", description="Local SnapTrade API emulator")
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--host", default="127.0.0.1", help="bind address (the SDK rejects 'localhost' hosts)")
    p.add_argument("--client-id")
    p.add_argument("--consumer-key")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--state-file", help="SQLite file that keeps users and connections across restarts")
    p.add_argument("--webhook-url")
    p.add_argument("--admin-token")
    p.add_argument("--history-size", type=int, help="activities per new account (default: 300-600)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )

    sb = Sandbox(
        client_id=args.client_id,
        consumer_key=args.consumer_key,
        seed=args.seed,
        state_file=args.state_file,
        admin_token=args.admin_token,
        webhook_url=args.webhook_url,
        port=args.port,
        host=args.host,
    )
    if args.history_size is not None:
        sb.set_history_size(args.history_size)
    sb.start()
    print(f"SnapTrade sandbox listening on {sb.base_url}", flush=True)
    print(f"SNAPTRADE_CLIENT_ID={sb.client_id}", flush=True)
    print(f"SNAPTRADE_CONSUMER_KEY={sb.consumer_key}", flush=True)
    print(f"SANDBOX_ADMIN_TOKEN={sb.admin_token}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
