"""A contract fake of the Datto RMM API v2, served over real HTTP.

It follows the documented contract (vendor-apis.md section 3): the OAuth password grant with
the fixed ``public-client:public`` Basic header and opaque expiring bearer tokens (401 once
expired or revoked); ``pageDetails`` paging with absolute ``nextPageUrl`` values pointing back
at this server (0-based pages, ``max`` clamped to the account's page size); epoch-millisecond
timestamps; site variables where PUT creates and POST updates, both answering 200 with no
body; quick jobs that go ``active`` → ``completed`` after a number of polls, with results
and stdout; and rate limiting: a sliding-window counter answering 429 past the limit and 403
("IP block") after repeated violations, plus a deterministic "every Nth call is a 429" mode.
Error bodies are Spring-style ``{timestamp, status, error, message, path}``; the token
endpoint answers OAuth-style ``{error, error_description}``.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request

from hivematrix.common.testing import serve_wsgi

API_KEY = "DATTO-PUBLIC-KEY-1"
API_SECRET = "datto-secret-key-1"
OAUTH_BASIC = "Basic " + base64.b64encode(b"public-client:public").decode()


def ms(moment: datetime) -> int:
    """A datetime as Datto sends it: Unix epoch milliseconds."""
    return int(moment.timestamp() * 1000)


@dataclass
class Job:
    uid: str
    id: int
    name: str
    device_uid: str
    component: dict[str, Any]
    variables: list[dict[str, str]]
    created: int
    polls: int = 0


class DattoFake:
    """State of one Datto account; tests seed it, run a connector against it, inspect it."""

    def __init__(self, *, page_max: int = 250, token_lifetime: int = 359999,
                 throttle_every: int = 0, retry_after: str | None = "1",
                 window_limit: int = 0, window_seconds: float = 60.0, block_after: int = 3,
                 job_polls_to_complete: int = 1) -> None:
        self.lock = threading.RLock()
        self.page_max = page_max
        self.token_lifetime = token_lifetime
        self.throttle_every = throttle_every
        self.retry_after = retry_after
        self.window_limit = window_limit
        self.window_seconds = window_seconds
        self.block_after = block_after
        self.job_polls_to_complete = job_polls_to_complete
        self.sites: list[dict[str, Any]] = []
        self.variables: dict[str, list[dict[str, Any]]] = {}
        self.devices: dict[str, list[Any]] = {}  # Any: tests slip malformed payloads in
        self.components: list[dict[str, Any]] = []
        self.jobs: dict[str, Job] = {}
        self.tokens: dict[str, float] = {}  # token → monotonic expiry
        self.token_requests = 0
        self.unauthorised = 0  # 401s answered to API calls
        self.reject_all_tokens = False
        self.api_calls = 0
        self.throttled = 0
        self.calls: list[str] = []  # "GET /path?query" of every API call
        self.writes: list[tuple[str, str, Any]] = []
        self.next_page_base: str | None = None  # set to send nextPageUrl somewhere else
        self.read_only_sites: set[str] = set()  # variable writes there answer 403
        self._window: deque[float] = deque()
        self._violations = 0
        self._blocked_until = 0.0
        self._ids = itertools.count(10_000)

    # -- seeding ---------------------------------------------------------------------------

    def add_site(self, name: str, *, account_number: str | None = None,
                 variable_name: str = "AccountNumber", masked: bool = False,
                 uid: str | None = None) -> str:
        with self.lock:
            uid = uid or str(uuid.uuid4())
            site_id = next(self._ids)
            self.sites.append({
                "id": site_id, "uid": uid, "accountUid": "ACCT-1", "name": name,
                "description": f"{name} head office", "notes": "", "onDemand": False,
                "splashtopAutoInstall": True, "proxySettings": None,
                "devicesStatus": {"numberOfDevices": 0, "numberOfOnlineDevices": 0,
                                  "numberOfOfflineDevices": 0},
                "autotaskCompanyName": None, "autotaskCompanyId": None,
                "portalUrl": f"https://merlot.centrastage.net/csm/site/{site_id}"})
            self.variables[uid] = []
            self.devices[uid] = []
            if account_number is not None:
                self.variables[uid].append({"id": next(self._ids), "name": variable_name,
                                            "value": account_number, "masked": masked})
            self.variables[uid].append({"id": next(self._ids), "name": "TimeZone",
                                        "value": "America/Chicago", "masked": False})
            return uid

    def add_device(self, site_uid: str, hostname: str, *, category: str = "Desktop",
                   backup_bytes: str | None = None, **fields: Any) -> dict[str, Any]:
        """A realistic device payload (udf6 holding backup bytes, as MSPs commonly set it)."""
        with self.lock:
            site = next(site for site in self.sites if site["uid"] == site_uid)
            seen = datetime(2026, 11, 2, 8, 15, 30, 123000, tzinfo=UTC)
            device: dict[str, Any] = {
                "id": next(self._ids), "uid": str(uuid.uuid4()), "siteId": site["id"],
                "siteUid": site_uid, "siteName": site["name"], "hostname": hostname,
                "description": f"{hostname} ({category})",
                "deviceType": {"category": category, "type": category},
                "deviceClass": "printer" if category == "Printer" else "device",
                "operatingSystem": "Microsoft Windows 11 Pro 23H2",
                "intIpAddress": "192.168.1.20", "extIpAddress": "203.0.113.5",
                "online": True, "suspended": False, "deleted": False, "rebootRequired": False,
                "a64Bit": True, "snmpEnabled": False,
                "lastSeen": ms(seen), "lastReboot": ms(datetime(2026, 11, 1, 3, 0, tzinfo=UTC)),
                "lastAuditDate": ms(datetime(2026, 11, 2, 1, 0, tzinfo=UTC)),
                "creationDate": ms(datetime(2024, 1, 1, tzinfo=UTC)),
                "lastLoggedInUser": "ACME\\jdoe", "domain": "acme.local",
                "cagVersion": "4.4.2201", "displayVersion": "4.4.2201.2201",
                "antivirus": {"antivirusProduct": "Windows Defender",
                              "antivirusStatus": "RunningAndUpToDate"},
                "patchManagement": {"patchStatus": "FullyPatched", "patchesApprovedPending": 0,
                                    "patchesNotApproved": 2, "patchesInstalled": 118},
                "udf": {"udf1": "Front desk", "udf2": None, "udf6": backup_bytes,
                        "udf30": None},
                "softwareStatus": "Compliant", "warrantyDate": "2027-03-31",
                "portalUrl": f"https://merlot.centrastage.net/csm/device/{hostname}",
                "webRemoteUrl": f"https://merlot.centrastage.net/csm/remote/{hostname}",
                "networkProbe": False, "onboardedViaNetworkMonitor": False,
            }
            device.update(fields)
            self.devices[site_uid].append(device)
            return device

    def add_component(self, name: str, variables: tuple[str, ...] = ()) -> str:
        with self.lock:
            uid = str(uuid.uuid4())
            self.components.append({
                "id": next(self._ids), "uid": uid, "name": name,
                "description": f"{name} (from the ComStore)", "categoryCode": "script",
                "credentialsRequired": False,
                "variables": [{"name": variable, "defaultVal": "", "type": "string",
                               "direction": False, "description": variable,
                               "variablesIdx": index} for index, variable in
                              enumerate(variables)]})
            return uid

    def expire_tokens(self) -> None:
        """Every issued token is dead from now on (as after Datto's 100 hours)."""
        with self.lock:
            self.tokens.clear()

    def variable(self, site_uid: str, name: str = "AccountNumber") -> dict[str, Any] | None:
        return next((item for item in self.variables[site_uid] if item["name"] == name), None)

    # -- the HTTP side ---------------------------------------------------------------------

    def _error(self, status: int, error: str, message: str) -> tuple[Response, int]:
        return jsonify({"timestamp": ms(datetime.now(UTC)), "status": status, "error": error,
                        "message": message, "path": request.path}), status

    def _rate_limited(self) -> tuple[Response, int] | None:
        now = time.monotonic()
        if now < self._blocked_until:
            return self._error(403, "Forbidden", "IP address blocked: too many requests")
        self.api_calls += 1
        over = bool(self.throttle_every) and self.api_calls % self.throttle_every == 0
        if self.window_limit:
            while self._window and self._window[0] <= now - self.window_seconds:
                self._window.popleft()
            if len(self._window) >= self.window_limit:
                self._violations += 1
                if self._violations > self.block_after:
                    self._blocked_until = now + 300
                    return self._error(403, "Forbidden", "IP address blocked: too many "
                                       "requests")
                over = True
            else:
                self._window.append(now)
        if not over:
            return None
        self.throttled += 1
        response, status = self._error(429, "Too Many Requests",
                                       "Request rate limit exceeded")
        if self.retry_after is not None:
            response.headers["Retry-After"] = self.retry_after
        return response, status

    def _authorised(self) -> tuple[Response, int] | None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self.tokens.get(token)
        if self.reject_all_tokens or expiry is None or time.monotonic() >= expiry:
            self.unauthorised += 1
            return jsonify({"error": "invalid_token",
                            "error_description": "Access token expired or invalid"}), 401
        return None

    def _page(self, key: str, items: list[Any]) -> Any:
        try:
            page = max(int(request.args.get("page", 0)), 0)
            size = min(max(int(request.args.get("max", self.page_max)), 1), self.page_max)
        except ValueError:
            return self._error(400, "Bad Request", "page and max must be integers")
        chunk = items[page * size:(page + 1) * size]
        base = (self.next_page_base or request.host_url).rstrip("/") + request.path
        more = (page + 1) * size < len(items)
        return jsonify({
            "pageDetails": {
                "count": len(chunk), "totalCount": len(items),
                "prevPageUrl": f"{base}?max={size}&page={page - 1}" if page else None,
                "nextPageUrl": f"{base}?max={size}&page={page + 1}" if more else None},
            key: chunk})

    def _site(self, uid: str) -> dict[str, Any] | None:
        return next((site for site in self.sites if site["uid"] == uid), None)

    def _device(self, uid: str) -> dict[str, Any] | None:
        return next((device for devices in self.devices.values() for device in devices
                     if isinstance(device, dict) and device.get("uid") == uid), None)

    def app(self) -> Flask:  # noqa: C901 - one small handler per documented endpoint
        app = Flask(__name__)
        fake = self

        @app.before_request
        def guard() -> Any:
            if not request.path.startswith("/api/"):
                return None
            with fake.lock:
                fake.calls.append(f"{request.method} {request.full_path.rstrip('?')}")
                return fake._rate_limited() or fake._authorised()

        @app.post("/auth/oauth/token")
        def token() -> Any:
            with fake.lock:
                fake.token_requests += 1
                if request.headers.get("Authorization") != OAUTH_BASIC:
                    return jsonify({"error": "unauthorized", "error_description":
                                    "Full authentication is required to access this "
                                    "resource"}), 401
                if request.form.get("grant_type") != "password":
                    return jsonify({"error": "unsupported_grant_type", "error_description":
                                    "Unsupported grant type"}), 400
                if (request.form.get("username") != API_KEY
                        or request.form.get("password") != API_SECRET):
                    return jsonify({"error": "invalid_grant",
                                    "error_description": "Bad credentials"}), 400
                issued = uuid.uuid4().hex
                fake.tokens[issued] = time.monotonic() + fake.token_lifetime
                return jsonify({"access_token": issued, "token_type": "bearer",
                                "expires_in": fake.token_lifetime, "scope": "default",
                                "jti": uuid.uuid4().hex})

        @app.get("/api/v2/system/pagination")
        def pagination() -> Any:
            return jsonify({"max": fake.page_max})

        @app.get("/api/v2/account/sites")
        def sites() -> Any:
            with fake.lock:
                return fake._page("sites", list(fake.sites))

        @app.get("/api/v2/site/<uid>/variables")
        def variables(uid: str) -> Any:
            with fake.lock:
                if fake._site(uid) is None:
                    return fake._error(404, "Not Found", f"Site {uid} not found")
                shown = [dict(item, value="*****") if item["masked"] else dict(item)
                         for item in fake.variables[uid]]
                return fake._page("variables", shown)

        @app.put("/api/v2/site/<uid>/variable")
        def create_variable(uid: str) -> Any:
            body = request.get_json(silent=True)
            with fake.lock:
                if fake._site(uid) is None:
                    return fake._error(404, "Not Found", f"Site {uid} not found")
                if uid in fake.read_only_sites:
                    return fake._error(403, "Forbidden", "Access denied to this site")
                if (not isinstance(body, dict) or not body.get("name")
                        or not isinstance(body.get("value"), str)):
                    return fake._error(400, "Bad Request", "name and value are required")
                if fake.variable(uid, body["name"]) is not None:
                    return fake._error(409, "Conflict",
                                       f"Variable {body['name']} already exists")
                fake.writes.append(("PUT", request.path, body))
                fake.variables[uid].append({"id": next(fake._ids), "name": body["name"],
                                            "value": body["value"],
                                            "masked": bool(body.get("masked", False))})
                return Response(status=200)

        @app.post("/api/v2/site/<uid>/variable/<int:variable_id>")
        def update_variable(uid: str, variable_id: int) -> Any:
            body = request.get_json(silent=True)
            with fake.lock:
                found = next((item for item in fake.variables.get(uid, [])
                              if item["id"] == variable_id), None)
                if found is None:
                    return fake._error(404, "Not Found", f"Variable {variable_id} not found")
                if uid in fake.read_only_sites:
                    return fake._error(403, "Forbidden", "Access denied to this site")
                if not isinstance(body, dict) or not isinstance(body.get("value"), str):
                    return fake._error(400, "Bad Request", "value is required")
                fake.writes.append(("POST", request.path, body))
                found["name"] = body.get("name") or found["name"]
                found["value"] = body["value"]
                return Response(status=200)

        @app.get("/api/v2/site/<uid>/devices")
        def devices(uid: str) -> Any:
            with fake.lock:
                if fake._site(uid) is None:
                    return fake._error(404, "Not Found", f"Site {uid} not found")
                return fake._page("devices", list(fake.devices[uid]))

        @app.get("/api/v2/device/<uid>")
        def device(uid: str) -> Any:
            with fake.lock:
                found = fake._device(uid)
                if found is None:
                    return fake._error(404, "Not Found", f"Device {uid} not found")
                return jsonify(found)

        @app.get("/api/v2/account/components")
        def components() -> Any:
            with fake.lock:
                return fake._page("components", list(fake.components))

        @app.put("/api/v2/device/<uid>/quickjob")
        def quick_job(uid: str) -> Any:
            body = request.get_json(silent=True)
            with fake.lock:
                return fake._create_job(uid, body)

        @app.get("/api/v2/job/<uid>")
        def job(uid: str) -> Any:
            with fake.lock:
                found = fake.jobs.get(uid)
                if found is None:
                    return fake._error(404, "Not Found", f"Job {uid} not found")
                found.polls += 1
                return jsonify(fake._job_json(found))

        @app.get("/api/v2/job/<uid>/results/<device_uid>")
        def results(uid: str, device_uid: str) -> Any:
            with fake.lock:
                found = fake.jobs.get(uid)
                if found is None or found.device_uid != device_uid:
                    return fake._error(404, "Not Found", f"No results of job {uid} on "
                                       f"{device_uid}")
                done = fake._completed(found)
                return jsonify({
                    "jobUid": uid, "deviceUid": device_uid,
                    "ranOn": found.created + 5000 if done else None,
                    "jobDeploymentStatus": "Success" if done else "Running",
                    "componentResults": [{
                        "componentUid": found.component["uid"],
                        "componentName": found.component["name"],
                        "componentStatus": "Success" if done else None,
                        "numberOfWarnings": 0, "hasStdOut": done, "hasStdErr": False}]})

        @app.get("/api/v2/job/<uid>/results/<device_uid>/<stream>")
        def std(uid: str, device_uid: str, stream: str) -> Any:
            with fake.lock:
                found = fake.jobs.get(uid)
                if found is None or stream not in ("stdout", "stderr"):
                    return fake._error(404, "Not Found", "No such output")
                text = ("" if stream == "stderr" else
                        f"{found.component['name']} ran with "
                        + ", ".join(f"{v['name']}={v['value']}" for v in found.variables))
                return jsonify([{"componentUid": found.component["uid"],
                                 "componentName": found.component["name"], "stdData": text}])

        return app

    def _completed(self, job: Job) -> bool:
        return job.polls >= self.job_polls_to_complete

    def _job_json(self, job: Job) -> dict[str, Any]:
        return {"id": job.id, "uid": job.uid, "name": job.name, "dateCreated": job.created,
                "status": "completed" if self._completed(job) else "active"}

    def _create_job(self, device_uid: str, body: Any) -> Any:
        if self._device(device_uid) is None:
            return self._error(404, "Not Found", f"Device {device_uid} not found")
        component_ref = body.get("jobComponent") if isinstance(body, dict) else None
        if (not isinstance(body, dict) or not isinstance(body.get("jobName"), str)
                or not body["jobName"] or not isinstance(component_ref, dict)):
            return self._error(400, "Bad Request", "jobName and jobComponent are required")
        component = next((item for item in self.components
                          if item["uid"] == component_ref.get("componentUid")), None)
        if component is None:
            return self._error(400, "Bad Request",
                               f"Component {component_ref.get('componentUid')} not found")
        known = {variable["name"] for variable in component["variables"]}
        given = component_ref.get("variables") or []
        unknown = [item.get("name") for item in given if item.get("name") not in known]
        if unknown:
            return self._error(400, "Bad Request", f"Unknown component variable(s): "
                               f"{', '.join(map(str, unknown))}")
        self.writes.append(("PUT", request.path, body))
        job = Job(uid=str(uuid.uuid4()), id=next(self._ids), name=body["jobName"],
                  device_uid=device_uid, component=component, variables=list(given),
                  created=ms(datetime.now(UTC)))
        self.jobs[job.uid] = job
        return jsonify({"job": self._job_json(job), "jobComponents": [{
            "uid": component["uid"], "name": component["name"], "variables": given}]})

    @contextmanager
    def serve(self) -> Iterator[str]:
        with serve_wsgi(self.app()) as url:
            yield url


def seeded() -> DattoFake:
    """An account like a small MSP's: linked sites, one without an AccountNumber, a mix of
    device categories, backup bytes in udf6 on the servers."""
    fake = DattoFake()
    dental = fake.add_site("Acme Dental", account_number="100001")
    fake.add_device(dental, "ACME-DC01", category="Server", backup_bytes="1649267441664",
                    operatingSystem="Microsoft Windows Server 2022 Standard")
    fake.add_device(dental, "ACME-FRONT01", category="Desktop")
    fake.add_device(dental, "ACME-LT07", category="Laptop", online=False)
    fake.add_device(dental, "ACME-PRN1", category="Printer", deviceClass="printer")
    law = fake.add_site("Baker & Sons Law, LLC", account_number="100002")
    fake.add_device(law, "BAKER-ESX1", category="ESXi Host", backup_bytes="5000000000000")
    fake.add_device(law, "BAKER-VM-SQL", category="Virtual Machine")
    fake.add_site("Unlinked Bakery")
    return fake
