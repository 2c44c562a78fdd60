"""The rules engine: rule packs are data (TOML files in `rules/`), each rule tested by its examples.

A rule pack is a TOML file directly inside a configured rules folder (subfolders such as
`rules/lexicons/` hold other data and are not packs; `allowlist.toml` is the reviewed-keep list).
See `rules/README.md` for the file format. `load_rules` reads and validates every pack *before*
any work starts, so a broken rule stops the run with one line naming the file, the rule and the
problem. `RuleSet.test()` runs every rule's examples (and the allowlist as must-not-match).

Why patterns are expanded ("variants"): text reaches the boilerplate stage in Simplified (after
t2s) or Traditional (conversion off), with full- or half-width punctuation (punctuation
normalisation on or off). Writing `[声聲]` and `[:：]` by hand everywhere is error-prone, so by
default each Han character of a pattern also matches its OpenCC Simplified/Traditional variants
and each full-width punctuation mark also matches its half-width twin.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import signal
import string
import threading
import time
import tomllib
import unicodedata
from bisect import bisect_right
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from shlex import quote
from typing import Any

import regex

from curate import patterncache, tablecache
from curate.textutil import mapped_text, paragraph_spans

SCOPES = ("line", "paragraph", "inline", "tail")
# Scopes whose pattern must match the whole (stripped) line; the others search inside it.
WHOLE_LINE_SCOPES = ("line", "tail")
ALLOWLIST_FILE = "allowlist.toml"
# Rule ids that are not rules in a pack but may be named by allowlist entries.
BUILTIN_RULE_IDS = ("repeated_lines",)

RULE_KEYS = {
    "id", "description", "scope", "pattern", "literals", "action", "kind", "reason", "max_len",
    "anchor", "variants", "must_match", "must_not_match", "skip_lines_with",
}
PACK_KEYS = {"name", "description", "variants"}
EXAMPLE_KEYS = {"text", "value", "removes"}
ID_RE = regex.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
FIELD_RE = regex.compile(r"[a-z][a-z0-9_]*")
# Full-width punctuation -> the half-width twin it should also match.
PUNCT_TWINS = {
    "：": ":", "，": ",", "；": ";", "（": "(", "）": ")", "！": "!", "？": "?",
    "【": "[", "】": "]", "。": ".", "／": "/", "｜": "|", "　": " ",
}


# Characters besides an ASCII letter's upper and lower case that a case-insensitive `regex`
# pattern (simple case folding, its default) matches for it: İ for i, ı for I, the Kelvin sign
# for k and K, the long s for s and S (a test checks these are all).
CASE_TWINS = {"\u0130": "i", "\u0131": "i", "\u212a": "k", "\u017f": "s"}


class RuleError(Exception):
    """A broken rule pack: one line naming the file, the rule and the problem."""


@dataclass(frozen=True)
class Example:
    """One example of a rule: `text`, and optionally the meta `value` or the text it `removes`."""

    text: str
    value: str | None = None
    removes: str | None = None


@dataclass(frozen=True)
class Failure:
    """A failed rule example (or allowlist entry) found by `RuleSet.test`."""

    file: str
    rule: str
    check: str  # "must_match" | "must_not_match" | "value" | "removes" | "allowlist" | "timeout" | "skip_lines_with"
    example: str
    detail: str

    def __str__(self) -> str:
        shown = self.example if len(self.example) <= 80 else self.example[:77] + "..."
        return f"{self.file}: rule {self.rule}: {self.check} {shown!r}: {self.detail}"


@dataclass
class Rule:
    """One rule of a pack, with its compiled pattern."""

    id: str
    description: str
    scope: str
    action: str
    source: str  # the pattern as written (or the literals joined)
    pattern: Any  # compiled `regex` pattern (after variant expansion)
    pack: str
    file: str
    kind: str
    reason: str
    max_len: int | None = None
    anchor: bool = True
    must_match: list[Example] = field(default_factory=list)
    must_not_match: list[Example] = field(default_factory=list)
    # Strings the rule's author says no line it matches holds: such lines are not searched.
    skip_lines_with: tuple[str, ...] = ()
    # An inline rule's top-level alternatives, compiled, when they are searched one by one
    # (`matches_apart`); None: the pattern is searched as it is.
    branches: tuple[Any, ...] | None = None
    # For each of `branches`, or for the pattern when it is searched whole: whether its matches
    # start only where a line does (`starts_lines`).
    line_starts: tuple[bool, ...] = ()

    @property
    def meta_field(self) -> str | None:
        return self.action.split(":", 1)[1] if self.action.startswith("meta:") else None

    def skips(self, line: str) -> bool:
        """Whether the line holds one of `skip_lines_with` (the rule is not searched there)."""
        return any(skipped in line for skipped in self.skip_lines_with)

    def match_line(self, line: str, timeout: float | None = None, skip: bool = True) -> Any:
        """The match of this rule in one line of text (None if it does not apply).

        line/tail rules must match the whole line (surrounding whitespace ignored; the match
        then spans the stripped line); paragraph/inline rules search inside it. `skip=False`
        searches lines holding a `skip_lines_with` string too (`curate rules test` does, to
        check the author's word).
        """
        if self.max_len is not None and len(line.strip()) > self.max_len:
            return None
        if skip and self.skip_lines_with and self.skips(line):
            return None
        if self.scope in WHOLE_LINE_SCOPES:
            stripped = line.strip()
            lead = len(line) - len(line.lstrip())
            return self.pattern.fullmatch(line, lead, lead + len(stripped), timeout=timeout)
        return self.pattern.search(line, timeout=timeout)

    def iter_inline(self, line: str, timeout: float | None = None, skip: bool = True) -> list[Any]:
        """All non-overlapping matches of an inline rule in one line (`skip`: as in `match_line`)."""
        if self.max_len is not None and len(line.strip()) > self.max_len:
            return []
        if skip and self.skip_lines_with and self.skips(line):
            return []
        if self.branches is not None:
            return matches_apart(self.pattern, self.branches, line, timeout, self.line_starts)
        if self.line_starts == (True,) and "\n" not in line:  # (at 0 or nowhere: `starts_lines`)
            m = self.pattern.match(line, timeout=timeout)
            if m is None:
                return []
            if m.end() > m.start():
                return [m]
            # (an empty match: `finditer` tries again at 0 for a longer one, and so does this)
        return [m for m in self.pattern.finditer(line, timeout=timeout) if m.end() > m.start()]

    def value(self, match: Any) -> str:
        """The metadata value a match carries: group `value`, else group 1, else the match."""
        if "value" in self.pattern.groupindex:
            raw = match.group("value")
        elif self.pattern.groups >= 1:
            raw = match.group(1)
        else:
            raw = match.group(0)
        return clean_value(raw or "")

    def check(self, text: str, timeout: float | None = None, skip: bool = True) -> Any:
        """The first match of this rule in any line of `text` (for examples and the allowlist)."""
        for line in text.split("\n"):
            if self.scope == "inline":
                found = self.iter_inline(line, timeout, skip)
                if found:
                    return found[0]
            else:
                m = self.match_line(line, timeout, skip)
                if m:
                    return m
        return None


@dataclass(frozen=True)
class Pack:
    name: str
    file: str
    description: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class AllowEntry:
    """Reviewed text that must be kept (by `rule`, or by every rule when rule is None)."""

    text: str
    rule: str | None
    note: str
    file: str
    key: str  # the text normalised for comparison


class RuleSet:
    """All rule packs of the configured folders, in order, plus the allowlist."""

    def __init__(
        self,
        packs: list[Pack],
        allowlist: list[AllowEntry],
        folders: list[Path],
        digest_parts: list[Any],
    ) -> None:
        self.packs = packs
        self.allowlist = allowlist
        self.folders = folders
        self.rules: list[Rule] = [rule for pack in packs for rule in pack.rules]
        self._by_id = {rule.id: rule for rule in self.rules}
        self._digest_parts = digest_parts
        self._digest: str | None = None
        self._triggers: TriggerIndex | None = None

    def trigger_index(self) -> TriggerIndex:
        """The trigger pre-filter of all rules (built on first use, once per process)."""
        if self._triggers is None:
            self._triggers = TriggerIndex(self.rules)
        return self._triggers

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id)

    def digest(self) -> str:
        """sha256 of the canonical content of every pack, the allowlist and other data files.

        Canonical = parsed TOML as sorted JSON, so editing a comment does not change the version
        id; files in subfolders (e.g. lexicons) enter by the hash of their bytes.
        """
        if self._digest is None:
            blob = json.dumps(self._digest_parts, sort_keys=True, ensure_ascii=False)
            self._digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()
        return self._digest

    def keeps(self, rule_id: str, text: str) -> bool:
        """True when an allowlist entry for `rule_id` (or for all rules) covers `text`.

        Covers = one contains the other, compared after NFKC (so full- and half-width
        punctuation are the same) with whitespace removed.
        """
        if not self.allowlist:
            return False
        key = normalise_for_compare(text)
        if not key:
            return False
        for entry in self.allowlist:
            if entry.rule is not None and entry.rule != rule_id:
                continue
            if entry.key in key or key in entry.key:
                return True
        return False

    def test(self, timeout: float = 1.0) -> list[Failure]:
        """Run every rule's examples and every allowlist entry; return what failed."""
        failures: list[Failure] = []
        for rule in self.rules:
            for example in rule.must_match:
                failures.extend(_check_must_match(rule, example, timeout))
                failures.extend(_check_skips(rule, example.text, timeout))
            for example in rule.must_not_match:
                failures.extend(_check_must_not_match(rule, example.text, "must_not_match", timeout))
        for entry in self.allowlist:
            targets = self.rules if entry.rule is None else [r for r in self.rules if r.id == entry.rule]
            for rule in targets:
                failures.extend(_check_must_not_match(rule, entry.text, "allowlist", timeout, entry.file))
        return failures


def _check_must_match(rule: Rule, example: Example, timeout: float) -> list[Failure]:
    def fail(check: str, detail: str) -> list[Failure]:
        return [Failure(rule.file, rule.id, check, example.text, detail)]

    try:
        m = rule.check(example.text, timeout)
    except TimeoutError:
        return fail("timeout", f"pattern timed out after {timeout}s")
    if m is None:
        return fail("must_match", "no match")
    if example.value is not None and rule.value(m) != example.value:
        return fail("value", f"extracted {rule.value(m)!r}, expected {example.value!r}")
    if example.removes is not None and m.group(0) != example.removes:
        return fail("removes", f"removes {m.group(0)!r}, expected {example.removes!r}")
    return []


def _check_skips(rule: Rule, text: str, timeout: float) -> list[Failure]:
    """`skip_lines_with` taken at its word, tested: each line of a must_match example with one
    of the strings put at its start, in its middle or at its end must not match (searched
    without the skip)."""
    failures: list[Failure] = []
    for line in text.split("\n") if rule.skip_lines_with else ():
        middle = len(line) // 2
        for skipped in rule.skip_lines_with:
            for variant in (skipped + line, line[:middle] + skipped + line[middle:], line + skipped):
                failures.extend(_check_must_not_match(rule, variant, "skip_lines_with", timeout, skip=False))
    return failures


def _check_must_not_match(
    rule: Rule, text: str, check: str, timeout: float, file: str | None = None, skip: bool = True
) -> list[Failure]:
    try:
        m = rule.check(text, timeout, skip)
    except TimeoutError:
        return [Failure(file or rule.file, rule.id, "timeout", text, f"pattern timed out after {timeout}s")]
    if m is not None:
        detail = f"matches {m.group(0)!r}" + (" in a line skip_lines_with skips" if not skip else "")
        return [Failure(file or rule.file, rule.id, check, text, detail)]
    return []


# --------------------------------------------------------------------------- helpers
def normalise_for_compare(text: str) -> str:
    """NFKC, no whitespace: how allowlist entries are compared with candidate removals."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def clean_value(raw: str) -> str:
    """A metadata value without surrounding whitespace or trailing punctuation.

    Brackets are left alone (an original title may end in "(图)"): patterns exclude them.
    """
    return raw.strip().rstrip("。.，,；;：:").strip()


@cache
def _memo(name: str) -> tablecache.JsonMemo:
    """What this module derives from a pattern, and the rule files' parsed data, kept between
    runs (`tablecache.JsonMemo`): a function of this module's code, OpenCC's dictionaries and
    `regex`."""
    return tablecache.JsonMemo(
        name,
        [
            tablecache.source_digest(__name__),
            tablecache.package_version("opencc-python-reimplemented"),
            tablecache.package_version("regex"),
        ],
    )


@cache
def _han_variants() -> dict[str, str]:
    """Han character -> the other characters it may be written as (OpenCC, one step both ways)."""
    base = resources.files("opencc") / "dictionary"
    variants: dict[str, set[str]] = {}
    for name in ("STCharacters.txt", "TSCharacters.txt"):
        for line in (base / name).read_text(encoding="utf-8").splitlines():
            key, _, targets = line.partition("\t")
            for target in targets.split():
                if target != key and len(key) == 1 and len(target) == 1:
                    variants.setdefault(key, set()).add(target)
                    variants.setdefault(target, set()).add(key)
    return {key: "".join(sorted(values)) for key, values in variants.items()}


def _twins(ch: str) -> str:
    """What `ch` also matches under variant expansion (without ch itself)."""
    if ch in PUNCT_TWINS:
        return regex.escape(PUNCT_TWINS[ch])
    return _han_variants().get(ch, "")


def expand_variants(pattern: str) -> str:
    """Make each Han literal also match its S/T variants, full-width punctuation its twin.

    `网` becomes `[网網]`; inside a character class the variants are appended to the class;
    range endpoints, escapes and `\\p{...}`-style properties are left alone.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            j = _escape_end(pattern, i)
            out.append(pattern[i:j])
            i = j
        elif ch == "[":
            j, extra = _scan_class(pattern, i)
            body = pattern[i : j - 1]
            out.append(body + extra + "]" if extra else pattern[i:j])
            i = j
        else:
            twins = _twins(ch)
            out.append(f"[{ch}{twins}]" if twins else ch)
            i += 1
    return "".join(out)


def _escape_end(pattern: str, i: int) -> int:
    """End of the escape sequence starting at pattern[i] == '\\'."""
    if i + 1 >= len(pattern):
        return i + 1
    nxt = pattern[i + 1]
    if nxt in "pPNx" and i + 2 < len(pattern) and pattern[i + 2] == "{":
        close = pattern.find("}", i + 2)
        return len(pattern) if close == -1 else close + 1
    if nxt == "u":
        return min(len(pattern), i + 6)
    if nxt == "U":
        return min(len(pattern), i + 10)
    return i + 2


def _scan_class(pattern: str, i: int) -> tuple[int, str]:
    """Scan the character class starting at pattern[i] == '['.

    Returns the index just after its closing ']' and the variant characters to add.
    """
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    members: list[tuple[str, bool]] = []  # (char, is part of a range)
    while j < len(pattern) and pattern[j] != "]":
        if pattern[j] == "\\":
            j = _escape_end(pattern, j)
            continue
        if pattern[j] == "[" and pattern[j + 1 : j + 2] == ":":  # POSIX class [:alpha:]
            close = pattern.find(":]", j + 2)
            j = close + 2 if close != -1 else j + 1
            continue
        in_range = pattern[j + 1 : j + 2] == "-" and pattern[j + 2 : j + 3] not in ("", "]")
        if in_range:
            members.append((pattern[j], True))
            members.append((pattern[j + 2], True))
            j += 3
            continue
        members.append((pattern[j], False))
        j += 1
    present = {c for c, _ in members}
    extra = []
    for ch, ranged in members:
        if ranged:
            continue
        for twin in _twins(ch).replace("\\", ""):
            if twin not in present and twin not in extra:
                extra.append(twin)
    escaped = "".join("\\" + c if c.isascii() and not c.isalnum() else c for c in extra)
    return min(j + 1, len(pattern)), escaped


# --------------------------------------------------------------------------- loading
def _shipped_rules() -> Path:
    """The rule packs shipped with curate: the copy a wheel installs in the package
    (`setup.py`'s `BuildPackage`), else the repository's `rules/`, beside the package (a folder
    of that name there that holds no pack, another package's, is not taken for it)."""
    package = Path(__file__).resolve().parent
    installed = package / "shipped_rules"
    beside = package.parent / "rules"
    return beside if not installed.is_dir() and any(beside.glob("*.toml")) else installed


SHIPPED_RULES = _shipped_rules()
LOCAL_RULES = Path("rules")  # (a run's own packs, where it runs)


def configured_folders(configured: list[str] | list[Path]) -> list[Path]:
    """The rule folders of `run.rules`, as given. None given (the default): `rules/` where
    curate runs, if there is one, else the packs shipped with curate, so that a run works
    from any folder. A folder named that does not exist stays an error (`load_rules`)."""
    if configured:
        return [Path(folder) for folder in configured]
    return [LOCAL_RULES if LOCAL_RULES.is_dir() else SHIPPED_RULES]


def load_rules(folders: list[Path] | list[str]) -> RuleSet:
    """Load and validate every rule pack in `folders` (in order); raise RuleError if broken."""
    packs: list[Pack] = []
    allowlist: list[AllowEntry] = []
    digest_parts: list[Any] = []
    seen: dict[str, str] = {}
    paths = [Path(f) for f in folders]
    for folder in paths:
        if not folder.is_dir():
            raise RuleError(f"{folder}: rules folder not found")
        part: dict[str, Any] = {"packs": [], "allowlist": None, "data": {}}
        for file in sorted(folder.glob("*.toml")):
            data = _read_toml(file)
            if file.name == ALLOWLIST_FILE:
                part["allowlist"] = data
                continue
            pack = _load_pack(file, data, seen)
            packs.append(pack)
            part["packs"].append([file.name, data])
        for sub in sorted(p for p in folder.rglob("*") if p.is_file() and p.parent != folder):
            rel = sub.relative_to(folder).as_posix()
            if "__pycache__" in rel or rel.startswith("."):
                continue
            part["data"][rel] = hashlib.sha256(sub.read_bytes()).hexdigest()
        digest_parts.append(part)
    known = set(seen) | set(BUILTIN_RULE_IDS)
    for folder in paths:
        file = folder / ALLOWLIST_FILE
        if file.is_file():
            allowlist.extend(_load_allowlist(file, _read_toml(file), known))
    for memo in ("rule-variants", "rule-branches", "rule-files"):
        _memo(memo).save()
    return RuleSet(packs, allowlist, paths, digest_parts)


def _read_toml(file: Path) -> dict[str, Any]:
    """A rule file's data, parsed again only when its text changed: `tomllib` parses in
    Python, 8 ms for the shipped packs at every run's start, before its first document, while
    the other cores wait. Its JSON is kept (`_memo`: one version a file, by the SHA-256 of
    its text) and read back as a new object each time; a file whose data JSON cannot hold (a
    TOML date or time) is parsed every time."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RuleError(f"{file}: not UTF-8: {exc}") from None
    memo, where = _memo("rule-files"), str(file.resolve())
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()
    kept = memo.kept(where, version)
    if isinstance(kept, str):
        try:
            data = json.loads(kept)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{file}: not valid TOML: {exc}") from None
    try:
        memo.keep(where, version, json.dumps(data, ensure_ascii=False))
    except (TypeError, ValueError):  # (a date or time: not kept)
        pass
    return data


def _load_pack(file: Path, data: dict[str, Any], seen: dict[str, str]) -> Pack:
    unknown = set(data) - {"pack", "rule"}
    if unknown:
        raise RuleError(f"{file}: unknown top-level key(s) {', '.join(sorted(unknown))} (expected [pack] and [[rule]])")
    header = data.get("pack", {})
    if not isinstance(header, dict):
        raise RuleError(f"{file}: [pack] should be a table")
    bad = set(header) - PACK_KEYS
    if bad:
        raise RuleError(f"{file}: [pack]: unknown key(s) {', '.join(sorted(bad))}")
    name = str(header.get("name", file.stem))
    variants_default = header.get("variants", True)
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleError(f"{file}: no rules (add [[rule]] tables)")
    rules = []
    for number, raw in enumerate(raw_rules, start=1):
        rule = _load_rule(file, name, number, raw, variants_default)
        if rule.id in seen:
            raise RuleError(f"{file}: rule {rule.id}: duplicate id (first defined in {seen[rule.id]})")
        seen[rule.id] = str(file)
        rules.append(rule)
    return Pack(name=name, file=str(file), description=str(header.get("description", "")), rules=tuple(rules))


def _load_rule(file: Path, pack: str, number: int, raw: Any, variants_default: bool) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError(f"{file}: rule #{number}: should be a table")
    rid = raw.get("id")
    if not isinstance(rid, str) or not ID_RE.fullmatch(rid):
        raise RuleError(f"{file}: rule #{number}: missing or bad id {rid!r} (letters, digits, _ . : -)")

    def err(problem: str) -> RuleError:
        return RuleError(f"{file}: rule {rid}: {problem}")

    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise err(f"unknown key(s) {', '.join(sorted(unknown))}")
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        raise err("missing description")
    scope = raw.get("scope")
    if scope not in SCOPES:
        raise err(f"unknown scope {scope!r} (expected one of {', '.join(SCOPES)})")
    action = raw.get("action")
    if not isinstance(action, str) or not (
        action in ("drop", "flag") or (action.startswith("meta:") and FIELD_RE.fullmatch(action[5:]))
    ):
        raise err(f"unknown action {action!r} (expected drop, flag or meta:<field>)")
    has_pattern, has_literals = "pattern" in raw, "literals" in raw
    if has_pattern == has_literals:
        raise err("needs exactly one of pattern or literals")
    if has_pattern:
        source = raw["pattern"]
        if not isinstance(source, str) or not source:
            raise err("pattern should be a non-empty string")
    else:
        literals = raw["literals"]
        if not isinstance(literals, list) or not literals or not all(isinstance(x, str) and x for x in literals):
            raise err("literals should be a non-empty list of non-empty strings")
        source = "(?:" + "|".join(regex.escape(x) for x in literals) + ")"
    variants = raw.get("variants", variants_default)
    if not isinstance(variants, bool):
        raise err("variants should be true or false")
    expanded = _memo("rule-variants").get(source, expand_variants) if variants else source
    try:
        compiled = patterncache.compile(expanded, regex.MULTILINE)
    except regex.error as exc:
        raise err(f"bad regex: {exc}") from None
    if action.startswith("meta:") and compiled.groups == 0:
        raise err("a meta action needs a capture group (named 'value', or group 1)")
    max_len = raw.get("max_len")
    if max_len is not None and (not isinstance(max_len, int) or isinstance(max_len, bool) or max_len <= 0):
        raise err("max_len should be a positive integer")
    anchor = raw.get("anchor", True)
    if not isinstance(anchor, bool):
        raise err("anchor should be true or false")
    if "anchor" in raw and scope != "tail":
        raise err("anchor only applies to scope 'tail'")
    skip_lines_with = raw.get("skip_lines_with", [])
    if not isinstance(skip_lines_with, list) or not all(
        isinstance(x, str) and x and "\n" not in x for x in skip_lines_with
    ):
        raise err("skip_lines_with should be a list of non-empty strings (each within a line)")
    kind = raw.get("kind", "credit" if action.startswith("meta:") else "boilerplate")
    reason = raw.get("reason", description)
    if not isinstance(kind, str) or not isinstance(reason, str):
        raise err("kind and reason should be strings")
    must_match = _examples(raw.get("must_match"), err, "must_match")
    must_not_match = _examples(raw.get("must_not_match"), err, "must_not_match")
    branches = _compiled_branches(compiled) if scope == "inline" else None
    return Rule(
        id=rid,
        description=description.strip(),
        scope=scope,
        action=action,
        source=source,
        pattern=compiled,
        pack=pack,
        file=str(file),
        kind=kind,
        reason=reason.strip(),
        max_len=max_len,
        anchor=anchor,
        must_match=must_match,
        must_not_match=must_not_match,
        skip_lines_with=tuple(skip_lines_with),
        branches=branches,
        line_starts=tuple(map(starts_lines, branches or (compiled,))) if scope == "inline" else (),
    )


def _examples(raw: Any, err: Any, key: str) -> list[Example]:
    if raw is None or (isinstance(raw, list) and not raw):
        raise err(f"missing examples: {key} needs at least one")
    if not isinstance(raw, list):
        raise err(f"{key} should be a list")
    examples = []
    for item in raw:
        if isinstance(item, str) and item:
            examples.append(Example(item))
        elif isinstance(item, dict) and isinstance(item.get("text"), str) and not set(item) - EXAMPLE_KEYS:
            if key == "must_not_match" and len(item) > 1:
                raise err(f"{key} examples take only text")
            examples.append(Example(item["text"], item.get("value"), item.get("removes")))
        else:
            raise err(f"{key}: bad example {item!r} (a string, or {{text=..., value=..., removes=...}})")
    return examples


def _load_allowlist(file: Path, data: dict[str, Any], known: set[str]) -> list[AllowEntry]:
    unknown = set(data) - {"keep"}
    if unknown:
        raise RuleError(f"{file}: unknown top-level key(s) {', '.join(sorted(unknown))} (expected [[keep]])")
    entries = []
    raw_entries = data.get("keep", [])
    if not isinstance(raw_entries, list):
        raise RuleError(f"{file}: keep should be a list of [[keep]] tables")
    for number, raw in enumerate(raw_entries, start=1):
        if not isinstance(raw, dict) or set(raw) - {"text", "rule", "note"}:
            raise RuleError(f"{file}: entry #{number}: expected a table with text, rule, note")
        text = raw.get("text")
        if not isinstance(text, str) or not normalise_for_compare(text):
            raise RuleError(f"{file}: entry #{number}: text is missing or blank")
        rule = raw.get("rule")
        if rule is not None and (not isinstance(rule, str) or rule not in known):
            raise RuleError(f"{file}: entry #{number}: names unknown rule {rule!r}")
        note = raw.get("note", "")
        entries.append(AllowEntry(text, rule, str(note), str(file), normalise_for_compare(text)))
    return entries


# --------------------------------------------------------------------------- editing helpers
nonblank_lines = paragraph_spans  # (start, end) of every non-blank line, without its newline


def whole_line_spans(text: str, lines: list[tuple[int, int]], removed: set[int]) -> dict[int, tuple[int, int]]:
    """Span to cut for each removed line so that no blank-line run or dangling newline is left.

    A removed line takes the separator after it (up to the next non-blank line); a run of
    removed lines at the end of the text instead takes the separator before it.
    """
    spans: dict[int, tuple[int, int]] = {}
    n = len(lines)
    trailing_from = n
    while trailing_from > 0 and (trailing_from - 1) in removed:
        trailing_from -= 1
    for i in sorted(removed):
        start, end = lines[i]
        if i >= trailing_from:
            if i == trailing_from and i > 0:
                start = lines[i - 1][1]
            elif i > trailing_from:
                start = spans[i - 1][1]
            spans[i] = (start, end)
        else:
            spans[i] = (start, lines[i + 1][0])
    return spans


def review_command(text: str, rule: str | None = None) -> str:
    """The shell command a maintainer runs to keep `text` (for reports to print). Made for
    every removal a report lists (each worker's cache starts empty): `quote` is imported with
    the module, as an import statement per call took more than half of the call's time."""
    if rule:
        return f"curate review --keep {quote(text)} --rule {quote(rule)}"
    return f"curate review --keep {quote(text)}"


# --------------------------------------------------------------------------- triggers (pre-filter)
# Most rules are absent from most documents, yet a `regex` search over a whole document costs
# the same whether the rule is there or not (every position is tried). A rule's *triggers* are
# literal strings of which every match must contain at least one (derived from the compiled
# pattern, so they include its variants); one scan per document for all rules' triggers tells
# which rules cannot match there, and only the others are searched. Triggers are compared after
# folding each character to one representative of its variant group (网/網, ：/:), so a
# trigger is a necessary condition: skipping a rule whose triggers are absent never changes a
# result. A construct the analyser does not know makes the rule trigger-less (always searched).

MAX_TRIGGER_FORMS = 64  # spellings of one trigger (variant product) before it is shortened


class _NoTrigger(Exception):
    """A pattern construct the analyser does not handle: the rule gets no triggers."""


@cache
def _fold_table() -> dict[str, str]:
    """Character -> representative of its variant group (S/T variants, full/half-width twins,
    and the characters a case-insensitive pattern matches for an ASCII letter). Kept between
    runs (`_memo`)."""
    return _memo("rule-fold-table").get("", _built_fold_table)


def _built_fold_table(_: str) -> dict[str, str]:
    parent: dict[str, str] = {}

    def find(ch: str) -> str:
        while parent.get(ch, ch) != ch:
            ch = parent[ch]
        return ch

    pairs = [(k, v) for k, vs in _han_variants().items() for v in vs] + list(PUNCT_TWINS.items())
    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    table = {ch: find(ch) for ch in parent}
    # Letters stand for themselves in lower case (no variant or twin above is a letter).
    table.update({c.upper(): c for c in string.ascii_lowercase})
    table.update(CASE_TWINS)
    return table


def fold(text: str) -> str:
    table = _fold_table()
    return "".join(table.get(c, c) for c in text)


def _group_members() -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for ch, rep in _fold_table().items():
        members.setdefault(rep, []).append(ch)
    for rep, chars in members.items():
        if rep not in chars:
            chars.append(rep)
        chars.sort()
    return members


_QUANT = regex.compile(r"\{(\d*)(?:,(\d*))?\}")
_ZERO_WIDTH_ESCAPES = set("bBAZzGKmM")
_CLASS_ESCAPES = set("dDsSwWpPXhHvVRN")
_LITERAL_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "a": "\a", "e": "\x1b"}

# Parse tree nodes: ("lit", ch | None), ("zero",), ("alt", [seq, ...]), ("seq", [(node, min)]),
# ("call", name). A sequence holds (node, minimum count, occurs exactly once).


class _TriggerParser:
    """A parse of a rule's pattern for what its matches must contain (`pattern_requirements`),
    which also notes where its own alternatives are cut (`pattern_branches`)."""

    def __init__(self, pattern: str, flags: int) -> None:
        self.p = pattern
        self.i = 0
        self.verbose = bool(flags & regex.VERBOSE)
        self.icase = bool(flags & regex.IGNORECASE)
        # Case-insensitive matching by simple case folding (full folding matches ß for "ss",
        # a locale its own way: then no cased letter is a literal).
        self.simple_case = not flags & (regex.FULLCASE | regex.VERSION1 | regex.LOCALE)
        self.groups: dict[str, Any] = {}
        self.depth = 0  # of the alternation being parsed (1: the pattern's own)
        self.bars: list[int] = []  # offsets of the pattern's own `|` (its top-level branches)
        # What ties the top-level branches together (a backreference, a call, a condition,
        # global flags, \G, \K): then they cannot be searched one by one (`pattern_branches`).
        self.tied = False

    def parse(self) -> Any:
        node = self.alt()
        if self.i != len(self.p):
            raise _NoTrigger("unbalanced ')'")
        return node

    def alt(self) -> Any:
        self.depth += 1
        branches = [self.seq()]
        while self.i < len(self.p) and self.p[self.i] == "|":
            if self.depth == 1:
                self.bars.append(self.i)
            self.i += 1
            branches.append(self.seq())
        self.depth -= 1
        return ("alt", branches)

    def seq(self) -> Any:
        items: list[tuple[Any, int, bool]] = []
        p = self.p
        while self.i < len(p) and p[self.i] not in "|)":
            ch = p[self.i]
            if self.verbose and ch in " \t\n\r\f\v":
                self.i += 1
                continue
            if self.verbose and ch == "#":
                end = p.find("\n", self.i)
                self.i = len(p) if end == -1 else end + 1
                continue
            atom = self.atom()
            if atom is None:
                continue
            items.append((atom, *self.quantifier()))
        return ("seq", items)

    def quantifier(self) -> tuple[int, bool]:
        """(minimum count, whether the atom occurs exactly once) of the quantifier that follows."""
        p = self.p
        while self.verbose and self.i < len(p) and p[self.i] in " \t\n\r\f\v":
            self.i += 1
        if self.i >= len(p) or p[self.i] not in "*+?{":
            return 1, True
        ch = p[self.i]
        once = False
        if ch == "{":
            m = _QUANT.match(p, self.i)
            if m is None or (m.group(1) == "" and m.group(2) is None):
                raise _NoTrigger("'{' that is not a quantifier")
            self.i = m.end()
            low = int(m.group(1) or 0)
            high = m.group(1) if m.group(2) is None else m.group(2)
            once = low == 1 and high == "1"
        else:
            self.i += 1
            low = 1 if ch == "+" else 0
        if self.i < len(p) and p[self.i] in "?+":
            self.i += 1
        if self.i < len(p) and p[self.i] in "*+?{":
            raise _NoTrigger("stacked quantifiers")
        return low, once

    def literal(self, ch: str) -> Any:
        if self.icase and (ch.lower() != ch or ch.upper() != ch or ch.casefold() != ch):
            # An ASCII letter folds together with every character it matches without case.
            if not (self.simple_case and ch in string.ascii_letters):
                return ("lit", None)
        return ("lit", _fold_table().get(ch, ch))

    def atom(self) -> Any:
        p = self.p
        ch = p[self.i]
        if ch == "(":
            return self.group()
        if ch == "[":
            return self.char_class()
        if ch == "\\":
            return self.escape()
        self.i += 1
        if ch == ".":
            return ("lit", None)
        if ch in "^$":
            return ("zero",)
        if ch in "*+?{":
            raise _NoTrigger("quantifier without an atom")
        return self.literal(ch)

    def escape(self) -> Any:
        p = self.p
        if self.i + 1 >= len(p):
            raise _NoTrigger("trailing backslash")
        nxt = p[self.i + 1]
        end = _escape_end(p, self.i)
        self.i = end
        if nxt in "GKg" or nxt.isdigit():
            self.tied = True  # (\G and \K: where the search started; the others refer to groups)
        if nxt in _ZERO_WIDTH_ESCAPES:
            return ("zero",)
        if nxt in _CLASS_ESCAPES or nxt in "xuUg" or nxt.isdigit():
            return ("lit", None)  # a class, a code, or a backreference: some character(s)
        if nxt in _LITERAL_ESCAPES:
            return self.literal(_LITERAL_ESCAPES[nxt])
        if nxt.isalnum():
            raise _NoTrigger(f"unknown escape \\{nxt}")
        return self.literal(nxt)

    def char_class(self) -> Any:
        p = self.p
        j = self.i + 1
        negated = j < len(p) and p[j] == "^"
        if negated:
            j += 1
        members: list[str] = []
        simple = not negated
        first = True
        while j < len(p) and (p[j] != "]" or first):
            first = False
            c = p[j]
            if c == "\\":
                if j + 1 >= len(p):
                    raise _NoTrigger("unterminated class")
                nxt = p[j + 1]
                k = _escape_end(p, j)
                if nxt.isalnum():
                    simple = False  # \d, \p{..}, \n, \x..: not a plain member
                else:
                    members.append(nxt)
                j = k
                continue
            if c == "[":
                raise _NoTrigger("nested class")
            if p[j + 1 : j + 2] == "-" and p[j + 2 : j + 3] not in ("", "]"):
                simple = False
                j += 3
                continue
            members.append(c)
            j += 1
        if j >= len(p):
            raise _NoTrigger("unterminated class")
        self.i = j + 1
        if not simple or not members:
            return ("lit", None)
        folded = {self.literal(c)[1] for c in members}
        if len(folded) != 1:
            return ("lit", None)
        return ("lit", folded.pop())

    def group(self) -> Any:
        p = self.p
        self.i += 1
        name = None
        kind = "group"
        if p.startswith("?", self.i):
            rest = p[self.i + 1 :]
            if rest.startswith(":") or rest.startswith(">") or rest.startswith("|"):
                if rest.startswith("|"):
                    raise _NoTrigger("branch reset")
                self.i += 2
            elif rest[:1] in ("=", "!") or rest.startswith("<=") or rest.startswith("<!"):
                self.i += 2 if rest[:1] in ("=", "!") else 3
                kind = "zero"
            elif rest.startswith("P<") or (rest.startswith("<") and rest[1:2] not in ("=", "!")):
                start = self.i + (3 if rest.startswith("P<") else 2)
                close = p.find(">", start)
                if close == -1:
                    raise _NoTrigger("bad group name")
                name = p[start:close]
                self.i = close + 1
            elif rest.startswith("&") or rest.startswith("P>"):
                start = self.i + (2 if rest.startswith("&") else 3)
                close = p.find(")", start)
                if close == -1:
                    raise _NoTrigger("bad call")
                self.tied = True
                self.i = close + 1
                return ("call", p[start:close])
            elif rest.startswith("("):
                close = p.find(")", self.i + 2)
                if close == -1:
                    raise _NoTrigger("bad condition")
                condition = p[self.i + 2 : close]
                self.i = close + 1
                self.tied = True
                self.alt()  # parsed for the named groups it defines (DEFINE) and to skip it
                self._close()
                # (?(DEFINE)...) matches nothing; a conditional may match either branch.
                return ("zero",) if condition == "DEFINE" else ("lit", None)
            elif rest.startswith("#"):
                close = p.find(")", self.i)
                if close == -1:
                    raise _NoTrigger("unterminated comment")
                self.i = close + 1
                return None
            else:
                m = regex.match(r"([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])", rest)
                if m is None:
                    raise _NoTrigger("unknown group construct")
                on, off = m.group(1), m.group(2) or ""
                if set(on + off) - set("imsxaLuVwfr01"):
                    raise _NoTrigger("unknown flag")
                self.i += 1 + m.end()
                if "f" in on or "L" in on:
                    self.simple_case = False  # for the whole pattern, to be safe
                if m.group(3) == ")":  # global flags
                    self.tied = True
                    if off:
                        raise _NoTrigger("flags turned off globally")
                    self.verbose |= "x" in on
                    self.icase |= "i" in on
                    return None
                saved = (self.verbose, self.icase)
                self.verbose = (self.verbose or "x" in on) and "x" not in off
                self.icase = (self.icase or "i" in on) and "i" not in off
                node = self.alt()
                self._close()
                self.verbose, self.icase = saved
                return node
        node = self.alt()
        self._close()
        if name is not None:
            self.groups[name] = node
        return ("zero",) if kind == "zero" else node

    def _close(self) -> None:
        if self.i >= len(self.p) or self.p[self.i] != ")":
            raise _NoTrigger("missing ')'")
        self.i += 1


def _better(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether trigger set `a` filters better than `b` (longer shortest string, then fewer)."""
    key_a = (min(map(len, a)), -len(a), sorted(a))
    key_b = (min(map(len, b)), -len(b), sorted(b))
    return key_a > key_b


def _requirement(node: Any, groups: dict[str, Any], calling: frozenset[str]) -> frozenset[str] | None:
    """Strings of which every match of `node` contains one (None: no such set is known)."""
    kind = node[0]
    if kind == "lit":
        return None if node[1] is None else frozenset([node[1]])
    if kind == "zero":
        return None
    if kind == "call":
        name = node[1]
        if name in calling or name not in groups:
            return None
        return _requirement(groups[name], groups, calling | {name})
    if kind == "alt":
        union: set[str] = set()
        for branch in node[1]:
            req = _requirement(branch, groups, calling)
            if req is None:
                return None
            union |= req
        return frozenset(union)
    # seq: the best of its runs of literal parts and its mandatory parts.
    best: frozenset[str] | None = None
    for candidate in _seq_candidates(node, groups, calling, _requirement):
        if candidate and (best is None or _better(candidate, best)):
            best = candidate
    return best


# The most strings a run of literal parts may stand for (`(?:上|下)一(?:篇|页)` is 4) before
# it is cut in two.
MAX_RUN_STRINGS = 16


def _literal_strings(node: Any, groups: dict[str, Any], calling: frozenset[str]) -> frozenset[str] | None:
    """The strings `node` can match, when it can match only a few literal strings (else None):
    a character, a group of them, an alternation of such groups."""
    kind = node[0]
    if kind == "lit":
        return None if node[1] is None else frozenset([node[1]])
    if kind == "call":
        name = node[1]
        if name in calling or name not in groups:
            return None
        return _literal_strings(groups[name], groups, calling | {name})
    if kind == "alt":
        union: set[str] = set()
        for branch in node[1]:
            strings = _literal_strings(branch, groups, calling)
            if strings is None:
                return None
            union |= strings
            if len(union) > MAX_RUN_STRINGS:
                return None
        return frozenset(union)
    if kind == "seq":
        joined = {""}
        for child, _, once in node[1]:
            strings = _literal_strings(child, groups, calling) if once else None
            if strings is None:
                return None
            joined = {a + b for a in joined for b in strings}
            if len(joined) > MAX_RUN_STRINGS:
                return None
        return frozenset(joined)
    return None


def _seq_candidates(node: Any, groups: dict[str, Any], calling: frozenset[str], inner: Any) -> list[Any]:
    """What a sequence offers as requirements: each run of consecutive parts that match literal
    strings exactly once (as the set of strings the run can match: `(?:上|下)一` gives 上一 and
    下一), and `inner(part)` of each other part that must occur."""
    found: list[Any] = []
    run = {""}

    def close() -> None:
        if "" not in run:  # a run that may match nothing requires nothing
            found.append(frozenset(run))

    for child, low, once in node[1]:
        strings = _literal_strings(child, groups, calling) if once else None
        if strings is not None:
            if len(run) * len(strings) > MAX_RUN_STRINGS:
                close()
                run = set(strings)
            else:
                run = {a + b for a in run for b in strings}
            continue
        close()
        run = {""}
        if low >= 1:
            found.append(inner(child, groups, calling))
    close()
    return found


def _requirements(node: Any, groups: dict[str, Any], calling: frozenset[str]) -> list[frozenset[str]]:
    """Every set of strings found of which each match of `node` contains one (best first).

    `_requirement` keeps the best set only; the others let a caller check more than one
    condition (a line must hold one string of *each* set).
    """
    kind = node[0]
    if kind == "lit":
        return [] if node[1] is None else [frozenset([node[1]])]
    if kind == "zero":
        return []
    if kind == "call":
        name = node[1]
        if name in calling or name not in groups:
            return []
        return _requirements(groups[name], groups, calling | {name})
    if kind == "alt":
        # One set of each branch, united, is a set for the alternation: every such choice
        # among each branch's best few when they are not too many (so that a string all
        # branches require, like 摄 in `记者(\p{Han}+)摄|（记者(\p{Han}+)摄影）`, is found),
        # else the best of each, the second best of each (or its last), and so on.
        per_branch = [_requirements(branch, groups, calling)[:MAX_BRANCH_SETS] for branch in node[1]]
        if not per_branch or not all(per_branch):
            return []
        if math.prod(map(len, per_branch)) <= MAX_BRANCH_CHOICES:
            choices = itertools.product(*per_branch)
        else:
            choices = (tuple(b[min(k, len(b) - 1)] for b in per_branch) for k in range(max(map(len, per_branch))))
        return _ranked([frozenset().union(*choice) for choice in choices])
    found: list[frozenset[str]] = []
    for candidate in _seq_candidates(node, groups, calling, _requirements):
        if isinstance(candidate, frozenset):
            found.append(candidate)
        else:
            found.extend(candidate)
    return _ranked(found)


# How many of each branch's sets `_requirements` combines, and how many combinations at most.
MAX_BRANCH_SETS = 4
MAX_BRANCH_CHOICES = 256


def _ranked(sets: list[frozenset[str]]) -> list[frozenset[str]]:
    """Distinct non-empty sets (each without strings that hold another of it), the best filter
    (as `_better` orders them) first."""
    minimal = dict.fromkeys(frozenset(_minimal(s)) for s in sets if s)
    return sorted(minimal, key=lambda s: (min(map(len, s)), -len(s), sorted(s)), reverse=True)


def _implied(needed: frozenset[str], by: frozenset[str]) -> bool:
    """Every string of `by` contains one of `needed`: holding `by` already proves `needed`."""
    return all(any(n in b for n in needed) for b in by)


def _minimal(strings: frozenset[str]) -> tuple[str, ...]:
    """The strings no other one of the set is part of (holding a longer one holds the shorter)."""
    return tuple(sorted(s for s in strings if not any(o != s and o in s for o in strings)))


def _parse_triggers(compiled: Any) -> tuple[Any, dict[str, Any]] | None:
    parser = _TriggerParser(compiled.pattern, compiled.flags)
    try:
        return parser.parse(), parser.groups
    except _NoTrigger:
        return None


def pattern_branches(compiled: Any) -> tuple[str, ...] | None:
    """The top-level alternatives of `compiled`'s pattern, when each can be searched on its own
    (`matches_apart`); None when there is one only, when the pattern is not one the parser
    knows, or when something ties them together (a backreference or call, a condition, global
    flags, \\G or \\K; a named backreference, `(?P=name)`, the parser refuses outright)."""
    if "|" not in compiled.pattern or compiled.flags & (regex.POSIX | regex.REVERSE):
        return None
    parser = _TriggerParser(compiled.pattern, compiled.flags)
    try:
        parser.parse()
    except _NoTrigger:
        return None
    if parser.tied or not parser.bars:
        return None
    cuts = [-1, *parser.bars, len(compiled.pattern)]
    return tuple(compiled.pattern[a + 1 : b] for a, b in itertools.pairwise(cuts))


def _compiled_branches(compiled: Any) -> tuple[Any, ...] | None:
    """`pattern_branches(compiled)` compiled, if searching them one by one gives the very
    matches `Rule.value` reads (the branches' own groups numbered anew: with groups, a `value`
    group in every branch)."""
    if "|" not in compiled.pattern:
        return None
    # (the parse is kept between runs: parsing every inline rule again cost ~20 ms of each start)
    key = f"{compiled.flags}\n{compiled.pattern}"
    branches = _memo("rule-branches").get(key, lambda _: pattern_branches(compiled))
    if branches is None:
        return None
    parts = tuple(patterncache.compile(branch, compiled.flags) for branch in branches)
    if compiled.groups and not all("value" in part.groupindex for part in parts):
        return None
    return parts


def matches_apart(
    pattern: Any,
    branches: tuple[Any, ...],
    line: str,
    timeout: float | None = None,
    line_starts: tuple[bool, ...] = (),
) -> list[Any]:
    """The non-empty matches of `pattern.finditer(line)`, found by searching each of its
    top-level alternatives (`branches`) on its own.

    Why: `regex` tries every alternative at every position of the line, where a pattern of one
    alternative skips ahead to where it may start (`credit.photo.reporter` took 44 ms on the
    benchmark, 16 ms searched apart). The same matches: at the first position where one
    matches, the pattern's match is that of its first alternative that matches there, which is
    what that alternative's own search finds; the search goes on from the match's end, as
    `finditer` does. An alternative's match found earlier still stands when it starts at or
    after that end. An empty match (whose next search `finditer` starts a character later) has
    the line searched by the pattern itself. The searches of one line share `timeout`, as
    `finditer`'s steps do. `line_starts`: for each branch, whether it `starts_lines` (in a
    line without "\\n", matched at 0 and not searched).
    """
    deadline = deadline_of(timeout)
    ahead: list[Any] = [None] * len(branches)  # each alternative's next match; False: none left
    found = []
    pos = 0
    one_line = "\n" not in line
    while True:
        first = None
        for i, branch in enumerate(branches):
            m = ahead[i]
            if m is False:
                continue
            if m is None or m.start() < pos:
                if one_line and i < len(line_starts) and line_starts[i]:
                    m = branch.match(line, timeout=time_left(deadline)) if pos == 0 else None
                else:
                    m = branch.search(line, pos, timeout=time_left(deadline))
                m = ahead[i] = m or False
                if m is False:
                    continue
            if first is None or m.start() < first.start():
                first = m
        if first is None:
            return found
        if first.end() == first.start():
            return [m for m in pattern.finditer(line, timeout=time_left(deadline)) if m.end() > m.start()]
        found.append(first)
        pos = first.end()


def starts_lines(compiled: Any) -> bool:
    """Whether every match of `compiled` starts where a line does: its pattern opens with `^`
    (not repeated) and has one alternative of its own. In a line without "\\n" that is at 0 or
    nowhere, where `regex` searching it tries the `^` at every position (the first alternative
    of `credit.photo.reporter`: 11.6 ms over the benchmark's lines searched, 0.5 ms matched at
    0, by hand). Not with the flags that move or add line boundaries (`WORD`: other line
    separators too; `REVERSE`), nor `VERBOSE` (a quantifier may follow after a space)."""
    source = compiled.pattern
    if not source.startswith("^") or source[1:2] in ("*", "+", "?", "{"):
        return False
    if compiled.flags & (regex.WORD | regex.REVERSE | regex.VERBOSE):
        return False
    # (parsed even without a bar: a comment or flags may stand between `^` and a quantifier)
    parser = _TriggerParser(source, compiled.flags)
    try:
        parser.parse()
    except _NoTrigger:
        return False
    return not parser.bars


def deadline_of(timeout: float | None) -> float | None:
    """The CPU time (`time.process_time`) by which searches sharing `timeout` must end (None:
    no limit; `regex` counts a timeout in the process's CPU time, and takes a negative one as
    none)."""
    return None if timeout is None or timeout < 0 else time.process_time() + timeout


def time_left(deadline: float | None) -> float | None:
    """The CPU time left before `deadline` (`deadline_of`; None: no limit), for one of the
    searches that share a timeout: those of `matches_apart` share the one `finditer` would
    have had (the pattern's own, after an empty match, gets what is left: near the limit a
    line may time out where `finditer` alone would just have ended). Raises `TimeoutError` (as
    `regex` does) once none is left."""
    if deadline is None:
        return None
    left = deadline - time.process_time()
    if left <= 0:
        raise TimeoutError("regex timed out")
    return left


class SearchWatch:
    """A time limit on `regex` searches kept by a CPU-time timer instead of `regex`'s timeout.

    Why: given a timeout, `regex` reads the process's CPU clock as a search starts and every
    256 steps of it, and that clock is a system call (`clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`,
    0.9 us here, more on a busy host; so is `time.process_time`, which `deadline_of` reads): a
    1-worker benchmark run made 37,123 of them (`strace -c`), nearly all in the boilerplate
    stage's searches. Here a timer of the same CPU time (`setitimer(ITIMER_PROF)`) ticks
    `TICKS` times a limit, and a search is stopped (`TimeoutError`, raised where `regex` checks
    for signals every 256 steps, as it does for Ctrl-C) once `TICKS` ticks in a row have found it
    running: after between 1 and 1 + 1/`TICKS` times the limit. A few system calls a batch of
    documents, not two or more a search.

    A search is watched between `enter` and `leave` (a counter and a flag: no clock read). Armed
    only by `watched_searches`.
    """

    TICKS = 10

    def __init__(self) -> None:
        self.started = 0  # searches entered so far: which one a tick finds running
        self.inside = False
        self._seen = -1
        self._ticks = 0

    def enter(self) -> None:
        self.started += 1
        self.inside = True

    def leave(self) -> None:
        """(`_Present._searched` stores `inside` itself: a tick handled as this call starts
        would raise out of its `finally`.)"""
        self.inside = False

    def tick(self, signum: int = 0, frame: Any = None) -> None:
        """The timer's signal handler (run by Python in the main thread, between two of a
        search's steps or of the interpreter's)."""
        if not self.inside or self.started != self._seen:
            self._seen, self._ticks = self.started, 0
            return
        self._ticks += 1
        if self._ticks >= self.TICKS:
            self._seen = -1  # stopped once: a tick while its stop is handled starts a new count
            raise TimeoutError("regex timed out")


_WATCH = SearchWatch()
_WATCHING = False


@contextmanager
def watched_searches(timeout: float | None) -> Iterator[SearchWatch | None]:
    """The process's `SearchWatch`, its timer armed for `timeout` seconds of CPU time a search
    (disarmed at the end); None where it cannot be, and the searches are then given `timeout`
    themselves: no limit (None, negative), not the main thread (the only one Python runs signal
    handlers in), no `setitimer` (not POSIX), another handler of `SIGPROF` (a profiler's) or a
    watch already armed.

    The handler stays installed once installed: a tick delivered just before the timer is
    disarmed then finds nothing to stop (reset to the default, Python would print that it
    ignored the signal). Other threads' system calls are restarted, not interrupted, by a tick.
    """
    global _WATCHING
    if (
        timeout is None
        or timeout <= 0
        or _WATCHING
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield None
        return
    handler = signal.getsignal(signal.SIGPROF)
    if handler != _WATCH.tick:
        if handler != signal.SIG_DFL:  # (None: a handler installed by C code)
            yield None
            return
        signal.signal(signal.SIGPROF, _WATCH.tick)
        signal.siginterrupt(signal.SIGPROF, False)
    interval = timeout / SearchWatch.TICKS
    _WATCHING = True
    _WATCH.inside = False
    signal.setitimer(signal.ITIMER_PROF, interval, interval)
    try:
        yield _WATCH
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        _WATCH.inside = False
        _WATCHING = False


def pattern_triggers(compiled: Any) -> frozenset[str] | None:
    """Folded literal strings of which every match of `compiled` contains one, or None."""
    return pattern_requirements(compiled)[0]


# Conditions a line must meet besides holding a trigger, per rule (each is a check per line).
MAX_EXTRA_REQUIREMENTS = 2


def pattern_extra_requirements(compiled: Any) -> tuple[tuple[str, ...], ...]:
    r"""Further sets of folded strings every match of `compiled` contains one of, beyond its
    triggers (`pattern_triggers`): a match of `记者(\p{Han}{2,3})摄` holds 记者 *and* 摄. Sets
    the triggers already imply (or an earlier set does) are left out."""
    return pattern_requirements(compiled)[1]


def pattern_requirements(
    compiled: Any,
) -> tuple[frozenset[str] | None, tuple[tuple[str, ...], ...]]:
    """(`pattern_triggers`, `pattern_extra_requirements`) of `compiled`, from one parse of it
    (parsing the rules' patterns is most of the trigger index's start-up)."""
    parsed = _parse_triggers(compiled)
    if parsed is None:
        return None, ()
    primary = _requirement(parsed[0], parsed[1], frozenset())
    if primary is None:
        return None, ()
    triggers = frozenset(_minimal(primary))
    if not primary:
        return triggers, ()
    chosen: list[frozenset[str]] = [primary]
    for candidate in _requirements(parsed[0], parsed[1], frozenset()):
        if len(chosen) > MAX_EXTRA_REQUIREMENTS:
            break
        if not any(_implied(candidate, earlier) for earlier in chosen):
            chosen.append(candidate)
    return triggers, tuple(_minimal(extra) for extra in chosen[1:])


def _remembered_requirements(compiled: Any) -> tuple[frozenset[str] | None, tuple[tuple[str, ...], ...]]:
    """`pattern_requirements(compiled)`, kept between runs (parsing the patterns was ~25 ms of
    every run's start-up)."""

    def compute(argument: str) -> Any:
        triggers, extra = pattern_requirements(compiled)
        return [None if triggers is None else sorted(triggers), [list(strings) for strings in extra]]

    triggers, extra = _memo("rule-requirements").get(f"{compiled.flags}\n{compiled.pattern}", compute)
    return (None if triggers is None else frozenset(triggers)), tuple(tuple(strings) for strings in extra)


@cache
def _fold_codes() -> Any:
    """numpy code point -> code point of its representative (`fold`, for whole texts at once)."""
    import numpy as np

    table = np.arange(0x110000, dtype=np.uint32)
    for char, representative in _fold_table().items():
        table[ord(char)] = ord(representative)
    return table


class TriggerIndex:
    """One scan per text for the triggers of many rules: which rules may match it, and where.

    `maybe(text)` returns the ids of the rules that can match somewhere in `text`: rules without
    triggers, and rules one of whose triggers occurs in `text` (after folding variants).
    `locate(text, lines)` does the same scan and also says in which lines each rule may match
    (see `TriggerHits`), so a caller need not test each (rule, line) pair with `may_match`.

    The scan works on the text folded (`fold`: each character replaced by the representative of
    its variant group, one for one, by a numpy table), where a trigger occurs exactly where one of
    its spellings occurs in the text: the places where some trigger may start are the pairs of
    folded characters that start one (found with numpy tables), and only there are triggers
    compared.
    """

    def __init__(self, rules: list[Rule]) -> None:
        self.always: list[str] = []
        self.triggers: dict[str, frozenset[str] | None] = {}
        # Rule id -> further sets of folded strings a line must hold one of each (`may_match`).
        self.extra: dict[str, tuple[tuple[str, ...], ...]] = {}
        by_trigger: dict[str, list[str]] = {}
        for rule in rules:
            triggers, extra = _remembered_requirements(rule.pattern)
            self.triggers[rule.id] = triggers
            if not triggers:
                self.always.append(rule.id)
                continue
            if extra:
                self.extra[rule.id] = extra
            for trigger in sorted(triggers):
                by_trigger.setdefault(trigger, []).append(rule.id)
        members = _group_members()
        # A trigger with too many spellings is cut to a shorter prefix (a prefix of a required
        # string is required too).
        keyed: dict[str, list[str]] = {}
        for trigger, ids in by_trigger.items():
            merged = keyed.setdefault(_shorten(trigger, members), [])
            merged.extend(i for i in ids if i not in merged)
        self.by_trigger = keyed
        # Rule id -> every spelling of its (shortened) triggers: a line none of them occurs in
        # cannot contain a match of the rule (see `may_match`).
        forms: dict[str, set[str]] = {}
        # Rule id -> its (shortened) triggers (`TriggerHits.lines` unites their lines).
        rule_triggers: dict[str, list[str]] = {}
        for trigger, ids in keyed.items():
            spelt = members.get(trigger, [trigger]) if len(trigger) == 1 else _spellings(trigger, members)
            for rule_id in ids:
                forms.setdefault(rule_id, set()).update(spelt)
                rule_triggers.setdefault(rule_id, []).append(trigger)
        self.forms: dict[str, tuple[str, ...]] = {k: tuple(sorted(v)) for k, v in forms.items()}
        self.rule_triggers: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in rule_triggers.items()}
        self.single: tuple[str, ...] = tuple(t for t in keyed if len(t) == 1)  # one-character triggers
        # First two characters of a longer trigger -> the triggers starting with them.
        self.starts: dict[str, list[str]] = {}
        for trigger in keyed:
            if len(trigger) > 1:
                self.starts.setdefault(trigger[:2], []).append(trigger)
        self._pair_tables: Any = None
        _memo("rule-requirements").save()
        _memo("rule-fold-table").save()

    def _pairs(self) -> tuple[Any, ...]:
        """numpy tables that find the starts: code point -> row (first character of a start, as
        the row's offset in `slots`) and column (second character); `slots[row + column]` is
        the pair's slot, -1 where no trigger starts with that pair. Characters in no start get
        the last, empty row or column. Slot s holds the triggers triggers[bounds[s]:bounds[s +
        1]] (`starts`' lists one after the other), trigger t the code points
        codes[code_bounds[t]:code_bounds[t + 1]]. Built on first use."""
        if self._pair_tables is None:
            import numpy as np

            firsts = sorted({start[0] for start in self.starts})
            seconds = sorted({start[1] for start in self.starts})
            width = len(seconds) + 1
            rows = np.full(0x110000, len(firsts) * width, dtype=np.int32)
            rows[[ord(c) for c in firsts]] = np.arange(len(firsts), dtype=np.int32) * width
            columns = np.full(0x110000, len(seconds), dtype=np.int32)
            columns[[ord(c) for c in seconds]] = np.arange(len(seconds), dtype=np.int32)
            slots = np.full((len(firsts) + 1) * width, -1, dtype=np.int32)
            triggers = tuple(t for pair_triggers in self.starts.values() for t in pair_triggers)
            bounds = [0]
            for slot, (start, pair_triggers) in enumerate(self.starts.items()):
                slots[rows[ord(start[0])] + columns[ord(start[1])]] = slot
                bounds.append(bounds[-1] + len(pair_triggers))
            code_bounds = np.cumsum([0, *map(len, triggers)], dtype=np.int64)
            codes = np.array([ord(c) for t in triggers for c in t], dtype=np.uint32)
            self._pair_tables = (
                rows, columns, slots, np.array(bounds, np.int32), codes, code_bounds, triggers,
            )  # fmt: skip
        return self._pair_tables

    def may_match(self, rule_id: str, line: str) -> bool:
        """False when no trigger of the rule occurs in `line`, or no string of one of its extra
        requirements does (no match of it can lie there)."""
        forms = self.forms.get(rule_id)
        if forms is None:
            return True
        if not any(form in line for form in forms):
            return False
        extra = self.extra.get(rule_id)
        if extra:
            folded = fold(line)
            return all(any(s in folded for s in strings) for strings in extra)
        return True

    def maybe(self, text: str) -> set[str]:
        """Ids of the rules that may match somewhere in `text`."""
        return self.locate(text).rules

    def locate(self, text: str, lines: list[tuple[int, int]] | None = None) -> TriggerHits:
        """Where the triggers occur in `text`; `lines` are its `nonblank_lines` (found if None)."""
        return self.locate_many([text], [lines])[0]

    def locate_many(
        self, texts: list[str], lines: list[list[tuple[int, int]] | None]
    ) -> list[TriggerHits]:
        """`locate` of each text (with its `lines`), in one numpy pass over all of them: on
        texts of a few hundred characters numpy's cost per call, not per character, dominates.

        The texts are scanned joined by a character no trigger holds (U+FFFF), so no trigger
        is found across two of them.
        """
        if not texts:
            return []
        if len(texts) > 1 and any(_JOINER in t for t in self.by_trigger):
            return [self.locate_many([t], [ls])[0] for t, ls in zip(texts, lines, strict=True)]
        folded, codes = mapped_text(_JOINER.join(texts), _fold_codes(), with_codes=True)
        # Each text's start in the joined text, and the starts of longer triggers in it.
        offsets = [0]
        for text in texts:
            offsets.append(offsets[-1] + len(text) + 1)
        positions = (
            _trigger_positions(self, folded, codes, offsets)
            if self.starts
            else [{} for _ in texts]
        )
        hits = []
        by_trigger = self.by_trigger
        for k, text in enumerate(texts):
            own = folded[offsets[k] : offsets[k] + len(text)] if len(texts) > 1 else folded
            singles = [trigger for trigger in self.single if trigger in own]
            rules = set(self.always)
            for trigger in singles:
                rules.update(by_trigger[trigger])
            for trigger in positions[k]:
                rules.update(by_trigger[trigger])
            hits.append(TriggerHits(self, text, own, lines[k], rules, singles, positions[k]))
        return hits


def _trigger_positions(
    index: TriggerIndex, folded: str, codes: Any, offsets: list[int]
) -> list[dict[str, list[int]]]:
    """Where each trigger of two characters or more (`TriggerIndex.starts`) starts in each of
    the texts `folded` joins (text k from offsets[k]; `codes`: its code points), as {trigger:
    [starts in the text]}: one compiled pass where the extension is built, else numpy finds
    the pairs that may start one and Python compares the triggers there (the specification).
    """
    import numpy as np

    rows, columns, slots, bounds, trigger_codes, code_bounds, triggers = index._pairs()
    compiled = _compiled_trigger_positions()
    if compiled is not None and codes.dtype == np.uint32 and codes.flags.c_contiguous:
        return compiled(
            codes, rows, columns, slots, bounds, trigger_codes, code_bounds, triggers,
            np.array(offsets, dtype=np.int64),
        )  # fmt: skip
    positions: list[dict[str, list[int]]] = [{} for _ in offsets[1:]]
    if len(codes) < 2:
        return positions
    starts = index.starts
    k = 0  # the text the places are in
    for p in np.flatnonzero(slots[rows[codes[:-1]] + columns[codes[1:]]] >= 0).tolist():
        while p >= offsets[k + 1]:
            k += 1
        for trigger in starts[folded[p : p + 2]]:
            if folded.startswith(trigger, p):
                found = positions[k].get(trigger)
                if found is None:
                    positions[k][trigger] = [p - offsets[k]]
                else:
                    found.append(p - offsets[k])
    return positions


@cache
def _compiled_trigger_positions() -> Any:
    """`_kernels.trigger_positions`, or None where the extension was not built (it is optional
    at install). Imported when first asked for: it imports numpy, which `curate.rules` leaves
    until a scan needs it."""
    try:
        from curate._kernels import trigger_positions
    except ImportError:
        return None
    return trigger_positions


# Joins the texts `TriggerIndex.locate_many` scans together (a noncharacter; a trigger holding
# it would make the index scan the texts one by one).
_JOINER = "\uffff"


_UNSET: Any = object()
_NO_LINES: frozenset[int] = frozenset()  # (`TriggerHits.lines` of a rule none of whose triggers occurs)


class TriggerHits:
    """The triggers found in one text (`TriggerIndex.locate`), by line.

    `rules` is `TriggerIndex.maybe(text)`. `lines(rule_id)` is the set of indices (into the
    text's `nonblank_lines`) of the lines that contain a spelling of one of the rule's triggers
    and a string of each of its extra requirements, i.e. exactly the lines for which
    `may_match(rule_id, line)` is true; None for a rule without triggers (it may match in any
    line). A spelling counts for a line only if it lies wholly inside it, so a trigger that spans
    a line break (or holds a newline) counts for no line.
    """

    # (one made per document the boilerplate stage reads, and read for every rule it tries)
    __slots__ = (
        "index", "text", "folded", "rules", "_spans", "_singles", "_positions", "_starts", "_ends",
        "_by_string", "_by_rule",
    )  # fmt: skip

    def __init__(
        self,
        index: TriggerIndex,
        text: str,
        folded: str,
        lines: list[tuple[int, int]] | None,
        rules: set[str],
        singles: list[str],
        positions: dict[str, list[int]],
    ) -> None:
        self.index = index
        self.text = text
        self.folded = folded  # the text folded (`fold`), where triggers are looked for
        self.rules = rules
        self._spans = lines
        self._singles = singles
        self._positions = positions
        self._starts: list[int] | None = None
        self._ends: list[int] = []
        self._by_string: dict[str, set[int]] = {}  # folded string -> lines it lies inside
        self._by_rule: dict[str, AbstractSet[int] | None] = {}

    def lines(self, rule_id: str) -> AbstractSet[int] | None:
        """Indices of the lines in which the rule may match (None: any line). Do not modify."""
        by_rule = self._by_rule
        found = by_rule.get(rule_id, _UNSET)
        if found is not _UNSET:
            return found
        index = self.index
        triggers = index.rule_triggers.get(rule_id)
        if triggers is None:
            found = None
        elif rule_id not in self.rules:  # none of its triggers occurs anywhere
            found = _NO_LINES
        else:
            # The set of the one trigger that gave lines (shared with it), or a union made anew.
            found = _NO_LINES
            positions, singles = self._positions, self._singles
            for trigger in triggers:
                if trigger in positions or trigger in singles:
                    more = self._trigger_lines(trigger)
                    found = (found | more) if found and more else (found or more)
            extra = index.extra.get(rule_id)
            if extra and found:
                found = self._holding_each(found, extra)
        by_rule[rule_id] = found
        return found

    def _holding_each(self, lines: AbstractSet[int], extra: tuple[tuple[str, ...], ...]) -> set[int]:
        """Those of `lines` that hold one of each tuple's folded strings (`TriggerIndex.extra`):
        `str.find` within the line's bounds, which skips ahead as `re` cannot (a pattern of the
        alternatives is tried at every position of the line)."""
        starts, ends, folded = self._starts, self._ends, self.folded
        kept = set()
        for i in lines:
            start, end = starts[i], ends[i]
            for strings in extra:
                for needle in strings:
                    if folded.find(needle, start, end) != -1:
                        break
                else:
                    break  # (none of this tuple's strings: not the line)
            else:
                kept.add(i)
        return kept

    def _line_bounds(self) -> tuple[list[int], list[int]]:
        if self._starts is None:
            spans = self._spans if self._spans is not None else nonblank_lines(self.text)
            self._starts = [s for s, _ in spans]
            self._ends = [e for _, e in spans]
        return self._starts, self._ends

    def _trigger_lines(self, trigger: str) -> set[int]:
        if len(trigger) == 1:
            return self._string_lines(trigger) if trigger in self._singles else set()
        found = self._by_string.get(trigger)
        if found is not None:
            return found
        starts, ends = self._line_bounds()
        found = set()
        size = len(trigger)
        for p in self._positions.get(trigger, ()):
            i = bisect_right(starts, p) - 1
            if i >= 0 and p + size <= ends[i]:
                found.add(i)
        self._by_string[trigger] = found
        return found

    def _string_lines(self, string: str) -> set[int]:
        """The lines the folded `string` lies wholly inside (for one-character triggers, often
        frequent like `。`, and extra requirements): found once per line, then on to the next
        line rather than to every occurrence."""
        found = self._by_string.get(string)
        if found is not None:
            return found
        starts, ends = self._line_bounds()
        found = set()
        text, n, size = self.folded, len(starts), len(string)
        pos = 0
        while (p := text.find(string, pos)) != -1:
            i = bisect_right(starts, p) - 1
            if i >= 0 and p + size <= ends[i]:
                found.add(i)
            if i + 1 >= n:
                break
            pos = starts[i + 1]
        self._by_string[string] = found
        return found


def _shorten(trigger: str, members: dict[str, list[str]]) -> str:
    """The longest prefix of `trigger` (at least one character) with few enough spellings."""
    count = 1
    for n, ch in enumerate(trigger):
        count *= len(members.get(ch, [ch]))
        if count > MAX_TRIGGER_FORMS and n >= 1:
            return trigger[:n]
    return trigger


def _spellings(trigger: str, members: dict[str, list[str]]) -> list[str]:
    """Every spelling of a folded trigger (the product of its characters' variant groups)."""
    out = [""]
    for ch in trigger:
        out = [prefix + o for prefix in out for o in members.get(ch, [ch])]
    return out
