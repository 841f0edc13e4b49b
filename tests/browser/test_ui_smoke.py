"""The Prefect UI as an operator uses it, in a real Chromium: Retry a failed night, then
open the nightly deployment's Custom run form and read each parameter's description.

Locators are by visible text (buttons "Retry" and "Run", the menu item "Custom run" in
any letter case, the parameters' titles and descriptions), never by CSS classes: the UI's
markup is generated and changes between releases. Descriptions come from the deployment's
parameter schema as the API returns it, so the check holds for a model parameter
(`params: BackupParameters`) and for flat parameters alike.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from deployments.naming import deployment_name
from tests.support.browser import HOST, Installation, save_page, wait_for_state

pytestmark = pytest.mark.integration

BLOCKED = "bob"  # the member whose directory on the target is made immutable
UI_WAIT = 60  # seconds for one element of the UI to appear on this busy box


def by_text(tag: str, text: str) -> tuple[str, str]:
    """An element whose own visible text is exactly `text` (after trimming)."""
    return By.XPATH, f"//{tag}[normalize-space(.)={xpath_string(text)}]"


def xpath_string(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    parts = text.split("'")
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in parts) + ")"


def click(driver: WebDriver, locator: tuple[str, str]) -> WebElement:
    element = WebDriverWait(driver, UI_WAIT).until(
        ec.element_to_be_clickable(locator), f"nothing to click at {locator[1]}"
    )
    element.click()
    return element


def click_text(driver: WebDriver, text: str) -> None:
    """Click the innermost visible element whose text is `text`, in any letter case."""
    upper, lower = text.upper(), text.lower()
    xpath = f"//*[translate(normalize-space(.), '{upper}', '{lower}')={xpath_string(lower)}]"

    def innermost(d: WebDriver) -> WebElement | None:
        shown = [e for e in d.find_elements(By.XPATH, xpath) if e.is_displayed()]
        return shown[-1] if shown else None  # document order: descendants come last

    WebDriverWait(driver, UI_WAIT).until(innermost, f"no {text!r} to click").click()


def starts_with_any_case(text: str) -> str:
    """XPath of the elements whose text starts with `text`, in any letter case."""
    upper, lower = text.upper(), text.lower()
    return (
        f"//*[starts-with(translate(normalize-space(.), {xpath_string(upper)}, "
        f"{xpath_string(lower)}), {xpath_string(lower)})]"
    )


def chattr(flag: str, path: Path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True)


def test_retry_a_failed_night_and_read_the_custom_run_form(
    installation: Installation, browser: WebDriver
) -> None:
    inst, driver = installation, browser
    name = f"zfs-offsite-backup/{deployment_name('nightly', HOST)}"
    deployment = inst.call("GET", f"/deployments/name/{name}")
    assert isinstance(deployment, dict)

    # 1. A night with one member failing: its directory on the target takes no new file.
    blocked = inst.archive / BLOCKED
    blocked.mkdir()
    chattr("+i", blocked)
    try:
        run = inst.call("POST", f"/deployments/{deployment['id']}/create_flow_run", {})
        assert isinstance(run, dict)
        failed = wait_for_state(inst, run["id"], {"FAILED", "CRASHED", "COMPLETED"}, 150)
    finally:
        chattr("-i", blocked)
    assert failed["state_type"] == "FAILED", failed["state"]
    assert failed["state"]["message"].endswith(f"backup failed for 1 member(s): {BLOCKED}")
    assert list(blocked.iterdir()) == []

    # 2. The cause is gone (chattr -i): Retry the run from its page in the UI.
    driver.get(f"{inst.ui}/runs/flow-run/{run['id']}")
    WebDriverWait(driver, UI_WAIT).until(
        ec.presence_of_element_located(by_text("*", failed["name"]))
    )
    retry = click(driver, by_text("button", "Retry"))
    confirm_retry(driver, inst, run["id"], retry)
    # The click reaches the server a moment later: first see the run leave Failed.
    wait_for_state(inst, run["id"], {"SCHEDULED", "PENDING", "RUNNING", "COMPLETED"}, UI_WAIT)
    done = wait_for_state(inst, run["id"], {"COMPLETED", "FAILED", "CRASHED"}, 150)
    assert done["state_type"] == "COMPLETED", done["state"]
    assert done["run_count"] == 2
    assert list(blocked.iterdir()), sorted(str(p) for p in inst.archive.rglob("*"))
    driver.refresh()
    # The run's state badge, as a person reads it: Completed, and Failed nowhere.
    WebDriverWait(driver, UI_WAIT).until(
        ec.visibility_of_element_located(by_text("*", "Completed"))
    )
    assert not [e for e in driver.find_elements(*by_text("*", "Failed")) if e.is_displayed()]
    save_page(driver, "retried-run-completed")

    # 3. Deployment page -> Run -> Custom Run: every parameter with its description.
    schema = deployment["parameter_openapi_schema"]
    descriptions = field_descriptions(schema)
    assert descriptions, schema
    driver.get(f"{inst.ui}/deployments/deployment/{deployment['id']}")
    click(driver, by_text("button", "Run"))
    click_text(driver, "Custom run")  # a menu item; "Custom Run" in the newer UI
    WebDriverWait(driver, UI_WAIT).until(ec.url_contains("/run"))
    open_nested_model(driver, schema)
    for field, (title, description) in descriptions.items():
        for text, xpath in (
            (title, starts_with_any_case(title)),  # "Members (Optional)", "members"
            (description, f"//*[normalize-space(.)={xpath_string(description)}]"),
        ):
            WebDriverWait(driver, UI_WAIT).until(
                lambda d, xpath=xpath: any(
                    e.is_displayed() for e in d.find_elements(By.XPATH, xpath)
                ),
                f"the Custom run form does not show parameter {field}: {text!r}",
            )
    save_page(driver, "custom-run-form")


def field_descriptions(schema: dict[str, object]) -> dict[str, tuple[str, str]]:
    """Each flow parameter's title and description, by dotted name, from the deployment's schema.

    Works for flat parameters and for a model parameter (its fields, via `definitions`).
    """
    definitions = schema.get("definitions") or schema.get("$defs") or {}
    assert isinstance(definitions, dict)
    found: dict[str, tuple[str, str]] = {}

    def walk(properties: dict[str, dict[str, object]], prefix: str) -> None:
        for name, prop in properties.items():
            model = referenced_model(prop, definitions)
            if model is not None:
                walk(model.get("properties", {}), f"{prefix}{name}.")
            else:  # a parameter without a description is a finding too
                assert prop.get("description"), f"parameter {prefix}{name} has no description"
                found[prefix + name] = (str(prop.get("title", name)), str(prop["description"]))

    walk(schema.get("properties", {}), "")  # type: ignore[arg-type]
    return found


def referenced_model(prop: dict[str, object], definitions: dict) -> dict | None:
    """The definition a property points to (`$ref`, or one branch of an Optional's anyOf)."""
    for candidate in [prop, *prop.get("anyOf", [])]:  # type: ignore[list-item]
        ref = candidate.get("$ref")
        if isinstance(ref, str):
            return definitions[ref.rsplit("/", 1)[-1]]
    return None


def open_nested_model(driver: WebDriver, schema: dict[str, object]) -> None:
    """A model parameter (`params: BackupParameters | None`) opens on "None": pick the model."""
    definitions = schema.get("definitions") or schema.get("$defs") or {}
    for prop in schema.get("properties", {}).values():  # type: ignore[union-attr]
        model = referenced_model(prop, definitions)
        if model is not None:
            click(driver, by_text("*[self::button or @role='tab']", str(model["title"])))


def confirm_retry(driver: WebDriver, inst: Installation, run_id: str, header: WebElement) -> None:
    """Click the "Retry" of the confirmation dialog ("Retry <run name>?"), if the UI asks."""

    def dialog_button_or_retried(d: WebDriver) -> WebElement | bool:
        buttons = [
            b
            for b in d.find_elements(*by_text("button", "Retry"))
            if b != header and b.is_displayed()
        ]
        if buttons:
            return buttons[-1]
        run = inst.call("GET", f"/flow_runs/{run_id}")
        return isinstance(run, dict) and run["state_type"] != "FAILED"  # retried without asking

    found = WebDriverWait(driver, UI_WAIT).until(
        dialog_button_or_retried, "no Retry in a dialog, and the run is still Failed"
    )
    if isinstance(found, WebElement):
        found.click()
