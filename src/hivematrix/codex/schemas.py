"""Request shapes of Codex's JSON API (responses are built by :mod:`serialise`)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Date, List, String
from apiflask.validators import Length, OneOf, Regexp

from hivematrix.codex.models import COMPLIANCE_LEVELS, CONTRACT_TERMS

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
