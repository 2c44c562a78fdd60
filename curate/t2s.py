"""Fast Traditional -> Simplified conversion with opencc-python-reimplemented's exact results.

opencc-python-reimplemented (module `opencc`) converts ~0.6 M characters/s because it walks a
tree of substrings in Python for every character. Its semantics, per configuration:

- the text is split at separators (whitespace and punctuation, its `split_chars_re`); separators
  are never converted and no dictionary entry contains one;
- each segment goes through a chain of dictionary *groups*; inside a group, the phrase
  dictionary is applied first by repeatedly taking the longest (then leftmost) match and
  recursing on the text left and right of it; whatever no phrase matched goes through the
  single-character dictionary; a value with alternatives ("a b") uses the first.

We keep exactly that, but fast: the single-character dictionary becomes a `str.translate`
table, and the phrase dictionary a trie-shaped regex used only to find the (rare) segments that
contain a phrase; only those segments take the faithful longest-first path. Tables are loaded
from opencc's own dictionary files through opencc's own loader (so the data cannot drift), built
once per configuration and cached. Importing this module does no work.

`traditional_score` is the detector the convert stage (and others) use to decide whether a text
is Traditional at all, so the converter never runs on text that is already Simplified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from curate.textutil import PairStarts, code_points, mapped_text

CONFIGS = ("t2s", "tw2s", "hk2s")

# Dictionary = (max key length, min key length, {key: value}), as opencc loads it.
_Dict = tuple[int, int, dict[str, str]]


@dataclass(frozen=True)
class _Group:
    """One group of opencc's conversion chain, prepared for fast application."""

    phrase_dicts: tuple[_Dict, ...]  # multi-character dictionaries, in order
    phrase_re: re.Pattern[str] | None  # finds any key of any phrase dictionary
    phrase_starts: PairStarts | None  # where one may begin (its first two characters)
    # For each phrase dictionary, a trie-shaped pattern of its keys: where it matches, it
    # matches the longest key starting there (see `_longest_leftmost`).
    phrase_patterns: tuple[re.Pattern[str], ...]
    table: dict[int, str]  # merged single-character dictionaries (first wins)
    lut: Any  # numpy code point -> code point table when every mapping is one character


@dataclass(frozen=True)
class _Converter:
    groups: tuple[_Group, ...]
    separator_re: re.Pattern[str]  # one separator character (opencc's split_chars_re)


def _first(value: str) -> str:
    """opencc keeps the first of several space-separated alternatives."""
    return value.split(" ")[0]


def _trie_pattern(words: list[str]) -> str:
    """A regex matching any of `words`, shaped as a trie so scanning stays fast."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        branches = []
        optional = "" in node
        for ch in sorted(k for k in node if k):
            branches.append(re.escape(ch) + emit(node[ch]))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if optional:
            body = "(?:" + body + ")?"
        return body

    return emit(trie)


@cache
def _converter(config: str) -> _Converter:
    """Load opencc's dictionaries for `config` and prepare them (once per process)."""
    import opencc  # opencc-python-reimplemented; imported lazily so importing us is free

    if config not in CONFIGS:
        raise ValueError(f"unknown conversion {config!r} (known: {', '.join(CONFIGS)})")
    reference = opencc.OpenCC(config)
    separator_re = re.compile(reference.split_chars_re.pattern[1:-1])  # drop the capture group
    groups = []
    for group in reference._dict_chain_data:
        phrase_dicts: list[_Dict] = []
        table: dict[int, str] = {}
        seen_chars = False
        for max_len, min_len, mapping in group:
            if max_len == 1:
                seen_chars = True
                for key, value in mapping.items():
                    if ord(key) not in table and not separator_re.fullmatch(key):
                        table[ord(key)] = _first(value)
            else:
                if seen_chars or min_len < 2:
                    raise ValueError(f"{config}: unsupported opencc dictionary layout")
                phrase_dicts.append((max_len, min_len, mapping))
        keys = sorted({k for _, _, m in phrase_dicts for k in m})
        phrase_re = re.compile(_trie_pattern(keys)) if keys else None
        phrase_starts = PairStarts(key[:2] for key in keys) if keys else None  # (keys: 2 or more)
        patterns = tuple(re.compile(_trie_pattern(sorted(m))) for _, _, m in phrase_dicts)
        # Identity entries change nothing; dropping them makes translate cheaper.
        table = {k: v for k, v in table.items() if v != chr(k)}
        groups.append(
            _Group(tuple(phrase_dicts), phrase_re, phrase_starts, patterns, table, _lookup_table(table))
        )
    return _Converter(tuple(groups), separator_re)


def _lookup_table(table: dict[int, str]) -> Any:
    """A numpy array mapping every code point through `table` (None if some value is longer).

    Indexing an array with the code points of a whole text is ~10x faster than str.translate.
    """
    import numpy as np

    if any(len(v) != 1 for v in table.values()):
        return None
    lut = np.arange(0x110000, dtype=np.uint32)
    for key, value in table.items():
        lut[key] = ord(value)
    return lut


def _translate(text: str, group: _Group) -> str:
    if group.lut is None or len(text) < 64:
        return text.translate(group.table)
    return mapped_text(text, group.lut)


def _longest_leftmost(text: str, keys: re.Pattern[str], mapping: dict[str, str]):
    """opencc's __findMatch: the longest key in `text`, leftmost among equals.

    opencc tries every length from the longest key down and every position for each; we visit
    only the positions where a key starts (`keys` is the dictionary's trie pattern, which
    matches the longest key starting where it matches) and keep the first of the longest.
    """
    best: tuple[int, int] | None = None
    pos = 0
    while (m := keys.search(text, pos)) is not None:
        start = m.start()
        if best is None or m.end() - start > best[1]:
            best = (start, m.end() - start)
        pos = start + 1
    if best is None:
        return None
    i, length = best
    return i, length, _first(mapping[text[i : i + length]])


def _convert_segment(segment: str, group: _Group) -> str:
    """Faithful conversion of one separator-free segment by one group."""
    pieces: list[tuple[str, bool]] = [(segment, False)]  # (text, already converted)
    for (_, _, mapping), keys in zip(group.phrase_dicts, group.phrase_patterns, strict=True):
        out: list[tuple[str, bool]] = []
        for text, done in pieces:
            if done:
                out.append((text, True))
                continue
            # Iterative in-order version of opencc's recursive split around each match.
            stack: list[tuple[str, bool]] = [(text, False)]
            while stack:
                item, final = stack.pop()
                if final or not item:
                    if item:
                        out.append((item, final))
                    continue
                found = _longest_leftmost(item, keys, mapping)
                if found is None:
                    out.append((item, False))
                    continue
                i, length, value = found
                stack.append((item[i + length :], False))
                stack.append((value, True))
                stack.append((item[:i], False))
        pieces = out
    return "".join(text if done else _translate(text, group) for text, done in pieces)


def _apply_group(text: str, group: _Group, separator_re: re.Pattern[str]) -> str:
    phrase_re, starts = group.phrase_re, group.phrase_starts
    first = starts.search(phrase_re, text) if phrase_re is not None and starts is not None else None
    if first is None:
        return _translate(text, group)
    gaps: list[str] = []  # unconverted stretches between segments that hold a phrase
    segments: list[str] = []  # those segments, converted faithfully
    pos = 0
    for match in phrase_re.finditer(text, first.start()):  # (none begins before the first)
        if match.start() < pos:
            continue  # inside a segment already converted
        start = match.start()
        while start > pos and not separator_re.match(text, start - 1):
            start -= 1
        sep = separator_re.search(text, match.end())
        end = sep.start() if sep else len(text)
        gaps.append(text[pos:start])
        segments.append(_convert_segment(text[start:end], group))
        pos = end
    gaps.append(text[pos:])
    # Translate all gaps in one pass over their concatenation, then cut it back up.
    converted = _translate("".join(gaps), group)
    result: list[str] = []
    cursor = 0
    for gap, segment in zip(gaps, segments + [""], strict=True):
        result.append(converted[cursor : cursor + len(gap)])
        result.append(segment)
        cursor += len(gap)
    return "".join(result)


def convert(text: str, config: str = "t2s") -> str:
    """Convert `text` like `opencc.OpenCC(config).convert(text)`, only much faster.

    `config` is one of "t2s", "tw2s", "hk2s".
    """
    converter = _converter(config)
    for group in converter.groups:
        text = _apply_group(text, group, converter.separator_re)
    return text


# ---------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class ScriptEvidence:
    """Counts behind a Traditional/Simplified decision (kept in the edit log as evidence)."""

    traditional: int  # characters that exist only in Traditional writing
    simplified: int  # characters that exist only in Simplified writing

    @property
    def score(self) -> float:
        """Share of script-specific characters that are Traditional (0.0 when there are none)."""
        total = self.traditional + self.simplified
        return self.traditional / total if total else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "traditional_chars": self.traditional,
            "simplified_chars": self.simplified,
            "traditional_score": round(self.score, 4),
        }


@cache
def _gb2312_han() -> frozenset[str]:
    """Han characters of GB2312, the Simplified national character set."""
    from curate.textutil import two_byte_chars

    return two_byte_chars("gb2312", (0xB0, 0xF8), ((0xA1, 0xFF),))


@cache
def _script_tables() -> tuple[frozenset[int], frozenset[int]]:
    """Code points of Traditional-only and Simplified-only characters.

    Traditional-only: t2s changes it and it is not in GB2312, the Simplified character set (so
    著, 乾, 於, which Simplified text uses too, do not count). Simplified-only: s2t changes it and
    it is not in Big5, the Traditional character set (so 台, 里, 后 do not count); 们, 这, 国 do.
    """
    import opencc

    gb2312 = _gb2312_han()
    ts = opencc.OpenCC("t2s")
    ts._init_dict()
    st = opencc.OpenCC("s2t")
    st._init_dict()
    ts_chars = _single_chars(ts._dict_chain_data)
    st_chars = _single_chars(st._dict_chain_data)
    traditional = {k for k, v in ts_chars.items() if v != k and k not in gb2312}
    simplified = {k for k, v in st_chars.items() if v != k and not _in_big5(k)} - traditional
    return frozenset(map(ord, traditional)), frozenset(map(ord, simplified))


def _in_big5(char: str) -> bool:
    try:
        char.encode("big5")
    except UnicodeEncodeError:
        return False
    return True


def _single_chars(chain: list) -> dict[str, str]:
    """The single-character mappings of an opencc chain (first alternative of each)."""
    chars: dict[str, str] = {}
    for group in chain:
        for max_len, _, mapping in group:
            if max_len == 1:
                for key, value in mapping.items():
                    chars.setdefault(key, _first(value))
    return chars


@cache
def _script_lut() -> Any:
    """Code point -> 0 (neither), 1 (Traditional-only), 2 (Simplified-only).

    Kept on disk between runs (`curate.tablecache`): building it reads OpenCC's dictionaries
    and two national character sets, a sixth of a second of serial start-up.
    """
    from curate import tablecache, textutil

    depends = (
        tablecache.source_digest(__name__),
        tablecache.source_digest(textutil.__name__),
        tablecache.package_version("opencc-python-reimplemented"),
    )
    return tablecache.arrays("t2s-script", lambda: (_build_script_lut(),), depends)[0]


def _build_script_lut() -> Any:
    import numpy as np

    traditional, simplified = _script_tables()
    lut = np.zeros(0x110000, dtype=np.uint8)
    lut[sorted(traditional)] = 1
    lut[sorted(simplified)] = 2
    return lut


def script_evidence(text: str) -> ScriptEvidence:
    """Count Traditional-only and Simplified-only characters in `text` (numpy, ~100 M chars/s)."""
    import numpy as np

    if not text:
        return ScriptEvidence(0, 0)
    counts = np.bincount(_script_lut()[code_points(text)], minlength=3)
    return ScriptEvidence(traditional=int(counts[1]), simplified=int(counts[2]))


def script_evidence_many(texts: list[str]) -> list[ScriptEvidence]:
    """`script_evidence` of each text, counted in one numpy pass over all of them (on short
    texts numpy's cost per call, not per character, dominates)."""
    import numpy as np

    if not texts:
        return []
    kinds = _script_lut()[code_points("".join(texts))]  # one code point per character
    owner = np.repeat(np.arange(len(texts)), [len(t) for t in texts])
    counts = np.bincount(owner * 3 + kinds, minlength=3 * len(texts)).reshape(len(texts), 3)
    return [ScriptEvidence(traditional=int(t), simplified=int(s)) for t, s in counts[:, 1:].tolist()]


def traditional_score(text: str) -> float:
    """Share of script-specific characters in `text` that are Traditional (0.0 to 1.0)."""
    return script_evidence(text).score
