"""Ships the stack's JSON log lines to Loki's push API when Loki runs (the local stand-in for promtail)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sample_shop.topology import SHOP_JOB, TESTBED_JOB

log = logging.getLogger("testbed.supervisor")
MAX_BATCH_BYTES = 1_000_000


@dataclass
class TailedFile:
    path: Path
    labels: dict[str, str]
    offset: int = 0
    partial: bytes = b""
    last_ns: int = 0

    def read_lines(self) -> list[str]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:  # truncated: start over
            self.offset, self.partial = 0, b""
        if size == self.offset:
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read(min(size - self.offset, MAX_BATCH_BYTES))
        self.offset += len(chunk)
        data = self.partial + chunk
        *complete, self.partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete if line.strip()]

    def stamp(self) -> str:
        """Strictly increasing nanosecond timestamps per stream (Loki rejects out-of-order entries)."""
        self.last_ns = max(time.time_ns(), self.last_ns + 1)
        return str(self.last_ns)


def labels_for(log_name: str) -> dict[str, str]:
    """`catalog-1` -> job shop, service catalog, replica 1; anything else -> job testbed, component name."""
    service, sep, replica = log_name.rpartition("-")
    if sep and replica.isdigit():
        return {"job": SHOP_JOB, "service": service, "replica": replica}
    return {"job": TESTBED_JOB, "component": log_name}


def push_body(batches: list[tuple[TailedFile, list[str]]]) -> dict[str, Any]:
    return {
        "streams": [
            {"stream": tailed.labels, "values": [[tailed.stamp(), line] for line in lines]}
            for tailed, lines in batches
            if lines
        ]
    }


@dataclass
class LogShipper:
    logs_dir: Path
    loki_url: str
    interval_s: float = 1.0
    files: dict[Path, TailedFile] = field(default_factory=dict)

    def start_at_current_end(self) -> None:
        """Ship only what this stack writes (log files are appended to across runs)."""
        for path in self.logs_dir.glob("*.log"):
            self.files[path] = TailedFile(path, labels_for(path.stem), offset=path.stat().st_size)

    def _discover(self) -> None:
        for path in self.logs_dir.glob("*.log"):
            if path not in self.files:
                self.files[path] = TailedFile(path, labels_for(path.stem))

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                await self.ship_once(client)
                await asyncio.sleep(self.interval_s)

    async def ship_once(self, client: httpx.AsyncClient) -> int:
        self._discover()
        positions = {t.path: (t.offset, t.partial) for t in self.files.values()}
        batches = [(t, t.read_lines()) for t in self.files.values()]
        count = sum(len(lines) for _, lines in batches)
        if count == 0:
            return 0
        try:
            response = await client.post(f"{self.loki_url}/loki/api/v1/push", json=push_body(batches))
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # send the same lines again next time (the log files stay the source of truth)
            for t in self.files.values():
                t.offset, t.partial = positions[t.path]
            log.warning("could not push %d log lines to Loki (will retry): %s", count, exc)
            return 0
        return count
