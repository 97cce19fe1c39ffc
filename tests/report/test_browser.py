"""``specmusic report`` pages in a real browser: Debian's chromium, driven headless by Selenium.

For every kind: the page loads with no console error (a missing picture or audio file is a SEVERE
"Failed to load resource" entry), every ``<img>`` has a natural size, every ``<audio>`` reads its
metadata (duration > 0); on the embed map a hover names the track and a click plays it. One browser
for the module. Skipped, saying why, without chromium, chromedriver or selenium (``.ci/run``
installs both browser packages with apt). Selenium Manager is never asked to download a driver:
the driver and the browser are given by path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from specmusic.report import KINDS, build_report
from tests.report.test_report import ODD, make_outputs

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TIMEOUT = 15.0

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip("no chromium or chromedriver (apt-get install chromium chromium-driver)", allow_module_level=True)


@pytest.fixture(scope="module")
def driver():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1200,900", "--no-first-run",
                "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, were it ever called, must not download
    try:
        browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except Exception as exc:  # noqa: BLE001 - a browser that cannot start is a reason to skip, given
        pytest.skip(f"chromium did not start under chromedriver: {str(exc).splitlines()[0]}")
    yield browser
    browser.quit()
    if offline is None:
        os.environ.pop("SE_OFFLINE", None)
    else:
        os.environ["SE_OFFLINE"] = offline


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    outputs = make_outputs(tmp_path_factory.mktemp("outputs"))
    site = tmp_path_factory.mktemp("site")
    pages = {kind: build_report(path, site / f"{kind}.html").pages[0] for kind, path in outputs.items()}
    pages["embedded"] = build_report(outputs["spectro"], site / "embedded.html", embed_audio=True,
                                     excerpt_seconds=1.0).pages[0]  # Ogg Vorbis and PNG data: URIs
    return pages


def _open(driver, page: Path) -> None:
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(page.resolve().as_uri())


def _wait(driver, script: str, what: str) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, TIMEOUT, poll_frequency=0.1).until(lambda d: d.execute_script(script))
    except TimeoutException:
        raise AssertionError(f"{what} within {TIMEOUT:g} s") from None


_AUDIO_READY = """
const players = Array.from(document.querySelectorAll('audio[src]'));
return players.every(a => a.readyState >= 1 && a.duration > 0) || players.some(a => a.error);
"""


@pytest.mark.parametrize("kind", [*KINDS, "embedded"])
def test_page_loads_pictures_and_audio_without_errors(driver, pages: dict[str, Path], kind: str) -> None:
    _open(driver, pages[kind])
    _wait(driver, "return document.readyState === 'complete'", "the page did not load")
    _wait(driver, _AUDIO_READY, "audio metadata did not load")
    audio = driver.execute_script(
        "return Array.from(document.querySelectorAll('audio[src]')).map(a => [a.src.slice(-60), a.duration, !!a.error])")
    assert audio, "no player on the page"
    assert all(duration > 0 and not error for _, duration, error in audio), audio
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.src.slice(-60), i.complete, i.naturalWidth])")
    assert all(complete and width > 0 for _, complete, width in images), images
    if kind in ("spectro", "train", "nmf", "generate", "describe"):
        assert images, "no picture on the page"
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_map_hover_names_the_track_and_click_plays_it(driver, pages: dict[str, Path]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    _open(driver, pages["embed"])
    _wait(driver, "return document.readyState === 'complete'", "the page did not load")
    tracks = driver.execute_script("return JSON.parse(document.getElementById('map-data').textContent)")
    index = next(i for i, t in enumerate(tracks) if t["n"].endswith(ODD))
    circle = driver.find_element(By.CSS_SELECTOR, f'#map circle[data-i="{index}"]')
    tip = driver.find_element(By.ID, "map-tip")
    assert not tip.is_displayed()
    ActionChains(driver).move_to_element(circle).perform()
    _wait(driver, "return !document.getElementById('map-tip').hidden", "the hover showed no tooltip")
    assert ODD in tip.text and "[mid]" in tip.text
    ActionChains(driver).click(circle).perform()
    _wait(driver, "const p = document.getElementById('map-player'); return p.src !== '' && p.readyState >= 1",
          "the click loaded no audio")
    player = driver.execute_script(
        "const p = document.getElementById('map-player'); return [decodeURIComponent(p.src), p.duration, p.paused]")
    assert player[0].endswith("/mid/" + ODD) and player[1] > 0 and player[2] is False
    assert driver.find_element(By.ID, "map-now").text.endswith(ODD)
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
