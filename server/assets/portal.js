// The m2m tenant portal: a tenant's API tokens and the signed-in user's personal tokens.
//
// The page is signed in by an HttpOnly session cookie it cannot read: every call goes to the
// same origin with that cookie and no X-API-KEY, and every state-changing call carries the
// session's CSRF token in X-CSRF-Token. A generated secret is written into the secret dialog's
// DOM once and removed with it when the dialog closes; it is never kept in a variable that
// outlives the request that returned it.
"use strict";

const PAGE_SIZE = 200;
/** At most this many pages per list: 2,000 tokens. */
const MAX_PAGES = 10;

const TYPE_LABELS = {
  access: "Access token",
  client_credentials: "Client credentials",
};
const KIND_LABELS = {
  access_token: "Access token",
  client_secret: "Client credentials",
};
const ROLE_LABELS = {
  admin: "Admin",
  member: "Member",
};

/** The two lists of the page. */
const SECTIONS = {
  api: {
    section: "#api-tokens",
    table: "#api-table",
    empty: "#api-empty",
    generate: "#api-generate",
    title: "Generate API token",
    noun: "API tokens",
    visible: (me) => me.api_tokens_visible === true,
    mayGenerate: (me) => me.may_manage_api_tokens === true,
    mayRevoke: (me) => me.may_manage_api_tokens === true,
    query: () => ({ owner: "tenant" }),
  },
  personal: {
    section: "#personal-tokens",
    table: "#personal-table",
    empty: "#personal-empty",
    generate: "#personal-generate",
    title: "Generate personal token",
    noun: "personal tokens",
    visible: (me) => me.personal_tokens_visible === true,
    // The user's own tokens: always theirs to create and revoke.
    mayGenerate: () => true,
    mayRevoke: () => true,
    query: (me) => ({ user_id: me.user_id }),
  },
};

const state = {
  me: null,
  /** Per section, the number of the latest load: an older answer arriving late is dropped. */
  loads: { api: 0, personal: 0 },
  /** How many loads run; the refresh button waits for them. */
  running: 0,
  generating: null,
  revoking: null,
};

/** Calls the API with the session cookie (and the CSRF token on changes); resolves to the parsed JSON (or null), rejects with an ApiError. */
function api(method, path, body) {
  const headers = {};
  if (method !== "GET" && method !== "HEAD" && state.me) {
    headers["X-CSRF-Token"] = state.me.csrf_token;
  }
  return requestJson(path, { method, headers, credentials: "same-origin" }, body,
    "The token service cannot be reached. Check your connection and try again.");
}

/** The message to show for an API error. */
function describe(error) {
  if (!(error instanceof ApiError)) return `Unexpected error: ${error.message || error}`;
  switch (error.status) {
    case 0:
      return error.message;
    case 403:
      return `Not allowed: ${error.message}`;
    case 503:
      return `The token service is unavailable: ${error.message}`;
    default:
      return `${error.message} (HTTP ${error.status})`;
  }
}

/** Whether an error means the session is gone. */
function sessionGone(error) {
  return error instanceof ApiError && error.status === 401;
}

/** Handles the error of a call: a session that is gone ends the page, anything else is shown. */
function failed(error) {
  if (sessionGone(error)) end();
  else showError(error);
}

/** Hides everything of the session and says it has ended. */
function end(signedOut = false) {
  state.me = null;
  state.loads.api += 1;
  state.loads.personal += 1;
  for (const dialog of $$("dialog")) if (dialog.open) dialog.close();
  clearSecret();
  $("#generate-scope-list").replaceChildren();
  for (const name of Object.keys(SECTIONS)) {
    const section = SECTIONS[name];
    $(`${section.table} tbody`).replaceChildren();
    $(section.section).hidden = true;
  }
  for (const id of ["#who-tenant", "#who-name", "#who-role"]) $(id).textContent = "";
  for (const name of $$(".tenant-name")) name.textContent = "";
  $("#who").hidden = true;
  $("#sign-out").hidden = true;
  $("#portal").hidden = true;
  $("#loading").hidden = true;
  $("#ended").hidden = false;
  if (signedOut) notify("Signed out.");
  else show($("#notice"), "");
  show($("#error"), "");
  $("#main").focus();
}

// ---- the session -----------------------------------------------------------------------------

async function loadMe() {
  let me;
  try {
    me = await api("GET", "/v1/portal/me");
  } catch (error) {
    if (sessionGone(error)) {
      end();
    } else {
      $("#loading").hidden = true;
      showError(error);
    }
    return;
  }
  state.me = me;
  $("#who-tenant").textContent = me.tenant;
  $("#who-name").textContent = me.display_name || me.user_id;
  $("#who-role").textContent = ROLE_LABELS[me.role] || me.role;
  for (const name of $$(".tenant-name")) name.textContent = me.tenant;
  document.title = `${me.tenant} · m2m portal`;
  $("#who").hidden = false;
  $("#sign-out").hidden = false;
  let anyVisible = false;
  for (const name of Object.keys(SECTIONS)) {
    const section = SECTIONS[name];
    const visible = section.visible(me);
    anyVisible ||= visible;
    $(section.section).hidden = !visible;
    $(section.generate).hidden = !(visible && section.mayGenerate(me));
  }
  $("#nothing-shown").hidden = anyVisible;
  $(".toolbar").hidden = !anyVisible;
  $("#loading").hidden = true;
  $("#portal").hidden = false;
  await refresh();
}

async function signOut() {
  const button = $("#sign-out");
  button.disabled = true;
  try {
    await api("POST", "/portal/logout");
  } catch (error) {
    if (!sessionGone(error)) {
      showError(error);
      return;
    }
  } finally {
    button.disabled = false;
  }
  end(true);
}

// ---- lists -------------------------------------------------------------------------------------

function tenantPath(suffix) {
  return `/v1/tenants/${encodeURIComponent(state.me.tenant)}${suffix}`;
}

/** Reloads every visible list. */
async function refresh() {
  const me = state.me;
  if (!me) return;
  const names = Object.keys(SECTIONS).filter((name) => SECTIONS[name].visible(me));
  const button = $("#refresh");
  button.disabled = true;
  state.running += 1;
  try {
    const results = await Promise.allSettled(names.map(loadSection));
    const failure = results.find((result) => result.status === "rejected");
    if (failure) failed(failure.reason);
  } finally {
    state.running -= 1;
    button.disabled = state.running > 0;
  }
}

/** Loads all of one section's tokens, page by page, and shows them. */
async function loadSection(name) {
  const section = SECTIONS[name];
  const me = state.me;
  const load = ++state.loads[name];
  const element = $(section.section);
  element.setAttribute("aria-busy", "true");
  try {
    const tokens = [];
    let offset = 0;
    let more = false;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const params = new URLSearchParams(section.query(me));
      params.set("limit", String(PAGE_SIZE));
      if (offset) params.set("offset", String(offset));
      const answer = await api("GET", tenantPath(`/tokens?${params}`));
      if (load !== state.loads[name]) return;
      tokens.push(...answer.items);
      more = answer.next_offset !== null && answer.next_offset !== undefined;
      if (!more) break;
      offset = answer.next_offset;
    }
    renderSection(name, tokens, more);
  } finally {
    if (load === state.loads[name]) element.setAttribute("aria-busy", "false");
  }
}

function renderSection(name, tokens, more) {
  const section = SECTIONS[name];
  const shown = tokens
    .filter((token) => token.kind !== "bearer_token")
    .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  const body = $(`${section.table} tbody`);
  body.replaceChildren(...shown.map((token) => tokenRow(name, token)));
  const table = $(section.table);
  table.dataset.more = more ? "true" : "false";
  applyFilter();
}

/** Hides the rows that do not match the search box, in both tables. */
function applyFilter() {
  const query = $("#filter").value.trim().toLowerCase();
  for (const name of Object.keys(SECTIONS)) {
    const section = SECTIONS[name];
    const rows = $$(`${section.table} tbody tr`);
    let visible = 0;
    for (const row of rows) {
      const text = ["td.client", "td.description", "td.created-by"]
        .map((selector) => $(selector, row).textContent.toLowerCase())
        .join("\n");
      row.hidden = Boolean(query) && !text.includes(query);
      if (!row.hidden) visible += 1;
    }
    let hint = "";
    if (!rows.length) hint = `No ${section.noun} yet.`;
    else if (!visible) hint = `No ${section.noun} match “${$("#filter").value.trim()}”.`;
    if ($(section.table).dataset.more === "true") {
      hint = `${hint} Only the first ${PAGE_SIZE * MAX_PAGES} ${section.noun} are shown.`.trim();
    }
    show($(section.empty), hint);
    $(section.table).hidden = !visible;
  }
}

function cell(label, content, className) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (className) td.className = className;
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  return td;
}

function timeElement(iso, withTime) {
  const time = document.createElement("time");
  time.dateTime = iso;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) time.textContent = iso;
  else time.textContent = withTime ? date.toLocaleString() : date.toLocaleDateString();
  time.title = iso;
  return time;
}

function codeElement(text) {
  const code = document.createElement("code");
  code.textContent = text;
  return code;
}

function statusOf(token) {
  if (token.revoked_at) return "Revoked";
  const text = String(token.expires_in_text || "").toLowerCase();
  if ((token.expires_in !== null && token.expires_in !== undefined && token.expires_in <= 0)
      || text === "expired") {
    return "Expired";
  }
  return "Active";
}

function expiresText(token, status) {
  if (!token.expires_at) return "Never";
  if (status === "Expired") return "Expired";
  return token.expires_in_text || "—";
}

function tokenRow(name, token) {
  const section = SECTIONS[name];
  const row = document.createElement("tr");
  row.dataset.id = token.id;
  const status = statusOf(token);
  if (status !== "Active") row.classList.add(status.toLowerCase());
  const shownId = token.client_id || token.stub || "";
  row.append(
    cell("Client ID / Token", shownId ? codeElement(shownId) : "—", "client"),
    cell("Description", token.description || "—", "description"),
    cell("Created by", token.created_by || "—", "created-by"),
    cell("Created", timeElement(token.created_at, false), "created-at"),
    cell("Expires in", expiresText(token, status), "expires-in"),
    cell("Last used", token.last_used_at ? timeElement(token.last_used_at, true) : "Never", "last-used"),
  );
  const statusCell = cell("Status", status, `status status-${status.toLowerCase()}`);
  if (token.revoked_at) statusCell.title = `Revoked ${new Date(token.revoked_at).toLocaleString()}`;
  row.append(statusCell);
  const actions = cell("Actions", "", "actions-cell");
  if (status !== "Revoked" && section.mayRevoke(state.me)) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "danger small revoke";
    button.dataset.id = token.id;
    button.textContent = "Revoke";
    button.setAttribute("aria-label", `Revoke ${token.description || shownId}`);
    button.addEventListener("click", () => askRevoke(name, token, button));
    actions.append(button);
  }
  row.append(actions);
  return row;
}

// ---- revoke ------------------------------------------------------------------------------------

function askRevoke(name, token, opener) {
  state.revoking = { name, id: token.id, description: token.description, opener };
  const label = token.description ? `“${token.description}”` : "this token";
  const shownId = token.client_id || token.stub;
  const derived = token.kind === "client_secret" ? " Bearer tokens issued from it stop working too." : "";
  $("#revoke-text").textContent =
    `Revoke ${label} (${shownId})? Requests with it will be refused at once. This cannot be undone.${derived}`;
  show($("#revoke-error"), "");
  $("#revoke-dialog").showModal();
  $("#revoke-dialog [data-close]").focus();
}

async function confirmRevoke() {
  const revoking = state.revoking;
  if (!revoking || !state.me) return;
  const button = $("#revoke-confirm");
  button.disabled = true;
  try {
    await api("DELETE", tenantPath(`/tokens/${encodeURIComponent(revoking.id)}`));
  } catch (error) {
    if (sessionGone(error)) end();
    else show($("#revoke-error"), describe(error));
    return;
  } finally {
    button.disabled = false;
  }
  state.revoking = null;
  $("#revoke-dialog").close();
  notify(revoking.description ? `Token “${revoking.description}” revoked.` : "Token revoked.");
  try {
    await loadSection(revoking.name);
  } catch (error) {
    failed(error);
  }
  $(SECTIONS[revoking.name].generate).focus();
}

// ---- generate ----------------------------------------------------------------------------------

function openGenerate(name) {
  const me = state.me;
  if (!me) return;
  state.generating = name;
  $("#generate-title").textContent = SECTIONS[name].title;
  $("#generate-owner").textContent = name === "api"
    ? `A token of ${me.tenant}: it stays valid when you leave.`
    : `Your own token: it is revoked when you leave ${me.tenant}.`;
  $("#generate-form").reset();
  renderTypeChoice(me.token_type);
  renderScopes(me.grantable || []);
  show($("#generate-error"), "");
  $("#generate-dialog").showModal();
  $("#generate-description").focus();
}

function renderTypeChoice(tokenType) {
  const box = $("#generate-type");
  if (tokenType) {
    const p = document.createElement("p");
    p.id = "generate-type-fixed";
    p.dataset.type = tokenType;
    const strong = document.createElement("strong");
    strong.textContent = TYPE_LABELS[tokenType] || tokenType;
    p.append("Type: ", strong, ` — ${headerLine(tokenType)}`);
    box.replaceChildren(p);
    return;
  }
  const fieldset = document.createElement("fieldset");
  const legend = document.createElement("legend");
  legend.textContent = "Type";
  fieldset.append(legend);
  for (const type of ["access", "client_credentials"]) {
    const label = document.createElement("label");
    label.className = "choice";
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "generate-type";
    radio.value = type;
    radio.checked = type === "access";
    const text = document.createElement("span");
    text.textContent = TYPE_LABELS[type];
    const hint = document.createElement("span");
    hint.className = "muted";
    hint.textContent = type === "access" ? " (X-API-KEY)" : " (Authorization: Bearer)";
    text.append(hint);
    label.append(radio, text);
    fieldset.append(label);
  }
  box.replaceChildren(fieldset);
}

function headerLine(type) {
  return type === "access"
    ? "sent in the X-API-KEY header."
    : "a client ID and secret exchanged at /oauth/token for tokens sent as Authorization: Bearer.";
}

function renderScopes(grantable) {
  const list = $("#generate-scope-list");
  const labels = grantable.map((scope, index) => {
    const label = document.createElement("label");
    label.className = "choice scope-choice";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = "generate-scope";
    box.value = scope.name;
    box.id = `generate-scope-${index}`;
    const text = document.createElement("span");
    const name = document.createElement("code");
    name.textContent = scope.name;
    text.append(name);
    if (scope.description) {
      const description = document.createElement("span");
      description.className = "muted scope-description";
      description.textContent = scope.description;
      text.append(description);
    }
    label.append(box, text);
    return label;
  });
  list.replaceChildren(...labels);
  $("#generate-no-scopes").hidden = labels.length > 0;
}

function chosenType() {
  const fixed = $("#generate-type-fixed");
  if (fixed) return null;
  const radio = $('input[name="generate-type"]:checked');
  return radio ? radio.value : "access";
}

async function submitGenerate(event) {
  event.preventDefault();
  const me = state.me;
  const name = state.generating;
  if (!me || !name) return;
  const request = {
    description: $("#generate-description").value.trim(),
    expires: $("#generate-expiry").value,
    scopes: $$('input[name="generate-scope"]:checked').map((box) => box.value),
  };
  if (name === "personal") request.user_id = me.user_id;
  const type = chosenType();
  if (type) request.type = type;
  const button = $("#generate-submit");
  button.disabled = true;
  show($("#generate-error"), "");
  let created;
  try {
    created = await api("POST", tenantPath("/tokens"), request);
  } catch (error) {
    if (sessionGone(error)) {
      end();
    } else {
      show($("#generate-error"), describe(error));
      $("#generate-description").focus();
    }
    return;
  } finally {
    button.disabled = false;
  }
  $("#generate-dialog").close();
  showSecret(created, name);
  notify(created.description ? `Token “${created.description}” created.` : "Token created.");
  loadSection(name).catch(failed);
}

// ---- the secret, shown once --------------------------------------------------------------------

/** Writes the secret of a just-created token into the secret dialog: the only place it ever is. */
function showSecret(created, name) {
  const parts = [];
  const summary = document.createElement("p");
  const what = KIND_LABELS[created.kind] || TYPE_LABELS[created.type] || "Token";
  summary.textContent = `${what} “${created.description || created.stub}” — expires: ${created.expires_at ? created.expires_in_text : "never"}.`;
  parts.push(summary);
  const use = document.createElement("p");
  use.className = "hint";
  if (created.client_secret !== undefined) {
    parts.push(secretField("Client ID", created.client_id, "secret-client-id"));
    parts.push(secretField("Client secret", created.client_secret, "secret-value"));
    use.textContent = "Exchange them at /oauth/token (grant_type=client_credentials, HTTP Basic) for bearer tokens sent as Authorization: Bearer.";
  } else {
    parts.push(secretField("Access token", created.token, "secret-value"));
    use.textContent = "Send it in the X-API-KEY header.";
  }
  parts.push(use);
  $("#secret-body").replaceChildren(...parts);
  const dialog = $("#secret-dialog");
  dialog.dataset.opener = SECTIONS[name].generate;
  dialog.showModal();
  $(".copy", dialog).focus();
}

function secretField(label, value, id) {
  const wrap = document.createElement("div");
  wrap.className = "secret-field";
  const title = document.createElement("p");
  title.className = "secret-label";
  title.id = `${id}-label`;
  title.textContent = label;
  const row = document.createElement("div");
  row.className = "secret-row";
  const code = document.createElement("code");
  code.id = id;
  code.className = "secret";
  code.setAttribute("aria-labelledby", title.id);
  code.textContent = value;
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "secondary small copy";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", `Copy ${label.toLowerCase()}`);
  copy.addEventListener("click", () => copyFrom(id, copy));
  row.append(code, copy);
  wrap.append(title, row);
  return wrap;
}

/** Removes the shown secret from the page. */
function clearSecret() {
  $("#secret-body").replaceChildren();
  const selection = window.getSelection();
  if (selection) selection.removeAllRanges();
}

function onSecretClosed() {
  clearSecret();
  const dialog = $("#secret-dialog");
  const opener = dialog.dataset.opener ? $(dialog.dataset.opener) : null;
  delete dialog.dataset.opener;
  if (opener && !opener.hidden && state.me) opener.focus();
}

// ---- wiring ------------------------------------------------------------------------------------

function start() {
  $("#sign-out").addEventListener("click", signOut);
  $("#refresh").addEventListener("click", () => {
    refresh();
  });
  $("#filter").addEventListener("input", applyFilter);
  $("#api-generate").addEventListener("click", () => openGenerate("api"));
  $("#personal-generate").addEventListener("click", () => openGenerate("personal"));
  $("#generate-form").addEventListener("submit", submitGenerate);
  $("#generate-dialog").addEventListener("close", () => {
    state.generating = null;
    show($("#generate-error"), "");
  });
  $("#secret-close").addEventListener("click", () => {
    // Cleared before closing: the dialog's close event arrives a task later.
    clearSecret();
    $("#secret-dialog").close();
  });
  $("#secret-dialog").addEventListener("cancel", clearSecret);
  $("#secret-dialog").addEventListener("close", onSecretClosed);
  $("#revoke-confirm").addEventListener("click", confirmRevoke);
  $("#revoke-dialog").addEventListener("close", () => {
    const opener = state.revoking && state.revoking.opener;
    state.revoking = null;
    if (opener && opener.isConnected) opener.focus();
  });
  for (const button of $$("dialog [data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  loadMe();
}

start();
