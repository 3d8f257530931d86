"""Contract alignment: make a company's billing say what its contract says.

The workflow, as tools: **analyse** (the company's current settings in Ledger), **compare**
(the model passes the ``contract_terms`` it read from the contract; every rate, prepaid hours
monthly and yearly, the support level and the recurring and yearly line items are compared,
amounts with a tolerance of one cent), **align** (the exact changes, without writing),
**apply** (a write: the approver sees every change; applying does them in order and reports
each result) and **verify** (compare again: aligned, or what remains).

The dry run and the applying write are two tools because every call of a write tool waits
for a person's approval, and a dry run must not. The comparison and the change plan are plain
functions over plain data, tested without any service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from hivematrix.brainhair.tools.base import Proposal, Tool, ToolContext, ToolError
from hivematrix.brainhair.tools.calls import ACCOUNT, AMOUNT, call, choice, obj, segment, text
from hivematrix.brainhair.tools.ledger import RATES, SUPPORT_LEVELS, arrow, overrides, receipt

TOLERANCE = Decimal("0.01")
#: Line items a contract sets; one-off fees are one-time charges and are not compared.
COMPARED_KINDS = ("recurring", "yearly")
PREPAID = ("prepaid_hours_monthly", "prepaid_hours_yearly")
PER_UNIT = tuple(name for name in RATES if name not in PREPAID)


class TermsError(ToolError):
    """The contract terms cannot be compared (an amount that is not one...)."""


def amount(value: Any, where: str) -> Decimal:
    """A contract or Ledger amount as an exact Decimal."""
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise TermsError(f"{where}: {value!r} is not an amount") from None
    if not number.is_finite() or number < 0:
        raise TermsError(f"{where}: {value!r} is not a non-negative amount")
    return number


CENT = Decimal("0.01")


def _text(value: Decimal) -> str:
    """An amount as text: two decimals unless it has more ("25.00", "0.125")."""
    cents = value.quantize(CENT)
    return format(cents if cents == value else value.normalize(), "f")


def _difference(contract: Decimal, current: Decimal | None) -> str | None:
    """Contract minus current, signed ("+5.00", "-2.50")."""
    if current is None:
        return None
    delta = contract - current
    return ("+" if delta >= 0 else "-") + _text(abs(delta))


def _key(name: Any) -> str:
    return " ".join(str(name or "").split()).casefold()


def current_settings(bill: Mapping[str, Any], adjustments: Mapping[str, Any]) -> dict[str, Any]:
    """What a company is billed by now, from Ledger's receipt and overrides: the effective
    rates (plan, then client override), prepaid hours, support level, line items and manual
    gear."""
    effective = bill.get("effective_rates") or {}
    client = adjustments.get("client") or {}
    return {
        "account_number": bill.get("account_number") or adjustments.get("account_number"),
        "company_name": bill.get("company_name"),
        "plan_name": bill.get("plan_name"), "contract_term": bill.get("contract_term"),
        "bill_error": bill.get("error"),
        "support_level": bill.get("support_level"),
        "rates": {name: effective.get(name) for name in RATES},
        "overridden": sorted(name for name, entry in client.items()
                             if isinstance(entry, Mapping) and entry.get("enabled")),
        "line_items": [dict(item) for item in adjustments.get("line-items") or []],
        "manual_assets": [dict(item) for item in adjustments.get("manual-assets") or []],
        "manual_users": [dict(item) for item in adjustments.get("manual-users") or []],
        "total": bill.get("total"),
    }


def _differs(contract: Decimal, current: Any, where: str) -> tuple[bool, Decimal | None]:
    if current in (None, ""):
        return True, None
    now = amount(current, where)
    return abs(contract - now) > TOLERANCE, now


def compare(terms: Mapping[str, Any], current: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every way the current settings differ from the contract terms.

    Each discrepancy names the ``field``, its ``kind`` (rate, prepaid_hours, support_level,
    line_item), the contract and current values, the difference for amounts, and the
    ``change`` that would align it.
    """
    found: list[dict[str, Any]] = []
    rates = current.get("rates") or {}
    wanted_rates = dict(terms.get("rates") or {})
    for name in PREPAID:
        if name in terms:
            wanted_rates[name] = terms[name]
    for name in RATES:
        if name not in wanted_rates:
            continue
        contract = amount(wanted_rates[name], name)
        differs, now = _differs(contract, rates.get(name), f"current {name}")
        if differs:
            found.append({
                "field": name, "kind": "prepaid_hours" if name in PREPAID else "rate",
                "contract_value": _text(contract),
                "current_value": None if now is None else _text(now),
                "difference": _difference(contract, now),
                "change": {"op": "override", "field": name, "value": _text(contract)}})
    level = terms.get("support_level")
    if level is not None and _key(level) != _key(current.get("support_level")):
        found.append({"field": "support_level", "kind": "support_level",
                      "contract_value": level, "current_value": current.get("support_level"),
                      "change": {"op": "override", "field": "support_level", "value": level}})
    found.extend(_line_items(terms.get("line_items"), current.get("line_items") or []))
    return found


def _contract_item(item: Mapping[str, Any], index: int) -> dict[str, Any]:
    """One contract line item as Ledger's body (name, kind, amount, ...)."""
    if not _key(item.get("name")):
        raise TermsError(f"line_items.{index}.name: a line item needs a name")
    body = {"name": str(item["name"]).strip(), "kind": item.get("kind") or "recurring",
            "amount": _text(amount(item.get("amount"), f"line_items.{index}.amount"))}
    for extra in ("description", "yearly_month"):
        if item.get(extra) not in (None, ""):
            body[extra] = item[extra]
    return body


def _item_changes(body: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a bill's line item that differ from the contract's."""
    changed: dict[str, Any] = {}
    differs, _ = _differs(Decimal(body["amount"]), now.get("amount"),
                          f"line item {now.get('name')!r} amount")
    if differs:
        changed["amount"] = body["amount"]
    if now.get("kind") != body["kind"]:
        changed["kind"] = body["kind"]
    if body["kind"] == "yearly" and "yearly_month" in body \
            and now.get("yearly_month") != body["yearly_month"]:
        changed["yearly_month"] = body["yearly_month"]
    return changed


def _line_items(wanted: Sequence[Mapping[str, Any]] | None,
                existing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Contract line items missing from the bill or different on it, and bill items (of the
    compared kinds) the contract does not list. Matched by name, ignoring case and spaces."""
    if wanted is None:
        return []
    found: list[dict[str, Any]] = []
    by_name = {_key(item.get("name")): item for item in existing
               if item.get("kind") in COMPARED_KINDS}
    seen: set[str] = set()
    for index, item in enumerate(wanted):
        body = _contract_item(item, index)
        key = _key(body["name"])
        if key in seen:
            raise TermsError(f"line_items.{index}.name: {body['name']!r} is listed twice")
        seen.add(key)
        shown = f"{body['amount']} {body['kind']}"
        now = by_name.get(key)
        if now is None:
            found.append({"field": f"line item '{body['name']}'", "kind": "line_item",
                          "contract_value": shown, "current_value": None,
                          "note": "missing from the bill",
                          "change": {"op": "add_line_item", "body": body}})
            continue
        changed = _item_changes(body, now)
        if changed:
            current = None if now.get("amount") in (None, "") else amount(
                now["amount"], "current amount")
            found.append({
                "field": f"line item '{now.get('name')}'", "kind": "line_item",
                "contract_value": shown,
                "current_value": f"{now.get('amount')} {now.get('kind')}",
                "difference": _difference(Decimal(body["amount"]), current),
                "change": {"op": "update_line_item", "id": now.get("id"), "body": changed,
                           "name": now.get("name")}})
    for key, now in by_name.items():
        if key not in seen:
            found.append({"field": f"line item '{now.get('name')}'", "kind": "line_item",
                          "contract_value": None,
                          "current_value": f"{now.get('amount')} {now.get('kind')}",
                          "note": "on the bill but not in the contract",
                          "change": {"op": "remove_line_item", "id": now.get("id"),
                                     "name": now.get("name")}})
    return found


def plan(discrepancies: Sequence[Mapping[str, Any]], *,
         remove_extra_line_items: bool = False) -> tuple[list[dict[str, Any]],
                                                         list[dict[str, Any]]]:
    """The changes that align the bill, in the order they are applied (the override fields
    first, in one request, then line items one by one), and what is left alone (line items
    not in the contract, unless ``remove_extra_line_items``)."""
    changes: list[dict[str, Any]] = []
    left: list[dict[str, Any]] = []
    for item in discrepancies:
        change = dict(item["change"])
        if change["op"] == "remove_line_item" and not remove_extra_line_items:
            left.append({"field": item["field"], "note": item.get("note")})
            continue
        change["shown"] = _shown(item)
        changes.append(change)
    changes.sort(key=lambda change: 0 if change["op"] == "override" else 1)
    return changes, left


def _shown(item: Mapping[str, Any]) -> str:
    op = item["change"]["op"]
    if op == "remove_line_item":
        return arrow(item.get("current_value"), "(removed)")
    return arrow(item.get("current_value"), item.get("contract_value"))


def override_body(changes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Ledger's client-override body for the override changes."""
    return {change["field"]: {"enabled": True, "value": change["value"]}
            for change in changes if change["op"] == "override"}


# --- the tools -----------------------------------------------------------------------------

def _current(ctx: ToolContext, account_number: str) -> dict[str, Any]:
    return current_settings(receipt(ctx, account_number), overrides(ctx, account_number))


def analyse(ctx: ToolContext, args: dict[str, Any]) -> Any:
    settings = _current(ctx, args["account_number"])
    plans = call(ctx, "ledger", "/api/plans") or []
    settings["available_plans"] = [
        {"plan_name": item.get("plan_name"), "term_length": item.get("term_length")}
        for item in plans[:50]]
    return settings


def compare_tool(ctx: ToolContext, args: dict[str, Any]) -> Any:
    found = compare(args["contract_terms"], _current(ctx, args["account_number"]))
    return {"account_number": args["account_number"], "aligned": not found,
            "discrepancies_found": len(found), "discrepancies": found}


def _planned(ctx: ToolContext, args: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                              list[dict[str, Any]]]:
    found = compare(args["contract_terms"], _current(ctx, args["account_number"]))
    return plan(found, remove_extra_line_items=bool(args.get("remove_extra_line_items")))


def align(ctx: ToolContext, args: dict[str, Any]) -> Any:
    changes, left = _planned(ctx, args)
    return {"account_number": args["account_number"], "dry_run": True,
            "changes": [{"step": number, **change} for number, change in
                        enumerate(changes, 1)],
            "left_alone": left,
            "message": "Nothing to change: the bill matches the contract." if not changes
            else "Nothing was written. contract_apply_alignment makes these changes after "
                 "approval."}


def propose_apply(ctx: ToolContext, args: dict[str, Any]) -> Proposal:
    changes, left = _planned(ctx, args)
    if not changes:
        raise ToolError("Nothing to change: the bill matches the contract already.")
    details: dict[str, Any] = {"account_number": args["account_number"]}
    for number, change in enumerate(changes, 1):
        label = change.get("field") or change.get("name") or change.get("body", {}).get("name")
        details[f"{number}. {_verb(change)} {label}"] = change["shown"]
    for item in left:
        details[f"left alone: {item['field']}"] = item.get("note")
    return Proposal(action=f"Align the billing of {args['account_number']} with its contract "
                           f"({len(changes)} change{'s' if len(changes) != 1 else ''})",
                    details=details)


def _verb(change: Mapping[str, Any]) -> str:
    return {"override": "set", "add_line_item": "add line item",
            "update_line_item": "change line item",
            "remove_line_item": "remove line item"}[str(change["op"])]


def apply(ctx: ToolContext, args: dict[str, Any]) -> Any:
    """The planned changes in order; one failing does not stop the rest (each is reported).
    When every one failed (Ledger refusing the user, say), that is the tool's error."""
    changes, left = _planned(ctx, args)
    account = segment(args["account_number"])
    results: list[dict[str, Any]] = []
    fields = override_body(changes)
    if fields:
        try:
            call(ctx, "ledger", f"/api/overrides/{account}/client", "PUT", json=fields)
            outcome: dict[str, Any] = {"ok": True}
        except ToolError as exc:
            outcome = {"ok": False, "error": str(exc)}
        results.extend({"change": f"set {name}", "shown": change["shown"], **outcome}
                       for change in changes if change["op"] == "override"
                       for name in [change["field"]])
    for change in changes:
        if change["op"] == "override":
            continue
        label = f"{_verb(change)} {change.get('name') or change.get('body', {}).get('name')}"
        try:
            if change["op"] == "add_line_item":
                call(ctx, "ledger", f"/api/overrides/{account}/line-items", "POST",
                     json=change["body"])
            elif change["op"] == "update_line_item":
                call(ctx, "ledger", f"/api/overrides/{account}/line-items/{int(change['id'])}",
                     "PUT", json=change["body"])
            else:
                call(ctx, "ledger", f"/api/overrides/{account}/line-items/{int(change['id'])}",
                     "DELETE")
            results.append({"change": label, "shown": change["shown"], "ok": True})
        except ToolError as exc:
            results.append({"change": label, "shown": change["shown"], "ok": False,
                            "error": str(exc)})
    failed = [item for item in results if not item["ok"]]
    if results and len(failed) == len(results):
        raise ToolError(f"No change was made: {failed[0]['error']}")
    return {"account_number": args["account_number"], "dry_run": False,
            "applied": len(results) - len(failed), "failed": len(failed),
            "success": not failed, "results": results, "left_alone": left,
            "next": "Run contract_verify to confirm."}


def verify(ctx: ToolContext, args: dict[str, Any]) -> Any:
    found = compare(args["contract_terms"], _current(ctx, args["account_number"]))
    if not found:
        return {"account_number": args["account_number"], "aligned": True,
                "message": "The bill matches the contract terms."}
    return {"account_number": args["account_number"], "aligned": False,
            "remaining_discrepancies": found}


LINE_ITEM = obj({"name": text("The charge's name as it should appear on the bill.",
                              max_length=255),
                 "amount": AMOUNT,
                 "kind": choice("recurring (monthly, the default) or yearly.",
                                COMPARED_KINDS),
                 "yearly_month": {"type": "integer", "minimum": 1, "maximum": 12,
                                  "description": "The month a yearly charge is billed."},
                 "description": text("Description.", max_length=2000, min_length=0)},
                ["name", "amount"])
CONTRACT_TERMS = {
    "type": "object", "additionalProperties": False,
    "description": "What the contract says, per unit (not quantities or totals; one-time "
                   "fees left out). Give only what the contract states.",
    "properties": {
        "rates": {"type": "object", "additionalProperties": False,
                  "description": "Per-unit monthly rates (per_user, per_workstation, "
                                 "per_server, per_vm, per_switch, per_firewall, "
                                 "per_printer, per_hour for ticket hours) and backup fees.",
                  "properties": {name: AMOUNT for name in PER_UNIT}},
        "prepaid_hours_monthly": {**AMOUNT, "description": "Prepaid hours per month."},
        "prepaid_hours_yearly": {**AMOUNT, "description": "Prepaid hours per year."},
        "support_level": choice("The support level.", SUPPORT_LEVELS),
        "line_items": {"type": "array", "maxItems": 50, "items": LINE_ITEM,
                       "description": "Fixed recurring or yearly charges. When given, it is "
                                      "the complete list: bill items not in it are "
                                      "discrepancies."},
    },
}
TERMS_INPUT = obj({"account_number": ACCOUNT, "contract_terms": CONTRACT_TERMS},
                  ["account_number", "contract_terms"])
ALIGN_INPUT = obj({"account_number": ACCOUNT, "contract_terms": CONTRACT_TERMS,
                   "remove_extra_line_items": {
                       "type": "boolean",
                       "description": "Also remove recurring/yearly line items the contract "
                                      "does not list (default false: they are left alone)."}},
                  ["account_number", "contract_terms"])

TOOLS: tuple[Tool, ...] = (
    Tool("contract_analyze",
         "Step 1 of contract alignment: a company's current billing settings (effective "
         "rates, prepaid hours, support level, plan, line items, manual assets and users) "
         "and the plans available.",
         obj({"account_number": ACCOUNT}, ["account_number"]), analyse),
    Tool("contract_compare",
         "Step 2: compare the contract terms you extracted with the current settings: every "
         "rate, prepaid hours (monthly and yearly), support level and line item (one-cent "
         "tolerance). Returns the discrepancies.",
         TERMS_INPUT, compare_tool),
    Tool("contract_align",
         "Step 3 (dry run, writes nothing): the exact changes that would make the billing "
         "match the contract, in the order they would be applied.",
         ALIGN_INPUT, align),
    Tool("contract_apply_alignment",
         "Step 4: make those changes (the dry run's list, recomputed now). Needs approval; "
         "billing and admin users only. Reports each change's result.",
         ALIGN_INPUT, apply, propose=propose_apply),
    Tool("contract_verify",
         "Step 5: compare again after applying: aligned, or the discrepancies that remain.",
         TERMS_INPUT, verify),
)
