"""A TCP proxy a test controls, to make the faults real networks make between one
service and a server: connections cut (and refused until healed) and connections slowed.

It runs on its own thread and event loop, so it keeps forwarding whatever the test's
own loop is doing, and the test drives it with plain method calls. Slowing delays every
chunk by the same latency in each direction (a chunk is forwarded ``delay_s`` after it
arrived, in order), as a long link would, rather than throttling bandwidth.

In front of a Kafka broker a plain proxy carries only the first connection: the client
asks the broker where the cluster's brokers and its group coordinator are (Metadata,
FindCoordinator) and connects there, to the address the broker advertises. With
``kafka=True`` the proxy rewrites those answers to its own address
(``KafkaAddressRewriter``), so every connection of the client goes through it and a
test can cut or slow one service's links to the broker while the others keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from aiokafka.protocol.api import Response
from aiokafka.protocol.coordination import FindCoordinatorResponse_v0, FindCoordinatorResponse_v1
from aiokafka.protocol.metadata import (
    MetadataResponse_v0,
    MetadataResponse_v1,
    MetadataResponse_v2,
    MetadataResponse_v3,
    MetadataResponse_v4,
    MetadataResponse_v5,
)

_CHUNK = 64 * 1024

# --- Kafka: answers that name broker addresses -------------------------------------------

_METADATA = 3
_FIND_COORDINATOR = 10
# The versions aiokafka speaks (all without the "flexible" encodings of later versions);
# a client asking for another one is answered untouched, and the rewriter says so.
_RESPONSES: dict[tuple[int, int], type[Response]] = {
    (_METADATA, 0): MetadataResponse_v0,
    (_METADATA, 1): MetadataResponse_v1,
    (_METADATA, 2): MetadataResponse_v2,
    (_METADATA, 3): MetadataResponse_v3,
    (_METADATA, 4): MetadataResponse_v4,
    (_METADATA, 5): MetadataResponse_v5,
    (_FIND_COORDINATOR, 0): FindCoordinatorResponse_v0,
    (_FIND_COORDINATOR, 1): FindCoordinatorResponse_v1,
}
_SIZE = struct.Struct(">i")
_REQUEST_HEADER = struct.Struct(">hhi")  # api key, api version, correlation id


class KafkaAddressRewriter:
    """One client connection's Kafka frames, both ways: requests pass as they are (their
    headers say which answers to rewrite); Metadata and FindCoordinator answers come
    back with every broker at ``host:port``, the proxy. Pure: bytes in, bytes out."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._asked: dict[int, tuple[int, int]] = {}  # correlation id -> (api key, version)
        self._requests = bytearray()
        self._responses = bytearray()
        self.rewritten = 0
        self.unknown_versions: set[tuple[int, int]] = set()

    def requests(self, data: bytes) -> bytes:
        """Note what each complete request asks; forward ``data`` unchanged."""
        self._requests += data
        for frame in _frames(self._requests):
            api_key, version, correlation_id = _REQUEST_HEADER.unpack_from(frame)
            if api_key in (_METADATA, _FIND_COORDINATOR):
                self._asked[correlation_id] = (api_key, version)
        return data

    def responses(self, data: bytes) -> bytes:
        """The complete answers in what has arrived so far, rewritten where they name
        brokers; an incomplete answer waits for the rest of its bytes."""
        self._responses += data
        out = bytearray()
        for frame in _frames(self._responses):
            out += _SIZE.pack(len(frame)) + self._rewrite(frame)
        return bytes(out)

    def _rewrite(self, frame: bytes) -> bytes:
        (correlation_id,) = _SIZE.unpack_from(frame)
        asked = self._asked.pop(correlation_id, None)
        if asked is None:
            return frame
        response = _RESPONSES.get(asked)
        if response is None:
            self.unknown_versions.add(asked)
            return frame
        body = response.decode(frame[_SIZE.size :])
        if asked[0] == _METADATA:
            body.brokers = [
                (node, self.host, self.port, *rest) for node, _, _, *rest in body.brokers
            ]
        else:
            body.host, body.port = self.host, self.port
        self.rewritten += 1
        encoded: bytes = body.encode()
        return frame[: _SIZE.size] + encoded


def _frames(buffer: bytearray) -> list[bytes]:
    """Take every complete size-prefixed frame off the front of ``buffer``."""
    frames = []
    while len(buffer) >= _SIZE.size:
        (size,) = _SIZE.unpack_from(buffer)
        if len(buffer) < _SIZE.size + size:
            break
        frames.append(bytes(buffer[_SIZE.size : _SIZE.size + size]))
        del buffer[: _SIZE.size + size]
    return frames


# --- the proxy --------------------------------------------------------------------------

_Transform = Callable[[bytes], bytes]


def _unchanged(data: bytes) -> bytes:
    return data


class TcpProxy:
    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        kafka: bool = False,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        self.kafka = kafka
        # The open connections' rewriters, and what the closed ones counted (a closed
        # connection's rewriter is dropped with whatever partial frame it held).
        self._rewriters: set[KafkaAddressRewriter] = set()
        self._rewritten_before = 0
        self._unknown_before: set[tuple[int, int]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._cut = False
        self._delay_s = 0.0
        self.connections_accepted = 0
        self.connections_refused = 0

    @property
    def answers_rewritten(self) -> int:
        """Kafka answers pointed at this proxy so far, over every connection."""
        return self._rewritten_before + sum(r.rewritten for r in list(self._rewriters))

    @property
    def unknown_kafka_versions(self) -> set[tuple[int, int]]:
        """(api key, version) of answers that name brokers but were left as they were."""
        return self._unknown_before | {v for r in list(self._rewriters) for v in r.unknown_versions}

    # ---- control, from any thread ----

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Drop every open connection (RST) and refuse new ones until ``heal``."""
        self._call(self._set_cut(cut=True))

    def heal(self) -> None:
        self._call(self._set_cut(cut=False))

    def slow(self, delay_s: float) -> None:
        """Delay every chunk by ``delay_s`` in each direction (0: full speed)."""
        self._call(self._set_delay(delay_s))

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    # ---- inside the proxy's loop ----

    def _call(self, coroutine: object) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        future.result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _set_cut(self, *, cut: bool) -> None:
        self._cut = cut
        if cut:
            for writer in list(self._open):
                writer.transport.abort()
            self._open.clear()

    async def _set_delay(self, delay_s: float) -> None:
        self._delay_s = delay_s

    async def _shutdown(self) -> None:
        await self._set_cut(cut=True)
        if self._server is not None:
            self._server.close()

    async def _accept(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        if self._cut:
            self.connections_refused += 1
            client.transport.abort()
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            client.transport.abort()
            return
        self.connections_accepted += 1
        self._open.update((client, upstream))
        outbound: _Transform = _unchanged
        inbound: _Transform = _unchanged
        rewriter = KafkaAddressRewriter(self.host, self.port) if self.kafka else None
        if rewriter is not None:
            self._rewriters.add(rewriter)
            outbound, inbound = rewriter.requests, rewriter.responses
        try:
            await asyncio.gather(
                self._pipe(client_reader, upstream, outbound),
                self._pipe(upstream_reader, client, inbound),
            )
        finally:
            for writer in (client, upstream):
                self._open.discard(writer)
                writer.transport.abort()
            if rewriter is not None:
                self._rewritten_before += rewriter.rewritten
                self._unknown_before |= rewriter.unknown_versions
                self._rewriters.discard(rewriter)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        transform: _Transform = _unchanged,
    ) -> None:
        """Forward one direction; each chunk leaves ``delay_s`` after it arrived."""
        in_flight: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await in_flight.get()
                if not chunk:
                    return
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)  # the link's latency
                writer.write(chunk)
                await writer.drain()

        delivering = asyncio.create_task(deliver())
        try:
            while chunk := await reader.read(_CHUNK):
                if forward := transform(chunk):
                    await in_flight.put((time.monotonic() + self._delay_s, forward))
            await in_flight.put((0.0, b""))
            await delivering
        except (ConnectionError, OSError):
            pass
        finally:
            delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await delivering
            writer.transport.abort()
