"""CSV/JSON import (plan, dry run, apply) and export of companies, contacts and assets."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import session as flask_session
from flask.testing import FlaskClient
from flask_wtf.csrf import generate_csrf
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from hivematrix.codex import exports, imports
from hivematrix.codex.billing_types import BillingTypeMap
from hivematrix.codex.models import Asset, Company, Contact, ContactRole
from hivematrix.common.db import Database

Headers = Callable[..., dict[str, str]]


def seed(database: Database) -> None:
    """Data as the sync and staff leave it, including values a spreadsheet would misread."""
    with database.transaction() as session:
        group = Company(account_number="P100", name="Dental Group", compliance_level="hipaa")
        acme = Company(account_number="620547", name="Acme Dental ", parent=group,
                       description="Two offices,\nsecond floor \"B\"", billing_plan="Gold",
                       contract_term_length="1 Year", contract_start_date=date(2025, 3, 1),
                       contract_end_date=date(2026, 2, 28), domains=["Acme.Example"],
                       main_phone="+1 555 0100", psa_source="freshservice",
                       psa_external_id="77")
        gone = Company(account_number="999", name="=Gone Ltd", active=False,
                       archived_at=datetime(2025, 1, 1, tzinfo=UTC))
        session.add_all([group, acme, gone])
        session.flush()
        dana = Contact(name="Dana Smith", first_name="Dana", last_name="Smith",
                       email="dana@acme.example", secondary_emails=["d@acme.example"],
                       work_phone="-200", vip=True)
        lee = Contact(name="Lee", email="lee@acme.example", active=False)
        synced = Contact(name="Sam PSA", email="shared@acme.example",
                         external_source="freshservice", external_id="5001")
        other = Contact(name="Sam Other", email="shared@acme.example",
                        external_source="connectwise", external_id="9")
        session.add_all([dana, lee, synced, other])
        session.flush()
        session.add_all([ContactRole(contact_id=dana.id, company_id=acme.id, role="billing"),
                         ContactRole(contact_id=dana.id, company_id=acme.id, role="primary"),
                         ContactRole(contact_id=dana.id, company_id=group.id, role="general"),
                         ContactRole(contact_id=synced.id, company_id=acme.id,
                                     role="technical")])
        session.add_all([
            Asset(company_id=acme.id, hostname="SRV1", device_category="Server",
                  billing_type="Server", billing_type_override="VM", source="rmm",
                  rmm_source="datto", rmm_device_id="d-1", serial_number="SN-1",
                  operating_system="Windows Server 2022", internal_ip="10.0.0.5"),
            Asset(company_id=acme.id, hostname="PC1", device_category="Laptop",
                  billing_type="Workstation", source="manual", serial_number="SN-2",
                  purchase_date=date(2024, 5, 2), warranty_expiry=date(2027, 5, 1),
                  description="@reception\tdesk"),
            Asset(company_id=acme.id, hostname="OLD", billing_type="Workstation",
                  retired_at=datetime(2025, 6, 1, tzinfo=UTC)),
        ])


@pytest.fixture
def session(codex_db: Database) -> Iterator[Session]:
    seed(codex_db)
    with codex_db.sessionmaker() as session:
        yield session


def csv_bytes(*rows: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def plan_csv(session: Session, kind: str, *rows: list[str]) -> imports.Plan:
    return imports.plan(session, kind, imports.read_csv(csv_bytes(*rows)))


def actions(plan: imports.Plan) -> list[tuple[str, str]]:
    return [(entry.key, entry.action) for entry in plan.rows]


def company(database: Database, number: str) -> Company | None:
    with database.transaction() as session:
        return session.scalar(select(Company).where(Company.account_number == number))


# --- plan, dry run and apply -----------------------------------------------------------------

def test_plan_reports_each_row_and_changes_nothing(session: Session,
                                                   codex_db: Database) -> None:
    before = {kind: exports.export(session, kind, "json") for kind in imports.KINDS}
    plan = plan_csv(session, "companies",
                    ["account_number", "name", "contract_term_length", "parent_account_number"],
                    ["P100", "Dental Group", "", ""],
                    ["620547", "Acme Dental Care", "24 months", "P100"],
                    ["700001", "New Clinic", "Month to Month", "620547"])
    assert actions(plan) == [("P100", "unchanged"), ("620547", "update"),
                             ("700001", "create")]
    update = plan.rows[1].to_dict()
    assert update["changes"] == {
        "name": {"old": "Acme Dental ", "new": "Acme Dental Care"},
        "contract_term_length": {"old": "1 Year", "new": "2 Year"},
        "contract_end_date": {"old": "2026-02-28", "new": "2027-02-28"}}
    assert update["warnings"] == ["Kept in step with freshservice: its next sync may change "
                                  "name back."]
    assert plan.rows[2].to_dict()["changes"]["parent_account_number"] == {"old": None,
                                                                          "new": "620547"}
    assert plan.to_dict()["counts"] == {"create": 1, "update": 1, "unchanged": 1, "error": 0}
    session.rollback()
    assert {kind: exports.export(session, kind, "json") for kind in imports.KINDS} == before
    assert company(codex_db, "700001") is None


def test_apply_writes_exactly_the_plan(session: Session, codex_db: Database) -> None:
    plan = plan_csv(session, "companies",
                    ["account_number", "name", "domains", "active", "parent_account_number"],
                    ["P100", "Dental Group", "", "", ""],
                    ["620547", "Acme Dental ", "acme.example; ACME.example, new.example", "",
                     "P100"],
                    ["700001", "New Clinic", "", "no", "620547"])
    assert imports.apply(session, plan) == {"created": 1, "updated": 1, "unchanged": 1,
                                            "skipped": 0}
    with codex_db.transaction() as check:
        rows = {row["account_number"]: row for row in exports.records(check, "companies")}
    assert rows["620547"]["domains"] == ["acme.example", "new.example"]
    assert rows["620547"]["name"] == "Acme Dental "  # trimmed equal: not a change
    assert rows["700001"] == {**rows["700001"], "name": "New Clinic", "active": False,
                              "parent_account_number": "620547",
                              "compliance_level": "standard"}
    assert rows["P100"]["name"] == "Dental Group"
    replanned = plan_csv(session, "companies",
                         ["account_number", "domains", "parent_account_number"],
                         ["620547", "acme.example;new.example", "P100"],
                         ["700001", "", "620547"])
    assert actions(replanned) == [("620547", "unchanged"), ("700001", "unchanged")]


def test_an_error_row_blocks_the_apply_unless_skipped(session: Session,
                                                      codex_db: Database) -> None:
    rows = (["account_number", "name", "compliance_level", "contract_start_date"],
            ["700001", "Good Clinic", "HIPAA", "2026-01-15"],
            ["700002", "Bad Clinic", "secret", "15/01/2026"],
            ["bad number!", "Worse", "", ""])
    plan = plan_csv(session, "companies", *rows)
    assert [entry.action for entry in plan.rows] == ["create", "error", "error"]
    assert [(problem["field"], problem["message"]) for problem in
            plan.rows[1].to_dict()["errors"]] == [
        ("compliance_level", "must be one of standard, hipaa, cjis"),
        ("contract_start_date", "must be a date as YYYY-MM-DD")]
    assert plan.rows[2].errors[0].field == "account_number"
    with pytest.raises(imports.ImportRefused, match="2 rows of the plan have errors"):
        imports.apply(session, plan)
    assert company(codex_db, "700001") is None
    assert imports.apply(session, plan, skip_errors=True)["skipped"] == 2
    created = company(codex_db, "700001")
    assert created is not None and created.compliance_level == "hipaa"
    assert company(codex_db, "700002") is None


def test_a_database_failure_mid_apply_leaves_nothing(session: Session,
                                                     codex_db: Database) -> None:
    """A trigger refuses the second new company: the update and the first insert, already
    sent to the database, are rolled back with it."""
    postgres = codex_db.engine.dialect.name == "postgresql"
    with codex_db.engine.begin() as connection:
        if postgres:
            connection.execute(sa.text(
                "CREATE OR REPLACE FUNCTION codex_test_refuse() RETURNS trigger LANGUAGE "
                "plpgsql AS $$ BEGIN IF NEW.name = 'Refused Ltd' THEN RAISE EXCEPTION "
                "'refused by the test'; END IF; RETURN NEW; END $$"))
            connection.execute(sa.text(
                "CREATE TRIGGER codex_test_refuse BEFORE INSERT ON codex_companies FOR EACH "
                "ROW EXECUTE FUNCTION codex_test_refuse()"))
        else:
            connection.execute(sa.text(
                "CREATE TRIGGER codex_test_refuse BEFORE INSERT ON codex_companies WHEN "
                "NEW.name = 'Refused Ltd' BEGIN SELECT RAISE(ABORT, 'refused by the test'); "
                "END"))
    try:
        plan = plan_csv(session, "companies", ["account_number", "name"],
                        ["P100", "Renamed Group"], ["700001", "First New"],
                        ["700002", "Refused Ltd"], ["700003", "Third New"])
        assert [entry.action for entry in plan.rows] == ["update", "create", "create",
                                                         "create"]
        with pytest.raises((imports.StalePlan, DBAPIError)):
            imports.apply(session, plan)
    finally:
        with codex_db.engine.begin() as connection:
            connection.execute(sa.text("DROP TRIGGER codex_test_refuse"
                                       + (" ON codex_companies" if postgres else "")))
            if postgres:
                connection.execute(sa.text("DROP FUNCTION codex_test_refuse()"))
    renamed = company(codex_db, "P100")
    assert renamed is not None and renamed.name == "Dental Group"
    assert company(codex_db, "700001") is None


def test_a_change_made_meanwhile_refuses_the_whole_plan(session: Session,
                                                        codex_db: Database) -> None:
    plan = plan_csv(session, "companies", ["account_number", "name"],
                    ["700001", "New Clinic"], ["P100", "Renamed Group"])
    with codex_db.transaction() as other:
        other.scalars(select(Company).where(Company.account_number == "P100")).one().name = \
            "Someone Else's Name"
    with pytest.raises(imports.StalePlan, match="Row 3: name of P100 was changed meanwhile"):
        imports.apply(session, plan)
    assert company(codex_db, "700001") is None
    kept = company(codex_db, "P100")
    assert kept is not None and kept.name == "Someone Else's Name"


def test_hierarchy_rules(session: Session) -> None:
    plan = plan_csv(session, "companies", ["account_number", "name", "parent_account_number"],
                    ["P100", "Dental Group", "620547"],        # 620547 is below P100: cycle
                    ["700001", "Loop A", "700002"], ["700002", "Loop B", "700001"],
                    ["700003", "Orphan", "NOPE"],
                    ["700004", "", ""],                        # no name: an error row
                    ["700005", "Child of broken", "700004"],
                    ["700006", "Grandchild", "700005"],
                    ["700007", "Fine", "700008"], ["700008", "Parent later in file", ""])
    problems = {entry.key: entry.errors[0].message if entry.errors else None
                for entry in plan.rows}
    assert problems["P100"] == ("would put the company below itself: P100 → 620547 → P100")
    assert problems["700001"] == ("would put the company below itself: "
                                  "700001 → 700002 → 700001")
    assert "no company with account number 'NOPE'" in str(problems["700003"])
    assert problems["700004"] == "must not be blank"
    assert problems["700005"] == "'700004' would be created by row 6, which has errors"
    assert problems["700006"] == "'700005' would be created by row 7, which has errors"
    assert problems["700007"] is None and problems["700008"] is None
    # Moving the parent out from under its child in the same file is no cycle.
    swap = plan_csv(session, "companies", ["account_number", "parent_account_number"],
                    ["P100", "620547"], ["620547", ""])
    assert [entry.action for entry in swap.rows] == ["update", "update"]
    imports.apply(session, swap)
    parents = {row["account_number"]: row["parent_account_number"]
               for row in exports.records(session, "companies")}
    assert parents == {"P100": "620547", "620547": None, "999": None}


def test_rules_of_archived_and_term(session: Session) -> None:
    plan = plan_csv(session, "companies",
                    ["account_number", "active", "contract_term_length", "name"],
                    ["999", "true", "", "=Gone Ltd"], ["700001", "", "5 Years", "New"],
                    ["700001", "", "", "Again"])
    assert [(error.field, error.message) for entry in plan.rows for error in entry.errors] == [
        ("active", "the company is archived; unarchive it before making it active"),
        ("contract_term_length", "must be one of Month to Month, 1 Year, 2 Year, 3 Year"),
        ("account_number", "'700001' is also on row 3")]


# --- contacts and assets ---------------------------------------------------------------------

def test_contacts_by_email_or_external_id_with_roles(session: Session) -> None:
    header = ["email", "external_source", "external_id", "name", "account_number", "role"]
    plan = plan_csv(session, "contacts", header,
                    ["DANA@acme.example", "", "", "Dana Smith", "620547", "technical"],
                    ["dana@acme.example", "", "", "Dana Smith", "620547", ""],
                    ["new@acme.example", "", "", "", "P100", "billing"],
                    ["shared@acme.example", "", "", "Sam", "", ""],
                    ["shared@acme.example", "connectwise", "9", "Sam Other", "P100", "primary"],
                    ["moved@acme.example", "freshservice", "5001", "Sam PSA", "", ""],
                    ["x@acme.example", "", "", "X", "620547", "boss"],
                    ["lee@acme.example", "", "", "Lee", "", ""],
                    ["lee@acme.example", "", "", "Lee Changed", "", ""])
    dana, new, shared, other, psa, bad_role, lee = plan.rows
    assert dana.rows == [2, 3] and dana.action == "update"
    # At 620547 her roles become the ones listed; at P100 (not named) hers stay.
    assert dana.to_dict()["changes"]["roles"]["new"] == [
        {"account_number": "620547", "role": "general"},
        {"account_number": "620547", "role": "technical"},
        {"account_number": "P100", "role": "general"}]
    assert new.errors[0].message.startswith("is required for a new")
    assert shared.errors[0].message.startswith("2 contacts have this email")
    assert other.action == "update" and other.to_dict()["changes"] == {"roles": {
        "old": [], "new": [{"account_number": "P100", "role": "primary"}]}}
    assert [(error.field, error.message) for error in psa.errors] == [
        ("email", "comes from freshservice, which rewrites it at every sync; change it there")]
    assert bad_role.errors[0].field == "role"
    assert lee.rows == [9, 10]
    assert [(error.row, error.field) for error in lee.errors] == [(10, "name")]
    imports.apply(session, plan, skip_errors=True)
    contact = session.scalars(select(Contact).where(Contact.email == "dana@acme.example")).one()
    assert sorted((role.company.account_number, role.role) for role in contact.roles) == [
        ("620547", "general"), ("620547", "technical"), ("P100", "general")]


def test_contact_created_from_an_external_id_and_first_and_last_name(session: Session) -> None:
    plan = imports.plan(session, "contacts", [
        {"external_source": "connectwise", "external_id": "42", "first_name": "Ann",
         "last_name": "Lee", "secondary_emails": ["A@x.example", "b@x.example"],
         "account_number": "P100", "role": "primary"}])
    assert plan.rows[0].action == "create"
    imports.apply(session, plan)
    ann = session.scalars(select(Contact).where(Contact.external_id == "42")).one()
    assert (ann.name, ann.secondary_emails, ann.email) == ("Ann Lee",
                                                           ["a@x.example", "b@x.example"], None)
    assert [(role.company.account_number, role.role) for role in ann.roles] == [("P100",
                                                                                 "primary")]


def test_assets_match_derive_and_refuse_rmm_fields(session: Session) -> None:
    billing = BillingTypeMap.from_config({"nas": "Server"})
    plan = imports.plan(session, "assets", imports.read_csv(csv_bytes(
        ["account_number", "hostname", "serial_number", "device_category",
         "billing_type_override", "warranty_expiry"],
        ["620547", "pc1", "SN-2", "Desktop", "", "2028-01-31"],
        ["620547", "NAS1", "", "NAS", "", ""],
        ["620547", "SRV1", "SN-1", "Server", "server", ""],
        ["", "", "sn-1", "ESXi Host", "", ""],
        ["P100", "OLD", "", "", "Toaster", ""],
        ["620547", "nas1", "", "", "", ""])), billing=billing)
    rows = [entry.to_dict() for entry in plan.rows]
    assert rows[0]["action"] == "update" and rows[0]["changes"] == {
        "hostname": {"old": "PC1", "new": "pc1"},
        "device_category": {"old": "Laptop", "new": "Desktop"},
        "warranty_expiry": {"old": "2027-05-01", "new": "2028-01-31"}}
    assert rows[1]["action"] == "create" and rows[1]["changes"]["billing_type"] == {
        "old": None, "new": "Server"}
    assert rows[2]["action"] == "update" and rows[2]["changes"] == {
        "billing_type_override": {"old": "VM", "new": "Server"}}
    assert rows[3]["errors"] == [{"row": 5, "field": "hostname",
                                  "message": "is the same asset as row 4"}]
    assert [error["field"] for error in rows[4]["errors"]] == ["billing_type_override"]
    assert rows[5]["errors"][0]["message"] == "'620547/nas1' is also on row 3"
    retarget = plan_csv(session, "assets", ["serial_number", "device_category"],
                        ["SN-1", "ESXi Host"])
    assert retarget.rows[0].errors[0].message.startswith("comes from datto")
    imports.apply(session, plan, skip_errors=True)
    nas = session.scalars(select(Asset).where(Asset.hostname == "NAS1")).one()
    assert (nas.source, nas.billing_type, nas.billing_type_unmapped) == ("import", "Server",
                                                                         False)
    pc = session.scalars(select(Asset).where(Asset.serial_number == "SN-2")).one()
    assert (pc.hostname, pc.billing_type, pc.warranty_expiry) == ("pc1", "Workstation",
                                                                  date(2028, 1, 31))


# --- export and round trip -------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_then_import_is_all_unchanged(session: Session, fmt: str) -> None:
    for kind in imports.KINDS:
        data = exports.export(session, kind, fmt)
        source = imports.read_csv(data) if fmt == "csv" else imports.read_json(data)
        plan = imports.plan(session, kind, source)
        assert [entry.action for entry in plan.rows] == ["unchanged"] * len(plan.rows), [
            entry.to_dict() for entry in plan.rows if entry.action != "unchanged"]
        assert len(plan.rows) == {"companies": 3, "contacts": 4, "assets": 2}[kind]


def test_csv_export_is_safe_to_open_in_a_spreadsheet(session: Session) -> None:
    data = exports.export(session, "companies", "csv")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    cells = [value for row in rows for value in row.values()]
    assert not [value for value in cells if value[:1] in ("=", "+", "-", "@", "\t", "\r")]
    gone = next(row for row in rows if row["account_number"] == "999")
    assert gone["name"] == "'=Gone Ltd"
    acme = next(row for row in rows if row["account_number"] == "620547")
    assert (acme["main_phone"], acme["domains"], acme["contract_start_date"]) == (
        "'+1 555 0100", "Acme.Example", "2025-03-01")
    assets = exports.export(session, "assets", "csv").decode("utf-8-sig")
    assert "'@reception\tdesk" in assets
    # A file written by hand with the guard quote imports without it.
    plan = plan_csv(session, "companies", ["account_number", "name", "description"],
                    ["700001", "'=HYPERLINK(\"x\")", "''-keep one quote"])
    assert plan.rows[0].values["name"] == "=HYPERLINK(\"x\")"
    assert plan.rows[0].values["description"] == "'-keep one quote"
    assert imports.guard("'-keep one quote") == "''-keep one quote"


def test_byte_order_mark_and_json_values(session: Session) -> None:
    plain = csv_bytes(["Account_Number ", "Name"], ["700001", "Ünïcode Clinic"])
    with_bom = "\ufeff".encode() + plain
    semicolons = "\ufeffaccount_number;name\r\n700001;Ünïcode Clinic\r\n".encode()
    for data in (plain, with_bom, semicolons):
        plan = imports.plan(session, "companies", imports.read_csv(data))
        assert plan.rows[0].values == {"account_number": "700001", "name": "Ünïcode Clinic"}
    from_json = imports.plan(session, "companies", imports.read_json(json.dumps(
        [{"account_number": 700001, "name": "Clinic", "active": False,
          "domains": ["A.example"]}, "not an object"]).encode()))
    assert from_json.rows[0].values == {"account_number": "700001", "name": "Clinic",
                                        "active": False, "domains": ["a.example"]}
    assert from_json.rows[1].errors[0].message == (
        "Row 2 is not an object with column names as keys.")


def test_file_refusals(session: Session) -> None:
    with pytest.raises(imports.ImportRefused, match=r"Unknown column: colour\. An import "
                                                    r"of companies takes: account_number, name"
                            ) as refused:
        plan_csv(session, "companies", ["account_number", "Colour"], ["1", "red"])
    assert refused.value.field == "columns"
    with pytest.raises(imports.ImportRefused, match="needs the column email or external_id"):
        plan_csv(session, "contacts", ["name"], ["Dana"])
    with pytest.raises(imports.ImportRefused, match="not UTF-8"):
        imports.read_csv("account_number\n1\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(imports.ImportRefused, match="empty"):
        imports.read_csv(b"\xef\xbb\xbf\r\n")
    with pytest.raises(imports.ImportRefused, match="named twice: name"):
        imports.read_csv(b"name,account_number,NAME\n")
    with pytest.raises(imports.ImportRefused, match="is a list of objects"):
        imports.read_json(b'{"account_number": "1"}')
    plan = plan_csv(session, "companies", ["account_number", "name"], ["1", "One", "extra"],
                    ["2", "Two", ""])
    assert plan.rows[0].errors[0].message == ("Row 2 has 3 cells, but the header names 2 "
                                              "columns.")
    assert plan.rows[1].action == "create"  # a trailing empty cell is no extra cell


def test_limits(session: Session) -> None:
    with pytest.raises(imports.ImportRefused, match="10 MB limit") as refused:
        imports.read_csv(b"name\n" + b"x" * imports.MAX_BYTES)
    assert refused.value.status == 413
    rows = b"account_number\n" + b"1\n" * imports.MAX_ROWS
    assert len(imports.read_csv(rows).rows) == imports.MAX_ROWS
    with pytest.raises(imports.ImportRefused, match="more than 50,000 rows"):
        imports.read_csv(rows + b"2\n")
    with pytest.raises(imports.ImportRefused, match="more than 50,000 rows"):
        imports.read_json(json.dumps([{}] * (imports.MAX_ROWS + 1)).encode())
    plan = plan_csv(session, "companies", ["account_number", "name", "description"],
                    ["1", "One", "d" * imports.MAX_CELL], ["2", "Two", "d" * 10_001])
    assert plan.rows[0].action == "create"
    assert plan.rows[1].errors[0].message == ("is longer than the 10,000-character limit for "
                                              "a cell")
    with pytest.raises(imports.ImportRefused, match="Line 2 cannot be read as CSV"):
        imports.read_csv(b"name\n" + b"x" * 200_000 + b"\n")


# --- the API ---------------------------------------------------------------------------------

@pytest.fixture
def client(codex_client: FlaskClient, codex_db: Database) -> FlaskClient:
    seed(codex_db)
    return codex_client


def upload(data: bytes, name: str = "rows.csv") -> dict[str, Any]:
    return {"data": {"file": (io.BytesIO(data), name)}, "content_type": "multipart/form-data"}


def with_csrf(client: FlaskClient, headers: dict[str, str]) -> dict[str, str]:
    """A file upload is a form post: it carries the CSRF token of the browser session, as
    the import page's form will."""
    with client.application.test_request_context():
        token = generate_csrf()
        raw = flask_session["csrf_token"]
    with client.session_transaction() as stored:
        stored["csrf_token"] = raw
    return {**headers, "X-CSRFToken": token}


def test_api_dry_run_then_apply(client: FlaskClient, as_user: Headers,
                                codex_db: Database) -> None:
    technician = as_user("technician")
    data = csv_bytes(["account_number", "name"], ["700001", "New Clinic"],
                     ["P100", "Dental Group"])
    refused = client.post("/api/import/companies", headers=technician, **upload(data))
    assert refused.status_code == 400 and "CSRF" in refused.get_json()["detail"]
    technician = with_csrf(client, technician)
    response = client.post("/api/import/companies", headers=technician, **upload(data))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["dry_run"], body["applied"], body["counts"]) == (
        True, None, {"create": 1, "update": 0, "unchanged": 1, "error": 0})
    assert company(codex_db, "700001") is None
    response = client.post("/api/import/companies?dry_run=false", headers=technician,
                           **upload(data))
    assert response.get_json()["applied"] == {"created": 1, "updated": 0, "unchanged": 1,
                                              "skipped": 0}
    assert company(codex_db, "700001") is not None
    response = client.post("/api/import/contacts?dry_run=false", headers=technician,
                           json=[{"email": "new@acme.example", "name": "New Person",
                                  "account_number": "700001", "role": "billing"}])
    assert response.get_json()["applied"]["created"] == 1


def test_api_errors_and_refusals(client: FlaskClient, as_user: Headers,
                                 codex_db: Database) -> None:
    admin = with_csrf(client, as_user("admin"))
    data = csv_bytes(["account_number", "name"], ["700001", "Good"], ["700002", " "])
    response = client.post("/api/import/companies?dry_run=false", headers=admin,
                           **upload(data))
    assert response.status_code == 422
    body = response.get_json()
    assert body["plan"]["rows"][1]["errors"] == [{"row": 3, "field": "name",
                                                  "message": "must not be blank"}]
    assert company(codex_db, "700001") is None
    response = client.post("/api/import/companies?dry_run=false&skip_errors=true",
                           headers=admin, **upload(data))
    assert response.get_json()["applied"]["skipped"] == 1
    response = client.post("/api/import/companies", headers=admin,
                           **upload(csv_bytes(["account_number", "colour"], ["1", "red"])))
    assert response.status_code == 422 and "colour" in response.get_json()["detail"]
    assert "columns" in response.get_json()["errors"]["file"]
    response = client.post("/api/import/companies", headers=admin,
                           **upload(b"x" * (imports.MAX_BYTES + 1)))
    assert response.status_code == 413 and "10 MB" in response.get_json()["detail"]
    response = client.post("/api/import/companies", headers=admin,
                           **upload(b'[{"account_number": "7", "name": "J"}]', "rows.json"))
    assert response.get_json()["counts"]["create"] == 1
    assert client.post("/api/import/companies?dry_run=maybe", headers=admin,
                       json=[]).status_code == 400
    assert client.post("/api/import/tickets", headers=admin, json=[]).status_code == 404
    assert client.post("/api/import/companies", headers=admin, data="x",
                       content_type="text/plain").status_code == 415


def test_api_import_permissions(client: FlaskClient, as_user: Headers,
                                as_service: Callable[[str], dict[str, str]]) -> None:
    for headers in (as_user("billing"), as_user("client", account_number="620547"),
                    as_service("ledger"), as_service("brainhair")):
        assert client.post("/api/import/companies", headers=headers,
                           json=[]).status_code == 403
    assert client.post("/api/import/companies", json=[]).status_code == 401
    assert client.post("/api/import/companies", headers=as_user("technician"),
                       json=[]).status_code == 200


def test_api_export(client: FlaskClient, as_user: Headers,
                    as_service: Callable[[str], dict[str, str]]) -> None:
    response = client.get("/api/export/companies.csv", headers=as_user("billing"))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="codex-companies-')
    assert response.headers["Content-Disposition"].endswith('.csv"')
    for caller in ("ledger", "brainhair"):
        response = client.get("/api/export/assets.json", headers=as_service(caller))
        assert [row["hostname"] for row in response.get_json()] == ["PC1", "SRV1"]
    assert client.get("/api/export/assets.json",
                      headers=as_service("beacon")).status_code == 403
    assert client.get("/api/export/assets.xml", headers=as_user("admin")).status_code == 404
    client_user = as_user("client", account_number="P100")
    companies = client.get("/api/export/companies.json", headers=client_user).get_json()
    assert [row["account_number"] for row in companies] == ["P100"]
    contacts = client.get("/api/export/contacts.json", headers=client_user).get_json()
    assert [(row["email"], row["account_number"]) for row in contacts] == [
        ("dana@acme.example", "P100")]
    assert client.get("/api/export/assets.json", headers=client_user).get_json() == []
