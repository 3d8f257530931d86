"""The default registry: every tool has a description and a valid draft 2020-12 schema that
takes only what it names; writes have proposals; levels are as intended."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from hivematrix.brainhair.tools.base import STAFF, Tool
from hivematrix.brainhair.tools.registry import default_registry
from hivematrix.common.db import Database

TOOLS = list(default_registry())
#: What MCP and the Anthropic API accept as a tool name.
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
WRITES = {"rmm_run_quick_job", "ledger_set_override", "ledger_add_manual_asset",
          "ledger_update_manual_asset", "ledger_remove_manual_asset", "ledger_add_manual_user",
          "ledger_update_manual_user", "ledger_remove_manual_user", "ledger_add_line_item",
          "ledger_update_line_item", "ledger_remove_line_item", "ledger_accept_bill",
          "kt_create_article", "kt_update_article", "contract_apply_alignment"}


def objects(schema: object) -> list[dict[str, object]]:
    """Every object schema inside ``schema`` (with properties)."""
    found: list[dict[str, object]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema:
            found.append(schema)
        for value in schema.values():
            found.extend(objects(value))
    elif isinstance(schema, list):
        for value in schema:
            found.extend(objects(value))
    return found


@pytest.mark.parametrize("tool", TOOLS, ids=lambda tool: tool.name)
def test_schema_and_description(tool: Tool) -> None:
    assert NAME.match(tool.name)
    assert len(tool.description) >= 20
    Draft202012Validator.check_schema(tool.input_schema)
    schema = dict(tool.input_schema)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert not {"anyOf", "oneOf", "allOf"} & set(schema)  # the API's tool schemas refuse them
    for inner in objects(schema):
        properties = inner["properties"]
        assert isinstance(properties, dict)
        assert set(inner.get("required", [])) <= set(properties)  # type: ignore[arg-type]
        assert inner.get("additionalProperties") is False or "propertyNames" in inner
    for name, spec in dict(schema["properties"]).items():
        assert spec.get("description"), f"{tool.name}.{name} has no description"
        if spec.get("type") == "string":
            assert "maxLength" in spec or "enum" in spec, f"{tool.name}.{name} is unbounded"


def test_the_writes_are_exactly_the_changing_tools() -> None:
    assert {tool.name for tool in TOOLS if tool.writes} == WRITES


def test_levels() -> None:
    by_name = {tool.name: tool for tool in TOOLS}
    assert by_name["helm_service_status"].levels == ("admin",)
    assert by_name["helm_recent_errors"].levels == ("admin",)
    assert by_name["rmm_run_quick_job"].levels == ("admin", "technician")
    assert all(set(tool.levels) <= set(STAFF) for tool in TOOLS)
    registry = default_registry()
    assert "helm_service_status" not in {tool.name for tool in registry.for_level("billing")}
    assert registry.for_level("client") == []


def test_names_are_unique_and_the_chat_title_joins_with_a_database(tmp_path: Path) -> None:
    assert len({tool.name for tool in TOOLS}) == len(TOOLS)
    database = Database(f"sqlite:///{tmp_path}/brainhair.db")
    try:
        with_title = default_registry(database)
        assert with_title.get("set_chat_title") is not None
        assert len(with_title) == len(TOOLS) + 1
    finally:
        database.dispose()
