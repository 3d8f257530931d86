"""Ledger tools: a company's bill and what adjusts it (client override, manual assets and
users, custom line items), the plans, and accepting a bill.

Every change is a write: its ``propose`` reads the current value from Ledger first and shows
``before → after`` for each field, so the approver sees exactly what moves. Ledger itself
decides who may write (billing and admin users): a technician's approved change is still
refused there, and the refusal comes back to the model as a :class:`ToolError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hivematrix.brainhair.tools.base import Proposal, Tool, ToolContext, ToolError
from hivematrix.brainhair.tools.calls import (
    ACCOUNT,
    AMOUNT,
    MONTH,
    YEAR,
    call,
    capped,
    choice,
    integer,
    limit,
    money,
    obj,
    pick,
    segment,
    short,
    text,
)

#: Every number of a plan that a client override may replace (Ledger's RATE_NAMES).
RATES = ("per_user", "per_workstation", "per_server", "per_vm", "per_switch", "per_firewall",
         "per_printer", "per_hour", "backup_base_workstation", "backup_base_server",
         "backup_included_tb", "backup_per_tb", "prepaid_hours_monthly",
         "prepaid_hours_yearly")
OVERRIDE_FIELDS = ("plan_name", "support_level", *RATES)
SUPPORT_LEVELS = ("All Inclusive", "Unlimited", "Billed Hourly")
LINE_ITEM_KINDS = ("recurring", "one_off", "yearly")
USER_TYPES = ("Paid", "No Charge", "Custom")
ASSET_TYPES = ("Workstation", "Server", "VM", "Switch", "Firewall", "Printer", "Custom",
               "No Charge")
#: Ledger's row kinds these tools manage, by the name the tools use.
ROW_KINDS = {"manual_asset": "manual-assets", "manual_user": "manual-users",
             "line_item": "line-items"}
ROW_FIELDS = {
    "manual-assets": ("hostname", "billing_type", "custom_cost", "notes"),
    "manual-users": ("full_name", "billing_type", "custom_cost", "notes"),
    "line-items": ("name", "description", "kind", "amount", "start_period", "end_period",
                   "one_off_period", "yearly_month"),
}
MONEY_FIELDS = ("custom_cost", "amount")
NOTHING = "—"
LINES = 150

PERIOD = text("A month as YYYY-MM.", max_length=7, pattern=r"^\d{4}-(0?[1-9]|1[0-2])$")
ROW_ID = integer("The entry's id (from the list).", minimum=1, maximum=2**31 - 1)


def arrow(before: Any, after: Any) -> str:
    """``before → after`` as the approver reads it."""
    return f"{NOTHING if before in (None, '') else before} → " \
           f"{NOTHING if after in (None, '') else after}"


def _account(args: Mapping[str, Any]) -> str:
    return segment(args["account_number"])


# --- reads ---------------------------------------------------------------------------------

def receipt(ctx: ToolContext, account_number: str, year: int | None = None,
            month: int | None = None) -> dict[str, Any]:
    """Ledger's receipt of one company's month, as Ledger sends it."""
    answer: dict[str, Any] = call(ctx, "ledger",
                                  f"/api/billing/calculate/{segment(account_number)}",
                                  params={"year": year, "month": month})
    return answer


def billing(ctx: ToolContext, args: dict[str, Any]) -> Any:
    raw = receipt(ctx, args["account_number"], args.get("year"), args.get("month"))
    result = pick(raw, ("account_number", "company_name", "period", "plan_name",
                        "contract_term", "support_level", "error", "subtotals", "total",
                        "asset_quantities", "user_quantities", "effective_rates", "backup",
                        "warnings", "contract_end_date", "contract_expired"))
    lines = [pick(line, ("section", "name", "type", "quantity", "rate", "amount",
                         "description")) for line in raw.get("lines") or []]
    result["lines"] = capped(lines, LINES, key="lines")
    hours = raw.get("hours")
    if isinstance(hours, dict):
        result["hours"] = {key: value for key, value in hours.items()
                           if key not in ("tickets", "earlier_months")}
        result["hours"]["tickets"] = len(hours.get("tickets") or [])
    result["features"] = raw.get("features")
    return result


def plans(ctx: ToolContext, args: dict[str, Any]) -> Any:
    found = call(ctx, "ledger", "/api/plans") or []
    name = str(args.get("plan_name") or "").strip().casefold()
    if name:
        found = [plan for plan in found if name in str(plan.get("plan_name", "")).casefold()]
    return capped(found, int(args.get("limit", 50)), key="plans")


def overrides(ctx: ToolContext, account_number: str) -> dict[str, Any]:
    """Everything that adjusts the company's bill, as Ledger sends it."""
    answer: dict[str, Any] = call(ctx, "ledger", f"/api/overrides/{segment(account_number)}")
    return answer


def get_overrides(ctx: ToolContext, args: dict[str, Any]) -> Any:
    everything = overrides(ctx, args["account_number"])
    client = everything.get("client") or {}
    result: dict[str, Any] = {
        "account_number": args["account_number"],
        "client_override": {name: entry.get("value") for name, entry in client.items()
                            if isinstance(entry, dict) and entry.get("enabled")},
    }
    for kind in ("manual-assets", "manual-users", "line-items", "assets", "users", "features"):
        result[kind.replace("-", "_")] = capped(everything.get(kind) or [], 100, key="rows")
    return result


# --- the client override -------------------------------------------------------------------

def _override_body(args: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, value in (args.get("set") or {}).items():
        if name in RATES:
            value = money(value)
        body[name] = {"enabled": True, "value": value}
    for name in args.get("clear") or []:
        if name in body:
            raise ToolError(f"{name}: both set and cleared")
        body[name] = {"enabled": False, "value": None}
    if not body:
        raise ToolError("Nothing to change: give `set` and/or `clear`.")
    return body


def _shown(entry: Any) -> Any:
    if isinstance(entry, Mapping) and entry.get("enabled"):
        return entry.get("value")
    return None


def _billed_by(ctx: ToolContext, account_number: str) -> dict[str, Any]:
    """What the bill uses now for each overridable field (the plan's, or an override's)."""
    bill = receipt(ctx, account_number)
    if bill.get("error"):
        return {}
    return {**(bill.get("effective_rates") or {}), "plan_name": bill.get("plan_name"),
            "support_level": bill.get("support_level")}


def propose_override(ctx: ToolContext, args: dict[str, Any]) -> Proposal:
    body = _override_body(args)
    current = call(ctx, "ledger", f"/api/overrides/{_account(args)}/client") or {}
    billed = _billed_by(ctx, args["account_number"])
    details: dict[str, Any] = {"account_number": args["account_number"]}
    for name, entry in body.items():
        before = _shown(current.get(name))
        if before is None and billed.get(name) not in (None, ""):
            before = f"{billed[name]} (plan)"
        details[name] = arrow(before, entry["value"] if entry["enabled"] else "(plan's value)")
    return Proposal(action=f"Change the billing override of {args['account_number']} "
                           f"({', '.join(body)})", details=details)


def set_override(ctx: ToolContext, args: dict[str, Any]) -> Any:
    answer = call(ctx, "ledger", f"/api/overrides/{_account(args)}/client", "PUT",
                  json=_override_body(args))
    return {"updated": True, "client_override": {
        name: entry.get("value") for name, entry in (answer or {}).items()
        if isinstance(entry, dict) and entry.get("enabled")}}


# --- rows: manual assets and users, line items ---------------------------------------------

def _rows(ctx: ToolContext, account_number: str, kind: str) -> list[dict[str, Any]]:
    answer = call(ctx, "ledger", f"/api/overrides/{segment(account_number)}/{kind}") or []
    return list(answer)


def _row(ctx: ToolContext, account_number: str, kind: str, row_id: int) -> dict[str, Any]:
    for row in _rows(ctx, account_number, kind):
        if row.get("id") == row_id:
            return row
    raise ToolError(f"There is no {kind} entry {row_id} for account {account_number}.")


def row_body(kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
    body = {name: values[name] for name in ROW_FIELDS[kind] if name in values}
    for name in MONEY_FIELDS:
        if body.get(name) is not None:
            body[name] = money(body[name])
    return body


def _describe(kind: str, row: Mapping[str, Any]) -> str:
    name = row.get("name") or row.get("hostname") or row.get("full_name") or row.get("id")
    return f"{kind[:-1].replace('-', ' ')} '{name}'"


def _lister(kind: str) -> Any:
    def run(ctx: ToolContext, args: dict[str, Any]) -> Any:
        rows = _rows(ctx, args["account_number"], kind)
        return capped([{**row, "notes": short(row.get("notes"), 300)} if "notes" in row
                       else row for row in rows], 100, key="rows")

    return run


def _adder(kind: str) -> tuple[Any, Any]:
    def propose(ctx: ToolContext, args: dict[str, Any]) -> Proposal:
        body = row_body(kind, args)
        existing = _rows(ctx, args["account_number"], kind)
        details: dict[str, Any] = {"account_number": args["account_number"]}
        details.update({name: arrow(None, value) for name, value in body.items()})
        details["entries now"] = len(existing)
        return Proposal(action=f"Add {_describe(kind, body)} to the bill of "
                               f"{args['account_number']}", details=details)

    def run(ctx: ToolContext, args: dict[str, Any]) -> Any:
        created = call(ctx, "ledger", f"/api/overrides/{_account(args)}/{kind}", "POST",
                       json=row_body(kind, args))
        return {"added": created}

    return propose, run


def _updater(kind: str) -> tuple[Any, Any]:
    def propose(ctx: ToolContext, args: dict[str, Any]) -> Proposal:
        body = row_body(kind, args)
        if not body:
            raise ToolError("Nothing to change: give at least one field.")
        current = _row(ctx, args["account_number"], kind, int(args["id"]))
        details: dict[str, Any] = {"account_number": args["account_number"],
                                   "id": int(args["id"])}
        details.update({name: arrow(current.get(name), value) for name, value in body.items()})
        return Proposal(action=f"Change {_describe(kind, current)} of "
                               f"{args['account_number']}", details=details)

    def run(ctx: ToolContext, args: dict[str, Any]) -> Any:
        updated = call(ctx, "ledger",
                       f"/api/overrides/{_account(args)}/{kind}/{int(args['id'])}", "PUT",
                       json=row_body(kind, args))
        return {"updated": updated}

    return propose, run


def _remover(kind: str) -> tuple[Any, Any]:
    def propose(ctx: ToolContext, args: dict[str, Any]) -> Proposal:
        current = _row(ctx, args["account_number"], kind, int(args["id"]))
        details: dict[str, Any] = {"account_number": args["account_number"],
                                   "id": int(args["id"])}
        details.update({name: arrow(current.get(name), None) for name in ROW_FIELDS[kind]
                        if current.get(name) not in (None, "")})
        return Proposal(action=f"Remove {_describe(kind, current)} from the bill of "
                               f"{args['account_number']}", details=details)

    def run(ctx: ToolContext, args: dict[str, Any]) -> Any:
        call(ctx, "ledger", f"/api/overrides/{_account(args)}/{kind}/{int(args['id'])}",
             "DELETE")
        return {"removed": int(args["id"])}

    return propose, run


# --- accepting a bill ----------------------------------------------------------------------

def propose_accept(ctx: ToolContext, args: dict[str, Any]) -> Proposal:
    raw = receipt(ctx, args["account_number"], args["year"], args["month"])
    if raw.get("error"):
        raise ToolError(f"This bill cannot be accepted: {raw['error']}")
    return Proposal(
        action=f"Accept the bill of {args['account_number']} for "
               f"{int(args['year']):04d}-{int(args['month']):02d} (it becomes an immutable "
               "snapshot with an invoice number)",
        details={"account_number": args["account_number"],
                 "company": raw.get("company_name"), "period": raw.get("period"),
                 "plan": raw.get("plan_name"), "total": raw.get("total"),
                 "lines": len(raw.get("lines") or []), "status": arrow("open", "accepted"),
                 "notes": args.get("notes", "")})


def accept_bill(ctx: ToolContext, args: dict[str, Any]) -> Any:
    snapshot = call(ctx, "ledger", "/archive/snapshots", "POST", json={
        "account_number": args["account_number"], "year": args["year"],
        "month": args["month"], "notes": args.get("notes", "")})
    return {"accepted": True, **pick(snapshot or {}, (
        "id", "invoice_number", "account_number", "company_name", "period", "total",
        "invoice_date", "due_date", "accepted_by", "accepted_at", "status"))}


# --- the tools -----------------------------------------------------------------------------

ACCOUNT_ONLY = obj({"account_number": ACCOUNT}, ["account_number"])
MANUAL_ASSET_FIELDS = {
    "hostname": text("Name of the equipment.", max_length=255),
    "billing_type": choice("How it is billed (a type's rate, Custom with custom_cost, or "
                           "No Charge).", ASSET_TYPES),
    "custom_cost": AMOUNT,
    "notes": text("Notes.", max_length=2000, min_length=0)}
MANUAL_USER_FIELDS = {
    "full_name": text("The person's name.", max_length=255),
    "billing_type": choice("Paid (the per-user rate), No Charge, or Custom with custom_cost.",
                           USER_TYPES),
    "custom_cost": AMOUNT,
    "notes": text("Notes.", max_length=2000, min_length=0)}
LINE_ITEM_FIELDS = {
    "name": text("The line's name on the bill.", max_length=255),
    "kind": choice("recurring (every month), one_off (one month) or yearly (one month a "
                   "year).", LINE_ITEM_KINDS),
    "amount": AMOUNT,
    "description": text("Description.", max_length=2000, min_length=0),
    "start_period": PERIOD, "end_period": PERIOD,
    "one_off_period": {**PERIOD, "description": "The month a one_off is billed (YYYY-MM)."},
    "yearly_month": integer("The month (1-12) a yearly item is billed.", minimum=1,
                            maximum=12)}


def _row_tools(tool_name: str, label: str, kind: str,
               fields: Mapping[str, Any], required: Sequence[str]) -> tuple[Tool, ...]:
    add_propose, add_run = _adder(kind)
    update_propose, update_run = _updater(kind)
    remove_propose, remove_run = _remover(kind)
    with_id = {"account_number": ACCOUNT, "id": ROW_ID}
    return (
        Tool(f"ledger_list_{tool_name}s", f"A company's {label}s in Ledger (with their ids).",
             ACCOUNT_ONLY, _lister(kind)),
        Tool(f"ledger_add_{tool_name}", f"Add a {label} to a company's bill. Needs approval; "
                                        "billing and admin users only.",
             obj({"account_number": ACCOUNT, **fields}, ["account_number", *required]),
             add_run, propose=add_propose),
        Tool(f"ledger_update_{tool_name}", f"Change fields of a {label}. Needs approval; "
                                           "billing and admin users only.",
             obj({**with_id, **fields}, ["account_number", "id"]),
             update_run, propose=update_propose),
        Tool(f"ledger_remove_{tool_name}", f"Remove a {label} from a company's bill. Needs "
                                           "approval; billing and admin users only.",
             obj(with_id, ["account_number", "id"]), remove_run, propose=remove_propose),
    )


OVERRIDE_SET = {"type": "object", "description": "Fields to override, with their new values "
                "(rates and hours as amounts; support_level one of All Inclusive, Unlimited, "
                "Billed Hourly; plan_name a plan's name).",
                "minProperties": 1, "additionalProperties": False,
                "properties": {"plan_name": text("A plan's name.", max_length=100),
                               "support_level": choice("Support level.", SUPPORT_LEVELS),
                               **{name: AMOUNT for name in RATES}}}
OVERRIDE_CLEAR = {"type": "array", "description": "Fields whose override is switched off "
                  "(the plan's value applies again).", "uniqueItems": True, "maxItems": 16,
                  "items": {"enum": list(OVERRIDE_FIELDS)}}

TOOLS: tuple[Tool, ...] = (
    Tool("ledger_billing",
         "A company's bill for a month: every line (quantity x rate = amount), subtotals, "
         "total, effective rates, prepaid and billable hours, backup, features, warnings.",
         obj({"account_number": ACCOUNT, "year": YEAR, "month": MONTH}, ["account_number"]),
         billing),
    Tool("ledger_plans", "Billing plans with their rates, support level and features.",
         obj({"plan_name": text("Only plans whose name contains this.", max_length=100),
              "limit": limit(50, 200)}),
         plans),
    Tool("ledger_get_overrides",
         "Everything that adjusts a company's bill: the client override (only fields that "
         "are on), manual assets and users, line items, asset and user overrides, features.",
         ACCOUNT_ONLY, get_overrides),
    Tool("ledger_set_override",
         "Set and/or clear fields of a company's client billing override (rates, prepaid "
         "hours, support level, plan). Needs approval; billing and admin users only.",
         # At least one of set and clear (checked when proposing: the API's tool schemas
         # take no anyOf at the top).
         obj({"account_number": ACCOUNT, "set": OVERRIDE_SET, "clear": OVERRIDE_CLEAR},
             ["account_number"]),
         set_override, propose=propose_override),
    *_row_tools("manual_asset", "manual (billable) asset", "manual-assets",
                MANUAL_ASSET_FIELDS, ["hostname", "billing_type"]),
    *_row_tools("manual_user", "manual (billable) user", "manual-users",
                MANUAL_USER_FIELDS, ["full_name"]),
    *_row_tools("line_item", "custom line item", "line-items", LINE_ITEM_FIELDS,
                ["name", "kind", "amount"]),
    Tool("ledger_accept_bill",
         "Accept a company's bill for a month: it becomes an immutable snapshot with an "
         "invoice number. Needs approval; billing and admin users only.",
         obj({"account_number": ACCOUNT, "year": {**YEAR, "description": "Year."},
              "month": {**MONTH, "description": "Month, 1-12."},
              "notes": text("Notes kept with the snapshot.", max_length=2000, min_length=0)},
             ["account_number", "year", "month"]),
         accept_bill, propose=propose_accept),
)
