// The typed API client: every path, body and answer comes from schema.d.ts, generated from
// the server's OpenAPI document (`npm run gen:api`). Never write an API shape by hand.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Problem = Schemas["Problem"];
export type Me = Schemas["MeResponse"];

/** The session token of this tab, in memory only (a reload falls back on the cookie). */
let token: string | null = null;
let onUnauthorized: (() => void) | null = null;

export function setToken(value: string | null): void {
  token = value;
}

/** Called on every 401: the app returns to the login page and back afterwards. */
export function setUnauthorizedHandler(handler: (() => void) | null): void {
  onUnauthorized = handler;
}

/** The double-submit CSRF token the server set beside the HttpOnly session cookie. */
export function csrfFromCookie(cookie: string): string | null {
  for (const part of cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "crm_csrf" && rest.length > 0) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/** The headers that authenticate a request of this tab: the token, else the cookie's CSRF token. */
export function authHeaders(): Record<string, string> {
  if (token) return { Authorization: `Bearer ${token}` };
  const csrf = csrfFromCookie(document.cookie);
  return csrf ? { "X-CSRF-Token": csrf } : {};
}

const session: Middleware = {
  onRequest({ request }) {
    for (const [name, value] of Object.entries(authHeaders())) request.headers.set(name, value);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) {
      token = null;
      onUnauthorized?.();
    }
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: "/api/v1" });
api.use(session);

/** Asks the server to also set the HttpOnly session cookie on a login or sign-up answer. */
export const WITH_COOKIE = { "X-Session-Cookie": "set" } as const;

/** An API problem, kept whole so screens can show its message and field errors. */
export class ApiProblem extends Error {
  constructor(public readonly problem: Problem) {
    super(problem.detail || problem.title);
  }
}

/** The data of an openapi-fetch answer, or throws its problem (never swallowed). */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.data !== undefined) return result.data;
  const error = result.error as Partial<Problem> | undefined;
  throw new ApiProblem({
    ...error,
    type: error?.type ?? "about:blank",
    title: error?.title ?? result.response.statusText,
    status: error?.status ?? result.response.status,
    detail: error?.detail ?? `HTTP ${result.response.status}`,
    code: error?.code ?? "http.error",
    request_id: error?.request_id,
    errors: error?.errors,
  });
}

/** Like `unwrap` for answers without a body (204): resolves, or throws the problem. */
export function done(result: { data?: unknown; error?: unknown; response: Response }): void {
  if (result.response.ok) return;
  unwrap(result);
}

/** A response's ETag (a record's version), to send back as If-Match. */
export function etagOf(result: { response: Response }): string | undefined {
  return result.response.headers.get("ETag") ?? undefined;
}
