"""The page at / as a person uses it: a real headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium) uploads a fingerprinted image, a clean one and a file that is no image, and
reads the verdicts off the cards. The server is uvicorn on a free loopback port in a thread.

The browser is installed by the session fixture (apt-get, as root) when missing; the tests are
skipped, with the reason, only where that is impossible. GANPRINT_UPDATE_SCREENSHOT=1 also copies
the screenshot to docs/images/serve-page.png (the README's)."""

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="ganprint serve needs the serve extra: pip install -e '.[test]'")
pytest.importorskip("selenium", reason="the browser test needs selenium: pip install -e '.[test]'")

from test_serve import png, world  # noqa: E402,F401  (world: the registry and images fixture)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1100,760"]  # fmt: skip
README_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "serve-page.png"


def _install_chromium() -> str | None:
    """Install Debian's chromium and chromium-driver; None on success, else why it is impossible."""
    if os.name != "posix" or os.geteuid() != 0:
        return "not running as root, so apt-get cannot install them"
    if shutil.which("apt-get") is None:
        return "apt-get is not available (not a Debian-like system)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:  # a fresh machine may not have the package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return f"apt-get install chromium chromium-driver failed: {done.stderr.strip().splitlines()[-1:]}"
    return None


@pytest.fixture(scope="session")
def chromium_paths():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        reason = _install_chromium()
        if reason or not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
            pytest.skip(f"Debian's chromium and chromium-driver are missing and cannot be installed: {reason}")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def browser(chromium_paths, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium_paths[0]
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromium_paths[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def live_server(world):
    """`ganprint serve`'s app under uvicorn on 127.0.0.1 and a free port, in a background thread."""
    import uvicorn

    from ganprint.serve import Settings, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Settings(registry=world["db"], models=["codec-32"]))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


def test_the_page_shows_verdicts_for_dropped_images(browser, live_server, world, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    files = {"fingerprinted.png": world["images"]["marked"][0], "photo.png": world["images"]["clean"][0],
             "notes.png": b"these are notes, not an image\n"}  # fmt: skip
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    browser.get(live_server + "/")
    WebDriverWait(browser, 30).until(lambda d: "codec-32" in d.find_element(By.ID, "limits").text)
    browser.find_element(By.ID, "files").send_keys("\n".join(str(tmp_path / n) for n in files))

    def settled(driver):
        cards = driver.find_elements(By.CSS_SELECTOR, "article.card")
        done = [c for c in cards if c.get_attribute("data-verdict") != "pending"]
        return {c.get_attribute("data-name"): c for c in done} if len(done) == len(files) else False

    cards = WebDriverWait(browser, 120).until(settled)
    marked, clean, broken = cards["fingerprinted.png"], cards["photo.png"], cards["notes.png"]
    assert marked.get_attribute("data-verdict") == "attributed"
    assert "Made by a registered model" in marked.text and "acme-gan" in marked.text
    assert marked.find_element(By.CSS_SELECTOR, "[data-field='bit accuracy']").text.startswith("100.0 %")
    assert clean.get_attribute("data-verdict") == "not-fingerprinted"
    assert "No fingerprint found" in clean.text
    assert broken.get_attribute("data-verdict") == "error"
    assert "not a recognised image file" in broken.text and "Could not check this image" in broken.text
    screenshot = tmp_path / "serve-page.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
    if os.environ.get("GANPRINT_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, README_SCREENSHOT)
