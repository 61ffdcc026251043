"""`wecom-bot` command line. Heavy imports stay inside commands so `simulate` starts fast."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from bot.config.settings import Settings
    from bot.server_address import ServerTarget

app = typer.Typer(
    help="wecom-bot: community operations (社群运营) for WeCom groups.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
simulate_app = typer.Typer(help="Send signed, encrypted callbacks to a running server.")
db_app = typer.Typer(help="Database schema.")
sandbox_app = typer.Typer(help="The built-in WeCom emulator (sandbox mode).")
templates_app = typer.Typer(help="SOP playbooks in sop_templates/.")
content_app = typer.Typer(help="The content library keyword lookup answers from.")
app.add_typer(simulate_app, name="simulate")
app.add_typer(db_app, name="db")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(templates_app, name="templates")
app.add_typer(content_app, name="content")

DEMO_CHAT = "wrSandboxDemoGroup"


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"wecom-bot: {message}", err=True)
    return typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    from bot.config.settings import ConfigError, load_settings

    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise _fail(str(exc)) from None


URL_HELP = "server base URL (default: where a running `serve` recorded it, else HOST/PORT)"


def _find_server(settings: Settings, url: str | None) -> ServerTarget:
    from bot.server_address import find_server

    return find_server(settings, url)


def _unreachable(settings: Settings, target: ServerTarget, what: str, exc: Exception) -> typer.Exit:
    from bot.server_address import unreachable_hint

    return _fail(f"cannot reach {what}: {exc}; {unreachable_hint(settings, target)}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (PORT)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Run the service (sandbox mode with the built-in WeCom emulator when unconfigured)."""
    import uvicorn

    settings = _settings(host=host, port=port)
    from bot.logs import configure_logging

    configure_logging(settings.tz)
    from bot.app import create_app
    from bot.datafiles import server_record_path
    from bot.serving import CannotListen, RecordingServer, bind_listener
    from bot.startup import preflight

    try:
        sock = bind_listener(settings.host, settings.port)
    except CannotListen as exc:
        raise _fail(str(exc)) from None
    try:
        problem = asyncio.run(preflight(settings))
        if problem:
            raise _fail(problem)
        if settings.sandbox:
            typer.echo(
                "sandbox mode: no WECOM_CORP_ID set; outbound messages go to the built-in "
                "emulator (see `wecom-bot sandbox sent`). Try: wecom-bot simulate join "
                "--member wmAlice --name 小美",
                err=True,
            )
            if not settings.admin_token:
                from bot.datafiles import sandbox_admin_token

                token, token_path = sandbox_admin_token(settings)
                typer.echo(
                    f"admin token (Authorization: Bearer …; kept in {token_path}):", err=True
                )
                typer.echo(token, err=True)  # alone on its line, to copy
        config = uvicorn.Config(
            create_app(settings),
            log_level=log_level,
            log_config=None,  # uvicorn's loggers go through ours: one stamp, one redaction
        )
        server = RecordingServer(config, server_record_path(settings), settings.host)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # Ctrl-C: uvicorn re-raises it after a clean shutdown
            pass
        finally:
            server.forget()
    finally:
        sock.close()
    if not server.started:
        raise typer.Exit(3)  # the app did not start; its error is logged above


def _post_callback(
    settings: Settings,
    target: ServerTarget,
    path: str,
    params: dict[str, str],
    body: str,
    content_type: str,
) -> str:
    import httpx

    url = target.url + path
    try:
        response = httpx.post(
            url,
            params=params,
            content=body.encode("utf-8"),
            headers={"Content-Type": content_type},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        raise _unreachable(settings, target, url, exc) from None
    if response.status_code != 200:
        raise _fail(f"{url} answered {response.status_code}: {response.text[:300]}")
    return response.text


def _emulator_add(
    settings: Settings, target: ServerTarget, chat_id: str, members: list[dict[str, Any]]
) -> None:
    """In sandbox, tell the emulator who joined, so groupchat/get knows their names."""
    import httpx

    from bot.config.settings import SANDBOX_API_PATH

    root = f"{target.url}{SANDBOX_API_PATH}/_emulator/groups/{chat_id}"
    try:
        if httpx.get(root, timeout=5).status_code == 404:
            httpx.put(root, json={"name": "沙盒体验群", "owner": "sandbox-owner"}, timeout=5)
        httpx.post(f"{root}/members", json={"members": members}, timeout=5)
    except httpx.HTTPError as exc:
        raise _unreachable(settings, target, f"the sandbox emulator at {root}", exc) from None


@simulate_app.command("join")
def simulate_join(
    member: Annotated[
        list[str] | None,
        typer.Option("--member", "-m", "--user", "--userid", help="member id (repeat)"),
    ] = None,
    name: Annotated[list[str] | None, typer.Option("--name", "-n", help="display name")] = None,
    chat: Annotated[
        str, typer.Option("--chat", "--chat-id", "--group", help="chat id")
    ] = DEMO_CHAT,
    count: Annotated[int, typer.Option(help="how many made-up newcomers, without --member")] = 1,
    invitor: Annotated[str | None, typer.Option(help="who invited them")] = None,
    url: Annotated[str | None, typer.Option(help=URL_HELP, envvar="WECOM_BOT_URL")] = None,
) -> None:
    """Members join a group: one change_external_chat add_member callback."""
    import secrets

    from bot.sandbox.simulate import (
        SAMPLE_NAMES,
        change_external_chat_xml,
        made_up_names,
        sign_xml,
    )
    from bot.wecom.crypto import WeComCrypto

    settings = _settings()
    target = _find_server(settings, url)
    members = list(member or [])
    names = list(name or [])
    if not members:  # made-up newcomers, so `simulate join` alone shows the feature
        members = [f"wm{secrets.token_hex(4)}" for _ in range(max(1, count))]
        # distinct names; a random start so the next run greets other people
        names += made_up_names(len(members) - len(names), secrets.randbelow(len(SAMPLE_NAMES)))
    if settings.sandbox:
        _emulator_add(
            settings,
            target,
            chat,
            [
                {
                    "userid": m,
                    "name": names[i] if i < len(names) else m,
                    **({"invitor": invitor} if invitor else {}),
                }
                for i, m in enumerate(members)
            ],
        )
    crypto = WeComCrypto(settings.callback_token, settings.aes_key, settings.corp_id)
    xml = change_external_chat_xml(
        corp_id=settings.corp_id,
        chat_id=chat,
        update_detail="add_member",
        members=members,
        join_scene=0,
    )
    signed = sign_xml(crypto, xml, agent_id=str(settings.agent_id))
    answer = _post_callback(
        settings, target, "/wecom/callback", signed.params, signed.body, "text/xml"
    )
    who = [f"{names[i]} ({m})" if i < len(names) else m for i, m in enumerate(members)]
    typer.echo(f"join {', '.join(who)} → {chat}: {answer}")


@simulate_app.command("leave")
def simulate_leave(
    member: Annotated[
        list[str], typer.Option("--member", "-m", "--user", "--userid", help="member id (repeat)")
    ],
    chat: Annotated[
        str, typer.Option("--chat", "--chat-id", "--group", help="chat id")
    ] = DEMO_CHAT,
    url: Annotated[str | None, typer.Option(help=URL_HELP, envvar="WECOM_BOT_URL")] = None,
) -> None:
    """Members leave a group: one change_external_chat del_member callback."""
    import httpx

    from bot.config.settings import SANDBOX_API_PATH
    from bot.sandbox.simulate import change_external_chat_xml, sign_xml
    from bot.wecom.crypto import WeComCrypto

    settings = _settings()
    target = _find_server(settings, url)
    if settings.sandbox:
        for m in member:
            with contextlib.suppress(httpx.HTTPError):
                httpx.delete(f"{target.url}{SANDBOX_API_PATH}/_emulator/groups/{chat}/members/{m}")
    crypto = WeComCrypto(settings.callback_token, settings.aes_key, settings.corp_id)
    xml = change_external_chat_xml(
        corp_id=settings.corp_id,
        chat_id=chat,
        update_detail="del_member",
        members=member,
        quit_scene=0,
    )
    signed = sign_xml(crypto, xml, agent_id=str(settings.agent_id))
    answer = _post_callback(
        settings, target, "/wecom/callback", signed.params, signed.body, "text/xml"
    )
    typer.echo(f"leave {', '.join(member)} ← {chat}: {answer}")


@simulate_app.command("message")
def simulate_message(
    member: Annotated[str, typer.Option("--member", "-m", "--user", "--userid", help="sender id")],
    text: Annotated[str, typer.Option("--text", "-t", help="message text")],
    chat: Annotated[
        str, typer.Option("--chat", "--chat-id", "--group", help="chat id")
    ] = DEMO_CHAT,
    private: Annotated[bool, typer.Option(help="a 1:1 message to the app instead")] = False,
    at_bot: Annotated[
        bool,
        typer.Option(
            "--at-bot", help="an @-mention of the 智能机器人 instead of an archived group message"
        ),
    ] = False,
    url: Annotated[str | None, typer.Option(help=URL_HELP, envvar="WECOM_BOT_URL")] = None,
) -> None:
    """A member writes in a group: a 会话内容存档 record the server's archive puller reads
    (sandbox), or with --at-bot an @-mention of the 智能机器人; --private: to the app."""
    import secrets

    from bot.sandbox.simulate import aibot_text_json, app_text_xml, sign_json, sign_xml
    from bot.wecom.crypto import WeComCrypto
    from handlers.channels import is_external_id

    settings = _settings()
    target = _find_server(settings, url)
    if private:
        crypto = WeComCrypto(settings.callback_token, settings.aes_key, settings.corp_id)
        xml = app_text_xml(
            corp_id=settings.corp_id,
            sender=member,
            content=text,
            msg_id=secrets.randbits(62),
            agent_id=settings.agent_id,
        )
        signed = sign_xml(crypto, xml, agent_id=str(settings.agent_id))
        answer = _post_callback(
            settings, target, "/wecom/callback", signed.params, signed.body, "text/xml"
        )
    elif at_bot:
        crypto = WeComCrypto(settings.callback_token, settings.aes_key, "")
        payload = aibot_text_json(
            chat_id=chat,
            sender=member,
            content=f"@bot {text}",
            msg_id=secrets.token_hex(12),
            # In sandbox the emulator issues it, so the answer comes back through it.
            response_url=_sandbox_response_url(settings, target, chat) if settings.sandbox else "",
        )
        signed = sign_json(crypto, payload)
        answer = _post_callback(
            settings,
            target,
            "/wecom/aibot/callback",
            signed.params,
            signed.body,
            "application/json",
        )
    else:
        seq = _archive_message(settings, target, chat=chat, member=member, text=text)
        answer = f"archived as seq {seq}; msgaudit_notify: {_archive_notify(settings, target)}"
    typer.echo(f"message from {member}: {answer or 'ok'}")
    if not private and not is_external_id(member):
        typer.echo(
            f"note: {member} looks like one of the corp's own members (staff), whom group "
            "rules exempt by default; a wm… id plays a customer"
        )


def _sandbox_response_url(settings: Settings, target: ServerTarget, chat: str) -> str:
    """A response_url the sandbox server's emulator issued, on the address its WeCom
    client uses for the emulator (the only host it posts replies to)."""
    import httpx

    from bot.config.settings import SANDBOX_API_BASE, SANDBOX_API_PATH

    endpoint = f"{target.url}{SANDBOX_API_PATH}/_emulator/aibot/response_codes"
    try:
        response = httpx.post(endpoint, json={"target": chat}, timeout=10)
    except httpx.HTTPError as exc:
        raise _unreachable(settings, target, endpoint, exc) from None
    if response.status_code != 201:
        raise _fail(f"{endpoint} answered {response.status_code}: {response.text[:300]}")
    return SANDBOX_API_BASE + str(response.json()["path"])


@simulate_app.command("mention")
def simulate_mention(
    member: Annotated[str, typer.Option("--member", "-m", "--user", "--userid", help="sender id")],
    text: Annotated[str, typer.Option("--text", "-t", help="what they ask the bot")],
    chat: Annotated[
        str, typer.Option("--chat", "--chat-id", "--group", help="chat id")
    ] = DEMO_CHAT,
    single: Annotated[bool, typer.Option(help="单聊 with the bot instead of a group")] = False,
    url: Annotated[str | None, typer.Option(help=URL_HELP, envvar="WECOM_BOT_URL")] = None,
) -> None:
    """An @-mention of the 智能机器人 over its long connection: the sandbox emulator
    pushes it to the server, which answers on the same connection (`sandbox sent`)."""
    import httpx

    from bot.config.settings import SANDBOX_API_PATH

    settings = _settings()
    if not settings.sandbox:
        raise _fail(
            "on a configured server WeCom itself pushes @-mentions over the long connection; "
            "`simulate mention` drives the sandbox emulator only (try `simulate message --at-bot`)"
        )
    target = _find_server(settings, url)
    endpoint = f"{target.url}{SANDBOX_API_PATH}/_emulator/aibot/mentions"
    body = {"sender": member, "text": text, "chat_id": None if single else chat}
    try:
        response = httpx.post(endpoint, json=body, timeout=10)
    except httpx.HTTPError as exc:
        raise _unreachable(settings, target, endpoint, exc) from None
    if response.status_code == 409:
        raise _fail(
            "the server's 智能机器人 long connection is not up yet; try again in a moment "
            f"({response.json().get('detail', '')})"
        )
    if response.status_code != 201:
        raise _fail(f"{endpoint} answered {response.status_code}: {response.text[:300]}")
    where = "单聊" if single else chat
    typer.echo(f"mention from {member} → {where}: pushed as {response.json()['req_id']}")


def _archive_message(
    settings: Settings, target: ServerTarget, *, chat: str, member: str, text: str
) -> int:
    """Put a group message into the emulator's 会话内容存档 (the running sandbox's, or
    the one at WECOM_API_BASE with ARCHIVE_SOURCE=emulator); returns its seq."""
    import secrets

    import httpx

    from bot.config.settings import SANDBOX_API_PATH
    from bot.sandbox.simulate import archive_text_record

    if settings.sandbox:
        base = target.url + SANDBOX_API_PATH
    elif settings.archive_source == "emulator":
        base = settings.wecom_api_base
    else:
        raise _fail(
            "a group message goes into WeCom's archive, which only the sandbox emulator lets "
            "us write; use --at-bot, or POST decrypted records to /wecom/archive"
        )
    record = archive_text_record(
        chat_id=chat, sender=member, content=text, msg_id=f"sim_{secrets.token_hex(12)}"
    )
    endpoint = f"{base}/_emulator/archive"
    try:
        response = httpx.post(endpoint, json={"records": [record]}, timeout=10)
    except httpx.HTTPError as exc:
        raise _unreachable(settings, target, endpoint, exc) from None
    if response.status_code != 201:
        raise _fail(f"{endpoint} answered {response.status_code}: {response.text[:300]}")
    return int(response.json()[0]["seq"])


def _archive_notify(settings: Settings, target: ServerTarget) -> str:
    """The signed msgaudit_notify WeCom sends when there is something to pull."""
    from bot.sandbox.simulate import msgaudit_notify_xml, sign_xml
    from bot.wecom.crypto import WeComCrypto

    crypto = WeComCrypto(settings.callback_token, settings.aes_key, settings.corp_id)
    xml = msgaudit_notify_xml(corp_id=settings.corp_id, agent_id=settings.agent_id)
    signed = sign_xml(crypto, xml, agent_id=str(settings.agent_id))
    return _post_callback(
        settings, target, "/wecom/callback", signed.params, signed.body, "text/xml"
    )


def _parse_at(value: str, tz: Any) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"--at: {value!r} is not an ISO date-time (e.g. 2026-11-24T09:00)") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=tz)  # a wall-clock time means BOT_TIMEZONE
    return at.astimezone(UTC)


@app.command()
def tick(
    at: Annotated[str | None, typer.Option(help="run what is due as of this ISO time")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
    url: Annotated[
        str | None, typer.Option(help=URL_HELP + "; sandbox only", envvar="WECOM_BOT_URL")
    ] = None,
) -> None:
    """Run due scheduled work (welcome batches, touch steps) as of an instant, then send."""
    settings = _settings()
    when = _parse_at(at, settings.tz) if at else datetime.now(UTC)
    from bot.startup import run_tick_command

    try:
        # In sandbox the emulator lives inside the running server, so sends go there.
        server = _find_server(settings, url).url if settings.sandbox else None
        report = asyncio.run(run_tick_command(settings, when, server))
    except Exception as exc:  # one line, not a traceback
        raise _fail(f"tick failed: {type(exc).__name__}: {exc}") from None
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        from bot.tick_report import tick_lines

        for line in tick_lines(report):
            typer.echo(line)
        if report["waiting"]:
            where = "沙盒服务器" if settings.sandbox else "企业微信"
            typer.echo(
                f"有 {report['waiting']} 条消息暂未发出（{where}连不上或正在限流）；"
                "它们留在队列里，由运行中的服务稍后发出。",
                err=True,
            )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply Alembic migrations (serve does this on start too)."""
    from storage.db import make_engine, upgrade

    settings = _settings()

    async def run() -> None:
        engine = make_engine(settings.database_url)
        try:
            await upgrade(engine, revision)
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except Exception as exc:
        raise _fail(f"DATABASE_URL: migration failed: {type(exc).__name__}: {exc}") from None
    typer.echo(f"database at {revision}")


@sandbox_app.command("sent")
def sandbox_sent(
    since: Annotated[int, typer.Option(help="only records after this sequence number")] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: Annotated[str | None, typer.Option(help=URL_HELP, envvar="WECOM_BOT_URL")] = None,
) -> None:
    """What the running sandbox server's emulator has "sent"."""
    import httpx

    from bot.config.settings import SANDBOX_API_PATH

    settings = _settings()
    target = _find_server(settings, url)
    endpoint = f"{target.url}{SANDBOX_API_PATH}/_emulator/sent"
    try:
        response = httpx.get(endpoint, params={"since": since}, timeout=10)
    except httpx.HTTPError as exc:
        raise _unreachable(settings, target, endpoint, exc) from None
    if response.status_code == 404:
        raise _fail("the server is not in sandbox mode (WECOM_CORP_ID is set)")
    records = response.json()
    if as_json:
        typer.echo(json.dumps(records, ensure_ascii=False, indent=2))
        return
    from bot.sandbox.sent_view import sent_lines

    for line in sent_lines(records, settings.tz):
        typer.echo(line)
    if not records:
        typer.echo("还没有发出任何消息")


@templates_app.command("check")
def templates_check(
    directory: Annotated[Path | None, typer.Argument(help="playbook directory")] = None,
) -> None:
    """Validate playbooks; exits non-zero with file:line:field for each problem."""
    from bot.config.playbooks.cli import check_command

    target = directory or Path("./sop_templates")
    code, output = check_command(target)
    typer.echo(output, err=code != 0)
    raise typer.Exit(code)


@templates_app.command("schema")
def templates_schema() -> None:
    """Print the JSON Schema of a playbook file (for editor autocompletion)."""
    from bot.config.playbooks.cli import schema_command

    sys.stdout.write(schema_command() + "\n")


@content_app.command("import")
def content_import(
    file: Annotated[Path, typer.Argument(help=".json (an array of items) or .csv (a header row)")],
) -> None:
    """Add or update content items from a file; an item with the same title and source
    is updated. Bad rows are listed by line and skipped; exits 1 when there were any."""
    from rich.progress import Progress

    from bot.content_cli import run_import
    from handlers.features.content.transfer import FileRefused, parse

    settings = _settings()
    try:
        rows = parse(file.name, file.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{file}: 读不了这个文件（需要 UTF-8 编码）：{exc}") from None
    except FileRefused as exc:
        raise _fail(f"{file}: {exc}") from None
    bad = [row for row in rows if row.error is not None]
    with Progress(transient=True) as progress:
        task = progress.add_task("导入内容", total=len(rows))
        try:
            counts = asyncio.run(run_import(settings, rows, lambda n: progress.advance(task, n)))
        except Exception as exc:
            raise _fail(f"import failed: {type(exc).__name__}: {exc}") from None
    for row in bad:
        typer.echo(f"{file}:{row.line}: 已跳过：{row.error}", err=True)
    typer.echo(f"新增 {counts.created} 条，更新 {counts.updated} 条，跳过 {len(bad)} 条有问题的行")
    if bad:
        raise typer.Exit(1)


@content_app.command("export")
def content_export(
    file: Annotated[Path, typer.Argument(help=".json or .csv (UTF-8 with a BOM, for Excel)")],
) -> None:
    """Write every content item to a file that `content import` reads back."""
    from bot.content_cli import run_export
    from handlers.features.content.transfer import FileRefused, render

    settings = _settings()
    try:
        items = asyncio.run(run_export(settings))
        text = render(file.name, items)
    except FileRefused as exc:
        raise _fail(f"{file}: {exc}") from None
    except Exception as exc:
        raise _fail(f"export failed: {type(exc).__name__}: {exc}") from None
    try:
        file.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise _fail(f"{file}: 写不了这个文件：{exc}") from None
    typer.echo(f"已导出 {len(items)} 条内容到 {file}")


if __name__ == "__main__":
    app()
