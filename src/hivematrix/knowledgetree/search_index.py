"""A tantivy index beside the graph: ranked search without asking the graph for every hit.

FalkorDB's full-text procedure hands back every matching node before anything can be ranked
or counted, so a word in a third of 100,000 articles costs tens of milliseconds however the
Cypher around it is written. This index is a derived projection of the graph, never a
source of truth: one document per item (``id``, ``name``, ``content`` as plain text, the
folded ``name_key`` and the ``ancestors`` from root to the parent), ranked by BM25 with a
title weighing four times a body, counted exactly by tantivy, and rebuilt from the graph
whenever it cannot be trusted.

Several processes (gunicorn workers, the sync job, the CLI) share one directory. Writers
take an exclusive ``fcntl.flock`` on ``writer.lock`` around open-writer / commit (tantivy
itself allows one writer per directory); what they write is read from the graph while they
hold that lock (see :meth:`SearchIndex.write`), so two processes' updates of one item can
never land in the index in the wrong order. Readers compare ``meta.json`` (which a commit
replaces) before searching and reload only when it changed, so a commit in one process is
seen by the next search in any other.

States (:meth:`SearchIndex.state`): ``missing`` (never built), ``empty`` (built over
nothing, or wiped on disk), ``stale`` (a write failed: the ``STALE`` marker, or a schema
version this code does not know), ``ready``. Only ``ready`` answers searches; otherwise the
model falls back to the graph's full-text call and a rebuild is due.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tantivy

log = logging.getLogger("hivematrix.knowledgetree.search")

#: Bumped whenever the schema or the analyzer changes: an index of another version is stale.
VERSION = "1"
ANALYZER = "kt_words"
#: A title counts four times a body (the graph's full-text weights say the same).
NAME_BOOST = 4.0
#: What a prefix-only match of the last word adds: whole words rank by BM25 above it.
PREFIX_NAME_SCORE = 1.0
PREFIX_BODY_SCORE = 0.25
#: Memory for one writer; tantivy wants at least 15 MB per indexing thread.
WRITER_HEAP = 32_000_000
REBUILD_HEAP = 128_000_000

STALE_MARKER = "STALE"
VERSION_FILE = "kt-search-version"
LOCK_FILE = "writer.lock"
_META = "meta.json"


class SearchIndexError(Exception):
    """The index cannot answer (missing, stale, or tantivy refused): use the graph."""


@dataclass(frozen=True)
class IndexDoc:
    """One item as the index holds it."""

    id: str
    name: str
    name_key: str
    #: Plain text, as the snippet is made from.
    content: str
    #: Ids from root down to the parent (root's own document has none).
    ancestors: tuple[str, ...]


@dataclass(frozen=True)
class IndexPage:
    total: int
    #: ``(item id, score)``, best first.
    hits: list[tuple[str, float]]


@dataclass(frozen=True)
class Changes:
    """What one write does: delete by ``(field, value)`` terms, then add ``docs``."""

    deletes: Sequence[tuple[str, str]] = ()
    docs: Sequence[IndexDoc] = ()


def _analyzer() -> Any:
    # Words of letters and digits, lower-cased, overlong tokens dropped; no stop words and
    # no stemming ("IT" and "How to" are titles people search for).
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(40))
            .filter(tantivy.Filter.lowercase())
            .build())


def _schema() -> Any:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("name", tokenizer_name=ANALYZER, index_option="freq")
    builder.add_text_field("content", tokenizer_name=ANALYZER, index_option="freq")
    builder.add_text_field("name_key", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("ancestors", tokenizer_name="raw", index_option="basic")
    return builder.build()


class SearchIndex:
    """The index in ``directory`` (created by the first :meth:`rebuild`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.schema = _schema()
        self.analyzer = _analyzer()
        # Opening the index, briefly; writing (held through a whole rebuild) is separate, so
        # searches in the writer's own process never wait for it.
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._index: Any = None
        self._seen: tuple[int, int, int] | None = None

    # -- state -----------------------------------------------------------------------------

    def state(self) -> str:
        """``missing``, ``stale``, ``empty`` or ``ready`` (see the module docstring)."""
        if not (self.directory / _META).is_file():
            return "missing"
        if (self.directory / STALE_MARKER).exists() or self._version() != VERSION:
            return "stale"
        try:
            searcher = self._searcher()
        except (OSError, ValueError, SearchIndexError):
            return "stale"
        return "ready" if searcher.num_docs else "empty"

    def _version(self) -> str | None:
        try:
            return (self.directory / VERSION_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            return None

    def mark_stale(self, reason: str) -> None:
        """Searches use the graph until the next rebuild; the marker holds a fresh token so a
        rebuild that started before this failure does not clear it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / STALE_MARKER).write_text(f"{uuid.uuid4()} {reason}\n",
                                                       encoding="utf-8")
        except OSError as exc:  # pragma: no cover - a read-only disk: searches still fall back
            log.error("cannot mark the search index stale: %s", exc)
        log.warning("search index marked stale: %s", reason)

    def _marker(self) -> str | None:
        try:
            return (self.directory / STALE_MARKER).read_text(encoding="utf-8")
        except OSError:
            return None

    # -- opening ---------------------------------------------------------------------------

    def _open(self) -> Any:
        with self._lock:
            if self._index is None:
                if not (self.directory / _META).is_file():
                    raise SearchIndexError("the search index has not been built")
                try:
                    index = tantivy.Index(self.schema, path=str(self.directory), reuse=True)
                except (OSError, ValueError) as exc:
                    raise SearchIndexError(f"cannot open the search index: {exc}") from exc
                index.register_tokenizer(ANALYZER, self.analyzer)
                index.config_reader(reload_policy="Manual")
                self._index = index
                self._seen = None
            return self._index

    def _meta_stamp(self) -> tuple[int, int, int] | None:
        try:
            meta = os.stat(self.directory / _META)
        except OSError:
            return None
        return (meta.st_ino, meta.st_mtime_ns, meta.st_size)

    def _searcher(self) -> Any:
        """A searcher over the last commit of any process: ``meta.json`` is replaced by
        every commit, so an unchanged one means nothing to reload."""
        index = self._open()
        stamp = self._meta_stamp()
        if stamp != self._seen:
            index.reload()
            self._seen = stamp
        return index.searcher()

    def close(self) -> None:
        with self._lock:
            self._index = None
            self._seen = None

    # -- searching -------------------------------------------------------------------------

    def words(self, text: str) -> list[str]:
        """The query's words as the index's analyzer cuts them."""
        return [str(word) for word in self.analyzer.analyze(text)][:16]

    def query(self, words: Sequence[str], *, exact_key: str | None,
              start_id: str | None) -> Any:
        """Every word in the name or the content (the last also as a prefix), a title
        weighing ``NAME_BOOST`` times a body; an item titled exactly ``exact_key`` gets
        ``EXACT_TITLE_BONUS`` on top; ``start_id`` keeps the subtree (itself included)."""
        from hivematrix.knowledgetree.items import EXACT_TITLE_BONUS

        Q, must, should = tantivy.Query, tantivy.Occur.Must, tantivy.Occur.Should
        clauses: list[tuple[Any, Any]] = []
        for position, word in enumerate(words):
            either = [Q.boost_query(Q.term_query(self.schema, "name", word, "freq"),
                                    NAME_BOOST),
                      Q.term_query(self.schema, "content", word, "freq")]
            if position == len(words) - 1 and len(word) >= 2:
                # A one-word phrase prefix is tantivy's prefix query over the term
                # dictionary (a regex query would be compiled for every search).
                either += [
                    Q.const_score_query(Q.phrase_prefix_query(self.schema, "name", [word]),
                                        PREFIX_NAME_SCORE),
                    Q.const_score_query(Q.phrase_prefix_query(self.schema, "content", [word]),
                                        PREFIX_BODY_SCORE)]
            clauses.append((must, Q.boolean_query([(should, query) for query in either])))
        if exact_key:
            clauses.append((should, Q.const_score_query(
                Q.term_query(self.schema, "name_key", exact_key, "basic"), EXACT_TITLE_BONUS)))
        if start_id is not None:
            inside = Q.boolean_query([
                (should, Q.term_query(self.schema, "ancestors", start_id, "basic")),
                (should, Q.term_query(self.schema, "id", start_id, "basic"))])
            clauses.append((must, Q.const_score_query(inside, 0.0)))
        return Q.boolean_query(clauses)

    def search(self, words: Sequence[str], *, exact_key: str | None = None,
               start_id: str | None = None, offset: int = 0, limit: int = 20) -> IndexPage:
        """One page of ``(id, score)`` and the exact number of hits.

        :raises SearchIndexError: the index is not ready or cannot be read.
        """
        if not words:
            return IndexPage(total=0, hits=[])
        state = self.state()
        if state != "ready":
            raise SearchIndexError(f"the search index is {state}")
        query = self.query(words, exact_key=exact_key, start_id=start_id)
        try:
            searcher = self._searcher()
            result = searcher.search(query, limit=limit, count=True, offset=offset)
            hits = [(str(searcher.doc(address).get_first("id")), float(score))
                    for score, address in result.hits]
        except (OSError, ValueError) as exc:
            # A segment merged away by another process between reading meta.json and
            # opening it: the next search opens the index again.
            self.close()
            raise SearchIndexError(f"the search index cannot be read: {exc}") from exc
        return IndexPage(total=int(result.count or 0), hits=hits)

    def count(self) -> int:
        """Documents in the last commit (0 when not built)."""
        try:
            return int(self._searcher().num_docs)
        except SearchIndexError:
            return 0

    # -- writing ---------------------------------------------------------------------------

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._write_lock, open(self.directory / LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _document(self, doc: IndexDoc) -> Any:
        document = tantivy.Document()
        document.add_text("id", doc.id)
        document.add_text("name", doc.name)
        document.add_text("content", doc.content)
        document.add_text("name_key", doc.name_key)
        for ancestor in doc.ancestors:
            document.add_text("ancestors", ancestor)
        return document

    def _commit(self, changes: Changes | None, *, everything: Iterable[IndexDoc] | None = None,
                heap: int = WRITER_HEAP, threads: int = 1) -> int:
        """One commit (holding the writer lock already); how many documents were added."""
        writer = self._open().writer(heap, threads)
        added = 0
        try:
            if everything is not None:
                writer.delete_all_documents()
                docs: Iterable[IndexDoc] = everything
            else:
                assert changes is not None
                for field_name, value in changes.deletes:
                    writer.delete_documents_by_term(field_name, value)
                docs = changes.docs
            for doc in docs:
                writer.add_document(self._document(doc))
                added += 1
            writer.commit()
        except BaseException:
            writer.rollback()
            raise
        finally:
            writer.wait_merging_threads()  # also drops the writer: tantivy's lock goes
        return added

    def write(self, produce: Callable[[], Changes]) -> bool:
        """Apply what ``produce`` says, calling it while holding the writer lock, so it reads
        the graph's state after every earlier writer's commit. False when there is no index
        of this version to update (a rebuild will read the graph anyway).

        A failure marks the index stale (searches fall back, a rebuild is due) and is
        re-raised; the graph write it follows has happened regardless.
        """
        try:
            with self._writer_lock():
                # Not state(): that reloads a searcher, which a writer does not need.
                if not (self.directory / _META).is_file() or self._version() != VERSION:
                    return False  # never built, or of another schema: a rebuild is due
                self._commit(produce())
                return True
        except Exception as exc:
            self.mark_stale(f"an update failed: {type(exc).__name__}: {exc}")
            raise

    def rebuild(self, produce: Callable[[], Iterable[IndexDoc]], *,
                only_if_needed: bool = False,
                skip_if: Callable[[], bool] | None = None) -> int | None:
        """Replace every document by what ``produce`` yields (read under the writer lock: a
        write of any process waits until it is done, then applies on top), in one commit, so
        searches see the old index or the new one. Clears the stale marker unless another
        failure was marked meanwhile. Does nothing (None) when, by the time the lock is held,
        ``only_if_needed`` finds the index ready or ``skip_if()`` says so (another process
        rebuilt it meanwhile)."""
        with self._writer_lock():
            if only_if_needed and self.state() == "ready":
                return None
            if skip_if is not None and skip_if():
                return None
            marker = self._marker()
            if self._version() != VERSION and (self.directory / _META).exists():
                self._discard_files()
            if not (self.directory / _META).is_file():
                tantivy.Index(self.schema, path=str(self.directory), reuse=False)
                self.close()
            added = self._commit(None, everything=produce(), heap=REBUILD_HEAP, threads=0)
            (self.directory / VERSION_FILE).write_text(VERSION + "\n", encoding="utf-8")
            if marker is not None and self._marker() == marker:
                (self.directory / STALE_MARKER).unlink(missing_ok=True)
            return added

    def rebuilt_seconds_ago(self) -> float | None:
        """Seconds since the last rebuild finished (in any process), None if never."""
        try:
            return time.time() - (self.directory / VERSION_FILE).stat().st_mtime
        except OSError:
            return None

    def _discard_files(self) -> None:
        """An index of another schema version: remove it (the lock file stays)."""
        self.close()
        for path in self.directory.iterdir():
            if path.name in (LOCK_FILE, STALE_MARKER):
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
