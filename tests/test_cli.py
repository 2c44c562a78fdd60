"""The command line: help everywhere, one-line errors with exit code 2, and the version commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from curate.cli import main

from .conftest import ROOT, SEED_FILES


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
    return found


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with a curate.toml pointing at tmp corpus/reports and the project's rules."""
    (tmp_path / "in").mkdir()
    for path in SEED_FILES:
        (tmp_path / "in" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "curate.toml").write_text(
        f'[run]\ninput = ["in"]\nrules = ["{ROOT / "rules"}"]\n', encoding="utf-8"
    )
    return tmp_path


def invoke(project: Path, *args: str):
    """Run the CLI with `project` as the working directory (where curate.toml is found)."""
    old = os.getcwd()
    os.chdir(project)
    try:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)


def test_every_command_has_help():
    commands = all_commands(main)
    assert {("run",), ("log",), ("show",), ("verify",), ("export",), ("config", "show")} <= set(commands)
    for path in commands:
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Usage:" in result.output


def test_config_show_is_the_effective_configuration(project):
    (project / "curate.toml").write_text(
        (project / "curate.toml").read_text(encoding="utf-8") + "\n[punctuation]\nenabled = false\n",
        encoding="utf-8",
    )
    result = invoke(project, "config", "show")
    assert result.exit_code == 0
    shown = tomllib.loads(result.output)
    assert shown["punctuation"]["enabled"] is False
    assert shown["run"]["input"] == ["in"]
    assert "# Run this stage." in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[nonsense]\nx = 1\n", "unknown section [nonsense]"),
        ("[run]\ncorpus = 3\n", "run.corpus should be str"),
        ("[reflow]\nenabeld = true\n", "unknown key reflow.enabeld"),
        ("[run\n", "not valid TOML"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(project, content, message):
    (project / "curate.toml").write_text(content, encoding="utf-8")
    result = invoke(project, "run")
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_missing_input_is_exit_2(project):
    result = invoke(project, "run", "nowhere")
    assert result.exit_code == 2
    assert result.output.strip() == "curate: nowhere: no such file or folder"


def test_a_run_from_a_folder_without_rules_uses_the_shipped_packs(project, tmp_path_factory):
    """No curate.toml and no `rules/` where curate runs: the default rules folder names the
    packs shipped with curate, the same rules (so the same version, byte for byte: a flag's
    evidence once named the spam lexicon by its path) as naming them."""
    elsewhere, copied = tmp_path_factory.mktemp("elsewhere"), tmp_path_factory.mktemp("copied")
    for folder in (elsewhere, copied):
        shutil.copytree(project / "in", folder / "in")
    shutil.copytree(ROOT / "rules", copied / "rules")  # (found there as `./rules`)
    assert not (elsewhere / "rules").exists()
    folders = (elsewhere, project, copied)
    runs = [invoke(folder, "run", "in", "--workers", "1", "-q") for folder in folders]
    assert [r.exit_code for r in runs] == [0, 0, 0], [r.output for r in runs]
    latest = {(folder / "corpus" / "LATEST").read_text().strip() for folder in folders}
    assert len(latest) == 1
    version = latest.pop()
    documents = {(folder / "corpus" / "versions" / version / "documents.jsonl").read_bytes() for folder in folders}
    assert len(documents) == 1
    assert b'"lexicon":"lexicons/spam.toml"' in documents.pop()  # (the sample holds spam)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_quiet_run_prints_one_line_and_never_loads_rich(project, workers):
    """`curate run -q`: the result on one line, however long its paths (a script reads it), and
    none of rich's modules imported (20-30 ms of every start that shows nothing with them), nor
    ftfy, which no text of the sample files needs (20-30 ms more: `repair._ftfy`), nor
    importlib.metadata (10-15 ms: `tablecache.package_version` reads the `.dist-info` names),
    nor numpy.ma (8 ms, which np.median and np.unique import on their first call). With one
    worker, every stage runs in the process that is asked; with two, the driver's own part."""
    deep = project / ("a-long-folder-name-" * 6) / "corpus"
    script = (
        "import sys; from curate.cli import main\n"
        f"main(['run', '-q', '--workers', {workers!r}, '--corpus', {str(deep)!r}, '--reports', {str(project / 'reports')!r}],"
        " standalone_mode=False)\n"
        "print('rich' in sys.modules or any(name.startswith('rich.') for name in sys.modules))\n"
        "print('ftfy' in sys.modules or 'wcwidth' in sys.modules)\n"
        "print('importlib.metadata' in sys.modules)\n"
        "print('numpy.ma' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=project, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"},  # (this checkout's curate)
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    *printed, loaded, ftfy_loaded, metadata_loaded, masked_loaded = done.stdout.splitlines()
    version = (deep / "LATEST").read_text().strip()
    assert printed == [
        f"version {version} written to {deep / 'versions' / version}; "
        f"report {project / 'reports' / version / 'report.html'}"
    ]
    assert loaded == "False"
    assert ftfy_loaded == "False"
    assert metadata_loaded == "False"
    assert masked_loaded == "False"


def test_the_curate_process_ends_at_once_with_its_output_and_exit_code(project):
    """`python -m curate` (as the console script): its output flushed, its exit code kept, the
    process ended without Python's teardown (`cli.entry`): an exit handler never runs."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # (this checkout's curate)

    def curate(*args: str, sitecustomize: bool = False) -> subprocess.CompletedProcess[str]:
        prefix = ["-c", "import atexit, runpy; atexit.register(print, 'exit handler ran');"
                  " runpy.run_module('curate', run_name='__main__')"] if sitecustomize else ["-m", "curate"]
        return subprocess.run([sys.executable, *prefix, *args], cwd=project, capture_output=True,
                              text=True, timeout=300, env=env)

    done = curate("run", "-q", sitecustomize=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    version = (project / "corpus" / "LATEST").read_text().strip()
    assert done.stdout.startswith(f"version {version} written to ")  # (through a pipe)
    assert "exit handler ran" not in done.stdout
    again = curate("run", "-q")
    assert again.returncode == 0 and again.stdout.startswith(f"nothing changed: version {version}")
    missing = curate("run", "-q", "nowhere")
    assert (missing.returncode, missing.stdout, missing.stderr) == (2, "", "curate: nowhere: no such file or folder\n")
    unknown = curate("nosuch")
    assert unknown.returncode == 2 and "No such command 'nosuch'" in unknown.stderr
    shown = curate("--version")
    assert shown.returncode == 0 and shown.stdout.startswith("curate, version ")


def test_run_log_show_verify_export(project):
    first = invoke(project, "run")
    assert first.exit_code == 0, first.output
    assert "version" in first.output and "documents out" in first.output
    version = (project / "corpus" / "LATEST").read_text().strip()
    again = invoke(project, "run")
    assert again.exit_code == 0 and "nothing changed" in again.output

    log = invoke(project, "log")
    assert version in log.output and "first version" in log.output

    shown = invoke(project, "show", version[:6])
    assert shown.exit_code == 0 and "documents_out" in shown.output
    doc = invoke(project, "show", "LATEST", "000_d8f9418d4d2c02c0.txt")
    assert doc.exit_code == 0 and "守望相助" in doc.output
    missing = invoke(project, "show", "LATEST", "nope")
    assert missing.exit_code == 2
    unknown = invoke(project, "show", "0000000000")
    assert unknown.exit_code == 2 and "no version" in unknown.output

    assert invoke(project, "verify").exit_code == 0

    out = project / "out"
    assert invoke(project, "export", "--format", "jsonl", "--out", str(out / "d.jsonl")).exit_code == 0
    records = [json.loads(line) for line in (out / "d.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 5

    assert invoke(project, "export", "--format", "parquet", "--out", str(out / "d.parquet")).exit_code == 0
    import pyarrow.parquet as pq

    table = pq.read_table(out / "d.parquet")
    assert table.column("text").to_pylist() == [r["text"] for r in records]
    assert [json.loads(m) for m in table.column("meta").to_pylist()] == [r["meta"] for r in records]

    assert invoke(project, "export", "--format", "txt", "--out", str(out / "txt")).exit_code == 0
    for record in records:
        assert (out / "txt" / f"{record['id']}.txt").read_text(encoding="utf-8") == record["text"] + "\n"


def test_verify_exit_1_on_tampering(project):
    assert invoke(project, "run").exit_code == 0
    version = (project / "corpus" / "LATEST").read_text().strip()
    path = project / "corpus" / "versions" / version / "documents.jsonl"
    path.write_text(path.read_text(encoding="utf-8").replace("民族", "名族", 1), encoding="utf-8")
    result = invoke(project, "verify")
    assert result.exit_code == 1
    assert "sha256 differs" in result.output


def test_broken_rule_file_stops_the_run_before_any_work(project):
    (project / "myrules").mkdir()
    (project / "myrules" / "bad.toml").write_text(
        '[[rule]]\nid = "x"\ndescription = "d"\nscope = "line"\naction = "drop"\npattern = "(unclosed"\n'
        'must_match = ["a"]\nmust_not_match = ["b"]\n',
        encoding="utf-8",
    )
    (project / "curate.toml").write_text(
        f'[run]\ninput = ["in"]\nrules = ["{ROOT / "rules"}", "myrules"]\n', encoding="utf-8"
    )
    result = invoke(project, "run")
    assert result.exit_code == 2
    assert "bad.toml" in result.output and "x" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (project / "corpus" / "versions").exists()


def test_unknown_policy_action_is_a_one_line_error(project):
    (project / "curate.toml").write_text(
        f'[run]\ninput = ["in"]\nrules = ["{ROOT / "rules"}"]\n[policy]\nactions = {{ spam-injection = "explode" }}\n',
        encoding="utf-8",
    )
    result = invoke(project, "run")
    assert result.exit_code == 2
    assert "explode" in result.output and len(result.output.strip().splitlines()) == 1


def test_run_says_when_the_compiled_loops_are_missing_and_gives_the_same_corpus(
    project, tmp_path_factory, monkeypatch
):
    from curate import minhash

    if minhash._kernels is None:
        pytest.skip("curate._kernels was not built here")
    other = tmp_path_factory.mktemp("numpy-only")
    shutil.copytree(project, other, dirs_exist_ok=True)  # the same inputs and settings
    built = invoke(project, "run")
    assert built.exit_code == 0 and "not built" not in built.output
    monkeypatch.setattr(minhash, "_kernels", None)
    fallback = invoke(other, "run")
    assert fallback.exit_code == 0
    assert "compiled loops (curate._kernels) are not built" in " ".join(fallback.output.split())

    def documents(root):
        version = (root / "corpus" / "LATEST").read_text().strip()
        return (root / "corpus" / "versions" / version / "documents.jsonl").read_bytes()

    assert documents(project) == documents(other)


def test_run_quiet_prints_only_the_result_and_paths_verbatim(project, tmp_path):
    """-q: skipped inputs are not printed (nor rendered); the result line shows the corpus
    folder as it is named, markup and emoji codes included; each run has the process freeze
    what is alive when it exits (`gc.freeze`, registered with atexit)."""
    import atexit
    import gc

    (project / "in" / "notes.bin").write_bytes(b"\x00\x01")
    corpus = tmp_path / "c[red]x[/red]:thumbs_up:"
    registered = []
    original = atexit.register
    try:
        atexit.register = lambda func, *a, **k: registered.append(func) or original(func, *a, **k)
        loud = invoke(project, "run", "--corpus", str(tmp_path / "loud"))
        quiet = invoke(project, "run", "--corpus", str(corpus), "-q")
    finally:
        atexit.register = original
        atexit.unregister(gc.freeze)  # (this test process is not ending)
    assert loud.exit_code == 0 and quiet.exit_code == 0, quiet.output
    assert "notes.bin" in loud.output
    assert "notes.bin" not in quiet.output
    assert "".join(str(corpus).split()) in "".join(quiet.output.split())
    assert registered.count(gc.freeze) == 2
