"""report.html in a real browser: headless Chromium opens the file from disk (no server).

Needs the Debian packages `chromium` and `chromium-driver` and the pip package `selenium`;
skipped with a reason when either is missing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from curate.report import write_reports
from tests.report_helpers import sample_docs, write_version

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1600",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
                       reason="needs /usr/bin/chromium and /usr/bin/chromedriver (apt: chromium chromium-driver)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs the selenium package")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="curate-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def report_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser")
    version = write_version(root / "corpus", "v1", sample_docs())
    return write_reports(version, root / "reports")


def visible_docs(driver: object) -> list[str]:
    from selenium.webdriver.common.by import By

    return [a.get_attribute("data-id") for a in driver.find_elements(By.CSS_SELECTOR, "article.doc")]  # type: ignore[attr-defined]


def test_report_in_headless_chromium(browser: object, report_files: dict[str, Path], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    report = json.loads(report_files["json"].read_text(encoding="utf-8"))
    driver.get(report_files["html"].resolve().as_uri())  # type: ignore[attr-defined]

    # The summary shows the counts of report.json.
    for key, value in report["summary"]["counts"].items():
        shown = driver.find_element(By.ID, f"count-{key}").text  # type: ignore[attr-defined]
        assert int(shown.replace(",", "")) == value, key
    assert len(visible_docs(driver)) == len(report["documents"])

    # The hostile document shows its markup as text and nothing in it ran.
    assert driver.execute_script("return typeof window.__pwned") == "undefined"  # type: ignore[attr-defined]
    hostile = next(d for d in report["documents"] if d["source"] == "web/hostile.html")
    article = driver.find_element(By.ID, f"doc-{hostile['id']}")  # type: ignore[attr-defined]
    assert "<script>window.__pwned=1</script>" in article.text
    assert '<img src=x onerror="window.__pwned=2">' in article.text
    assert not article.find_elements(By.TAG_NAME, "img") and not article.find_elements(By.TAG_NAME, "script")

    # Chinese text and the diff markup are there.
    trad = next(d for d in report["documents"] if d["source"] == "news/trad.txt")
    trad_article = driver.find_element(By.ID, f"doc-{trad['id']}")  # type: ignore[attr-defined]
    dels = [e.text for e in trad_article.find_elements(By.CSS_SELECTOR, "del.drop")]
    assert "特別聲明:以上內容僅供參考↵" in dels
    assert [e.text for e in trad_article.find_elements(By.CSS_SELECTOR, "del.meta")] == ["本报记者·王小明↵"]
    # The conversion travels as "sub" segments; the page shows each changed run old→new.
    assert any(s["k"] == "sub" for s in trad["diff"])
    replaced = [e.text for e in trad_article.find_elements(By.CSS_SELECTOR, "del.rep")]
    inserted = [e.text for e in trad_article.find_elements(By.CSS_SELECTOR, "ins")]
    assert replaced[:3] == ["團結進", ",", "發"] and inserted[:3] == ["团结进", "，", "发"]

    driver.save_screenshot(str(tmp_path / "report-all.png"))  # type: ignore[attr-defined]

    # A filter: one rule, only the documents it touched.
    Select(driver.find_element(By.ID, "f-rule")).select_by_value("netease-notice")  # type: ignore[attr-defined]
    assert visible_docs(driver) == [trad["id"]]
    assert "1 of" in driver.find_element(By.ID, "match-count").text  # type: ignore[attr-defined]
    # Within it, the other rules' edits are shown applied and unmarked.
    trad_article = driver.find_element(By.ID, f"doc-{trad['id']}")  # type: ignore[attr-defined]
    assert not trad_article.find_elements(By.CSS_SELECTOR, "del.meta")
    Select(driver.find_element(By.ID, "f-rule")).select_by_value("")  # type: ignore[attr-defined]

    # The text search.
    search = driver.find_element(By.ID, "f-search")  # type: ignore[attr-defined]
    search.send_keys("ld体育")
    spam = next(d for d in report["documents"] if d["source"] == "news/spam.txt")
    assert visible_docs(driver) == [spam["id"]]
    driver.save_screenshot(str(tmp_path / "report-search.png"))  # type: ignore[attr-defined]
    assert (tmp_path / "report-search.png").stat().st_size > 0

    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
    assert errors == []  # no script error, no blocked request, no CSP violation
    assert driver.execute_script("return typeof window.__pwned") == "undefined"  # type: ignore[attr-defined]
