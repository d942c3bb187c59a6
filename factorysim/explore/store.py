"""Where sweep results live: a columnar file (Parquet, or CSV when asked) and, while a sweep runs, a
journal beside it with one JSON line per finished point and seed.

Results are keyed by a hash of the resolved scenario and seed. Before computing, a sweep reads what the
output file and an interrupted sweep's journal already hold; it computes only what is missing, and a
sweep run again costs nothing. The output is replaced atomically (temporary file, then rename), and the
journal is removed once the output is written.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Literal, TextIO

from ..scenario.errors import Problem, ScenarioError

Format = Literal["parquet", "csv"]
KEY = "key"


def format_for(path: str, asked: str | None) -> Format:
    if asked:
        if asked not in ("parquet", "csv"):
            raise ScenarioError([Problem("--format", f'"{asked}" is not one of "parquet", "csv"')])
        return asked  # type: ignore[return-value]
    return "csv" if path.lower().endswith(".csv") else "parquet"


def _clean(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


class ResultStore:
    """The results of one sweep output file, by key."""

    def __init__(self, path: str | os.PathLike[str], fmt: Format, metrics: list[str], force: bool = False) -> None:
        self.path = Path(path)
        self.fmt = fmt
        self.metrics = metrics
        self.force = force
        self.journal = self.path.with_name(self.path.name + ".partial.jsonl")
        self._fh: TextIO | None = None
        self.written: set[str] = set()  # the keys of the results the output file holds (read by `load`)

    # ------------------------------------------------------------ reading what is there

    def load(self) -> dict[str, dict[str, Any]]:
        """Results already computed: from the output file (unless --force), then the journal."""
        found: dict[str, dict[str, Any]] = {}
        if self.path.exists() and not self.force:
            found.update(self._read_output())
            self.written = set(found)
        if self.journal.exists():
            with self.journal.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        item = json.loads(line)
                        found[item[KEY]] = item["metrics"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short when the sweep was stopped
        return found

    def _not_ours(self, why: str) -> ScenarioError:
        return ScenarioError(
            [Problem("--output", f"{self.path} exists and {why}; choose another file, or --force to replace it")]
        )

    def _read_output(self) -> dict[str, dict[str, Any]]:
        if self.path.is_dir():
            raise self._not_ours("is a folder")
        try:
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                table = pq.read_table(self.path)
            else:
                table = self._read_csv()
        except ScenarioError:
            raise
        except Exception as exc:
            why = textwrap.shorten((str(exc).splitlines() or [type(exc).__name__])[0], 120, placeholder=" …")
            raise self._not_ours(f"cannot be read as {self.fmt} ({why})") from None
        if KEY not in table.column_names or "stat" not in table.column_names:
            raise self._not_ours("is not a factorysim sweep")
        cols = [m for m in self.metrics if m in table.column_names]
        keys = table.column(KEY).to_pylist()
        stats = table.column("stat").to_pylist()
        values = {m: table.column(m).to_pylist() for m in cols}
        out = {}
        for i, (key, stat) in enumerate(zip(keys, stats, strict=True)):
            if key and stat in ("run", "estimate"):
                out[key] = {m: values[m][i] for m in cols}
        return out

    def _read_csv(self):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        with self.path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        if KEY not in header or "stat" not in header:
            raise self._not_ours("is not a factorysim sweep")
        wanted = [KEY, "stat", *(m for m in self.metrics if m in header)]
        types = {c: (pa.string() if c in (KEY, "stat") else pa.float64()) for c in wanted}
        return pcsv.read_csv(self.path, convert_options=pcsv.ConvertOptions(include_columns=wanted, column_types=types))

    # ------------------------------------------------------------ recording as results arrive

    def add(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Append finished results to the journal, on disk before returning."""
        if self._fh is None:
            self._fh = self.journal.open("a", encoding="utf-8")
        for key, metrics in items:
            self._fh.write(json.dumps({KEY: key, "metrics": _clean(metrics)}, allow_nan=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # ------------------------------------------------------------ the output

    def write(self, rows: list[dict[str, Any]], schema) -> None:
        """Write the rows atomically and drop the journal."""
        import pyarrow as pa

        table = pa.Table.from_pylist(rows, schema=schema)
        self.close()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        try:
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                pq.write_table(table, tmp)
            else:
                import pyarrow.csv as pcsv

                pcsv.write_csv(table, tmp)
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.journal.unlink(missing_ok=True)
