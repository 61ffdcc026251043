"""Admin: touch-sequence enrollments, their step history, cancelling, and what is due."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel
from sqlalchemy import select

from bot.api.deps import AdminDep, RuntimeDep, SessionDep
from bot.timefmt import LocalTime
from handlers.features.touch import end_enrollments
from storage.models import Enrollment, TouchStep

router = APIRouter(prefix="/admin", tags=["admin: touch sequence"], dependencies=[AdminDep])


RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class StepOut(BaseModel):
    id: int
    step_key: str
    step_index: int
    due_at: LocalTime
    status: str
    reason: str | None
    outbox_id: int | None
    done_at: LocalTime | None


class EnrollmentOut(BaseModel):
    id: int
    chat_id: str
    member_id: str
    playbook: str
    status: str
    enrolled_at: LocalTime
    ended_at: LocalTime | None
    ended_reason: str | None
    steps: list[StepOut]


async def _enrollment_out(session: SessionDep, enrollment: Enrollment) -> EnrollmentOut:
    steps = (
        await session.execute(
            select(TouchStep)
            .where(TouchStep.enrollment_id == enrollment.id)
            .order_by(TouchStep.due_at, TouchStep.step_index)
        )
    ).scalars()
    return EnrollmentOut(
        id=enrollment.id,
        chat_id=enrollment.chat_id,
        member_id=enrollment.member_id,
        playbook=enrollment.playbook,
        status=enrollment.status,
        enrolled_at=enrollment.enrolled_at,
        ended_at=enrollment.ended_at,
        ended_reason=enrollment.ended_reason,
        steps=[StepOut.model_validate(step, from_attributes=True) for step in steps],
    )


@router.get("/members/{member_id}/enrollments", response_model=list[EnrollmentOut])
async def member_enrollments(
    member_id: str, session: SessionDep, chat_id: str | None = None
) -> list[EnrollmentOut]:
    query = select(Enrollment).where(Enrollment.member_id == member_id)
    if chat_id:
        query = query.where(Enrollment.chat_id == chat_id)
    enrollments = (await session.execute(query.order_by(Enrollment.id))).scalars().all()
    return [await _enrollment_out(session, e) for e in enrollments]


@router.get("/enrollments/{enrollment_id}", response_model=EnrollmentOut)
async def get_enrollment(enrollment_id: RowId, session: SessionDep) -> EnrollmentOut:
    enrollment = await session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise HTTPException(status_code=404, detail=f"no enrollment {enrollment_id}")
    return await _enrollment_out(session, enrollment)


@router.post("/enrollments/{enrollment_id}/cancel", response_model=EnrollmentOut)
async def cancel_enrollment(
    enrollment_id: RowId, runtime: RuntimeDep, session: SessionDep
) -> EnrollmentOut:
    enrollment = await session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise HTTPException(status_code=404, detail=f"no enrollment {enrollment_id}")
    if enrollment.status != "active":
        raise HTTPException(
            status_code=409, detail=f"enrollment {enrollment_id} is already {enrollment.status}"
        )
    await end_enrollments(
        session,
        chat_id=enrollment.chat_id,
        member_id=enrollment.member_id,
        status="cancelled",
        reason="cancelled by an admin",
        now=runtime.clock(),
        enrollment_id=enrollment_id,
    )
    await session.commit()
    await session.refresh(enrollment)
    return await _enrollment_out(session, enrollment)


class DueOut(BaseModel):
    step_id: int
    enrollment_id: int
    chat_id: str
    member_id: str
    playbook: str
    step_key: str
    due_at: LocalTime


@router.get("/touch/due", response_model=list[DueOut])
async def due_steps(
    runtime: RuntimeDep,
    session: SessionDep,
    hours: float = Query(default=24, gt=0, le=24 * 31),
    limit: int = Query(default=500, ge=1, le=5000),
) -> list[DueOut]:
    until = runtime.clock() + timedelta(hours=hours)
    rows = await session.execute(
        select(TouchStep, Enrollment)
        .join(Enrollment, Enrollment.id == TouchStep.enrollment_id)
        .where(TouchStep.status == "pending", TouchStep.due_at <= until)
        .order_by(TouchStep.due_at, TouchStep.id)
        .limit(limit)
    )
    return [
        DueOut(
            step_id=step.id,
            enrollment_id=enrollment.id,
            chat_id=enrollment.chat_id,
            member_id=enrollment.member_id,
            playbook=enrollment.playbook,
            step_key=step.step_key,
            due_at=step.due_at,
        )
        for step, enrollment in rows
    ]
