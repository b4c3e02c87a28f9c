// Portcullis interop checks for Node: panva jose (jwtVerify) and
// openid-client, each at its defaults. Run by interop/node_test.go against
// a real server; the settings come in PORTCULLIS_INTEROP (JSON). Prints one
// line per check, "ok NAME" or "FAIL NAME :: reason", and exits 1 on any
// failure.
import * as client from 'openid-client';
import { calculateJwkThumbprint, createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';

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

// DPoP (RFC 9449) with openid-client's own support: a key pair from
// randomDPoPKeyPair (ES256, the private key not extractable), a handle from
// getDPoPHandle, passed as { DPoP } to the grant functions and to
// fetchProtectedResource.

// recorder wraps fetch, keeping each request's method, URL and DPoP proof
// and each response's status, DPoP-Nonce header and JSON error.
function recorder() {
  const log = [];
  const fetchAndRecord = async (url, options) => {
    const entry = { url: String(url), method: options.method, proof: new Headers(options.headers).get('dpop') };
    log.push(entry);
    const res = await fetch(url, options);
    entry.status = res.status;
    entry.nonce = res.headers.get('dpop-nonce');
    entry.wwwAuthenticate = res.headers.get('www-authenticate');
    try {
      const body = await res.clone().json();
      entry.error = body.error;
      entry.tokenType = body.token_type;
    } catch {}
    return res;
  };
  return { log, fetch: fetchAndRecord };
}

const thumbprint = async (keyPair) => calculateJwkThumbprint(await crypto.subtle.exportKey('jwk', keyPair.publicKey));
const cnfJkt = async (token) => {
  const { payload } = await verify(token);
  return payload.cnf && payload.cnf.jkt;
};
const tokenURL = cfg.issuer + '/oauth2/token';

await check('openid-client DPoP: metadata advertises dpop_signing_alg_values_supported with ES256', async () => {
  const algs = pub.serverMetadata().dpop_signing_alg_values_supported;
  assert(Array.isArray(algs) && algs.includes('ES256'), `dpop_signing_alg_values_supported ${JSON.stringify(algs)}`);
});

const keyPair = await client.randomDPoPKeyPair();
const otherKeyPair = await client.randomDPoPKeyPair();
const jkt = await thumbprint(keyPair);
let pubD, confD, DPoP, pubRec, bound, boundRefreshed;
await check('openid-client DPoP: password grant, public client: token_type DPoP, cnf.jkt is the key\'s thumbprint', async () => {
  assert(keyPair.privateKey.extractable === false, 'randomDPoPKeyPair made an extractable private key');
  pubD = await client.discovery(issuer, cfg.public.id, undefined, client.None(), rfc8414);
  pubRec = recorder();
  pubD[client.customFetch] = pubRec.fetch;
  DPoP = client.getDPoPHandle(pubD, keyPair);
  bound = await client.genericGrantRequest(pubD, 'password', { username: cfg.username, password: cfg.password }, { DPoP });
  const sent = pubRec.log.filter((e) => e.url === tokenURL);
  assert(sent.length === 1 && sent[0].proof, `token requests ${JSON.stringify(sent)}`);
  assert(sent[0].tokenType === 'DPoP', `the server's token_type ${sent[0].tokenType}`);
  assert(bound.token_type === 'dpop', `openid-client's token_type ${bound.token_type}`);
  const got = await cnfJkt(bound.access_token);
  assert(got === jkt, `cnf.jkt ${got}, want jose's calculateJwkThumbprint ${jkt}`);
});

await check('openid-client DPoP: the public client\'s refresh token needs the same key', async () => {
  for (const [what, options] of [
    ['without DPoP', undefined],
    ['with another key', { DPoP: client.getDPoPHandle(pubD, otherKeyPair) }],
  ]) {
    let err;
    try {
      await client.refreshTokenGrant(pubD, bound.refresh_token, undefined, options);
    } catch (e) {
      err = e;
    }
    assert(err && err.error === 'invalid_grant', `refresh ${what}: ${err ? err.error || err : 'succeeded'}`);
  }
});

await check('openid-client DPoP: refreshTokenGrant with the same handle', async () => {
  boundRefreshed = await client.refreshTokenGrant(pubD, bound.refresh_token, undefined, { DPoP });
  assert(boundRefreshed.token_type === 'dpop', `token_type ${boundRefreshed.token_type}`);
  assert(boundRefreshed.refresh_token && boundRefreshed.refresh_token !== bound.refresh_token, 'refresh token not rotated');
  const got = await cnfJkt(boundRefreshed.access_token);
  assert(got === jkt, `cnf.jkt ${got}, want ${jkt}`);
});

await check('openid-client DPoP: confidential client, password and client_credentials grants', async () => {
  confD = await client.discovery(issuer, cfg.confidential.id, cfg.confidential.secret, undefined, rfc8414);
  const handle = client.getDPoPHandle(confD, keyPair);
  const pw = await client.genericGrantRequest(confD, 'password', { username: cfg.username, password: cfg.password }, { DPoP: handle });
  const cc = await client.clientCredentialsGrant(confD, {}, { DPoP: handle });
  for (const [name, r] of [['password', pw], ['client_credentials', cc]]) {
    assert(r.token_type === 'dpop', `${name}: token_type ${r.token_type}`);
    const got = await cnfJkt(r.access_token);
    assert(got === jkt, `${name}: cnf.jkt ${got}, want ${jkt}`);
  }
});

await check('openid-client DPoP: introspection shows token_type DPoP and cnf.jkt (RFC 9449 §6.2)', async () => {
  const r = await client.tokenIntrospection(introspector, boundRefreshed.access_token);
  assert(r.active === true && r.token_type === 'DPoP' && r.cnf && r.cnf.jkt === jkt, `introspection ${JSON.stringify(r)}`);
});

await check('openid-client DPoP: fetchProtectedResource, userapi GET /users/me', async () => {
  const url = new URL(cfg.userapi + '/users/me');
  const res = await client.fetchProtectedResource(pubD, boundRefreshed.access_token, url, 'GET', undefined, undefined, { DPoP });
  const body = await res.text();
  assert(res.status === 200, `status ${res.status} ${body}`);
  assert(JSON.parse(body).username === cfg.username, `body ${body}`);
  const sent = pubRec.log.filter((e) => e.url === url.href);
  const proof = sent.length && decodeJwt(sent[sent.length - 1].proof);
  assert(proof && proof.htm === 'GET' && proof.htu === url.href && proof.ath, `proof ${JSON.stringify(proof)}`);
});

await check('openid-client DPoP: the bound token as a Bearer token is refused by userapi (401)', async () => {
  const url = new URL(cfg.userapi + '/users/me');
  let status, err;
  try {
    status = (await client.fetchProtectedResource(pubD, boundRefreshed.access_token, url, 'GET')).status;
  } catch (e) {
    err = e;
    status = e.status;
  }
  assert(status === 401, `status ${status} ${err || ''}`);
});

await check('openid-client DPoP: nonce-requiring server, use_dpop_nonce retried by openid-client', async () => {
  const nonceIssuer = new URL(cfg.nonce.issuer);
  const nonceTokenURL = cfg.nonce.issuer + '/oauth2/token';
  const c = await client.discovery(nonceIssuer, cfg.nonce.public.id, undefined, client.None(), rfc8414);
  const rec = recorder();
  c[client.customFetch] = rec.fetch;
  const handle = client.getDPoPHandle(c, keyPair);
  const r = await client.genericGrantRequest(c, 'password', { username: cfg.username, password: cfg.password }, { DPoP: handle });
  assert(r.token_type === 'dpop', `token_type ${r.token_type}`);
  const nonceJWKS = createRemoteJWKSet(new URL(cfg.nonce.issuer + '/.well-known/jwks.json'));
  const { payload } = await jwtVerify(r.access_token, nonceJWKS, { typ: 'at+jwt', issuer: cfg.nonce.issuer, audience: cfg.audience });
  assert(payload.cnf && payload.cnf.jkt === jkt, `cnf ${JSON.stringify(payload.cnf)}`);
  const sent = rec.log.filter((e) => e.url === nonceTokenURL);
  assert(sent.length === 2, `${sent.length} token requests, want 2: ${JSON.stringify(sent.map((e) => [e.status, e.error]))}`);
  assert(sent[0].status === 400 && sent[0].error === 'use_dpop_nonce' && sent[0].nonce, `first answer ${sent[0].status} ${sent[0].error} nonce ${sent[0].nonce}`);
  assert(decodeJwt(sent[0].proof).nonce === undefined, 'the first proof already had a nonce');
  assert(decodeJwt(sent[1].proof).nonce === sent[0].nonce && sent[1].status === 200, `retry: nonce ${decodeJwt(sent[1].proof).nonce}, status ${sent[1].status}`);
  // The handle keeps the nonce the token response carried: the refresh
  // needs one request.
  const refreshed = await client.refreshTokenGrant(c, r.refresh_token, undefined, { DPoP: handle });
  assert(refreshed.token_type === 'dpop', `refresh token_type ${refreshed.token_type}`);
  const all = rec.log.filter((e) => e.url === nonceTokenURL);
  assert(all.length === 3 && all[2].status === 200, `refresh: ${JSON.stringify(all.slice(2).map((e) => [e.status, e.error]))}`);
});

process.exit(failed ? 1 : 0);
