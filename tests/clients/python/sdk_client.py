#!/usr/bin/env python3
"""Real-client compatibility check: the official MCP Python SDK against nexus-gateway.

Usage: python sdk_client.py --server http://127.0.0.1:PORT [--protocol legacy|2026]

Everything OAuth is done by the SDK's own OAuthClientProvider: discovery (RFC 9728 + RFC 8414),
dynamic client registration, the authorization request (PKCE S256), the token exchange and the
refresh. The only part played here is the "browser": the redirect handler fetches the
authorization URL without following redirects (the gateway must run with NEXUS_APPROVAL=auto)
and hands code, state and iss from the Location header to the SDK's callback handler.

--protocol legacy  uses the initialize handshake (Client mode="legacy").
--protocol 2026    uses the 2026-07-28 lifecycle: Client mode="auto" sends server/discover and
                   the check fails unless the server answered it and 2026-07-28 was adopted.

Exit codes: 0 success, 1 a check failed, 2 bad usage / server unreachable,
3 the requested protocol is not supported by the installed SDK.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from importlib.metadata import version as dist_version
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2  # a hard dependency of `mcp`; the SDK's HTTP client API takes an httpx2.AsyncClient
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

EXPECTED_TOOLS = {"send_message", "pull_updates", "queue_status", "get_message", "cancel_message"}
MODERN_VERSION = "2026-07-28"
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the Location header is read instead
SERVER_UP_TIMEOUT_S = 15.0


class CheckFailed(Exception):
    pass


def step(msg: str) -> None:
    print(f"[ok] {msg}", flush=True)


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


class InMemoryTokenStorage:
    """The SDK's TokenStorage protocol, kept in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class HeadlessBrowser:
    """Plays the user agent: GET /authorize without following the redirect, read the Location."""

    def __init__(self) -> None:
        self._result: AuthorizationCodeResult | None = None
        self.authorize_calls = 0
        self.note = ""

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorize_calls += 1
        q = parse_qs(urlparse(authorization_url).query)
        check(q.get("code_challenge_method") == ["S256"], f"SDK did not ask for PKCE S256: {authorization_url}")
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
            resp = await http.get(authorization_url)
        check(
            resp.status_code in (302, 303),
            f"GET /authorize answered {resp.status_code}, expected a 302 (is NEXUS_APPROVAL=auto?): {' '.join(resp.text.split())[:200]}",
        )
        location = resp.headers.get("location")
        check(bool(location), "GET /authorize redirect has no Location header")
        check(location.startswith(REDIRECT_URI), f"redirect goes to {location}, not the registered redirect_uri")
        params = parse_qs(urlparse(location).query)
        if "error" in params:
            raise CheckFailed(f"authorization refused: {location}")
        check("code" in params and "state" in params, f"Location lacks code or state: {location}")
        self._result = AuthorizationCodeResult(
            code=params["code"][0],
            state=params["state"][0],
            iss=params.get("iss", [None])[0],
        )
        self.note = (
            f"authorize: 302 to redirect_uri with code, state{', iss=' + self._result.iss if self._result.iss else ''}"
            f" (scope={q.get('scope', ['-'])[0]!r}, resource={q.get('resource', ['-'])[0]!r})"
        )

    async def callback_handler(self) -> AuthorizationCodeResult:
        check(self._result is not None, "callback handler called before the redirect handler")
        result, self._result = self._result, None
        return result


class Traffic:
    """httpx2 event hooks: remember the OAuth requests the SDK made and the bearer of each /mcp call."""

    def __init__(self, server: str) -> None:
        self.server = server.rstrip("/")
        self.log: list[tuple[str, str, int]] = []
        self.token_grants: list[str] = []
        self.last_mcp_bearer: str | None = None
        self.last_mcp_status: int | None = None
        self.last_mcp_version: str | None = None

    async def on_request(self, request: httpx2.Request) -> None:
        if request.url.path == "/token":
            body = parse_qs(request.content.decode()) if request.content else {}
            self.token_grants.append(body.get("grant_type", ["?"])[0])

    async def on_response(self, response: httpx2.Response) -> None:
        req = response.request
        self.log.append((req.method, req.url.path, response.status_code))
        if req.url.path == "/mcp" and req.method == "POST":
            auth = req.headers.get("authorization", "")
            self.last_mcp_bearer = auth[7:] if auth.lower().startswith("bearer ") else None
            self.last_mcp_status = response.status_code
            self.last_mcp_version = req.headers.get("mcp-protocol-version")


def structured(result: Any, tool: str) -> dict[str, Any]:
    check(not result.is_error, f"{tool} returned a tool error: {result.content}")
    data = result.structured_content
    check(isinstance(data, dict), f"{tool} returned no structuredContent object: {result}")
    return data


async def wait_for_server(server: str) -> None:
    deadline = time.monotonic() + SERVER_UP_TIMEOUT_S
    last: str = ""
    async with httpx2.AsyncClient(timeout=5) as http:
        while True:
            try:
                r = await http.get(f"{server}/healthz")
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except httpx2.HTTPError as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise SystemExit(f"FAIL: server {server} not up after {SERVER_UP_TIMEOUT_S:.0f}s ({last})")
            await anyio.sleep(0.25)  # bounded wait for the server to come up


async def run(server: str, protocol: str) -> str:
    mcp_url = f"{server}/mcp"
    storage = InMemoryTokenStorage()
    browser = HeadlessBrowser()
    traffic = Traffic(server)

    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="nexus-gateway python sdk compat check",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )

    http_client = httpx2.AsyncClient(
        auth=provider,
        timeout=httpx2.Timeout(30.0, read=60.0),
        event_hooks={"request": [traffic.on_request], "response": [traffic.on_response]},
    )
    mode = "legacy" if protocol == "legacy" else "auto"

    async with http_client:
        transport = streamable_http_client(mcp_url, http_client=http_client, terminate_on_close=False)
        async with Client(transport, mode=mode, client_info=None) as client:
            # --- OAuth, all done by the SDK on the first 401 ---------------------------------
            paths = [f"{m} {p} {s}" for m, p, s in traffic.log]
            check(("POST", "/mcp", 401) in traffic.log, f"no initial 401 from /mcp: {paths}")
            check(
                any(p == "/.well-known/oauth-protected-resource/mcp" and s == 200 for _, p, s in traffic.log),
                f"SDK did not fetch RFC 9728 metadata: {paths}",
            )
            check(
                any(p.startswith("/.well-known/oauth-authorization-server") and s == 200 for _, p, s in traffic.log),
                f"SDK did not fetch RFC 8414 metadata: {paths}",
            )
            step("discovery: 401 + WWW-Authenticate -> RFC 9728 -> RFC 8414 (by the SDK)")
            check(storage.client_info is not None, "SDK stored no client registration")
            check(("POST", "/register", 201) in traffic.log or ("POST", "/register", 200) in traffic.log,
                  f"no successful POST /register: {paths}")
            step(f"dynamic client registration: client_id={storage.client_info.client_id}")
            check(browser.authorize_calls == 1, f"expected one authorization, saw {browser.authorize_calls}")
            step(browser.note)
            check(storage.tokens is not None and bool(storage.tokens.access_token), "SDK stored no access token")
            check(traffic.token_grants[:1] == ["authorization_code"], f"token grants: {traffic.token_grants}")
            check(bool(storage.tokens.refresh_token), "token response carried no refresh_token")
            step(
                f"token exchange: authorization_code -> access token ({storage.tokens.token_type}, "
                f"expires_in={storage.tokens.expires_in}, scope={storage.tokens.scope!r}) + refresh token"
            )

            # --- lifecycle -----------------------------------------------------------------------
            negotiated = client.protocol_version
            session = client.session
            if protocol == "legacy":
                check(session.initialize_result is not None, "legacy mode did not run initialize")
                info = client.server_info
                step(f"initialize: protocol {negotiated}, server {info.name if info else '?'} {info.version if info else ''}")
            else:
                check(
                    session.discover_result is not None and negotiated == MODERN_VERSION,
                    f"server/discover was not adopted (fell back to initialize?): negotiated {negotiated}",
                )
                dr = session.discover_result
                info = client.server_info
                step(
                    f"server/discover: supportedVersions={dr.supported_versions}, adopted {negotiated}, "
                    f"server {info.name + ' ' + (info.version or '') if info else '(anonymous)'}"
                )
            check(traffic.last_mcp_bearer == storage.tokens.access_token, "/mcp was not called with the SDK's token")

            # --- tools ---------------------------------------------------------------------------
            tools = await client.list_tools()
            names = {t.name for t in tools.tools}
            missing = EXPECTED_TOOLS - names
            check(not missing, f"tools/list lacks {sorted(missing)} (got {sorted(names)})")
            check(traffic.last_mcp_version == negotiated,
                  f"tools/list was sent with MCP-Protocol-Version {traffic.last_mcp_version}, not {negotiated}")
            step(f"tools/list: {sorted(names)}")

            text = f"python-sdk compat check {uuid.uuid4()}"
            sent = structured(await client.call_tool("send_message", {"message": text}), "send_message")
            check(sent.get("queued") is True, f"send_message did not queue: {sent}")
            msg_id = sent.get("id")
            check(isinstance(msg_id, str) and msg_id, f"send_message returned no id: {sent}")
            step(f"send_message: queued=true id={msg_id} target={sent.get('target')} status={sent.get('status')}")

            pulled = structured(await client.call_tool("pull_updates", {}), "pull_updates")
            updates = pulled.get("updates")
            check(isinstance(updates, list), f"pull_updates returned no updates list: {pulled}")
            mine = [u for u in updates if u.get("message_id") == msg_id]
            check(len(mine) >= 1, f"pull_updates has no update for {msg_id}: {pulled}")
            step(f"pull_updates: {len(mine)} update(s) for {msg_id} (first: {mine[0].get('content')!r}), "
                 f"next_cursor={pulled.get('next_cursor')}")

            status = structured(await client.call_tool("queue_status", {}), "queue_status")
            check(isinstance(status.get("pending"), int), f"queue_status lacks pending: {status}")
            check(status["pending"] >= 1, f"queue_status shows no pending task after send_message: {status}")
            step(f"queue_status: pending={status['pending']} total_updates={status.get('total_updates')}")

            # --- refresh round -------------------------------------------------------------------
            # The SDK refreshes before a request when its token is no longer valid
            # (OAuthContext.is_token_valid: time.time() > token_expiry_time). Make it look expired.
            old_access = storage.tokens.access_token
            old_refresh = storage.tokens.refresh_token
            grants_before = len(traffic.token_grants)
            authorizations_before = browser.authorize_calls
            provider.context.token_expiry_time = time.time() - 1
            check(not provider.context.is_token_valid() and provider.context.can_refresh_token(),
                  "could not make the SDK consider its token expired")
            step("refresh: marked the SDK's access token as expired")

            got = structured(await client.call_tool("get_message", {"id": msg_id}), "get_message")
            check(traffic.token_grants[grants_before:] == ["refresh_token"],
                  f"expected exactly one refresh_token grant, saw {traffic.token_grants[grants_before:]}")
            check(browser.authorize_calls == authorizations_before, "SDK re-authorized instead of refreshing")
            new_access = storage.tokens.access_token
            check(new_access != old_access, "access token did not change after the refresh")
            check(storage.tokens.refresh_token != old_refresh, "refresh token did not rotate")
            check(traffic.last_mcp_bearer == new_access and traffic.last_mcp_status == 200,
                  f"the tool call after the refresh did not use the new token (HTTP {traffic.last_mcp_status})")
            check(got.get("message", {}).get("id") == msg_id, f"get_message returned the wrong task: {got}")
            step(f"refresh: refresh_token grant -> new access token (changed), refresh token rotated; "
                 f"get_message with the new token ok (status={got['message'].get('status')})")

            cancelled = structured(await client.call_tool("cancel_message", {"id": msg_id}), "cancel_message")
            check(cancelled.get("cancelled") is True, f"cancel_message failed: {cancelled}")
            step(f"cancel_message (clean-up, new token): cancelled id={msg_id}")

            return negotiated


def describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="gateway origin, e.g. http://127.0.0.1:18601")
    ap.add_argument("--protocol", choices=["legacy", "2026"], default="legacy")
    args = ap.parse_args()
    server = args.server.rstrip("/")
    sdk_version = dist_version("mcp")

    if args.protocol == "2026":
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        if MODERN_VERSION not in MODERN_PROTOCOL_VERSIONS:
            print(f"FAIL: mcp=={sdk_version} does not support the {MODERN_VERSION} lifecycle", file=sys.stderr)
            return 3

    anyio.run(wait_for_server, server)
    try:
        negotiated = anyio.run(run, server, args.protocol)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - report whatever the SDK raised, clearly
        print(f"FAIL: {describe(e)}", file=sys.stderr)
        return 1
    print(f"PYTHON SDK OK mcp=={sdk_version} protocol={negotiated}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
