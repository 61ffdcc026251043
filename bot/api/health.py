"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await runtime.ping_db()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    store = runtime.playbooks
    if store.current is None:
        checks["templates"] = "error: no playbooks loaded"
    elif store.last_issues:
        checks["templates"] = f"stale: last reload failed with {len(store.last_issues)} issue(s)"
    else:
        checks["templates"] = "ok"
    stalled = runtime.health.problems(stale_after=runtime.settings.loop_stale_seconds)
    checks["loops"] = (
        "ok" if not stalled else "; ".join(f"{name}: {why}" for name, why in stalled.items())
    )
    ready = (
        checks["database"] == "ok" and not checks["templates"].startswith("error") and not stalled
    )
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    runtime.health.export()
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
