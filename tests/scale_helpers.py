"""What the engine tests share: a corpus they build themselves and small stages of every kind.

The corpus is synthetic (seeded, so the same on every run): short news-like documents made of
random common Han characters, with exact duplicates, near-duplicates (one sentence changed), a
footer line repeated across many documents, half-width punctuation between Han characters,
Traditional characters, stray blank lines and zero-width spaces, so that every stage of the real
pipeline has something to do.

The stages are importable by Ray workers (the tests put the repository on their PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from curate import runner
from curate.document import DUPLICATE, Change, Document, Flag
from curate.stages.base import CorpusStage, DocumentStage, Stage, StageSettings
from curate.version import json_bytes

# Common Simplified characters, plus a few Traditional ones the convert stage maps.
HAN = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严龙飞"
TRADITIONAL = ["這個", "與", "發展", "經濟", "國際", "會議", "報導", "記者"]
FOOTER = "（本文来源：示例新闻网）"
EDITOR = "责任编辑：王小明"


def _sentence(rng: random.Random) -> str:
    parts = ["".join(rng.choice(HAN) for _ in range(rng.randint(4, 12))) for _ in range(rng.randint(1, 3))]
    text = "，".join(parts)
    if rng.random() < 0.15:
        text = text.replace("，", ",", 1)  # half-width comma between Han characters
    if rng.random() < 0.15:
        text += rng.choice(TRADITIONAL)
    return text + "。"


def _article(rng: random.Random) -> str:
    paragraphs = ["".join(_sentence(rng) for _ in range(rng.randint(2, 5))) for _ in range(rng.randint(2, 5))]
    if rng.random() < 0.1:
        paragraphs[0] = paragraphs[0][:5] + "\u200b" + paragraphs[0][5:]
    if rng.random() < 0.5:
        paragraphs.append(EDITOR)
    if rng.random() < 0.4:
        paragraphs.append(FOOTER)
    separator = "\n\n\n" if rng.random() < 0.2 else "\n"
    return separator.join(paragraphs) + "\n"


def articles(count: int, seed: int = 7) -> list[str]:
    """`count` texts, about 15% exact and 10% near duplicates of earlier ones."""
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if texts and roll < 0.15:
            texts.append(rng.choice(texts))
        elif texts and roll < 0.25:
            lines = rng.choice(texts).split("\n")
            lines[0] = _sentence(rng) + lines[0][len(lines[0]) // 2 :]
            texts.append("\n".join(lines))
        else:
            texts.append(_article(rng))
    return texts


def write_corpus(folder: Path, count: int, per_file: int = 100, seed: int = 7) -> Path:
    """`count` documents as JSON lines files of `per_file` records under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = articles(count, seed)
    for start in range(0, count, per_file):
        with (folder / f"part-{start // per_file:03d}.jsonl").open("w", encoding="utf-8") as handle:
            for number, text in enumerate(texts[start : start + per_file], start=start):
                record = {"id": f"n{number:05d}", "title": f"标题{number}", "text": text}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return folder


def documents(count: int, seed: int = 7) -> Iterator[Document]:
    """A lazy stream of documents (nothing is kept: for memory tests)."""
    rng = random.Random(seed)
    for number in range(count):
        yield Document.new(f"gen/{number:06d}", _article(rng))


def index_files(version_dir: Path) -> dict[str, bytes]:
    """The artifacts a version keeps for the next run (e.g. the near-duplicate index)."""
    folder = version_dir / "index"
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def serialised(docs: Iterable[Document]) -> bytes:
    """Everything the version writer would write about `docs`, as bytes, in order."""
    lines: list[bytes] = []
    for doc in docs:
        lines.append(json_bytes({**doc.to_json(), "status": doc.status}))
        lines.extend(json_bytes({"doc": doc.id, "seq": n, **e.to_json()}) for n, e in enumerate(doc.edits))
        lines.extend(warning.encode("utf-8") for warning in doc.warnings)
    return b"\n".join(lines) + b"\n"


# --------------------------------------------------------------------------- stages for the tests
class DropEditorLine(DocumentStage):
    """Moves the editor credit line to metadata (a per-document edit with a rule and a reason)."""

    name = "test_editor"
    Settings = StageSettings

    def process(self, doc: Document) -> None:
        start = doc.text.find(EDITOR)
        if start >= 0:
            doc.apply(
                self.name,
                [Change(start, start + len(EDITOR), "", "test.editor", "editor credit", action="meta:editor")],
            )
            doc.set_meta("editor", EDITOR[5:])


class FlagLongSentences(DocumentStage):
    """Flags sentences longer than 30 characters (flags must survive the trip to a worker)."""

    name = "test_flags"
    Settings = StageSettings

    def process(self, doc: Document) -> None:
        start = 0
        for end in (i + 1 for i, c in enumerate(doc.text) if c == "。"):
            if end - start > 30:
                doc.add_flag(Flag("long", start, end, doc.text[start:end], "long sentence", detector="test"))
            start = end


class RepeatedLinesAcrossDocs(CorpusStage):
    """Drops lines found in at least 5% of documents; keeps the counts as an artifact."""

    name = "test_repeated"
    Settings = StageSettings

    def __init__(self, settings: Any, context: Any) -> None:
        super().__init__(settings, context)
        self.counts: Counter[str] = Counter()
        self.documents = 0
        self.repeated: set[str] = set()

    def summarise(self, doc: Document) -> Any:
        return sorted({hashlib.sha1(line.encode()).hexdigest()[:12] for line in doc.text.split("\n") if line})

    def observe(self, summary: Any) -> None:
        self.documents += 1
        self.counts.update(summary)

    def decide(self) -> None:
        threshold = max(2, self.documents // 20)
        self.repeated = {key for key, n in self.counts.items() if n >= threshold}
        table = sorted((key, self.counts[key]) for key in self.repeated)
        self.context.state["artifacts"]["repeated.json"] = json.dumps(table).encode()

    def apply(self, doc: Document) -> None:
        changes, position = [], 0
        for line in doc.text.split("\n"):
            if line and hashlib.sha1(line.encode()).hexdigest()[:12] in self.repeated:
                changes.append(Change(position, position + len(line), "", "test.repeated", "repeated line"))
            position += len(line) + 1
        doc.apply(self.name, changes)


class ExactDuplicates(CorpusStage):
    """Marks documents whose text equals another's; the smallest id is kept."""

    name = "test_duplicates"
    Settings = StageSettings

    def __init__(self, settings: Any, context: Any) -> None:
        super().__init__(settings, context)
        self.smallest: dict[str, str] = {}

    def summarise(self, doc: Document) -> Any:
        return hashlib.sha256(doc.text.encode()).hexdigest(), doc.id

    def observe(self, summary: Any) -> None:
        text_hash, doc_id = summary
        known = self.smallest.get(text_hash)
        if known is None or doc_id < known:
            self.smallest[text_hash] = doc_id

    def apply(self, doc: Document) -> None:
        keep = self.smallest.get(hashlib.sha256(doc.text.encode()).hexdigest(), doc.id)
        if keep != doc.id:
            doc.status, doc.status_reason, doc.duplicate_of = DUPLICATE, "exact duplicate", keep


class FailOnMarker(DocumentStage):
    """Fails on purpose for documents containing a marker (error reporting from workers)."""

    name = "test_fail"
    Settings = StageSettings

    def process(self, doc: Document) -> None:
        if "FAIL" in doc.text:
            raise ValueError(f"{doc.source}: cannot process this document")


def make_stages(*kinds: type) -> list[Any]:
    """Instances of the given stage classes with their default settings and a fresh context."""
    from curate.config import build
    from curate.stages.base import RunContext

    context = RunContext(config=build({}), state={"artifacts": {}, "warnings": []})
    return [kind(kind.Settings(), context) for kind in kinds]


class NumberInDriver(Stage):
    """A stage with its own `run` (engines run it in the driver, on the ordered stream)."""

    name = "test_number"
    Settings = StageSettings

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        for position, doc in enumerate(docs):
            doc.set_meta("position", position)
            yield doc


def logged_read_files(files: list[Any], settings: Any, pickled: bool, lazily: bool = False) -> list[Any]:
    """`runner._read_files`, noting which process read each file in `read_by.log` beside
    the files' folder (importable where an engine's workers read files: Ray's included)."""
    import os

    for file in files:
        with (file.path.parent.parent / "read_by.log").open("a", encoding="utf-8") as log:
            log.write(f"{file.source} {os.getpid()}\n")
    return _read_files_as_is(files, settings, pickled, lazily)


_read_files_as_is = runner._read_files  # (what a test replaces with `logged_read_files`)
