"""How `simulate`, `tick` and `sandbox sent` find the running `serve`.

Order of discovery: `--url` (or WECOM_BOT_URL), then the record a running
`serve` left in the data directory, then HOST/PORT from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config.settings import Settings
from bot.datafiles import read_server_record, server_record_path

URL_ENV = "WECOM_BOT_URL"


def url_for(host: str, port: int) -> str:
    """A URL a client on this machine can use for a server bound to host:port."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class ServerTarget:
    url: str
    source: str  # how it was found, for error messages


def find_server(settings: Settings, given: str | None) -> ServerTarget:
    if given:
        return ServerTarget(given.rstrip("/"), "--url")
    path = server_record_path(settings)
    record = read_server_record(path)
    if record is not None and record.alive():
        return ServerTarget(record.url, f"recorded by `serve` (pid {record.pid}) in {path}")
    return ServerTarget(url_for(settings.host, settings.port), "HOST/PORT")


def unreachable_hint(settings: Settings, target: ServerTarget) -> str:
    """What to set when the server at `target` does not answer."""
    if target.source == "HOST/PORT":
        return (
            f"no running `wecom-bot serve` recorded in {server_record_path(settings)}; "
            f"start one in this directory, or pass --url http://HOST:PORT (or set {URL_ENV})"
        )
    if target.source == "--url":
        return f"is `wecom-bot serve` running there? (--url / {URL_ENV})"
    return (
        f"the server was {target.source} but does not answer; "
        f"pass --url http://HOST:PORT (or set {URL_ENV})"
    )
