"""`/api/plans`: billing plans (read by staff, written by billing and admin users)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.common.db import get_session
from hivematrix.ledger import plans
from hivematrix.ledger.api import READER_SERVICES, READERS, WRITERS, json_body, refusals

bp = APIBlueprint("ledger_plans", __name__, tag="Plans")


@bp.get("/api/plans")
@bp.doc(summary="Every billing plan", description="Rates as decimal strings.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def list_plans() -> Any:
    return [plans.to_dict(plan) for plan in plans.list_plans(get_session())]


@bp.post("/api/plans")
@bp.doc(summary="Create a plan",
        description="`plan_name` and `term_length` (unique together, 409 otherwise), "
                    "`support_level`, each rate as a decimal string, `features` (object).")
@permission_required(*WRITERS)
@refusals
def create_plan() -> Any:
    plan = plans.create(get_session(), json_body())
    get_session().commit()
    return plans.to_dict(plan), 201


@bp.get("/api/plans/export")
@bp.doc(summary="Every plan as JSON, in the shape import takes")
@permission_required(*READERS)
@refusals
def export_plans() -> Any:
    return {"plans": plans.export(get_session())}


@bp.post("/api/plans/import")
@bp.doc(summary="Create or update plans from an export",
        description="Body: `{\"plans\": [...]}`; matched on (plan_name, term_length). One bad "
                    "entry refuses the whole import.")
@permission_required(*WRITERS)
@refusals
def import_plans() -> Any:
    body = json_body()
    items = body.get("plans") if isinstance(body, dict) else body
    counts = plans.import_plans(get_session(), items)
    get_session().commit()
    return counts


@bp.get("/api/plans/<int:plan_id>")
@bp.doc(summary="One plan")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def get_plan(plan_id: int) -> Any:
    return plans.to_dict(plans.get(get_session(), plan_id))


@bp.put("/api/plans/<int:plan_id>")
@bp.doc(summary="Change a plan", description="Fields left out keep their values.")
@permission_required(*WRITERS)
@refusals
def update_plan(plan_id: int) -> Any:
    plan = plans.update(get_session(), plan_id, json_body())
    get_session().commit()
    return plans.to_dict(plan)


@bp.delete("/api/plans/<int:plan_id>")
@bp.doc(summary="Delete a plan")
@permission_required(*WRITERS)
@refusals
def delete_plan(plan_id: int) -> Any:
    plans.delete(get_session(), plan_id)
    get_session().commit()
    return "", 204
