"""Real-browser check of reducerd's web console.

Drives Debian's headless Chromium through chromedriver (selenium) against a live reducerd
(the embedded default on a SQLite file), seeded over gRPC with reducerctl. Each step is one
check; the run ends with a line "N passed, M failed" and exits non-zero when a check failed.

Environment:
  CONSOLE_URL     the console's base URL, e.g. http://127.0.0.1:18000
  REDUCERCTL      path to the reducerctl binary
  REDUCERD_ADDR   reducerd's gRPC address for reducerctl --addr, e.g. 127.0.0.1:15051
  SQLITE_PATH     reducerd's SQLite database file
  SCREENSHOT_DIR  where the screenshots go (created when missing)
  CHROMIUM, CHROMEDRIVER  the browser and driver (default /usr/bin/chromium, /usr/bin/chromedriver)
"""

import json
import os
import sqlite3
import subprocess
import sys
import time
import traceback

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CONSOLE_URL = os.environ["CONSOLE_URL"].rstrip("/")
REDUCERCTL = os.environ["REDUCERCTL"]
REDUCERD_ADDR = os.environ["REDUCERD_ADDR"]
SQLITE_PATH = os.environ["SQLITE_PATH"]
SCREENSHOT_DIR = os.environ.get("SCREENSHOT_DIR", "console-screenshots")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")

PAGE_TIMEOUT = 15
LIVE_TIMEOUT = 10
DEAD_LETTER_SOURCE = "test/replay/1"
DEAD_LETTER_ERROR = "simulated apply failure"
IGNORED = (StaleElementReferenceException, NoSuchElementException)


# ---------------------------------------------------------------- helpers


def reducerctl(*args):
    """Runs reducerctl against the live server; fails the check when it exits non-zero."""
    cmd = [REDUCERCTL, "--addr", REDUCERD_ADDR, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc.stdout


def handle_action(key, payload, action="set", workflow_type="merge"):
    return reducerctl(
        "handle-action", key, "--type", workflow_type, "--action", action,
        "--payload", json.dumps(payload),
    )


def make_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def banner_text(driver):
    """The console's error banner, for failure messages."""
    try:
        box = driver.find_element(By.ID, "error")
        if not box.is_displayed():
            return ""
        return driver.find_element(By.ID, "error-message").text.strip()
    except Exception:  # the page may be gone or an alert open
        return ""


def open_route(driver, route):
    """Opens a hash route and waits until the page says it rendered its data."""
    driver.get(f"{CONSOLE_URL}/#/{route}")
    wait_ready(driver, route.split("/")[0].split("?")[0])


def wait_ready(driver, name, timeout=PAGE_TIMEOUT):
    try:
        WebDriverWait(driver, timeout).until(
            lambda d: d.execute_script("return document.body.dataset.ready || ''") == name
        )
    except TimeoutException:
        ready = driver.execute_script("return document.body.dataset.ready || ''")
        raise AssertionError(
            f"page {name!r} did not become ready in {timeout} s (ready={ready!r}, "
            f"error banner: {banner_text(driver)!r})"
        ) from None


def screenshot(driver, name):
    os.makedirs(SCREENSHOT_DIR, exist_ok=True)
    path = os.path.join(SCREENSHOT_DIR, name)
    driver.save_screenshot(path)
    return path


def data_rows(driver, table_id):
    return driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr:not(.empty)")


def history_versions(driver):
    """The versions of the history entries on screen, top to bottom (read in one go, so a
    live re-render cannot leave stale elements behind)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#history-table tbody.entry'),"
        " (e) => e.dataset.version);"
    )


# ---------------------------------------------------------------- the checks


class ConsoleChecks:
    def __init__(self, driver):
        self.driver = driver
        self.browser_log = []
        self.dead_letter_id = None

    def collect_browser_log(self):
        self.browser_log.extend(self.driver.get_log("browser"))

    def seed(self):
        handle_action("order-1", {"status": "open", "total": 1})
        handle_action("order-1", {"status": "paid"})
        for n in range(2, 6):
            handle_action(f"order-{n}", {"status": "open", "total": n})
        out = reducerctl("--json", "get-state", "order-1")
        record = json.loads(out.strip().splitlines()[-1])
        assert record.get("version") == 2, f"order-1 is not at version 2: {out}"

    def workflows_page(self):
        d = self.driver
        open_route(d, "workflows")
        table = d.find_element(By.ID, "workflows-table")
        links = {a.text: a for a in table.find_elements(By.CSS_SELECTOR, "a.workflow-link")}
        for n in range(1, 6):
            assert f"order-{n}" in links, f"order-{n} is not listed: {sorted(links)}"
        row = table.find_element(By.CSS_SELECTOR, 'tr[data-key="order-1"]')
        assert "merge" in row.text and "paid" in row.text, f"order-1's row: {row.text!r}"
        screenshot(d, "workflows.png")

    def workflow_page(self):
        d = self.driver
        if d.execute_script("return document.body.dataset.ready || ''") != "workflows":
            open_route(d, "workflows")
        link = d.find_element(
            By.XPATH,
            "//table[@id='workflows-table']//a[contains(@class,'workflow-link')][normalize-space()='order-1']",
        )
        link.click()
        wait_ready(d, "workflow")
        assert "#/workflow/default/order-1" in d.current_url, d.current_url
        state = json.loads(d.find_element(By.ID, "workflow-state").text)
        assert state == {"status": "paid", "total": 1}, f"state shown: {state}"
        assert d.find_element(By.ID, "workflow-version").text == "2"
        versions = history_versions(d)
        assert versions[:2] == ["2", "1"], f"history versions, newest first: {versions}"
        history = d.find_element(By.ID, "history-table").text
        assert '~ $.status: "open" -> "paid"' in history, f"v2's diff is missing:\n{history}"
        assert '+ $.status = "open"' in history and "+ $.total = 1" in history, (
            f"v1's diff against {{}} is missing:\n{history}"
        )
        d.find_element(By.ID, "dedup-table")
        assert d.find_element(By.ID, "live").is_displayed()
        screenshot(d, "workflow.png")

    def workflow_live_update(self):
        d = self.driver
        if d.execute_script("return document.body.dataset.ready || ''") != "workflow":
            open_route(d, "workflow/default/order-1")
        handle_action("order-1", {"status": "shipped"})
        try:
            WebDriverWait(d, LIVE_TIMEOUT, ignored_exceptions=IGNORED).until(
                lambda d: d.find_element(By.ID, "workflow-version").text == "3"
                and history_versions(d)[:1] == ["3"]
            )
        except TimeoutException:
            raise AssertionError(
                f"the page did not show version 3 within {LIVE_TIMEOUT} s "
                f"(version {d.find_element(By.ID, 'workflow-version').text!r}, "
                f"history {history_versions(d)}, error banner {banner_text(d)!r})"
            ) from None
        history = d.find_element(By.ID, "history-table").text
        assert '~ $.status: "paid" -> "shipped"' in history, f"v3's diff is missing:\n{history}"
        state = json.loads(d.find_element(By.ID, "workflow-state").text)
        assert state["status"] == "shipped", f"state shown: {state}"

    def pipeline_page(self):
        d = self.driver
        open_route(d, "pipeline")
        assert d.find_element(By.ID, "pipeline-mode").text.strip() not in ("", "—")
        d.find_element(By.ID, "pipeline-watermarks")
        d.find_element(By.ID, "consumer-groups")
        screenshot(d, "pipeline.png")

    def health_page(self):
        d = self.driver
        open_route(d, "health")
        rows = data_rows(d, "health-table")
        assert rows, "the health table has no rows"
        for r in rows:
            assert r.find_elements(By.CSS_SELECTOR, ".badge-ok, .badge-bad, .badge-neutral"), r.text
        assert d.find_element(By.ID, "health-backend").text == "sqlite"
        screenshot(d, "health.png")

    def insert_dead_letter(self):
        # The materializer must be done with order-1 first, or it could rewrite the row the
        # test removes below.
        deadline = time.monotonic() + PAGE_TIMEOUT
        while self.projection_version() != self.latest_version():
            assert time.monotonic() < deadline, "the projection of order-1 never caught up"
            time.sleep(0.05)
        with sqlite3.connect(SQLITE_PATH, timeout=10) as db:
            event = db.execute(
                "SELECT namespace, workflow_key, version, event_type, payload FROM event_outbox "
                "WHERE workflow_key = 'order-1' AND event_type = 'StateCommitted' "
                "ORDER BY version DESC, id DESC LIMIT 1"
            ).fetchone()
            assert event, "no StateCommitted event of order-1 in event_outbox"
            namespace, key, version, event_type, payload = event
            cur = db.execute(
                "INSERT INTO dead_letters (source, workflow_key, version, event_type, payload, error, "
                "created_at, namespace) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (DEAD_LETTER_SOURCE, key, version, event_type, payload, DEAD_LETTER_ERROR,
                 int(time.time() * 1000), namespace),
            )
            self.dead_letter_id = cur.lastrowid
            self.dead_letter_version = version
            # As if the event had never reached the projection: the replay must write it.
            db.execute("DELETE FROM workflow_projection WHERE workflow_key = 'order-1'")
        db.close()

    def latest_version(self):
        with sqlite3.connect(SQLITE_PATH, timeout=10) as db:
            found = db.execute("SELECT version FROM workflow_state WHERE workflow_key = 'order-1'").fetchone()
        db.close()
        return found[0] if found else None

    def projection_version(self):
        with sqlite3.connect(SQLITE_PATH, timeout=10) as db:
            found = db.execute(
                "SELECT version FROM workflow_projection WHERE workflow_key = 'order-1'"
            ).fetchone()
        db.close()
        return found[0] if found else None

    def dead_letters_replay(self):
        d = self.driver
        self.insert_dead_letter()
        letter = self.dead_letter_id
        open_route(d, "dead-letters")
        row_css = f'#dead-letters-table tr[data-id="{letter}"]'
        row = d.find_element(By.CSS_SELECTOR, row_css)
        for expected in (DEAD_LETTER_SOURCE, DEAD_LETTER_ERROR, "order-1", "StateCommitted"):
            assert expected in row.text, f"{expected!r} not in the dead letter's row: {row.text!r}"
        d.find_element(By.ID, "gave-up-table")
        screenshot(d, "dead-letters.png")

        row.find_element(By.CSS_SELECTOR, f'.replay-button[data-id="{letter}"]').click()

        def replayed(d):
            try:
                d.switch_to.alert.accept()
            except NoAlertPresentException:
                pass
            result = d.find_element(By.ID, "action-result")
            if not (result.is_displayed() and "replayed" in result.text.lower()):
                return False
            cells = d.find_elements(By.CSS_SELECTOR, f"{row_css} .replayed-at time")
            buttons = d.find_elements(By.CSS_SELECTOR, f"{row_css} .replay-button")
            return bool(cells and cells[0].text.strip()) and not buttons

        try:
            WebDriverWait(d, PAGE_TIMEOUT, ignored_exceptions=IGNORED).until(replayed)
        except TimeoutException:
            result = d.find_element(By.ID, "action-result")
            raise AssertionError(
                f"the replay did not show as done (result {result.text!r}, "
                f"row {d.find_element(By.CSS_SELECTOR, row_css).text!r}, error banner {banner_text(d)!r})"
            ) from None
        wait_ready(d, "dead-letters")
        result = d.find_element(By.ID, "action-result").text
        assert "applied to the projection" in result, result
        assert self.projection_version() == self.dead_letter_version, "the replay wrote the projection row"
        screenshot(d, "dead-letters-replayed.png")

    def no_browser_errors(self):
        self.collect_browser_log()
        severe = [
            e for e in self.browser_log
            if e.get("level") == "SEVERE" and "favicon.ico" not in e.get("message", "")
        ]
        assert not severe, "SEVERE browser console entries:\n" + "\n".join(
            f"  [{e.get('source')}] {e.get('message')}" for e in severe
        )


def main():
    passed = failed = 0
    try:
        driver = make_driver()
    except Exception:
        traceback.print_exc()
        print("console: cannot start chromium through chromedriver")
        print("0 passed, 1 failed")
        return 1

    checks = ConsoleChecks(driver)
    steps = [
        ("seed workflows with reducerctl", checks.seed),
        ("workflows page lists the workflows", checks.workflows_page),
        ("workflow page shows state, history and diffs", checks.workflow_page),
        ("workflow page updates live to a new version", checks.workflow_live_update),
        ("pipeline page", checks.pipeline_page),
        ("health page shows the SLA table", checks.health_page),
        ("dead letter is listed and replayed", checks.dead_letters_replay),
        ("no SEVERE browser console errors", checks.no_browser_errors),
    ]
    try:
        for name, step in steps:
            started = time.monotonic()
            try:
                step()
            except Exception as err:  # one failed check must not stop the others
                failed += 1
                print(f"FAIL {name} ({time.monotonic() - started:.1f} s)")
                if isinstance(err, AssertionError):
                    print(f"     {err}")
                else:
                    traceback.print_exc()
                try:
                    slug = "".join(c if c.isalnum() else "-" for c in name)
                    print(f"     screenshot: {screenshot(driver, f'failed-{slug}.png')}")
                except Exception:
                    pass
            else:
                passed += 1
                print(f"ok   {name} ({time.monotonic() - started:.1f} s)")
            if step is not checks.no_browser_errors:
                try:
                    checks.collect_browser_log()
                except Exception:
                    pass
    finally:
        driver.quit()
    print(f"screenshots in {os.path.abspath(SCREENSHOT_DIR)}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
