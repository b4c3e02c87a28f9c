// Portcullis interop checks for Node: panva jose (jwtVerify) and
// openid-client, each at its defaults. Run by interop/node_test.go against
// a real server; the settings come in PORTCULLIS_INTEROP (JSON). Prints one
// line per check, "ok NAME" or "FAIL NAME :: reason", and exits 1 on any
// failure.
import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const cfg = JSON.parse(process.env.PORTCULLIS_INTEROP);
const issuer = new URL(cfg.issuer);
// Plain http on loopback is a property of the test, not of Portcullis.
const insecure = { execute: [client.allowInsecureRequests] };
let failed = false;

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok ${name}`);
  } catch (err) {
    failed = true;
    const cause = err && err.cause ? ` (cause: ${JSON.stringify(err.cause)})` : '';
    console.log(`FAIL ${name} :: ${err && err.stack ? err.stack.split('\n')[0] : err}${cause}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// openid-client discovers with OpenID Connect Discovery unless told that the
// server is a plain OAuth 2.0 authorization server (RFC 8414).
const rfc8414 = { algorithm: 'oauth2', ...insecure };

await check('openid-client: OpenID discovery finds no OpenID Provider (404)', async () => {
  let err;
  try {
    await client.discovery(issuer, cfg.confidential.id, cfg.confidential.secret, undefined, insecure);
  } catch (e) {
    err = e;
  }
  assert(err, 'OpenID discovery succeeded against a server that is not an OpenID Provider');
  const status = err.cause && err.cause.status;
  assert(status === 404, `want a 404 cause, got ${err} ${JSON.stringify(err.cause)}`);
});

let conf, pub, introspector;
await check('openid-client: RFC 8414 discovery (algorithm oauth2)', async () => {
  conf = await client.discovery(issuer, cfg.confidential.id, cfg.confidential.secret, undefined, rfc8414);
  pub = await client.discovery(issuer, cfg.public.id, undefined, client.None(), rfc8414);
  introspector = await client.discovery(issuer, cfg.introspector.id, cfg.introspector.secret, undefined, rfc8414);
  const md = conf.serverMetadata();
  assert(md.issuer === cfg.issuer, `issuer ${md.issuer}`);
  assert(md.token_endpoint === cfg.issuer + '/oauth2/token', `token_endpoint ${md.token_endpoint}`);
  assert(Array.isArray(md.scopes_supported), 'no scopes_supported');
});

const JWKS = createRemoteJWKSet(new URL(cfg.issuer + '/.well-known/jwks.json'));
const verify = (token) => jwtVerify(token, JWKS, { typ: 'at+jwt', issuer: cfg.issuer, audience: cfg.audience });

let pw;
await check('openid-client: password grant (client_secret_post, its default)', async () => {
  pw = await client.genericGrantRequest(conf, 'password', { username: cfg.username, password: cfg.password });
  assert(pw.access_token && pw.refresh_token, `response ${JSON.stringify(pw)}`);
  assert(pw.token_type.toLowerCase() === 'bearer', `token_type ${pw.token_type}`);
  const { payload } = await verify(pw.access_token);
  assert(payload.preferred_username === cfg.username, `preferred_username ${payload.preferred_username}`);
});

await check('openid-client: password grant, public client (none)', async () => {
  const r = await client.genericGrantRequest(pub, 'password', { username: cfg.username, password: cfg.password });
  await verify(r.access_token);
});

let refreshed;
await check('openid-client: refresh_token grant (rotation)', async () => {
  refreshed = await client.refreshTokenGrant(conf, pw.refresh_token);
  assert(refreshed.refresh_token && refreshed.refresh_token !== pw.refresh_token, 'refresh token not rotated');
  await verify(refreshed.access_token);
});

await check('openid-client: client_credentials grant', async () => {
  const r = await client.clientCredentialsGrant(conf, {});
  const { payload } = await verify(r.access_token);
  assert(payload.sub === cfg.confidential.id, `sub ${payload.sub}`);
});

await check('openid-client: introspection (RFC 7662)', async () => {
  const active = await client.tokenIntrospection(introspector, refreshed.access_token);
  assert(active.active === true && active.client_id === cfg.confidential.id, `introspection ${JSON.stringify(active)}`);
  const junk = await client.tokenIntrospection(introspector, 'not-a-token');
  assert(junk.active === false, `junk introspection ${JSON.stringify(junk)}`);
});

await check('openid-client: revocation (RFC 7009)', async () => {
  await client.tokenRevocation(conf, refreshed.refresh_token);
  const after = await client.tokenIntrospection(introspector, refreshed.refresh_token, { token_type_hint: 'refresh_token' });
  assert(after.active === false, `revoked token still active: ${JSON.stringify(after)}`);
  let err;
  try {
    await client.refreshTokenGrant(conf, refreshed.refresh_token);
  } catch (e) {
    err = e;
  }
  assert(err && err.error === 'invalid_grant', `refresh after revocation: ${err}`);
});

// RFC 9068 access tokens verified the moment they are issued, with jose's
// default clock tolerance (0), across second boundaries: a token stamped
// ahead of the clock fails here.
await check('jose: jwtVerify typ at+jwt, default tolerance, right after issue, across seconds', async () => {
  const start = Date.now();
  let n = 0, lateHalf = 0;
  const seconds = new Set();
  while (Date.now() - start < 2500 || lateHalf < 10) {
    assert(Date.now() - start < 15000, `only ${lateHalf} tokens issued in the second half of a second`);
    const r = await client.clientCredentialsGrant(conf, {});
    const now = Date.now();
    try {
      await verify(r.access_token);
    } catch (e) {
      throw new Error(`token ${n} at ${new Date(now).toISOString()}: ${e.code || ''} ${e.message}`);
    }
    n++;
    seconds.add(Math.floor(now / 1000));
    if (now % 1000 >= 500) lateHalf++;
  }
  assert(seconds.size >= 3, `tokens spanned ${seconds.size} seconds`);
  console.log(`# jose verified ${n} tokens over ${seconds.size} seconds, ${lateHalf} in a second's second half`);
});

await check('jose: a token for another audience is refused', async () => {
  const r = await client.clientCredentialsGrant(conf, {});
  let err;
  try {
    await jwtVerify(r.access_token, JWKS, { typ: 'at+jwt', issuer: cfg.issuer, audience: 'https://elsewhere.example' });
  } catch (e) {
    err = e;
  }
  assert(err && err.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED', `got ${err}`);
});

process.exit(failed ? 1 : 0);
