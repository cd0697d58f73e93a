// Where the login page sends the user afterwards: only a path of this app, never another site.

/** `raw` when it is a local path ("/customers?x=1"), else "/". */
export function safeNext(raw: string | null | undefined): string {
  if (!raw || !raw.startsWith("/") || raw.startsWith("//") || raw.startsWith("/\\")) return "/";
  if (raw.startsWith("/login") || raw.startsWith("/signup")) return "/";
  return raw;
}

/** The login page's address that comes back to `here` (path + search + hash). */
export function loginPath(here: string): string {
  const next = safeNext(here);
  return next === "/" ? "/login" : `/login?next=${encodeURIComponent(next)}`;
}
