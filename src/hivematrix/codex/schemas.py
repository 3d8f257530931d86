"""Request shapes of Codex's JSON API (responses are built by :mod:`serialise`)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import IP, Boolean, Date, Email, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp

from hivematrix.codex.agents import THEMES
from hivematrix.codex.billing_types import BILLING_TYPES
from hivematrix.codex.models import (
    COMPLIANCE_LEVELS,
    CONTACT_ROLES,
    CONTRACT_TERMS,
    LINK_KINDS,
    NETWORK_KINDS,
)

ACCOUNT_NUMBER = Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$",
                        error="Use 1-50 letters, digits, dots, dashes or underscores.")


class CompanyFields(Schema):
    name = String(validate=[Length(1, 255), Regexp(r"(?s).*\S", error="Must not be blank.")])
    description = String(validate=Length(max=10_000))
    parent_account_number = String(allow_none=True, validate=ACCOUNT_NUMBER)
    compliance_level = String(validate=OneOf(COMPLIANCE_LEVELS))
    billing_plan = String(allow_none=True, validate=Length(max=100))
    contract_term_length = String(allow_none=True, validate=OneOf(CONTRACT_TERMS))
    contract_start_date = Date(allow_none=True)
    support_level = String(allow_none=True, validate=Length(max=50))
    domains = List(String(validate=Length(1, 253)), validate=Length(max=100))
    main_phone = String(validate=Length(max=50))
    address = String(validate=Length(max=2000))
    active = Boolean()


class CompanyIn(CompanyFields):
    account_number = String(required=True, validate=ACCOUNT_NUMBER)
    name = String(required=True, validate=[Length(1, 255),
                                           Regexp(r"(?s).*\S", error="Must not be blank.")])


class CompanyPatch(CompanyFields):
    account_number = String(validate=ACCOUNT_NUMBER)


NOT_BLANK = Regexp(r"(?s).*\S", error="Must not be blank.")


class EmailAddress(Email):
    """An address, trimmed and lower-cased before it is checked (as it is stored)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
        return super()._deserialize(value, attr, data, **kwargs)


# -- contacts ----------------------------------------------------------------------------


class ContactRoleIn(Schema):
    account_number = String(required=True, validate=ACCOUNT_NUMBER)
    role = String(required=True, validate=OneOf(CONTACT_ROLES))


class ContactFields(Schema):
    name = String(validate=[Length(1, 255), NOT_BLANK])
    first_name = String(validate=Length(max=120))
    last_name = String(validate=Length(max=120))
    email = EmailAddress(allow_none=True, validate=Length(max=255))
    secondary_emails = List(EmailAddress(validate=Length(max=255)), validate=Length(max=20))
    work_phone = String(validate=Length(max=50))
    mobile_phone = String(validate=Length(max=50))
    title = String(validate=Length(max=150))
    active = Boolean()
    vip = Boolean()


class ContactIn(ContactFields):
    roles = List(Nested(ContactRoleIn), validate=Length(max=200))


class ContactRolesIn(Schema):
    roles = List(Nested(ContactRoleIn), required=True, validate=Length(max=200))


# -- locations ---------------------------------------------------------------------------


class LocationPatch(Schema):
    name = String(validate=[Length(1, 150), NOT_BLANK])
    address = String(validate=Length(max=2000))
    phone = String(validate=Length(max=50))


class LocationIn(LocationPatch):
    name = String(required=True, validate=[Length(1, 150), NOT_BLANK])


# -- assets ------------------------------------------------------------------------------


class AssetPatch(Schema):
    account_number = String(validate=ACCOUNT_NUMBER)
    hostname = String(validate=[Length(1, 255), NOT_BLANK])
    device_category = String(validate=Length(max=100))
    billing_type_override = String(allow_none=True, validate=OneOf(BILLING_TYPES))
    operating_system = String(validate=Length(max=255))
    serial_number = String(validate=Length(max=100))
    model = String(validate=Length(max=150))
    manufacturer = String(validate=Length(max=150))
    purchase_date = Date(allow_none=True)
    warranty_expiry = Date(allow_none=True)
    internal_ip = String(validate=Length(max=100))
    external_ip = String(validate=Length(max=100))
    last_logged_in_user = String(validate=Length(max=255))
    domain = String(validate=Length(max=255))
    description = String(validate=Length(max=10_000))
    backup_bytes = Integer(allow_none=True, strict=True, validate=Range(min=0))


class AssetIn(AssetPatch):
    account_number = String(required=True, validate=ACCOUNT_NUMBER)
    hostname = String(required=True, validate=[Length(1, 255), NOT_BLANK])


class AssetContactsIn(Schema):
    contact_ids = List(Integer(strict=True), required=True, validate=Length(max=200))


# -- network equipment -------------------------------------------------------------------


class NetworkDevicePatch(Schema):
    account_number = String(validate=ACCOUNT_NUMBER)
    kind = String(validate=OneOf(NETWORK_KINDS))
    name = String(validate=[Length(1, 150), NOT_BLANK])
    location_id = Integer(allow_none=True, strict=True)
    management_ip = IP(allow_none=True)
    manufacturer = String(validate=Length(max=150))
    model = String(validate=Length(max=150))
    firmware = String(validate=Length(max=100))
    serial_number = String(validate=Length(max=100))
    notes = String(validate=Length(max=10_000))


class NetworkDeviceIn(NetworkDevicePatch):
    account_number = String(required=True, validate=ACCOUNT_NUMBER)
    kind = String(required=True, validate=OneOf(NETWORK_KINDS))
    name = String(required=True, validate=[Length(1, 150), NOT_BLANK])


class NetworkLinkIn(Schema):
    to_device_id = Integer(required=True, strict=True)
    from_port = String(validate=Length(max=50))
    to_port = String(validate=Length(max=50))
    kind = String(validate=OneOf(LINK_KINDS))


# -- tickets -----------------------------------------------------------------------------


class TicketPatch(Schema):
    #: A normalised status (open, pending, resolved, closed, ...); the connector maps it back.
    status = String(validate=[Length(1, 40), Regexp(r"^[a-z][a-z0-9_]*$",
                                                    error="Use a normalised status such as "
                                                          "open, pending or resolved.")])
    note = String(validate=[Length(1, 20_000), NOT_BLANK])


# -- the signed-in agent -----------------------------------------------------------------


class AgentSettingsPatch(Schema):
    theme = String(validate=OneOf(THEMES))
    home_page = String(validate=Length(1, 40))
    # Checked by agents.update, which names the field (one rule for the API and the page).
    color_theme = String(validate=Length(1, 20))
    knowledge_tree_view = String(validate=Length(1, 20))
