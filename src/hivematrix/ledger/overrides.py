"""The overrides one company's bill is calculated with, and their conversion to the
calculation's inputs.

Six kinds change the price (client billing override, asset override, user override, manual
asset, manual user, custom line item); feature overrides only change what the bill shows.
Every write is validated twice: field by field here (the refusal names the field) and by
building the calculation's input, so nothing is stored that a bill could not use.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hivematrix.ledger import fields, inputs
from hivematrix.ledger.errors import LedgerError, not_found
from hivematrix.ledger.inputs import (
    ASSET_TYPES,
    CUSTOM,
    LINE_ITEM_KINDS,
    NO_CHARGE,
    RATE_NAMES,
    SUPPORT_LEVELS,
    USER_TYPES,
    InputError,
    Overrides,
    Period,
    Toggle,
)
from hivematrix.ledger.models import (
    AssetOverride,
    Base,
    ClientBillingOverride,
    CustomLineItem,
    FeatureOverride,
    ManualAsset,
    ManualUser,
    UserOverride,
)
from hivematrix.ledger.money import money_text

#: What an asset may be billed as.
ASSET_BILLING_TYPES = (*ASSET_TYPES, CUSTOM, NO_CHARGE)


def _money_text(value: Any) -> Any:
    return money_text(value) if value is not None else None


# --- conversion to the calculation's inputs ------------------------------------------------

def _period(text: str | None) -> Period | None:
    return Period.parse(text) if text else None


def client_input(row: ClientBillingOverride) -> inputs.ClientOverride:
    values: dict[str, Any] = {}
    for name in ("plan_name", "support_level", *RATE_NAMES):
        enabled = bool(getattr(row, f"{name}_enabled"))
        value = getattr(row, name)
        values[name] = Toggle(enabled and value is not None, value)
    return inputs.ClientOverride(**values)


def asset_input(row: AssetOverride) -> inputs.AssetOverride:
    return inputs.AssetOverride(row.asset_id, row.billing_type, row.custom_cost)


def user_input(row: UserOverride) -> inputs.UserOverride:
    return inputs.UserOverride(row.contact_id, row.billing_type, row.custom_cost)


def manual_asset_input(row: ManualAsset) -> inputs.ManualAsset:
    return inputs.ManualAsset(row.id or 0, row.hostname, row.billing_type, row.custom_cost,
                              row.notes or "")


def manual_user_input(row: ManualUser) -> inputs.ManualUser:
    return inputs.ManualUser(row.id or 0, row.full_name, row.billing_type, row.custom_cost,
                             row.notes or "")


def line_item_input(row: CustomLineItem) -> inputs.CustomLineItem:
    return inputs.CustomLineItem(
        id=row.id or 0, name=row.name, kind=row.kind,  # type: ignore[arg-type]
        amount=row.amount, description=row.description or "", start=_period(row.start_period),
        end=_period(row.end_period), one_off=_period(row.one_off_period),
        yearly_month=row.yearly_month)


def feature_input(row: FeatureOverride) -> inputs.FeatureOverride:
    return inputs.FeatureOverride(row.feature_key, row.value, row.enabled)


# --- the kinds with many rows per company --------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """One kind of override row: its table, how a body becomes columns, how a row becomes
    JSON and the calculation's input."""

    name: str
    model: type[Base]
    parse: Callable[[Mapping[str, Any], bool], dict[str, Any]]
    to_json: Callable[[Any], dict[str, Any]]
    to_input: Callable[[Any], Any]
    #: The column naming a Codex object, unique per company (asset and user overrides).
    key: str | None = None


def _custom(data: Mapping[str, Any], values: dict[str, Any]) -> None:
    values["custom_cost"] = fields.money(data, "custom_cost")
    if values.get("billing_type") == CUSTOM and values["custom_cost"] is None:
        raise LedgerError("custom_cost: billing type Custom needs a custom cost",
                          field="custom_cost")


def _partial(values: dict[str, Any], data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
    return {key: value for key, value in values.items() if not partial or key in data}


def _asset_override(data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "asset_id": fields.integer(data, "asset_id", minimum=1, maximum=2**31 - 1,
                                   required=not partial),
        "billing_type": fields.choice(data, "billing_type", ASSET_BILLING_TYPES,
                                      required=not partial)}
    _custom(data, values)
    return _partial(values, data, partial)


def _user_override(data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "contact_id": fields.integer(data, "contact_id", minimum=1, maximum=2**31 - 1,
                                     required=not partial),
        "billing_type": fields.choice(data, "billing_type", USER_TYPES, required=not partial)}
    _custom(data, values)
    return _partial(values, data, partial)


def _manual_asset(data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
    # A manual asset's type is free text: an unknown one bills 0 with a warning on the bill.
    values: dict[str, Any] = {
        "hostname": fields.text(data, "hostname", required=not partial),
        "billing_type": fields.text(data, "billing_type", required=not partial, max_length=50),
        "notes": fields.text(data, "notes", max_length=10_000, default="")}
    _custom(data, values)
    return _partial(values, data, partial)


def _manual_user(data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "full_name": fields.text(data, "full_name", required=not partial),
        "billing_type": fields.choice(data, "billing_type", USER_TYPES, default="Paid"),
        "notes": fields.text(data, "notes", max_length=10_000, default="")}
    _custom(data, values)
    return _partial(values, data, partial)


def _line_item(data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": fields.text(data, "name", required=not partial),
        "description": fields.text(data, "description", max_length=10_000, default=""),
        "kind": fields.choice(data, "kind", LINE_ITEM_KINDS, required=not partial),
        "amount": fields.money(data, "amount", required=not partial),
        "start_period": fields.period(data, "start_period"),
        "end_period": fields.period(data, "end_period"),
        "one_off_period": fields.period(data, "one_off_period"),
        "yearly_month": fields.integer(data, "yearly_month", minimum=1, maximum=12)}
    return _partial(values, data, partial)


def _feature(data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "feature_key": fields.text(data, "feature_key", required=not partial, max_length=100),
        "value": fields.text(data, "value", required=not partial),
        "enabled": fields.boolean(data, "enabled", True)}
    return _partial(values, data, partial)


def _row_json(columns: Iterable[str]) -> Callable[[Any], dict[str, Any]]:
    names = ("id", "account_number", *columns)

    def encode(row: Any) -> dict[str, Any]:
        result = {name: getattr(row, name) for name in names}
        for money_column in ("custom_cost", "amount"):
            if money_column in result:
                result[money_column] = _money_text(result[money_column])
        return result

    return encode


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("assets", AssetOverride, _asset_override,
         _row_json(("asset_id", "billing_type", "custom_cost")), asset_input, key="asset_id"),
    Kind("users", UserOverride, _user_override,
         _row_json(("contact_id", "billing_type", "custom_cost")), user_input, key="contact_id"),
    Kind("manual-assets", ManualAsset, _manual_asset,
         _row_json(("hostname", "billing_type", "custom_cost", "notes")), manual_asset_input),
    Kind("manual-users", ManualUser, _manual_user,
         _row_json(("full_name", "billing_type", "custom_cost", "notes")), manual_user_input),
    Kind("line-items", CustomLineItem, _line_item,
         _row_json(("name", "description", "kind", "amount", "start_period", "end_period",
                    "one_off_period", "yearly_month")), line_item_input),
    Kind("features", FeatureOverride, _feature,
         _row_json(("feature_key", "value", "enabled")), feature_input, key="feature_key"),
)}


def kind(name: str) -> Kind:
    found = KINDS.get(name)
    if found is None:
        raise LedgerError(f"There is no override kind '{name}' (one of {', '.join(KINDS)}).",
                          status=404)
    return found


def rows(session: Session, spec: Kind, account_number: str) -> list[Any]:
    model: Any = spec.model
    return list(session.scalars(select(model).where(model.account_number == account_number)
                                .order_by(model.id)))


def get_row(session: Session, spec: Kind, account_number: str, row_id: int) -> Any:
    row: Any = session.get(spec.model, row_id)
    if row is None or row.account_number != account_number:
        raise not_found(f"{spec.name} entry {row_id} for account {account_number}")
    return row


def _check(spec: Kind, row: Any) -> None:
    """The row must make a valid calculation input (a one-off needs its month, ...)."""
    try:
        spec.to_input(row)
    except InputError as exc:
        raise LedgerError(str(exc), field="body") from None


def _check_key(session: Session, spec: Kind, row: Any) -> None:
    if spec.key is None:
        return
    model: Any = spec.model
    clash = session.scalar(select(model.id).where(
        model.account_number == row.account_number,
        getattr(model, spec.key) == getattr(row, spec.key), model.id != (row.id or 0)))
    if clash is not None:
        raise LedgerError(f"{spec.key}: this company has an entry for {getattr(row, spec.key)} "
                          "already", status=409, field=spec.key)


def create(session: Session, spec: Kind, account_number: str, data: Any) -> Any:
    row: Any = spec.model(account_number=account_number, **spec.parse(fields.body(data), False))
    _check(spec, row)
    _check_key(session, spec, row)
    session.add(row)
    session.flush()
    return row


def update(session: Session, spec: Kind, account_number: str, row_id: int, data: Any) -> Any:
    row = get_row(session, spec, account_number, row_id)
    for name, value in spec.parse(fields.body(data), True).items():
        setattr(row, name, value)
    _check(spec, row)
    _check_key(session, spec, row)
    session.flush()
    return row


def delete(session: Session, spec: Kind, account_number: str, row_id: int) -> None:
    session.delete(get_row(session, spec, account_number, row_id))
    session.flush()


# --- the client billing override (one per company) -----------------------------------------

def client_json(row: ClientBillingOverride | None) -> dict[str, Any]:
    """Every toggled field as ``{"enabled": bool, "value": ...}`` (money as strings)."""
    result: dict[str, Any] = {}
    for name in ("plan_name", "support_level", *RATE_NAMES):
        value = getattr(row, name) if row else None
        result[name] = {"enabled": bool(row and getattr(row, f"{name}_enabled")),
                        "value": _money_text(value) if name in RATE_NAMES else value}
    return result


def get_client(session: Session, account_number: str) -> ClientBillingOverride | None:
    return session.scalar(select(ClientBillingOverride).where(
        ClientBillingOverride.account_number == account_number))


def put_client(session: Session, account_number: str, data: Any) -> ClientBillingOverride:
    """Set the fields present in ``data`` (``{"per_user": {"enabled": true, "value": "0"}}``);
    fields left out keep their values."""
    data = fields.body(data)
    unknown = sorted(set(data) - {"plan_name", "support_level", *RATE_NAMES})
    if unknown:
        raise LedgerError(f"{unknown[0]}: not an overridable field", field=unknown[0])
    row = get_client(session, account_number) or ClientBillingOverride(
        account_number=account_number)
    for name, entry in data.items():
        entry = fields.body(entry) if isinstance(entry, Mapping) else None
        if entry is None:
            raise LedgerError(f"{name}: expected {{\"enabled\": ..., \"value\": ...}}",
                              field=name)
        enabled = fields.boolean(entry, "enabled", False)
        try:
            if name == "plan_name":
                value: Any = fields.text(entry, "value", max_length=100)
            elif name == "support_level":
                value = fields.choice(entry, "value", SUPPORT_LEVELS)
            else:
                value = fields.money(entry, "value")
        except LedgerError as exc:
            raise LedgerError(f"{name}.{exc}", field=name) from None
        if enabled and value in (None, ""):
            raise LedgerError(f"{name}: enabled without a value", field=name)
        setattr(row, name, value)
        setattr(row, f"{name}_enabled", enabled)
    for name in ("plan_name", "support_level", *RATE_NAMES):
        if getattr(row, f"{name}_enabled") is None:
            setattr(row, f"{name}_enabled", False)
    session.add(row)
    session.flush()
    return row


def delete_client(session: Session, account_number: str) -> None:
    row = get_client(session, account_number)
    if row is None:
        raise not_found(f"client billing override for account {account_number}")
    session.delete(row)
    session.flush()


# --- everything for a bill -----------------------------------------------------------------

def everything_json(session: Session, account_number: str) -> dict[str, Any]:
    return {"account_number": account_number,
            "client": client_json(get_client(session, account_number)),
            **{name: [spec.to_json(row) for row in rows(session, spec, account_number)]
               for name, spec in KINDS.items()}}


def _overrides(client: ClientBillingOverride | None, by_kind: Mapping[str, list[Any]]
               ) -> Overrides:
    def converted(name: str) -> tuple[Any, ...]:
        return tuple(KINDS[name].to_input(row) for row in by_kind.get(name, ()))

    return Overrides(client=client_input(client) if client else None,
                     assets=converted("assets"), users=converted("users"),
                     manual_assets=converted("manual-assets"),
                     manual_users=converted("manual-users"),
                     line_items=converted("line-items"), features=converted("features"))


def load(session: Session, account_number: str) -> Overrides:
    """One company's overrides as the calculation takes them."""
    return _overrides(get_client(session, account_number),
                      {name: rows(session, spec, account_number)
                       for name, spec in KINDS.items()})


def load_all(session: Session) -> dict[str, Overrides]:
    """Every company's overrides, one query per table (for the dashboard and bulk exports)."""
    clients = {row.account_number: row for row in session.scalars(
        select(ClientBillingOverride))}
    grouped: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for name, spec in KINDS.items():
        model: Any = spec.model
        for row in session.scalars(select(model).order_by(model.id)):
            grouped[row.account_number][name].append(row)
    return {account: _overrides(clients.get(account), grouped.get(account, {}))
            for account in set(clients) | set(grouped)}
