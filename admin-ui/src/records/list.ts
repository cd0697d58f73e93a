// The generic record list's logic, shared by every object (built-in or custom): which columns
// to show, how a value reads in a cell, and the query string of a page.
import dayjs from "dayjs";
import type { Schemas } from "../api/client";

export type ObjectMeta = Schemas["ObjectOut"];
export type FieldMeta = Schemas["FieldOut"];

/** Types a list cell cannot show in one line. */
const NOT_IN_LISTS = new Set(["long_text", "address"]);

/** The first `max` fields by position that read well in a list. */
export function listColumns(object: ObjectMeta, max = 6): FieldMeta[] {
  return [...object.fields]
    .filter((f) => !NOT_IN_LISTS.has(f.type))
    .sort((a, b) => a.position - b.position)
    .slice(0, max);
}

/**
 * A label in the user's language: the field's own for that language, else (built-in fields,
 * whose metadata has no translations yet) the app's `builtin`, else the field's label.
 */
export function fieldLabel(field: FieldMeta, locale: string, builtin?: (key: string) => string | undefined): string {
  return field.labels[locale] ?? (field.builtin ? builtin?.(field.key) : undefined) ?? field.label;
}

/** A select option's label in the user's language (`option_labels: {value: {locale: label}}`). */
export function optionLabel(field: FieldMeta, value: string, locale: string): string {
  const labels = field.option_labels as Record<string, Record<string, string> | undefined> | null;
  return labels?.[value]?.[locale] ?? value;
}

export function objectLabel(object: ObjectMeta, locale: string): string {
  return object.labels[locale] ?? object.name_plural;
}

/** How a record's value reads in a list cell ("" when there is none). */
export function cellText(
  value: unknown,
  field: FieldMeta,
  yesNo: [string, string],
  dateFormat: string,
  locale = "en",
): string {
  if (value === null || value === undefined || value === "") return "";
  if (Array.isArray(value)) {
    return value.map((v) => cellText(v, field, yesNo, dateFormat, locale)).filter(Boolean).join(", ");
  }
  if (typeof value === "string" && (field.type === "select" || field.type === "multi_select")) {
    return optionLabel(field, value, locale);
  }
  if (typeof value === "boolean") return value ? yesNo[0] : yesNo[1];
  if (typeof value === "object") {
    const o = value as Record<string, unknown>;
    const shown = o.name ?? o.title ?? o.number ?? o.id;
    return typeof shown === "string" || typeof shown === "number" ? String(shown) : JSON.stringify(value);
  }
  if (field.type === "datetime" && typeof value === "string") return dayjs(value).format(dateFormat);
  return String(value);
}

export interface ListQuery {
  q?: string;
  sort?: string;
  cursor?: string;
  limit?: number;
}

/** The query string of a list or count request (no `?`). */
export function listQueryString(query: ListQuery): string {
  const params = new URLSearchParams();
  if (query.q?.trim()) params.set("q", query.q.trim());
  if (query.sort) params.set("sort", query.sort);
  if (query.cursor) params.set("cursor", query.cursor);
  if (query.limit) params.set("limit", String(query.limit));
  return params.toString();
}
