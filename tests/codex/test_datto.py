"""The Datto RMM connector against its contract fake (real HTTP on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from hivematrix.codex.billing_types import BillingTypeMap
from hivematrix.codex.connectors import datto
from hivematrix.codex.connectors.datto import DattoRMM, Unreadable, epoch_ms, whole_bytes
from hivematrix.codex.connectors.http import ConnectorError
from hivematrix.codex.models import Asset, Company, RMMSite, SyncJob
from hivematrix.codex.settings import BadSetting, json_mapping
from hivematrix.codex.sync import runner
from hivematrix.codex.sync.records import DeviceRecord, RecordFailure, SiteRecord
from hivematrix.common.db import Database
from tests.codex.fakes.datto import API_KEY, API_SECRET, DattoFake, seeded


@pytest.fixture
def fake() -> DattoFake:
    return seeded()


@pytest.fixture
def url(fake: DattoFake) -> Iterator[str]:
    with fake.serve() as base:
        yield base


def settings_for(url: str, **overrides: Any) -> dict[str, Any]:
    return {"CODEX_RMM_PROVIDER": "datto", "DATTO_URL": url, "DATTO_API_KEY": API_KEY,
            "DATTO_API_SECRET": API_SECRET, "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1",
            **overrides}


def connect(url: str, *, clock: Any = None, **overrides: Any) -> DattoRMM:
    extra = {"clock": clock} if clock is not None else {}
    return datto.from_settings(settings_for(url, **overrides), **extra)


def site_uid(fake: DattoFake, name: str) -> str:
    return next(site["uid"] for site in fake.sites if site["name"] == name)


def pages_asked(fake: DattoFake, path: str) -> list[str]:
    return [call for call in fake.calls if call.split("?")[0] == f"GET {path}"]


# -- listings and paging -----------------------------------------------------------------


def test_sites_are_read_across_pages_with_their_account_numbers(fake: DattoFake,
                                                                url: str) -> None:
    fake.page_max = 2
    fake.add_site("Contoso Ltd", account_number=" 100004 ")
    fake.add_site("Fabrikam", account_number="")
    sites = list(connect(url).sites())
    assert [(site.name, site.account_number) for site in sites] == [
        ("Acme Dental", "100001"), ("Baker & Sons Law, LLC", "100002"),
        ("Unlinked Bakery", None), ("Contoso Ltd", "100004"), ("Fabrikam", None)]
    assert all(isinstance(site, SiteRecord) and site.source == "datto" for site in sites)
    assert sites[0].external_id == site_uid(fake, "Acme Dental")
    # three pages of two, each asked for by the nextPageUrl the fake emitted
    assert pages_asked(fake, "/api/v2/account/sites") == [
        "GET /api/v2/account/sites?max=250", "GET /api/v2/account/sites?max=2&page=1",
        "GET /api/v2/account/sites?max=2&page=2"]
    assert len([call for call in fake.calls if "/variables" in call]) == 5


def test_devices_are_read_across_pages_and_mapped(fake: DattoFake, url: str) -> None:
    fake.page_max = 3
    dental = site_uid(fake, "Acme Dental")
    devices = list(connect(url).devices(dental))
    assert len(pages_asked(fake, f"/api/v2/site/{dental}/devices")) == 2
    assert [device.hostname for device in devices] == [
        "ACME-DC01", "ACME-FRONT01", "ACME-LT07", "ACME-PRN1"]
    server = devices[0]
    assert isinstance(server, DeviceRecord)
    payload = fake.devices[dental][0]
    assert server.external_id == payload["uid"]
    assert server.site_external_id == dental
    assert server.device_category == "Server"
    assert server.operating_system == "Microsoft Windows Server 2022 Standard"
    assert server.backup_bytes == 1649267441664  # exact bytes, no TB rounding
    assert server.last_seen == datetime(2026, 11, 2, 8, 15, 30, 123000, tzinfo=UTC)
    assert server.last_reboot == datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    assert server.last_audit == datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    assert server.internal_ip == "192.168.1.20" and server.external_ip == "203.0.113.5"
    assert server.online is True and devices[2].online is False
    assert server.last_logged_in_user == "ACME\\jdoe" and server.domain == "acme.local"
    assert server.antivirus_product == "Windows Defender"
    assert server.patch_status == "FullyPatched"
    assert server.warranty_expiry == date(2027, 3, 31)
    assert server.portal_url.endswith("/csm/device/ACME-DC01")
    assert server.web_remote_url.endswith("/csm/remote/ACME-DC01")
    assert server.udfs == {"udf1": "Front desk", "udf6": "1649267441664"}
    assert devices[1].backup_bytes is None  # an empty UDF is "not reported", not zero
    assert devices[3].device_category == "Printer"


def test_one_unreadable_device_is_a_failure_and_the_rest_come_through(fake: DattoFake,
                                                                       url: str) -> None:
    law = site_uid(fake, "Baker & Sons Law, LLC")
    bad_time = fake.add_device(law, "BAKER-OLD", lastSeen="last Tuesday")
    bad_backup = fake.add_device(law, "BAKER-NAS", backup_bytes="about 2 TB")
    half_byte = fake.add_device(law, "BAKER-NAS2", backup_bytes="10.5")
    no_host = fake.add_device(law, "", category="Desktop")
    fake.add_device(law, "BAKER-GONE", deleted=True)
    fake.devices[law].insert(1, "not a device")
    fake.devices[law].append({"id": 77, "hostname": "NO-UID"})
    items = list(connect(url).devices(law))
    records = [item for item in items if isinstance(item, DeviceRecord)]
    failures = {item.external_id: item.reason for item in items
                if isinstance(item, RecordFailure)}
    assert [record.hostname for record in records] == ["BAKER-ESX1", "BAKER-VM-SQL"]
    assert failures == {
        "?": "device is not a JSON object",
        bad_time["uid"]: "lastSeen: 'last Tuesday' is not a timestamp",
        bad_backup["uid"]: "udf6 (backup bytes): 'about 2 TB' is not a number of bytes",
        half_byte["uid"]: "udf6 (backup bytes): '10.5' is not a whole, non-negative number "
                          "of bytes",
        no_host["uid"]: "hostname: missing",
        "77": "device without a uid"}
    # the deleted device is simply not listed, so a sync retires it
    assert "BAKER-GONE" not in {record.hostname for record in records}


def test_backup_udf_and_category_fallback(fake: DattoFake, url: str) -> None:
    unlinked = site_uid(fake, "Unlinked Bakery")
    fake.add_device(unlinked, "BAKERY-ESX", deviceType=None, deviceClass="esxihost",
                    udf={"udf9": "2,199,023,255,552", "udf6": "junk that is ignored"})
    fake.add_device(unlinked, "BAKERY-SW", deviceType={"category": "", "type": ""},
                    deviceClass="rmmnetworkdevice", udf=None)
    esx, switch = connect(url, DATTO_BACKUP_UDF="UDF9").devices(unlinked)
    assert isinstance(esx, DeviceRecord) and isinstance(switch, DeviceRecord)
    assert esx.device_category == "ESXi Host" and esx.backup_bytes == 2 * 1024 ** 4
    assert switch.device_category == "Network Device" and switch.udfs == {}
    esx_without, _ = connect(url, DATTO_BACKUP_UDF="").devices(unlinked)
    assert isinstance(esx_without, DeviceRecord) and esx_without.backup_bytes is None


def test_a_masked_account_number_variable_is_reported_not_guessed(fake: DattoFake,
                                                                  url: str) -> None:
    hidden = fake.add_site("Hidden Clinic", account_number="100009", masked=True)
    failure = list(connect(url).sites())[-1]
    assert isinstance(failure, RecordFailure) and failure.external_id == hidden
    assert "masked" in failure.reason


def test_a_next_page_on_another_host_is_refused(fake: DattoFake, url: str) -> None:
    fake.page_max = 2
    fake.next_page_base = "http://metadata.internal.example"
    listing = connect(url).sites()
    assert [site.name for site in (next(listing), next(listing))] == [
        "Acme Dental", "Baker & Sons Law, LLC"]
    with pytest.raises(ConnectorError, match=r"nextPageUrl .* leaves"):
        next(listing)
    assert not any("metadata" in call for call in fake.calls)


# -- the token ---------------------------------------------------------------------------


def test_the_token_is_fetched_once_and_reused(fake: DattoFake, url: str) -> None:
    connector = connect(url)
    list(connector.sites())
    for site in fake.sites:
        list(connector.devices(site["uid"]))
    assert fake.token_requests == 1 and connector.auth.issued == 1
    assert fake.unauthorised == 0


def test_the_token_is_renewed_shortly_before_it_expires(fake: DattoFake, url: str) -> None:
    now = [1000.0]
    fake.token_lifetime = 3600
    connector = connect(url, clock=lambda: now[0])
    dental = site_uid(fake, "Acme Dental")
    list(connector.devices(dental))
    now[0] += 3600 - 301  # more than five minutes left: the cached token still serves
    list(connector.devices(dental))
    assert fake.token_requests == 1
    now[0] += 2  # under five minutes left: renewed before Datto would refuse it
    list(connector.devices(dental))
    assert fake.token_requests == 2 and fake.unauthorised == 0


def test_a_revoked_token_is_renewed_once_on_401(fake: DattoFake, url: str) -> None:
    connector = connect(url)
    dental = site_uid(fake, "Acme Dental")
    assert len(list(connector.devices(dental))) == 4
    fake.expire_tokens()
    assert len(list(connector.devices(dental))) == 4
    assert fake.unauthorised == 1 and fake.token_requests == 2


def test_a_token_refused_again_after_renewal_fails_instead_of_looping(fake: DattoFake,
                                                                      url: str) -> None:
    connector = connect(url)
    fake.reject_all_tokens = True
    with pytest.raises(ConnectorError, match="HTTP 401 Access token expired or invalid"):
        list(connector.sites())
    assert fake.token_requests == 2 and fake.unauthorised == 2


def test_bad_credentials_say_which_settings_to_check(fake: DattoFake, url: str) -> None:
    connector = connect(url, DATTO_API_SECRET="wrong")
    with pytest.raises(ConnectorError) as failure:
        list(connector.sites())
    message = str(failure.value)
    assert "sign-in failed" in message and "HTTP 400 Bad credentials" in message
    assert "DATTO_API_KEY and DATTO_API_SECRET" in message
    assert fake.calls == []  # nothing was asked without a token


# -- rate limits ---------------------------------------------------------------------------


def test_429_is_waited_out_as_retry_after_says(fake: DattoFake, url: str) -> None:
    fake.throttle_every = 4
    connector = connect(url)
    sites = list(connector.sites())
    assert len(sites) == 3 and all(isinstance(site, SiteRecord) for site in sites)
    assert fake.throttled == 1
    assert connector.http.waits == [1.0]


def test_hammering_past_the_limit_ends_in_the_ip_block(fake: DattoFake, url: str) -> None:
    fake.window_limit = 1
    fake.block_after = 1
    connector = connect(url, CODEX_HTTP_RETRIES=4)
    device = fake.devices[site_uid(fake, "Acme Dental")][0]["uid"]
    assert connector.device_details(device)["hostname"] == "ACME-DC01"
    with pytest.raises(ConnectorError, match="HTTP 403 IP address blocked"):
        connector.device_details(device)
    assert connector.http.waits == [1.0]  # one 429 waited out, then the block: no retry


# -- write-back: the AccountNumber site variable ------------------------------------------


def test_account_number_variable_is_created_when_missing(fake: DattoFake, url: str) -> None:
    bakery = site_uid(fake, "Unlinked Bakery")
    connect(url).set_site_account_number(bakery, "100003")
    assert fake.writes == [("PUT", f"/api/v2/site/{bakery}/variable",
                            {"name": "AccountNumber", "value": "100003", "masked": False})]
    assert fake.variable(bakery) == {"id": fake.variable(bakery)["id"],  # type: ignore[index]
                                     "name": "AccountNumber", "value": "100003",
                                     "masked": False}


def test_account_number_variable_is_updated_when_present(fake: DattoFake, url: str) -> None:
    dental = site_uid(fake, "Acme Dental")
    variable = fake.variable(dental)
    assert variable is not None
    connector = connect(url)
    connector.set_site_account_number(dental, "100001")  # already so: nothing written
    assert fake.writes == []
    connector.set_site_account_number(dental, "200001")
    assert fake.writes == [("POST", f"/api/v2/site/{dental}/variable/{variable['id']}",
                            {"name": "AccountNumber", "value": "200001"})]
    assert variable["value"] == "200001"
    assert next(site.account_number for site in connector.sites()) == "200001"


def test_the_variable_name_is_a_setting(fake: DattoFake, url: str) -> None:
    clinic = fake.add_site("Clinic", account_number="555", variable_name="CodexAccount")
    connector = connect(url, DATTO_ACCOUNT_NUMBER_VARIABLE="CodexAccount")
    assert [site.account_number for site in connector.sites()] == [None, None, None, "555"]
    bakery = site_uid(fake, "Unlinked Bakery")
    connector.set_site_account_number(bakery, "100003")
    assert fake.variable(bakery, "CodexAccount") is not None
    assert fake.variable(bakery, "AccountNumber") is None
    assert fake.variable(clinic, "CodexAccount") == {
        "id": fake.variable(clinic, "CodexAccount")["id"],  # type: ignore[index]
        "name": "CodexAccount", "value": "555", "masked": False}


def test_unknown_sites_and_unsafe_ids_are_refused(fake: DattoFake, url: str) -> None:
    connector = connect(url)
    with pytest.raises(ConnectorError, match=r"404 Site .* not found"):
        connector.set_site_account_number("0b6e7a52-0000-4000-8000-000000000000", "1")
    calls = len(fake.calls)
    for unsafe in ("../account", "a/b", "", "x?y=1"):
        with pytest.raises(ConnectorError, match="is not a Datto identifier"):
            connector.device_details(unsafe)
    assert len(fake.calls) == calls


# -- live details and quick jobs ----------------------------------------------------------


def test_device_details_are_what_datto_reports(fake: DattoFake, url: str) -> None:
    dental = site_uid(fake, "Acme Dental")
    payload = fake.devices[dental][0]
    del payload["warrantyDate"], payload["antivirus"]
    details = connect(url).device_details(payload["uid"])
    assert details["hostname"] == "ACME-DC01" and details["uid"] == payload["uid"]
    assert details["last_seen"] == "2026-11-02T08:15:30.123000+00:00"
    assert details["created_at"] == "2024-01-01T00:00:00+00:00"
    assert details["device_type"] == {"category": "Server", "type": "Server"}
    assert details["patch_management"] == {"status": "FullyPatched", "approved_pending": 0,
                                           "not_approved": 2, "installed": 118}
    assert details["backup_bytes"] == 1649267441664
    assert details["agent_version"] == "4.4.2201.2201"
    # what Datto did not send is absent, not filled in
    assert "warranty_date" not in details and "antivirus" not in details
    assert not {"cpu", "memory", "disk", "software", "mac_address"} & set(details)
    with pytest.raises(ConnectorError, match=r"404 Device .* not found"):
        connect(url).device_details("0b6e7a52-0000-4000-8000-000000000000")


def test_a_quick_job_is_posted_and_followed_to_its_output(fake: DattoFake, url: str) -> None:
    fake.job_polls_to_complete = 2
    component = fake.add_component("Restart service", ("ServiceName",))
    device = fake.devices[site_uid(fake, "Acme Dental")][1]["uid"]
    connector = connect(url)
    job = connector.run_quick_job(device, component, {"ServiceName": "Spooler"},
                                  job_name="Restart spooler (approved by tech-1)")
    assert fake.writes == [("PUT", f"/api/v2/device/{device}/quickjob", {
        "jobName": "Restart spooler (approved by tech-1)",
        "jobComponent": {"componentUid": component,
                         "variables": [{"name": "ServiceName", "value": "Spooler"}]}})]
    assert job["job_uid"] in fake.jobs and job["status"] == "active"
    assert job["device_uid"] == device and job["component_uid"] == component
    assert job["created_at"].endswith("+00:00")
    assert connector.job_status(job["job_uid"])["status"] == "active"
    assert connector.job_status(job["job_uid"])["status"] == "completed"
    results = connector.job_results(job["job_uid"], device)
    assert results["status"] == "Success"
    assert results["components"] == [{
        "component_uid": component, "name": "Restart service", "status": "Success",
        "warnings": 0, "stdout": "Restart service ran with ServiceName=Spooler"}]


def test_a_quick_job_datto_refuses_says_why(fake: DattoFake, url: str) -> None:
    component = fake.add_component("Restart service", ("ServiceName",))
    device = fake.devices[site_uid(fake, "Acme Dental")][1]["uid"]
    with pytest.raises(ConnectorError, match=r"400 Unknown component variable\(s\): Colour"):
        connect(url).run_quick_job(device, component, {"Colour": "blue"})
    assert fake.jobs == {}
    default = connect(url).run_quick_job(device, component)
    assert fake.jobs[default["job_uid"]].name == f"HiveMatrix: component {component}"


# -- settings and conversions --------------------------------------------------------------


def test_settings_are_checked_and_named() -> None:
    with pytest.raises(BadSetting, match="missing settings: DATTO_URL, DATTO_API_KEY, "
                                         "DATTO_API_SECRET"):
        datto.from_settings({})
    base = {"DATTO_URL": "https://merlot-api.centrastage.net/api/v2/", "DATTO_API_KEY": "k",
            "DATTO_API_SECRET": "s"}
    with pytest.raises(BadSetting, match="DATTO_BACKUP_UDF: 'backup' is not a Datto UDF"):
        datto.from_settings({**base, "DATTO_BACKUP_UDF": "backup"})
    with pytest.raises(BadSetting, match="DATTO_ACCOUNT_NUMBER_VARIABLE"):
        datto.from_settings({**base, "DATTO_ACCOUNT_NUMBER_VARIABLE": " "})
    with pytest.raises(BadSetting, match="CODEX_HTTP_RETRIES: 'many' is not a number"):
        datto.from_settings({**base, "CODEX_HTTP_RETRIES": "many"})
    with pytest.raises(BadSetting, match=r"DATTO_URL: .*non-public address"):
        datto.from_settings({**base, "DATTO_URL": "https://127.0.0.1:9/api/v2"})
    with pytest.raises(BadSetting, match=r"DATTO_URL: .*https only"):
        datto.from_settings({**base, "DATTO_URL": "http://93.184.215.14"})
    assert datto.api_root("https://merlot-api.centrastage.net/api/v2/") == (
        "https://merlot-api.centrastage.net")
    assert datto.api_root("https://syrah-api.centrastage.net/API") == (
        "https://syrah-api.centrastage.net")


def test_the_factory_builds_the_datto_connector(url: str) -> None:
    from hivematrix.codex.connectors import factory

    connector = factory.rmm(settings_for(f"{url}/api/v2"))
    assert isinstance(connector, DattoRMM) and connector.http.base_url == url
    assert len(list(connector.sites())) == 3


def test_epoch_milliseconds_become_aware_utc() -> None:
    assert epoch_ms(1721131200000) == datetime(2024, 7, 16, 12, 0, tzinfo=UTC)
    assert epoch_ms(1721131200999).microsecond == 999000  # type: ignore[union-attr]
    assert epoch_ms("2024-07-16T12:00:00Z") == datetime(2024, 7, 16, 12, 0, tzinfo=UTC)
    assert epoch_ms("2024-07-16T14:00:00+02:00") == datetime(2024, 7, 16, 12, 0, tzinfo=UTC)
    assert epoch_ms(None) is None and epoch_ms(0) is None and epoch_ms("") is None
    for bad in ("2024-07-16T12:00:00", True, "soon", [1]):
        with pytest.raises(Unreadable):
            epoch_ms(bad, "lastSeen")


def test_backup_bytes_are_whole_numbers() -> None:
    assert whole_bytes("1099511627776", "udf6") == 1099511627776
    assert whole_bytes(" 5e12 ", "udf6") == 5_000_000_000_000
    assert whole_bytes("2,048", "udf6") == 2048
    assert whole_bytes("12.0", "udf6") == 12
    assert whole_bytes(None, "udf6") is None and whole_bytes("  ", "udf6") is None
    for bad in ("-1", "1.5", "NaN", "Infinity", "2 TB", True):
        with pytest.raises(Unreadable, match="udf6"):
            whole_bytes(bad, "udf6")


# -- end to end through the runner ----------------------------------------------------------


def add_companies(database: Database) -> None:
    with database.transaction() as session:
        session.add_all([Company(account_number="100001", name="Acme Dental"),
                         Company(account_number="100002", name="Baker and Sons Law")])


def sync(database: Database, connector: DattoRMM, config: dict[str, Any]) -> tuple[str, str]:
    billing = BillingTypeMap.from_config(json_mapping(config, "CODEX_BILLING_TYPE_MAP"))
    return runner.run_job(database, "rmm", connector.source,
                          lambda run: runner.sync_rmm(database, connector, run, billing))


def test_sync_rmm_end_to_end_is_idempotent_and_retires(fake: DattoFake, url: str,
                                                       codex_db: Database) -> None:
    add_companies(codex_db)
    fake.page_max = 2
    law = site_uid(fake, "Baker & Sons Law, LLC")
    broken = fake.add_device(law, "BAKER-BROKEN", lastSeen="never")
    fake.add_device(law, "BAKER-TAB", category="Tablet")
    fake.add_device(law, "BAKER-PHONE", category="Mobile")
    config = settings_for(url, CODEX_BILLING_TYPE_MAP='{"Tablet": "Workstation"}')
    connector = connect(url)

    job_id, status = sync(codex_db, connector, config)
    assert status == "partial"
    with codex_db.transaction() as session:
        job = session.get(SyncJob, job_id)
        assert job is not None
        assert job.counts["sites"] == {"created": 3, "updated": 0, "unchanged": 0,
                                       "retired": 0, "failed": 0}
        assert job.counts["devices"]["created"] == 8 and job.counts["devices"]["failed"] == 1
        assert f"devices {broken['uid']}: lastSeen: 'never' is not a timestamp" in job.log
        assert "site Unlinked Bakery" in job.log
        assets = {asset.hostname: asset for asset in session.scalars(select(Asset))}
        assert {name: asset.billing_type for name, asset in assets.items()} == {
            "ACME-DC01": "Server", "ACME-FRONT01": "Workstation", "ACME-LT07": "Workstation",
            "ACME-PRN1": "Printer", "BAKER-ESX1": "Server", "BAKER-PHONE": "Workstation",
            "BAKER-TAB": "Workstation", "BAKER-VM-SQL": "VM"}
        # "Tablet" is mapped by the setting; "Mobile" is known to no map: guessed and flagged
        assert assets["BAKER-TAB"].billing_type_unmapped is False
        assert assets["BAKER-PHONE"].billing_type_unmapped is True
        assert assets["ACME-DC01"].device_category == "Server"
        assert assets["ACME-DC01"].backup_bytes == 1649267441664
        assert assets["BAKER-ESX1"].backup_bytes == 5_000_000_000_000
        assert assets["ACME-DC01"].last_seen == datetime(2026, 11, 2, 8, 15, 30, 123000,
                                                         tzinfo=UTC)
        assert assets["ACME-DC01"].rmm_device_id == fake.devices[
            site_uid(fake, "Acme Dental")][0]["uid"]
        assert assets["ACME-DC01"].company.account_number == "100001"
        assert assets["BAKER-ESX1"].company.account_number == "100002"

    job_id, status = sync(codex_db, connector, config)
    with codex_db.transaction() as session:
        job = session.get(SyncJob, job_id)
        assert job is not None and status == "partial"  # the broken device is still broken
        assert job.counts["sites"]["unchanged"] == 3
        assert job.counts["devices"] == {"created": 0, "updated": 0, "unchanged": 8,
                                         "retired": 0, "failed": 1}
        assert len(session.scalars(select(Asset)).all()) == 8
        assert len(session.scalars(select(RMMSite)).all()) == 3

    dental = site_uid(fake, "Acme Dental")
    fake.devices[dental] = [device for device in fake.devices[dental]
                            if device["hostname"] != "ACME-LT07"]
    fake.devices[law] = [device for device in fake.devices[law]
                         if device["uid"] != broken["uid"]]
    fake.devices[dental][0]["online"] = False
    job_id, status = sync(codex_db, connector, config)
    assert status == "succeeded"
    with codex_db.transaction() as session:
        job = session.get(SyncJob, job_id)
        assert job is not None
        assert job.counts["devices"] == {"created": 0, "updated": 1, "unchanged": 6,
                                         "retired": 1, "failed": 0}
        server = session.scalar(select(Asset).where(Asset.hostname == "ACME-DC01"))
        assert server is not None and server.online is False
        laptop = session.scalar(select(Asset).where(Asset.hostname == "ACME-LT07"))
        assert laptop is not None and laptop.retired_at is not None  # kept, not deleted
    assert fake.token_requests == 1  # one token served all three runs
