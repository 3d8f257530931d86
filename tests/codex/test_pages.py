"""Codex's web pages: every page at every permission level, the forms (CSRF, field errors),
escaping of customer-supplied text, and the list parameters' checks."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hivematrix.codex import create_app
from hivematrix.codex.display import human_bytes, sort_headers, uplink_tree
from hivematrix.codex.models import (
    Agent,
    Asset,
    Company,
    SyncJob,
)
from hivematrix.codex.pages.imports import UploadStore
from hivematrix.common.db import Database
from hivematrix.common.paging import Pager
from hivematrix.common.testing import HTML, csrf_of, get_page, submit_form
from tests.codex.fakes.freshservice import API_KEY, FreshserviceFake
from tests.codex.page_data import TODAY, XSS_NAME, Seeded, seed
from tests.codex.seeding import Headers, database

LEVELS = ("admin", "technician", "billing", "client")


@pytest.fixture
def seeded(codex_app: Flask) -> Seeded:
    with database(codex_app) as session:
        return seed(session)


page, csrf, post = get_page, csrf_of, submit_form


def rows(html: str, testid: str) -> list[str]:
    """The text of each body row of the table with this data-testid."""
    table = re.search(rf'<table[^>]*data-testid="{testid}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert table, f"no table {testid}"
    return [re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", row))).strip()
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(1), re.S)]


def grab(pattern: str, html: str) -> str:
    """The first group of ``pattern`` (dot matches newlines) in ``html``."""
    found = re.search(pattern, html, re.S)
    assert found, f"nothing matches {pattern}"
    return found.group(1)


def client_of(as_user: Headers, account: str) -> dict[str, str]:
    return as_user("client", account_number=account)


# -- plain display rules ---------------------------------------------------------------------


def test_display_rules() -> None:
    assert [human_bytes(n) for n in (None, 0, 1023, 1536, 5 * 1024**2, 150 * 1024**3)] == [
        "", "0 B", "1023 B", "1.5 KiB", "5.0 MiB", "150 GiB"]
    assert Pager(1, 25, 0).pages == 1
    assert Pager(7, 10, 200).links() == [1, None, 5, 6, 7, 8, 9, None, 20]
    assert Pager(2, 10, 30).links() == [1, 2, 3]
    assert Pager(3, 25, 60).first_shown == 51 and Pager(3, 25, 60).last_shown == 60
    headers = sort_headers(["name", "updated_at"], "-name")
    assert (headers["name"].target, headers["name"].state) == ("name", "descending")
    assert (headers["updated_at"].target, headers["updated_at"].state) == ("updated_at", None)
    assert sort_headers(["name"], "name")["name"].target == "-name"


def test_uplink_tree_places_each_device_once_even_in_a_loop() -> None:
    node = lambda id_, name: {"id": id_, "name": name, "kind": "switch"}  # noqa: E731
    edge = lambda id_, a, b, kind="uplink": {"id": id_, "from": a, "to": b,  # noqa: E731
                                             "from_port": f"p{id_}", "to_port": "",
                                             "kind": kind}
    tree = uplink_tree({"nodes": [node(1, "fw"), node(2, "core"), node(3, "edge"),
                                  node(4, "loop-a"), node(5, "loop-b")],
                        "edges": [edge(1, 2, 1), edge(2, 3, 2), edge(3, 3, 1),
                                  edge(4, 4, 5), edge(5, 5, 4), edge(6, 2, 3, "port")]})
    fw, loop = tree.roots
    assert fw.device["name"] == "fw" and fw.children[0].device["name"] == "core"
    assert fw.children[0].children[0].device["name"] == "edge"
    assert fw.children[0].children[0].also_uplinked_to == [("fw", "p3", "")]
    assert loop.device["name"] == "loop-a" and loop.ports == ("", "")
    assert loop.also_uplinked_to == [("loop-b", "p4", "")]
    assert [child.device["name"] for child in loop.children] == ["loop-b"]
    assert [(cable.from_name, cable.to_name) for cable in tree.other_cables] == [
        ("core", "edge")]


# -- the companies list ----------------------------------------------------------------------


def test_company_list_at_each_level(codex_client: FlaskClient, seeded: Seeded,
                                    as_user: Headers) -> None:
    for level in ("admin", "technician", "billing"):
        shown = rows(page(codex_client, as_user(level), "/"), "companies")
        assert sorted(row.split(" ")[0] for row in shown) == [
            "<script>window.__pwned=1</script>Acme", "Beta", "Northwind"], level
    mine = page(codex_client, client_of(as_user, seeded.acme), "/")
    assert len(rows(mine, "companies")) == 1 and "Beta Law" not in mine
    # No company claim: a client sees nothing (and no error).
    assert "No companies to show." in page(codex_client, as_user("client"), "/")


def test_company_list_searches_filters_sorts_and_pages(codex_client: FlaskClient,
                                                       codex_app: Flask,
                                                       as_user: Headers) -> None:
    with database(codex_app) as session:
        for number in range(60):
            session.add(Company(account_number=f"A{number:03}", name=f"Clinic {number:03}",
                                compliance_level="cjis" if number % 10 == 0 else "standard",
                                active=number % 2 == 0))
        archived = Company(account_number="OLD1", name="Clinic old", active=False,
                           archived_at=datetime.now(UTC))
        session.add(archived)
    admin = as_user("admin")
    first = page(codex_client, admin, "/?per_page=25")
    assert "Showing 1\u201325 of 60 companies." in first  # archived ones are hidden by default
    assert rows(first, "companies")[0].startswith("Clinic 000")
    assert 'href="/?per_page=25&amp;sort=name&amp;page=3"' in first or "page=3" in first
    third = page(codex_client, admin, "/?per_page=25&page=3")
    assert "Showing 51\u201360 of 60 companies." in third
    assert rows(third, "companies")[-1].startswith("Clinic 059")
    backwards = page(codex_client, admin, "/?sort=-name&per_page=5")
    assert rows(backwards, "companies")[0].startswith("Clinic 059")
    assert 'aria-sort="descending"' in backwards
    assert len(rows(page(codex_client, admin, "/?compliance_level=cjis"), "companies")) == 6
    assert len(rows(page(codex_client, admin, "/?active=false&per_page=200"),
                    "companies")) == 30
    found = rows(page(codex_client, admin, "/?q=CLINIC%2004"), "companies")
    assert [row[:10] for row in found] == [f"Clinic 04{n}" for n in range(10)]
    only_archived = rows(page(codex_client, admin, "/?archived=true"), "companies")
    assert len(only_archived) == 1 and "archived" in only_archived[0]
    assert "of 61 companies" in page(codex_client, admin, "/?archived=any")


@pytest.mark.parametrize(("query", "parameter"), [
    ("sort=password", "sort"), ("page=0", "page"), ("page=two", "page"),
    ("per_page=5000", "per_page"), ("archived=maybe", "archived"),
    ("compliance_level=secret", "compliance_level"), ("active=perhaps", "active"),
    ("page=9", "page")])
def test_bad_list_parameters_are_a_400_page_naming_them(codex_client: FlaskClient,
                                                        seeded: Seeded, as_user: Headers,
                                                        query: str, parameter: str) -> None:
    html = page(codex_client, as_user("admin"), f"/?{query}", 400)
    assert "400 Bad query parameter" in html
    assert f"{parameter}: must be" in html
    assert '<main class="page">' in html  # an HTML page, not JSON


@pytest.mark.parametrize("path", ["/contacts?sort=hostname", "/assets?warranty=soon",
                                  "/assets?retired=sometimes", "/assets?billing_type=Toaster",
                                  "/contacts?page=-1", "/sync?kind=fax"])
def test_other_lists_check_their_parameters(codex_client: FlaskClient, seeded: Seeded,
                                            as_user: Headers, path: str) -> None:
    parameter = grab(r"\?(\w+)=", path)
    assert f"{parameter}: must be" in page(codex_client, as_user("admin"), path, 400)


# -- one company -------------------------------------------------------------------------------


def test_company_page_shows_everything_about_it(codex_client: FlaskClient, seeded: Seeded,
                                                as_user: Headers) -> None:
    html = page(codex_client, as_user("technician"), f"/companies/{seeded.acme}")
    crumbs = grab(r'data-testid="breadcrumb">(.*?)</p>', html)
    assert 'href="/companies/P100">Northwind Group</a>' in crumbs
    assert rows(html, "contacts")[0].startswith("Dana Reyes dana@acme.example")
    assert "primary" in rows(html, "contacts")[0] and "billing" not in rows(html, "contacts")[0]
    assets = {row.split(" ")[0]: row for row in rows(html, "assets")}
    assert "Warranty expired" in assets["ACME-DC1"]
    assert "Warranty expiring" in assets["ACME-PC7"]
    assert "Under warranty" in assets["ACME-CAM"] and "unmapped category" in assets["ACME-CAM"]
    assert 'data-warranty="expired"' in html and 'data-warranty="expiring"' in html
    topology = grab(r'data-testid="topology">(.*?)</div>', html)
    names = re.findall(r"<strong>([^<]+)</strong>", topology)
    assert names == ["fw-edge", "sw-core", "sw-floor2", "ap-lobby"]
    assert topology.count("<ul>") == 4  # each one hangs below the previous
    assert "(port ge-0/0/1 → port2)" in unescape(topology)
    tickets = rows(html, "tickets")
    assert tickets[0].startswith("INC-501") and "Open Urgent" in tickets[0]
    assert "Closed Low" in tickets[1] and len(tickets) == 2
    assert 'class="badge badge--danger" data-priority="urgent"' in html
    assert "Main office" in html and "1 Harbour St" in html
    assert "Edit</a>" in html and "confirm-archive" in html
    assert "confirm-delete" not in html  # deleting is for admins
    parent = page(codex_client, as_user("billing"), f"/companies/{seeded.parent}")
    children = grab(r'data-testid="children">(.*?)</ul>', parent)
    assert sorted(re.findall(r"<a[^>]*>([^<]+)</a>", children)) == [
        "&lt;script&gt;window.__pwned=1&lt;/script&gt;Acme &#34;Dental&#34;", "Beta Law"]
    assert "Edit</a>" not in parent and "data-modal-open" not in parent


def test_customer_text_is_escaped_everywhere(codex_client: FlaskClient, seeded: Seeded,
                                             as_user: Headers) -> None:
    for path in ("/", f"/companies/{seeded.acme}", f"/contacts/{seeded.dana}",
                 f"/assets/{seeded.expired_asset}", "/assets", "/contacts",
                 f"/companies/{seeded.acme}/edit"):
        html = page(codex_client, as_user("admin"), path)
        assert "<script>window.__pwned" not in html, path
        assert "<img src=x" not in html, path
    html = page(codex_client, as_user("admin"), f"/companies/{seeded.acme}")
    assert "&lt;img src=x onerror=&#34;window.__pwned=2&#34;&gt; printer jammed" in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;Acme &#34;Dental&#34;" in html
    assert "<script" not in html.split("<main", 1)[1]  # no script at all on this page


def test_client_sees_only_their_own_company(codex_client: FlaskClient, seeded: Seeded,
                                            as_user: Headers) -> None:
    acme_user = client_of(as_user, seeded.acme)
    html = page(codex_client, acme_user, f"/companies/{seeded.acme}")
    assert "Edit</a>" not in html and "<form" not in html.split("</nav>", 1)[1]
    # Its parent is named, but not a link the client could follow.
    assert "Northwind Group" in html and 'href="/companies/P100"' not in html
    for path in (f"/companies/{seeded.beta}", f"/companies/{seeded.parent}",
                 f"/assets/{seeded.beta_asset}", f"/contacts/{seeded.beta_contact}",
                 "/companies/NOPE"):
        assert "<h1 class=\"card__title\">404 " in page(codex_client, acme_user, path, 404), path
    # Dana works at both; the Acme client sees only her role at Acme.
    dana = page(codex_client, acme_user, f"/contacts/{seeded.dana}")
    assert "Beta Law" not in dana and "primary" in dana
    assert [row.split(" ")[0] for row in rows(page(codex_client, acme_user, "/assets"),
                                              "assets")] == ["ACME-CAM", "ACME-DC1", "ACME-PC7"]
    listed = rows(page(codex_client, acme_user, "/contacts"), "contacts")
    assert len(listed) == 1 and "Beta Law" not in listed[0]
    assert "No contacts" in page(codex_client, acme_user, f"/contacts?account_number={seeded.beta}")
    for path in ("/settings", "/sync", "/import", f"/companies/{seeded.acme}/edit"):
        assert "403 Forbidden" in page(codex_client, acme_user, path, 403), path
    # The list pages' export links give a client their own company's rows only.
    for kind, path in (("companies", "/"), ("contacts", "/contacts"), ("assets", "/assets")):
        assert f'href="/api/export/{kind}.csv"' in page(codex_client, acme_user, path)
    exported = codex_client.get("/api/export/companies.csv", headers=acme_user)
    assert exported.status_code == 200
    assert seeded.acme in exported.get_data(as_text=True)
    assert "Beta Law" not in exported.get_data(as_text=True)


# -- the company form ------------------------------------------------------------------------


def test_edit_form_saves_and_shows_field_errors(codex_client: FlaskClient, seeded: Seeded,
                                                codex_app: Flask, as_user: Headers) -> None:
    tech = as_user("technician")
    form = f"/companies/{seeded.beta}/edit"
    good = {"name": "Beta Law LLP", "account_number": seeded.beta,
            "parent_account_number": seeded.parent, "compliance_level": "cjis",
            "contract_term_length": "1 Year", "contract_start_date": "2025-02-01",
            "domains": "BetaLaw.example\nbeta.example, betalaw.example", "active": "on"}
    saved = post(codex_client, tech, form, good, form)
    assert saved.status_code == 303
    assert saved.headers["Location"].endswith(f"/companies/{seeded.beta}?saved=1")
    with database(codex_app) as session:
        beta = session.scalar(select(Company).where(Company.account_number == seeded.beta))
        assert beta is not None and beta.name == "Beta Law LLP"
        assert beta.contract_end_date == date(2026, 1, 31)
        assert beta.domains == ["beta.example", "betalaw.example"]
        assert beta.billing_plan is None and beta.active
    assert "Saved." in page(codex_client, tech, f"/companies/{seeded.beta}?saved=1")

    bad = post(codex_client, tech, form, {**good, "name": "  ", "compliance_level": "top",
                                          "contract_start_date": "31/01/2025"}, form)
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    for field in ("name", "compliance_level", "contract_start_date"):
        # The message sits under its own field, and the field is marked invalid.
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', html), field
        assert f'<p class="form__error" id="{field}-error">' in html, field
    assert 'value="  "' in html  # what was typed is kept
    cycle = post(codex_client, tech, f"/companies/{seeded.parent}/edit",
                 {"name": "Northwind Group", "account_number": seeded.parent,
                  "parent_account_number": seeded.beta, "compliance_level": "standard"},
                 f"/companies/{seeded.parent}/edit")
    assert cycle.status_code == 422
    assert re.search(r'<p class="form__error" id="parent_account_number-error">[^<]*cannot be '
                     r"placed under itself or its own children", cycle.get_data(as_text=True))
    taken = post(codex_client, tech, form, {**good, "account_number": seeded.acme}, form)
    assert taken.status_code == 409
    assert 'id="account_number-error">Account number &#39;620547&#39; is already used' in \
        taken.get_data(as_text=True)
    with database(codex_app) as session:
        parent = session.scalar(select(Company).where(Company.account_number == seeded.parent))
        assert parent is not None and parent.parent_id is None  # nothing half-written


def test_account_number_change_follows_the_company(codex_client: FlaskClient, seeded: Seeded,
                                                   as_user: Headers) -> None:
    admin = as_user("admin")
    form = f"/companies/{seeded.beta}/edit"
    moved = post(codex_client, admin, form, {"name": "Beta Law", "account_number": "100003",
                                             "compliance_level": "standard"}, form)
    assert moved.headers["Location"].endswith("/companies/100003?saved=1")
    page(codex_client, admin, "/companies/100003")
    page(codex_client, admin, form, 404)


def test_forms_refuse_a_missing_or_wrong_csrf_token(codex_client: FlaskClient, seeded: Seeded,
                                                    codex_app: Flask, as_user: Headers) -> None:
    admin = as_user("admin")
    page(codex_client, admin, "/settings")  # a session exists: only the token is missing
    # (A form always has a body; a bodyless POST with its own Authorization is a script's.)
    for path, data in ((f"/companies/{seeded.beta}/edit", {"name": "Hacked"}),
                       (f"/companies/{seeded.beta}/archive", {"go": "1"}),
                       (f"/companies/{seeded.beta}/delete", {"go": "1"}),
                       (f"/assets/{seeded.beta_asset}", {"billing_type_override": "Server"}),
                       ("/settings", {"theme": "dark", "home_page": "codex"}),
                       ("/sync/agents/run", {"go": "1"}), ("/import/apply", {"token": "x" * 32})):
        for token in (None, "forged"):
            sent = data if token is None else {**data, "csrf_token": token}
            response = codex_client.post(path, headers={**HTML, **admin}, data=sent)
            assert response.status_code == 400, (path, token)
            assert "CSRF" in response.get_data(as_text=True), path
    with database(codex_app) as session:
        beta = session.scalar(select(Company).where(Company.account_number == seeded.beta))
        assert beta is not None and beta.name == "Beta Law" and beta.archived_at is None
        assert session.scalar(select(SyncJob.id)) is None


def test_writes_need_a_writer(codex_client: FlaskClient, seeded: Seeded,
                              as_user: Headers) -> None:
    billing = as_user("billing")
    edit = f"/companies/{seeded.beta}/edit"
    assert "403 Forbidden" in page(codex_client, billing, edit, 403)
    token = csrf(page(codex_client, billing, "/settings"))
    for path in (edit, f"/companies/{seeded.beta}/archive", f"/companies/{seeded.beta}/delete",
                 f"/assets/{seeded.beta_asset}", "/import", "/sync/tickets/run"):
        response = codex_client.post(path, headers={**HTML, **billing},
                                     data={"csrf_token": token})
        assert response.status_code == 403, path
    tech = as_user("technician")
    token = csrf(page(codex_client, tech, "/settings"))
    response = codex_client.post(f"/companies/{seeded.beta}/delete", headers={**HTML, **tech},
                                 data={"csrf_token": token})
    assert response.status_code == 403  # deleting is for admins only


def test_archive_unarchive_and_delete(codex_client: FlaskClient, seeded: Seeded,
                                      codex_app: Flask, as_user: Headers) -> None:
    admin = as_user("admin")
    here = f"/companies/{seeded.acme}"
    refused = post(codex_client, admin, f"{here}/delete", {}, here)
    assert refused.status_code == 409
    html = refused.get_data(as_text=True)
    assert "archive it first" in html and 'data-testid="page-error"' in html
    archived = post(codex_client, admin, f"{here}/archive", {}, here)
    assert archived.status_code == 303
    shown = page(codex_client, admin, archived.headers["Location"])
    assert "Archived: the company is inactive" in shown and ">Unarchive<" in shown
    assert "This also deletes its 3 assets, 1 contacts, 2 tickets, 1 locations, 4 network " \
           "devices" in shown
    assert "of 2 companies" in page(codex_client, admin, "/")  # hidden from the list
    back = post(codex_client, admin, f"{here}/unarchive", {}, here)
    assert back.status_code == 303 and "active again" in page(codex_client, admin,
                                                             back.headers["Location"])
    post(codex_client, admin, f"{here}/archive", {}, here)
    gone = post(codex_client, admin, f"{here}/delete", {}, here)
    assert gone.status_code == 303 and gone.headers["Location"].endswith(
        f"/?deleted={seeded.acme}")
    assert f"Company {seeded.acme} was deleted." in page(codex_client, admin,
                                                        gone.headers["Location"])
    with database(codex_app) as session:
        assert session.scalar(select(Company).where(Company.account_number == seeded.acme)) \
            is None
        assert session.scalar(select(Asset).where(Asset.hostname == "ACME-DC1")) is None
    parent = f"/companies/{seeded.parent}"
    blocked = post(codex_client, admin, f"{parent}/delete", {}, parent)
    assert blocked.status_code == 409 and "move them first" in blocked.get_data(as_text=True)


# -- contacts and assets -------------------------------------------------------------------------


def test_contact_pages(codex_client: FlaskClient, seeded: Seeded, as_user: Headers) -> None:
    for level in ("admin", "technician", "billing"):
        listed = rows(page(codex_client, as_user(level), "/contacts?sort=-name"), "contacts")
        assert [row.split(" ")[0] for row in listed] == ["Eli", "Dana"]
    admin = as_user("admin")
    dana = page(codex_client, admin, f"/contacts/{seeded.dana}")
    roles = grab(r'data-testid="roles">(.*?)</ul>', dana)
    assert "Beta Law</a> <span class=\"badge\">billing</span>" in roles
    assert "ACME-DC1" in dana and "INC-501" in dana
    assert "&lt;img src=x" in dana
    at_beta = rows(page(codex_client, admin, f"/contacts?account_number={seeded.beta}"),
                   "contacts")
    assert len(at_beta) == 2
    page(codex_client, admin, "/contacts/999999", 404)


def test_asset_pages(codex_client: FlaskClient, seeded: Seeded, as_user: Headers) -> None:
    for level in ("admin", "technician", "billing"):
        listed = rows(page(codex_client, as_user(level), "/assets"), "assets")
        assert len(listed) == 4, level
    admin = as_user("admin")
    expired = rows(page(codex_client, admin, "/assets?warranty=expired"), "assets")
    assert [row.split(" ")[0] for row in expired] == ["ACME-DC1"]
    expiring = rows(page(codex_client, admin, "/assets?warranty=expiring"), "assets")
    assert [row.split(" ")[0] for row in expiring] == ["ACME-PC7"]
    html = page(codex_client, admin, f"/assets/{seeded.expired_asset}")
    size = grab(r'data-testid="backup-size">(.*?)</dd>', html)
    assert size == '<span title="3,758,096,384 bytes">3.5 GiB</span>'
    assert "Warranty expired" in html and "rack 4" in html and "datto" in html
    assert "javascript:" not in html  # an unsafe RMM link is not offered
    assert 'href="https://rmm.example/r/1"' in html
    assert "Dana Reyes</a>" in html
    assert 'data-testid="asset-form"' in html
    assert 'data-testid="asset-form"' not in page(codex_client, as_user("billing"),
                                                   f"/assets/{seeded.expired_asset}")
    page(codex_client, admin, "/assets/999999", 404)


def test_asset_form_overrides_the_billing_type(codex_client: FlaskClient, seeded: Seeded,
                                               codex_app: Flask, as_user: Headers) -> None:
    tech = as_user("technician")
    here = f"/assets/{seeded.expiring_asset}"
    values = {"billing_type_override": "Server", "serial_number": " SN-77 ", "model": "T14",
              "manufacturer": "Lenovo", "purchase_date": "2024-01-05",
              "warranty_expiry": (TODAY + timedelta(days=900)).isoformat()}
    saved = post(codex_client, tech, here, values, here)
    assert saved.status_code == 303
    html = page(codex_client, tech, saved.headers["Location"])
    billing = grab(r'data-testid="billing-type">(.*?)</dd>', html)
    assert billing.startswith("Server") and "derived: Workstation" in billing
    assert "Under warranty" in html and "SN-77" in html
    bad = post(codex_client, tech, here, {**values, "billing_type_override": "Toaster",
                                          "warranty_expiry": "soon"}, here)
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert re.search(r'id="billing_type_override"[^>]*aria-invalid="true"', text)
    assert '<p class="form__error" id="warranty_expiry-error">' in text
    cleared = post(codex_client, tech, here, {**values, "billing_type_override": ""}, here)
    assert cleared.status_code == 303
    with database(codex_app) as session:
        asset = session.get(Asset, seeded.expiring_asset)
        assert asset is not None and asset.billing_type_override is None
        assert asset.serial_number == "SN-77"


# -- settings ------------------------------------------------------------------------------------


def test_settings_are_kept_in_the_agent_row(codex_client: FlaskClient, codex_app: Flask,
                                            as_user: Headers) -> None:
    me = as_user("billing", sub="user-77", preferred_username="bea", name="Bea Quinn",
                 email="bea@msp.example")
    html = page(codex_client, me, "/settings")
    assert "Bea Quinn" in html and 'value="system" checked' in html
    with database(codex_app) as session:
        agent = session.scalar(select(Agent).where(Agent.subject == "user-77"))
        assert agent is not None and agent.username == "bea"  # created on the first visit
    saved = post(codex_client, me, "/settings", {"theme": "dark", "home_page": "codex"},
                 "/settings")
    assert saved.status_code == 303
    html = page(codex_client, me, saved.headers["Location"])
    assert "Saved." in html and 'value="dark" checked' in html
    assert '<option value="codex" selected>' in html
    bad = post(codex_client, me, "/settings", {"theme": "neon", "home_page": "nowhere"},
               "/settings")
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert 'id="theme-error"' in text
    with database(codex_app) as session:
        agent = session.scalar(select(Agent).where(Agent.subject == "user-77"))
        assert agent is not None and (agent.theme, agent.home_page) == ("dark", "codex")
    not_a_page = post(codex_client, me, "/settings", {"theme": "light", "home_page": "nowhere"},
                      "/settings")
    assert not_a_page.status_code == 422
    assert re.search(r'id="home_page-error">&#39;nowhere&#39; is not a service',
                     not_a_page.get_data(as_text=True))


# -- sync ----------------------------------------------------------------------------------------


def test_sync_page_without_vendors(codex_client: FlaskClient, codex_app: Flask,
                                   as_user: Headers) -> None:
    with database(codex_app) as session:
        session.add(SyncJob(id="job-1", kind="rmm", provider="datto", status="failed",
                            triggered_by="<b>tom</b>", error="HTTP 401 <b>denied</b>",
                            counts={"devices": {"created": 0, "updated": 0, "unchanged": 0,
                                                "retired": 0, "failed": 2}},
                            finished_at=datetime.now(UTC),
                            log="line 1\n<script>window.__pwned=3</script>\nline 3"))
    admin = as_user("admin")
    html = page(codex_client, admin, "/sync")
    cards = dict(re.findall(r'data-kind="(\w+)">(.*?)(?=data-kind=|Job history)', html, re.S))
    psa = cards["psa"]
    assert "not configured" in psa and "CODEX_PSA_PROVIDER" in psa and "Run now" not in psa
    assert 'data-run="agents"' in html  # the agents sync needs no vendor
    assert "every 60 minutes" in html  # rmm's default schedule
    jobs = rows(html, "jobs")
    assert len(jobs) == 1 and "failed" in jobs[0] and "<b>tom</b>" in jobs[0]
    assert " 2 View" in jobs[0]
    job = page(codex_client, admin, "/sync/jobs/job-1")
    assert '<pre class="code" data-testid="job-log">line 1\n&lt;script&gt;window.__pwned=3' \
           "&lt;/script&gt;\nline 3</pre>" in job
    assert "HTTP 401 &lt;b&gt;denied&lt;/b&gt;" in job and "sync-job.js" not in job
    page(codex_client, admin, "/sync/jobs/nope", 404)
    tech = page(codex_client, as_user("technician"), "/sync")
    assert 'data-run="agents"' not in tech  # only admins start this one
    billing = page(codex_client, as_user("billing"), "/sync")
    assert "Job history" not in billing and "data-run" not in billing
    assert "Devices (RMM)" in billing
    page(codex_client, as_user("billing"), "/sync/jobs/job-1", 403)
    refused = post(codex_client, admin, "/sync/rmm/run", {}, "/sync")
    assert refused.status_code == 503 and "no RMM is configured" in refused.get_data(
        as_text=True)
    assert post(codex_client, admin, "/sync/fax/run", {}, "/sync").status_code == 404


@pytest.fixture
def freshservice() -> Iterator[str]:
    with FreshserviceFake().seed().serve() as url:
        yield url


@pytest.fixture
def psa_app(service_settings: dict[str, Any], codex_db_url: str,
            freshservice: str) -> Iterator[Flask]:
    app = create_app({**service_settings, "DATABASE_URL": codex_db_url,
                      "CODEX_PSA_PROVIDER": "freshservice", "FRESHSERVICE_URL": freshservice,
                      "FRESHSERVICE_API_KEY": API_KEY, "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1",
                      "CODEX_HTTP_RETRIES": 3})
    yield app
    app.extensions["hivematrix.db"].dispose()


def wait_for_job(database_url: str, job_id: str) -> SyncJob:
    """The job once it has ended (a sync against the local fake takes well under a minute)."""
    db = Database(database_url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with db.transaction() as session:
                job = session.get(SyncJob, job_id)
                if job is not None and job.status != "running":
                    session.expunge(job)
                    return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish")
    finally:
        db.dispose()


def test_run_now_syncs_and_the_job_page_follows_it(psa_app: Flask, codex_db_url: str,
                                                   as_user: Headers) -> None:
    client = psa_app.test_client()
    tech = as_user("technician", preferred_username="tom")
    html = page(client, tech, "/sync")
    assert 'data-run="tickets"' in html and 'data-run="psa"' not in html  # psa: admins
    admin = as_user("admin", preferred_username="alice")
    started = post(client, admin, "/sync/psa/run", {}, "/sync")
    assert started.status_code == 303
    job_id = started.headers["Location"].rsplit("/", 1)[1]
    running = page(client, admin, started.headers["Location"])
    if 'data-job-status="running"' in running:  # the page polls while the job runs
        assert f'data-job-poll="/api/sync/jobs/{job_id}"' in running
        assert 'src="/static/sync-job.js"' in running
    job = wait_for_job(codex_db_url, job_id)
    assert job.status == "succeeded", job.log
    done = page(client, admin, f"/sync/jobs/{job_id}")
    assert 'data-job-poll=""' in done
    assert "companies 3 0 0 0 0" in rows(done, "job-counts")
    assert "psa sync from freshservice started by alice" in done
    listed = page(client, admin, "/")
    assert len(rows(listed, "companies")) == 3  # the fake's three departments
    history = rows(page(client, admin, "/sync?kind=psa"), "jobs")
    assert len(history) == 1 and "succeeded" in history[0] and "alice" in history[0]
    script = client.get("/static/sync-job.js")
    assert script.status_code == 200 and b"textContent" in script.data
    assert b"innerHTML" not in script.data and b"credentials: \"same-origin\"" in script.data
    ticket_run = post(client, tech, "/sync/tickets/run", {"full": "true"}, "/sync")
    assert ticket_run.status_code == 403  # a full re-read is for admins


# -- import ------------------------------------------------------------------------------------


def upload(client: FlaskClient, headers: dict[str, str], kind: str, name: str,
           body: bytes) -> Any:
    import io

    token = csrf(page(client, headers, "/import"))
    return client.post("/import", headers={**HTML, **headers}, content_type="multipart/form-data",
                       data={"csrf_token": token, "kind": kind,
                             "file": (io.BytesIO(body), name)})


def test_import_dry_run_then_apply(codex_client: FlaskClient, seeded: Seeded, codex_app: Flask,
                                   as_user: Headers, hm_home: Path) -> None:
    tech = as_user("technician", sub="tech-1")
    body = (f"account_number,name,billing_plan\n{seeded.beta},Beta Law,Silver\n"
            f"{seeded.parent},Northwind Group,\n900001,{XSS_NAME},Bronze\n"
            ",Nameless,\n").encode()
    dry = upload(codex_client, tech, "companies", "companies.csv", body)
    assert dry.status_code == 200
    html = dry.get_data(as_text=True)
    plan = {row.split(" ")[0]: row for row in rows(html, "plan")}
    assert "update" in plan["2"] and "billing_plan (empty) → Silver" in plan["2"]
    assert "unchanged" in plan["3"]
    assert "create" in plan["4"] and "<script>window.__pwned=1</script>" in plan["4"]
    assert "error" in plan["5"] and "account_number: is required" in plan["5"]
    assert "<script>window.__pwned" not in html
    assert 'data-count="error">1 with errors' in html
    token = grab(r'name="token" value="([^"]+)"', html)
    stored = hm_home / "codex" / "instance" / "imports"
    assert (stored / f"{token}.data").read_bytes() == body
    assert (stored / f"{token}.data").stat().st_mode & 0o777 == 0o600
    # Another user cannot apply it.
    other = as_user("admin", sub="admin-2")
    stolen = post(codex_client, other, "/import/apply", {"token": token}, "/import")
    assert stolen.status_code == 404
    # With errors, the rest goes in only when the user says so.
    refused = post(codex_client, tech, "/import/apply", {"token": token}, "/import")
    assert refused.status_code == 422 and "have errors" in refused.get_data(as_text=True)
    applied = post(codex_client, tech, "/import/apply", {"token": token, "skip_errors": "true"},
                   "/import")
    assert applied.status_code == 200
    assert "1 created, 1 updated, 1 unchanged, 1 rows with errors skipped" in \
        applied.get_data(as_text=True)
    assert not (stored / f"{token}.data").exists()
    with database(codex_app) as session:
        beta = session.scalar(select(Company).where(Company.account_number == seeded.beta))
        assert beta is not None and beta.billing_plan == "Silver"
        assert session.scalar(select(Company.name).where(
            Company.account_number == "900001")) == XSS_NAME
    again = post(codex_client, tech, "/import/apply", {"token": token}, "/import")
    assert again.status_code == 404 and "upload the file again" in again.get_data(as_text=True)


def test_import_notices_a_change_since_the_dry_run(codex_client: FlaskClient, seeded: Seeded,
                                                   codex_app: Flask, as_user: Headers) -> None:
    admin = as_user("admin")
    dry = upload(codex_client, admin, "companies", "c.json",
                 f'[{{"account_number": "{seeded.beta}", "billing_plan": "Silver"}}]'.encode())
    token = grab(r'name="token" value="([^"]+)"', dry.get_data(as_text=True))
    with database(codex_app) as session:
        beta = session.scalar(select(Company).where(Company.account_number == seeded.beta))
        assert beta is not None
        beta.billing_plan = "Platinum"
    changed = post(codex_client, admin, "/import/apply", {"token": token}, "/import")
    assert changed.status_code == 409
    html = changed.get_data(as_text=True)
    assert "The data changed since the dry run" in html and "Platinum → Silver" in html
    fresh = grab(r'name="token" value="([^"]+)"', html)
    assert fresh != token
    done = post(codex_client, admin, "/import/apply", {"token": fresh}, "/import")
    assert done.status_code == 200 and "1 updated" in done.get_data(as_text=True)


def test_import_refusals_are_shown(codex_client: FlaskClient, seeded: Seeded,
                                   as_user: Headers) -> None:
    admin = as_user("admin")
    unknown = upload(codex_client, admin, "companies", "c.csv", b"account_number,colour\n1,red\n")
    assert unknown.status_code == 422 and "Unknown column: colour" in unknown.get_data(
        as_text=True)
    wrong_kind = upload(codex_client, admin, "tickets", "t.csv", b"id\n1\n")
    assert wrong_kind.status_code == 400
    html = page(codex_client, admin, "/import")
    for kind in ("companies", "contacts", "assets"):
        for fmt in ("csv", "json"):
            assert f'href="/api/export/{kind}.{fmt}"' in html


def test_upload_store_expires_old_files(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "imports")
    then = datetime(2026, 1, 1, tzinfo=UTC)
    old = store.save(kind="assets", fmt="csv", owner="u", filename="a.csv", plan_digest="d",
                     data=b"x", now=then)
    kept = store.save(kind="assets", fmt="csv", owner="u", filename="a.csv", plan_digest="d",
                      data=b"y", now=then + timedelta(hours=23))
    store.save(kind="assets", fmt="csv", owner="u", filename="a.csv", plan_digest="d",
               data=b"z", now=then + timedelta(hours=25))
    assert store.load(old, "u") is None
    found = store.load(kept, "u")
    assert found is not None and found.data == b"y"
    assert store.load(kept, "someone-else") is None
    assert store.load("../../etc/passwd", "u") is None


# -- every page at every level -----------------------------------------------------------------


def test_every_page_at_every_level(codex_client: FlaskClient, seeded: Seeded,
                                   as_user: Headers) -> None:
    expected = {
        "/": (200, 200, 200, 200), "/contacts": (200, 200, 200, 200),
        "/assets": (200, 200, 200, 200), f"/companies/{seeded.acme}": (200, 200, 200, 200),
        f"/assets/{seeded.expired_asset}": (200, 200, 200, 200),
        f"/contacts/{seeded.dana}": (200, 200, 200, 200),
        f"/companies/{seeded.acme}/edit": (200, 200, 403, 403),
        "/settings": (200, 200, 200, 403), "/sync": (200, 200, 200, 403),
        "/import": (200, 200, 403, 403),
    }
    for path, statuses in expected.items():
        for level, status in zip(LEVELS, statuses, strict=True):
            headers = (client_of(as_user, seeded.acme) if level == "client"
                       else as_user(level))
            html = page(codex_client, headers, path, status)
            if status == 200:
                assert '<nav class="tabs" aria-label="Codex">' in html, (path, level)
                assert " style=" not in html and "<style" not in html, (path, level)
    for path in expected:
        assert codex_client.get(path, headers=HTML).status_code == 401, path
