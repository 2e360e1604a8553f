"""Reading and writing `model.toml`, the package manifest specified in models/MANIFEST.md.

Only the keys the kit needs are typed here; the whole table is kept so nothing is lost when a
manifest is read and written back.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Preparation:
    """The `[preparation]` table plus the input geometry it prepares for."""

    height: int
    width: int
    depth: int | None = None
    channels: int = 1
    rescale: bool = True
    window: tuple[float, float] | None = None
    voi: str | None = None
    percentiles: tuple[float, float] | None = None
    invert_monochrome1: bool = True
    mean: list[float] = field(default_factory=lambda: [0.5])
    std: list[float] = field(default_factory=lambda: [0.5])

    @property
    def is_volume(self) -> bool:
        return self.depth is not None


def preparation_from_table(table: dict) -> Preparation:
    """Builds the typed preparation from a parsed manifest, checking the single VOI source."""
    inp, prep = table["input"], table["preparation"]
    sources = [k for k in ("window", "voi", "percentiles") if k in prep]
    if len(sources) != 1:
        raise ValueError(f"[preparation] needs exactly one VOI source, found {sources}")
    window = prep.get("window")
    return Preparation(
        height=int(inp["height"]),
        width=int(inp["width"]),
        depth=int(inp["depth"]) if inp.get("layout") == "NCDHW" else None,
        channels=int(inp.get("channels", 1)),
        rescale=bool(prep.get("rescale", True)),
        window=(float(window["center"]), float(window["width"])) if window else None,
        voi=prep.get("voi"),
        percentiles=tuple(prep["percentiles"]) if "percentiles" in prep else None,
        invert_monochrome1=bool(prep.get("invert_monochrome1", True)),
        mean=[float(v) for v in prep.get("mean", [0.5])],
        std=[float(v) for v in prep.get("std", [0.5])],
    )


def read_manifest(path: Path) -> dict:
    """Parses a model.toml (or the model.toml inside a package folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.toml"
    with path.open("rb") as f:
        return tomllib.load(f)


def _value(v) -> str:
    """One TOML value: the subset of TOML our manifests use (str, bool, number, list, table)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(table: dict) -> str:
    """Writes the manifest: plain tables in order, then `[[labels]]` entries."""
    lines: list[str] = []
    for name, body in table.items():
        entries = body if isinstance(body, list) else [body]
        header = f"[[{name}]]" if isinstance(body, list) else f"[{name}]"
        for entry in entries:
            lines.append(header)
            lines.extend(f"{k} = {_value(v)}" for k, v in entry.items())
            lines.append("")
    return "\n".join(lines)


def write_manifest(path: Path, table: dict) -> None:
    """Writes `table` as TOML and checks that it parses back to the same table."""
    text = dumps(table)
    if tomllib.loads(text) != _plain(table):
        raise ValueError("manifest did not round-trip through TOML")
    Path(path).write_text(text)


def _plain(v):
    """Tuples become lists, as TOML reads them back."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v
