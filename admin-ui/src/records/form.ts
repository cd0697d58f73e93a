// The generic record form's logic: which control each field gets, where its value sits in a
// record and in a request body (a built-in object's custom fields travel in `custom`), how
// the form's values become the body of a POST or of a PATCH that sends only what changed,
// and which form item an API error names.
import dayjs, { type Dayjs } from "dayjs";
import { ApiProblem } from "../api/client";
import type { FieldMeta, ObjectMeta } from "./list";

export type Control =
  | "text"
  | "textarea"
  | "integer"
  | "decimal"
  | "money"
  | "date"
  | "datetime"
  | "select"
  | "multi_select"
  | "boolean"
  | "email"
  | "phone"
  | "url"
  | "relation"
  | "user"
  | "address";

const CONTROLS: Record<string, Control> = {
  text: "text",
  long_text: "textarea",
  integer: "integer",
  decimal: "decimal",
  currency: "money",
  date: "date",
  datetime: "datetime",
  select: "select",
  multi_select: "multi_select",
  boolean: "boolean",
  email: "email",
  phone: "phone",
  url: "url",
  relation: "relation",
  user: "user",
  address: "address",
};

/**
 * The control of a field, or null for fields nobody types in (roll-ups, tags) and for
 * relations whose metadata names no target object (a ticket's team, an opportunity's
 * pipeline: not records, so there is nothing generic to search).
 */
export function controlOf(field: Pick<FieldMeta, "type" | "target">): Control | null {
  if (field.type === "relation" && !field.target) return null;
  return CONTROLS[field.type] ?? null;
}

/** The relation fields worth `expand=` (those pointing to a record object). */
export function expandable(fields: readonly FieldMeta[], object: Pick<ObjectMeta, "builtin">): string[] {
  return fields.filter((f) => f.type === "relation" && f.target).map((f) => fieldPath(f, object).join("."));
}

export const ADDRESS_PARTS = ["province", "city", "district", "street", "postcode"] as const;

/** Where a field's value sits in a record and in a request body; also its form item's name. */
export function fieldPath(field: Pick<FieldMeta, "key" | "builtin">, object: Pick<ObjectMeta, "builtin">): string[] {
  return object.builtin && !field.builtin ? ["custom", field.key] : [field.key];
}

type Json = Record<string, unknown>;

function at(record: Json, path: readonly string[]): unknown {
  let v: unknown = record;
  for (const p of path) v = v && typeof v === "object" ? (v as Json)[p] : undefined;
  return v;
}

/** A field's value in a record (built-in objects keep custom fields in `custom`). */
export function valueOf(record: Json, field: FieldMeta, object: Pick<ObjectMeta, "builtin">): unknown {
  return at(record, fieldPath(field, object));
}

/** Fields a form shows, by position: everything with a control. */
export function formFields(object: ObjectMeta): FieldMeta[] {
  return [...object.fields].filter((f) => controlOf(f) !== null).sort((a, b) => a.position - b.position);
}

/** A value as its control holds it (dates as dayjs). */
export function toControl(value: unknown, control: Control): unknown {
  if (value === null || value === undefined) return undefined;
  if ((control === "date" || control === "datetime") && typeof value === "string") return dayjs(value);
  return value;
}

/** A control's value as the API takes it ("" and empty lists clear the field). */
export function fromControl(value: unknown, control: Control): unknown {
  if (value === undefined || value === null) return control === "address" ? {} : null;
  if (dayjs.isDayjs(value)) return control === "date" ? value.format("YYYY-MM-DD") : (value as Dayjs).toISOString();
  if (typeof value === "string") return value.trim() === "" ? null : value.trim();
  if (Array.isArray(value)) return value.length === 0 ? [] : value;
  if (control === "address" && typeof value === "object") {
    const parts = Object.entries(value as Json).filter(([, v]) => typeof v === "string" && v.trim() !== "");
    // The API keeps an address as an object, `{}` when empty (never null).
    return Object.fromEntries(parts.map(([k, v]) => [k, (v as string).trim()]));
  }
  return value;
}

/** The form's starting values for a record (or for a new one: the fields' defaults). */
export function initialValues(object: ObjectMeta, record: Json | null): Json {
  const out: Json = {};
  for (const f of formFields(object)) {
    const control = controlOf(f) as Control;
    const value = record ? valueOf(record, f, object) : f.default;
    const path = fieldPath(f, object);
    const converted = toControl(value, control);
    if (converted === undefined) continue;
    if (path.length === 2) {
      const group = (out[path[0] as string] ??= {}) as Json;
      group[path[1] as string] = converted;
    } else {
      out[path[0] as string] = converted;
    }
  }
  return out;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/**
 * The request body from the form's values: every filled field for a new record (`before`
 * null), only the changed ones for an edit.
 */
export function requestBody(object: ObjectMeta, values: Json, before: Json | null): Json {
  const body: Json = {};
  for (const f of formFields(object)) {
    const control = controlOf(f) as Control;
    const path = fieldPath(f, object);
    const raw = at(values, path);
    if (raw === undefined && before === null) continue;
    const value = fromControl(raw, control);
    const empty = value === null || (typeof value === "object" && Object.keys(value).length === 0);
    if (before === null ? empty : same(value, valueOf(before, f, object))) continue;
    if (path.length === 2) {
      const group = (body[path[0] as string] ??= {}) as Json;
      group[path[1] as string] = value;
    } else {
      body[path[0] as string] = value;
    }
  }
  return body;
}

export interface FieldMessages {
  /** Form item name (a path) and its messages. */
  fields: { name: string[]; errors: string[] }[];
  /** Messages that name no field of this form, plus the problem's detail. */
  summary: string;
}

/** Maps a 422's `errors` (`custom.score`, `address.city`, `name`) onto the form's items. */
export function fieldMessages(error: unknown, object: ObjectMeta): FieldMessages {
  if (!(error instanceof ApiProblem)) {
    return { fields: [], summary: error instanceof Error ? error.message : String(error) };
  }
  const known = new Set(formFields(object).map((f) => fieldPath(f, object).join(".")));
  const byName = new Map<string, string[]>();
  const unplaced: string[] = [];
  for (const e of error.problem.errors ?? []) {
    const parts = e.field.split(".");
    // An address part's error goes under the address.
    const name = known.has(e.field) ? e.field : known.has(parts[0] ?? "") ? (parts[0] ?? "") : null;
    if (name === null) unplaced.push(`${e.field}: ${e.message}`);
    else byName.set(name, [...(byName.get(name) ?? []), e.message]);
  }
  const detail = error.problem.detail || error.problem.title;
  return {
    fields: [...byName].map(([name, errors]) => ({ name: name.split("."), errors })),
    summary: [detail, ...unplaced].join(" · "),
  };
}

/** The existing record a 409 duplicate names, if it does. */
export function duplicateOf(error: unknown): string | null {
  if (!(error instanceof ApiProblem) || error.problem.status !== 409) return null;
  return error.problem.existing_id ?? null;
}

/** The field a record is shown by: subject, title, name or number, else its id. */
export function recordTitle(record: Json): string {
  for (const key of ["name", "subject", "title", "number"]) {
    const v = record[key];
    if (typeof v === "string" && v !== "") return v;
    if (typeof v === "number") return String(v);
  }
  return typeof record.id === "string" ? record.id : "";
}
