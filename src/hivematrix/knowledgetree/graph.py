"""The graph store behind KnowledgeTree: one small port, two adapters that speak Cypher.

Queries are written once, in the Cypher both FalkorDB and Neo4j understand (no pattern
predicates with properties, no APOC, no map properties); only the connection, schema creation
and the full-text call differ, and those few lines live here.

Atomicity. Every write the model makes is **one statement**, guarded in its own ``WHERE``
clauses. Both databases run one statement all or nothing: Neo4j in its transaction, FalkorDB
by design (a failed query leaves no partial change, and write queries on a graph run one at a
time, so the guards read what the write changes). :meth:`GraphStore.write_all` runs several
statements as one unit: Neo4j in one transaction; FalkorDB in ``MULTI``/``EXEC``, so no other
client's query runs in between, but FalkorDB cannot undo an earlier statement when a later one
fails — use it only for statements that cannot fail on the data.

Neo4j cannot run on the machines this was built on: :class:`Neo4jStore` is covered by the same
contract tests as :class:`FalkorDBStore`, which run against a Neo4j only when
``HIVEMATRIX_TEST_NEO4J_URL`` (``bolt://user:password@host:7687``) is set; without it those
tests are not collected at all. The ``neo4j`` driver is the optional extra ``hivematrix[neo4j]``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Row = dict[str, Any]
Params = Mapping[str, Any]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WORD = re.compile(r"\w+", re.UNICODE)
_ALREADY = re.compile(r"already (indexed|exists)", re.IGNORECASE)


class GraphError(Exception):
    """The graph store cannot be reached or refused a statement."""


class ConstraintViolation(GraphError):
    """A unique constraint refused the write (nothing of the statement was applied)."""


@dataclass(frozen=True)
class Schema:
    """What must exist before data is written: exact-match indexes, unique properties (each
    also indexed), and one full-text index over some properties of one label."""

    label: str
    indexed: tuple[str, ...] = ()
    unique: tuple[str, ...] = ()
    fulltext: tuple[str, ...] = ()
    #: Relative weight of each full-text property (default 1).
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (self.label, *self.indexed, *self.unique, *self.fulltext):
            if not _IDENTIFIER.match(name):
                raise ValueError(f"not a plain identifier: {name!r}")


def search_terms(text: str) -> list[str]:
    """The words of a user's search, lower-cased; punctuation never reaches a query engine."""
    return [word.lower() for word in _WORD.findall(text)][:16]


_LUCENE_SPECIAL = re.compile(r'([+\-&|!(){}\[\]^"~*?:\\/])')


def lucene_query(schema: Schema, terms: Sequence[str]) -> str:
    """A Lucene query (Neo4j's full-text syntax) requiring every term in any of the schema's
    full-text properties, the last also as a prefix; Neo4j's index has no field weights, so
    the schema's weights become boosts."""
    words = [_LUCENE_SPECIAL.sub(r"\\\1", term) for term in terms]
    if words and len(words[-1]) >= 2:
        words[-1] += "*"
    clauses = []
    for word in words:
        fields = [f"{prop}:{word}^{float(schema.weights.get(prop, 1.0)):g}"
                  for prop in schema.fulltext]
        clauses.append("(" + " OR ".join(fields) + ")")
    return " AND ".join(clauses)


class GraphStore(Protocol):
    """A Cypher graph database."""

    def query(self, cypher: str, params: Params | None = None) -> list[Row]:
        """Run a read-only statement; its rows as dicts by column name."""

    def write(self, cypher: str, params: Params | None = None) -> list[Row]:
        """Run one statement that may write, atomically.

        :raises ConstraintViolation: a unique constraint refused it.
        """

    def write_all(self, statements: Sequence[tuple[str, Params]]) -> list[list[Row]]:
        """Run several statements as one unit (see the module docstring for FalkorDB)."""

    def ensure_schema(self, schema: Schema, timeout: float = 30.0) -> None:
        """Create the schema's indexes and constraints when missing, and return once they
        are all operational (writes before that would not be indexed or checked)."""

    def fulltext_call(self, schema: Schema) -> str:
        """A ``CALL ... YIELD node, score`` clause searching the schema's full-text index for
        the words in the ``$fulltext`` parameter (built by :meth:`fulltext_query`)."""

    def fulltext_query(self, schema: Schema, terms: Sequence[str]) -> str:
        """The engine's query string matching every one of ``terms`` (the last as a prefix),
        each in any of the schema's full-text properties, weighted as the schema says."""

    def node_key(self, variable: str) -> str:
        """An expression for the database's own id of the node bound to ``variable``: read
        without touching properties, so cheap to order ties by and to compare with a few
        keys on every hit of a broad search. Stable only while the node exists."""

    def drop_all(self) -> None:
        """Delete the whole graph (tests and wipe); the schema has to be ensured again."""

    def close(self) -> None:
        """Release connections."""


class FalkorDBStore:
    """One named graph in a FalkorDB server (the embedded one Helm runs, or another)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 6380,
                 password: str | None = None, graph: str = "knowledgetree",
                 timeout: float = 10.0) -> None:
        from falkordb import FalkorDB

        self._db = FalkorDB(host=host, port=port, password=password or None,
                            socket_timeout=timeout, socket_connect_timeout=timeout)
        self.name = graph
        self._graph = self._db.select_graph(graph)

    def _run(self, cypher: str, params: Params | None, *, read_only: bool) -> list[Row]:
        import redis

        try:
            if read_only:
                result = self._graph.ro_query(cypher, dict(params or {}))
            else:
                result = self._graph.query(cypher, dict(params or {}))
        except redis.ResponseError as exc:
            if "constraint violation" in str(exc):
                raise ConstraintViolation(str(exc)) from exc
            raise GraphError(str(exc)) from exc
        except redis.RedisError as exc:
            raise GraphError(f"FalkorDB is unreachable: {exc}") from exc
        columns = [str(column[1]) if isinstance(column, list | tuple) else str(column)
                   for column in result.header]
        return [dict(zip(columns, row, strict=True)) for row in result.result_set]

    def query(self, cypher: str, params: Params | None = None) -> list[Row]:
        return self._run(cypher, params, read_only=True)

    def write(self, cypher: str, params: Params | None = None) -> list[Row]:
        return self._run(cypher, params, read_only=False)

    def write_all(self, statements: Sequence[tuple[str, Params]]) -> list[list[Row]]:
        # FalkorDB has no multi-statement transaction; MULTI keeps others' queries out.
        import redis
        from falkordb.query_result import QueryResult

        pipeline = self._db.connection.pipeline(transaction=True)
        for cypher, params in statements:
            pipeline.execute_command("GRAPH.QUERY", self.name,
                                     self._graph._build_params_header(dict(params)) + cypher,
                                     "--compact")
        try:
            replies = pipeline.execute(raise_on_error=False)
        except redis.RedisError as exc:
            raise GraphError(f"FalkorDB is unreachable: {exc}") from exc
        results: list[list[Row]] = []
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                if "constraint violation" in str(reply):
                    raise ConstraintViolation(str(reply))
                raise GraphError(str(reply))
            result = QueryResult(self._graph, reply)
            columns = [str(column[1]) for column in result.header]
            results.append([dict(zip(columns, row, strict=True)) for row in result.result_set])
        return results

    def _schema_rows(self, cypher: str) -> list[Row]:
        try:
            return self.query(cypher)
        except GraphError as exc:
            if "empty key" in str(exc):
                return []  # the graph does not exist yet: nothing is indexed
            raise

    def _indexes(self) -> list[Row]:
        return self._schema_rows("CALL db.indexes() YIELD label, properties, types, status "
                          "RETURN label, properties, types, status")

    def _constraints(self) -> list[Row]:
        return self._schema_rows("CALL db.constraints() YIELD type, label, properties, status "
                          "RETURN type, label, properties, status")

    def _create(self, cypher: str) -> None:
        """A schema statement; another process (a web worker starting at the same time)
        having run it first is fine."""
        try:
            self.write(cypher)
        except GraphError as exc:
            if not _ALREADY.search(str(exc)):
                raise

    def ensure_schema(self, schema: Schema, timeout: float = 30.0) -> None:
        import redis

        existing = {(row["label"], prop, kind) for row in self._indexes()
                    for prop in row["properties"] for kind in row["types"].get(prop, [])}
        for prop in dict.fromkeys((*schema.indexed, *schema.unique)):
            if (schema.label, prop, "RANGE") not in existing:
                self._create(f"CREATE INDEX FOR (n:{schema.label}) ON (n.{prop})")
        if schema.fulltext and not any((schema.label, prop, "FULLTEXT") in existing
                                       for prop in schema.fulltext):
            fields = ", ".join(
                f"{{field: '{prop}', weight: {float(schema.weights.get(prop, 1.0))}}}"
                for prop in schema.fulltext)
            # No stop words: "IT" or "How to" are titles people search for (Neo4j's default
            # full-text analyzer keeps stop words too).
            self._create(f"CALL db.idx.fulltext.createNodeIndex("
                         f"{{label: '{schema.label}', language: 'english', stopwords: []}}, "
                         f"{fields})")
        constrained = {(row["label"], tuple(row["properties"])) for row in self._constraints()
                       if row["type"] == "UNIQUE"}
        for prop in schema.unique:
            if (schema.label, (prop,)) not in constrained:
                try:
                    self._db.connection.execute_command(
                        "GRAPH.CONSTRAINT", "CREATE", self.name, "UNIQUE", "NODE",
                        schema.label, "PROPERTIES", "1", prop)
                except redis.ResponseError as exc:
                    if _ALREADY.search(str(exc)):
                        continue  # another process created it first
                    raise GraphError(f"cannot create the unique constraint on "
                                     f"{schema.label}.{prop}: {exc}") from exc
        deadline = time.monotonic() + timeout
        while True:
            pending = [row for row in (*self._indexes(), *self._constraints())
                       if row["label"] == schema.label and row["status"] != "OPERATIONAL"]
            failed = [row for row in pending if row["status"] == "FAILED"]
            if failed:
                raise GraphError(f"FalkorDB could not build {failed[0]}")
            if not pending:
                return
            if time.monotonic() > deadline:
                raise GraphError(f"indexes still not operational after {timeout} s: {pending}")
            time.sleep(0.05)

    def fulltext_call(self, schema: Schema) -> str:
        return (f"CALL db.idx.fulltext.queryNodes('{schema.label}', $fulltext) "
                f"YIELD node, score")

    def fulltext_query(self, schema: Schema, terms: Sequence[str]) -> str:
        # RediSearch syntax: words side by side must all match; a trailing * is a prefix.
        # The weights were given to the index itself (ensure_schema).
        # search_terms() keeps only word characters, so nothing here needs escaping.
        words = list(terms)
        if words and len(words[-1]) >= 2:
            words[-1] += "*"
        return " ".join(words)

    def node_key(self, variable: str) -> str:
        return f"id({variable})"

    def drop_all(self) -> None:
        import redis

        try:
            self._graph.delete()
        except redis.ResponseError as exc:
            if "empty key" not in str(exc):
                raise GraphError(str(exc)) from exc

    def close(self) -> None:
        self._db.connection.close()


class Neo4jStore:
    """A Neo4j database over Bolt (``neo4j`` driver; ``pip install hivematrix[neo4j]``).

    Not exercised on the machines this was written on (no Neo4j there); its contract tests run
    when ``HIVEMATRIX_TEST_NEO4J_URL`` is set.
    """

    def __init__(self, uri: str, *, user: str | None = None, password: str | None = None,
                 database: str | None = None) -> None:
        try:
            import neo4j
        except ImportError as exc:
            raise GraphError("the neo4j driver is not installed "
                             "(pip install 'hivematrix[neo4j]')") from exc
        auth = (user, password or "") if user else None
        self._driver = neo4j.GraphDatabase.driver(uri, auth=auth)
        self._database = database

    def _session(self, read_only: bool) -> Any:
        import neo4j

        mode = neo4j.READ_ACCESS if read_only else neo4j.WRITE_ACCESS
        return self._driver.session(database=self._database, default_access_mode=mode)

    def _execute(self, statements: Sequence[tuple[str, Params]], *,
                 read_only: bool) -> list[list[Row]]:
        import neo4j.exceptions

        def work(tx: Any) -> list[list[Row]]:
            return [[record.data() for record in tx.run(cypher, dict(params))]
                    for cypher, params in statements]

        try:
            with self._session(read_only) as session:
                if read_only:
                    return list(session.execute_read(work))
                return list(session.execute_write(work))
        except neo4j.exceptions.ConstraintError as exc:
            raise ConstraintViolation(str(exc)) from exc
        except neo4j.exceptions.Neo4jError as exc:
            raise GraphError(str(exc)) from exc
        except neo4j.exceptions.DriverError as exc:
            raise GraphError(f"Neo4j is unreachable: {exc}") from exc

    def query(self, cypher: str, params: Params | None = None) -> list[Row]:
        return self._execute([(cypher, params or {})], read_only=True)[0]

    def write(self, cypher: str, params: Params | None = None) -> list[Row]:
        return self._execute([(cypher, params or {})], read_only=False)[0]

    def write_all(self, statements: Sequence[tuple[str, Params]]) -> list[list[Row]]:
        return self._execute(statements, read_only=False)

    def _index_name(self, schema: Schema, what: str) -> str:
        return f"{schema.label.lower()}_{what}"

    def ensure_schema(self, schema: Schema, timeout: float = 30.0) -> None:
        for prop in schema.unique:
            self.write(f"CREATE CONSTRAINT {self._index_name(schema, prop + '_unique')} "
                       f"IF NOT EXISTS FOR (n:{schema.label}) REQUIRE n.{prop} IS UNIQUE")
        for prop in schema.indexed:
            if prop not in schema.unique:
                self.write(f"CREATE INDEX {self._index_name(schema, prop)} IF NOT EXISTS "
                           f"FOR (n:{schema.label}) ON (n.{prop})")
        if schema.fulltext:
            props = ", ".join(f"n.{prop}" for prop in schema.fulltext)
            self.write(f"CREATE FULLTEXT INDEX {self._index_name(schema, 'fulltext')} "
                       f"IF NOT EXISTS FOR (n:{schema.label}) ON EACH [{props}]")
        self.write(f"CALL db.awaitIndexes({int(timeout)})")

    def fulltext_call(self, schema: Schema) -> str:
        return (f"CALL db.index.fulltext.queryNodes('{self._index_name(schema, 'fulltext')}', "
                f"$fulltext) YIELD node, score")

    def fulltext_query(self, schema: Schema, terms: Sequence[str]) -> str:
        return lucene_query(schema, terms)

    def node_key(self, variable: str) -> str:
        return f"elementId({variable})"  # id() is deprecated in Neo4j 5

    def drop_all(self) -> None:
        self.write("MATCH (n) DETACH DELETE n")

    def close(self) -> None:
        self._driver.close()
