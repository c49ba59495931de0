#!/usr/bin/env node
// Real-client compatibility check: the official MCP TypeScript SDK against nexus-gateway.
//
// The SDK does all of the OAuth work itself (RFC 9728 discovery from the 401's
// WWW-Authenticate, RFC 8414 metadata, RFC 7591 registration, PKCE authorize, token
// exchange, refresh); this script only supplies an in-memory OAuthClientProvider whose
// redirectToAuthorization() plays the user agent against a gateway in `auto` approval mode.
//
// usage: node sdk-client.mjs --server http://127.0.0.1:PORT [--protocol legacy|2026] [--verbose]
// exit:  0 ok, 1 check failed, 2 usage, 3 the SDK cannot speak the requested protocol

import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID, randomBytes } from 'node:crypto';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';

const PROTOCOL_2026 = '2026-07-28';
const EXPECTED_TOOLS = ['cancel_message', 'get_message', 'pull_updates', 'queue_status', 'send_message'];

class CheckFailed extends Error {}

function step(msg) {
    console.log(`[ts-sdk] ${msg}`);
}

function fail(msg) {
    throw new CheckFailed(msg);
}

function check(cond, msg) {
    if (!cond) fail(msg);
}

function usage(msg) {
    if (msg) console.error(`error: ${msg}`);
    console.error('usage: node sdk-client.mjs --server http://127.0.0.1:PORT [--protocol legacy|2026] [--client-metadata-url URL] [--verbose]');
    process.exit(2);
}

function parseArgs(argv) {
    const opts = { server: undefined, protocol: 'legacy', verbose: false, clientMetadataUrl: undefined };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            const v = argv[++i];
            if (v === undefined) usage(`${a} needs a value`);
            return v;
        };
        if (a === '--server') opts.server = value();
        else if (a.startsWith('--server=')) opts.server = a.slice('--server='.length);
        else if (a === '--protocol') opts.protocol = value();
        else if (a.startsWith('--protocol=')) opts.protocol = a.slice('--protocol='.length);
        else if (a === '--client-metadata-url') opts.clientMetadataUrl = value();
        else if (a === '--verbose' || a === '-v') opts.verbose = true;
        else if (a === '--help' || a === '-h') usage();
        else usage(`unknown argument: ${a}`);
    }
    if (!opts.server) usage('--server is required');
    if (!['legacy', '2026'].includes(opts.protocol)) usage(`--protocol must be legacy or 2026, not ${opts.protocol}`);
    try {
        const u = new URL(opts.server);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
    } catch {
        usage(`--server must be an http(s) URL, not ${opts.server}`);
    }
    opts.server = opts.server.replace(/\/+$/, '');
    return opts;
}

// The SDK's package.json is not in its `exports`, so find it next to the resolved module.
function sdkVersion() {
    let dir = dirname(fileURLToPath(import.meta.resolve('@modelcontextprotocol/sdk/client/index.js')));
    for (;;) {
        const p = join(dir, 'package.json');
        if (existsSync(p)) {
            const pkg = JSON.parse(readFileSync(p, 'utf8'));
            if (pkg.name === '@modelcontextprotocol/sdk') return pkg.version;
        }
        const up = dirname(dir);
        if (up === dir) return 'unknown';
        dir = up;
    }
}

function jwtClaims(token) {
    const parts = String(token).split('.');
    if (parts.length !== 3) return undefined;
    try {
        return {
            header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')),
            payload: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'))
        };
    } catch {
        return undefined;
    }
}

function short(token) {
    return token ? `${String(token).slice(0, 12)}…${String(token).slice(-6)}` : String(token);
}

// ---------------------------------------------------------------------------------------
// HTTP trace: every request the SDK makes (MCP and OAuth) goes through this fetch.

const trace = [];
function makeTracingFetch(verbose) {
    return async (input, init) => {
        const url = new URL(input instanceof Request ? input.url : String(input));
        const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
        let rpc = '';
        if (typeof init?.body === 'string' && url.pathname.endsWith('/mcp')) {
            try {
                const m = JSON.parse(init.body);
                rpc = ` ${m.method ?? 'response'}`;
            } catch {
                /* not JSON */
            }
        }
        const res = await fetch(input, init);
        const entry = { method, path: url.pathname, status: res.status, rpc };
        trace.push(entry);
        if (verbose) step(`  http ${method} ${url.pathname}${rpc} -> ${res.status}`);
        return res;
    };
}

// ---------------------------------------------------------------------------------------
// In-memory OAuthClientProvider.

class InMemoryOAuthProvider {
    constructor({ redirectUrl, fetchFn, clientMetadataUrl }) {
        this._redirectUrl = redirectUrl;
        // When set, the SDK identifies the client by this Client ID Metadata Document URL
        // instead of registering, if the server advertises support.
        this.clientMetadataUrl = clientMetadataUrl;
        this._fetch = fetchFn;
        this._clientInformation = undefined;
        this._tokens = undefined;
        this._codeVerifier = undefined;
        this._discovery = undefined;
        this._state = undefined;
        this.authorizationCode = undefined;
        this.authorizationUrl = undefined;
        this.callbackParams = undefined;
        this.savedTokens = 0;
    }

    get redirectUrl() {
        return this._redirectUrl;
    }

    get clientMetadata() {
        return {
            client_name: 'nexus-gateway TS SDK compatibility check',
            redirect_uris: [this._redirectUrl],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'none'
        };
    }

    state() {
        this._state = randomBytes(16).toString('base64url');
        return this._state;
    }

    clientInformation() {
        return this._clientInformation;
    }

    saveClientInformation(info) {
        this._clientInformation = info;
    }

    tokens() {
        return this._tokens;
    }

    saveTokens(tokens) {
        this._tokens = tokens;
        this.savedTokens++;
    }

    saveCodeVerifier(v) {
        this._codeVerifier = v;
    }

    codeVerifier() {
        if (!this._codeVerifier) throw new Error('no code verifier saved');
        return this._codeVerifier;
    }

    saveDiscoveryState(s) {
        this._discovery = s;
    }

    discoveryState() {
        return this._discovery;
    }

    invalidateCredentials(scope) {
        if (scope === 'all' || scope === 'client') this._clientInformation = undefined;
        if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
        if (scope === 'all' || scope === 'verifier') this._codeVerifier = undefined;
        if (scope === 'all' || scope === 'discovery') this._discovery = undefined;
    }

    // The "user agent": the gateway runs with NEXUS_APPROVAL=auto, so /authorize answers
    // 302 straight back to the redirect URI with code, state and iss.
    async redirectToAuthorization(authorizationUrl) {
        this.authorizationUrl = new URL(authorizationUrl);
        const res = await this._fetch(authorizationUrl, { redirect: 'manual' });
        const location = res.headers.get('location');
        if (res.status < 300 || res.status >= 400 || !location) {
            const body = await res.text().catch(() => '');
            throw new CheckFailed(
                `GET /authorize answered ${res.status} without a redirect (is the gateway in NEXUS_APPROVAL=auto mode?): ${body.slice(0, 300)}`
            );
        }
        const cb = new URL(location, authorizationUrl);
        const expected = new URL(this._redirectUrl);
        if (cb.origin + cb.pathname !== expected.origin + expected.pathname) {
            throw new CheckFailed(`authorization redirected to ${cb.origin}${cb.pathname}, expected ${this._redirectUrl}`);
        }
        const p = cb.searchParams;
        if (p.get('error')) {
            throw new CheckFailed(`authorization error: ${p.get('error')} ${p.get('error_description') ?? ''}`);
        }
        const code = p.get('code');
        if (!code) throw new CheckFailed(`authorization redirect has no code: ${location}`);
        if (p.get('state') !== this._state) {
            throw new CheckFailed(`authorization redirect state ${p.get('state')} != sent state ${this._state}`);
        }
        const issuer = this._discovery?.authorizationServerMetadata?.issuer;
        if (issuer && p.get('iss') !== issuer) {
            throw new CheckFailed(`authorization redirect iss ${p.get('iss')} != metadata issuer ${issuer} (RFC 9207)`);
        }
        this.callbackParams = p;
        this.authorizationCode = code;
    }
}

// ---------------------------------------------------------------------------------------

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    const version = sdkVersion();
    const mcpUrl = new URL(`${opts.server}/mcp`);

    step(`@modelcontextprotocol/sdk@${version}: LATEST_PROTOCOL_VERSION=${LATEST_PROTOCOL_VERSION}, supported=[${SUPPORTED_PROTOCOL_VERSIONS.join(', ')}]`);

    if (opts.protocol === '2026') {
        // 1.x Client.connect() always sends `initialize` with LATEST_PROTOCOL_VERSION and has
        // no server/discover (2026-07-28) lifecycle; only the draft schema types mention 2026.
        if (!SUPPORTED_PROTOCOL_VERSIONS.includes(PROTOCOL_2026)) {
            console.error(
                `UNSUPPORTED: @modelcontextprotocol/sdk@${version} does not implement the ${PROTOCOL_2026} protocol ` +
                    `(no server/discover lifecycle; its Client always runs initialize with ${LATEST_PROTOCOL_VERSION}). ` +
                    'Run with --protocol legacy.'
            );
            process.exit(3);
        }
        console.error(
            `UNSUPPORTED: @modelcontextprotocol/sdk@${version} lists ${PROTOCOL_2026}, but this script does not yet know how to select it; update sdk-client.mjs.`
        );
        process.exit(3);
    }

    const tracingFetch = makeTracingFetch(opts.verbose);
    const provider = new InMemoryOAuthProvider({
        redirectUrl: 'http://127.0.0.1:53682/oauth/callback',
        fetchFn: tracingFetch,
        clientMetadataUrl: opts.clientMetadataUrl
    });
    const clientInfo = { name: 'nexus-ts-sdk-check', version: '1.0.0' };

    // 1. First connect: the gateway answers 401; the SDK discovers, registers and redirects.
    const t1 = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: tracingFetch });
    const c1 = new Client(clientInfo, { capabilities: {} });
    let firstError;
    try {
        await c1.connect(t1);
    } catch (e) {
        firstError = e;
    }
    check(firstError, 'connect without a token unexpectedly succeeded (the gateway must answer 401)');
    if (firstError instanceof TypeError && /fetch failed/.test(firstError.message)) {
        fail(`cannot reach ${mcpUrl.href}: ${firstError.cause?.code ?? firstError.cause?.message ?? firstError.message}`);
    }
    if (!(firstError instanceof UnauthorizedError)) {
        fail(`first connect failed with something other than UnauthorizedError: ${firstError?.stack ?? firstError}`);
    }
    check(provider.authorizationCode, 'SDK did not call redirectToAuthorization');
    const first401 = trace.find(e => e.path === mcpUrl.pathname && e.status === 401);
    check(first401, 'no 401 from /mcp seen');
    const prm = trace.find(e => e.path.startsWith('/.well-known/oauth-protected-resource') && e.status === 200);
    const asm = trace.find(e => e.path.startsWith('/.well-known/oauth-authorization-server') && e.status === 200);
    const reg = trace.find(e => e.method === 'POST' && e.path === '/register');
    check(prm, 'SDK did not fetch protected-resource metadata (RFC 9728)');
    check(asm, 'SDK did not fetch authorization-server metadata (RFC 8414)');
    step(`discovery: 401 from /mcp -> GET ${prm.path} -> GET ${asm.path} (issuer ${provider.discoveryState()?.authorizationServerMetadata?.issuer})`);
    const ci = provider.clientInformation();
    if (opts.clientMetadataUrl) {
        check(!reg, 'SDK registered although it has a Client ID Metadata Document URL');
        check(ci?.client_id === opts.clientMetadataUrl, `client_id ${ci?.client_id} is not the metadata document URL`);
        step(`metadata document: no registration, client_id=${ci.client_id}`);
    } else {
        check(reg && reg.status === 201, `SDK dynamic client registration did not answer 201 (got ${reg?.status})`);
        step(`registration: POST /register -> ${reg.status}, client_id=${ci.client_id}, auth_method=${ci.token_endpoint_auth_method ?? '(none given)'}`);
    }
    const au = provider.authorizationUrl;
    step(
        `authorize: scope="${au.searchParams.get('scope')}" resource=${au.searchParams.get('resource')} ` +
            `code_challenge_method=${au.searchParams.get('code_challenge_method')} -> 302 with code, state ok, iss=${provider.callbackParams.get('iss')}`
    );

    // 2. The SDK exchanges the code (transport.finishAuth -> auth(..., {authorizationCode})).
    await t1.finishAuth(provider.authorizationCode);
    const tok1 = provider.tokens();
    check(tok1?.access_token, 'finishAuth saved no access token');
    check(tok1.refresh_token, 'token response has no refresh_token (refresh round impossible)');
    const tokPost = trace.filter(e => e.method === 'POST' && e.path === '/token');
    check(tokPost.length === 1 && tokPost[0].status === 200, `expected one successful POST /token, saw ${JSON.stringify(tokPost)}`);
    const claims = jwtClaims(tok1.access_token);
    check(claims, 'access token is not a JWT');
    check(
        claims.payload.aud === mcpUrl.href || (Array.isArray(claims.payload.aud) && claims.payload.aud.includes(mcpUrl.href)),
        `access token aud ${JSON.stringify(claims.payload.aud)} != ${mcpUrl.href}`
    );
    step(
        `token: POST /token -> 200, token_type=${tok1.token_type}, expires_in=${tok1.expires_in}, scope="${tok1.scope ?? ''}", ` +
            `jwt typ=${claims.header.typ} alg=${claims.header.alg} aud=${claims.payload.aud}, refresh token present`
    );

    // 3. Connect for real with a fresh transport (initialize + notifications/initialized).
    const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: tracingFetch });
    const client = new Client(clientInfo, { capabilities: {} });
    await client.connect(transport);
    const negotiated = transport.protocolVersion;
    check(negotiated, 'no protocol version negotiated');
    check(SUPPORTED_PROTOCOL_VERSIONS.includes(negotiated), `negotiated unsupported version ${negotiated}`);
    const sv = client.getServerVersion();
    step(`initialize: protocol=${negotiated} server=${sv?.name}@${sv?.version} capabilities=${Object.keys(client.getServerCapabilities() ?? {}).join(',')}`);

    // 4. tools/list
    const { tools } = await client.listTools();
    const names = tools.map(t => t.name).sort();
    check(
        JSON.stringify(names) === JSON.stringify(EXPECTED_TOOLS),
        `tools/list returned [${names.join(', ')}], expected [${EXPECTED_TOOLS.join(', ')}]`
    );
    const withOutput = tools.filter(t => t.outputSchema).length;
    step(`tools/list: ${names.join(', ')} (${withOutput}/${tools.length} with outputSchema)`);

    // 5. send_message (the SDK validates structuredContent against the tool's outputSchema)
    const text = `ts-sdk compatibility check ${new Date().toISOString()} ${randomUUID()}`;
    const sent = await client.callTool({ name: 'send_message', arguments: { message: text } });
    check(!sent.isError, `send_message returned a tool error: ${JSON.stringify(sent.content)}`);
    check(sent.structuredContent?.queued === true, `send_message structuredContent.queued !== true: ${JSON.stringify(sent.structuredContent)}`);
    const msgId = sent.structuredContent.id;
    check(msgId, 'send_message returned no id');
    step(`send_message: queued=true id=${msgId} target=${sent.structuredContent.target} status=${sent.structuredContent.status}`);

    // 6. pull_updates
    const pulled = await client.callTool({ name: 'pull_updates', arguments: {} });
    check(!pulled.isError, `pull_updates returned a tool error: ${JSON.stringify(pulled.content)}`);
    const updates = pulled.structuredContent?.updates;
    check(Array.isArray(updates), `pull_updates has no updates array: ${JSON.stringify(pulled.structuredContent)}`);
    const mine = updates.filter(u => u.message_id === msgId);
    check(mine.length > 0, `pull_updates has no update for ${msgId}: ${JSON.stringify(updates)}`);
    step(`pull_updates: ${updates.length} update(s), for ${msgId}: "${mine[0].content}" status=${mine[0].status}, next_cursor=${pulled.structuredContent.next_cursor}`);
    const again = await client.callTool({ name: 'pull_updates', arguments: {} });
    check(!again.isError, `second pull_updates returned a tool error: ${JSON.stringify(again.content)}`);
    const seen = new Set(updates.map(u => u.seq));
    const repeated = (again.structuredContent?.updates ?? []).filter(u => seen.has(u.seq));
    check(repeated.length === 0, `second pull_updates repeated already-pulled updates: ${JSON.stringify(repeated)}`);
    step(`pull_updates again: ${again.structuredContent.updates.length} new update(s), none repeated`);

    // 7. queue_status
    const qs = await client.callTool({ name: 'queue_status', arguments: {} });
    check(!qs.isError, `queue_status returned a tool error: ${JSON.stringify(qs.content)}`);
    const q = qs.structuredContent;
    check(q && typeof q.pending === 'number', `queue_status has no numeric pending: ${JSON.stringify(q)}`);
    check(q.pending >= 1, `queue_status pending=${q.pending}, expected >= 1 after send_message`);
    step(`queue_status: pending=${q.pending} acknowledged=${q.acknowledged} in_progress=${q.in_progress} total_updates=${q.total_updates}`);

    // 8a. Refresh, explicit: auth() with stored tokens holding a refresh_token and no
    //     authorization code takes the SDK's refresh_token grant path.
    const beforeA = provider.tokens();
    const tokenCallsBeforeA = trace.filter(e => e.path === '/token').length;
    const resA = await auth(provider, { serverUrl: mcpUrl, fetchFn: tracingFetch });
    check(resA === 'AUTHORIZED', `auth() refresh returned ${resA}`);
    const afterA = provider.tokens();
    const tokenCallsA = trace.filter(e => e.path === '/token').slice(tokenCallsBeforeA);
    check(tokenCallsA.length === 1 && tokenCallsA[0].status === 200, `refresh: expected one POST /token -> 200, saw ${JSON.stringify(tokenCallsA)}`);
    check(afterA.access_token !== beforeA.access_token, 'refresh: access token did not change');
    check(afterA.refresh_token, 'refresh: no refresh token in the refresh response');
    check(afterA.refresh_token !== beforeA.refresh_token, 'refresh: refresh token did not rotate');
    const get1 = await client.callTool({ name: 'get_message', arguments: { id: msgId } });
    check(!get1.isError, `get_message after refresh returned a tool error: ${JSON.stringify(get1.content)}`);
    check(get1.structuredContent?.message?.id === msgId, `get_message returned another message: ${JSON.stringify(get1.structuredContent)}`);
    step(`refresh (auth() refresh_token grant): access ${short(beforeA.access_token)} -> ${short(afterA.access_token)}, refresh token rotated; get_message ok`);

    // 8b. Refresh, reactive: mark the stored access token expired (replace it with a token the
    //     gateway rejects; the SDK keeps no expiry clock of its own). The transport gets 401,
    //     runs auth() -> refresh_token grant, and retries the call once.
    const beforeB = provider.tokens();
    provider.saveTokens({ ...beforeB, access_token: `expired.${randomBytes(8).toString('hex')}.x`, expires_in: 0 });
    const tokenCallsBeforeB = trace.filter(e => e.path === '/token').length;
    const mcp401BeforeB = trace.filter(e => e.path === mcpUrl.pathname && e.status === 401).length;
    const qs2 = await client.callTool({ name: 'queue_status', arguments: {} });
    check(!qs2.isError, `queue_status after 401-driven refresh returned a tool error: ${JSON.stringify(qs2.content)}`);
    const afterB = provider.tokens();
    const tokenCallsB = trace.filter(e => e.path === '/token').slice(tokenCallsBeforeB);
    const mcp401B = trace.filter(e => e.path === mcpUrl.pathname && e.status === 401).length - mcp401BeforeB;
    check(mcp401B === 1, `expected exactly one 401 from /mcp for the stale token, saw ${mcp401B}`);
    check(tokenCallsB.length === 1 && tokenCallsB[0].status === 200, `401 refresh: expected one POST /token -> 200, saw ${JSON.stringify(tokenCallsB)}`);
    check(afterB.access_token !== beforeB.access_token, '401 refresh: access token did not change');
    check(afterB.refresh_token !== beforeB.refresh_token, '401 refresh: refresh token did not rotate');
    step(`refresh (stale token -> 401 -> SDK refresh -> retry): access ${short(beforeB.access_token)} -> ${short(afterB.access_token)}; queue_status ok (pending=${qs2.structuredContent?.pending})`);

    // 9. Clean up: cancel our task so repeated runs against one gateway do not pile up.
    const cancelled = await client.callTool({ name: 'cancel_message', arguments: { id: msgId } });
    check(!cancelled.isError, `cancel_message returned a tool error: ${JSON.stringify(cancelled.content)}`);
    check(cancelled.structuredContent?.cancelled === true, `cancel_message: ${JSON.stringify(cancelled.structuredContent)}`);
    step(`cancel_message: cancelled=true status=${cancelled.structuredContent.status}`);

    await client.close();
    console.log(`TS SDK OK @modelcontextprotocol/sdk@${version} protocol=${negotiated}`);
}

const timer = setTimeout(() => {
    console.error('FAIL: timed out after 60 s');
    process.exit(1);
}, 60_000);
timer.unref();

main().then(
    () => process.exit(0),
    e => {
        if (e instanceof CheckFailed) console.error(`FAIL: ${e.message}`);
        else console.error(`FAIL: ${e?.stack ?? e}`);
        process.exit(1);
    }
);
