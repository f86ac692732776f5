"""A TCP proxy a test controls, to make the faults real networks make between one
service and a server: connections cut (and refused until healed) and connections slowed.

It runs on its own thread and event loop, so it keeps forwarding whatever the test's
own loop is doing, and the test drives it with plain method calls. Slowing delays every
chunk by the same latency in each direction (a chunk is forwarded ``delay_s`` after it
arrived, in order), as a long link would, rather than throttling bandwidth.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import Future

_CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._cut = False
        self._delay_s = 0.0
        self.connections_accepted = 0
        self.connections_refused = 0

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
        try:
            await asyncio.gather(
                self._pipe(client_reader, upstream), self._pipe(upstream_reader, client)
            )
        finally:
            for writer in (client, upstream):
                self._open.discard(writer)
                writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
                await in_flight.put((time.monotonic() + self._delay_s, chunk))
            await in_flight.put((0.0, b""))
            await delivering
        except (ConnectionError, OSError):
            pass
        finally:
            delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await delivering
            writer.transport.abort()
