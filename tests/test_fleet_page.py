"""The fleet page in a real headless Chromium, over three real demo buildings: every building with
its alarms and devices, and an acknowledgement clicked in the page reaching the gateway as a
signed command (the gateway's own alarm list shows it acknowledged)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fleet_db import scalar, wait_for
from tests.support.fleet_procs import PersistentMosquitto, start_worker, wait_subscribed
from tests.support.fleet_sim import ROOT
from tests.support.fleet_stack import FleetStack

ARTEFACTS = ROOT / "tests" / "artefacts"
BUILDINGS = [("riverside", "bldg-river"), ("harbour", "bldg-harbour"), ("hillcrest", "bldg-hill")]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.fail("chromium and chromium-driver are not installed: run scripts/setup.sh --test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--disable-gpu",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def lintel_json(*argv: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", *argv, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def gateway_alarms(config: Path) -> list[dict]:  # type: ignore[type-arg]
    return lintel_json("alarms", "list", "-c", str(config))["open_alarms"]  # type: ignore[no-any-return]


def check_building_page(browser, status: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    """The building's page shows what `lintel status` shows on site: release, config, the same
    meters (the dead one offline), the uplink connected, its components, and every lane panel."""
    from selenium.webdriver.common.by import By

    assert f"lintel {status['version']}" in browser.find_element(By.ID, "release").text
    assert status["config_sha256"][:12] in browser.find_element(By.ID, "config").text
    meters = {d["device_id"]: d for d in status["devices"] if d["kind"] == "meter"}
    rows = {
        r.get_attribute("data-device"): r.text
        for r in browser.find_elements(By.CSS_SELECTOR, "#meters tr[data-device]")
    }
    assert set(rows) == set(meters)
    for device_id, d in meters.items():
        assert ("offline" in rows[device_id]) == (d["online"] is False), (device_id, rows[device_id])
    assert any(not d["online"] for d in meters.values())  # the demo's dead meter
    assert " W" in rows["meter-house"]  # its power, with its unit
    assert "connected" in browser.find_element(By.ID, "uplink").text
    components = [
        r.text.split()[0] for r in browser.find_elements(By.CSS_SELECTOR, "#components tr td:first-child")
    ]
    assert components and set(components) <= {c["name"] for c in status["components"]}
    for panel in ("alarms", "sensors", "doors", "fire-lanes", "entrances", "care", "loss", "events"):
        browser.find_element(By.ID, panel)


# status.json's lanes -> (its list key, the page's table, the stats section's key)
LANES = {
    "doors": ("doors", "doors", "doors"),
    "fire_lanes": ("lanes", "fire-lanes", "fire_lanes"),
    "face_access": ("entrances", "entrances", "face_entrances"),
    "care": ("households", "care", "care"),
}


def lane_rows(browser, dsn: str, gateway_id: str) -> tuple[dict, dict[str, dict[str, str]]]:  # type: ignore[no-untyped-def, type-arg]
    """The lanes section the fleet holds for the gateway and the page's lane rows rendered from
    it (reloaded until no newer stats arrived meanwhile)."""
    from selenium.webdriver.common.by import By

    query = "SELECT stats->'lanes' FROM gateways WHERE gateway_id = %s"
    for _ in range(10):
        stored = scalar(dsn, query, gateway_id)
        browser.refresh()
        rows = {
            table: {
                r.get_attribute("data-lane"): r.text
                for r in browser.find_elements(By.CSS_SELECTOR, f"#{table} tr[data-lane]")
            }
            for _, table, _ in LANES.values()
        }
        if scalar(dsn, query, gateway_id) == stored:
            return stored, rows
    raise AssertionError("the gateway's stats kept changing under the page")


def check_lanes(browser, dsn: str, gateway_id: str, status: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    """Every lane `lintel status` shows on site is on the page, from the gateway's own report:
    each door's relay as the gateway drives it, fire lanes, entrances and households."""
    stored, rows = lane_rows(browser, dsn, gateway_id)
    assert stored is not None, "the gateway published no lanes section"
    for lane, (key, table, section) in LANES.items():
        if lane in status["unavailable"]:
            assert "NOT RUNNING" in rows[table][lane], (lane, rows[table])
            continue
        on_site = {str(item.get("id") or item.get("lane")) for item in status["lanes"][lane][key]}
        assert on_site and set(rows[table]) == on_site, (lane, rows[table], on_site)
        assert {str(i.get("id") or i.get("lane")) for i in stored[section]} == on_site
    for door in stored["doors"]:
        text = rows["doors"][door["id"]]
        assert f"relay {door['relay']}, {door['pulses']} pulses" in text, (door, text)
    on_site_relays = {d["id"]: d["relay"] for d in status["lanes"]["doors"]["doors"]}
    assert set(on_site_relays.values()) <= {"released", "energised"}, on_site_relays
    for entrance in stored.get("face_entrances") or ():
        assert ("LOCKED OUT" in rows["entrances"][entrance["id"]]) == entrance["locked"]


def click_and_load(browser, element) -> None:  # type: ignore[no-untyped-def]
    """Click a link or submit button and wait for the page it leads to: chromedriver's click returns
    before a form's POST and redirect have loaded, and reading the page then finds the old one (a
    full CI run read the sign-in page's empty buildings table)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def old_page_gone(_: object) -> bool:
        # selenium's staleness_of expects StaleElementReferenceException; Chromium 156 may answer
        # "Node with given id does not belong to the document" instead (SeleniumHQ/selenium#15401;
        # a fresh-clone CI run failed on it): both say the old page was replaced
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
        return False

    old = browser.find_element("tag name", "html")
    element.click()
    WebDriverWait(browser, 30).until(old_page_gone)
    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return document.readyState") == "complete")


def test_page_shows_three_buildings_and_acknowledges_an_alarm_on_the_gateway(tmp_path, fleet_dsn, browser):
    from selenium.webdriver.common.by import By

    broker = PersistentMosquitto(tmp_path).start()
    stack = FleetStack(tmp_path, fleet_dsn, broker.port)
    try:
        stack.procs.append(start_worker(fleet_dsn, broker.port, "w1", tmp_path))
        wait_subscribed(tmp_path, "w1")
        configs = {gid: stack.building(site, gid) for site, gid in BUILDINGS}
        url = stack.serve()
        # every building has reported its devices and has an open alarm
        wait_for(
            lambda: scalar(fleet_dsn, "SELECT count(DISTINCT gateway_id) FROM devices") == 3, 180, "devices"
        )
        wait_for(
            lambda: (
                scalar(fleet_dsn, "SELECT count(DISTINCT gateway_id) FROM alarms WHERE state = 'open'") == 3
            ),
            180,
            "an open alarm in each building",
        )

        browser.get(url + "/")
        assert "Sign in" in browser.title  # nothing without the token
        browser.find_element(By.ID, "token").send_keys(stack.token)
        click_and_load(browser, browser.find_element(By.ID, "signin"))
        rows = browser.find_elements(By.CSS_SELECTOR, "#buildings tr[data-gateway]")
        assert {r.get_attribute("data-gateway") for r in rows} == {gid for _, gid in BUILDINGS}
        for r in rows:
            assert "online" in r.text
            assert int(r.find_element(By.CLASS_NAME, "alarms-open").text.split()[0]) >= 1
            # the demo's dead meter (unit 5) is offline in every building
            assert r.find_element(By.CLASS_NAME, "devices-offline").text.split()[0] != "0"
        ARTEFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTEFACTS / "fleet-buildings.png"))

        click_and_load(browser, browser.find_element(By.LINK_TEXT, "bldg-harbour"))
        on_site = lintel_json("status", "-c", str(configs["bldg-harbour"]))["status"]
        check_building_page(browser, on_site)
        check_lanes(browser, fleet_dsn, "bldg-harbour", on_site)
        browser.set_window_size(1400, 3200)  # the whole building page in the artefact
        browser.save_screenshot(str(ARTEFACTS / "fleet-building.png"))
        browser.set_window_size(1400, 1000)

        browser.get(url + "/alarms")
        row = browser.find_element(By.CSS_SELECTOR, "#alarms tr[data-alarm^='bldg-harbour/']")
        alarm_id = row.get_attribute("data-alarm").split("/", 1)[1]
        assert any(
            str(a["alarm_id"]) == alarm_id and not a.get("acked_ms")
            for a in gateway_alarms(configs["bldg-harbour"])
        )
        click_and_load(browser, row.find_element(By.CSS_SELECTOR, "button.ack"))
        assert "signed command" in browser.find_element(By.ID, "flash").text

        # the gateway acknowledged it (its own state database says so) ...
        wait_for(
            lambda: any(
                str(a["alarm_id"]) == alarm_id and a.get("acked_by") == "fleet-ack"
                for a in gateway_alarms(configs["bldg-harbour"])
            ),
            120,
            "the gateway's ack",
        )
        # ... with the fleet's key, and the fleet matched the result to its request
        wait_for(
            lambda: scalar(fleet_dsn, "SELECT outcome FROM commands WHERE command = 'alarm_ack'") == "ok",
            120,
            "the command's result",
        )
        wait_for(
            lambda: (
                scalar(
                    fleet_dsn,
                    "SELECT acked_by FROM alarms WHERE gateway_id = 'bldg-harbour' AND alarm_id = %s",
                    alarm_id,
                )
                == "fleet-ack"
            ),
            120,
            "alarm_acked",
        )
        browser.get(url + "/alarms")
        row = browser.find_element(By.CSS_SELECTOR, f"#alarms tr[data-alarm='bldg-harbour/{alarm_id}']")
        assert "acknowledged by fleet-ack" in row.text
        browser.save_screenshot(str(ARTEFACTS / "fleet-alarms-acknowledged.png"))
    finally:
        stack.stop()
        broker.stop()
