"""Console access against a real daemon: tokens hashed at rest, the route x role matrix over
every route of the app, logins, CSRF, expiry, revocation and the audit trail."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from warmd.access import Role, required_role
from warmd.admin.client import AdminClientError
from warmd.admin.protocol import ErrorCode
from warmd.admin.server import AdminServer
from warmd.cli.warmctl import main as warmctl_main
from warmd.clock import ManualClock
from warmd.config import WebConfig
from warmd.config_table import Address
from warmd.runtime.access.tokens import TokenAuthority
from warmd.statemachine.access import hash_secret
from warmd.statemachine.state import MachineState
from warmd.testing.console import Console
from warmd.web.auth import WebAccess, is_public
from warmd.web.console.readers import ConsoleReaders
from warmd.web.listeners import ConsoleParts, web_app
from warmd.web.sessions import SessionStore

ROLES = (None, Role.VIEWER, Role.OPERATOR, Role.ADMIN)


def app_routes(tmp_path: Path) -> list[tuple[str, str, Any]]:
    """(method, path template, handler) of every route of the console app, built as the
    daemon builds it."""
    clock = ManualClock()
    access = WebAccess(TokenAuthority(MachineState, clock), SessionStore(clock))
    web = WebConfig(True, Address("127.0.0.1", 0), None, None)
    admin = AdminServer(tmp_path / "admin.sock")
    readers = ConsoleReaders(status=_listed_only, state=MachineState, subscribe=_listed_only,
                             invoke=admin.invoke)
    app = web_app(web, CollectorRegistry(), (), ConsoleParts(access, admin, readers))
    return [(route.method, route.resource.canonical, route.handler)
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None]


def _listed_only(*_: Any) -> Any:
    raise AssertionError("the app is built here only to list its routes")


def expected(handler: Any, path: str, role: Role | None) -> str:
    if is_public(handler) or path == "/metrics":  # /metrics: loopback without a scrape token
        return "same for all"
    if role is None:
        return "401"
    return "403" if role < required_role(handler) else "allowed"


async def test_every_route_enforces_its_role_for_every_kind_of_caller(
        console: Console, tmp_path: Path) -> None:
    """Anonymous -> 401, a role below the route's -> 403, enough -> neither; public routes
    answer every caller alike. Enforced by the server, whatever a page shows."""
    routes = app_routes(tmp_path)
    roles = {path: required_role(handler) for _, path, handler in routes}
    assert {path: roles[path] for path in ("/logout", "/audit", "/api/v1/audit", "/metrics")} \
        == {"/logout": Role.VIEWER, "/audit": Role.OPERATOR, "/api/v1/audit": Role.OPERATOR,
            "/metrics": Role.VIEWER}
    async with aiohttp.ClientSession() as http:
        for method, path, handler in routes:
            url = console.base + re.sub(r"\{[^}]+\}", "nonexistent", path)
            statuses = {}
            for role in ROLES:
                async with http.request(method, url, headers=console.headers(role),
                                        allow_redirects=False) as reply:
                    statuses[role] = reply.status
                    streaming = reply.content_type == "text/event-stream"  # never ends
                    body = "" if streaming else await reply.text()
                want = expected(handler, path, role)
                where = f"{method} {path} as {role!r}: {statuses[role]} {body[:200]}"
                if want in ("401", "403"):
                    assert statuses[role] == int(want), where
                    assert '"message"' in body, where
                elif want == "allowed":
                    assert statuses[role] not in (401, 403), where
            if expected(handler, path, None) == "same for all":
                assert len(set(statuses.values())) == 1, f"{method} {path}: {statuses}"


def test_secrets_are_never_at_rest_only_their_hashes(console: Console) -> None:
    """After a snapshot, no file of the data directory holds a secret; the hashes are there."""
    console.cluster.call(1, "snapshot")

    hashes = [hash_secret(secret).encode() for secret in console.secrets.values()]

    def data_dir_bytes() -> bytes | None:
        """Every file's bytes once every hash is among them. A file renamed or compacted
        away while read is skipped: the snapshot is persisted behind the call's answer."""
        chunks = []
        for path in console.cluster.nodes[1].data_dir.rglob("*"):
            with contextlib.suppress(FileNotFoundError):
                chunks.append(path.read_bytes() if path.is_file() else b"")
        data = b"".join(chunks)
        return data if all(digest in data for digest in hashes) else None

    data = console.cluster.wait_until(data_dir_bytes, 10, "the token hashes on disk")
    for secret in console.secrets.values():
        assert secret.encode() not in data
    listed = console.cluster.call(1, "token-list")["tokens"]
    assert {token["name"] for token in listed} >= {"viewer-1", "operator-1", "admin-1"}
    assert not any("secret" in token or "hash" in str(token) for token in listed)


def test_token_roles_on_the_socket_and_the_audit_kept_after_revoke(console: Console) -> None:
    """An operator token may cancel but not transfer leadership; a viewer may not cancel;
    each attempt is audited with the token's name and outlives the token's revocation."""
    secret = console.add_token("ops-audit", "operator")
    submitted = console.as_token(secret, "task-submit", keys=["k"], target="redis://127.0.0.1:1")
    console.as_token(secret, "task-cancel", task_id=submitted["task_id"])
    with pytest.raises(AdminClientError) as refused:
        console.as_token(secret, "transfer-leader")
    assert refused.value.code == ErrorCode.PERMISSION_DENIED
    assert "needs admin" in refused.value.message
    with pytest.raises(AdminClientError, match="needs operator"):
        console.as_token(console.secrets[Role.VIEWER], "task-cancel", task_id="t-x")
    console.cluster.call(1, "token-revoke", name="ops-audit")
    with pytest.raises(AdminClientError, match="was revoked"):
        console.as_token(secret, "status")
    records = console.cluster.call(1, "audit", token="ops-audit")["records"]
    assert [(record["action"], record["result"]) for record in records] == [
        ("transfer-leader", "denied"), ("task-cancel", "ok"), ("task-submit", "ok")]
    assert records[1]["target"] == f"task_id={submitted['task_id']}"
    assert all(record["interface"] == "warmctl" and record["role"] == "operator"
               for record in records)
    assert records[0]["index"] > records[1]["index"] > records[2]["index"]
    revoke = console.cluster.call(1, "audit", action="token-revoke")["records"][0]
    assert revoke["target"] == "name=ops-audit" and revoke["token_name"] is None


async def test_expired_token_gets_401_with_its_reason(console: Console) -> None:
    """A token past its TTL is refused by the API (401) and the socket, saying it expired."""
    secret = console.add_token("short-lived", "admin", ttl_s=1)
    await asyncio.sleep(1.2)
    async with aiohttp.ClientSession() as http, http.get(
            console.base + "/api/v1/audit",
            headers={"Authorization": f"Bearer {secret}"}) as reply:
        assert reply.status == 401
        assert "expired" in (await reply.json())["error"]["message"]
    with pytest.raises(AdminClientError, match="expired"):
        console.as_token(secret, "status")


async def login(http: aiohttp.ClientSession, base: str, secret: str) -> aiohttp.ClientResponse:
    async with http.get(base + "/login", headers={"Accept": "text/html"}) as page:
        form_csrf = re.search(r'action="/login">\s*<input type="hidden" name="csrf_token" '
                              r'value="([^"]+)"', await page.text())
    assert form_csrf is not None
    return await http.post(base + "/login", allow_redirects=False,
                           data={"token": secret, "csrf_token": form_csrf.group(1), "next": "/audit"})


def cookie_jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1


async def test_login_sets_a_strict_httponly_session_and_forms_need_its_csrf_token(
        console: Console) -> None:
    """Login -> 303 with the cookie; the audit page opens; a POST without or with a wrong
    CSRF token is refused 403; logout with it ends the session."""
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as http:
        reply = await login(http, console.base, console.secrets[Role.OPERATOR])
        assert reply.status == 303 and reply.headers["Location"] == "/audit"
        cookie = reply.headers.getall("Set-Cookie")
        session_cookie = next(value for value in cookie if value.startswith("warmd_session="))
        assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
        async with http.get(console.base + "/audit") as page:
            text = await page.text()
            assert page.status == 200 and "operator-1" in text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', text)
        assert csrf is not None
        for wrong in ({}, {"csrf_token": "forged"}):
            async with http.post(console.base + "/logout", data=wrong,
                                 allow_redirects=False) as refused:
                assert refused.status == 403
                assert "CSRF" in (await refused.json())["error"]["message"]
        async with http.post(console.base + "/logout", data={"csrf_token": csrf.group(1)},
                             allow_redirects=False) as out:
            assert out.status == 303
        async with http.get(console.base + "/api/v1/audit") as after:
            assert after.status == 401


async def test_a_session_ends_when_its_token_is_revoked(console: Console) -> None:
    """Revoking a token logs out the browsers that logged in with it."""
    secret = console.add_token("revoked-session", "viewer")
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as http:
        assert (await login(http, console.base, secret)).status == 303
        async with http.get(console.base + "/metrics") as page:
            assert page.status == 200
        console.cluster.call(1, "token-revoke", name="revoked-session")
        async with http.get(console.base + "/audit", allow_redirects=False,
                            headers={"Accept": "text/html"}) as page:
            assert page.status == 303 and page.headers["Location"].startswith("/login")


async def test_a_wrong_token_and_a_forged_login_are_refused(console: Console) -> None:
    """A wrong token re-shows the form with 401; a login POST without the form's CSRF cookie
    is refused 403 (login CSRF)."""
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as http:
        reply = await login(http, console.base, "wmd_not-a-token")
        assert reply.status == 401 and "unknown token" in await reply.text()
    async with aiohttp.ClientSession() as http, http.post(
            console.base + "/login", data={"token": console.secrets[Role.ADMIN],
                                           "csrf_token": "x"}, allow_redirects=False) as reply:
        assert reply.status == 403


async def test_a_one_time_login_link_works_once(console: Console) -> None:
    """`login-link` gives a URL that logs in once; the second use is refused."""
    link = console.cluster.call(1, "login-link")
    assert link["url"].startswith(console.base + "/login/once?code=")
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as http:
        async with http.get(link["url"]) as first:
            assert first.status == 200
        async with http.get(console.base + "/api/v1/audit") as page:
            assert page.status == 200  # the socket's uid acts as admin
    async with aiohttp.ClientSession() as http, http.get(link["url"]) as again:
        assert again.status == 401


async def test_a_console_form_mutation_is_audited_as_the_ui_with_its_source(
        console: Console) -> None:
    """An admin's revoke from /tokens is committed, and audited with interface ui, the
    token it logged in with and the browser's address."""
    console.add_token("to-revoke-in-ui", "viewer")
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as http:
        assert (await login(http, console.base, console.secrets[Role.ADMIN])).status == 303
        async with http.get(console.base + "/tokens") as page:
            text = await page.text()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', text)
        assert csrf is not None and "Revoke to-revoke-in-ui" in text
        async with http.post(console.base + "/tokens/revoke", allow_redirects=False,
                             data={"name": "to-revoke-in-ui",
                                   "csrf_token": csrf.group(1)}) as reply:
            assert reply.status == 303
    record = console.cluster.call(1, "audit", action="token-revoke", interface="ui")["records"][0]
    assert (record["target"], record["result"], record["token_name"], record["source"]) == \
        ("name=to-revoke-in-ui", "ok", "admin-1", "127.0.0.1")


def test_warmctl_token_commands_and_the_token_option(
        console: Console, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`token add` prints the secret once, `token list` never does; `--token` and
    WARMCTL_TOKEN act as the token; `audit` lists what it did."""
    socket = str(console.cluster.nodes[1].socket_path)
    assert warmctl_main(["--socket", socket, "token", "add", "--name", "cli", "--role",
                         "viewer", "--json"]) == 0
    secret = json.loads(capsys.readouterr().out)["secret"]
    assert warmctl_main(["--socket", socket, "token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "cli" in listing and secret not in listing
    assert warmctl_main(["--socket", socket, "--token", secret, "drain", "1"]) == 77
    assert "needs operator" in capsys.readouterr().err
    monkeypatch.setenv("WARMCTL_TOKEN", console.secrets[Role.OPERATOR])
    assert warmctl_main(["--socket", socket, "audit", "--by-token", "cli", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["records"]
    assert [(record["action"], record["result"]) for record in records] == [("drain", "denied")]
    monkeypatch.setenv("WARMCTL_TOKEN", secret)
    assert warmctl_main(["--socket", socket, "audit"]) == 77  # a viewer may not read it


async def test_logging_in_again_over_a_session_works(console: Console) -> None:
    """A browser already logged in may log in with another token (the login form guards
    itself; the session's CSRF token is not asked of it)."""
    async with aiohttp.ClientSession(cookie_jar=cookie_jar()) as http:
        assert (await login(http, console.base, console.secrets[Role.VIEWER])).status == 303
        assert (await login(http, console.base, console.secrets[Role.OPERATOR])).status == 303
        async with http.get(console.base + "/api/v1/audit") as page:
            assert page.status == 200  # operator now
