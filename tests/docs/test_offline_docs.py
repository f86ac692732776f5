"""``/docs`` and ``/redoc`` work on a network without the outside: every asset the pages
name is served by the service itself, and a real browser renders them with every
request to another host caught."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from ..conftest import SERVICES

PAGES = ("/docs", "/redoc")
# The hosts Chromium contacts on its own, whatever the page (about:blank included).
CHROMIUM_OWN = (".google.com", ".gvt1.com")
# Chromium's component updater, which it calls even with --disable-component-update
# (Chromium 156). The host exactly: other googleapis.com hosts (fonts, say) are what a
# documentation page must not need.
CHROMIUM_UPDATER = "update.googleapis.com"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class _Links(HTMLParser):
    """Every URL a page makes the browser load: ``src`` and ``href`` attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


def _unstarted(name: str) -> FastAPI:
    # The pages need no database or broker: the app is served without its lifespan.
    factory, settings_class = SERVICES[name]
    return factory(settings_class(port=1))


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("page", PAGES)
async def test_every_asset_of_the_page_is_served_by_the_service_itself(
    service: str, page: str
) -> None:
    transport = httpx.ASGITransport(app=_unstarted(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.get(page)
        assert response.status_code == 200
        html = response.text
        # The browser loads nothing from another host, even what a bundle names itself.
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "http" not in policy
        links = _Links()
        links.feed(html)
        assert len(links.urls) >= 2, html  # the script (or style sheet) and the icon
        # Nothing anywhere in the page names another host (fonts, CDNs, validators).
        assert "http://" not in html
        assert "https://" not in html
        for url in links.urls:
            parts = urlsplit(url)
            assert (parts.scheme, parts.netloc) == ("", ""), url
            assert url.startswith("/docs/assets/"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert asset.headers["content-type"].startswith(MEDIA_TYPES[suffix]), url
            assert len(asset.content) > 1000, url
        assert "/openapi.json" in html
        spec = await client.get("/openapi.json")
        assert spec.status_code == 200
        assert spec.json()["openapi"].startswith("3.1")  # what Swagger UI 5 renders


async def test_only_the_named_assets_are_served() -> None:
    transport = httpx.ASGITransport(app=_unstarted("seminar"))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        for path in (
            "/docs/assets/core.py",
            "/docs/assets/..%2F__init__.py",
            "/docs/assets/../consts.py",
            "/docs/assets/",
        ):
            response = await client.get(path)
            assert response.status_code == 404, path


@asynccontextmanager
async def _served(app: FastAPI) -> AsyncIterator[str]:
    """``app`` over real HTTP on a free loopback port (no lifespan); yields its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    # Listening already: a connection made before uvicorn accepts waits in the backlog.
    listener.listen()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def _outside_catcher() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A proxy that answers nothing and notes every request sent to it: the browser's
    only way to any host but loopback (which Chromium never proxies)."""
    requests: list[bytes] = []

    async def note(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readline())
        writer.close()

    server = await asyncio.start_server(note, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", requests


@pytest.mark.parametrize(
    ("page", "rendered"),
    [
        ("/docs", 'class="opblock-summary-path"'),  # an operation in Swagger UI's list
        ("/redoc", "/operation/import_season_"),  # an operation's section in ReDoc
    ],
)
async def test_a_headless_browser_renders_the_page_with_the_outside_unreachable(
    page: str, rendered: str
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is part of the development machine (apt-get install chromium)"
    async with _served(_unstarted("seminar")) as base, _outside_catcher() as (proxy, outside):
        browser = await asyncio.create_subprocess_exec(
            chromium,
            "--headless",
            "--no-sandbox",  # root in a container
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-features=AutofillServerCommunication",
            "--no-first-run",
            f"--proxy-server={proxy}",
            # Virtual time runs the page's scripts (and its fetch of /openapi.json) to rest.
            "--virtual-time-budget=15000",
            "--dump-dom",
            f"{base}{page}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        dom, errors = await asyncio.wait_for(browser.communicate(), timeout=90)
    assert browser.returncode == 0, errors.decode()[-2000:]
    text = dom.decode()
    assert text.count(rendered) >= 1, text[:2000]
    assert "/v1/seminars/import" in text  # the service's own document, rendered
    # Chromium itself calls home (time, accounts, updates: about:blank does the same);
    # what a documentation page would fetch (a CDN, fonts, a validator) is elsewhere.
    hosts = {_host(line) for line in outside if line.strip()}
    assert {h for h in hosts if not h.endswith(CHROMIUM_OWN) and h != CHROMIUM_UPDATER} == set(), (
        outside
    )


def _host(request_line: bytes) -> str:
    """The host of a proxy request: ``CONNECT host:443 ...`` or ``GET http://host/...``."""
    method, target = request_line.decode().split()[:2]
    if method == "CONNECT":
        return target.rsplit(":", 1)[0]
    return urlsplit(target).hostname or target
