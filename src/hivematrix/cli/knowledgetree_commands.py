"""``hivematrix knowledgetree sync``: write what Codex knows into KnowledgeTree from a shell;
``hivematrix knowledgetree reindex``: rebuild the search index from the graph.

Both open the graph from KnowledgeTree's settings (as the service does). The sync calls Codex
as the ``knowledgetree`` service and holds the same lease as the scheduled job, so a shell run
and a scheduled one never write at the same time. The rebuild holds the index's writer lock,
so the service's writes wait for it and then apply on top.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from hivematrix.knowledgetree.search_index import IndexDoc

console = Console(stderr=True)


def register(main: click.Group) -> None:
    @main.group("knowledgetree")
    def knowledgetree_group() -> None:
        """KnowledgeTree: the knowledge base."""

    @knowledgetree_group.command("sync")
    @click.option("--companies", "only_companies", is_flag=True,
                  help="Only company folders, overviews, contacts and assets.")
    @click.option("--tickets", "only_tickets", is_flag=True,
                  help="Only ticket articles.")
    def sync_command(only_companies: bool, only_tickets: bool) -> None:
        """Sync Codex's companies, contacts, assets and tickets into /Companies."""
        from hivematrix.common.config import SettingsError, load_settings
        from hivematrix.knowledgetree import scheduler, sync
        from hivematrix.knowledgetree.graph import GraphError
        from hivematrix.knowledgetree.items import KnowledgeError
        from hivematrix.knowledgetree.settings import DEFAULTS, TreeHolder

        both = not only_companies and not only_tickets
        try:
            settings = load_settings("knowledgetree",
                                     defaults={**DEFAULTS, **scheduler.DEFAULTS})
            holder = TreeHolder(settings)
            tree = holder.tree()
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from exc
        except (GraphError, OSError) as exc:
            raise click.ClickException(f"KnowledgeTree's graph cannot be opened: {exc}") from exc
        try:
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                          console=console, transient=True) as progress:
                task = progress.add_task("Codex sync", total=None)

                def report(done: int, total: int, current: str) -> None:
                    progress.update(task, completed=done, total=total,
                                    description=f"Codex sync: {current}" if current
                                    else "Codex sync")

                result = scheduler.run_locked(
                    tree, sync.reader_from_settings(settings), scheduler.who_am_i("cli"),
                    companies=both or only_companies, tickets=both or only_tickets,
                    lease_seconds=float(settings.get("KT_SYNC_LEASE_SECONDS") or 600),
                    progress=report)
        except sync.CodexError as exc:
            raise click.ClickException(f"Codex could not be read: {exc}") from exc
        except (GraphError, KnowledgeError) as exc:
            raise click.ClickException(f"the sync stopped: {exc}") from exc
        finally:
            holder.close()
        if result is None:
            raise click.ClickException("another sync is running; try again when it is done")
        counts = ", ".join(f"{value} {name}" for name, value in result.counts().items())
        style = "red" if result.errors else "green"
        console.print(f"[{style}]KnowledgeTree sync done:[/] {counts}")
        for message in result.messages:
            console.print(f"  {message}", style="red", markup=False, highlight=False)
        if result.errors:
            raise SystemExit(2)

    @knowledgetree_group.command("reindex")
    def reindex_command() -> None:
        """Rebuild the search index (KT_SEARCH_DIR) from the graph, in one commit."""
        reindex()


def reindex() -> None:
    """Read every item from the graph and replace the search index's documents with them."""
    import time

    from hivematrix.common.config import SettingsError, load_settings
    from hivematrix.knowledgetree import scheduler
    from hivematrix.knowledgetree.graph import GraphError
    from hivematrix.knowledgetree.settings import DEFAULTS, TreeHolder

    try:
        settings = load_settings("knowledgetree",
                                 defaults={**DEFAULTS, **scheduler.DEFAULTS})
        holder = TreeHolder(settings, rebuild_on_start=False)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    index = holder.search_index
    if index is None:
        raise click.ClickException("the search index is turned off (KT_SEARCH_INDEX)")
    try:
        tree = holder.tree()
        total = sum(tree.counts()[kind] for kind in ("folders", "articles")) + 1
        started = time.monotonic()
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("Reading the graph", total=total)

            def documents() -> Iterator[IndexDoc]:
                for number, doc in enumerate(tree.search_documents(), 1):
                    if number % 1000 == 0:
                        progress.update(task, completed=number)
                    yield doc
                progress.update(task, completed=total, description="Committing")

            added = index.rebuild(documents)
    except (GraphError, OSError, ValueError) as exc:
        raise click.ClickException(f"the search index could not be rebuilt: {exc}") from exc
    finally:
        holder.close()
    console.print(f"[green]Search index rebuilt:[/] {added} items in "
                  f"{time.monotonic() - started:.1f} s ({index.directory})",
                  highlight=False)
