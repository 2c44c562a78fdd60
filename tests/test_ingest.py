"""Ingest: encodings detected per file, formats split into documents, bad input skipped with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.config import IngestSettings
from curate.ingest import IngestError, decode_bytes, read_file, scan

SIMPLIFIED = "金秋九月，走进西宁市的大街小巷，处处呈现各族群众和谐相处的生活场景。\n民族团结一家亲。"
TRADITIONAL = "民族團結進步是西固區最悠久的歷史傳承,也是最鮮明的文化底色。"


def ingest_folder(folder: Path, settings: IngestSettings | None = None):
    settings = settings or IngestSettings()
    files, skipped = scan([folder], settings)
    results = {f.source: read_file(f, settings) for f in files}
    for result in results.values():
        skipped += result.skipped
    return results, {s.path: s.reason for s in skipped}


@pytest.mark.parametrize(
    ("name", "data", "encoding"),
    [
        ("gbk.txt", SIMPLIFIED.encode("gbk"), "gb18030"),
        ("gb18030.txt", SIMPLIFIED.encode("gb18030"), "gb18030"),
        ("big5.txt", TRADITIONAL.encode("big5"), "big5"),
        ("utf16.txt", SIMPLIFIED.encode("utf-16"), "utf-16"),
        ("utf16le-nobom.txt", SIMPLIFIED.encode("utf-16-le"), "utf-16-le"),
        ("bom.txt", b"\xef\xbb\xbf" + SIMPLIFIED.encode("utf-8"), "utf-8-sig"),
        ("plain.txt", SIMPLIFIED.encode("utf-8"), "utf-8"),
    ],
)
def test_encodings_are_detected_and_recorded(tmp_path, name, data, encoding):
    (tmp_path / name).write_bytes(data)
    results, skipped = ingest_folder(tmp_path)
    assert not skipped
    result = results[name]
    assert result.encoding == encoding
    (doc,) = result.documents
    expected = TRADITIONAL if "big5" in name else SIMPLIFIED
    assert doc.text == expected
    assert doc.encoding == encoding
    assert "\ufeff" not in doc.text


def test_crlf_is_normalised(tmp_path):
    (tmp_path / "crlf.txt").write_bytes("第一段。\r\n\r\n第二段。\r第三段。".encode("gbk"))
    results, _ = ingest_folder(tmp_path)
    assert results["crlf.txt"].documents[0].text == "第一段。\n\n第二段。\n第三段。"


def test_bad_files_are_skipped_with_one_line_reasons(tmp_path):
    (tmp_path / "good.txt").write_text(SIMPLIFIED, encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_bytes(b"  \n\n ")
    (tmp_path / "undecodable.txt").write_bytes(bytes([0x80, 0xFF, 0xFE, 0x81, 0x30]) * 200 + b"\xff" * 50)
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n")
    results, skipped = ingest_folder(tmp_path)
    assert [d.text for d in results["good.txt"].documents] == [SIMPLIFIED]
    assert "binary" in skipped["binary.txt"]
    assert skipped["empty.txt"] == "empty file"
    assert skipped["blank.md"] == "empty file"
    assert "undecodable" in skipped["undecodable.txt"] or "binary" in skipped["undecodable.txt"]
    assert "unsupported file type .png" == skipped["image.png"]
    for reason in skipped.values():
        assert "\n" not in reason


def test_jsonl_broken_line_costs_only_that_line(tmp_path):
    lines = [
        json.dumps({"title": "标题一", "content": "正文一。", "url": "http://a.example/1"}, ensure_ascii=False),
        '{"title": "坏的", "content": "没有结束',
        json.dumps({"text": "正文二。", "author": "记者甲"}, ensure_ascii=False),
        json.dumps({"title": "没有正文"}, ensure_ascii=False),
        "",
    ]
    (tmp_path / "news.jsonl").write_text("\n".join(lines), encoding="utf-8")
    results, skipped = ingest_folder(tmp_path)
    docs = results["news.jsonl"].documents
    assert [d.text for d in docs] == ["正文一。", "正文二。"]
    assert docs[0].meta == {"title": "标题一", "url": "http://a.example/1"}
    assert docs[1].meta == {"author": "记者甲"}
    assert docs[0].source == "news.jsonl#L1" and docs[1].source == "news.jsonl#L3"
    assert skipped["news.jsonl#L2"].startswith("malformed JSON")
    assert "has no text" in skipped["news.jsonl#L4"]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_json_files_documents_are_made_as_they_are_walked(tmp_path, suffix):
    from curate.ingest import InputFile, read_file_lazily

    records = [{"text": f"第{n}篇。"} if n % 5 else {"title": "没有正文"} for n in range(1, 41)]
    if suffix == ".jsonl":
        lines = [json.dumps(r, ensure_ascii=False) for r in records]
        lines.insert(20, '{"text": "没有结束')  # a malformed line halfway
        data = "\n".join(lines)
    else:
        data = json.dumps(records, ensure_ascii=False)
    path = tmp_path / f"news{suffix}"
    path.write_text(data, encoding="utf-8")

    def opened() -> InputFile:
        return InputFile(path=path, source=path.name, size=path.stat().st_size)

    whole = read_file(opened(), IngestSettings())
    lazy = read_file_lazily(opened(), IngestSettings())
    assert lazy.file.sha256 == whole.file.sha256 and lazy.encoding == whole.encoding
    first = next(lazy.documents)  # (an iterator: nothing is made until asked for)
    assert first.source == whole.documents[0].source and lazy.skipped == []  # record 5 not reached yet
    rest = list(lazy.documents)
    assert [d.source for d in [first, *rest]] == [d.source for d in whole.documents]
    assert [d.text for d in [first, *rest]] == [d.text for d in whole.documents]
    assert lazy.skipped == whole.skipped and len(whole.skipped) == 8 + (suffix == ".jsonl")


def test_a_run_sends_a_json_files_first_documents_before_it_makes_the_rest(tmp_path, monkeypatch):
    from curate import ingest, runner
    from curate.engine import LocalEngine

    from .conftest import make_config

    folder = tmp_path / "incoming"
    folder.mkdir()
    lines = [json.dumps({"id": n, "text": f"{SIMPLIFIED}第{n}条。"}, ensure_ascii=False) for n in range(600)]
    (folder / "records.jsonl").write_text("\n".join([*lines[:300], "{not json", *lines[300:]]), encoding="utf-8")
    made: list[str] = []
    new = ingest.Document.new

    def counted(source, text, **kwargs):
        made.append(source)
        return new(source, text, **kwargs)

    monkeypatch.setattr(ingest.Document, "new", staticmethod(counted))
    made_when_first_arrived: list[int] = []
    execute = LocalEngine.execute

    def watched_execute(self, docs, stages, finish=None):
        def watched():
            for item in docs:
                if not made_when_first_arrived:
                    made_when_first_arrived.append(len(made))
                yield item

        return execute(self, watched(), stages, finish)

    monkeypatch.setattr(LocalEngine, "execute", watched_execute)
    result = runner.run(make_config(tmp_path, {"run": {"workers": 1}}), inputs=[str(folder)], write_report=False)
    assert made_when_first_arrived == [1] and len(made) == 600
    manifest = json.loads((result.version_dir / "manifest.json").read_text(encoding="utf-8"))
    assert [(i["path"], i["documents"]) for i in manifest["inputs"]] == [("records.jsonl", 600)]
    assert [s["path"] for s in manifest["skipped"]] == ["records.jsonl#L301"]


def test_json_records_use_their_own_id_and_salvage_broken_files(tmp_path):
    good = [{"id": 7, "content": "第一篇。"}, {"id": 9, "body": "第二篇。"}]
    (tmp_path / "a.json").write_text(json.dumps(good, ensure_ascii=False), encoding="utf-8")
    # Two arrays in one file, one record with an unescaped quote, and no closing bracket.
    broken = (
        '[\n{"content": "甲篇。"},\n{"content": "乙"篇。"}\n]\n'
        '[\n{"content": "丙篇。"}\n'
    )
    (tmp_path / "b.json").write_text(broken, encoding="utf-8")
    results, skipped = ingest_folder(tmp_path)
    assert [d.source for d in results["a.json"].documents] == ["a.json#id=7", "a.json#id=9"]
    assert [d.text for d in results["b.json"].documents] == ["甲篇。", "丙篇。"]
    assert any(k.startswith("b.json#") and "malformed JSON" in v for k, v in skipped.items())


def test_scan_sorts_and_refuses_missing_paths(tmp_path):
    (tmp_path / "z.txt").write_text("乙", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("甲", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("丙", encoding="utf-8")
    files, skipped = scan([tmp_path], IngestSettings())
    assert [f.source for f in files] == ["sub/a.txt", "z.txt"]
    assert not skipped
    with pytest.raises(IngestError):
        scan([tmp_path / "missing"], IngestSettings())


def test_decode_prefers_utf8_over_legacy_guesses():
    assert decode_bytes("中文".encode()) == ("中文", "utf-8")


PAGE = (
    '<html><head><meta charset="gb2312"><title>海西州推进民族团结</title></head><body>'
    '<div class="nav"><a href="/">首页</a> <a href="/news">新闻</a> <a href="/gov">政务</a></div>'
    '<div id="article"><h1>海西州推进民族团结</h1>'
    "<p>近年来，海西州坚持以铸牢中华民族共同体意识为主线，加快构建互嵌式社会结构和社区环境。</p>"
    "<p>全州上下坚持把各民族文化作为中华文化的有机组成部分，大力实施中华优秀传统文化传承和发展工程。</p>"
    "</div>"
    '<div class="post_statement">特别声明：以上内容为自媒体平台“网易号”用户上传并发布，本平台仅提供信息存储服务。</div>'
    "<script>window.__pwned = 1</script></body></html>"
)


def test_html_page_becomes_a_document_with_chrome_edits(tmp_path):
    (tmp_path / "page.html").write_bytes(PAGE.encode("utf-8"))  # declares gb2312, is UTF-8
    results, skipped = ingest_folder(tmp_path)
    assert not skipped
    (doc,) = results["page.html"].documents
    assert doc.meta["title"] == "海西州推进民族团结"
    assert "近年来，海西州坚持" in doc.text and "大力实施中华优秀传统文化" in doc.text
    assert "网易号" not in doc.text and "首页" not in doc.text and "__pwned" not in doc.text
    chrome = [e for e in doc.edits if e.kind == "html-chrome"]
    assert chrome and all(e.stage == "ingest" and e.evidence["path"] for e in chrome)
    decoded = doc.reconstruct_input()  # the page's text before its chrome was taken out
    assert "网易号" in decoded and "首页" in decoded and "近年来，海西州坚持" in decoded
    assert "__pwned" not in decoded  # scripts are never text
    assert all(decoded[e.src_start : e.src_end] == e.before for e in chrome)


def test_record_with_blank_text_is_skipped_with_a_reason(tmp_path):
    (tmp_path / "a.json").write_text('[{"title": "标题", "content": "   "}, {"content": "正文。"}]', encoding="utf-8")
    results, skipped = ingest_folder(tmp_path)
    assert [d.text for d in results["a.json"].documents] == ["正文。"]
    assert skipped == {"a.json#0": "record has no text (text/content/body missing or blank)"}


# Valid JSON: a lone "\ud800" escape (half of a UTF-16 pair), a lone low half, and a whole pair.
SURROGATE_RECORDS = (
    '{"text": "正文开始\\ud800，一个半对。", "title": "标题\\udc00"}\n'
    '{"text": "完整的一对：\\ud83d\\ude00。", "title": "表情"}\n'
)


def test_a_lone_surrogate_in_json_becomes_a_replacement_character(tmp_path):
    (tmp_path / "half.jsonl").write_text(SURROGATE_RECORDS, encoding="utf-8")
    results, skipped = ingest_folder(tmp_path)
    assert not skipped
    first, second = results["half.jsonl"].documents
    assert first.text == "正文开始\ufffd，一个半对。" and first.meta == {"title": "标题\ufffd"}
    assert second.text == "完整的一对：😀。"  # a pair is the character it encodes


def test_a_lone_surrogate_is_replaced_wherever_a_document_takes_it_from(tmp_path):
    """In its id (which names it, first come) and in metadata of any shape, keys included, in a
    JSON-lines file and in a JSON file."""
    record = {"id": "n\ud800", "text": "正文\udfff。", "author": ["甲\udc00", {"乙\ud803": "\ud801"}]}
    (tmp_path / "ids.jsonl").write_text(f"{json.dumps(record)}\n{json.dumps(record)}\n", encoding="utf-8")
    (tmp_path / "ids.json").write_text(json.dumps([record]), encoding="utf-8")
    results, skipped = ingest_folder(tmp_path)
    assert not skipped
    first, second = results["ids.jsonl"].documents
    [only] = results["ids.json"].documents
    for doc in (first, second, only):
        assert doc.text == "正文\ufffd。" and doc.meta == {"author": ["甲\ufffd", {"乙\ufffd": "\ufffd"}]}
    assert first.source == "ids.jsonl#id=n\ufffd" and second.source == "ids.jsonl#L2"
    assert only.source == "ids.json#id=n\ufffd"


def test_a_field_named_with_a_lone_surrogate_is_read_by_the_name_it_becomes(tmp_path):
    (tmp_path / "named.jsonl").write_text(json.dumps({"\ud800": "正文。", "t\udc00": "标题"}) + "\n", encoding="utf-8")
    settings = IngestSettings(text_fields=["\ufffd"], meta_fields=["t\ufffd"])
    results, skipped = ingest_folder(tmp_path, settings)
    [doc] = results["named.jsonl"].documents
    assert not skipped and doc.text == "正文。" and doc.meta == {"t\ufffd": "标题"}


def test_a_run_over_a_lone_surrogate_writes_and_flags_it(tmp_path, curate_run):
    (tmp_path / "half.jsonl").write_text(SURROGATE_RECORDS, encoding="utf-8")
    result = curate_run([tmp_path / "half.jsonl"], write_report=False)
    lines = (result.version_dir / "documents.jsonl").read_text(encoding="utf-8").splitlines()
    written = {json.loads(line)["text"]: json.loads(line) for line in lines}
    flagged = written["正文开始\ufffd，一个半对。"]
    assert [f["kind"] for f in flagged["flags"]] == ["mojibake"]


def test_charset_detection_is_loaded_only_for_bytes_that_are_not_utf8(tmp_path):
    """UTF-8 input (the usual case) never needs charset_normalizer: it is imported when a file
    is not UTF-8, not at every start-up."""
    import subprocess
    import sys

    (tmp_path / "a.txt").write_text("新闻正文，第一段。", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes("市民在公园里散步，天气很好，大家都很开心。".encode("gbk"))
    script = (
        "import sys; from pathlib import Path\n"
        "from curate.config import IngestSettings\n"
        "from curate.ingest import read_file, scan\n"
        "files, _ = scan([Path(sys.argv[1])], IngestSettings())\n"
        "for f in files:\n"
        "    r = read_file(f, IngestSettings())\n"
        "    print(f.source, r.encoding, 'charset_normalizer' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "a.txt utf-8 False"
    source, encoding, loaded = out[1].split()
    assert (source, loaded) == ("b.txt", "True") and encoding.startswith("gb")


def _changed_once_hashed(monkeypatch, change):
    """The run's hashing of its inputs, then `change()` (another program writing to an input
    just then); returns the hashing as it was."""
    from curate import runner

    hash_inputs = runner.hash_inputs

    def hashed_then_changed(files, *threads):
        skipped = hash_inputs(files, *threads)
        change()
        return skipped

    monkeypatch.setattr(runner, "hash_inputs", hashed_then_changed)
    return hash_inputs


@pytest.mark.parametrize("workers", [1, 2])
def test_an_input_changed_during_the_run_stops_it_in_one_line_without_a_version(tmp_path, monkeypatch, workers):
    # The version id is computed from the inputs' hashes before they are read: a file a scraper
    # is still writing must not give a version of other content under that id.
    from curate import runner

    from .conftest import make_config

    folder = tmp_path / "incoming"
    folder.mkdir()
    for n in range(3):
        (folder / f"{n}.txt").write_text(f"{SIMPLIFIED}\n第{n}篇。\n", encoding="utf-8")

    def append() -> None:
        with (folder / "1.txt").open("a", encoding="utf-8") as handle:
            handle.write("又一段。\n")

    hash_inputs = _changed_once_hashed(monkeypatch, append)
    config = make_config(tmp_path, {"run": {"workers": workers}})
    with pytest.raises(runner.RunError) as failed:
        runner.run(config, inputs=[str(folder)], write_report=False)
    message = str(failed.value)
    assert message.startswith("1.txt: changed while the run was reading its inputs") and "\n" not in message
    versions = tmp_path / "corpus" / "versions"
    assert list(versions.iterdir()) == []  # no version, no temporary folder left
    # unchanged, the same files make a version
    monkeypatch.setattr(runner, "hash_inputs", hash_inputs)
    assert runner.run(config, inputs=[str(folder)], write_report=False).created


def test_inputs_are_hashed_on_several_threads_as_on_one(tmp_path, monkeypatch):
    """The inputs' sha256 (what the version id is made of) on threads: the same digests, each
    on its own file, in the files' order; the large files on the hashing threads, the small
    ones (a thread's turn would cost more than their hashing) on the run's own thread."""
    import hashlib
    import threading

    from curate import runner

    sizes = [0, 1, 3 << 20, 5000, runner.THREADED_HASH_BYTES, 7, (2 << 20) + 1]
    for n, size in enumerate(sizes):
        (tmp_path / f"{n}.txt").write_bytes(bytes((n * 7 + i) % 251 for i in range(size)))
    expected = [hashlib.sha256((tmp_path / f"{n}.txt").read_bytes()).hexdigest() for n in range(len(sizes))]
    hashed_on: dict[str, str] = {}
    file_sha256 = runner.file_sha256

    def spied(path):
        hashed_on[path.name] = threading.current_thread().name
        return file_sha256(path)

    monkeypatch.setattr(runner, "file_sha256", spied)
    here = threading.current_thread().name
    for threads in (1, 4):
        files, _ = scan([tmp_path], IngestSettings())
        files.sort(key=lambda file: int(file.path.stem))
        hashed_on.clear()
        assert runner.hash_inputs(files, threads) == []
        assert [file.sha256 for file in files] == expected
        for n, size in enumerate(sizes):
            threaded = threads > 1 and size >= runner.THREADED_HASH_BYTES
            assert hashed_on[f"{n}.txt"].startswith("curate-hash") if threaded else hashed_on[f"{n}.txt"] == here


def test_hashing_stopped_by_an_error_does_not_hash_the_files_still_queued(tmp_path, monkeypatch):
    """An error (or Ctrl-C) while the inputs are hashed comes out at once: the large files still
    queued for the threads are not hashed first (a terabyte's worth would take minutes)."""
    import time

    from curate import runner

    for n in range(24):  # (0.6 s of hashing on two threads, all of it without the cancel)
        (tmp_path / f"{n:02d}.txt").write_bytes(b"x" * runner.THREADED_HASH_BYTES)
    (tmp_path / "small.txt").write_text("短。", encoding="utf-8")
    hashed = []

    def slow_or_failing(path):
        if path.name == "small.txt":
            time.sleep(0.05)  # (the threads have begun)
            raise ValueError("stop")
        time.sleep(0.05)
        hashed.append(path.name)
        return "0" * 64

    monkeypatch.setattr(runner, "file_sha256", slow_or_failing)
    files, _ = scan([tmp_path], IngestSettings())
    with pytest.raises(ValueError, match="stop"):
        runner.hash_inputs(files, 2)
    assert len(hashed) < 16


def test_an_input_gone_before_it_is_hashed_is_skipped_with_the_reason(tmp_path, monkeypatch):
    """A file the scan found and that is gone (or unreadable) when hashed: skipped, named in the
    manifest with the reason; the run goes on with the others. Again when the others make a
    version that exists: the result says so (the CLI shows it beside "nothing changed")."""
    import errno
    import os

    from curate import ingest, runner
    from curate.version import read_manifest

    from .conftest import make_config

    folder = tmp_path / "incoming"
    folder.mkdir()
    for n in (0, 2):
        (folder / f"{n}.txt").write_text(f"{SIMPLIFIED}\n第{n}篇。\n", encoding="utf-8")
    found = ingest.scan

    def scanned_then_gone(*args):
        result = found(*args)
        (folder / "1.txt").unlink()
        return result

    monkeypatch.setattr(ingest, "scan", scanned_then_gone)
    config = make_config(tmp_path, {"run": {"workers": 2}})
    gone = [{"path": "1.txt", "reason": f"cannot read: {os.strerror(errno.ENOENT)}"}]
    for created in (True, False):
        # (large enough to be hashed on a thread: its error comes back from there)
        (folder / "1.txt").write_bytes(b"x" * runner.THREADED_HASH_BYTES)
        result = runner.run(config, inputs=[str(folder)], write_report=False)
        assert result.created == created
        assert [{"path": s.path, "reason": s.reason} for s in result.skipped] == gone
    manifest = read_manifest(result.version_dir)
    assert manifest["skipped"] == gone
    assert [record["path"] for record in manifest["inputs"]] == ["0.txt", "2.txt"]
    assert manifest["counts"]["documents_in"] == 2


def test_pages_read_by_the_workers_give_what_one_process_gives(tmp_path, monkeypatch):
    # With workers, HTML pages are read (decoded, parsed, extracted) on them, and their
    # documents reach the engine pickled: never unpickled in the driver on their way to a pass.
    # Text and JSON, quick to read, are read in the driver, as with one worker.
    import os

    from curate import ingest, runner
    from curate.engine import LocalEngine

    from .conftest import make_config

    folder = tmp_path / "incoming"
    folder.mkdir()
    for n in range(5):
        (folder / f"page{n}.html").write_bytes(PAGE.replace("海西州", f"第{n}州").encode("utf-8"))
    records = [{"id": n, "text": f"{SIMPLIFIED}第{n}条。"} for n in range(3)]
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    (folder / "records.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:]]), encoding="utf-8")
    (folder / "gbk.txt").write_bytes(SIMPLIFIED.encode("gbk"))
    (folder / "traditional.txt").write_text(TRADITIONAL, encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 4)
    reached: dict[int, set[str]] = {}
    execute = LocalEngine.execute

    def watched_execute(self, docs, stages, finish=None):
        kinds = reached.setdefault(self.workers, set())

        def watched():
            for item in docs:
                kinds.add(type(item).__name__)
                yield item

        return execute(self, watched(), stages, finish)

    monkeypatch.setattr(LocalEngine, "execute", watched_execute)
    read_by = tmp_path / "read_by.txt"
    read_file = ingest.read_file_lazily  # (which `read_file` calls)

    def logged_read_file(file, settings):
        with read_by.open("a", encoding="utf-8") as log:
            log.write(f"{file.source} {os.getpid()}\n")
        return read_file(file, settings)

    monkeypatch.setattr(ingest, "read_file_lazily", logged_read_file)
    monkeypatch.setattr(runner, "READ_TASK_FILES", 2)  # groups of two files: (binary, empty),
    # (gbk, page0): the first with work, read in the driver before the pool forks, (page1,
    # page2), (page3, page4): on the workers, (records, traditional): in the driver
    made = {}
    for workers in (1, 2):
        read_by.write_text("", encoding="utf-8")
        config = make_config(tmp_path / f"w{workers}", {"run": {"workers": workers}})
        made[workers] = runner.run(config, inputs=[str(folder)], write_report=False)
    assert reached == {1: {"Document"}, 2: {"Document", "bytes"}}
    readers = dict(line.split() for line in read_by.read_text(encoding="utf-8").splitlines())
    assert sorted(readers) == sorted(p.name for p in folder.iterdir())
    driver = str(os.getpid())
    assert {name for name, pid in readers.items() if pid != driver} == {f"page{n}.html" for n in range(1, 5)}
    one, two = made[1], made[2]
    assert one.version_id == two.version_id
    manifests = [json.loads((r.version_dir / "manifest.json").read_text(encoding="utf-8")) for r in (one, two)]
    for key in ("inputs", "skipped", "counts"):
        assert manifests[0][key] == manifests[1][key], key
    assert {s["path"] for s in manifests[0]["skipped"]} >= {"empty.txt", "binary.txt"}
    assert any(s["path"].startswith("records.jsonl#") for s in manifests[0]["skipped"])
    for name in ("documents.jsonl", "edits.jsonl"):
        assert (one.version_dir / name).read_bytes() == (two.version_dir / name).read_bytes(), name
    assert b"html-chrome" in (two.version_dir / "edits.jsonl").read_bytes()


def test_a_page_the_parser_rejects_is_skipped_with_its_reason(tmp_path, monkeypatch):
    from curate import html

    extract = html.extract_article

    def rejecting(text, *, source=""):
        if "拒绝" in text:
            raise ValueError(f"{source}: cannot parse HTML (Document is empty)")
        return extract(text, source=source)

    monkeypatch.setattr(html, "extract_article", rejecting)
    (tmp_path / "bad.html").write_text("<html><body><p>拒绝</p></body></html>", encoding="utf-8")
    (tmp_path / "good.html").write_bytes(PAGE.encode("utf-8"))
    results, skipped = ingest_folder(tmp_path)
    assert skipped == {"bad.html": "cannot parse HTML (Document is empty)"}
    assert results["bad.html"].documents == [] and results["bad.html"].encoding == "utf-8"
    assert len(results["good.html"].documents) == 1


# --------------------------------------------------------------------------- JSON lines past max_file_mb
def _varied_jsonl() -> str:
    """JSON lines with every kind of line break, blank and malformed lines, a lone surrogate,
    multi-byte characters and no newline at the end."""
    records = [json.dumps({"id": n, "text": f"{SIMPLIFIED}第{n}条。", "url": f"http://a.example/{n}"},
                          ensure_ascii=False) for n in range(40)]
    breaks = ["\n", "\r\n", "\r", "\n\n", "\r\r\n", "\n \u3000\n"]
    parts = []
    for n, record in enumerate(records):
        parts += [record, breaks[n % len(breaks)]]
        if n == 17:
            parts += ['{"text": "没有结束', "\r\n"]
        if n == 23:
            parts += [SURROGATE_RECORDS.split("\n")[0], "\r"]
    return "".join(parts)


def _read(path: Path, max_file_mb: float, lazily: bool = False):
    from curate.ingest import InputFile, read_file_lazily

    file = InputFile(path=path, source=path.name, size=path.stat().st_size)
    result = (read_file_lazily if lazily else read_file)(file, IngestSettings(max_file_mb=max_file_mb))
    docs = [(d.id, d.source, d.text, d.meta, d.raw_sha256, d.encoding) for d in result.documents]
    return docs, result.skipped, result.encoding, result.file.sha256


@pytest.mark.parametrize("block", [1, 2, 3, 5, 64, 1 << 20])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_json_lines_past_max_file_mb_are_read_block_by_block_as_they_are_read_whole(tmp_path, monkeypatch, block, bom):
    from curate import ingest

    path = tmp_path / "big.jsonl"
    path.write_bytes(bom + _varied_jsonl().encode("utf-8"))
    whole = _read(path, 64)
    monkeypatch.setattr(ingest, "STREAM_BLOCK", block)
    streamed = _read(path, 0.001, lazily=True)  # (1 KB: the file is past it)
    assert streamed == whole
    docs, skipped, encoding, sha256 = whole
    assert len(docs) == 41 and encoding == ("utf-8-sig" if bom else "utf-8") and sha256
    assert any("\ufffd" in text for _, _, text, *_ in docs)  # (the lone surrogate, replaced)
    assert len(skipped) == 1 and skipped[0].reason.startswith("malformed JSON")


def test_json_lines_past_max_file_mb_that_are_not_utf8_stay_skipped(tmp_path):
    records = "".join(json.dumps({"text": f"{SIMPLIFIED}{n}"}, ensure_ascii=False) + "\n" for n in range(40))
    (tmp_path / "gbk.jsonl").write_bytes(records.encode("gbk"))
    (tmp_path / "big.txt").write_text(SIMPLIFIED * 40, encoding="utf-8")
    (tmp_path / "blank.jsonl").write_bytes(b" \n" * 1000)
    settings = IngestSettings(max_file_mb=0.001)
    files, _ = scan([tmp_path], settings)
    reasons = {f.source: [s.reason for s in read_file(f, settings).skipped] for f in files}
    assert reasons == {
        "big.txt": ["larger than 0.001 MB"],
        "blank.jsonl": ["empty file"],
        "gbk.jsonl": ["larger than 0.001 MB and not UTF-8 (JSON lines past that size are read only in UTF-8)"],
    }


def test_json_lines_read_block_by_block_never_hold_the_file(tmp_path, monkeypatch):
    import tracemalloc

    from curate import ingest
    from curate.ingest import InputFile, read_file_lazily

    monkeypatch.setattr(ingest, "STREAM_BLOCK", 1 << 16)
    line = json.dumps({"text": SIMPLIFIED * 3}, ensure_ascii=False)
    peaks, sizes = [], []
    for lines in (2000, 8000):
        path = tmp_path / f"{lines}.jsonl"
        path.write_text((line + "\n") * lines, encoding="utf-8")  # 0.8 and 3.2 MB
        file = InputFile(path=path, source=path.name, size=path.stat().st_size)
        tracemalloc.start()
        try:
            result = read_file_lazily(file, IngestSettings(max_file_mb=0.5))
            count = sum(1 for _ in result.documents)  # (each document dropped once made)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert count == lines and not result.skipped and result.encoding == "utf-8"
        sizes.append(file.size)
    assert peaks[1] < 1.25 * peaks[0] and peaks[1] < sizes[1] / 4, (peaks, sizes)  # blocks, not the file


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_reads_json_lines_past_max_file_mb_as_it_reads_them_whole(tmp_path, workers):
    from curate import runner

    from .conftest import make_config

    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "big.jsonl").write_text(_varied_jsonl(), encoding="utf-8")
    (folder / "small.txt").write_text(SIMPLIFIED, encoding="utf-8")
    made = {}
    for max_file_mb in (64, 0.001):
        config = make_config(tmp_path / f"max-{max_file_mb}", {"run": {"workers": workers},
                                                              "ingest": {"max_file_mb": max_file_mb}})
        made[max_file_mb] = runner.run(config, inputs=[str(folder)], write_report=False)
    whole, streamed = (made[m].version_dir for m in (64, 0.001))
    for name in ("documents.jsonl", "edits.jsonl"):
        assert (streamed / name).read_bytes() == (whole / name).read_bytes(), name
    manifests = [json.loads((d / "manifest.json").read_text(encoding="utf-8")) for d in (whole, streamed)]
    assert manifests[0]["inputs"] == manifests[1]["inputs"] and manifests[0]["skipped"] == manifests[1]["skipped"]
    assert [i["documents"] for i in manifests[1]["inputs"]] == [41, 1]


def test_json_lines_changed_while_read_block_by_block_stop_the_run(tmp_path, monkeypatch):
    from curate import runner
    from curate.engine import LocalEngine

    from .conftest import make_config

    folder = tmp_path / "incoming"
    folder.mkdir()
    path = folder / "big.jsonl"
    path.write_text(_varied_jsonl(), encoding="utf-8")
    execute = LocalEngine.execute

    def changed_once_reading(self, docs, stages, finish=None):
        def watched():
            for n, item in enumerate(docs):
                if n == 0:  # (a scraper appends to the file while the run reads it)
                    with path.open("a", encoding="utf-8") as handle:
                        handle.write('\n{"text": "又一篇。"}\n')
                yield item

        return execute(self, watched(), stages, finish)

    monkeypatch.setattr(LocalEngine, "execute", changed_once_reading)
    config = make_config(tmp_path, {"run": {"workers": 1}, "ingest": {"max_file_mb": 0.001}})
    with pytest.raises(runner.RunError, match=r"^big.jsonl: changed while the run was reading its inputs"):
        runner.run(config, inputs=[str(folder)], write_report=False)
    assert list((tmp_path / "corpus" / "versions").iterdir()) == []


def test_a_run_hashes_json_lines_past_max_file_mb_once_more_as_their_documents_are_made(tmp_path, monkeypatch):
    """A run hashes its inputs first (the version id); reading a JSON-lines file block by block
    then checks its UTF-8 without hashing it again (its documents carry the run's hash), and
    the read that makes its documents hashes it to catch a change: one SHA-256 of the file in
    `ingest`, not two. Read on its own (no hash known yet), the check hashes it too."""
    import hashlib
    from types import SimpleNamespace

    from curate import ingest, runner
    from curate.ingest import InputFile, read_file_lazily

    from .conftest import make_config

    folder = tmp_path / "incoming"
    folder.mkdir()
    path = folder / "big.jsonl"
    path.write_text(_varied_jsonl() * 3, encoding="utf-8")
    size = path.stat().st_size
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    hashed = []

    class Counted:
        def __init__(self, data: bytes = b"") -> None:
            self.digest = hashlib.sha256()
            self.update(data)

        def update(self, data: bytes) -> None:
            hashed.append(len(data))
            self.digest.update(data)

        def hexdigest(self) -> str:
            return self.digest.hexdigest()

    monkeypatch.setattr(ingest, "hashlib", SimpleNamespace(sha256=Counted))  # (`ingest`'s alone)
    config = make_config(tmp_path, {"run": {"workers": 1}, "ingest": {"max_file_mb": 0.001}})
    made = runner.run(config, inputs=[str(folder)], write_report=False)
    assert sum(hashed) == size
    manifest = json.loads((made.version_dir / "manifest.json").read_text(encoding="utf-8"))
    whole = read_file(InputFile(path=path, source="big.jsonl", size=size), IngestSettings())
    assert manifest["inputs"][0]["sha256"] == expected and manifest["inputs"][0]["documents"] == len(whole.documents)
    for known, times in (("", 2), (expected, 1)):  # read on its own, without the run's hash and with it
        hashed.clear()
        file = InputFile(path=path, source="big.jsonl", size=size, sha256=known)
        result = read_file_lazily(file, IngestSettings(max_file_mb=0.001))
        assert {doc.raw_sha256 for doc in result.documents} == {expected} == {result.file.sha256}
        assert sum(hashed) == times * size


@pytest.mark.parametrize("to", ["blank", "other records"])
def test_json_lines_past_max_file_mb_changed_after_they_were_hashed_stop_the_run(tmp_path, monkeypatch, to):
    """The check of a file read block by block takes the run's hash as the file's (it does not
    hash it again); a file changed since is told all the same: by the read that makes its
    documents, or, changed to blank (no documents), by the check, which then hashes it."""
    from curate import runner

    from .conftest import make_config

    folder = tmp_path / "incoming"
    folder.mkdir()
    path = folder / "big.jsonl"
    path.write_text(_varied_jsonl(), encoding="utf-8")
    changed = " \n" * 2000 if to == "blank" else _varied_jsonl().replace("第", "第 ")
    _changed_once_hashed(monkeypatch, lambda: path.write_text(changed, encoding="utf-8"))
    config = make_config(tmp_path, {"run": {"workers": 1}, "ingest": {"max_file_mb": 0.001}})
    with pytest.raises(runner.RunError, match=r"^big.jsonl: changed while the run was reading its inputs"):
        runner.run(config, inputs=[str(folder)], write_report=False)
    assert list((tmp_path / "corpus" / "versions").iterdir()) == []


# --------------------------------------------------------------------------- JSON parsed by orjson
_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12)
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_JSON_VALUES, st.booleans())
def test_json_is_parsed_as_the_standard_parser_parses_it(value, ensure_ascii):
    # Big integers (which orjson reads as floats), NaN and infinities (which it refuses) and
    # lone surrogates (escaped, with ensure_ascii) included: the same value, float for float.
    from curate.ingest import parsed_json

    text = json.dumps(value, ensure_ascii=ensure_ascii)
    assert repr(parsed_json(text)) == repr(json.loads(text))


@pytest.mark.parametrize(
    "text",
    ['{"id": 18446744073709551616}', "[-9223372036854775809, 1]", "[NaN, 1e400]", '"\\ud800"', '{"a":1,"a":2}',
     "[0.1, 5e-324]", " {} ", "[" * 900 + "0.5" + "]" * 900],
)
def test_json_the_two_parsers_differ_on_is_parsed_as_the_standard_one_parses_it(text):
    from curate.ingest import parsed_json

    assert repr(parsed_json(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ['{"a": 1,}', "[1 2]", '{"a": "x', "", "[01]", '{"a":\t"b" "c"}'])
def test_malformed_json_raises_the_standard_parsers_error(text):
    from curate.ingest import parsed_json

    with pytest.raises(json.JSONDecodeError) as ours:
        parsed_json(text)
    with pytest.raises(json.JSONDecodeError) as standard:
        json.loads(text)
    assert (ours.value.msg, ours.value.pos) == (standard.value.msg, standard.value.pos)
