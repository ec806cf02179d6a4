"""``serve`` serves the operator page on its admin listener, reading its own outbox and
journal, with the admin token taken from the environment variable the config names."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
from serve.serve_helpers import fulfilment, key_of, post, serve_env, wait_until

from kit.sandbox import SandboxServer

from .admin_helpers import admin_config, serving_admin

TOKEN = "page-token-from-env"
ORDER = "3401"


async def test_serve_shows_its_outbox_on_the_page_and_takes_the_token_from_env(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """After one webhook is delivered: the page counts it delivered, a search finds its
    timeline, and a retry carrying the env's token is accepted (nothing dead: 0 retried)
    while a wrong token is refused."""
    config = admin_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    text = config.read_text(encoding="utf-8")
    config.write_text(text + 'token = { env = "PAGE_ADMIN_TOKEN" }\n', encoding="utf-8")
    env = serve_env(PAGE_ADMIN_TOKEN=TOKEN)
    async with serving_admin(config, env=env, stderr_path=tmp_path / "e") as admin:
        async with aiohttp.ClientSession() as session:
            status, _ = await post(session, admin.served.url, fulfilment(ORDER))
        assert status == 200

        async def delivered() -> bool:
            return '<td data-state="delivered">1</td>' in (await admin.get("/"))[1]

        await wait_until(delivered)
        status, html = await admin.get(f"/?q={key_of(ORDER)}")
        assert status == 200
        assert "delivery orders/fulfilled" in html
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        assert found is not None
        async with aiohttp.ClientSession() as session:
            for token, expected in (("wrong", 403), (TOKEN, 303)):
                form = {"csrf": found[1], "token": token, "all": "1"}
                async with session.post(
                    admin.url + "/retry", data=form, headers={"Origin": admin.url},
                    allow_redirects=False,
                ) as response:  # fmt: skip
                    assert response.status == expected
                    if expected == 303:
                        assert response.headers["Location"] == "/?retried=0"
