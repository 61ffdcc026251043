"""`python -m bot.sandbox.emulator --port 9999`: the fake WeCom server on its own.

Point the bot at it with WECOM_API_BASE=http://127.0.0.1:9999 and the corp id
and secret printed at start; read what was "sent" at /_emulator/sent.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import uvicorn

from bot.config.settings import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_CORP_SECRET
from bot.logs import configure_logging
from bot.sandbox.emulator.aibot_ws import AibotHub
from bot.sandbox.emulator.app import CONTROL_PREFIX, create_emulator_app
from bot.sandbox.emulator.server import require_loopback
from bot.sandbox.emulator.state import EmulatorState


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox.emulator", description="Run the fake WeCom server API."
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--corp-id", default=SANDBOX_CORP_ID)
    parser.add_argument("--corp-secret", default=SANDBOX_CORP_SECRET)
    parser.add_argument("--agent-id", type=int, default=SANDBOX_AGENT_ID)
    parser.add_argument(
        "--webhook-limit", type=int, default=20, help="webhook messages per minute per key"
    )
    parser.add_argument(
        "--ws-port", type=int, default=0, help="智能机器人 long-connection port (0: any free one)"
    )
    args = parser.parse_args(argv)
    try:
        require_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    state = EmulatorState(
        corp_id=args.corp_id,
        corp_secret=args.corp_secret,
        agent_id=args.agent_id,
        webhook_rate_limit=args.webhook_limit,
    )
    base = f"http://{args.host}:{args.port}"
    print(f"WeCom emulator: WECOM_API_BASE={base}")
    print(f"  corp_id={state.corp_id} corp_secret={state.corp_secret} agent_id={state.agent_id}")
    print(
        f"  archive (ARCHIVE_SOURCE=emulator): WECOM_ARCHIVE_SECRET={state.archive_secret}; "
        f"add records at {base}{CONTROL_PREFIX}/archive"
    )
    hub = AibotHub(state)
    ws_url = hub.start(args.host, args.ws_port)
    print(
        f"  智能机器人 long connection: WECOM_AIBOT_WS_URL={ws_url} "
        f"WECOM_AIBOT_ID={state.aibot_id} WECOM_AIBOT_SECRET={state.aibot_secret}; "
        f"push an @-mention with POST {base}{CONTROL_PREFIX}/aibot/mentions"
    )
    print(f"  sent log: {base}{CONTROL_PREFIX}/sent   API docs: {base}/docs")
    # Our logging: BOT_TIMEZONE stamps, and the access log never shows access_token,
    # corpsecret or a webhook key (uvicorn's own config would print them).
    configure_logging(_zone())
    try:
        uvicorn.run(create_emulator_app(state), host=args.host, port=args.port, log_config=None)
    finally:
        hub.stop()


def _zone() -> tzinfo:
    try:
        return ZoneInfo(os.environ.get("BOT_TIMEZONE") or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


if __name__ == "__main__":
    main()
