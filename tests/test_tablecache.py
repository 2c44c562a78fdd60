"""`curate.tablecache`: derived tables kept on disk are the tables built, rebuilt when what they
depend on changes or the cache is damaged, and never needed: no cache, no error."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from curate import minhash, t2s, tablecache


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "tables"
    monkeypatch.setenv("CURATE_CACHE_DIR", str(folder))
    return folder


def counting_build(calls: list[int]):
    def build() -> tuple[np.ndarray, np.ndarray]:
        calls.append(1)
        return np.arange(10, dtype=np.uint32) * 3, np.array([True, False, True])

    return build


def assert_tables(found: tuple[np.ndarray, ...]) -> None:
    assert [a.tolist() for a in found] == [list(range(0, 30, 3)), [True, False, True]]
    assert [a.dtype for a in found] == [np.uint32, np.bool_]
    assert not any(a.flags.writeable for a in found)


def test_a_table_is_built_once_then_read_from_disk(cache: Path) -> None:
    calls: list[int] = []
    first = tablecache.arrays("t", counting_build(calls), ["lib==1"])
    second = tablecache.arrays("t", counting_build(calls), ["lib==1"])
    assert calls == [1]
    assert_tables(first)
    assert_tables(second)
    assert len(list(cache.iterdir())) == 1


def test_a_changed_dependency_builds_the_table_again(cache: Path) -> None:
    calls: list[int] = []
    tablecache.arrays("t", counting_build(calls), ["lib==1"])
    tablecache.arrays("t", counting_build(calls), ["lib==2"])
    assert calls == [1, 1]
    assert len(list(cache.iterdir())) == 2


@pytest.mark.parametrize("damage", ["truncated array", "missing count", "bad count"])
def test_a_damaged_table_is_built_again_and_repaired(cache: Path, damage: str) -> None:
    calls: list[int] = []
    tablecache.arrays("t", counting_build(calls), ["lib==1"])
    (folder,) = cache.iterdir()
    if damage == "truncated array":
        (folder / "0.npy").write_bytes((folder / "0.npy").read_bytes()[:70])
    elif damage == "missing count":
        (folder / "count").unlink()
    else:
        (folder / "count").write_text("x")
    assert_tables(tablecache.arrays("t", counting_build(calls), ["lib==1"]))
    assert calls == [1, 1]
    assert_tables(tablecache.arrays("t", counting_build(calls), ["lib==1"]))
    assert calls == [1, 1]  # repaired: read from disk again


def test_switched_off_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls: list[int] = []
    assert_tables(tablecache.arrays("t", counting_build(calls), ["lib==1"]))
    assert_tables(tablecache.arrays("t", counting_build(calls), ["lib==1"]))
    assert calls == [1, 1]
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_cache_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CURATE_CACHE_DIR", str(blocker / "tables"))
    calls: list[int] = []
    assert_tables(tablecache.arrays("t", counting_build(calls), ["lib==1"]))
    assert calls == [1]


def test_the_default_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CURATE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tablecache.cache_dir() == tmp_path / "curate"


@pytest.mark.parametrize(
    ("cached", "build"),
    [
        (minhash._fold_tables, minhash._build_fold_tables),
        (t2s._script_lut, lambda: (t2s._build_script_lut(),)),
    ],
)
def test_the_real_tables_read_back_equal_the_tables_built(cache: Path, cached, build) -> None:
    built = build()
    for _ in range(2):  # stored, then read back from disk
        cached.cache_clear()
        found = cached()
        found = found if isinstance(found, tuple) else (found,)
        assert len(found) == len(built)
        for a, b in zip(found, built, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    assert len(list(cache.iterdir())) == 1
    cached.cache_clear()


def test_a_table_stored_meanwhile_by_another_run_is_kept(cache: Path) -> None:
    calls: list[int] = []
    tablecache.arrays("t", counting_build(calls), ["lib==1"])
    (folder,) = cache.iterdir()
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    tablecache._store(folder, (np.zeros(3, np.uint8),))  # a second run that built it too
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert [p.name for p in cache.iterdir()] == [folder.name]  # its staging folder is gone


def test_the_minhash_permutations_read_back_equal_those_drawn(cache: Path) -> None:
    import subprocess
    import sys

    drawn = minhash._draw_permutations(128, 7)
    for _ in range(2):  # drawn and stored, then read back from disk
        minhash.permutations.cache_clear()
        found = minhash.permutations(128, 7)
        assert [a.dtype for a in found] == [np.uint32, np.uint32]
        assert all(np.array_equal(a, b) for a, b in zip(found, drawn, strict=True))
    assert len(list(cache.iterdir())) == 1
    minhash.permutations.cache_clear()
    minhash.permutations(32, 7)  # another size, another table
    assert len(list(cache.iterdir())) == 2
    minhash.permutations.cache_clear()
    # a later run takes them from disk without importing numpy.random (about 6 ms of start-up)
    code = "import sys; from curate import minhash; minhash.permutations(128, 7); print('numpy.random' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_bigram_model_read_back_equals_the_shipped_file(cache: Path, tmp_path: Path) -> None:
    import shutil
    import zipfile

    from curate.detectors.bigram import COMPILED_ARRAYS, DEFAULT_MODEL, BigramModel

    with np.load(DEFAULT_MODEL, allow_pickle=False) as data:
        shipped = {name: data[name] for name in COMPILED_ARRAYS}
    for _ in range(2):  # inflated from the zip and stored, then read back from disk
        model = BigramModel.load(DEFAULT_MODEL)
        for name, array in shipped.items():
            found = getattr(model, name)
            assert found.dtype == array.dtype and np.array_equal(found, array), name
    assert len(list(cache.iterdir())) == 1
    # another model file (here: the same arrays, stored with another compression) is another table
    other = tmp_path / "other.npz"
    with zipfile.ZipFile(DEFAULT_MODEL) as source, zipfile.ZipFile(other, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info), compress_type=zipfile.ZIP_STORED)
    assert BigramModel.load(other).symbols == model.symbols
    assert len(list(cache.iterdir())) == 2
    shutil.rmtree(cache)
    assert BigramModel.load(DEFAULT_MODEL).symbols == model.symbols  # and without its table


def counting_square(calls: list[str]):
    def compute(argument: str) -> tuple[str, list[int]]:
        calls.append(argument)
        return argument, [len(argument)] * 2

    return compute


def test_a_memo_computes_once_then_reads_from_disk(cache: Path) -> None:
    calls: list[str] = []
    first = tablecache.JsonMemo("m", ["lib==1"])
    assert first.get("ab", counting_square(calls)) == ["ab", [2, 2]]  # as JSON gives it back
    assert first.get("ab", counting_square(calls)) == ["ab", [2, 2]]
    first.save()
    second = tablecache.JsonMemo("m", ["lib==1"])
    assert second.get("ab", counting_square(calls)) == ["ab", [2, 2]]
    assert second.get("网", counting_square(calls)) == ["网", [1, 1]]
    assert calls == ["ab", "网"]
    other = tablecache.JsonMemo("m", ["lib==2"])  # another dependency: computed again
    other.get("ab", counting_square(calls))
    assert calls == ["ab", "网", "ab"]
    second.save()
    other.save()
    assert len(list(cache.iterdir())) == 2


@pytest.mark.parametrize("damage", ["truncated", "an edited entry", "no digest"])
def test_a_damaged_memo_is_computed_again_and_repaired(cache: Path, damage: str) -> None:
    calls: list[str] = []
    memo = tablecache.JsonMemo("m", ["lib==1"])
    memo.get("abc", counting_square(calls))
    memo.save()
    (path,) = cache.iterdir()
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[:-5])
    elif damage == "an edited entry":
        path.write_bytes(data.replace(b"[3, 3]", b"[4, 4]"))
    else:
        path.write_bytes(data.partition(b"\n")[2])
    again = tablecache.JsonMemo("m", ["lib==1"])
    assert again.get("abc", counting_square(calls)) == ["abc", [3, 3]]
    assert calls == ["abc", "abc"]
    again.save()
    assert tablecache.JsonMemo("m", ["lib==1"]).get("abc", counting_square(calls)) == ["abc", [3, 3]]
    assert calls == ["abc", "abc"]


def test_a_memo_switched_off_or_unwritable_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setenv("CURATE_CACHE_DIR", "off")
    memo = tablecache.JsonMemo("m", ["lib==1"])
    assert memo.get("a", counting_square(calls)) == ["a", [1, 1]]
    memo.save()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CURATE_CACHE_DIR", str(blocker / "cache"))
    memo = tablecache.JsonMemo("m", ["lib==1"])
    assert memo.get("a", counting_square(calls)) == ["a", [1, 1]]
    memo.save()
    assert calls == ["a", "a"]
    assert list(tmp_path.iterdir()) == [blocker]


def test_a_memo_past_its_size_keeps_its_newer_half(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tablecache.JsonMemo, "MAX_ENTRIES", 4)
    calls: list[str] = []
    memo = tablecache.JsonMemo("m", ["lib==1"])
    for argument in "abcde":
        memo.get(argument, counting_square(calls))
    memo.save()
    again = tablecache.JsonMemo("m", ["lib==1"])
    for argument in "abcde":
        again.get(argument, counting_square(calls))
    assert calls == [*"abcde", *"abc"]  # d and e were kept


def test_the_derived_values_read_back_equal_those_computed(cache: Path) -> None:
    """Every shipped rule's expansion and required literals, the fold table, and the stages'
    character classes: computed and stored, then read back from disk, equal to the computation
    (the rule files' parsed data too: tests/test_rules.py)."""
    from curate import config, rules
    from curate.runner import load_rules
    from curate.stages import repair, repeated_lines

    cached = [rules._memo, rules._fold_table, repair._gbk_suspect_re, repeated_lines._plain_characters]
    for function in cached:
        function.cache_clear()
    try:
        for _ in range(2):  # stored, then read back
            for function in cached:
                function.cache_clear()
            ruleset = load_rules(config.build({}))
            index = rules.TriggerIndex(ruleset.rules)
            cut = 0
            for rule in ruleset.rules:
                if rule.source != rule.pattern.pattern:  # (a rule with variants)
                    assert rule.pattern.pattern == rules.expand_variants(rule.source)
                assert (index.triggers[rule.id], index.extra.get(rule.id, ())) == rules.pattern_requirements(rule.pattern)
                if rule.branches is not None:  # (an inline rule searched alternative by alternative)
                    assert tuple(b.pattern for b in rule.branches) == rules.pattern_branches(rule.pattern)
                    cut += 1
            assert cut > 0
            assert rules._fold_table() == rules._built_fold_table("")
            assert repair._gbk_suspect_re().pattern == repair._gbk_suspect_class()
            assert [p.pattern for p in repeated_lines._plain_characters()] == list(repeated_lines._plain_patterns())
        names = sorted(path.name.rsplit("-", 1)[0] for path in cache.iterdir() if path.suffix == ".json")
        assert names == [
            "gbk-suspect-class", "repeated-lines-plain", "rule-branches", "rule-files", "rule-fold-table",
            "rule-requirements", "rule-variants",
        ]
    finally:
        for function in cached:
            function.cache_clear()


@pytest.mark.parametrize(
    "distribution", ["regex", "opencc-python-reimplemented", "numpy", "lz4", "Opencc_Python.Reimplemented"]
)
def test_package_version_is_importlib_metadatas(distribution: str) -> None:
    from importlib import metadata

    assert tablecache.package_version(distribution) == f"{distribution}=={metadata.version(distribution)}"


def test_package_version_of_what_is_not_installed() -> None:
    assert tablecache.package_version("no-such-distribution-here") == "no-such-distribution-here (not installed)"


def test_package_version_reads_the_first_dist_info_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As importlib.metadata: the first folder of `sys.path` holding the distribution's
    `.dist-info` gives its version (a copy installed over another, say, with --target)."""
    from importlib import metadata

    for folder, version in (("first", "2.0.1"), ("second", "1.0")):
        info = tmp_path / folder / f"made_up_dist-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: made-up-dist\nVersion: {version}\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "first"), str(tmp_path / "second"), *sys.path])
    assert tablecache._dist_info_version("made-up-dist") == "2.0.1" == metadata.version("made-up-dist")
    assert tablecache._dist_info_version("Made.Up_Dist") == "2.0.1"
    assert tablecache._dist_info_version("made-up") is None


def test_package_version_leaves_an_egg_found_first_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An `.egg-info` before the `.dist-info` (a `setup.py develop` copy, say) is the copy
    importlib.metadata reads, and so does package_version then."""
    from importlib import metadata

    egg = tmp_path / "first" / "made_up_egg.egg-info"
    egg.mkdir(parents=True)
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: made-up-egg\nVersion: 3.0\n")
    info = tmp_path / "second" / "made_up_egg-1.0.DIST-INFO"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: made-up-egg\nVersion: 1.0\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "first"), str(tmp_path / "second"), *sys.path])
    assert tablecache._dist_info_version("made-up-egg") is None
    assert tablecache.package_version("made-up-egg") == "made-up-egg==3.0" == f"made-up-egg=={metadata.version('made-up-egg')}"


def test_package_version_reads_the_metadata_and_leaves_eggs_and_zips_to_importlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version as METADATA says it (a folder name escapes "-" as "_"); an `.egg` on the
    path, or a zip file, are importlib.metadata's to read."""
    import zipfile
    from importlib import metadata

    info = tmp_path / "plain" / "made_up_dashed-2.0_1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: made-up-dashed\nVersion: 2.0-1\n\nVersion: 9\n")
    egg = tmp_path / "made_up_dashed-5.0-py3.11.egg"
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO" / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: made-up-dashed\nVersion: 5.0\n")
    archive = tmp_path / "packed.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        packed.writestr("made_up_dashed-4.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: made-up-dashed\nVersion: 4.0\n")
    rest = sys.path[:]
    monkeypatch.setattr(sys, "path", [str(tmp_path / "plain"), *rest])
    assert tablecache._dist_info_version("made-up-dashed") == "2.0-1" == metadata.version("made-up-dashed")
    for first in (egg, archive):
        monkeypatch.setattr(sys, "path", [str(first), str(tmp_path / "plain"), *rest])
        assert tablecache._dist_info_version("made-up-dashed") is None
