"""What factorysim writes, and what it never overwrites.

Event logs (--record) and reports (--report) are checked before any work starts, and again just before
they are written: never the scenario being read, never anything but a regular file (a device, a FIFO, a
directory), an existing file only with --force or after a yes on a terminal, and only into a folder that
exists and can be written. Files are written atomically (a temporary file in the same folder, renamed over
the target), so a full disk or a crash leaves what was there as it was.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .scenario.errors import Problem, ScenarioError, show
from .scenario.files import file_kind, write_atomically


@dataclass(frozen=True)
class Output:
    """A file a command will write: the flag that named it, the path, and whether it may replace a file."""

    flag: str
    path: str
    replace: bool


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def _ask(question: str) -> bool:
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _problem(flag: str, path: str, reading: Sequence[str], force: bool, ask: bool) -> tuple[Problem | None, bool]:
    """(what is wrong with writing `path`, or None; whether it may replace an existing file)."""
    shown = show(path)
    if not path.strip():
        return Problem(flag, "needs a file name"), False
    try:
        link = os.lstat(path)
    except FileNotFoundError:
        link = None
    except OSError as exc:
        return Problem(flag, f"cannot use {shown}: {exc.strerror or exc}"), False
    if link is not None:
        for source in reading:
            try:
                if os.path.samefile(path, source):
                    return Problem(flag, f"{shown} is the scenario being read; write to another file"), False
            except OSError:
                pass
        try:
            info = os.stat(path)
        except OSError:
            info = link  # a link to nowhere: replacing the link is still replacing something
        if stat.S_ISDIR(info.st_mode):
            return Problem(flag, f"{shown} is a directory; name a file in it"), False
        if not stat.S_ISREG(info.st_mode) and not stat.S_ISLNK(info.st_mode):
            return Problem(flag, f"{shown} is {file_kind(info.st_mode)}; factorysim writes only regular files"), False
        if not force and not (ask and _ask(f"{path} exists; overwrite it?")):
            return Problem(flag, f"{shown} exists; add --force to overwrite it"), False
    folder = os.path.dirname(path) or "."
    if not os.path.exists(folder):
        return Problem(flag, f"folder {show(folder)} does not exist"), False
    if not os.path.isdir(folder):
        return Problem(flag, f"{show(folder)} is not a folder"), False
    try:  # the write is a temporary file in the same folder, renamed: try exactly that
        fd, probe = tempfile.mkstemp(prefix=".factorysim-", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return Problem(flag, f"cannot write in folder {show(folder)}: {exc.strerror or exc}"), False
    return None, link is not None


PAGE_MARK = '<meta name="generator" content="factorysim">'
"""In the head of every HTML page factorysim writes: a command that redraws its own page each time it runs
(a sweep's report) replaces a file that has it without asking, and no other."""


def is_factorysim_page(path: str) -> bool:
    """Whether `path` is a regular file whose head carries PAGE_MARK."""
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as fh:
            return PAGE_MARK.encode() in fh.read(4096)
    except OSError:
        return False


def check_outputs(named: Sequence[tuple[str, str | None]], reading: Sequence[str | None] = (),
                  force: bool = False, replaceable: Sequence[str] = ()) -> list[Output]:  # fmt: skip
    """Check the files a command will write (flag, path or None) before it starts; a ScenarioError lists every
    problem. `reading`: the files the command reads (never overwritten, --force or not). `replaceable`: flags
    whose existing file is replaced as if with --force. On a terminal, an existing file is asked about instead
    of refused."""
    given = [(flag, path) for flag, path in named if path is not None]
    sources = [s for s in reading if s]
    problems, out = [], []
    seen: dict[str, str] = {}
    for flag, path in given:
        key = os.path.realpath(path)
        if key in seen:
            problems.append(Problem(flag, f"{show(path)} is also the file of {seen[key]}; give two files"))
            continue
        seen[key] = flag
        forced = force or flag in replaceable
        problem, replace = _problem(flag, path, sources, forced, ask=not forced and _interactive())
        if problem is not None:
            problems.append(problem)
        else:
            out.append(Output(flag, path, replace))
    if problems:
        raise ScenarioError(problems)
    return out


def write_outputs(items: Sequence[tuple[Output, Callable[[], str]]], reading: Sequence[str | None] = ()) -> None:
    """Write each output's text, checked again first (the run may have lasted a while); every failure is a
    problem of a ScenarioError raised once all were tried, and leaves the file that was there untouched."""
    problems = []
    sources = [s for s in reading if s]
    for output, text in items:
        problem, _ = _problem(output.flag, output.path, sources, force=output.replace, ask=False)
        if problem is None:
            try:
                write_atomically(output.path, text())
            except OSError as exc:
                reason = exc.strerror or str(exc)
                problem = Problem(output.flag, f"cannot write {show(output.path)}: {reason}; nothing was written")
        if problem is not None:
            problems.append(problem)
    if problems:
        raise ScenarioError(problems)
