"""Billing plans: create, read, change, delete, and JSON import/export.

A plan is unique by (plan name, contract term). Import matches plans on that pair: existing
ones are updated, new ones created, all in the caller's transaction (nothing is applied when
one entry is refused).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hivematrix.ledger import fields
from hivematrix.ledger.errors import LedgerError, not_found
from hivematrix.ledger.inputs import RATE_NAMES, SUPPORT_LEVELS, Plan, Rates
from hivematrix.ledger.models import BillingPlan
from hivematrix.ledger.money import money_text

FEATURE_KEY_MAX = 100


def to_dict(plan: BillingPlan) -> dict[str, Any]:
    return {"id": plan.id, "plan_name": plan.plan_name, "term_length": plan.term_length,
            "support_level": plan.support_level,
            **{name: money_text(getattr(plan, name)) for name in RATE_NAMES},
            "features": dict(plan.features or {})}


def to_plan(plan: BillingPlan) -> Plan:
    """The calculation's view of a row."""
    return Plan(plan.plan_name, plan.term_length, plan.support_level,
                Rates(**{name: getattr(plan, name) for name in RATE_NAMES}),
                dict(plan.features or {}))


def book(session: Session) -> dict[tuple[str, str], Plan]:
    """Every plan by (name, term), as the calculation looks them up."""
    return {plan.key: plan for plan in map(to_plan, session.scalars(select(BillingPlan)))}


def list_plans(session: Session) -> list[BillingPlan]:
    return list(session.scalars(select(BillingPlan).order_by(BillingPlan.plan_name,
                                                             BillingPlan.term_length)))


def get(session: Session, plan_id: int) -> BillingPlan:
    plan = session.get(BillingPlan, plan_id)
    if plan is None:
        raise not_found(f"billing plan {plan_id}")
    return plan


def _features(data: Mapping[str, Any]) -> dict[str, str] | None:
    value = data.get("features")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise LedgerError("features: expected an object of feature → value", field="features")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str) or not key.strip() or len(key) > FEATURE_KEY_MAX:
            raise LedgerError(f"features.{key}: expected a string value", field="features")
        result[key.strip()] = item.strip()
    return result


def _values(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    data = fields.body(data)
    values: dict[str, Any] = {
        "plan_name": fields.text(data, "plan_name", required=not partial, max_length=100),
        "term_length": fields.text(data, "term_length", required=not partial, max_length=50),
        "support_level": fields.choice(data, "support_level", SUPPORT_LEVELS),
        "features": _features(data),
        **{name: fields.money(data, name) for name in RATE_NAMES}}
    return {key: value for key, value in values.items() if value is not None}


def _check_unique(session: Session, plan: BillingPlan) -> None:
    clash = session.scalar(select(BillingPlan.id).where(
        BillingPlan.plan_name == plan.plan_name, BillingPlan.term_length == plan.term_length,
        BillingPlan.id != (plan.id or 0)))
    if clash is not None:
        raise LedgerError(f"plan_name: a plan '{plan.plan_name}' for term "
                          f"'{plan.term_length}' exists already", status=409, field="plan_name")


def create(session: Session, data: Mapping[str, Any]) -> BillingPlan:
    plan = BillingPlan(**_values(data, partial=False))
    _check_unique(session, plan)
    session.add(plan)
    session.flush()
    return plan


def update(session: Session, plan_id: int, data: Mapping[str, Any]) -> BillingPlan:
    plan = get(session, plan_id)
    for key, value in _values(data, partial=True).items():
        setattr(plan, key, value)
    _check_unique(session, plan)
    session.flush()
    return plan


def delete(session: Session, plan_id: int) -> None:
    session.delete(get(session, plan_id))
    session.flush()


def export(session: Session) -> list[dict[str, Any]]:
    """Every plan as import takes it back (ids left out: they are this database's)."""
    return [{key: value for key, value in to_dict(plan).items() if key != "id"}
            for plan in list_plans(session)]


def import_plans(session: Session, items: Any) -> dict[str, int]:
    """Create or update plans from :func:`export`'s shape; refuses the lot on one bad entry."""
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise LedgerError("plans: expected a list of plans", field="plans")
    existing = {(plan.plan_name, plan.term_length): plan for plan in list_plans(session)}
    counts = {"created": 0, "updated": 0}
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        try:
            values = _values(fields.body(item), partial=False)
        except LedgerError as exc:
            raise LedgerError(f"plans[{index}].{exc}", field=f"plans[{index}].{exc.field}",
                              status=exc.status) from None
        key = (values["plan_name"], values["term_length"])
        if key in seen:
            raise LedgerError(f"plans[{index}]: plan '{key[0]}' for term '{key[1]}' appears "
                              "twice", field=f"plans[{index}]")
        seen.add(key)
        plan = existing.get(key)
        if plan is None:
            session.add(BillingPlan(**values))
            counts["created"] += 1
        else:
            for name, value in values.items():
                setattr(plan, name, value)
            counts["updated"] += 1
    session.flush()
    return counts
