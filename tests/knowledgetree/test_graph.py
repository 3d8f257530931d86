"""The graph-store port's contract, for each adapter (Neo4j only when configured)."""

from __future__ import annotations

import pytest

from hivematrix.knowledgetree.graph import (
    ConstraintViolation,
    GraphError,
    GraphStore,
    Schema,
    search_terms,
)

SCHEMA = Schema(label="Thing", indexed=("id", "kind"), unique=("id",),
                fulltext=("title", "body"), weights={"title": 4.0})


def test_schema_is_created_once_and_enforced(store: GraphStore) -> None:
    store.ensure_schema(SCHEMA)
    store.ensure_schema(SCHEMA)  # idempotent
    store.write("CREATE (:Thing {id: $id, title: 'One'})", {"id": "1"})
    with pytest.raises(ConstraintViolation):
        store.write("CREATE (:Thing {id: 'x2'}) CREATE (:Thing {id: $id})", {"id": "1"})
    # The whole statement was refused, its first CREATE included.
    assert store.query("MATCH (t:Thing) RETURN t.id AS id") == [{"id": "1"}]


def test_a_failing_statement_changes_nothing(store: GraphStore) -> None:
    store.ensure_schema(SCHEMA)
    with pytest.raises(GraphError):
        store.write("UNWIND [1, 0] AS d CREATE (:Thing {id: toString(d)}) RETURN 1 / d AS x")
    assert store.query("MATCH (t:Thing) RETURN count(t) AS n") == [{"n": 0}]


def test_rows_parameters_and_write_all(store: GraphStore) -> None:
    store.ensure_schema(SCHEMA)
    results = store.write_all([
        ("CREATE (t:Thing {id: $id, kind: $kind}) RETURN t.id AS id", {"id": "a", "kind": "k"}),
        ("CREATE (t:Thing {id: $id, kind: $kind}) RETURN t.id AS id", {"id": "b", "kind": "k"}),
        ("MATCH (t:Thing {kind: $kind}) RETURN t.id AS id ORDER BY id", {"kind": "k"}),
    ])
    assert results == [[{"id": "a"}], [{"id": "b"}], [{"id": "a"}, {"id": "b"}]]
    rows = store.query("MATCH (t:Thing {id: $id}) RETURN t.kind AS kind, [1, 2] AS list, "
                       "null AS nothing", {"id": "a"})
    assert rows == [{"kind": "k", "list": [1, 2], "nothing": None}]
    with pytest.raises(GraphError):
        store.query("THIS IS NOT CYPHER")


def test_fulltext_call_ranks_by_weighted_fields(store: GraphStore) -> None:
    store.ensure_schema(SCHEMA)
    store.write("CREATE (:Thing {id: '1', title: 'Other', body: 'router router reboot'}), "
                "(:Thing {id: '2', title: 'Router', body: 'reboot'}), "
                "(:Thing {id: '3', title: 'Switch', body: 'nothing'})")
    call = store.fulltext_call(SCHEMA)
    rows = store.query(f"{call} RETURN node.id AS id, score ORDER BY score DESC",
                       {"fulltext": store.fulltext_query(SCHEMA, search_terms("rout"))})
    assert [row["id"] for row in rows] == ["2", "1"]
    rows = store.query(f"{call} RETURN node.id AS id",
                       {"fulltext": store.fulltext_query(SCHEMA, search_terms("router, REBOOT!"))})
    assert sorted(row["id"] for row in rows) == ["1", "2"]


def test_search_terms_keep_only_words() -> None:
    assert search_terms("Hello, wörld! a*b (c) -d") == ["hello", "wörld", "a", "b", "c", "d"]
    assert search_terms("") == [] and len(search_terms("w " * 50)) == 16


def test_drop_all_empties_the_graph(store: GraphStore) -> None:
    store.ensure_schema(SCHEMA)
    store.write("CREATE (:Thing {id: '1'})")
    store.drop_all()
    store.ensure_schema(SCHEMA)
    assert store.query("MATCH (t:Thing) RETURN count(t) AS n") == [{"n": 0}]


def test_lucene_query_for_neo4j() -> None:
    from hivematrix.knowledgetree.graph import lucene_query

    assert lucene_query(SCHEMA, ["reset", "fire"]) == (
        "(title:reset^4 OR body:reset^1) AND (title:fire*^4 OR body:fire*^1)")
    assert lucene_query(SCHEMA, ["a"]) == "(title:a^4 OR body:a^1)"
    assert lucene_query(SCHEMA, ["x:y"]) == "(title:x\\:y*^4 OR body:x\\:y*^1)"
    assert lucene_query(SCHEMA, []) == ""


def test_schema_over_existing_data_is_ready_when_ensure_returns(store: GraphStore) -> None:
    """Indexes built over data already there are complete once ensure_schema returns."""
    store.write("UNWIND range(1, 5000) AS n "
                "CREATE (:Thing {id: toString(n), kind: 'bulk', title: 'item ' + toString(n), "
                "body: CASE WHEN n % 2 = 0 THEN 'even needle' ELSE 'odd' END})")
    store.ensure_schema(SCHEMA)
    rows = store.query(f"{store.fulltext_call(SCHEMA)} RETURN count(node) AS n",
                       {"fulltext": store.fulltext_query(SCHEMA, ["needle"])})
    assert rows == [{"n": 2500}]
    with pytest.raises(ConstraintViolation):
        store.write("CREATE (:Thing {id: '42'})")
