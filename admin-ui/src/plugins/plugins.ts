// The plugins screens' pure logic: the install dialog's config check, the API's field errors
// mapped onto the dialog, and how a run's trigger and error are shown.
import type { Schemas } from "../api/client";
import { formErrors, type FormErrors } from "../forms";
import { ApiProblem } from "../api/client";

export type Install = Schemas["InstallOut"];
export type Package = Schemas["PackageOut"];
export type Run = Schemas["RunOut"];

/** The install dialog's fields, named as the API names them. */
export const INSTALL_FIELDS = ["grants", "allowed_hosts", "config"] as const;
export type InstallField = (typeof INSTALL_FIELDS)[number];

/** The config textarea: empty is no config; otherwise JSON whose top level is an object. */
export function parseConfig(text: string): { ok: true; value: unknown } | { ok: false; problem: "json" | "object" } {
  if (!text.trim()) return { ok: true, value: undefined };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, problem: "json" };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return { ok: false, problem: "object" };
  return { ok: true, value };
}

/** A 422 under the dialog's fields: `config.greeting` or `grants[0]` goes under its field. */
export function installErrors(error: unknown): FormErrors<InstallField> {
  if (!(error instanceof ApiProblem)) return formErrors(error, INSTALL_FIELDS);
  const errors = (error.problem.errors ?? []).map((e) => ({
    ...e,
    field: INSTALL_FIELDS.find((f) => e.field === f || e.field.startsWith(`${f}.`) || e.field.startsWith(`${f}[`)) ?? e.field,
  }));
  return formErrors(new ApiProblem({ ...error.problem, errors }), INSTALL_FIELDS);
}

/** A run's trigger as its kind (`event`, `rule`, `request`) and what: the event, rule or endpoint. */
export function runTrigger(trigger: unknown): { kind: string; what: string } {
  const t = (trigger ?? {}) as Record<string, unknown>;
  const kind = typeof t.kind === "string" ? t.kind : "";
  const str = (v: unknown) => (typeof v === "string" ? v : "");
  if (kind === "event") return { kind, what: str(t.event) };
  if (kind === "rule") return { kind, what: str(t.rule) };
  if (kind === "request") return { kind, what: `${str(t.method)} ${str(t.path)}`.trim() };
  return { kind, what: "" };
}

/** A failed run's error code and message (`{"code": …, "message": …}`). */
export function runError(error: unknown): { code: string; message: string } | null {
  if (!error || typeof error !== "object") return null;
  const e = error as Record<string, unknown>;
  return { code: typeof e.code === "string" ? e.code : "", message: typeof e.message === "string" ? e.message : "" };
}
