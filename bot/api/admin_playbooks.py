"""Admin: playbooks (list, bindings, validate, reload) and the welcome preview."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from bot.api.deps import AdminDep, RuntimeDep, SessionDep
from bot.config.playbooks import (
    PlaybookIssue,
    PlaybookLoadError,
    load_playbooks,
    private_welcome_variables,
    render_text,
)
from bot.timefmt import LocalTime, local_iso
from handlers.channels import CAPABILITIES
from handlers.features.welcome import group_vars, member_vars, render_welcome
from storage.models import Group, WelcomeTemplate

router = APIRouter(prefix="/admin", tags=["admin: playbooks"], dependencies=[AdminDep])


class PlaybookSummary(BaseModel):
    name: str
    description: str
    extends: str | None
    applies_to: dict[str, list[str]]
    sections: list[str]
    groups: list[str] = Field(description="chat ids this playbook drives now")
    welcome_template_id: str | None = Field(
        description="WeCom 入群欢迎语素材 synced from welcome.customer_group_template"
    )


class PlaybooksOut(BaseModel):
    directory: str
    version: int
    loaded_at: LocalTime
    last_error_at: LocalTime | None
    issues: list[str] = Field(description="why the last reload was refused; empty when current")
    playbooks: list[PlaybookSummary]


SECTIONS = ("quiet_hours", "welcome", "touch_sequence")
SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}\.ya?ml")


@router.get("/playbooks", response_model=PlaybooksOut)
async def list_playbooks(runtime: RuntimeDep, session: SessionDep) -> PlaybooksOut:
    store = runtime.playbooks
    current = store.current
    groups = (await session.execute(select(Group.chat_id, Group.tags))).all()
    bound = current.bindings((chat_id, list(tags or [])) for chat_id, tags in groups)
    templates = {
        row.playbook: row.template_id
        for row in (await session.execute(select(WelcomeTemplate))).scalars()
    }
    return PlaybooksOut(
        directory=str(store.directory),
        version=store.version,
        loaded_at=store.loaded_at,
        last_error_at=store.last_error_at,
        issues=[str(issue) for issue in store.last_issues],
        playbooks=[
            PlaybookSummary(
                name=p.name,
                description=p.description,
                extends=p.extends,
                applies_to={
                    "tags": list(p.applies_to.tags),
                    "chat_ids": list(p.applies_to.chat_ids),
                },
                sections=[s for s in SECTIONS if getattr(p, s) is not None],
                groups=bound.get(p.name, []),
                welcome_template_id=templates.get(p.name),
            )
            for p in current.playbooks.values()
        ],
    )


@router.get("/playbooks/{name}")
async def get_playbook(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    playbook = runtime.playbooks.current.playbooks.get(name)
    if playbook is None:
        raise HTTPException(status_code=404, detail=f"no playbook {name!r}")
    return playbook.model_dump(mode="json")


class ValidateIn(BaseModel):
    files: dict[str, str] = Field(
        default_factory=dict,
        description="proposed files (name → YAML) checked together with the directory; "
        "nothing is written",
    )


class ValidateOut(BaseModel):
    ok: bool
    playbooks: list[str]
    issues: list[str]


def _issue_lines(issues: list[PlaybookIssue]) -> list[str]:
    return [str(issue) for issue in issues]


def _validate_files(directory: Path, proposed: dict[str, str]) -> ValidateOut:
    """The directory with the proposed files laid over it, loaded in a scratch copy.

    Blocking (file copies, YAML parsing, dry renders): runs in a worker thread."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "sop_templates"
        shutil.copytree(directory, target)
        for filename, text in proposed.items():
            (target / filename).write_text(text, encoding="utf-8")
        try:
            loaded = load_playbooks(target)
        except PlaybookLoadError as exc:
            return ValidateOut(ok=False, playbooks=[], issues=_issue_lines(exc.issues))
    return ValidateOut(ok=True, playbooks=sorted(loaded.playbooks), issues=[])


@router.post("/playbooks/validate", response_model=ValidateOut)
async def validate(runtime: RuntimeDep, body: ValidateIn | None = None) -> ValidateOut:
    proposed = body.files if body else {}
    for filename in proposed:
        if not SAFE_FILE_NAME.fullmatch(filename):
            raise HTTPException(status_code=422, detail=f"{filename!r}: a plain *.yaml file name")
    # Off the event loop: callbacks must be acknowledged while a large set is checked.
    return await asyncio.to_thread(_validate_files, runtime.playbooks.directory, proposed)


@router.post("/playbooks/reload")
async def reload(runtime: RuntimeDep) -> JSONResponse:
    result = await runtime.playbooks.reload_async()
    body = {
        "ok": result.ok,
        "version": result.version,
        "loaded_at": local_iso(result.loaded_at, runtime.settings.tz, precision="auto"),
        "issues": _issue_lines(result.issues),
    }
    if result.ok:
        await runtime.playbooks_changed()
    # Refused: the last good set stays in use; say so with a status scripts can see.
    return JSONResponse(body, status_code=200 if result.ok else 422)


class PreviewIn(BaseModel):
    names: list[str] = Field(min_length=1, max_length=500)


class PreviewOut(BaseModel):
    chat_id: str
    playbook: str
    channel: str
    posts_to_group: bool
    note: str
    text: str | None
    private_text: str | None
    customer_group_template: str | None


@router.post("/groups/{chat_id}/welcome/preview", response_model=PreviewOut)
async def preview_welcome(
    chat_id: str, body: PreviewIn, runtime: RuntimeDep, session: SessionDep
) -> PreviewOut:
    group = await session.get(Group, chat_id)
    if group is None:
        raise HTTPException(status_code=404, detail=f"no group {chat_id}")
    playbook = runtime.playbook_set.for_group(chat_id, list(group.tags or []))
    welcome = playbook.welcome
    now = runtime.clock()
    tz = runtime.settings.tz
    members: list[dict[str, Any]] = [
        {"id": f"preview-{n}", "name": name, "invitor_name": None}
        for n, name in enumerate(body.names)
    ]
    caps = CAPABILITIES.get(group.channel_type, CAPABILITIES["none"])
    if welcome is None or not welcome.enabled:
        return PreviewOut(
            chat_id=chat_id,
            playbook=playbook.name,
            channel=group.channel_type,
            posts_to_group=False,
            note="welcome is off in this playbook",
            text=None,
            private_text=None,
            customer_group_template=None,
        )
    customer = group.channel_type == "customer_group"
    if customer:
        note = "customer group: WeCom's welcome template greets newcomers; no bot post"
    elif not caps.can_post:
        note = "this group has no channel the bot can post through"
    else:
        note = "one group message for the whole batch"
    private_text = None
    template = welcome.customer_group_template
    field = "welcome.text"
    try:
        text = render_welcome(members, group, welcome, now, tz)
        if welcome.private is not None and welcome.private.enabled:
            field = "welcome.private.text"
            private_text = render_text(
                welcome.private.text,
                private_welcome_variables(
                    member_vars(members[0]),
                    group_vars(group),
                    today=now.astimezone(tz).date(),
                ),
            )
    except Exception as exc:  # a template that only fails on real data (too long): say so
        raise HTTPException(
            status_code=422,
            detail=f"playbook {playbook.name}: {field} fails for these names: {exc}",
        ) from None
    return PreviewOut(
        chat_id=chat_id,
        playbook=playbook.name,
        channel=group.channel_type,
        posts_to_group=caps.can_post and not customer,
        note=note,
        text=text,
        private_text=private_text,
        customer_group_template=template.text if template else None,
    )
