"""Datto RMM (API v2): sites, devices, the ``AccountNumber`` site variable and quick jobs.

Sign-in is Datto's OAuth password grant (the API key and secret as username and password,
sent with Datto's fixed ``public-client`` client credentials). The bearer token is cached
until shortly before it expires and renewed once when a call answers 401 (Datto revokes
tokens early, for instance when the key is regenerated).

Lists are paged with ``pageDetails.nextPageUrl``, followed as given but only while it stays
on the configured host: the vendor's answer must not be able to send the bearer token
elsewhere. Timestamps arrive as Unix epoch milliseconds and become aware UTC datetimes.
Backup usage is read from a configurable UDF as a whole number of bytes; a value that is not
one makes that device a :class:`RecordFailure` (its stored asset keeps its last good value)
rather than a silently dropped figure that would under-bill.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from hivematrix.codex import settings
from hivematrix.codex.connectors.http import BlockedAddress, ConnectorError, VendorHTTP
from hivematrix.codex.settings import BadSetting
from hivematrix.codex.sync.records import DeviceRecord, RecordFailure, SiteRecord

SOURCE = "datto"
VENDOR = "Datto RMM"
#: Datto's documented public OAuth client; the secret part is the API key pair.
OAUTH_CLIENT = ("public-client", "public")
TOKEN_PATH = "/auth/oauth/token"  # noqa: S105 - a URL path, not a secret
#: Datto documents 250 as the usual page size; the server clamps larger requests anyway.
PAGE_SIZE = 250
#: Renew the token this long before it expires (at most half its lifetime).
REFRESH_BEFORE = 300.0
#: Datto documents a 100-hour token; used only when an answer leaves ``expires_in`` out.
DEFAULT_TOKEN_LIFETIME = 100 * 3600.0
#: Datto ids in URL paths are UUIDs; anything else is refused before it reaches a URL.
_PATH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_UDF_KEY = re.compile(r"^udf[1-9][0-9]*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Datto's ``deviceClass`` for devices that carry no ``deviceType.category``.
CLASS_CATEGORIES = {"printer": "Printer", "esxihost": "ESXi Host",
                    "rmmnetworkdevice": "Network Device"}

#: Device fields passed through as reported by :meth:`DattoRMM.device_details`.
DETAIL_FIELDS = {
    "uid": "uid", "id": "id", "hostname": "hostname", "siteUid": "site_uid",
    "siteName": "site_name", "description": "description", "deviceClass": "device_class",
    "operatingSystem": "operating_system", "intIpAddress": "internal_ip",
    "extIpAddress": "external_ip", "online": "online", "suspended": "suspended",
    "rebootRequired": "reboot_required", "a64Bit": "is_64_bit", "snmpEnabled": "snmp_enabled",
    "lastLoggedInUser": "last_logged_in_user", "domain": "domain",
    "displayVersion": "agent_version", "softwareStatus": "software_status",
    "warrantyDate": "warranty_date", "portalUrl": "portal_url",
    "webRemoteUrl": "web_remote_url",
}
DETAIL_TIMES = {"lastSeen": "last_seen", "lastReboot": "last_reboot",
                "lastAuditDate": "last_audit", "creationDate": "created_at"}
DETAIL_NESTED = {
    "deviceType": ("device_type", {"category": "category", "type": "type"}),
    "antivirus": ("antivirus", {"antivirusProduct": "product", "antivirusStatus": "status"}),
    "patchManagement": ("patch_management", {
        "patchStatus": "status", "patchesApprovedPending": "approved_pending",
        "patchesNotApproved": "not_approved", "patchesInstalled": "installed"}),
}


class Unreadable(ValueError):
    """One field of a payload cannot be read; the message names it."""


def epoch_ms(value: Any, name: str = "timestamp") -> datetime | None:
    """Datto's epoch milliseconds (or an ISO string, as the Swagger labels them) → aware UTC.

    Zero and negative values are what agents report for "never", not 1970.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Unreadable(f"{name}: {value!r} is not a timestamp")
    if isinstance(value, int | float):
        return _EPOCH + timedelta(milliseconds=int(value)) if value > 0 else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise Unreadable(f"{name}: {value!r} is not a timestamp") from None
        if parsed.tzinfo is None:
            raise Unreadable(f"{name}: {value!r} has no time zone")
        return parsed.astimezone(UTC)
    raise Unreadable(f"{name}: {value!r} is not a timestamp")


def whole_bytes(value: Any, name: str) -> int | None:
    """A byte count written into a UDF ("1099511627776", " 5e9 ", "2,048") → int; empty → None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Unreadable(f"{name} (backup bytes): {value!r} is not a number of bytes")
    text = str(value).strip().replace(",", "").replace("_", "")
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise Unreadable(f"{name} (backup bytes): {value!r} is not a number of bytes") from None
    if not number.is_finite() or number < 0 or number != number.to_integral_value():
        raise Unreadable(f"{name} (backup bytes): {value!r} is not a whole, non-negative "
                         "number of bytes")
    return int(number)


def _warranty(value: Any) -> date | None:
    """Datto's ``warrantyDate`` text; an unreadable one is simply not known (never guessed)."""
    if not isinstance(value, str) or len(value.strip()) < 10:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    return value.strip() if isinstance(value, str) else ""


def _nested_text(payload: Mapping[str, Any], outer: str, key: str) -> str:
    inner = payload.get(outer)
    return _text(inner, key) if isinstance(inner, Mapping) else ""


def path_id(value: str, what: str) -> str:
    """A Datto uid or id made safe for a URL path, or a refusal."""
    text = str(value).strip()
    if not _PATH_ID.match(text):
        raise ConnectorError(f"{VENDOR}: {what} {value!r} is not a Datto identifier")
    return text


class BearerToken(httpx.Auth):
    """Datto's bearer token: fetched on first use, renewed before expiry and once on a 401."""

    requires_response_body = True  # read the 401 so its connection is free for the renewal

    def __init__(self, fetch: Callable[[], tuple[str, float]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch = fetch
        self.clock = clock
        self.token = ""
        self.renew_at = 0.0
        self.issued = 0  # tokens fetched, for the job log and the tests
        self.lock = threading.Lock()

    def current(self) -> str:
        with self.lock:
            if not self.token or self.clock() >= self.renew_at:
                self._renew()
            return self.token

    def renew(self, stale: str) -> str:
        """A token other than ``stale`` (another thread may have renewed it already)."""
        with self.lock:
            if self.token == stale:
                self._renew()
            return self.token

    def _renew(self) -> None:
        token, lifetime = self.fetch()
        self.issued += 1
        self.token = token
        self.renew_at = self.clock() + lifetime - min(REFRESH_BEFORE, lifetime / 2)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.current()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.renew(token)}"
            yield request


class DattoRMM:
    """The RMM connector over Datto's API v2 (see the module docstring)."""

    source = SOURCE

    def __init__(self, base_url: str, api_key: str, api_secret: str, *,
                 backup_udf: str = "udf6", account_number_variable: str = "AccountNumber",
                 timeout: float = 30.0, retries: int = 5, allowlist: list[str] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.backup_udf = backup_udf
        self.account_number_variable = account_number_variable
        self.clock = clock
        self.auth = BearerToken(self._fetch_token, clock)
        self.http = VendorHTTP(VENDOR, api_root(base_url), auth=self.auth, timeout=timeout,
                               retries=retries, allowlist=allowlist or [], sleep=sleep)
        origin = urlsplit(self.http.base_url)
        self._origin = (origin.scheme, origin.netloc.lower())

    def close(self) -> None:
        self.http.close()

    # -- auth and paging ------------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, float]:
        try:
            body = self.http.json(
                "POST", TOKEN_PATH, auth=httpx.BasicAuth(*OAUTH_CLIENT),
                data={"grant_type": "password", "username": self.api_key,
                      "password": self.api_secret})
        except ConnectorError as exc:
            raise ConnectorError(f"{VENDOR} sign-in failed ({exc}); check DATTO_URL, "
                                 "DATTO_API_KEY and DATTO_API_SECRET") from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ConnectorError(f"{VENDOR} sign-in answered without an access_token")
        lifetime = body.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        return token, float(lifetime)

    def _next_url(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return None
        url = urljoin(self.http.base_url + "/", value.strip())
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            raise ConnectorError(f"{VENDOR}: nextPageUrl {value!r} leaves {self.http.base_url}; "
                                 "refusing to follow it")
        return url

    def _pages(self, path: str, key: str) -> Iterator[Any]:
        """Every item of a paged list, page after page, as long as ``nextPageUrl`` says."""
        url: str | None = path
        params: dict[str, Any] | None = {"max": PAGE_SIZE}
        followed: set[str] = set()
        while url is not None:
            body = self.http.json("GET", url, params=params)
            items = body.get(key) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ConnectorError(f"{VENDOR} GET {url}: answer has no {key!r} list")
            yield from items
            details = body.get("pageDetails")
            next_value = details.get("nextPageUrl") if isinstance(details, dict) else None
            url = self._next_url(next_value)
            if url is not None:
                if url in followed:
                    raise ConnectorError(f"{VENDOR}: nextPageUrl {url} repeats; stopping")
                followed.add(url)
            params = None  # the next page's URL carries its own query

    # -- sites and the account-number variable ---------------------------------------------

    def site_variables(self, site_uid: str) -> list[dict[str, Any]]:
        uid = path_id(site_uid, "site uid")
        return [item for item in self._pages(f"/api/v2/site/{uid}/variables", "variables")
                if isinstance(item, dict)]

    def _account_variable(self, site_uid: str) -> dict[str, Any] | None:
        """The site's account-number variable: its exact name first, else the same name in
        another case (an admin typing "accountnumber" meant the same thing)."""
        wanted = self.account_number_variable
        variables = self.site_variables(site_uid)
        for variable in variables:
            if variable.get("name") == wanted:
                return variable
        for variable in variables:
            if str(variable.get("name", "")).casefold() == wanted.casefold():
                return variable
        return None

    def sites(self) -> Iterator[SiteRecord | RecordFailure]:
        for payload in self._pages("/api/v2/account/sites", "sites"):
            yield self._site(payload)

    def _site(self, payload: Any) -> SiteRecord | RecordFailure:
        if not isinstance(payload, dict):
            return RecordFailure("sites", "?", "site is not a JSON object", payload)
        uid = payload.get("uid")
        if not isinstance(uid, str) or not _PATH_ID.match(uid.strip()):
            return RecordFailure("sites", str(payload.get("id", "?")),
                                 f"site without a usable uid ({uid!r})", payload)
        uid = uid.strip()
        name = _text(payload, "name")
        if not name:
            return RecordFailure("sites", uid, "site without a name", payload)
        try:
            variable = self._account_variable(uid)
        except ConnectorError as exc:
            return RecordFailure("sites", uid, f"its variables could not be read ({exc})",
                                 payload)
        if variable is not None and variable.get("masked") is True:
            return RecordFailure("sites", uid, f"site variable {variable.get('name')} is masked, "
                                 "so its account number cannot be read; unmask it in Datto",
                                 payload)
        value = variable.get("value") if variable is not None else None
        number = str(value).strip() if value is not None else ""
        return SiteRecord(source=SOURCE, external_id=uid, name=name,
                          account_number=number or None)

    def set_site_account_number(self, site_external_id: str, account_number: str) -> None:
        """Create the variable when the site lacks it, update it when present (Datto: PUT
        creates, POST updates), then read it back to confirm Datto kept the value."""
        uid = path_id(site_external_id, "site uid")
        number = account_number.strip()
        if not number:
            raise ConnectorError(f"{VENDOR}: refusing to write an empty account number")
        variable = self._account_variable(uid)
        if variable is None:
            self.http.request("PUT", f"/api/v2/site/{uid}/variable", json={
                "name": self.account_number_variable, "value": number, "masked": False})
        elif str(variable.get("value") or "").strip() == number:
            return
        else:
            variable_id = path_id(str(variable.get("id", "")), "variable id")
            self.http.request("POST", f"/api/v2/site/{uid}/variable/{variable_id}",
                              json={"name": variable.get("name"), "value": number})
        written = self._account_variable(uid)
        if written is None or (written.get("masked") is not True
                               and str(written.get("value") or "").strip() != number):
            raise ConnectorError(f"{VENDOR}: site {uid} does not show account number {number} "
                                 "after writing it")

    # -- devices ---------------------------------------------------------------------------

    def devices(self, site_external_id: str) -> Iterator[DeviceRecord | RecordFailure]:
        site_uid = path_id(site_external_id, "site uid")
        for payload in self._pages(f"/api/v2/site/{site_uid}/devices", "devices"):
            record = self._device(payload, site_uid)
            if record is not None:
                yield record

    def _device(self, payload: Any, site_uid: str) -> DeviceRecord | RecordFailure | None:
        if not isinstance(payload, dict):
            return RecordFailure("devices", "?", "device is not a JSON object", payload)
        uid = payload.get("uid")
        if not isinstance(uid, str) or not uid.strip():
            return RecordFailure("devices", str(payload.get("id", "?")),
                                 "device without a uid", payload)
        if payload.get("deleted") is True:
            return None  # in Datto's recycle bin: left out, so the store retires it
        try:
            return self._device_record(payload, uid.strip(), site_uid)
        except Unreadable as exc:
            return RecordFailure("devices", uid.strip(), str(exc), payload)

    def _udfs(self, payload: Mapping[str, Any]) -> dict[str, str]:
        raw = payload.get("udf")
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            raise Unreadable(f"udf: {raw!r} is not an object")
        return {key: str(value).strip() for key, value in raw.items()
                if _UDF_KEY.match(str(key)) and value is not None and str(value).strip()}

    def _device_record(self, payload: Mapping[str, Any], uid: str,
                       site_uid: str) -> DeviceRecord:
        hostname = _text(payload, "hostname")
        if not hostname:
            raise Unreadable("hostname: missing")
        udfs = self._udfs(payload)
        backup = (whole_bytes(udfs.get(self.backup_udf), self.backup_udf)
                  if self.backup_udf else None)
        category = (_nested_text(payload, "deviceType", "category")
                    or CLASS_CATEGORIES.get(_text(payload, "deviceClass").lower(), ""))
        return DeviceRecord(
            source=SOURCE, external_id=uid, site_external_id=site_uid, hostname=hostname,
            device_category=category, operating_system=_text(payload, "operatingSystem"),
            internal_ip=_text(payload, "intIpAddress"),
            external_ip=_text(payload, "extIpAddress"), online=payload.get("online") is True,
            last_seen=epoch_ms(payload.get("lastSeen"), "lastSeen"),
            last_reboot=epoch_ms(payload.get("lastReboot"), "lastReboot"),
            last_audit=epoch_ms(payload.get("lastAuditDate"), "lastAuditDate"),
            last_logged_in_user=_text(payload, "lastLoggedInUser"),
            domain=_text(payload, "domain"),
            antivirus_product=_nested_text(payload, "antivirus", "antivirusProduct"),
            patch_status=_nested_text(payload, "patchManagement", "patchStatus"),
            description=_text(payload, "description"), portal_url=_text(payload, "portalUrl"),
            web_remote_url=_text(payload, "webRemoteUrl"), backup_bytes=backup,
            warranty_expiry=_warranty(payload.get("warrantyDate")), udfs=udfs)

    def device_details(self, device_external_id: str) -> dict[str, Any]:
        """The device as Datto reports it right now: only fields Datto sent, renamed, with
        timestamps as ISO 8601 UTC; nothing filled in or estimated."""
        uid = path_id(device_external_id, "device uid")
        payload = self.http.json("GET", f"/api/v2/device/{uid}")
        if not isinstance(payload, dict):
            raise ConnectorError(f"{VENDOR} GET /api/v2/device/{uid}: answer is not an object")
        details: dict[str, Any] = {"source": SOURCE,
                                   "fetched_at": datetime.now(UTC).isoformat()}
        details.update({ours: payload[theirs] for theirs, ours in DETAIL_FIELDS.items()
                        if theirs in payload})
        for theirs, ours in DETAIL_TIMES.items():
            if theirs in payload:
                details[ours] = _iso_or_raw(payload[theirs], theirs)
        for theirs, (ours, fields) in DETAIL_NESTED.items():
            inner = payload.get(theirs)
            if isinstance(inner, Mapping):
                details[ours] = {name: inner[key] for key, name in fields.items() if key in inner}
        try:
            udfs = self._udfs(payload)
            details["udfs"] = udfs
            if self.backup_udf and self.backup_udf in udfs:
                details["backup_bytes"] = whole_bytes(udfs[self.backup_udf], self.backup_udf)
        except Unreadable as exc:
            details["unreadable"] = str(exc)
        return details

    # -- quick jobs ------------------------------------------------------------------------

    def run_quick_job(self, device_external_id: str, component_uid: str,
                      variables: dict[str, str] | None = None, *,
                      job_name: str = "") -> dict[str, Any]:
        """Start a component on a device (Datto's quick job); returns the job reference.

        Callers run this only after a person approved it: it executes code on the device.
        """
        uid = path_id(device_external_id, "device uid")
        component = str(component_uid).strip()
        if not component:
            raise ConnectorError(f"{VENDOR}: a quick job needs a component uid")
        body = {"jobName": job_name.strip() or f"HiveMatrix: component {component}",
                "jobComponent": {"componentUid": component, "variables": [
                    {"name": str(name), "value": str(value)}
                    for name, value in (variables or {}).items()]}}
        answer = self.http.json("PUT", f"/api/v2/device/{uid}/quickjob", json=body)
        job = answer.get("job") if isinstance(answer, dict) else None
        if not isinstance(job, dict) or not isinstance(job.get("uid"), str) or not job["uid"]:
            raise ConnectorError(f"{VENDOR} PUT /api/v2/device/{uid}/quickjob: answer carries "
                                 "no job uid")
        return {"job_uid": job["uid"], "device_uid": uid, "component_uid": component,
                **_job_fields(job)}

    def job_status(self, job_uid: str) -> dict[str, Any]:
        """A quick job as Datto reports it (``status`` is ``active`` or ``completed``)."""
        uid = path_id(job_uid, "job uid")
        job = self.http.json("GET", f"/api/v2/job/{uid}")
        if not isinstance(job, dict):
            raise ConnectorError(f"{VENDOR} GET /api/v2/job/{uid}: answer is not an object")
        return {"job_uid": uid, **_job_fields(job)}

    def job_results(self, job_uid: str, device_uid: str) -> dict[str, Any]:
        """A quick job's outcome on one device, with each component's stdout/stderr text."""
        job, device = path_id(job_uid, "job uid"), path_id(device_uid, "device uid")
        base = f"/api/v2/job/{job}/results/{device}"
        result = self.http.json("GET", base)
        if not isinstance(result, dict):
            raise ConnectorError(f"{VENDOR} GET {base}: answer is not an object")
        components = [item for item in result.get("componentResults") or []
                      if isinstance(item, dict)]
        outputs = {stream: self._std(base, stream)
                   for stream, flag in (("stdout", "hasStdOut"), ("stderr", "hasStdErr"))
                   if any(item.get(flag) is True for item in components)}
        return {
            "job_uid": job, "device_uid": device,
            "status": result.get("jobDeploymentStatus"),
            "ran_on": _iso_or_raw(result.get("ranOn"), "ranOn"),
            "components": [{
                "component_uid": item.get("componentUid"), "name": item.get("componentName"),
                "status": item.get("componentStatus"), "warnings": item.get("numberOfWarnings"),
                **{stream: texts.get(str(item.get("componentUid")), "")
                   for stream, texts in outputs.items()},
            } for item in components],
        }

    def _std(self, base: str, stream: str) -> dict[str, str]:
        data = self.http.json("GET", f"{base}/{stream}")
        texts: dict[str, str] = {}
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict):
                key = str(item.get("componentUid"))
                texts[key] = texts.get(key, "") + str(item.get("stdData") or "")
        return texts


def _iso_or_raw(value: Any, name: str) -> Any:
    """A timestamp as ISO 8601 UTC; one that cannot be read is passed on as Datto sent it."""
    try:
        moment = epoch_ms(value, name)
    except Unreadable:
        return value
    return moment.isoformat() if moment is not None else None


def _job_fields(job: Mapping[str, Any]) -> dict[str, Any]:
    fields = {ours: job[theirs] for theirs, ours in
              (("id", "job_id"), ("name", "name"), ("status", "status")) if theirs in job}
    if "dateCreated" in job:
        fields["created_at"] = _iso_or_raw(job["dateCreated"], "dateCreated")
    return fields


def api_root(url: str) -> str:
    """The platform host from what an operator typed (with or without ``/api`` or ``/api/v2``)."""
    root = url.strip().rstrip("/")
    for suffix in ("/api/v2", "/api"):
        if root.lower().endswith(suffix):
            root = root[: -len(suffix)]
            break
    return root


def _number(config: Mapping[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    raw = config.get(key, settings.DEFAULTS[key])
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise BadSetting(f"{key}: {raw!r} is not a number") from None
    if value <= 0:
        raise BadSetting(f"{key}: must be greater than zero")
    return value


def from_settings(config: Mapping[str, Any], *, sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic) -> DattoRMM:
    settings.require(config, "DATTO_URL", "DATTO_API_KEY", "DATTO_API_SECRET")
    backup_udf = str(config.get("DATTO_BACKUP_UDF", settings.DEFAULTS["DATTO_BACKUP_UDF"])
                     ).strip().lower()
    if backup_udf and not _UDF_KEY.match(backup_udf):
        raise BadSetting(f"DATTO_BACKUP_UDF: {backup_udf!r} is not a Datto UDF name "
                         "(udf1, udf2, ...; empty for none)")
    variable = str(config.get("DATTO_ACCOUNT_NUMBER_VARIABLE",
                              settings.DEFAULTS["DATTO_ACCOUNT_NUMBER_VARIABLE"])).strip()
    if not variable:
        raise BadSetting("DATTO_ACCOUNT_NUMBER_VARIABLE: must name a site variable")
    try:
        return DattoRMM(
            str(config["DATTO_URL"]), str(config["DATTO_API_KEY"]).strip(),
            str(config["DATTO_API_SECRET"]).strip(), backup_udf=backup_udf,
            account_number_variable=variable,
            timeout=_number(config, "CODEX_HTTP_TIMEOUT_SECONDS", float),
            retries=_number(config, "CODEX_HTTP_RETRIES", int),
            allowlist=settings.allowlist(config), sleep=sleep, clock=clock)
    except BlockedAddress as exc:
        raise BadSetting(f"DATTO_URL: {exc}") from None
