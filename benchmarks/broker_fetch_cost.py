"""What one fetch costs on the embedded broker as a partition's batches add up.

Tansu's storage (``dynostore``, behind both its memory and its S3 engine) lists every
batch object of a partition for each fetch that has something to return (its 0.6.0
source, ``DynoStore::fetch``), so a fetch costs more the more batches the partition
holds. Paced traffic makes many small batches: a long ``make soak`` or a long-lived
``make up`` slows down, where Apache Kafka's fetch costs the same at any log size.

This writes one record per batch (each send awaited, as paced traffic makes them) into
one partition of a fresh broker and, at each of ``--sizes``, times twenty fetches of
the last record: the median is printed, with a JSON summary at the end.

    .venv/bin/python benchmarks/broker_fetch_cost.py [--sizes 100,1000,4000,16000] [--log memory|durable]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from seminarops_devtools.processes import (
    MEMORY_STORAGE,
    S3_STORAGE,
    ObjectStorePorts,
    ensure_topics,
    free_port,
    start_kafka,
    start_object_store,
)

TOPIC = "fetch-cost"
SAMPLES = 20


async def measure(address: str, sizes: list[int]) -> dict[int, float | None]:
    """The median milliseconds of a fetch of the last record, per number of batches."""
    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=address, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await producer.start()
    await consumer.start()
    tp = TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    medians: dict[int, float | None] = {}
    written = 0
    try:
        for size in sizes:
            while written < size:
                # Awaited one by one: every record is a batch of its own.
                await (await producer.send(TOPIC, b"x", partition=0))
                written += 1
            samples, empty = [], 0
            for _ in range(SAMPLES):
                consumer.seek(tp, written - 1)
                started = time.perf_counter()
                fetched = await consumer.getmany(tp, timeout_ms=5000)
                if fetched.get(tp):
                    samples.append((time.perf_counter() - started) * 1000)
                else:
                    empty += 1  # nothing within 5 s: reported, not timed
            medians[size] = round(statistics.median(samples), 2) if samples else None
            print(
                f"{size:>7} batches: a fetch of the last record takes {medians[size]} ms "
                f"({empty} of {SAMPLES} brought nothing within 5 s)"
            )
    finally:
        await consumer.stop()
        await producer.stop()
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="100,1000,4000,16000", help="batch counts to measure at, ascending"
    )
    parser.add_argument(
        "--log", choices=("memory", "durable"), default="memory", help="the broker's storage"
    )
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes takes whole numbers separated by commas")
    if not sizes or sizes != sorted(sizes) or sizes[0] < 1:
        parser.error("--sizes must be positive and ascending")
    with tempfile.TemporaryDirectory(prefix="fetch-cost-") as work:
        workdir = Path(work)
        if args.log == "durable":
            store, s3 = start_object_store(
                data_dir=workdir / "s3",
                ports=ObjectStorePorts.free(),
                log_path=workdir / "s3.log",
                detached=False,
            )
            storage, env = S3_STORAGE, {**os.environ, **s3.broker_env()}
        else:
            store, storage, env = None, MEMORY_STORAGE, None
        try:
            with start_kafka(
                port=free_port(),
                log_path=workdir / "kafka.log",
                detached=False,
                storage_engine=storage,
                env=env,
            ) as broker:
                ensure_topics(broker.address, [TOPIC], partitions=1)
                medians = asyncio.run(measure(broker.address, sizes))
        finally:
            if store is not None:
                store.stop()
    print(json.dumps({"log": args.log, "fetch_ms_by_batches": medians}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
