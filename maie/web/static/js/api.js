// The /v1 API from the browser, as any integration uses it: the X-API-Key header on every call.
// The key lives in sessionStorage (this tab only; gone when it closes or on sign-out). It is
// never put in a URL and never written to the console.

const KEY = "maie.apiKey";
const TENANT = "maie.tenant";
const NOTICE = "maie.notice";

export const session = {
  key: () => sessionStorage.getItem(KEY),
  tenant: () => sessionStorage.getItem(TENANT),
  start(key, tenant) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.setItem(TENANT, tenant);
  },
  end(notice) {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(TENANT);
    if (notice) sessionStorage.setItem(NOTICE, notice);
  },
  /** A message left for the sign-in page (why the session ended), read once. */
  takeNotice() {
    const notice = sessionStorage.getItem(NOTICE);
    sessionStorage.removeItem(NOTICE);
    return notice;
  },
};

/** What this server's API offers (rendered into the page by the server). */
export const features = JSON.parse(document.body.dataset.features || "{}");

/** An answer of the API that is not a success, in the API's own words. */
export class ApiError extends Error {
  constructor(status, detail, { retryAfter = null, extra = null } = {}) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
    this.extra = extra;
  }

  /** The detail as the API gave it, with what to do about a Retry-After. */
  describe() {
    const code = this.status ? `${this.status}: ` : "";
    const wait = this.retryAfter ? ` (try again in ${this.retryAfter} s)` : "";
    return `${code}${this.detail}${wait}`;
  }
}

/** Build an ApiError from an answer's status, headers and body text. */
export function errorFrom(status, statusText, retryAfter, bodyText) {
  let detail = statusText || "the server gave no reason";
  let extra = null;
  try {
    const body = JSON.parse(bodyText);
    if (body && typeof body.detail === "string") detail = body.detail;
    extra = body?.extra ?? null;
  } catch {
    if (bodyText && bodyText.length < 300) detail = bodyText.trim() || detail;
  }
  return new ApiError(status, detail, { retryAfter: retryAfter || null, extra });
}

/** The answer was 401: the key is no longer accepted. End the session and go to sign-in. */
export function signedOut(detail) {
  session.end(`Signed out: ${detail}`);
  location.assign(`/sign-in?next=${encodeURIComponent(location.pathname)}`);
}

/**
 * Call the API. `json` is sent as a JSON body. Returns the parsed JSON (null for 204), or the
 * Response itself with `raw: true`. Throws ApiError for any answer that is not a success.
 */
export async function api(path, { method = "GET", json, headers = {}, signal, raw = false, key } = {}) {
  const sent = { "X-API-Key": key ?? session.key() ?? "", Accept: "application/json", ...headers };
  let body;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body, signal, cache: "no-store" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "the server cannot be reached; check that MAIE is running and try again");
  }
  if (response.status === 401 && key === undefined) {
    const failure = errorFrom(401, response.statusText, null, await response.text());
    signedOut(failure.detail);
    throw failure;
  }
  if (!response.ok && response.status !== 304) {
    throw errorFrom(response.status, response.statusText, response.headers.get("Retry-After"), await response.text());
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

/** Fetch `path` with the key and save it as `filename` (downloads cannot carry headers otherwise). */
export async function download(path, filename) {
  const response = await api(path, { raw: true, headers: { Accept: "*/*" } });
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // Give the browser time to start the download before the object URL goes.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
