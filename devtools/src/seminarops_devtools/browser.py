"""Headless Chromium, driven from its command line: the rendered DOM of a page, or a
screenshot of it, at a given window size. Used by the dashboard's browser test and by
``python -m seminarops_devtools.browser screenshot`` (the README's pictures).

No browser-automation library: Chromium's own ``--dump-dom`` and ``--screenshot``
switches do both jobs, and ``--virtual-time-budget`` lets the page's scripts and
fetches finish before either is taken (no sleeping)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
# Virtual time the page gets to load its data and draw: the dashboard is done in well
# under a second of it; its polling timers then only advance the virtual clock.
DEFAULT_BUDGET_MS = 10_000
DEFAULT_TIMEOUT_S = 90.0


@dataclass(frozen=True, slots=True)
class WindowSize:
    name: str
    width: int
    height: int

    @property
    def switch(self) -> str:
        return f"--window-size={self.width},{self.height}"


DESKTOP = WindowSize("desktop", 1366, 900)
PHONE = WindowSize("phone", 390, 844)


class BrowserMissing(RuntimeError):
    pass


def find_chromium() -> str:
    """``$CHROMIUM`` or the first Chromium on PATH."""
    for name in (os.environ.get("CHROMIUM", ""), *CHROMIUM_CANDIDATES):
        found = shutil.which(name) if name else None
        if found:
            return found
    raise BrowserMissing(
        "headless Chromium was not found (Debian: `apt-get install -y chromium`; "
        "or set CHROMIUM=/path/to/chrome)"
    )


async def _run(chromium: str, url: str, size: WindowSize, *switches: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={DEFAULT_BUDGET_MS}",
            size.switch,
            *switches,
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=profile,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout=DEFAULT_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    if process.returncode != 0:
        raise RuntimeError(f"chromium failed: {err.decode(errors='replace')[-2000:]}")
    return out


async def dump_dom(url: str, size: WindowSize = DESKTOP, *, chromium: str | None = None) -> str:
    """The page's DOM after its scripts ran, serialised."""
    out = await _run(chromium or find_chromium(), url, size, "--dump-dom")
    return out.decode()


async def screenshot(
    url: str, target: Path, size: WindowSize = DESKTOP, *, chromium: str | None = None
) -> Path:
    """A PNG of the page's window (the first screen, as a person sees it), written to
    ``target``: an absolute path (Chromium runs in its own working directory) in an
    existing directory."""
    if not target.is_absolute():
        raise ValueError(f"{target}: an absolute path, please")
    await _run(chromium or find_chromium(), url, size, f"--screenshot={target}")
    return target


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header (IHDR is always the first chunk)."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG")
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seminarops_devtools.browser")
    commands = parser.add_subparsers(dest="command", required=True)
    shot = commands.add_parser("screenshot", help="desktop and phone screenshots of a page")
    shot.add_argument("url", nargs="?", default="http://127.0.0.1:8004/")
    shot.add_argument("--out", type=Path, default=Path("docs"), help="directory for the PNGs")
    shot.add_argument("--name", default="dashboard", help="file name stem")
    shot.add_argument(
        "--page-height",
        type=int,
        default=0,
        help="also a desktop-wide shot this many pixels tall (most of the page)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sizes = [DESKTOP, PHONE]
    if args.page_height:
        sizes.append(WindowSize("page", DESKTOP.width, args.page_height))
    for size in sizes:
        path = asyncio.run(screenshot(args.url, out / f"{args.name}-{size.name}.png", size))
        print(f"{path} ({size.width}x{size.height})")  # noqa: T201 - a command-line tool
    return 0


if __name__ == "__main__":
    sys.exit(main())
