// Requests to the token service's REST API, shared by the admin page (app.js) and the tenant
// portal (portal.js): one request in, the parsed JSON or an ApiError out. Loaded before them.
"use strict";

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
