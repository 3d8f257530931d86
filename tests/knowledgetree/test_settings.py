"""Where KnowledgeTree finds its graph (KT_GRAPH_URL, else Helm's databases.graph), and an app
whose graph is unreachable: created without touching it, unhealthy, 503 on the API."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hivematrix.common.config import SettingsError, load_settings
from hivematrix.common.testing import free_port
from hivematrix.knowledgetree import SERVICE, create_app, scheduler
from hivematrix.knowledgetree.settings import (
    DEFAULTS,
    allowed_extensions,
    files_dir,
    graph_target,
    parse_graph_url,
)
from tests.knowledgetree.apiapp import Headers, refused


def test_falkordb_urls() -> None:
    target = parse_graph_url("falkordb://:s%40cret@10.0.0.5:6390/kb")
    assert (target.backend, target.host, target.port, target.graph, target.password) == (
        "falkordb", "10.0.0.5", 6390, "kb", "s@cret")
    assert "cret" not in target.describe()
    plain = parse_graph_url("redis://127.0.0.1")
    assert (plain.port, plain.graph, plain.password) == (6380, "knowledgetree", None)


def test_neo4j_urls() -> None:
    target = parse_graph_url("bolt://neo:pw@db.internal:7688")
    assert (target.backend, target.user, target.password, target.uri) == (
        "neo4j", "neo", "pw", "bolt://db.internal:7688")
    assert parse_graph_url("neo4j+s://db.example").uri == "neo4j+s://db.example:7687"


@pytest.mark.parametrize("url", ["mysql://x", "falkordb://h/a/b", "falkordb://h:99999/x"])
def test_unusable_urls_name_the_setting(url: str) -> None:
    with pytest.raises(SettingsError, match="KT_GRAPH_URL"):
        parse_graph_url(url)


def write_master(home: Path, graph: Any) -> None:
    (home / "configs").mkdir(parents=True, exist_ok=True)
    (home / "configs" / "master_config.json").write_text(
        json.dumps({"databases": {"graph": graph}}))


def test_helm_databases_graph_decides_without_a_url(tmp_path: Path) -> None:
    config = {"HIVEMATRIX_HOME": str(tmp_path), "KT_GRAPH_URL": None}
    default = graph_target(config)
    assert (default.backend, default.host, default.port, default.password) == (
        "falkordb", "127.0.0.1", 6380, None)
    write_master(tmp_path, {"backend": "falkordb", "port": 6401, "password": "pw"})
    embedded = graph_target(config)
    assert (embedded.port, embedded.password, embedded.graph) == (6401, "pw", "knowledgetree")
    write_master(tmp_path, {"backend": "neo4j", "url": "bolt://db:7687", "user": "kt",
                            "password": "secret"})
    neo = graph_target(config)
    assert (neo.backend, neo.uri, neo.user, neo.password) == (
        "neo4j", "bolt://db:7687", "kt", "secret")
    write_master(tmp_path, {"backend": "neo4j"})
    with pytest.raises(SettingsError, match=r"databases\.graph\.url"):
        graph_target(config)
    write_master(tmp_path, {"backend": "mysql"})
    with pytest.raises(SettingsError, match=r"databases\.graph\.backend"):
        graph_target(config)
    # An explicit URL wins over Helm's section.
    assert graph_target({**config, "KT_GRAPH_URL": "falkordb://h:1/g"}).host == "h"


def test_files_and_types(tmp_path: Path) -> None:
    assert files_dir({"HIVEMATRIX_HOME": str(tmp_path), "KT_FILES_DIR": None}) == (
        tmp_path / "knowledgetree" / "files")
    assert allowed_extensions({"KT_ALLOWED_EXTENSIONS": " PDF, .txt ,,"}) == {"pdf", "txt"}


def test_unreachable_graph(service_settings: dict[str, Any], as_user: Headers,
                           tmp_path: Path) -> None:
    # Nothing listens there: creating the app must not notice (no connection at start).
    app = create_app({**service_settings,
                      "KT_GRAPH_URL": f"falkordb://127.0.0.1:{free_port()}/kt",
                      "KT_GRAPH_TIMEOUT": 1.0, "KT_FILES_DIR": str(tmp_path / "files")})
    client = app.test_client()
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json()["checks"]["graph"]["status"] == "unhealthy"
    body = refused(client.get("/api/items/root", headers=as_user("admin")), 503)
    assert "unavailable" in body["detail"]
    assert SERVICE.port == 5020 and SERVICE.factory == "hivematrix.knowledgetree:create_app"


def test_scheduler_settings_come_from_the_environment(tmp_path: Path) -> None:
    environ = {"HIVEMATRIX_HOME": str(tmp_path), "KT_SCHEDULER": "false",
               "KNOWLEDGETREE_KT_SYNC_SCHEDULE_MINUTES": "15",
               "KT_SYNC_LEASE_SECONDS": "90"}
    settings = load_settings("knowledgetree", defaults=DEFAULTS, environ=environ)
    # Typed like their defaults: "false" is False, not a truthy string.
    assert settings["KT_SCHEDULER"] is False
    assert settings["KT_SYNC_SCHEDULE_MINUTES"] == 15
    assert settings["KT_SYNC_LEASE_SECONDS"] == 90.0
    assert scheduler.interval(settings) == timedelta(minutes=15)
    unset = load_settings("knowledgetree", defaults=DEFAULTS,
                          environ={"HIVEMATRIX_HOME": str(tmp_path)})
    assert {key: unset[key] for key in scheduler.DEFAULTS} == scheduler.DEFAULTS
    with pytest.raises(SettingsError, match="KT_SCHEDULER"):
        load_settings("knowledgetree", defaults=DEFAULTS,
                      environ={"HIVEMATRIX_HOME": str(tmp_path), "KT_SCHEDULER": "maybe"})


def test_kt_scheduler_false_in_the_environment_keeps_the_app_from_scheduling(
        service_settings: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KT_SCHEDULER", "false")
    # Not in test mode, where no scheduler ever starts: only the setting can stop it.
    app = create_app({**service_settings, "TESTING": False,
                      "KT_GRAPH_URL": f"falkordb://127.0.0.1:{free_port()}/kt",
                      "KT_FILES_DIR": str(tmp_path / "files")})
    started = app.extensions.get("knowledgetree.scheduler")
    if started is not None:
        started.stop()
    assert app.config["KT_SCHEDULER"] is False
    assert started is None
