"""A newcomer's path in a real browser: sign in, Settings → Integrations → Xero → Connect,
allow access on the sandbox's consent page, choose the payment account, see it connected.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright against pytest-django's live
server and the sandbox. Screenshots of each step go to test-artifacts/browser/.
"""

from __future__ import annotations

from tests.browser.support import (
    BROWSER_MARKS,
    ORG,
    allow_access,
    choose_accounts,
    outside_the_event_loop,
    shot,
    sign_in,
)

pytestmark = BROWSER_MARKS


def test_connect_to_xero_in_a_browser(
    crm_on_live_server,
    xero_sandbox,
    owner_credentials,
    owner_account_key,
    failed_tasks,
    browser_page,
) -> None:
    # The database fixtures come before ``browser_page``: they are set up before Playwright starts.
    from xero_integration.models import ConnectionStatus, XeroConnection

    page = browser_page
    base = crm_on_live_server
    tenant_id = xero_sandbox.create_organisation(name=ORG)["tenant_id"]
    email, password = owner_credentials

    # Sign in through the allauth login page.
    sign_in(page, base, email, password)
    shot(page, "01-signed-in")

    # Settings → Integrations → the Xero tile's Connect.
    page.get_by_role("link", name="Settings → Integrations").click()
    page.wait_for_load_state()
    shot(page, "02-integrations")
    tile = page.locator(".xero-tile")
    assert "Not connected" in tile.inner_text()
    tile.get_by_role("button", name="Connect").click()

    # The sandbox's consent page: tick the organisation, Allow access; back in the CRM.
    allow_access(page, base, xero_sandbox.url, tenant_id, "03-")
    shot(page, "04-connected")

    # Choose the payment and revenue accounts.
    payment_account = choose_accounts(page, "05-")

    # The tile shows the organisation as connected.
    page.get_by_role("link", name="Settings → Integrations").click()
    page.wait_for_load_state()
    shot(page, "06-tile-connected")
    tile_text = page.locator(".xero-tile").inner_text()
    assert ORG in tile_text and "Connected" in tile_text

    connection = outside_the_event_loop(
        lambda: XeroConnection.objects.get(account_key=owner_account_key)
    )
    assert connection.status == ConnectionStatus.CONNECTED
    assert connection.tenant_id == tenant_id
    assert not failed_tasks, [(t.get("func"), t.get("result")) for t in failed_tasks]
    assert connection.payment_account_id == payment_account
