"""Traditional -> Simplified, only where the text is Traditional.

Detection counts Traditional-only and Simplified-only characters (`curate.t2s.script_evidence`,
a numpy pass at ~50 M characters/s), so Simplified documents cost one scan and are never run
through the converter. A document that is Traditional as a whole is converted as one region; in
a mixed document only the Traditional paragraphs are. Conversion uses `curate.t2s.convert`,
which gives opencc-python-reimplemented's results exactly, ~20-50x faster. Each converted region
is one edit (trimmed to the first and last changed character), with the detection evidence and
the converter configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import opencc  # noqa: F401 - `t2s` imports it on the first Traditional text: here, before the pools fork

from curate import t2s
from curate.config import setting
from curate.document import Change, Document
from curate.stages.base import DocumentStage, RunContext, StageSettings
from curate.textutil import paragraph_spans

try:  # the compiled loops (curate/_kernels.pyx), built by the install
    from curate._kernels import common_affixes as _compiled_common_affixes
except ImportError:  # no C compiler was there: the Python below does the same
    _compiled_common_affixes = None

KIND = "normalise"
# Documents whose script is counted in one numpy pass (see `Convert.run`).
EVIDENCE_BATCH = 64
CONVERTER = "opencc-python-reimplemented dictionaries (curate.t2s)"


@dataclass
class ConvertSettings(StageSettings):
    """Traditional -> Simplified conversion of text detected as Traditional."""

    config: str = setting(
        "t2s", "OpenCC conversion: 't2s', 'tw2s' (Taiwan), 'hk2s' (Hong Kong) or 'off'."
    )
    min_score: float = setting(
        0.6, "Share of script-specific characters that must be Traditional to convert."
    )
    min_traditional_chars: int = setting(
        3, "Traditional-only characters a document needs before it is considered at all."
    )
    per_paragraph: bool = setting(
        True, "In documents that are not Traditional as a whole, convert Traditional paragraphs."
    )
    min_paragraph_traditional_chars: int = setting(
        1,
        "Traditional-only characters a run of paragraphs needs to be converted on its own. "
        "1 keeps decisions stable when paragraphs are later joined: two paragraphs that each "
        "score below min_score also do together.",
    )


def _common_affixes(a: str, b: str) -> tuple[int, int]:
    """(the length of the common prefix of `a` and `b`, that of their common suffix within
    what the prefix leaves of the shorter): read from each end by the kernels where built
    (`_kernels.common_affixes`; by hand, the benchmark's 3,550 conversions: 25-28 ms by the
    binary searches below, 1.6-2 ms), else by binary search over slice comparisons."""
    if _compiled_common_affixes is not None and type(a) is str and type(b) is str:
        return _compiled_common_affixes(a, b)
    head = _common_prefix_len(a, b)
    return head, _common_suffix_len(a, b, min(len(a), len(b)) - head)


def _common_prefix_len(a: str, b: str) -> int:
    """Length of the common prefix, by binary search over C-speed slice comparisons."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix_len(a: str, b: str, limit: int) -> int:
    lo, hi = 0, min(len(a), len(b), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class Convert(DocumentStage):
    """Convert Traditional documents (or paragraphs) to Simplified; one edit per region."""

    name = "convert"
    Settings = ConvertSettings

    def __init__(self, settings: ConvertSettings, context: RunContext) -> None:
        super().__init__(settings, context)
        if settings.config not in (*t2s.CONFIGS, "off"):
            raise ValueError(
                f"convert.config should be one of {', '.join((*t2s.CONFIGS, 'off'))}, "
                f"got {settings.config!r}"
            )

    batch_documents = EVIDENCE_BATCH

    def process_batch(self, docs: list[Document]) -> None:
        """The script of the whole batch is counted at once (`t2s.script_evidence_many`)."""
        if self.settings.config == "off":
            return
        for doc, evidence in zip(docs, t2s.script_evidence_many([d.text for d in docs]), strict=True):
            self._process(doc, evidence)

    def process(self, doc: Document) -> None:
        if self.settings.config != "off":
            self._process(doc, t2s.script_evidence(doc.text))

    def _process(self, doc: Document, evidence: t2s.ScriptEvidence) -> None:
        """`process`, with the script evidence of the document's text."""
        s = self.settings
        text = doc.text
        if evidence.traditional < min(s.min_traditional_chars, s.min_paragraph_traditional_chars):
            return  # Simplified (or not Chinese): the common case, one scan
        regions: list[tuple[int, int, t2s.ScriptEvidence, str]] = []
        if evidence.traditional >= s.min_traditional_chars and evidence.score >= s.min_score:
            regions.append((0, len(text), evidence, "document"))
        elif s.per_paragraph:
            regions = self._traditional_paragraphs(text)
        changes = []
        for start, end, ev, scope in regions:
            before = text[start:end]
            after = t2s.convert(before, s.config)
            if after == before:
                continue
            head, tail = _common_affixes(before, after)
            changes.append(
                Change(
                    start + head,
                    end - tail,
                    after[head : len(after) - tail],
                    rule=f"convert.{s.config}",
                    reason=f"Traditional {scope} converted to Simplified ({s.config})",
                    kind=KIND,
                    evidence={
                        **ev.to_json(),
                        "scope": scope,
                        "converter": CONVERTER,
                        "config": s.config,
                    },
                )
            )
        doc.apply(self.name, changes)

    def _traditional_paragraphs(self, text: str) -> list[tuple[int, int, t2s.ScriptEvidence, str]]:
        """Runs of consecutive paragraphs that lean Traditional, judged on the run as a whole
        (so that joining paragraphs later, as reflow does, cannot change the decision)."""
        s = self.settings
        regions: list[tuple[int, int, t2s.ScriptEvidence, str]] = []
        run: list[tuple[int, int, t2s.ScriptEvidence]] = []

        def close() -> None:
            while run and not run[-1][2].traditional:
                run.pop()  # neutral paragraphs at the edges are not part of the region
            while run and not run[0][2].traditional:
                run.pop(0)
            if run:
                ev = t2s.ScriptEvidence(
                    sum(r[2].traditional for r in run), sum(r[2].simplified for r in run)
                )
                if ev.traditional >= s.min_paragraph_traditional_chars and ev.score >= s.min_score:
                    regions.append((run[0][0], run[-1][1], ev, "paragraphs"))
            run.clear()

        for start, end in paragraph_spans(text):
            ev = t2s.script_evidence(text[start:end])
            if ev.simplified and ev.score < s.min_score:
                close()  # a Simplified paragraph ends the run
            else:
                run.append((start, end, ev))  # Traditional-leaning, or neutral (ASCII, digits)
        close()
        return regions
