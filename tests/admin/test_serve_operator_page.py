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


async def test_every_route_of_the_admin_listener_answers_only_allowed_host_names(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """serve's admin listener checks ``Host`` before the page's routes: a rebound name gets 403
    from the page, the search and the retry, while an IP address, a name of ``allowed_hosts``
    and the host of ``public_url`` are answered; the metrics and the probes, which hold no
    customer data, answer a scraper by any name; and a retry that came through the HTTPS proxy
    ``public_url`` names is accepted."""
    config = admin_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text + 'token = { env = "PAGE_ADMIN_TOKEN" }\nallowed_hosts = ["metrics.internal"]\n'
        'public_url = "https://ops.example.com/kit"\n',
        encoding="utf-8",
    )
    env = serve_env(PAGE_ADMIN_TOKEN=TOKEN)
    async with (
        serving_admin(config, env=env, stderr_path=tmp_path / "e") as admin,
        aiohttp.ClientSession() as session,
    ):
        status, html = await admin.get("/")
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        assert status == 200
        assert found is not None
        form = {"csrf": found[1], "token": TOKEN, "all": "1"}
        routes = [("GET", "/"), ("GET", "/?q=3401"), ("POST", "/retry")]
        for method, path in routes:
            async with session.request(
                method, admin.url + path, data=form if method == "POST" else None,
                headers={"Host": "evil.example", "Origin": "http://evil.example"},
                allow_redirects=False,
            ) as response:  # fmt: skip
                assert response.status == 403, path
                assert found[1] not in await response.text()
        for host in ("metrics.internal", "ops.example.com", "127.0.0.1"):
            async with session.get(admin.url + "/", headers={"Host": host}) as response:
                assert response.status == 200, host
        for path in ("/healthz", "/readyz", "/metrics"):  # e.g. etrusted-kit:9108 in compose
            async with session.get(admin.url + path, headers={"Host": "evil.example"}) as response:
                assert response.status in (200, 503), path  # /readyz may say not ready
                assert found[1] not in await response.text()
        async with session.post(
            admin.url + "/retry", data=form, allow_redirects=False,
            headers={"Host": "ops.example.com", "Origin": "https://ops.example.com"},
        ) as response:  # fmt: skip
            assert response.status == 303
            assert response.headers["Location"] == "/kit/?retried=0"
    assert admin.served.stderr.count("admin.host_refused") == len(routes), admin.served.stderr
