// The m2m admin page: settings and API tokens through the REST API under /v1.
//
// The admin token lives in sessionStorage only and is sent as X-API-KEY. A generated secret is
// written into the dialog's DOM once and removed with it when the dialog closes; it is never
// kept in a variable that outlives the request that returned it.
"use strict";

const TOKEN_KEY = "m2m.adminToken";
const TENANT_KEY = "m2m.tenant";
const PAGE_SIZE = 50;

const TYPE_LABELS = {
  access: "Access tokens",
  client_credentials: "Client credentials",
};
const KIND_LABELS = {
  access_token: "Access token",
  client_secret: "Client credentials",
  bearer_token: "Bearer token",
};

const state = {
  tenant: "",
  tenantSettings: null,
  nextOffset: null,
  revoking: null,
};

function adminToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Calls the REST API with the admin token; resolves to the parsed JSON (or null), rejects with an ApiError. */
function api(method, path, body, token = adminToken()) {
  const headers = token ? { "X-API-KEY": token } : {};
  return requestJson(path, { method, headers, credentials: "omit" }, body,
    "The token service cannot be reached. Check that it is running and try again.");
}

/** The message to show for an API error. */
function describe(error) {
  if (!(error instanceof ApiError)) return `Unexpected error: ${error.message || error}`;
  switch (error.status) {
    case 0:
      return error.message;
    case 401:
      return `The admin token was refused: ${error.message}`;
    case 403:
      return `This token may not manage tokens (it needs the scope m2m:admin): ${error.message}`;
    case 503:
      return `The token store is unavailable: ${error.message}`;
    default:
      return `${error.message} (HTTP ${error.status})`;
  }
}

function clearMessages() {
  show($("#error"), "");
  show($("#notice"), "");
}

/** Handles an API error of a signed-in call: a refused admin token signs out. */
function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut(describe(error));
  } else {
    showError(error);
  }
}

// ---- sign-in -------------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const input = $("#admin-token");
  const token = input.value.trim();
  if (!token) {
    showError("Enter an admin token.");
    input.focus();
    return;
  }
  const button = $("#sign-in-form button[type=submit]");
  button.disabled = true;
  try {
    await api("GET", "/v1/settings", undefined, token);
  } catch (error) {
    button.disabled = false;
    showError(error);
    input.select();
    input.focus();
    return;
  }
  button.disabled = false;
  input.value = "";
  sessionStorage.setItem(TOKEN_KEY, token);
  clearMessages();
  await enter();
  $("#tenant").focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  for (const dialog of $$("dialog")) if (dialog.open) dialog.close();
  state.tenant = "";
  state.tenantSettings = null;
  $("#tokens tbody").replaceChildren();
  $("#tenant-view").hidden = true;
  $("#console").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  if (message) showError(message);
  else notify("Signed out.");
  $("#admin-token").focus();
}

/** Shows the console of a signed-in admin. */
async function enter() {
  $("#sign-in").hidden = true;
  $("#console").hidden = false;
  $("#sign-out").hidden = false;
  await loadEnvironment();
  const tenant = sessionStorage.getItem(TENANT_KEY);
  if (tenant) {
    $("#tenant").value = tenant;
    await openTenant(tenant);
  }
}

// ---- settings ------------------------------------------------------------------------------

function setRadios(name, value) {
  for (const radio of $$(`input[name="${name}"]`)) radio.checked = radio.value === value;
}

async function loadEnvironment() {
  try {
    renderEnvironment(await api("GET", "/v1/settings"));
  } catch (error) {
    failed(error);
  }
}

function renderEnvironment(settings) {
  setRadios("environment-type", settings.token_type);
  $("#environment-note").textContent = settings.token_type
    ? `Tenants without their own choice may generate ${TYPE_LABELS[settings.token_type].toLowerCase()}.`
    : "Not chosen yet: users may generate both types.";
}

async function changeEnvironment(event) {
  const value = event.target.value;
  try {
    renderEnvironment(await api("PUT", "/v1/settings", { token_type: value }));
    notify(`Environment: users may now generate ${TYPE_LABELS[value].toLowerCase()}.`);
    if (state.tenant) await loadTenantSettings();
  } catch (error) {
    failed(error);
    await loadEnvironment();
  }
}

function tenantPath(suffix) {
  return `/v1/tenants/${encodeURIComponent(state.tenant)}${suffix}`;
}

async function loadTenantSettings() {
  state.tenantSettings = await api("GET", tenantPath("/settings"));
  renderTenantSettings();
}

function renderTenantSettings() {
  const settings = state.tenantSettings;
  setRadios("tenant-type", settings.token_type);
  let note;
  if (!settings.token_type) note = "Follows the environment: users may generate both types.";
  else if (settings.inherited) note = `Follows the environment: ${TYPE_LABELS[settings.token_type].toLowerCase()}.`;
  else note = `Own choice of this tenant: ${TYPE_LABELS[settings.token_type].toLowerCase()}.`;
  $("#tenant-note").textContent = note;
  $("#follow-environment").hidden = settings.inherited !== false;
}

async function followEnvironment() {
  try {
    await api("DELETE", tenantPath("/settings"));
    await loadTenantSettings();
    notify(`Tenant ${state.tenant} follows the environment again.`);
  } catch (error) {
    failed(error);
    if (state.tenant) await loadTenantSettings().catch(failed);
  }
}

async function changeTenantType(event) {
  const value = event.target.value;
  try {
    state.tenantSettings = await api("PUT", tenantPath("/settings"), { token_type: value });
    renderTenantSettings();
    notify(`Tenant ${state.tenant}: users may now generate ${TYPE_LABELS[value].toLowerCase()}.`);
  } catch (error) {
    failed(error);
    if (state.tenant) await loadTenantSettings().catch(failed);
  }
}

// ---- tenant and tokens ---------------------------------------------------------------------

async function submitTenant(event) {
  event.preventDefault();
  const tenant = $("#tenant").value.trim();
  if (!tenant) {
    showError("Enter a tenant name.");
    $("#tenant").focus();
    return;
  }
  await openTenant(tenant);
}

async function openTenant(tenant) {
  const previous = state.tenant;
  state.tenant = tenant;
  try {
    await loadTenantSettings();
    await loadTokens();
  } catch (error) {
    state.tenant = previous;
    failed(error);
    return;
  }
  sessionStorage.setItem(TENANT_KEY, tenant);
  for (const name of $$(".tenant-name")) name.textContent = tenant;
  $("#tenant-view").hidden = false;
  clearMessages();
}

async function loadTokens(append = false) {
  const offset = append && state.nextOffset !== null ? state.nextOffset : 0;
  const page = await api("GET", tenantPath(`/tokens?limit=${PAGE_SIZE}&offset=${offset}`));
  const body = $("#tokens tbody");
  const rows = page.items.map(tokenRow);
  if (append) body.append(...rows);
  else body.replaceChildren(...rows);
  state.nextOffset = page.next_offset ?? null;
  $("#load-more").hidden = state.nextOffset === null;
  $("#tokens-empty").hidden = body.children.length > 0;
}

function cell(label, content, className) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (className) td.className = className;
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  return td;
}

function timeElement(iso) {
  const time = document.createElement("time");
  time.dateTime = iso;
  const date = new Date(iso);
  time.textContent = Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  time.title = iso;
  return time;
}

/** Whether a listed token is the one this page is signed in with (its stub starts it). */
function isOwnToken(token) {
  const own = adminToken();
  const start = (token.stub || "").replace(/…$/, "");
  return Boolean(own && start && token.kind === "access_token" && own.startsWith(start));
}

function tokenRow(token) {
  const row = document.createElement("tr");
  row.dataset.tokenId = token.id;
  if (token.revoked_at) row.classList.add("revoked");
  row.append(
    cell("Description", token.description || "—"),
    cell("Type", KIND_LABELS[token.kind] || token.type),
    cell("Stub", token.stub ? codeElement(token.stub) : "—"),
    cell("Scopes", token.scopes.length ? token.scopes.join(" ") : "—"),
    cell("Created", timeElement(token.created_at)),
    cell("Expires in", token.expires_in_text, "expires-in"),
  );
  const status = token.revoked_at ? "Revoked" : token.expires_in === 0 ? "Expired" : "Active";
  const statusCell = cell("Status", status, `status status-${status.toLowerCase()}`);
  if (token.revoked_at) statusCell.title = `Revoked ${new Date(token.revoked_at).toLocaleString()}`;
  row.append(statusCell);
  const actions = cell("Actions", "");
  if (!token.revoked_at) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "danger small revoke";
    button.textContent = "Revoke";
    button.setAttribute("aria-label", `Revoke ${token.description || token.stub}`);
    button.addEventListener("click", () => askRevoke(token, button));
    actions.append(button);
  }
  row.append(actions);
  return row;
}

function codeElement(text) {
  const code = document.createElement("code");
  code.textContent = text;
  return code;
}

// ---- revoke --------------------------------------------------------------------------------

function askRevoke(token, opener) {
  state.revoking = { id: token.id, own: isOwnToken(token), opener };
  const name = token.description ? `“${token.description}”` : "this token";
  const derived = token.kind === "client_secret"
    ? " Bearer tokens issued from it are revoked too."
    : "";
  $("#revoke-text").textContent =
    `Revoke ${name} (${token.stub}) of tenant ${state.tenant}? Requests with it will be refused. This cannot be undone.${derived}`;
  $("#revoke-self").hidden = !state.revoking.own;
  show($("#revoke-error"), "");
  $("#revoke-dialog").showModal();
  $("#revoke-dialog [data-close]").focus();
}

async function confirmRevoke() {
  const revoking = state.revoking;
  if (!revoking) return;
  const button = $("#revoke-confirm");
  button.disabled = true;
  try {
    await api("DELETE", tenantPath(`/tokens/${encodeURIComponent(revoking.id)}`));
  } catch (error) {
    button.disabled = false;
    if (error instanceof ApiError && error.status === 401) {
      signOut(describe(error));
    } else {
      show($("#revoke-error"), describe(error));
    }
    return;
  }
  button.disabled = false;
  state.revoking = null;
  $("#revoke-dialog").close();
  if (revoking.own) {
    signOut("You revoked the token you were signed in with. Sign in with another admin token.");
    return;
  }
  notify("Token revoked.");
  try {
    await loadTokens();
  } catch (error) {
    failed(error);
  }
  $("#open-generate").focus();
}

// ---- generate ------------------------------------------------------------------------------

function openGenerate() {
  const settings = state.tenantSettings;
  const enabled = settings && settings.enabled.length ? settings.enabled : ["access", "client_credentials"];
  const typeBox = $("#generate-type");
  typeBox.replaceChildren();
  if (enabled.length === 1) {
    const p = document.createElement("p");
    p.id = "generate-type-fixed";
    p.dataset.type = enabled[0];
    p.append("Type: ", strong(TYPE_LABELS[enabled[0]]), ` — ${headerLine(enabled[0])}`);
    typeBox.append(p);
  } else {
    const fieldset = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = "Type";
    fieldset.append(legend);
    for (const type of enabled) {
      const label = document.createElement("label");
      label.className = "choice";
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "generate-type";
      radio.value = type;
      radio.checked = type === enabled[0];
      label.append(radio, ` ${TYPE_LABELS[type]}`);
      fieldset.append(label);
    }
    typeBox.append(fieldset);
  }
  $("#generate-form").reset();
  $("#generate-form").hidden = false;
  show($("#generate-error"), "");
  clearResult();
  $("#generate-dialog").showModal();
  $("#generate-description").focus();
}

function strong(text) {
  const element = document.createElement("strong");
  element.textContent = text;
  return element;
}

function headerLine(type) {
  return type === "access"
    ? "sent in the X-API-KEY header."
    : "a client id and secret exchanged at /oauth/token for tokens sent as Authorization: Bearer.";
}

function chosenType() {
  const fixed = $("#generate-type-fixed");
  if (fixed) return fixed.dataset.type;
  const radio = $('input[name="generate-type"]:checked');
  return radio ? radio.value : "access";
}

async function submitGenerate(event) {
  event.preventDefault();
  const type = chosenType();
  const scopes = $("#generate-scopes").value.split(/[\s,]+/).filter(Boolean);
  const request = {
    description: $("#generate-description").value.trim(),
    scopes,
    expires: $("#generate-expires").value,
    type,
  };
  const button = $("#generate-submit");
  button.disabled = true;
  show($("#generate-error"), "");
  try {
    showResult(await api("POST", tenantPath("/tokens"), request));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut(describe(error));
    } else {
      show($("#generate-error"), describe(error));
      $("#generate-description").focus();
    }
    return;
  } finally {
    button.disabled = false;
  }
  loadTokens().catch(failed);
}

/** Writes the secret of a just-created token into the dialog; the only place it ever is. */
function showResult(created) {
  const result = $("#generate-result");
  const origin = window.location.origin;
  const parts = [];
  const heading = document.createElement("h3");
  heading.textContent = "Copy it now: it will not be shown again";
  parts.push(heading);
  const summary = document.createElement("p");
  summary.textContent = `${KIND_LABELS[created.kind] || created.type} “${created.description || created.stub}” — expires: ${created.expires_in_text}.`;
  parts.push(summary);
  let curl;
  if (created.client_secret !== undefined) {
    parts.push(secretField("Client id", created.client_id, "client-id"));
    parts.push(secretField("Client secret", created.client_secret, "client-secret"));
    curl = `curl -u '${created.client_id}:${created.client_secret}' -d grant_type=client_credentials ${origin}/oauth/token`;
    const then = document.createElement("p");
    then.className = "hint";
    then.textContent = "The answer's access_token is sent as Authorization: Bearer <token> until it expires; then exchange again.";
    parts.push(secretField("Exchange it for a bearer token", curl, "curl", then));
  } else {
    parts.push(secretField("Access token", created.token, "secret"));
    // A tenant admin token can list its own tenant's tokens; other tokens are for your API.
    const target = created.scopes.includes("m2m:tenant-admin")
      ? `${origin}${tenantPath("/tokens")}`
      : "https://api.example.com/";
    curl = `curl -H 'X-API-KEY: ${created.token}' ${target}`;
    parts.push(secretField("Use it", curl, "curl"));
  }
  const actions = document.createElement("div");
  actions.className = "actions";
  const done = document.createElement("button");
  done.type = "button";
  done.id = "generate-done";
  done.textContent = "Done";
  done.addEventListener("click", () => {
    // Cleared before closing: the dialog's close event arrives a task later.
    clearResult();
    $("#generate-dialog").close();
  });
  actions.append(done);
  parts.push(actions);
  result.replaceChildren(...parts);
  $("#generate-form").hidden = true;
  result.hidden = false;
  $(".copy", result).focus();
}

function secretField(label, value, id, after) {
  const wrap = document.createElement("div");
  wrap.className = "secret-field";
  const title = document.createElement("p");
  title.className = "secret-label";
  title.id = `${id}-label`;
  title.textContent = label;
  const row = document.createElement("div");
  row.className = "secret-row";
  const code = document.createElement("code");
  code.id = `${id}-value`;
  code.className = "secret";
  code.setAttribute("aria-labelledby", title.id);
  code.textContent = value;
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "secondary small copy";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", `Copy ${label.toLowerCase()}`);
  copy.addEventListener("click", () => copyFrom(code.id, copy));
  row.append(code, copy);
  wrap.append(title, row);
  if (after) wrap.append(after);
  return wrap;
}

/** Removes whatever the last generation showed, secrets included. */
function clearResult() {
  const result = $("#generate-result");
  result.replaceChildren();
  result.hidden = true;
}

function onGenerateClosed() {
  clearResult();
  $("#generate-form").reset();
  $("#generate-form").hidden = false;
  const selection = window.getSelection();
  if (selection) selection.removeAllRanges();
  $("#open-generate").focus();
}

// ---- portal --------------------------------------------------------------------------------

/** Opens the tenant's portal in this tab, signed in as an environment admin of the tenant. */
async function openPortal() {
  if (!state.tenant) return;
  const button = $("#open-portal");
  button.disabled = true;
  let session;
  try {
    session = await api("POST", "/v1/portal/sessions", {
      tenant: state.tenant,
      user_id: "environment-admin",
      display_name: "Environment admin",
      role: "admin",
    });
  } catch (error) {
    failed(error);
    return;
  } finally {
    button.disabled = false;
  }
  let url = null;
  try {
    url = new URL(session.url, window.location.href);
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    showError("The token service answered without a portal link.");
    return;
  }
  window.location.assign(url.href);
}

// ---- wiring --------------------------------------------------------------------------------

function start() {
  $("#sign-in-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut());
  for (const radio of $$('input[name="environment-type"]')) radio.addEventListener("change", changeEnvironment);
  for (const radio of $$('input[name="tenant-type"]')) radio.addEventListener("change", changeTenantType);
  $("#follow-environment").addEventListener("click", followEnvironment);
  $("#tenant-form").addEventListener("submit", submitTenant);
  $("#load-more").addEventListener("click", () => loadTokens(true).catch(failed));
  $("#open-generate").addEventListener("click", openGenerate);
  $("#open-portal").addEventListener("click", openPortal);
  $("#generate-form").addEventListener("submit", submitGenerate);
  $("#generate-dialog").addEventListener("cancel", clearResult);
  $("#generate-dialog").addEventListener("close", onGenerateClosed);
  $("#revoke-confirm").addEventListener("click", confirmRevoke);
  $("#revoke-dialog").addEventListener("close", () => {
    state.revoking = null;
  });
  for (const button of $$("dialog [data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  if (adminToken()) {
    enter();
  } else {
    $("#admin-token").focus();
  }
}

start();
