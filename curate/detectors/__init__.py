"""Detectors of corrupted spans: one module per kind, each returning `Flag`s on the current text.

A detector is a function `detect(doc, ctx) -> list[Flag]`. It never changes the document: the
corruption stage adds the flags it returns (skipping any that repeat a flag of the same kind
already there) and the policy stage decides what happens to the text. Detectors share a
`DetectorContext`, which holds the tunable thresholds, the spam lexicon and the bigram model, and
caches the bigram surprise of the text being examined so that several detectors can use it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.detectors.bigram import BigramModel, default_model
from curate.document import Document, Flag

KINDS = ("mojibake", "obfuscation", "spam-injection", "splice", "truncated", "garbage")
LEXICON_FILE = Path("lexicons") / "spam.toml"


class LexiconError(Exception):
    """A problem with the spam lexicon, reported as one line naming the file."""


@dataclass(frozen=True)
class SpamLexicon:
    """Terms by weight, brand patterns, and the examples that must hold (see rules/lexicons).

    Frozen (tuples), so that compiled patterns can be cached per lexicon.
    """

    strong: tuple[str, ...]
    gambling: tuple[str, ...]
    web: tuple[str, ...]
    connectors: tuple[str, ...]
    brand_patterns: tuple[str, ...]
    spam_examples: tuple[str, ...] = ()
    clean_examples: tuple[str, ...] = ()
    origin: str = ""

    @classmethod
    def load(cls, path: str | Path) -> SpamLexicon:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise LexiconError(f"{file}: cannot read spam lexicon: {exc}") from None

        def strings(section: str, key: str) -> tuple[str, ...]:
            value = data.get(section, {}).get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise LexiconError(f"{file}: [{section}] {key} should be a list of strings")
            return tuple(value)

        return cls(
            strong=strings("strong", "terms"),
            gambling=strings("gambling", "terms"),
            web=strings("web", "terms"),
            connectors=strings("connectors", "terms"),
            brand_patterns=strings("brand_patterns", "patterns"),
            spam_examples=strings("examples", "spam"),
            clean_examples=strings("examples", "clean"),
            origin=str(file),
        )


def find_lexicon(rule_folders: list[str] | tuple[str, ...], base: str | Path = ".") -> Path | None:
    """The first `<folder>/lexicons/spam.toml` among the configured rule folders."""
    for folder in rule_folders:
        candidate = Path(base) / folder / LEXICON_FILE
        if candidate.is_file():
            return candidate
    return None


def default_lexicon_path() -> Path:
    """The lexicon shipped in the repository's `rules/` (used when no rule folder has one)."""
    return Path(__file__).resolve().parent.parent.parent / "rules" / LEXICON_FILE


@dataclass
class DetectorContext:
    """What detectors share: thresholds, lexicon, model, and a per-text surprise cache."""

    lexicon: SpamLexicon
    model: BigramModel = field(default_factory=default_model)
    spam_min_score: int = 3
    spam_break_bits: float = 12.0
    garbage_window: int = 16
    garbage_min_bits: float = 17.0
    garbage_margin_bits: float = 8.0
    truncated_min_chars: int = 20
    _cache_text: str | None = field(default=None, repr=False)
    _cache_bits: Any = field(default=None, repr=False)
    _ids_text: str | None = field(default=None, repr=False)
    _ids: Any = field(default=None, repr=False)

    def ids(self, text: str) -> np.ndarray:
        """Bigram-model symbol ids of every character of `text` (cached for the last text asked)."""
        if self._ids_text is not text:
            self._ids = self.model.ids(text)
            self._ids_text = text
        return self._ids

    def surprise(self, text: str) -> np.ndarray:
        """Bigram surprise of every character of `text` (cached for the last text asked)."""
        if self._cache_text is not text:
            self._cache_bits = self.model.surprise(text, self.ids(text))
            self._cache_text = text
        return self._cache_bits


Detector = Callable[[Document, DetectorContext], list[Flag]]


def detectors() -> dict[str, Detector]:
    """Kind -> detector function, in the order they run."""
    from curate.detectors import garbage, mojibake, obfuscation, spam, splice, truncated

    return {
        "mojibake": mojibake.detect,
        "obfuscation": obfuscation.detect,
        "spam-injection": spam.detect,
        "splice": splice.detect,
        "truncated": truncated.detect,
        "garbage": garbage.detect,
    }


def overlaps(flag: Flag, others: list[Flag], same_kind_only: bool = True) -> bool:
    """Whether `flag` overlaps (or, for zero-width flags, touches) one of `others`."""
    for other in others:
        if same_kind_only and other.kind != flag.kind:
            continue
        if flag.start < other.end and other.start < flag.end:
            return True
        if (flag.start == flag.end or other.start == other.end) and (
            other.start <= flag.start <= other.end or flag.start <= other.start <= flag.end
        ):
            return True
    return False


# Kinds that only explain text no other flag explains: a seam already flagged as a splice is not
# also "truncated", and a mojibake span is not also "garbage" (a garbage window that merely
# contains a few U+FFFD flagged as mojibake is still reported).
DEFER_TO_OTHER_KINDS = frozenset({"truncated", "garbage"})


def mostly_explained(flag: Flag, others: list[Flag]) -> bool:
    """Whether flags of other kinds cover at least half of `flag` (or touch a zero-width one)."""
    if flag.end <= flag.start:
        return overlaps(flag, others, same_kind_only=False)
    covered = set()
    for other in others:
        if other.kind != flag.kind:
            covered.update(range(max(flag.start, other.start), min(flag.end, other.end)))
    return len(covered) * 2 >= flag.end - flag.start


def run_detectors(
    doc: Document, ctx: DetectorContext, kinds: list[str] | tuple[str, ...] = KINDS
) -> list[Flag]:
    """Flags from every enabled detector, skipping repeats of a same-kind flag already on `doc`."""
    found: list[Flag] = []
    for kind, detect in detectors().items():
        if kind not in kinds:
            continue
        defers = kind in DEFER_TO_OTHER_KINDS
        for flag in detect(doc, ctx):
            if overlaps(flag, doc.flags) or overlaps(flag, found):
                continue
            if defers and mostly_explained(flag, doc.flags + found):
                continue
            found.append(flag)
    found.sort(key=lambda f: (f.start, f.end, f.kind))
    return found
