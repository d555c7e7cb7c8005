// The one fetch wrapper every page uses for the JSON API (/api/…).
// It sends the CSRF token Django expects and turns the server's {"error": "..."} into an
// ApiError whose message can be shown as is: the API writes its messages for people.

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.name = "ApiError";
    this.status = status; // HTTP status, 0 when the server could not be reached
    this.body = body; // the parsed JSON body (e.g. `current` on a 409), or null
  }
}

export function csrfToken() {
  const match = document.cookie.split(";").map((part) => part.trim()).find((part) => part.startsWith("csrftoken="));
  return match ? decodeURIComponent(match.slice("csrftoken=".length)) : "";
}

function errorMessage(status, body) {
  if (body && typeof body.error === "string" && body.error) return body.error;
  if (status === 0) return "Could not reach the server; check your connection and try again.";
  if (status === 404) return "Not found (it may have been deleted, or you are not a member of its project).";
  if (status === 403) return "You are not allowed to do this in this project.";
  if (status === 401) return "Your session has ended; log in again.";
  if (status === 413) return "The file is too large for the server.";
  return `The server answered ${status}.`;
}

// Parses a response body as JSON when it is JSON; null otherwise (e.g. a proxy's HTML page).
export function parseBody(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export function errorFor(status, text) {
  const body = parseBody(text);
  return new ApiError(errorMessage(status, body), status, body);
}

export async function api(method, url, data) {
  const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
  const options = { method, headers, credentials: "same-origin" };
  if (data !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(data);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch {
    throw new ApiError("Could not reach the server; check your connection and try again.", 0, null);
  }
  const text = await response.text();
  if (!response.ok) throw errorFor(response.status, text);
  return parseBody(text);
}

export const getJSON = (url) => api("GET", url);
export const postJSON = (url, data = {}) => api("POST", url, data);
export const patchJSON = (url, data) => api("PATCH", url, data);
