"""The page of `edgeseg serve` in a real browser: headless Chromium uploads an image; overlay and legend show.

Skips with the reason when selenium, Chromium or chromedriver are missing (CI installs them: see .ci/run).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from serve_support import PALETTE, server, tiny_model

from edgeseg.runtime import Segmenter, overlay

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("Chromium or chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_page_uploads_an_image_and_shows_overlay_legend_and_latency(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    model = tmp_path / "tiny.onnx"
    tiny_model(model)
    image = np.random.default_rng(7).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path = tmp_path / "upload.png"
    Image.fromarray(image).save(path)
    labels = Segmenter(model, provider="cpu").predict(image)

    with server(model, "--max-wait-ms", "1") as (base, _):
        browser.get(base + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: "classes" in d.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "file").send_keys(str(path))
        wait.until(lambda d: d.find_element(By.ID, "overlay").get_attribute("data-ready") == "true")

        canvas = "const c = document.getElementById('overlay');"
        size = browser.execute_script(canvas + "return [c.width, c.height]")
        assert size == [64, 48]
        pixels = browser.execute_script(
            canvas + "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);"
        )
        drawn = np.asarray(pixels, dtype=np.int16).reshape(48, 64, 4)[..., :3]
        expected = overlay(image, labels, [list(c) for c in PALETTE], 0.5).astype(np.int16)
        assert np.abs(drawn - expected).max() <= 1  # the browser blends as the runtime does, up to rounding

        items = browser.find_elements(By.CSS_SELECTOR, "#legend li")
        present = sorted(int(i.get_attribute("data-index")) for i in items)
        assert present == sorted(np.unique(labels).tolist())
        assert all("%" in i.text for i in items)
        assert "ms" in browser.find_element(By.ID, "latency").text
        assert browser.find_element(By.ID, "error").text == ""
