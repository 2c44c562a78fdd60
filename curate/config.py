"""Configuration: typed defaults declared next to the code they steer, overridden by TOML.

Every stage declares a `Settings` dataclass; each field's `metadata["doc"]` says what it does.
The effective configuration is the defaults, overridden by `[tool.curate]` in pyproject.toml or
by `curate.toml` (or the file given with `--config`). Unknown sections or keys and values of the
wrong type are errors that name the file and the key, reported before any work starts.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A configuration problem, reported as one line naming the file and the key."""


def setting(default: Any, doc: str) -> Any:
    """A settings field with its documentation (mutable defaults are copied per instance)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass
class RunSettings:
    """Where things are read and written."""

    input: list = setting(["corpus/incoming"], "Input files or folders (recursive).")
    corpus: str = setting("corpus", "Corpus folder: versions/<id>/ and LATEST are written here.")
    reports: str = setting("reports", "Reports folder: reports/<version>/ is written here.")
    rules: list = setting(
        [],
        "Rule pack folders, loaded in order (add your own here). Empty: rules/ where curate "
        "runs if there is one, else the packs shipped with curate.",
    )
    lock_wait_seconds: float = setting(
        0.0, "How long a run waits for another run on the same corpus before giving up."
    )
    workers: int = setting(0, "Worker processes for per-document stages (0: all cores).")
    batch_size: int = setting(
        64,
        "Documents per batch handed to a worker (engine 'local'); small documents go up to 8 "
        "times as many, until a batch holds 32K characters.",
    )
    spill_dir: str = setting(
        "",
        "Where documents wait between passes (the workers' file with several workers, the "
        "driver's spill past spill_memory_mb), and dedup's index with dedup.spill_index "
        "(empty: the system temp folder).",
    )
    spill_memory_mb: float = setting(
        256.0,
        "How much of what a corpus-wide stage spills between passes is held in memory instead "
        "(MB, per stage; the rest goes to run.spill_dir). 0: everything to disk.",
    )
    early_pass: bool = setting(
        True,
        "Engine 'local', several workers: while dedup observes and decides (serial work), run "
        "the last pass on the cores left idle, for the documents it turns out to leave alone "
        "(same output; false: that pass waits for the decision, and the run holds a little less "
        "memory).",
    )
    engine: str = setting("local", "Execution engine: 'local' (processes on this machine) or 'ray'.")
    ray_address: str = setting("", "Ray cluster address for engine 'ray' (empty: start a local Ray).")
    ray_block_mb: float = setting(
        4.0,
        "Engine 'ray': MB of pickled documents per Ray Data block (Ray Data's cost per block "
        "falls on the driver, so blocks are far bigger than the local engine's batches).",
    )


@dataclass
class IngestSettings:
    """Reading input files."""

    extensions: list = setting(
        [".txt", ".md", ".html", ".htm", ".jsonl", ".json"], "File endings that are read."
    )
    max_file_mb: float = setting(
        64.0,
        "Files larger than this are skipped (with a reason), but JSON lines in UTF-8, which are "
        "read a block at a time.",
    )
    text_fields: list = setting(
        ["text", "content", "body"], "JSON fields holding the text (first present wins)."
    )
    meta_fields: list = setting(
        ["title", "url", "source", "author"], "JSON fields copied to the document's meta."
    )


SECTION_OF_RUN = "run"
SECTION_OF_INGEST = "ingest"


@dataclass
class Config:
    """The effective configuration: one settings object per section."""

    sections: dict[str, Any]
    origin: str = "defaults"

    def __getitem__(self, name: str) -> Any:
        return self.sections[name]

    @property
    def run(self) -> RunSettings:
        return self.sections[SECTION_OF_RUN]

    @property
    def ingest(self) -> IngestSettings:
        return self.sections[SECTION_OF_INGEST]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(obj) for name, obj in self.sections.items()}

    def digest_source(self) -> str:
        """Canonical JSON of the settings that can change the output (not paths)."""
        data = self.to_dict()
        data.pop(SECTION_OF_RUN, None)
        return json.dumps(data, sort_keys=True, ensure_ascii=False)


def settings_classes() -> dict[str, type]:
    """Section name -> settings dataclass, for the run, ingest and every pipeline stage."""
    from curate.pipeline import stage_classes

    classes: dict[str, type] = {SECTION_OF_RUN: RunSettings, SECTION_OF_INGEST: IngestSettings}
    for stage in stage_classes():
        classes[stage.name] = stage.Settings
    return classes


def _check_type(path: str, key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(
            f"{path}: {key} should be {type(default).__name__}, got {type(value).__name__} "
            f"({value!r})"
        )
    return value


def build(overrides: dict[str, Any], origin: str = "defaults") -> Config:
    """Defaults overridden by `overrides` ({section: {key: value}}), validated."""
    classes = settings_classes()
    sections: dict[str, Any] = {}
    for name in overrides:
        if name not in classes:
            raise ConfigError(
                f"{origin}: unknown section [{name}] (known: {', '.join(sorted(classes))})"
            )
    for name, cls in classes.items():
        obj = cls()
        given = overrides.get(name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{origin}: [{name}] should be a table")
        known = {f.name for f in dataclasses.fields(cls)}
        for key, value in given.items():
            if key not in known:
                raise ConfigError(
                    f"{origin}: unknown key {name}.{key} (known: {', '.join(sorted(known))})"
                )
            value = _check_type(origin, f"{name}.{key}", value, getattr(obj, key))
            if isinstance(value, dict):
                merged = dict(getattr(obj, key))
                merged.update(value)
                value = merged
            setattr(obj, key, value)
        sections[name] = obj
    return Config(sections=sections, origin=origin)


def load(path: str | Path | None = None, cwd: str | Path = ".") -> Config:
    """Load the effective configuration.

    `path` given: that TOML file (its top level holds the sections). Otherwise `curate.toml` in
    `cwd`, else `[tool.curate]` of `cwd/pyproject.toml`, else the defaults.
    """
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"{file}: configuration file not found")
        return build(_read_toml(file), origin=str(file))
    cwd = Path(cwd)
    if (cwd / "curate.toml").is_file():
        file = cwd / "curate.toml"
        return build(_read_toml(file), origin=str(file))
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("curate")
        if table:
            return build(table, origin=f"{pyproject} [tool.curate]")
    return build({})


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None


def documented(config: Config) -> str:
    """The effective configuration as TOML, each key preceded by its documentation."""
    classes = settings_classes()
    lines = [f"# effective configuration (from {config.origin})"]
    for name, obj in config.sections.items():
        cls = classes[name]
        lines.append("")
        if cls.__doc__:
            lines.append(f"# {cls.__doc__.strip().splitlines()[0]}")
        lines.append(f"[{name}]")
        for f in dataclasses.fields(cls):
            doc = f.metadata.get("doc", "")
            if doc:
                lines.append(f"# {doc}")
            lines.append(f"{f.name} = {_inline(getattr(obj, f.name))}")
    return "\n".join(lines) + "\n"


def _inline(value: Any) -> str:
    """One TOML value on one line (inline tables may not span lines)."""
    import tomli_w

    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {_inline(v)}" for k, v in value.items())
        return "{ " + items + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return tomli_w.dumps({"k": value}).strip().removeprefix("k = ")
