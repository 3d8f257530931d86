"""KnowledgeTree: the graph knowledge base (folders and articles in a tree, ranked search,
context for the assistant, Codex sync).

:mod:`.graph` is the graph-store port (FalkorDB and Neo4j adapters), :mod:`.items` the model
and its invariants, :mod:`.context` the budgeted context for the assistant, :mod:`.admin` wipe
and import checks, :mod:`.settings` where the graph is; the JSON API is in :mod:`.api`, the
pages in :mod:`.pages` (articles rendered safely by :mod:`.render`).

The app's tree: ``app.extensions["knowledgetree"]`` is a :class:`.settings.TreeHolder`;
``holder.tree()`` opens the store and ensures the schema on first use (views call
:func:`hivematrix.knowledgetree.api.tree`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apiflask import APIFlask
from flask import Blueprint

from hivematrix.common import create_service_app
from hivematrix.common.registry import ServiceSpec

SERVICE = ServiceSpec(
    name="knowledgetree",
    factory="hivematrix.knowledgetree:create_app",
    port=5020,
    title="KnowledgeTree",
    description="Knowledge base: folders and articles, ranked search, context for the assistant",
    migrations=None,
    # "falkordb": without a databases.graph section, Helm runs the embedded FalkorDB because
    # an installed service needs it (and starts it first).
    depends_on=("core", "falkordb", "codex"),
)


def create_app(settings: Mapping[str, Any] | None = None, *,
               extra_blueprints: Iterable[Blueprint] = ()) -> APIFlask:
    """Build the KnowledgeTree app; ``settings`` override files and environment (tests).

    Nothing connects to the graph here: the store opens on first use.

    :raises SettingsError: the graph's location (``KT_GRAPH_URL`` or ``databases.graph``)
        cannot be used.
    """
    from hivematrix.knowledgetree.api import blueprints
    from hivematrix.knowledgetree.pages import bp as pages
    from hivematrix.knowledgetree.settings import DEFAULTS, TreeHolder

    app = create_service_app(SERVICE.name, settings, title="HiveMatrix KnowledgeTree",
                             blueprints=[*blueprints(), pages, *extra_blueprints],
                             defaults=DEFAULTS, database=False)
    # Room for the multipart framing around the largest upload, so the upload view (not the
    # request parser) refuses an oversized file, naming the field.
    app.config["MAX_CONTENT_LENGTH"] = max(int(app.config["MAX_CONTENT_LENGTH"] or 0),
                                           int(app.config["KT_MAX_UPLOAD_BYTES"]) + 2**20)
    holder = TreeHolder(app.config)
    app.extensions["knowledgetree"] = holder
    app.extensions["hivematrix.health"].add("graph", holder.health)
    app.extensions["hivematrix.health"].add("search_index", holder.search_health,
                                            critical=False)
    from hivematrix.knowledgetree.scheduler import start_for  # the scheduled Codex sync

    start_for(app)
    return app
