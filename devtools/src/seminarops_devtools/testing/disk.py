"""A small disk a test can fill: a size-limited tmpfs mounted over one server's data
directory, and a ballast file that takes every byte left until it is freed.

Mounting needs root (or CAP_SYS_ADMIN), which the CI machines and the development
containers have; elsewhere ``mount`` fails with a message that says so.
"""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

_BALLAST = ".ballast"
_CHUNK = b"\0" * (1 << 20)


class SmallDisk:
    def __init__(self, path: Path, *, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.mounted = False

    def mount(self) -> SmallDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs", self.path],  # noqa: S607 - from PATH
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"cannot mount a {self.size_mb} MB disk at {self.path} (needs root or "
                f"CAP_SYS_ADMIN): {done.stderr.strip()}"
            )
        self.mounted = True
        return self

    def fill(self) -> int:
        """Write a ballast file until the disk is full; the bytes it took."""
        written = 0
        with (self.path / _BALLAST).open("ab", buffering=0) as ballast:
            try:
                while True:
                    written += ballast.write(_CHUNK) or 0
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
        return written

    def free(self) -> None:
        (self.path / _BALLAST).unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.mounted:
            # Lazy: a process of a failed test may still hold a file open in it.
            subprocess.run(  # noqa: S603 - fixed argv, no shell
                ["umount", "-l", self.path],  # noqa: S607 - umount from PATH
                check=False,
                capture_output=True,
            )
            self.mounted = False
