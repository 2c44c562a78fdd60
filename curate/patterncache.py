"""Compiled `regex` patterns, kept on disk between runs (as `curate.tablecache` keeps tables).

Why: `regex` parses and compiles a pattern in Python before its C core builds the pattern
object. For the rule packs' 58 patterns that is about 0.12 s of every run's start-up, before
the first document, while the other cores wait. What the C core is given is a pure function of
the pattern, its flags and the version of `regex`: it is what a pickled pattern holds
(`pattern._pickled_data`; unpickling calls the core, `regex._regex.compile`, with it, and does
not compile again). It is stored as JSON under a key made of exactly those (and Python's
version), with its SHA-256, and given to the core directly the next time, as unpickling would.

Where: the table cache's folder (`tablecache.cache_dir()`, `patterns/` in it), switched off with
it (`CURATE_CACHE_DIR=off`). A cache that cannot be read or written, an entry that does not
match its digest (the core does not check what it is given: damaged code could crash the
process) or one the core refuses is no error: the pattern is compiled as without a cache. The
files are JSON (read without pickle); like the tables, they are trusted as the installed code is.

The standard library's `re` patterns the stages compile are kept the same way (`compile_re`):
`re` builds a character class by walking each code point of its ranges in Python, so a class of
the Han ranges takes about 1.4 ms to compile, and the stages compile a score of such patterns
(27 ms of the run's serial start-up, 5 ms with the cache). What `_sre.compile` is given is a pure
function of the pattern, its flags and Python's version; an entry is stored only when the pattern
it builds equals the one `re.compile` makes, groups included, and read only for the flags it was
stored with. A cache that cannot be written costs nothing more than compiling.
"""

from __future__ import annotations

import _sre
import base64
import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import regex
from regex import _regex as _core

from curate import tablecache
from curate.atomic import replace_file

_FORMAT = "curate-patterncache-1"
_RE_FORMAT = "curate-patterncache-re-1"


def compile(pattern: str, flags: int = 0) -> Any:
    """`regex.compile(pattern, flags)`, built from the cache's entry when there is one."""
    folder = tablecache.cache_dir()
    if folder is None or flags & regex.LOCALE:  # (a locale's pattern depends on more than this)
        return regex.compile(pattern, flags)
    path = folder / "patterns" / f"{_key(pattern, flags)}.json"
    data = _load(path, pattern)
    if data is not None:
        try:
            return _core.compile(*data)
        except Exception:  # noqa: BLE001 - an entry the core refuses: compiled anew below
            pass
    compiled = regex.compile(pattern, flags)
    _store(path, compiled._pickled_data)
    return compiled


def _key(pattern: str, flags: int) -> str:
    """The table cache's key (Python's version in it) over what the entry is a function of."""
    return tablecache.key(_FORMAT, [tablecache.package_version("regex"), str(int(flags)), pattern])


def _encode(data: tuple[Any, ...]) -> str | None:
    """A pattern's core data as JSON, with a digest of itself (garbage given to the core can
    crash the process: a damaged entry must be recognised); None when the data holds what this
    encoding leaves out."""
    (pattern, flags, code, group_index, index_group, named_lists, named_list_indexes,
     req_offset, req_chars, req_flags, group_count) = data
    if named_lists or named_list_indexes:  # (named lists come from keyword arguments)
        return None
    fields = {
        "pattern": pattern, "flags": flags, "code": base64.b64encode(code).decode("ascii"),
        "group_index": group_index, "index_group": sorted(index_group.items()),
        "req_offset": req_offset, "req_chars": req_chars, "req_flags": req_flags,
        "group_count": group_count,
    }
    encoded = json.dumps({"sha256": _digest(fields), "fields": fields})  # (ASCII: lone surrogates too)
    return encoded if _decode(encoded) == data else None


def _digest(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("ascii")).hexdigest()


def _checked_fields(encoded: str) -> dict[str, Any]:
    """An entry's fields, if its digest is theirs."""
    entry = json.loads(encoded)
    data = entry["fields"]
    if entry["sha256"] != _digest(data):
        raise ValueError("damaged entry")
    return data  # type: ignore[no-any-return]


def _decode(encoded: str) -> tuple[Any, ...]:
    data = _checked_fields(encoded)
    req_chars = data["req_chars"]
    return (
        data["pattern"],
        data["flags"],
        base64.b64decode(data["code"]),
        data["group_index"],
        {int(index): name for index, name in data["index_group"]},
        {},
        [],
        data["req_offset"],
        tuple(req_chars) if isinstance(req_chars, list) else req_chars,
        data["req_flags"],
        data["group_count"],
    )


def compile_re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """`re.compile(pattern, flags)`, built from the cache's entry when there is one.

    For patterns whose compiling is worth a file read: those with large character classes.
    """
    folder = tablecache.cache_dir()
    if folder is None or flags & (re.DEBUG | re.LOCALE):
        return re.compile(pattern, flags)
    key = tablecache.key(_RE_FORMAT, [str(int(flags)), pattern])  # (as the regex half keys)
    path = folder / "patterns" / f"{key}.json"
    entry = _load(path, pattern, _decode_re)
    if entry is not None and entry[1] == flags:
        try:
            return _sre.compile(entry[0], *entry[2:])  # type: ignore[no-any-return]
        except Exception:  # noqa: BLE001 - an entry the core refuses: compiled anew below
            pass
    compiled = re.compile(pattern, flags)
    if not _writable(path.parent):  # (no entry to be had: not worth a second compiling)
        return compiled
    try:
        data = _sre_data(pattern, flags)
        built = _sre.compile(*data)
    except Exception:  # noqa: BLE001 - another Python's `re` internals: no entry
        return compiled
    # Patterns compare their code, flags and text; their groups too, here.
    if built == compiled and (built.groups, built.groupindex) == (compiled.groups, compiled.groupindex):
        _store(path, (pattern, flags, *data[1:]), _encode_re)
    return compiled


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def _sre_data(pattern: str, flags: int) -> tuple[Any, ...]:
    """What `re._compiler.compile` gives `_sre.compile` for a pattern (Python 3.11's steps;
    the parser's warnings were given by `re.compile` already)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = re._parser.parse(pattern, flags)  # type: ignore[attr-defined]
    code = re._compiler._code(parsed, flags)  # type: ignore[attr-defined]
    group_index = dict(parsed.state.groupdict)
    index_group: list[str | None] = [None] * parsed.state.groups
    for name, index in group_index.items():
        index_group[index] = name
    return (pattern, flags | parsed.state.flags, code, parsed.state.groups - 1, group_index,
            tuple(index_group))


def _encode_re(entry: tuple[Any, ...]) -> str | None:
    """An entry: the pattern, the flags it was asked with, then the rest of what
    `_sre.compile` is given."""
    pattern, asked, flags, code, groups, group_index, index_group = entry
    fields = {"pattern": pattern, "asked": asked, "flags": flags, "code": code, "groups": groups,
              "group_index": group_index, "index_group": list(index_group)}
    encoded = json.dumps({"sha256": _digest(fields), "fields": fields})  # (ASCII: lone surrogates too)
    return encoded if _decode_re(encoded) == entry else None


def _decode_re(encoded: str) -> tuple[Any, ...]:
    data = _checked_fields(encoded)
    return (data["pattern"], data["asked"], data["flags"], list(data["code"]), data["groups"],
            dict(data["group_index"]), tuple(data["index_group"]))


def _load(
    path: Path, pattern: str, decode: Callable[[str], tuple[Any, ...]] = _decode
) -> tuple[Any, ...] | None:
    try:
        data = decode(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return data if data[0] == pattern else None


def _store(path: Path, data: tuple[Any, ...], encode: Callable[[tuple[Any, ...]], str | None] = _encode) -> None:
    """Write the entry whole (`replace_file`: a reader never sees half of one); a cache that
    cannot be written is no error."""
    try:
        encoded = encode(data)
    except (TypeError, ValueError):
        return
    if encoded is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, [encoded.encode("utf-8")])
    except OSError:
        return
