"""Screenshots of ``specmusic report``, one per kind, for docs/report.md — and each report's size and build time.

Builds every kind of output from ``../shared/data/gtzan-sample`` (each 30 s clip cut into three 10 s
tracks, so a tiny classifier can be trained) and an 8 s excerpt of a ``../shared/data/cc-music`` song
for ``nmf``; without ``../shared`` from generated tones. Then writes each report, opens it in
headless chromium (Selenium, 1200×900 viewport), hovers a point of the embed map, and saves
``docs/images/report-<kind>.png`` (palette PNG, a few hundred KB at most).

    nice -n 10 .venv/bin/python benchmarks/report_screenshots.py [--out docs/images] [--work /tmp/report-shots]

Prints per kind: build seconds, the page's bytes, the bytes of its pictures folder and the audio
players, next to the baseline of the same report with ``--embed-audio`` (self-contained).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def real_genres(work: Path) -> Path | None:
    """gtzan-sample's clips cut in three 10 s WAVs per clip (labels from the folders); None without it."""
    from specmusic.audio import load_audio

    source = SHARED / "gtzan-sample"
    if not source.is_dir():
        return None
    out = work / "genres"
    for clip in sorted(source.glob("*/*.au")):
        y, sr = load_audio(clip, sr=22050)
        for part in range(3):
            piece = y[part * 10 * sr:(part + 1) * 10 * sr]
            if len(piece) >= 5 * sr:
                target = out / clip.parent.name / f"{clip.stem}-{part}.wav"
                target.parent.mkdir(parents=True, exist_ok=True)
                sf.write(target, piece, sr)
    return out


def real_mix(work: Path) -> Path | None:
    """8 s of a cc-music song as a WAV (the nmf mix)."""
    from specmusic.audio import load_audio

    songs = sorted((SHARED / "cc-music").glob("*.ogg"))
    if not songs:
        return None
    y, sr = load_audio(songs[0], sr=22050, offset=20.0, duration=8.0)
    target = work / "mix" / f"{songs[0].stem[:40]}.wav"
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(target, y, sr)
    return target


def start_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                "--hide-scrollbars", "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    return driver


def shoot(driver, page: Path, target: Path, *, hover: bool = False) -> int:
    """Open ``page``, wait for its players, (hover the map), save a palette PNG; its bytes."""
    from PIL import Image
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('audio[src]')).every(a => a.readyState >= 1)"))
    if hover:
        circle = driver.find_elements(By.CSS_SELECTOR, "#map circle")[len(driver.find_elements(By.CSS_SELECTOR, "#map circle")) // 2]
        ActionChains(driver).move_to_element(circle).perform()
        time.sleep(0.2)
    raw = target.with_suffix(".raw.png")
    driver.save_screenshot(str(raw))
    Image.open(raw).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    raw.unlink()
    return target.stat().st_size


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def main() -> None:
    from specmusic.report import build_report
    from tests.report.test_report import make_outputs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--work", type=Path, default=Path("/tmp/report-shots"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    genres = real_genres(args.work)
    data = "gtzan-sample (10 genres × 3 10-s tracks) + cc-music excerpt" if genres else "generated tones"
    t0 = time.perf_counter()
    outputs = make_outputs(args.work / "outputs", genres, epochs=20 if genres else 2, chunk_seconds=3.0 if genres else 0.5,
                           flip=genres is None)
    mix = real_mix(args.work)
    if mix is not None:
        from tests.report.test_report import invoke_ok

        shutil.rmtree(outputs["nmf"])
        invoke_ok("nmf", mix, "-c", "4", "-o", outputs["nmf"], "--iterations", "100")
    print(f"data: {data}; outputs written in {time.perf_counter() - t0:.1f} s")
    driver = start_browser()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'kind':10} {'build s':>8} {'page KB':>8} {'files KB':>9} {'players':>8} | {'embedded: build s':>17} {'page KB':>8} | shot KB")
    try:
        for kind, path in outputs.items():
            site = args.work / "site" / kind
            t = time.perf_counter()
            result = build_report(path, site / "report.html", title=None)
            build = time.perf_counter() - t
            html = result.pages[0].read_text(encoding="utf-8")
            t = time.perf_counter()
            embedded = build_report(path, site / "embedded.html", embed_audio=True)
            build_e = time.perf_counter() - t
            shot = shoot(driver, result.pages[0], args.out / f"report-{kind}.png", hover=kind == "embed")
            print(f"{kind:10} {build:8.2f} {len(html.encode()) / 1024:8.1f} {folder_bytes(result.files_dir) / 1024:9.1f} "
                  f"{html.count('<audio'):8d} | {build_e:17.2f} {embedded.pages[0].stat().st_size / 1024:8.1f} | "
                  f"{shot / 1024:.0f}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
