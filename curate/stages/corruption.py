"""Flag corrupted spans: spam injections, mojibake residue, splices, truncations, garbage, obfuscation.

This stage only *flags*: each detector (curate.detectors.<kind>) returns spans with a kind,
reason, severity and evidence, and they are added to the document with `doc.add_flag`. What
happens to the text is the policy stage's decision, per kind. A flag that repeats a flag of the
same kind already on the document (the near-duplicates stage flags splice seams itself) is
skipped, so nothing is reported twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from curate.config import setting
from curate.detectors import (  # noqa: F401  (the detector modules, which `detectors()` uses: imported before any fork)
    KINDS,
    DetectorContext,
    SpamLexicon,
    default_lexicon_path,
    find_lexicon,
    garbage,
    mojibake,
    obfuscation,
    run_detectors,
    spam,
    splice,
    truncated,
)
from curate.detectors.bigram import BigramModel, default_model
from curate.document import Document
from curate.rules import configured_folders
from curate.stages.base import DocumentStage, StageSettings

# Documents whose per-character work is done together (see `process_batch`): enough for numpy's per-call
# cost to vanish, and a bound on characters that keeps the arrays small (measured on news:
# batches of 16-64K characters are fastest, as fresh large arrays cost more per element).
BATCH_DOCUMENTS = 64
BATCH_CHARACTERS = 1 << 15


@dataclass
class CorruptionSettings(StageSettings):
    """Detectors of corrupted spans (see curate/detectors/*.py for each kind)."""

    kinds: list = setting(list(KINDS), "Detectors to run, by kind.")
    spam_min_score: int = setting(
        3, "Points a spam-phrase candidate needs (lexicon gives at most 2; see detectors/spam.py)."
    )
    spam_break_bits: float = setting(
        12.0,
        "Bigram surprise (bits) after a phrase inside Han text that counts as a broken sentence.",
    )
    garbage_window: int = setting(16, "Characters per window scored by the garbage detector.")
    garbage_min_bits: float = setting(
        17.0, "A garbage window's mean surprise must reach this (bits/char)."
    )
    garbage_margin_bits: float = setting(
        8.0, "…and exceed the document's median window by this many bits/char."
    )
    truncated_min_chars: int = setting(
        20, "Shorter paragraphs (headings, captions) are never flagged as truncated."
    )
    bigram_table: str = setting(
        "",
        "Bigram model: a .npz written by bench/build_bigram_table.py, or a .tsv.gz table of"
        " counts (compiled when loaded); empty: the one shipped in curate/data.",
    )


class CorruptedSpans(DocumentStage):
    """Runs the enabled detectors on every document and adds their flags."""

    name = "corruption"
    Settings = CorruptionSettings

    def __init__(self, settings: CorruptionSettings, context) -> None:
        super().__init__(settings, context)
        unknown = sorted(set(settings.kinds) - set(KINDS))
        if unknown:
            raise ValueError(
                f"[corruption] kinds: unknown kind(s) {', '.join(unknown)} (known: {', '.join(KINDS)})"
            )
        self._detector_context: DetectorContext | None = None

    def detector_context(self) -> DetectorContext:
        """Built on first use, so that a run with the stage disabled loads nothing."""
        if self._detector_context is None:
            settings = self.settings
            self._detector_context = DetectorContext(
                lexicon=SpamLexicon.load(self._lexicon_path()),
                model=BigramModel.load(settings.bigram_table)
                if settings.bigram_table
                else default_model(),
                spam_min_score=settings.spam_min_score,
                spam_break_bits=settings.spam_break_bits,
                garbage_window=settings.garbage_window,
                garbage_min_bits=settings.garbage_min_bits,
                garbage_margin_bits=settings.garbage_margin_bits,
                truncated_min_chars=settings.truncated_min_chars,
            )
        return self._detector_context

    def _lexicon_path(self) -> Path:
        config = getattr(self.context, "config", None)
        folders = configured_folders(getattr(getattr(config, "run", None), "rules", None) or [])
        return find_lexicon(folders) or default_lexicon_path()

    batch_documents = BATCH_DOCUMENTS
    batch_characters = BATCH_CHARACTERS

    def process_batch(self, docs: list[Document]) -> None:
        """The per-character work of the detectors (their pre-checks, bigram ids and surprise,
        the garbage detector's windows) is done for the whole batch at once (see
        `DetectorContext.prepare`), with the same results. (With the garbage detector off, the
        first detector that asks for one text's surprise gets the whole batch's computed.)"""
        if docs:
            self.detector_context().prepare([doc.text for doc in docs])
        for doc in docs:
            self.process(doc)

    def process(self, doc: Document) -> None:
        for flag in run_detectors(doc, self.detector_context(), tuple(self.settings.kinds)):
            doc.add_flag(flag)
