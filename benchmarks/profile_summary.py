"""Top frames of a py-spy recording (``benchmarks/run.py --profile DIR``).

py-spy's ``--format raw`` writes collapsed stacks, one line per distinct stack:
``outer (file:line);...;leaf (file:line) <samples>``. The summary sums the samples by
leaf frame (where the CPU was, the line number dropped so a function counts once) and
by the module of the leaf frame (its own time: library against service code), the top
15 of each, as a share of all samples.

    .venv/bin/python benchmarks/profile_summary.py DIR/database.txt
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

TOP = 15
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def parse(lines: Iterable[str]) -> Counter[tuple[str, ...]]:
    """Samples per stack (outermost frame first)."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def module_of(path: str) -> str:
    """A dotted module name for a frame's file: after ``site-packages/`` or ``src/``
    when there is one, else the file name."""
    if path.startswith("<"):
        return path  # <frozen importlib._bootstrap>, <string>
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in path:
            path = path.rsplit(marker, 1)[1]
            break
    path = path.removesuffix(".py").removesuffix("/__init__")
    parts = [p for p in path.split("/") if p and not p.startswith("python3.")]
    return ".".join(parts[-3:]) if parts else path


def leaf(frame: str) -> tuple[str, str]:
    """(function with its module, module) of one frame."""
    match = _FRAME.match(frame)
    if match is None:
        return frame, frame
    module = module_of(match["file"])
    return f"{match['function']} ({module})", module


def summarize(stacks: Counter[tuple[str, ...]], *, title: str, top: int = TOP) -> str:
    total = sum(stacks.values())
    by_frame: Counter[str] = Counter()
    by_module: Counter[str] = Counter()
    for stack, samples in stacks.items():
        frame, module = leaf(stack[-1])
        by_frame[frame] += samples
        by_module[module] += samples
    lines = [f"{title}: {total} samples"]
    for heading, counts in (("by leaf frame", by_frame), ("by own module", by_module)):
        lines += ["", f"top {top} {heading}:"]
        for name, samples in counts.most_common(top):
            lines.append(f"  {samples / total * 100:5.1f} %  {samples:7d}  {name}")
    return "\n".join(lines) + "\n"


def write_summary(raw: Path) -> Path | None:
    """``<name>-top.txt`` beside the recording ``<name>.txt``; None when it is empty."""
    if not raw.exists():
        return None
    stacks = parse(raw.read_text(errors="replace").splitlines())
    if not stacks:
        return None
    out = raw.with_name(f"{raw.stem}-top.txt")
    out.write_text(summarize(stacks, title=raw.stem))
    return out


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(summarize(parse(Path(name).read_text().splitlines()), title=name))
