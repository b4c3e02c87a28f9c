// Portcullis admin console. Dependency-free; loaded as a module, so it runs
// in strict mode after the document is parsed. Tokens are kept in this
// module's memory only (never in web storage or cookies): a
// reload or closing the tab logs out. Every value from the server is put
// into the page with textContent, never as HTML.

const $ = (id) => document.getElementById(id);

const session = {
  cfg: null,
  access: "",
  refresh: "",
  verifier: "",
  authSession: "",
  username: "",
  // epoch counts the sessions ended (forget): an answer to a request of an
  // ended session is dropped.
  epoch: 0,
};

// ---------- status line ----------

function say(text, kind) {
  const s = $("status");
  s.textContent = text;
  s.className = kind || "";
}

function sayError(prefix, res) {
  const b = res.body || {};
  const why = b.error_description || b.error || ("HTTP " + res.status);
  say(prefix + ": " + why, "error");
}

// ---------- HTTP ----------

async function readJSON(r) {
  const text = await r.text();
  if (!text) return {};
  try { return JSON.parse(text); } catch { return {}; }
}

// postForm sends a form-encoded POST to an endpoint of the public listener
// (cross-origin: allowed by the console client's CORS origin).
async function postForm(url, params) {
  return request(url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(params).toString(),
    credentials: "omit",
    cache: "no-store",
  });
}

// pending counts the requests under way; the body's data-pending shows it
// (the browser tests wait for "0" before they act on what the page shows).
let pending = 0;

// request fetches url and reads the whole answer: its status, JSON body
// ({} when none) and headers.
async function request(url, init) {
  document.body.dataset.pending = String(++pending);
  try {
    const r = await fetch(url, init);
    return { status: r.status, body: await readJSON(r), headers: r.headers };
  } finally {
    document.body.dataset.pending = String(--pending);
  }
}

// ended is what api returns once the session that sent the request has
// ended (logged out meanwhile): a promise that never settles, so that
// nothing of the answer reaches the page that was wiped.
const ended = () => new Promise(() => {});

// api calls the admin API on this origin with the access token, refreshing
// it once on 401 when a refresh token is held.
async function api(method, path, body, headers) {
  const epoch = session.epoch;
  const send = () => {
    const h = Object.assign({ Authorization: "Bearer " + session.access }, headers || {});
    const init = { method, headers: h, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      h["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return request(path, init);
  };
  let r = await send();
  if (epoch !== session.epoch) return ended();
  if (r.status === 401 && session.refresh && await refresh()) {
    if (epoch !== session.epoch) return ended();
    r = await send();
    if (epoch !== session.epoch) return ended();
  }
  if (r.status === 401) {
    logout("Your session has ended; log in again.");
    return ended();
  }
  return { status: r.status, body: r.body, etag: r.headers.get("ETag") || "", link: r.headers.get("Link") || "" };
}

// ---------- login: first-party authorization challenge + PKCE ----------

function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function newPKCE() {
  if (!window.crypto || !crypto.subtle) {
    throw new Error("this page needs a secure context (https, or http on localhost) for PKCE");
  }
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: b64url(digest) };
}

async function startLogin(ev) {
  ev.preventDefault();
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  let pkce;
  try { pkce = await newPKCE(); } catch (e) { say(String(e.message || e), "error"); return; }
  session.verifier = pkce.verifier;
  session.username = username;
  say("Logging in…");
  const res = await postForm(session.cfg.authorization_challenge_endpoint, {
    client_id: session.cfg.client_id, response_type: "code", scope: session.cfg.scope,
    code_challenge: pkce.challenge, code_challenge_method: "S256", username, password,
  });
  $("login-password").value = "";
  await onChallenge(res, "password");
}

async function continueLogin(ev) {
  ev.preventDefault();
  const params = { client_id: session.cfg.client_id, auth_session: session.authSession };
  const otp = $("login-otp").value.trim(), rc = $("login-recovery").value.trim();
  if (otp) params.otp = otp; else if (rc) params.recovery_code = rc;
  else { say("Enter a one-time code or a recovery code.", "error"); return; }
  $("login-otp").value = ""; $("login-recovery").value = "";
  await onChallenge(await postForm(session.cfg.authorization_challenge_endpoint, params), "code");
}

function resetLogin() {
  session.authSession = ""; session.verifier = "";
  $("enroll-secret").textContent = ""; $("enroll-uri").textContent = "";
  $("otp-form").hidden = true; $("enroll").hidden = true; $("login-form").hidden = false;
}

// onChallenge handles an answer of the challenge endpoint to the step
// sent: "password" (the first request) or "code" (a one-time or recovery
// code). Asked for a code again after a code, the code was wrong.
async function onChallenge(res, step) {
  const b = res.body || {};
  if (res.status === 200 && b.authorization_code) {
    if (Array.isArray(b.recovery_codes) && b.recovery_codes.length) {
      $("recovery-codes").textContent = b.recovery_codes.join("\n");
      $("recovery-box").hidden = false;
    }
    await redeem(b.authorization_code);
    return;
  }
  if (res.status === 401 && b.error === "insufficient_authorization" && b.auth_session) {
    session.authSession = b.auth_session;
    if (b.otp_required || b.totp_enrollment_required) {
      $("login-form").hidden = true;
      $("otp-form").hidden = false;
      $("enroll").hidden = !b.totp_enrollment_required;
      // The secret comes once, with the first answer of an enrolment.
      if (b.totp_secret) {
        $("enroll-secret").textContent = b.totp_secret;
        $("enroll-uri").textContent = b.otpauth_uri || "";
      }
      if (step === "code") {
        say("That code is wrong or was used already; enter the current one.", "error");
      } else {
        say(b.totp_enrollment_required ? "Set up a second factor to continue." : "Enter the code from your authenticator app.");
      }
      $("login-otp").focus();
      return;
    }
  }
  resetLogin();
  if (res.status === 400 && b.error === "access_denied") {
    say(step === "code" ? "Login failed: too many wrong codes; log in again." : "Login failed: wrong username or password.", "error");
  } else {
    sayError("Login failed", res);
  }
}

async function redeem(code) {
  const res = await postForm(session.cfg.token_endpoint, {
    grant_type: "authorization_code", code, code_verifier: session.verifier, client_id: session.cfg.client_id,
  });
  resetLogin();
  if (res.status !== 200 || !res.body.access_token) { sayError("Login failed", res); return; }
  session.access = res.body.access_token;
  session.refresh = res.body.refresh_token || "";
  // The admin API decides: a token of a user without role admin is refused.
  const probe = await api("GET", "/admin/keys");
  if (probe.status !== 200) {
    const why = probe.status === 403 ? "this account does not hold the role admin" : ((probe.body && probe.body.error_description) || ("HTTP " + probe.status));
    const rt = session.refresh;
    forget();
    say("Login refused: " + why + ".", "error");
    await revoke(rt); // the grant is of no use here: end it
    return;
  }
  $("whoami").textContent = session.username;
  $("session").hidden = false;
  $("login").hidden = true;
  $("app").hidden = false;
  say("Logged in as " + session.username + ".", "ok");
  await probeAudit();
  await show("users");
}

async function refresh() {
  const res = await postForm(session.cfg.token_endpoint, {
    grant_type: "refresh_token", refresh_token: session.refresh, client_id: session.cfg.client_id,
  });
  if (res.status !== 200 || !res.body.access_token) { session.refresh = ""; return false; }
  session.access = res.body.access_token;
  session.refresh = res.body.refresh_token || session.refresh;
  return true;
}

function forget() {
  session.access = ""; session.refresh = ""; session.username = "";
  session.epoch++;
}

async function logout(message) {
  const rt = session.refresh;
  forget();
  $("session").hidden = true; $("app").hidden = true; $("login").hidden = false;
  resetLogin();
  clearPages();
  say(message || "Logged out.", message ? "error" : "ok");
  await revoke(rt);
}

// revoke revokes the refresh token rt, which ends its grant (RFC 7009);
// nothing for an empty rt, and a failure is ignored (the grant then ends
// with its lifetime).
async function revoke(rt) {
  if (!rt) return;
  await postForm(session.cfg.issuer.replace(/\/$/, "") + "/oauth2/revoke",
    { token: rt, token_type_hint: "refresh_token", client_id: session.cfg.client_id }).catch(() => {});
}

// clearPages wipes what the session showed, hidden or not: the tables,
// the open user, the client form, a client secret or recovery codes not
// dismissed yet, the filters. The next login starts from an empty page.
function clearPages() {
  for (const id of ["users-table", "clients-table", "keys-table", "audit-table"]) $(id).tBodies[0].replaceChildren();
  $("keys-timeline").replaceChildren();
  users = []; usersNext = ""; clients = []; clientsNext = "";
  $("users-more").hidden = true;
  $("clients-more").hidden = true;
  userPanel = { id: "", etag: "" };
  $("user-panel").hidden = true;
  $("user-panel-name").textContent = "";
  $("user-panel-id").textContent = "";
  for (const f of ["user-create-form", "users-filter", "user-roles-form", "user-password-form", "clients-filter", "audit-form"]) {
    $(f).reset();
  }
  cancelEdit();
  hideSecret();
  $("recovery-codes").textContent = "";
  $("recovery-box").hidden = true;
  auditCursor = "";
  $("audit-more").hidden = true;
  $("whoami").textContent = "";
}

// ---------- page switching ----------

const loaders = { users: loadUsers, clients: loadClients, keys: loadKeys, audit: () => loadAudit(false) };

async function show(page) {
  for (const p of Object.keys(loaders)) {
    $("page-" + p).hidden = p !== page;
    $("nav-" + p).classList.toggle("active", p === page);
  }
  await loaders[page]();
}

// probeAudit shows the Audit tab only when this server has GET /admin/audit
// (an older server answers 404).
async function probeAudit() {
  const r = await api("GET", "/admin/audit?limit=1");
  $("nav-audit").hidden = r.status !== 200;
  $("user-audit").hidden = r.status !== 200;
}

// ---------- table helpers ----------

function cell(tr, text) {
  const td = document.createElement("td");
  if (text instanceof Node) td.append(text); else td.textContent = text == null ? "" : String(text);
  tr.append(td);
  return td;
}

function button(label, onClick, cls) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.action = label.toLowerCase().replace(/\s+/g, "-");
  if (cls) b.className = cls;
  b.addEventListener("click", onClick);
  return b;
}

function codeEl(text) {
  const c = document.createElement("code");
  c.textContent = text == null ? "" : String(text);
  return c;
}

function badge(text, cls) {
  const s = document.createElement("span");
  s.className = "badge" + (cls ? " " + cls : "");
  s.textContent = text;
  return s;
}

// confirmButton is a button that acts on its second click, within 5 s.
function confirmButton(label, action) {
  const b = button(label, async () => {
    if (!b.classList.contains("confirm")) {
      b.classList.add("confirm");
      b.textContent = "Confirm: " + label.toLowerCase();
      setTimeout(() => { b.classList.remove("confirm"); b.textContent = label; }, 5000);
      return;
    }
    await action();
  }, "danger");
  return b;
}

const when = (t) => (t ? new Date(t).toLocaleString() : "");
const words = (s) => s.split(/[\s,]+/).filter(Boolean);

// ---------- listings: pages linked by Link rel="next" ----------

// nextPath returns the path and query of the rel="next" target of a Link
// header (RFC 8288), "" when there is none. The target is taken as a path
// on this origin, whatever its host, so the token goes nowhere else.
function nextPath(link) {
  for (const part of link.split(",")) {
    const m = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (m && /;\s*rel="?([^";]*\s)?next(\s[^";]*)?"?/i.test(m[2])) {
      const u = new URL(m[1], location.href);
      return u.pathname + u.search;
    }
  }
  return "";
}

// listPages reads a listing from path on. A page of a filtered listing may
// hold no items while more follow, so empty pages are followed, at most
// 10 in a row. It returns the items and the next page's path ("" at the
// end), or null when a request failed (reported as what failed).
async function listPages(path, what) {
  const items = [];
  for (let hops = 0; path && hops < 10; hops++) {
    const r = await api("GET", path);
    if (r.status !== 200) { sayError(what + " failed", r); return null; }
    items.push(...(Array.isArray(r.body) ? r.body : []));
    path = nextPath(r.link);
    if (items.length > 0) break;
  }
  return { items, next: path };
}

// debounced returns a function that calls fn once calls to it have paused
// for ms; a call waiting counts as a request under way (data-pending).
function debounced(fn, ms) {
  let timer = 0;
  return () => {
    if (timer) clearTimeout(timer); else document.body.dataset.pending = String(++pending);
    timer = setTimeout(async () => {
      timer = 0;
      try { await fn(); } finally { document.body.dataset.pending = String(--pending); }
    }, ms);
  };
}

// ---------- users ----------

// users are the users shown, usersNext the path of the next page ("" at
// the end); usersSeq drops the answer to a search that a newer one
// replaced.
let users = [];
let usersNext = "";
let usersSeq = 0;
// userPanel is the user open in the panel: its ETag, and the roles and
// requirement read, which a Save compares the form with.
let userPanel = { id: "", etag: "" };

// usersPath is the first page of the users the filters select: the server
// filters and pages (GET /admin/users).
function usersPath() {
  const q = new URLSearchParams();
  const prefix = $("user-search").value.trim();
  if (prefix) q.set("username_prefix", prefix);
  const role = $("user-role").value.trim();
  if (role) q.set("role", role);
  for (const f of ["disabled", "locked"]) {
    const v = $("user-" + f).value;
    if (v) q.set(f, v);
  }
  q.set("limit", $("users-limit").value);
  return "/admin/users?" + q.toString();
}

// loadUsers shows the first page of the users the filters select;
// moreUsers adds the next page.
async function loadUsers() { await listUsers(usersPath(), false); }

async function moreUsers() { if (usersNext) await listUsers(usersNext, true); }

async function listUsers(path, more) {
  const seq = ++usersSeq;
  const got = await listPages(path, "Loading users");
  if (!got || seq !== usersSeq) return;
  users = more ? users.concat(got.items) : got.items;
  usersNext = got.next;
  renderUsers();
}

// putUser shows u (a user's representation the API answered) in place of
// the user with its ID; dropUser removes a user.
function putUser(u) {
  users = users.map((x) => (x.id === u.id ? u : x));
  renderUsers();
}

function dropUser(id) {
  users = users.filter((x) => x.id !== id);
  renderUsers();
}

function renderUsers() {
  const tbody = $("users-table").tBodies[0];
  tbody.replaceChildren();
  $("users-more").hidden = !usersNext;
  for (const u of users) {
    const tr = document.createElement("tr");
    tr.dataset.username = u.username;
    cell(tr, u.username);
    cell(tr, (u.roles || []).join(", "));
    const st = document.createElement("span");
    st.append(u.disabled ? badge("disabled", "bad") : badge("enabled", "good"));
    if (u.locked) st.append(badge("locked until " + when(u.locked_until), "bad"));
    if (u.mfa_enabled) st.append(badge("2FA"));
    if (u.mfa_required) st.append(badge("2FA required"));
    cell(tr, st).className = "state";
    cell(tr, when(u.created_at));
    const actions = cell(tr, "");
    actions.append(button("Edit", () => openUser(u.id)));
    actions.append(button(u.disabled ? "Enable" : "Disable", () => setDisabled(u, !u.disabled)));
    if (u.locked) actions.append(button("Unlock", () => unlockUser(u.id, u.username)));
    tbody.append(tr);
  }
}

async function createUser(ev) {
  ev.preventDefault();
  const username = $("new-username").value.trim();
  const r = await api("POST", "/admin/users", {
    username, password: $("new-password").value, roles: words($("new-roles").value),
  });
  if (r.status !== 201) { sayError("Creating user " + username + " failed", r); return; }
  $("user-create-form").reset();
  say("User " + username + " created.", "ok");
  await loadUsers();
}

async function setDisabled(u, disabled) {
  if (userPanel.id === u.id && !$("user-panel").hidden) {
    // The open user changes from the version the panel shows, whose
    // ETag the panel then holds: not someone else's change for its next
    // Save, and a change made meanwhile is reported, not overwritten.
    await patchUser({ disabled }, "User " + u.username + (disabled ? " disabled." : " enabled."));
    return;
  }
  const r = await api("PATCH", "/admin/users/" + encodeURIComponent(u.id), { disabled });
  if (r.status !== 200) { sayError("Changing user " + u.username + " failed", r); return; }
  say("User " + u.username + (disabled ? " disabled." : " enabled."), "ok");
  putUser(r.body);
}

async function unlockUser(id, username) {
  const r = await api("POST", "/admin/users/" + encodeURIComponent(id) + "/unlock");
  if (r.status !== 200) { sayError("Unlocking " + username + " failed", r); return; }
  say("User " + username + " unlocked.", "ok");
  putUser(r.body);
  if (userPanel.id === id) await openUser(id);
}

async function openUser(id) {
  const r = await api("GET", "/admin/users/" + encodeURIComponent(id));
  if (r.status !== 200) { sayError("Loading the user failed", r); return; }
  putUser(r.body);
  userPanel = { id, etag: r.etag, username: r.body.username, roles: r.body.roles || [], mfaRequired: !!r.body.mfa_required };
  $("user-panel-name").textContent = r.body.username;
  $("user-panel-id").textContent = r.body.id;
  $("user-roles").value = (r.body.roles || []).join(", ");
  $("user-mfa-required").checked = !!r.body.mfa_required;
  $("user-password").value = "";
  $("user-unlock").hidden = !r.body.locked;
  $("user-panel").hidden = false;
}

// staleUser reports a 412 answer to a change of the open user (sent with
// If-Match: someone changed the user since the panel read it) and reloads
// the panel; it returns whether r was one.
async function staleUser(r) {
  if (r.status !== 412) return false;
  say("User " + userPanel.username + " was changed by someone else meanwhile; reloaded, check and try again.", "error");
  await openUser(userPanel.id);
  return true;
}

// patchUser changes the open user if it has not changed since it was read
// (If-Match): a concurrent change is reported, never overwritten, and the
// panel and the list show the user as it is now. It returns the changed
// user, or null.
async function patchUser(change, done) {
  const r = await api("PATCH", "/admin/users/" + encodeURIComponent(userPanel.id), change,
    userPanel.etag ? { "If-Match": userPanel.etag } : {});
  if (await staleUser(r)) return null;
  if (r.status !== 200) { sayError("Changing user " + userPanel.username + " failed", r); return null; }
  Object.assign(userPanel, { etag: r.etag, roles: r.body.roles || [], mfaRequired: !!r.body.mfa_required });
  say(done, "ok");
  putUser(r.body);
  return r.body;
}

const sameSet = (a, b) => a.length === b.length && a.every((x) => b.includes(x)) && b.every((x) => a.includes(x));

// saveUser sends what the form changed only, so that the audit trail
// records no change that was not made.
async function saveUser(ev) {
  ev.preventDefault();
  const change = {};
  const roles = words($("user-roles").value);
  if (!sameSet(roles, userPanel.roles)) change.roles = roles;
  const mfa = $("user-mfa-required").checked;
  if (mfa !== userPanel.mfaRequired) change.mfa_required = mfa;
  if (Object.keys(change).length === 0) {
    say("User " + userPanel.username + " is unchanged: nothing to save.", "ok");
    return;
  }
  const u = await patchUser(change, "User " + userPanel.username + " saved.");
  if (u) $("user-roles").value = (u.roles || []).join(", ");
}

async function setPassword(ev) {
  ev.preventDefault();
  const password = $("user-password").value;
  $("user-password").value = "";
  await patchUser({ password }, "Password of " + userPanel.username + " reset.");
}

// panelIfMatch is the If-Match header of a change to the user open in the
// panel: a change someone made since it was opened is reported (412),
// never acted on blindly.
function panelIfMatch() {
  return userPanel.etag ? { "If-Match": userPanel.etag } : {};
}

async function resetMFA() {
  const r = await api("POST", "/admin/users/" + encodeURIComponent(userPanel.id) + "/mfa/reset", undefined, panelIfMatch());
  if (await staleUser(r)) return;
  if (r.status !== 204) { sayError("Resetting the second factor failed", r); return; }
  say("Second factor of " + userPanel.username + " reset.", "ok");
  const u = await api("GET", "/admin/users/" + encodeURIComponent(userPanel.id));
  if (u.status === 200) {
    if (u.etag) userPanel.etag = u.etag;
    putUser(u.body);
  }
}

async function deleteUser() {
  const r = await api("DELETE", "/admin/users/" + encodeURIComponent(userPanel.id), undefined, panelIfMatch());
  if (await staleUser(r)) return;
  if (r.status !== 204) { sayError("Deleting the user failed", r); return; }
  say("User " + userPanel.username + " deleted.", "ok");
  $("user-panel").hidden = true;
  dropUser(userPanel.id);
  userPanel = { id: "", etag: "" };
}

// ---------- clients ----------

let editing = null; // { id, etag, rep } while the form edits a client

// clients, clientsNext and clientsSeq are as users, usersNext, usersSeq.
let clients = [];
let clientsNext = "";
let clientsSeq = 0;

function clientsPath() {
  const q = new URLSearchParams();
  const prefix = $("client-search").value.trim();
  if (prefix) q.set("name_prefix", prefix);
  q.set("limit", $("clients-limit").value);
  return "/admin/clients?" + q.toString();
}

async function loadClients() { await listClients(clientsPath(), false); }

async function moreClients() { if (clientsNext) await listClients(clientsNext, true); }

async function listClients(path, more) {
  const seq = ++clientsSeq;
  const got = await listPages(path, "Loading clients");
  if (!got || seq !== clientsSeq) return;
  clients = more ? clients.concat(got.items) : got.items;
  clientsNext = got.next;
  renderClients();
}

// putClient shows c (a client's representation, never with its secret)
// in place of the client with its ID; dropClient removes one.
function putClient(c) {
  const { client_secret: _, ...rep } = c;
  clients = clients.map((x) => (x.client_id === rep.client_id ? rep : x));
  renderClients();
}

function dropClient(id) {
  clients = clients.filter((x) => x.client_id !== id);
  renderClients();
}

function renderClients() {
  const tbody = $("clients-table").tBodies[0];
  tbody.replaceChildren();
  $("clients-more").hidden = !clientsNext;
  for (const c of clients) {
    const tr = document.createElement("tr");
    tr.dataset.clientId = c.client_id;
    cell(tr, c.client_name);
    cell(tr, codeEl(c.client_id));
    cell(tr, c.token_endpoint_auth_method === "none" ? "public" : "confidential");
    cell(tr, (c.grant_types || []).join(" "));
    cell(tr, c.scope);
    const actions = cell(tr, "");
    actions.append(button("Edit", () => editClient(c.client_id)));
    if (c.token_endpoint_auth_method !== "none") {
      actions.append(confirmButton("Rotate secret", () => rotateSecret(c.client_id)));
    }
    actions.append(confirmButton("Delete", () => deleteClient(c.client_id, c.client_name)));
    tbody.append(tr);
  }
}

function grantBoxes() { return document.querySelectorAll("#client-form input[name=grant]"); }

function clientFormBody() {
  return {
    client_name: $("client-name").value.trim(),
    grant_types: [...grantBoxes()].filter((b) => b.checked).map((b) => b.value),
    scope: words($("client-scope").value).join(" "),
    audience: words($("client-audience").value),
    allowed_cors_origins: words($("client-cors").value),
    introspection_allowed: $("client-introspection").checked,
    mfa_required: $("client-mfa").checked,
    dpop_bound_access_tokens: $("client-dpop").checked,
  };
}

function showSecret(clientID, secret) {
  $("secret-client-id").textContent = clientID;
  $("secret-value").textContent = secret;
  $("secret-box").hidden = false;
}

function hideSecret() {
  $("secret-value").textContent = "";
  $("secret-client-id").textContent = "";
  $("secret-box").hidden = true;
}

async function submitClient(ev) {
  ev.preventDefault();
  const body = clientFormBody();
  if (editing) {
    // PUT replaces every setting: start from the representation read
    // (members this form does not show keep their values).
    const rep = Object.assign({}, editing.rep, body);
    const r = await api("PUT", "/admin/clients/" + encodeURIComponent(editing.id), rep, { "If-Match": editing.etag });
    if (r.status === 412) {
      say("The client was changed by someone else meanwhile; reloaded, check and try again.", "error");
      await editClient(editing.id);
      return;
    }
    if (r.status !== 200) { sayError("Saving the client failed", r); return; }
    say("Client " + r.body.client_name + " saved.", "ok");
    cancelEdit();
    putClient(r.body);
    return;
  }
  if ($("client-type").value === "public") body.token_endpoint_auth_method = "none";
  const r = await api("POST", "/admin/clients", body);
  if (r.status !== 201) { sayError("Creating the client failed", r); return; }
  $("client-form").reset();
  if (r.body.client_secret) {
    showSecret(r.body.client_id, r.body.client_secret);
    say("Client " + r.body.client_name + " created; its secret is shown once below.", "ok");
  } else {
    say("Public client " + r.body.client_name + " created.", "ok");
  }
  await loadClients();
}

async function editClient(id) {
  const r = await api("GET", "/admin/clients/" + encodeURIComponent(id));
  if (r.status !== 200) { sayError("Loading the client failed", r); return; }
  putClient(r.body);
  const c = r.body;
  editing = { id, etag: r.etag, rep: c };
  $("client-form-title").textContent = "Edit client " + c.client_id;
  $("client-name").value = c.client_name || "";
  $("client-type").value = c.token_endpoint_auth_method === "none" ? "public" : "confidential";
  $("client-type").disabled = true;
  for (const b of grantBoxes()) b.checked = (c.grant_types || []).includes(b.value);
  $("client-scope").value = c.scope || "";
  $("client-audience").value = (c.audience || []).join(" ");
  $("client-cors").value = (c.allowed_cors_origins || []).join(" ");
  $("client-introspection").checked = !!c.introspection_allowed;
  $("client-mfa").checked = !!c.mfa_required;
  $("client-dpop").checked = !!c.dpop_bound_access_tokens;
  $("client-submit").textContent = "Save client";
  $("client-cancel").hidden = false;
  $("client-name").focus();
}

function cancelEdit() {
  editing = null;
  $("client-form").reset();
  $("client-type").disabled = false;
  $("client-form-title").textContent = "New client";
  $("client-submit").textContent = "Create client";
  $("client-cancel").hidden = true;
}

async function rotateSecret(id) {
  const r = await api("POST", "/admin/clients/" + encodeURIComponent(id) + "/secret");
  if (r.status !== 200) { sayError("Rotating the secret failed", r); return; }
  showSecret(r.body.client_id, r.body.client_secret);
  say("New secret of " + r.body.client_name + " shown once below; the old one no longer works.", "ok");
  putClient(r.body);
}

async function deleteClient(id, name) {
  const r = await api("DELETE", "/admin/clients/" + encodeURIComponent(id));
  if (r.status !== 204) { sayError("Deleting the client failed", r); return; }
  if (editing && editing.id === id) cancelEdit();
  say("Client " + name + " deleted, with every token issued to it.", "ok");
  dropClient(id);
}

// ---------- keys ----------

async function loadKeys() {
  const r = await api("GET", "/admin/keys");
  if (r.status !== 200) { sayError("Loading keys failed", r); return; }
  const keys = (Array.isArray(r.body) ? r.body : []).slice()
    .sort((a, b) => new Date(a.activates_at) - new Date(b.activates_at));
  const tl = $("keys-timeline");
  tl.replaceChildren();
  const tbody = $("keys-table").tBodies[0];
  tbody.replaceChildren();
  for (const k of keys) {
    const li = document.createElement("li");
    li.className = k.state;
    li.dataset.kid = k.kid;
    li.textContent = k.state + " · " + k.alg + " · " + k.kid.slice(0, 12) + " · signs from " + when(k.activates_at);
    tl.append(li);
    const tr = document.createElement("tr");
    tr.dataset.kid = k.kid;
    cell(tr, codeEl(k.kid));
    cell(tr, k.alg);
    cell(tr, badge(k.state, k.state === "active" ? "good" : (k.state === "expired" ? "bad" : ""))).className = "state";
    cell(tr, k.generation);
    cell(tr, when(k.created_at));
    cell(tr, when(k.activates_at));
    cell(tr, when(k.retired_at));
    cell(tr, when(k.expires_at));
    tbody.append(tr);
  }
}

async function rotateKey(prepublish) {
  const r = await api("POST", "/admin/keys/rotate?prepublish=" + (prepublish ? "true" : "false"));
  if (r.status !== 201) { sayError("Rotating the signing key failed", r); return; }
  say((prepublish ? "New key " + r.body.kid + " published; it signs from " : "New key " + r.body.kid + " signs from ") +
    when(r.body.activates_at) + ".", "ok");
  await loadKeys();
}

// ---------- audit ----------

let auditCursor = "";

// auditOf shows the audit trail of target ("user:ID", "client:ID").
async function auditOf(target) {
  $("audit-form").reset();
  $("audit-target").value = target;
  await show("audit");
}

function auditQuery(more) {
  const q = new URLSearchParams();
  for (const f of ["actor", "target", "action"]) {
    const v = $("audit-" + f).value.trim();
    if (v) q.set(f, v);
  }
  for (const f of ["since", "until"]) {
    const v = $("audit-" + f).value;
    if (v) q.set(f, new Date(v).toISOString());
  }
  q.set("limit", $("audit-limit").value);
  if (more && auditCursor) q.set("cursor", auditCursor);
  return q.toString();
}

async function loadAudit(more) {
  const qs = auditQuery(more);
  const r = await api("GET", "/admin/audit" + (qs ? "?" + qs : ""));
  if (r.status !== 200) { sayError("Loading the audit trail failed", r); return; }
  const events = Array.isArray(r.body) ? r.body : (r.body.events || r.body.items || []);
  auditCursor = Array.isArray(r.body) ? "" : (r.body.next_cursor || r.body.next || "");
  const tbody = $("audit-table").tBodies[0];
  if (!more) tbody.replaceChildren();
  for (const e of events) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(e.id);
    cell(tr, when(e.time || e.created_at || e.at));
    cell(tr, codeEl(e.actor));
    cell(tr, e.action);
    cell(tr, codeEl(e.target));
    cell(tr, e.outcome);
    cell(tr, e.client_ip);
    cell(tr, codeEl(e.request_id));
    tbody.append(tr);
  }
  $("audit-more").hidden = !auditCursor;
}

// ---------- wiring ----------

async function main() {
  const r = await fetch("config.json", { cache: "no-store" });
  session.cfg = await r.json();
  $("login-form").addEventListener("submit", startLogin);
  $("otp-form").addEventListener("submit", continueLogin);
  $("otp-cancel").addEventListener("click", () => { resetLogin(); say(""); });
  $("recovery-dismiss").addEventListener("click", () => { $("recovery-codes").textContent = ""; $("recovery-box").hidden = true; });
  $("logout").addEventListener("click", () => logout());
  for (const b of document.querySelectorAll("nav .tab")) b.addEventListener("click", () => show(b.dataset.page));

  $("user-create-form").addEventListener("submit", createUser);
  const searchUsers = debounced(loadUsers, 250);
  $("users-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadUsers(); });
  for (const id of ["user-search", "user-role"]) $(id).addEventListener("input", searchUsers);
  for (const id of ["user-disabled", "user-locked", "users-limit"]) $(id).addEventListener("change", loadUsers);
  $("users-reload").addEventListener("click", loadUsers);
  $("users-more").addEventListener("click", moreUsers);
  $("user-roles-form").addEventListener("submit", saveUser);
  $("user-password-form").addEventListener("submit", setPassword);
  $("user-reset-mfa").addEventListener("click", resetMFA);
  $("user-unlock").addEventListener("click", () => unlockUser(userPanel.id, userPanel.username));
  $("user-audit").addEventListener("click", () => auditOf("user:" + userPanel.id));
  $("user-panel-close").addEventListener("click", () => { $("user-panel").hidden = true; });
  const del = $("user-delete");
  del.addEventListener("click", async () => {
    if (!del.classList.contains("confirm")) {
      del.classList.add("confirm"); del.textContent = "Confirm: delete user";
      setTimeout(() => { del.classList.remove("confirm"); del.textContent = "Delete user"; }, 5000);
      return;
    }
    del.classList.remove("confirm"); del.textContent = "Delete user";
    await deleteUser();
  });

  $("client-form").addEventListener("submit", submitClient);
  $("client-cancel").addEventListener("click", cancelEdit);
  $("clients-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadClients(); });
  $("client-search").addEventListener("input", debounced(loadClients, 250));
  $("clients-limit").addEventListener("change", loadClients);
  $("clients-reload").addEventListener("click", loadClients);
  $("clients-more").addEventListener("click", moreClients);
  $("secret-dismiss").addEventListener("click", hideSecret);

  $("rotate-prepublish").addEventListener("click", () => rotateKey(true));
  $("rotate-now").addEventListener("click", () => rotateKey(false));
  $("keys-reload").addEventListener("click", loadKeys);

  $("audit-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadAudit(false); });
  $("audit-more").addEventListener("click", () => loadAudit(true));

  document.body.dataset.pending = String(pending);
  document.body.dataset.ready = "true";
}

main().catch((e) => say("The console failed to start: " + String(e.message || e), "error"));
