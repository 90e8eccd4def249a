"""A real headless Chromium for the console's tests: Debian's chromium and chromedriver, driven
by Selenium (selenium-manager is never asked to download anything: both paths are given).

Installed by the test setup where it can be (root with apt-get, as on CI); otherwise the tests
are skipped loudly, or fail where TRACKGUARD_REQUIRE_BROWSER=1 (as `.ci/run` sets).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

BROWSER_SKIPPED = "BROWSER TESTS SKIPPED"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PACKAGES = ("chromium", "chromium-driver")


def _found() -> bool:
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


def chromium_or_skip() -> tuple[str, str]:
    """Debian's Chromium and its driver, installed with apt-get when missing and we may."""
    if not _found() and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(PACKAGES)} with apt-get (Debian's packages; no browser download)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-q", *PACKAGES], env=env, capture_output=True, timeout=900)
    if not _found():
        missing = f"no {CHROMIUM} and {CHROMEDRIVER} (apt-get install {' '.join(PACKAGES)})"
        if os.environ.get("TRACKGUARD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser tests are required (TRACKGUARD_REQUIRE_BROWSER=1) but {missing}", pytrace=False)
        pytest.skip(f"{BROWSER_SKIPPED}: {missing}")
    return CHROMIUM, CHROMEDRIVER


class Browser:
    """One headless Chromium window on the console, with the few gestures the tests need."""

    def __init__(self, paths: tuple[str, str], url: str, shots: Path, lang: str = "en-GB") -> None:
        self.url, self.shots = url, shots
        options = webdriver.ChromeOptions()
        options.binary_location = paths[0]
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900", f"--lang={lang}"):
            options.add_argument(arg)
        options.add_experimental_option("prefs", {"intl.accept_languages": lang})
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(paths[1]), options=options)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.driver.quit()

    def page_errors(self) -> list[str]:
        """What the page itself logged as errors: script exceptions, blocked loads (the content
        security policy). Failed requests are left out: a 401 or 409 the test asked for logs one."""
        return [
            e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"
        ]

    # --- waiting and reading ---

    def wait(self, ready: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except Exception:  # an element replaced while read: look again
                pass
            time.sleep(0.1)
        self.shot("failed")
        raise AssertionError(
            f"{what} (after {timeout:.0f} s); page: {self.driver.find_element(By.TAG_NAME, 'body').text[:2000]}"
        )

    def present(self, css: str) -> bool:
        return bool(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self, element_id: str) -> str:
        return self.driver.find_element(By.ID, element_id).text

    def text_of(self, css: str) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, css).text

    def value(self, element_id: str) -> str:
        return self.driver.find_element(By.ID, element_id).get_attribute("value") or ""

    def attribute(self, element_id: str, name: str) -> str | None:
        return self.driver.find_element(By.ID, element_id).get_attribute(name)

    def displayed(self, element_id: str) -> bool:
        return self.driver.find_element(By.ID, element_id).is_displayed()

    def rows(self, css: str) -> list[list[str]]:
        return [
            [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in self.driver.find_elements(By.CSS_SELECTOR, css)
        ]

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def shot_both(self, name: str) -> None:
        """The page as it is, in English and in Chinese (the last answer is drawn again), then
        back to English."""
        self.shot(f"{name}-en")
        self.click("lang-zh")
        self.shot(f"{name}-zh")
        self.click("lang-en")

    # --- gestures ---

    def open(self) -> None:
        """A fresh visit: the console loaded, its words fetched, nobody signed in."""
        self.driver.get(self.url + "/")
        self.driver.execute_script("sessionStorage.clear(); localStorage.clear();")
        self.driver.get(self.url + "/")
        self.wait(lambda: self.attribute_of_body("data-ready") == "1", "the console did not start")

    def attribute_of_body(self, name: str) -> str | None:
        return self.driver.find_element(By.TAG_NAME, "body").get_attribute(name)

    def sign_in(self, token: str, expect_ok: bool = True) -> None:
        self.clear("token")
        self.type("token", token)
        self.click("signin-btn")
        if expect_ok:
            self.wait(lambda: self.driver.find_element(By.ID, "app").is_displayed(), "sign-in failed")
        else:
            self.wait(lambda: self.text("signin-error"), "no sign-in error shown")

    def click(self, element_id: str) -> None:
        self.driver.find_element(By.ID, element_id).click()

    def tab(self, name: str) -> None:
        self.driver.find_element(By.CSS_SELECTOR, f"nav button[data-tab={name}]").click()

    def type(self, element_id: str, text: str) -> None:
        self.driver.find_element(By.ID, element_id).send_keys(text)

    def clear(self, element_id: str) -> None:
        self.driver.find_element(By.ID, element_id).clear()

    def select(self, element_id: str, value: str) -> None:
        Select(self.driver.find_element(By.ID, element_id)).select_by_value(value)

    def upload(self, element_id: str, path: Path) -> None:
        self.driver.find_element(By.ID, element_id).send_keys(str(path))

    def look_up(self, number: str) -> str:
        """The status badge of a number's diagnosis, once drawn for this number."""
        self.tab("lookup")
        self.clear("lookup-no")
        self.type("lookup-no", number)
        self.driver.execute_script("document.getElementById('lookup-result').replaceChildren()")
        self.click("lookup-btn")
        want = "".join(number.split()).upper()
        self.wait(lambda: self.text_of("#lookup-result h2").startswith(want), f"no diagnosis of {number}")
        return self.text("lookup-status")
