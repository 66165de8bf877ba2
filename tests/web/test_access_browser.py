"""The console's login and roles in a real browser (Debian's chromium through Playwright):
log in through the form, and an operator refused on an admin page and an admin action even
when the form is forged in the page (the server enforces roles, not the buttons)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from warmd.access import Role
from warmd.testing.console import Console

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="needs Debian's chromium (make system-deps)")
playwright_api = pytest.importorskip("playwright.async_api")


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        await launched.close()


async def log_in(browser: object, console: Console, role: Role, path: str) -> object:
    """A new browser context logged in through the form that `path` redirects to."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page = await context.new_page()
    await page.goto(console.base + path)
    assert "/login" in page.url
    await page.fill("#token", console.secrets[role])
    await page.click("button[type=submit]")
    return page


async def test_an_admin_logs_in_through_the_form_and_sees_the_tokens(
        browser: object, console: Console) -> None:
    """The login form leads back to the page asked for, which lists the tokens."""
    page = await log_in(browser, console, Role.ADMIN, "/tokens")
    await page.wait_for_url(console.base + "/tokens")  # type: ignore[attr-defined]
    text = await page.inner_text("main")  # type: ignore[attr-defined]
    assert "operator-1" in text and "Revoke operator-1" in text
    assert "admin-1 (admin)" in await page.inner_text("header")  # type: ignore[attr-defined]


async def test_an_operator_is_refused_an_admin_page_and_a_forged_admin_form(
        browser: object, console: Console) -> None:
    """The operator sees the audit, gets 403 on /tokens, and a revoke form built in the
    page with the session's valid CSRF token is refused 403 too; the token lives on."""
    page = await log_in(browser, console, Role.OPERATOR, "/audit")
    await page.wait_for_url(console.base + "/audit")  # type: ignore[attr-defined]
    refused = await page.goto(console.base + "/tokens")  # type: ignore[attr-defined]
    assert refused.status == 403
    assert "needs admin" in await page.content()  # type: ignore[attr-defined]
    await page.goto(console.base + "/audit")  # type: ignore[attr-defined]
    async with page.expect_navigation() as navigation:  # type: ignore[attr-defined]
        await page.evaluate("""() => {
            const form = document.createElement("form");
            form.method = "post"; form.action = "/tokens/revoke";
            for (const [name, value] of [["name", "viewer-1"], ["csrf_token",
                    document.querySelector("input[name=csrf_token]").value]]) {
                const input = document.createElement("input");
                input.name = name; input.value = value; form.appendChild(input);
            }
            document.body.appendChild(form); form.submit();
        }""")
    response = await navigation.value
    assert response.status == 403
    tokens = {token["name"]: token["state"]
              for token in console.cluster.call(1, "token-list")["tokens"]}
    assert tokens["viewer-1"] == "active"
