"""Writes per event, measured: what registration and metrics really write into the
database for the pipeline's traffic (``benchmarks/run.py``, phase ``census``).

The embedded database runs ``--standalone`` for the timed phases: it keeps no oplog
there (see ``seminarops_devtools.processes.mongo_command``). The census starts a second
SecantusDB *with* its oplog (a single-node replica set, as it advertises by default;
the services do not behave differently on it), runs the pipeline's traffic through
real registration and metrics processes against it, and reads back every oplog entry
their databases got: one entry per inserted, updated or deleted document, the entries
of one transaction carrying the same ``lsid`` and ``txnNumber``. From that:

- per collection: documents inserted, updated, deleted, per event and per transaction;
- per service: transactions, and events per transaction (registration: the records of
  the transaction's outbox document; metrics: the registration projections it wrote);
- index entries written: SecantusDB writes one entry per index for an inserted
  document, removes one per index for a deleted one, and for every modified document
  removes and rewrites the entries of *every* secondary index (whatever changed: see
  ``Storage._delete_index_entries`` / ``_write_index_entries`` in its update path);
  the ``_id`` entry stays on update.

``top`` (the database's per-collection command counters) adds the statements: how many
insert/update/delete/findAndModify commands each collection got.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from seminarops_devtools.processes import (
    LOCALHOST,
    EmbeddedServer,
    free_port,
    mongo_command,
    start_mongo,
)

OPS = {"i": "inserts", "u": "updates", "d": "deletes"}


@contextlib.contextmanager
def database_with_oplog(workdir: Path) -> Iterator[EmbeddedServer]:
    """A SecantusDB that keeps an oplog (``mongo_command`` without ``--standalone``)."""
    port = free_port()
    command = [
        part
        for part in mongo_command(
            host=LOCALHOST,
            port=port,
            storage_path=workdir / "mongo-data",
            config_path=workdir / "secantusd.toml",
        )
        if part != "--standalone"
    ]
    with start_mongo(
        port=port,
        storage_path=workdir / "mongo-data",
        log_path=workdir / "mongodb.log",
        detached=False,
        command=command,
    ) as server:
        yield server


@dataclass
class CollectionCensus:
    """What one collection got during the census."""

    service: str
    name: str
    indexes: list[str] = field(default_factory=list)  # "_id_" first, then secondary
    index_keys: dict[str, list[str]] = field(default_factory=dict)
    writes: Counter[str] = field(default_factory=Counter)  # inserts / updates / deletes
    in_transactions: Counter[str] = field(default_factory=Counter)
    # Transactions that wrote here, and how many documents each wrote (per op).
    per_transaction: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    statements: Counter[str] = field(default_factory=Counter)  # from `top`
    documents_after: int | None = None
    sample: dict[str, Any] | None = None  # the first document inserted (its shape)

    @property
    def secondary(self) -> int:
        return max(0, len(self.indexes) - 1)

    @property
    def index_entries(self) -> int:
        """Index entries written or removed (SecantusDB's rule, module docstring)."""
        all_indexes = self.secondary + 1
        return (
            self.writes["inserts"] * all_indexes
            + self.writes["deletes"] * all_indexes
            + self.writes["updates"] * 2 * self.secondary
        )


@dataclass
class Census:
    events: int
    collections: dict[tuple[str, str], CollectionCensus]
    transactions: dict[str, int]  # per service
    events_per_transaction: dict[str, float]  # per service
    # Per service: documents written per transaction, as a distribution.
    transaction_sizes: dict[str, list[int]]

    def per_event(self, service: str, collection: str, op: str) -> float:
        found = self.collections.get((service, collection))
        return found.writes[op] / self.events if found else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "transactions": self.transactions,
            "events_per_transaction": self.events_per_transaction,
            "collections": {
                f"{c.service}.{c.name}": {
                    "indexes": c.indexes,
                    "index_keys": list(c.index_keys.values()),
                    **{op: c.writes[op] for op in OPS.values()},
                    **{
                        f"{op}_per_event": round(c.writes[op] / self.events, 3)
                        for op in OPS.values()
                    },
                    "in_transactions": dict(c.in_transactions),
                    "index_entries_per_event": round(c.index_entries / self.events, 2),
                    "statements": dict(c.statements),
                    "documents_after": c.documents_after,
                    "sample": _printable(c.sample),
                }
                for c in self.collections.values()
            },
        }

    def table(self) -> str:
        """The "writes per event" table, one row per collection."""
        header = (
            f"{'collection':<34} {'ins/ev':>7} {'upd/ev':>7} {'del/ev':>7} "
            f"{'idx entries/ev':>14}  indexes (statements)"
        )
        lines = [
            f"writes per event ({self.events} events; transactions: "
            + ", ".join(
                f"{s} {n} ({self.events_per_transaction.get(s, 0):.1f} events each)"
                for s, n in sorted(self.transactions.items())
            )
            + ")",
            header,
        ]
        untouched = []
        for c in sorted(self.collections.values(), key=lambda c: (c.service, c.name)):
            w = c.writes
            if not any(w.values()):
                untouched.append(f"{c.service}.{c.name}")
                continue
            statements = ", ".join(f"{k} {v}" for k, v in sorted(c.statements.items()))
            lines.append(
                f"{c.service + '.' + c.name:<34} {w['inserts'] / self.events:7.3f} "
                f"{w['updates'] / self.events:7.3f} {w['deletes'] / self.events:7.3f} "
                f"{c.index_entries / self.events:14.2f}  {', '.join(c.indexes) or '-'}"
                + (f" ({statements})" if statements else "")
            )
        lines.append(f"not written: {', '.join(untouched) or '-'}")
        return "\n".join(lines)


async def oplog_marker(client: AsyncMongoClient[dict[str, Any]]) -> Any:
    """The newest oplog timestamp: the census counts what comes after it."""
    newest = None
    async for entry in client.local["oplog.rs"].find({}, {"ts": 1}):
        if newest is None or entry["ts"] > newest:
            newest = entry["ts"]
    return newest


async def top_counts(client: AsyncMongoClient[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """``top``'s command counts per namespace and section."""
    answer = await client.admin.command("top")
    return {
        ns: {section: int(v["count"]) for section, v in sections.items() if isinstance(v, dict)}
        for ns, sections in answer.get("totals", {}).items()
        if isinstance(sections, dict)
    }


async def take_census(
    client: AsyncMongoClient[dict[str, Any]],
    *,
    databases: Mapping[str, str],
    events: int,
    since: Any,
    top_before: Mapping[str, Mapping[str, int]],
) -> Census:
    """Read the oplog after ``since`` for ``databases`` (service -> database name)."""
    service_of = {db: service for service, db in databases.items()}
    collections: dict[tuple[str, str], CollectionCensus] = {}
    transactions: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)

    def entry_for(service: str, name: str) -> CollectionCensus:
        return collections.setdefault((service, name), CollectionCensus(service, name))

    async for entry in client.local["oplog.rs"].find({}):
        if since is not None and entry["ts"] <= since:
            continue
        op = OPS.get(entry.get("op", ""))
        db, _, name = str(entry.get("ns", "")).partition(".")
        if op is None or db not in service_of:
            continue
        found = entry_for(service_of[db], name)
        found.writes[op] += 1
        if op == "inserts" and found.sample is None:
            found.sample = dict(entry.get("o", {}))
        if "txnNumber" in entry:
            found.in_transactions[op] += 1
            key = (entry.get("lsid", {}).get("id"), entry["txnNumber"])
            transactions[key].append(entry)

    per_service_transactions: Counter[str] = Counter()
    per_service_events: Counter[str] = Counter()
    sizes: dict[str, list[int]] = defaultdict(list)
    for entries in transactions.values():
        db = str(entries[0]["ns"]).partition(".")[0]
        service = service_of[db]
        per_service_transactions[service] += 1
        sizes[service].append(len(entries))
        counted: Counter[tuple[str, str]] = Counter()
        for entry in entries:
            name = str(entry["ns"]).partition(".")[2]
            counted[(name, OPS[entry["op"]])] += 1
            if service == "registration" and name == "outbox" and entry["op"] == "i":
                per_service_events[service] += len(entry["o"].get("records", [None]))
            if service == "metrics" and name == "registrations" and entry["op"] == "i":
                per_service_events[service] += 1
        for (name, op), n in counted.items():
            collections[(service, name)].per_transaction[op].append(n)

    top_after = await top_counts(client)
    for service, db_name in databases.items():
        database = client[db_name]
        for name in await database.list_collection_names():
            found = entry_for(service, name)
            indexes = [index async for index in await database[name].list_indexes()]
            found.indexes = [str(ix["name"]) for ix in indexes]
            found.index_keys = {str(ix["name"]): list(ix["key"]) for ix in indexes}
            found.documents_after = await database[name].count_documents({})
        for (service_name, name), found in collections.items():
            if service_name != service:
                continue
            ns = f"{db_name}.{name}"
            before = top_before.get(ns, {})
            for section in ("insert", "update", "remove", "commands", "queries"):
                delta = top_after.get(ns, {}).get(section, 0) - before.get(section, 0)
                if delta:
                    found.statements[section] = delta
    return Census(
        events=events,
        collections=collections,
        transactions=dict(per_service_transactions),
        events_per_transaction={
            s: round(per_service_events[s] / n, 1) for s, n in per_service_transactions.items() if n
        },
        transaction_sizes=dict(sizes),
    )


def _printable(value: Any) -> Any:
    """A sample document as JSON can hold it (bytes and dates as text)."""
    if isinstance(value, dict):
        return {str(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value[:3]]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)[:200]
