// What the admin page (app.js) and the tenant portal (portal.js) share, loaded before them:
// element lookup, the #notice and #error messages, requests to the token service's REST API
// (one request in, the parsed JSON or an ApiError out), and copying a secret shown once.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Shows `text` in `element`, or hides it when the text is empty. */
function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

/** Shows an error (a text, or an ApiError as the page's own `describe` words it). */
function showError(error) {
  show($("#notice"), "");
  show($("#error"), typeof error === "string" ? error : describe(error));
}

/** Shows a notice in place of any error. */
function notify(text) {
  show($("#error"), "");
  show($("#notice"), text);
}

/** An error answered by the API, with the problem+json detail when there is one. */
class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/**
 * Sends `body` (as JSON, when given) with `init`; resolves to the parsed JSON answer (or null),
 * rejects with an ApiError: status 0 and `unreachable` when the service cannot be reached,
 * else the status and the problem+json detail.
 */
async function requestJson(path, init, body, unreachable) {
  const headers = { Accept: "application/json", ...init.headers };
  const request = { ...init, headers, cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    request.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, request);
  } catch {
    throw new ApiError(0, unreachable);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const detail = data && typeof data.detail === "string" && data.detail
      ? data.detail
      : `${response.status} ${response.statusText || "error"}`;
    throw new ApiError(response.status, detail);
  }
  return data;
}

/** Copies the text of the element with `id`, read at click time so no closure holds it. */
async function copyFrom(id, button) {
  const element = document.getElementById(id);
  if (!element) return;
  try {
    await navigator.clipboard.writeText(element.textContent);
    button.textContent = "Copied";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Press Ctrl+C";
  }
  setTimeout(() => {
    button.textContent = "Copy";
  }, 2000);
}
