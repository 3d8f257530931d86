"""Ledger's API against a real Codex served over HTTP: plans, overrides, the receipt, the
invoice CSV, the ZIP, the dashboard and the archive, each Codex read one bulk call; every
route at every permission level; bad input named by field."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.common.testing import TokenFactory, free_port
from tests.ledger.conftest import GOLD_PLAN, Codex, join_jobs

Headers = Callable[..., dict[str, str]]
MARCH = "year=2026&month=3"
BULK = "/api/companies/bulk?include_tickets=true&year=2026"
#: One company's bill asks Codex for that company only.
ACME_BULK = f"{BULK}&account_number=620547"
#: Every company's bills read the answer as it streams, one company per line.
STREAMED = f"{BULK}&view=billing&format=ndjson"


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.get_data(True))
    return response.get_json()


def field_error(response: Any, status: int, location: str = "json") -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(True))
    body = response.get_json()
    assert response.mimetype == "application/problem+json"
    return dict(body["errors"][location])


@pytest.fixture
def billing(as_user: Headers) -> dict[str, str]:
    return as_user("billing")


def setup_acme(client: FlaskClient, headers: dict[str, str], codex: Codex) -> None:
    """The Gold plan, Eli free of charge and a recurring fee of 10."""
    ok(client.post("/api/plans", json=GOLD_PLAN, headers=headers), 201)
    ok(client.post("/api/overrides/620547/users", headers=headers,
                   json={"contact_id": codex.ids["eli"], "billing_type": "No Charge"}), 201)
    ok(client.post("/api/overrides/620547/line-items", headers=headers,
                   json={"name": "Firewall lease", "kind": "recurring", "amount": "10.00",
                         "start_period": "2026-01"}), 201)


def test_receipt_from_one_codex_bulk_call(client: FlaskClient, billing: dict[str, str],
                                          codex: Codex) -> None:
    setup_acme(client, billing, codex)
    codex.calls.clear()
    receipt = ok(client.get(f"/api/billing/calculate/620547?{MARCH}", headers=billing))
    assert codex.calls == [ACME_BULK]
    assert receipt["error"] is None and receipt["period"] == "2026-03"
    lines = {(line["section"], line["name"]): (line["type"], line["amount"])
             for line in receipt["lines"]}
    assert lines == {
        ("users", "Dana"): ("Paid", "25.00"), ("users", "Eli"): ("No Charge", "0.00"),
        ("assets", "SRV1"): ("Server", "120.00"), ("assets", "PC1"): ("Workstation", "30.00"),
        ("backup", "Server backup base fee"): ("Server", "50.00"),
        # 3 TB on the server, 1 TB included: 2 TB at 20.
        ("backup", "Backup storage overage (TB)"): ("Overage", "40.00"),
        ("hours", "Billable hours"): ("Billed Hourly", "300.00"),
        ("custom", "Firewall lease"): ("Recurring", "10.00")}
    assert receipt["total"] == "575.00"
    assert receipt["features"] == [{"key": "antivirus", "value": "SentinelOne",
                                    "overridden": False}]


def test_invoice_csv_and_iif(client: FlaskClient, billing: dict[str, str], codex: Codex) -> None:
    setup_acme(client, billing, codex)
    response = client.get(f"/api/billing/invoice/620547?{MARCH}", headers=billing)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="620547-202603.csv"')
    rows = response.get_data(as_text=True).split("\r\n")
    assert rows[0] == ("InvoiceNo,Customer,InvoiceDate,DueDate,Item(Product/Service),"
                       "Description,Qty,Rate,Amount")
    prefix = "620547-202603,Acme Dental,03/31/2026,04/30/2026,"
    assert rows[1:-1] == [prefix + row for row in (
        "Managed Users,Users,1,25.00,25.00", "Managed Devices,Servers,1,120.00,120.00",
        "Managed Devices,Workstations,1,30.00,30.00",
        "Backup Services,Server backup base fee,1,50.00,50.00",
        "Backup Services,Backup storage overage (TB),2,20.00,40.00",
        "Hourly Labor,Billable hours (Billed Hourly),2,150.00,300.00",
        "Custom Services,Firewall lease (Recurring),1,10.00,10.00")]
    iif = client.get(f"/api/billing/invoice/620547?{MARCH}&format=iif", headers=billing)
    assert iif.status_code == 200 and "TRNS\tINVOICE\t03/31/2026" in iif.get_data(True)
    assert "575.00" in iif.get_data(True)
    assert field_error(client.get(f"/api/billing/invoice/620547?{MARCH}&format=xls",
                                  headers=billing), 400, "query") == {
        "format": ["format: must be csv or iif"]}
    # Plan not found: no invoice, and the reason.
    refused = client.get(f"/api/billing/invoice/620549?{MARCH}", headers=billing)
    assert refused.status_code == 422
    assert "no plan 'Platinum' for term '1 Year'" in refused.get_json()["detail"]
    assert ok(client.get("/api/billing/invoice/999999", headers=billing), 404)


def test_bulk_zip_and_dashboard(client: FlaskClient, billing: dict[str, str],
                                codex: Codex) -> None:
    setup_acme(client, billing, codex)
    codex.calls.clear()
    response = client.get(f"/api/billing/bulk-invoices?{MARCH}", headers=billing)
    assert codex.calls == [STREAMED]
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert sorted(archive.namelist()) == ["620547-202603.csv", "620548-202603.csv",
                                          "errors.txt"]
    single = client.get(f"/api/billing/invoice/620547?{MARCH}", headers=billing)
    assert archive.read("620547-202603.csv") == single.data
    assert archive.read("errors.txt").decode() == (
        "620549 Gamma Shop: no plan 'Platinum' for term '1 Year'\n")

    codex.calls.clear()
    board = ok(client.get(f"/api/billing/dashboard?{MARCH}", headers=billing))
    assert codex.calls == [STREAMED]
    assert board["summary"] == {"companies": 3, "revenue": "605.00", "billed": 2, "errors": 1,
                                "active_contracts": 2, "expiring_within_30_days": 1,
                                "accepted": 0}
    rows = {row["account_number"]: row for row in board["companies"]}
    assert rows["620548"]["total"] == "30.00" and rows["620548"]["asset_count"] == 1
    assert rows["620547"]["hours"] == "2.00" and rows["620547"]["user_count"] == 2
    assert rows["620548"]["contract_expiring_soon"] is True
    assert rows["620547"]["contract_expiring_soon"] is False
    assert rows["620547"]["contract_expired"] is False
    assert rows["620549"]["error"] == "no plan 'Platinum' for term '1 Year'"
    ok(client.post("/archive/snapshots", headers=billing,
                   json={"account_number": "620548", "year": 2026, "month": 3}), 201)
    board = ok(client.get(f"/api/billing/dashboard?{MARCH}", headers=billing))
    assert board["summary"]["accepted"] == 1
    assert {row["account_number"] for row in board["companies"] if row["accepted"]} == {
        "620548"}


def test_accept_void_reissue_through_the_api(client: FlaskClient, billing: dict[str, str],
                                             codex: Codex) -> None:
    setup_acme(client, billing, codex)
    invoice = client.get(f"/api/billing/invoice/620547?{MARCH}", headers=billing).data
    codex.calls.clear()
    body = {"account_number": "620547", "year": 2026, "month": 3, "notes": "March"}
    snapshot = ok(client.post("/archive/snapshots", headers=billing, json=body), 201)
    assert codex.calls == [ACME_BULK]
    assert snapshot["invoice_number"] == "620547-202603" and snapshot["total"] == "575.00"
    assert snapshot["accepted_by"] == "billing-user" and snapshot["status"] == "accepted"
    assert len(snapshot["line_items"]) == 8 and snapshot["receipt"]["total"] == "575.00"
    csv = client.get(f"/archive/snapshots/{snapshot['id']}/csv", headers=billing)
    assert csv.data == invoice
    assert client.get("/archive/api/snapshot/620547-202603/csv", headers=billing).data == invoice

    codex.calls.clear()
    again = client.post("/archive/snapshots", headers=billing, json=body)
    assert again.status_code == 409 and codex.calls == []

    # A correction: Dana becomes free of charge, the bill is re-issued.
    ok(client.post("/api/overrides/620547/users", headers=billing,
                   json={"contact_id": codex.ids["dana"], "billing_type": "No Charge"}), 201)
    assert field_error(client.post(f"/archive/snapshots/{snapshot['id']}/reissue",
                                   headers=billing, json={}), 422) == {
        "reason": ["reason: missing"]}
    new = ok(client.post(f"/archive/snapshots/{snapshot['id']}/reissue", headers=billing,
                         json={"reason": "Dana left in February"}), 201)
    assert new["invoice_number"] == "620547-202603-R1" and new["total"] == "550.00"
    assert new["replaces_id"] == snapshot["id"]
    old = ok(client.get(f"/archive/snapshots/{snapshot['id']}", headers=billing))
    assert old["status"] == "void" and old["total"] == "575.00"
    assert old["void"]["reason"] == "Dana left in February"
    assert ok(client.get("/archive/api/snapshot/620547-202603-R1",
                         headers=billing))["id"] == new["id"]
    again = client.post(f"/archive/snapshots/{snapshot['id']}/reissue", headers=billing,
                        json={"reason": "twice"})
    assert again.status_code == 409

    found = ok(client.get("/archive/snapshots?account_number=620547", headers=billing))
    assert found["total"] == 2
    assert [item["invoice_number"] for item in found["results"]] == [
        "620547-202603-R1", "620547-202603"]
    alias = ok(client.get("/archive/api/snapshots/search?invoice_number=R1&year=2026",
                          headers=billing))
    assert [item["id"] for item in alias["results"]] == [new["id"]]
    assert len(ok(client.get("/archive/api/snapshots/company/620547", headers=billing))) == 2
    assert field_error(client.get("/archive/snapshots?from_date=yesterday", headers=billing),
                       400, "query") == {
        "from_date": ["from_date: 'yesterday' is not a date (YYYY-MM-DD)"]}
    # A plan-less company cannot be accepted; the bill's error says why.
    refused = client.post("/archive/snapshots", headers=billing,
                          json={"account_number": "620549", "year": 2026, "month": 3})
    assert refused.status_code == 422 and "Platinum" in refused.get_json()["detail"]
    assert field_error(client.post("/archive/snapshots", headers=billing,
                                   json={"account_number": "620547", "year": 2026,
                                         "month": 13}), 422) == {
        "month": ["month: must be between 1 and 12"]}


def test_plans_crud_import_export(client: FlaskClient, billing: dict[str, str],
                                  codex: Codex) -> None:
    plan = ok(client.post("/api/plans", json=GOLD_PLAN, headers=billing), 201)
    assert plan["per_user"] == "25.00" and plan["per_vm"] == "0.00"
    duplicate = client.post("/api/plans", json=GOLD_PLAN, headers=billing)
    assert field_error(duplicate, 409) == {"plan_name": [
        "plan_name: a plan 'Gold' for term '1 Year' exists already"]}
    changed = ok(client.put(f"/api/plans/{plan['id']}", json={"per_vm": "60"},
                            headers=billing))
    assert changed["per_vm"] == "60.00" and changed["per_user"] == "25.00"
    assert field_error(client.post("/api/plans", headers=billing, json={
        "term_length": "1 Year"}), 422) == {"plan_name": ["plan_name: missing"]}
    assert field_error(client.post("/api/plans", headers=billing, json={
        **GOLD_PLAN, "term_length": "2 Years", "per_user": 1.5}), 422) == {
        "per_user": ["per_user: expected a decimal string, got float 1.5"]}
    assert field_error(client.post("/api/plans", headers=billing, json={
        **GOLD_PLAN, "term_length": "2 Years", "per_user": "1.005"}), 422) == {
        "per_user": ["per_user: '1.005' has more than two decimals"]}
    assert field_error(client.post("/api/plans", headers=billing, json={
        **GOLD_PLAN, "term_length": "2 Years", "support_level": "Sometimes"}), 422) == {
        "support_level": ["support_level: 'Sometimes' is not one of All Inclusive, "
                          "Unlimited, Billed Hourly"]}
    exported = ok(client.get("/api/plans/export", headers=billing))["plans"]
    assert [item["plan_name"] for item in exported] == ["Gold"]
    silver = {**exported[0], "plan_name": "Silver", "per_user": "11.00"}
    counts = ok(client.post("/api/plans/import", headers=billing,
                            json={"plans": [{**exported[0], "per_vm": "61.00"}, silver]}))
    assert counts == {"created": 1, "updated": 1}
    listed = ok(client.get("/api/plans", headers=billing))
    assert [(item["plan_name"], item["per_vm"]) for item in listed] == [
        ("Gold", "61.00"), ("Silver", "60.00")]
    bad = client.post("/api/plans/import", headers=billing,
                      json={"plans": [silver, {**silver, "per_hour": "-1"}]})
    assert bad.status_code == 422 and "plans[1].per_hour" in bad.get_json()["detail"]
    ok(client.delete(f"/api/plans/{plan['id']}", headers=billing), 204)
    assert client.get(f"/api/plans/{plan['id']}", headers=billing).status_code == 404


def test_every_override_kind(client: FlaskClient, billing: dict[str, str],
                             codex: Codex) -> None:
    ok(client.post("/api/plans", json=GOLD_PLAN, headers=billing), 201)
    client_override = ok(client.put("/api/overrides/620547/client", headers=billing, json={
        "per_server": {"enabled": True, "value": "0"},
        "backup_included_tb": {"enabled": True, "value": "0"},
        "per_user": {"enabled": False, "value": "99.00"}}))
    assert client_override["per_server"] == {"enabled": True, "value": "0.00"}
    assert client_override["per_user"] == {"enabled": False, "value": "99.00"}
    created = {kind: ok(client.post(f"/api/overrides/620547/{kind}", headers=billing,
                                    json=body), 201)
               for kind, body in {
                   "assets": {"asset_id": codex.ids["pc"], "billing_type": "Custom",
                              "custom_cost": "33.33"},
                   "users": {"contact_id": codex.ids["eli"], "billing_type": "No Charge"},
                   "manual-assets": {"hostname": "NAS", "billing_type": "Printer"},
                   "manual-users": {"full_name": "Contractor", "billing_type": "Paid"},
                   "line-items": {"name": "Setup", "kind": "one_off", "amount": "100.00",
                                  "one_off_period": "2026-03"},
                   "features": {"feature_key": "soc", "value": "24/7 SOC"}}.items()}
    receipt = ok(client.get(f"/api/billing/calculate/620547?{MARCH}", headers=billing))
    lines = {(line["section"], line["name"]): line["amount"] for line in receipt["lines"]}
    assert lines[("assets", "SRV1")] == "0.00"  # an enabled 0 is honoured
    assert lines[("assets", "PC1")] == "33.33"
    assert lines[("assets", "NAS")] == "0.00"  # the plan has no printer rate
    assert lines[("users", "Contractor")] == "25.00" and lines[("users", "Eli")] == "0.00"
    assert lines[("custom", "Setup")] == "100.00"
    # No TB included: all 3 TB are overage.
    assert lines[("backup", "Backup storage overage (TB)")] == "60.00"
    assert {"key": "soc", "value": "24/7 SOC", "overridden": True} in receipt["features"]
    everything = ok(client.get("/api/overrides/620547", headers=billing))
    assert {kind: len(everything[kind]) for kind in created} == dict.fromkeys(created, 1)

    line_item = created["line-items"]["id"]
    assert field_error(client.put(f"/api/overrides/620547/line-items/{line_item}",
                                  headers=billing, json={"one_off_period": "March"}), 422) == {
        "one_off_period": ["one_off_period: 'March' is not YYYY-MM"]}
    moved = ok(client.put(f"/api/overrides/620547/line-items/{line_item}", headers=billing,
                          json={"one_off_period": "2026-04"}))
    assert moved["one_off_period"] == "2026-04" and moved["amount"] == "100.00"
    assert field_error(client.post("/api/overrides/620547/line-items", headers=billing,
                                   json={"name": "Yearly", "kind": "yearly",
                                         "amount": "5.00"}), 422) == {
        "body": ["line item 0 (Yearly): a yearly item needs its month (1-12)"]}
    assert field_error(client.post("/api/overrides/620547/assets", headers=billing,
                                   json={"asset_id": codex.ids["pc"],
                                         "billing_type": "Server"}), 409) == {
        "asset_id": [f"asset_id: this company has an entry for {codex.ids['pc']} already"]}
    assert field_error(client.post("/api/overrides/620547/users", headers=billing,
                                   json={"contact_id": 5, "billing_type": "Custom"}), 422) == {
        "custom_cost": ["custom_cost: billing type Custom needs a custom cost"]}
    assert field_error(client.put("/api/overrides/620547/client", headers=billing,
                                  json={"per_unicorn": {"enabled": True, "value": "1"}}),
                       422) == {"per_unicorn": ["per_unicorn: not an overridable field"]}
    assert field_error(client.put("/api/overrides/620547/client", headers=billing,
                                  json={"per_user": {"enabled": True}}), 422) == {
        "per_user": ["per_user: enabled without a value"]}
    assert client.get("/api/overrides/620547/gadgets", headers=billing).status_code == 404
    for kind, row in created.items():
        ok(client.delete(f"/api/overrides/620547/{kind}/{row['id']}", headers=billing), 204)
        assert client.delete(f"/api/overrides/620547/{kind}/{row['id']}",
                             headers=billing).status_code == 404
    # Another company's row is not reachable through this company's path.
    other = ok(client.post("/api/overrides/620548/manual-users", headers=billing,
                           json={"full_name": "X"}), 201)
    assert client.delete(f"/api/overrides/620547/manual-users/{other['id']}",
                         headers=billing).status_code == 404
    ok(client.delete("/api/overrides/620547/client", headers=billing), 204)
    assert ok(client.get("/api/overrides/620547/client", headers=billing))["per_server"] == {
        "enabled": False, "value": None}


def test_accept_every_bill_in_the_background(client: FlaskClient, ledger_app: Flask,
                                            billing: dict[str, str], codex: Codex) -> None:
    setup_acme(client, billing, codex)
    ok(client.post("/archive/snapshots", headers=billing,
                   json={"account_number": "620548", "year": 2026, "month": 3}), 201)
    codex.calls.clear()
    job = ok(client.post("/archive/jobs", headers=billing, json={"year": 2026, "month": 3}),
             202)
    assert job["status"] == "queued" and job["triggered_by"] == "billing-user"
    join_jobs(ledger_app)
    assert codex.calls == [STREAMED]  # one streamed read for the whole job
    done = ok(client.get(f"/archive/jobs/{job['id']}", headers=billing))
    assert (done["status"], done["total"], done["processed"]) == ("finished", 3, 3)
    assert (done["created"], done["skipped"], done["failed"]) == (1, 1, 1)
    assert done["errors"] == [{"account_number": "620549", "error":
                               "620549 2026-03: no plan 'Platinum' for term '1 Year'"}]
    accepted = ok(client.get("/archive/snapshots?year=2026&month=3", headers=billing))
    assert sorted(item["account_number"] for item in accepted["results"]) == ["620547",
                                                                              "620548"]
    # Running the period again changes nothing.
    again = ok(client.post("/archive/jobs", headers=billing, json={"year": 2026, "month": 3}),
               202)
    join_jobs(ledger_app)
    rerun = ok(client.get(f"/archive/api/scheduler/jobs/{again['id']}", headers=billing))
    assert (rerun["created"], rerun["skipped"], rerun["failed"]) == (0, 2, 1)
    assert ok(client.get("/archive/snapshots?year=2026&month=3", headers=billing))["total"] == 2
    chosen = ok(client.post("/archive/jobs", headers=billing, json={
        "year": 2026, "month": 4, "account_numbers": ["620547", "123456"]}), 202)
    join_jobs(ledger_app)
    picked = ok(client.get(f"/archive/jobs/{chosen['id']}", headers=billing))
    assert (picked["total"], picked["created"], picked["failed"]) == (2, 1, 1)
    assert picked["errors"] == [{"account_number": "123456",
                                 "error": "no such company in Codex"}]
    listed = ok(client.get("/archive/jobs", headers=billing))
    assert [item["id"] for item in listed] == [chosen["id"], again["id"], job["id"]]
    assert field_error(client.post("/archive/jobs", headers=billing, json={
        "year": 2026, "month": 3, "account_numbers": "620547"}), 422) == {
        "account_numbers": ["account_numbers: expected a list of account numbers"]}


def test_codex_unreachable(client: FlaskClient, ledger_app: Flask, billing: dict[str, str],
                           codex: Codex, hm_home: Any) -> None:
    port = free_port()
    (hm_home / "services.json").write_text(
        f'{{"codex": {{"url": "http://127.0.0.1:{port}", "port": {port}}}}}')
    response = client.get(f"/api/billing/calculate/620547?{MARCH}", headers=billing)
    assert response.status_code == 502
    assert response.get_json()["detail"].startswith("Codex could not be reached")
    job = ok(client.post("/archive/jobs", headers=billing, json={"year": 2026, "month": 3}),
             202)
    join_jobs(ledger_app)
    failed = ok(client.get(f"/archive/jobs/{job['id']}", headers=billing))
    assert failed["status"] == "failed" and "Codex could not be reached" in (
        failed["errors"][0]["error"])


def test_bad_query_parameters(client: FlaskClient, billing: dict[str, str],
                              codex: Codex) -> None:
    assert field_error(client.get("/api/billing/dashboard?year=abc", headers=billing),
                       400, "query") == {"year": ["year: 'abc' is not an integer"]}
    assert field_error(client.get("/api/billing/calculate/620547?month=0", headers=billing),
                       400, "query") == {"month": ["month: must be between 1 and 12"]}
    assert field_error(client.post("/api/plans", headers=billing, data="[1]",
                                   content_type="application/json"), 422) == {
        "body": ["The body must be a JSON object."]}


# --- who may call what ---------------------------------------------------------------------

READS = [
    ("GET", f"/api/billing/calculate/620547?{MARCH}"),
    ("GET", f"/api/billing/invoice/620548?{MARCH}"),
    ("GET", f"/api/billing/bulk-invoices?{MARCH}"),
    ("GET", f"/api/billing/dashboard?{MARCH}"),
    ("GET", "/api/plans"), ("GET", "/api/plans/{plan}"), ("GET", "/api/plans/export"),
    ("GET", "/api/overrides/620547"), ("GET", "/api/overrides/620547/client"),
    ("GET", "/api/overrides/620547/line-items"),
    ("GET", "/archive/snapshots"), ("GET", "/archive/api/snapshots/search"),
    ("GET", "/archive/snapshots/company/620548"),
    ("GET", "/archive/api/snapshots/company/620548"),
    ("GET", "/archive/snapshots/{snapshot}"), ("GET", "/archive/snapshots/{snapshot}/csv"),
    ("GET", "/archive/api/snapshot/620548-202603"),
    ("GET", "/archive/api/snapshot/620548-202603/csv"),
    ("GET", "/archive/jobs"), ("GET", "/archive/api/scheduler/jobs"),
]
#: Reads services may make (the ZIP and the plan export are for people).
SERVICE_READS = [route for route in READS if "bulk-invoices" not in route[1]
                 and "export" not in route[1] and "jobs" not in route[1]]
WRITES = [
    ("POST", "/api/plans", {**GOLD_PLAN, "plan_name": "Bronze"}, 201),
    ("PUT", "/api/plans/{plan}", {"per_vm": "1.00"}, 200),
    ("POST", "/api/plans/import", {"plans": []}, 200),
    ("PUT", "/api/overrides/620547/client", {"per_user": {"enabled": True, "value": "1"}}, 200),
    ("POST", "/api/overrides/620547/manual-users", {"full_name": "Temp"}, 201),
    ("PUT", "/api/overrides/620547/manual-users/{manual}", {"notes": "n"}, 200),
    ("POST", "/archive/snapshots", {"account_number": "620547", "year": 2026, "month": 3}, 201),
    ("POST", "/archive/snapshots/{snapshot}/void", {"reason": "test"}, 200),
    ("POST", "/archive/snapshots/{snapshot}/reissue", {"reason": "test"}, 201),
    ("POST", "/archive/jobs", {"year": 2026, "month": 2}, 202),
    ("DELETE", "/api/overrides/620547/manual-users/{manual}", None, 204),
    ("DELETE", "/api/overrides/620547/client", None, 204),
    ("DELETE", "/api/plans/{plan}", None, 204),
]


@pytest.fixture
def seeded(client: FlaskClient, billing: dict[str, str], codex: Codex) -> dict[str, int]:
    plan = ok(client.post("/api/plans", json=GOLD_PLAN, headers=billing), 201)
    manual = ok(client.post("/api/overrides/620547/manual-users", headers=billing,
                            json={"full_name": "Someone"}), 201)
    snapshot = ok(client.post("/archive/snapshots", headers=billing,
                              json={"account_number": "620548", "year": 2026, "month": 3}), 201)
    return {"plan": plan["id"], "manual": manual["id"], "snapshot": snapshot["id"]}


def _call(client: FlaskClient, method: str, path: str, headers: dict[str, str],
          body: Any = None) -> Any:
    return client.open(path, method=method, headers=headers, json=body)


@pytest.mark.parametrize("level", ["admin", "technician", "billing"])
def test_staff_read_everything(client: FlaskClient, as_user: Headers, seeded: dict[str, int],
                               level: str) -> None:
    for method, path in READS:
        response = _call(client, method, path.format(**seeded), as_user(level))
        assert response.status_code == 200, (level, path, response.get_data(True))


@pytest.mark.parametrize("level", ["admin", "billing"])
def test_billing_and_admin_write(client: FlaskClient, as_user: Headers,
                                 seeded: dict[str, int], level: str) -> None:
    for method, path, body, status in WRITES:
        response = _call(client, method, path.format(**seeded), as_user(level), body)
        assert response.status_code == status, (level, path, response.get_data(True))


def test_technicians_cannot_write(client: FlaskClient, as_user: Headers,
                                  seeded: dict[str, int]) -> None:
    for method, path, body, _ in WRITES:
        response = _call(client, method, path.format(**seeded), as_user("technician"), body)
        assert response.status_code == 403, (path, response.get_data(True))


def test_client_users_are_refused(client: FlaskClient, as_user: Headers,
                                  seeded: dict[str, int]) -> None:
    own = as_user("client", account_number="620547")
    for method, path, *rest in [*READS, *WRITES]:
        body = rest[0] if rest else None
        response = _call(client, method, path.format(**seeded), own, body)
        assert response.status_code == 403, (path, response.get_data(True))


def test_anonymous_callers_are_refused(client: FlaskClient, seeded: dict[str, int]) -> None:
    for method, path, *rest in [*READS, *WRITES]:
        response = _call(client, method, path.format(**seeded), {}, rest[0] if rest else None)
        assert response.status_code == 401, path


def test_services_per_route(client: FlaskClient, tokens: TokenFactory,
                            seeded: dict[str, int]) -> None:
    assistant = tokens.headers(tokens.service("brainhair", "ledger"))
    stranger = tokens.headers(tokens.service("beacon", "ledger"))
    for method, path in SERVICE_READS:
        assert _call(client, method, path.format(**seeded), assistant).status_code == 200, path
        assert _call(client, method, path.format(**seeded), stranger).status_code == 403, path
    for method, path in (route for route in READS if route not in SERVICE_READS):
        assert _call(client, method, path.format(**seeded), assistant).status_code == 403, path
    for method, path, body, _ in WRITES:
        response = _call(client, method, path.format(**seeded), assistant, body)
        assert response.status_code == 403, path
