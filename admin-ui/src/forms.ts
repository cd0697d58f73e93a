// Turning an API problem into what a form shows: messages under the fields it names, the
// rest as one message above the form.
import { ApiProblem } from "./api/client";

export interface FormErrors<K extends string> {
  /** Messages per form field. */
  fields: { name: K; errors: string[] }[];
  /** What to show above the form (never empty for an error). */
  summary: string;
}

/** `fields` are the form's fields, named as the API names them; errors of others go to the summary. */
export function formErrors<K extends string>(error: unknown, fields: readonly K[]): FormErrors<K> {
  if (!(error instanceof ApiProblem)) {
    return { fields: [], summary: error instanceof Error ? error.message : String(error) };
  }
  const byField = new Map<K, string[]>();
  for (const e of error.problem.errors ?? []) {
    const name = fields.find((f) => f === e.field);
    if (name) byField.set(name, [...(byField.get(name) ?? []), e.message]);
  }
  return {
    fields: [...byField].map(([name, errors]) => ({ name, errors })),
    summary: error.problem.detail || error.problem.title,
  };
}

/** Tenant slug rules (the server's `TenantSlug`): 3-40 of a-z, 0-9 and single '-' inside. */
export function slugProblem(raw: string): "length" | "chars" | "dash" | null {
  if (raw.length < 3 || raw.length > 40) return "length";
  if (!/^[a-z0-9-]+$/.test(raw)) return "chars";
  if (raw.startsWith("-") || raw.endsWith("-") || raw.includes("--")) return "dash";
  return null;
}

/** A slug suggested from a company name typed in Latin letters ("Acme Trading" → "acme-trading"). */
export function suggestSlug(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/, "");
}

/** The default password policy, shown while typing (the server has the last word). */
export const PASSWORD_MIN = 10;
