// A list's filters, sort and search as they live in the page's address and go to the API
// unchanged: `filter[<field>][<op>]=v`, `sort=field` / `sort=-field`, `q=`. Keeping them in
// the address makes the back button return to the same list.
import type { FieldMeta } from "./list";

export const OPERATORS = ["eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "is_null"] as const;
export type Operator = (typeof OPERATORS)[number];

export interface FilterClause {
  field: string;
  op: Operator;
  value: string;
}

const TEXTUAL = new Set(["text", "long_text", "email", "phone", "url"]);
const ORDERED = new Set(["integer", "decimal", "currency", "date", "datetime", "rollup"]);
const ARRAYS = new Set(["multi_select", "tags"]);

/** The operators the API accepts for a field of this type (first = the default). */
export function operatorsFor(field: Pick<FieldMeta, "type" | "encrypted">): Operator[] {
  if (field.encrypted) return ["eq", "ne", "in", "is_null"];
  if (TEXTUAL.has(field.type)) return ["contains", "eq", "ne", "in", "is_null"];
  if (ORDERED.has(field.type)) return ["eq", "ne", "lt", "lte", "gt", "gte", "is_null"];
  if (ARRAYS.has(field.type)) return ["contains", "in", "is_null"];
  if (field.type === "boolean") return ["eq", "is_null"];
  if (field.type === "address") return [];
  return ["eq", "ne", "in", "is_null"];
}

/** Fields a list can filter on: all but the ones without operators and masked ones. */
export function filterableFields(fields: readonly FieldMeta[], unmasked: boolean): FieldMeta[] {
  return fields.filter(
    (f) => operatorsFor(f).length > 0 && (unmasked || !(f.sensitive || f.encrypted)),
  );
}

/** The API's name of a field in filters and sorts: built-in objects' custom fields as `custom.<key>`. */
export function queryName(field: Pick<FieldMeta, "key" | "builtin">, objectBuiltin: boolean): string {
  return objectBuiltin && !field.builtin ? `custom.${field.key}` : field.key;
}

const FILTER_KEY = /^filter\[([^\]]+)\]\[([a-z_]+)\]$/;

function isOperator(raw: string): raw is Operator {
  return (OPERATORS as readonly string[]).includes(raw);
}

/** The filters in an address's query (unknown operators are left out). */
export function readFilters(params: URLSearchParams): FilterClause[] {
  const out: FilterClause[] = [];
  for (const [key, value] of params) {
    const m = FILTER_KEY.exec(key);
    if (m?.[1] && m[2] && isOperator(m[2])) out.push({ field: m[1], op: m[2], value });
  }
  return out;
}

/** `params` with its filters replaced by `filters` (a cursor no longer applies either). */
export function writeFilters(params: URLSearchParams, filters: readonly FilterClause[]): URLSearchParams {
  const next = new URLSearchParams();
  for (const [k, v] of params) if (!FILTER_KEY.test(k) && k !== "cursor") next.append(k, v);
  for (const f of filters) next.append(`filter[${f.field}][${f.op}]`, f.op === "is_null" ? f.value || "true" : f.value);
  return next;
}

/** Whether a clause is complete enough to send (an empty value matches nothing useful). */
export function isComplete(f: FilterClause): boolean {
  return f.field !== "" && (f.op === "is_null" ? f.value === "true" || f.value === "false" : f.value.trim() !== "");
}

export interface SortState {
  field: string;
  desc: boolean;
}

export function readSort(raw: string | null): SortState | null {
  if (!raw) return null;
  return raw.startsWith("-") ? { field: raw.slice(1), desc: true } : { field: raw, desc: false };
}

export function sortParam(sort: SortState | null): string | null {
  return sort ? `${sort.desc ? "-" : ""}${sort.field}` : null;
}

/** Types the API sorts by (not arrays, booleans, addresses; not encrypted values). */
export function isSortable(field: Pick<FieldMeta, "type" | "encrypted">): boolean {
  return !field.encrypted && !["multi_select", "tags", "address", "boolean"].includes(field.type);
}

/** The query string a list or count sends: the page's q, sort and filters, plus cursor/limit. */
export function apiQuery(page: URLSearchParams, extra: { cursor?: string; limit?: number } = {}): string {
  const out = new URLSearchParams();
  const q = page.get("q")?.trim();
  if (q) out.set("q", q);
  const sort = page.get("sort");
  if (sort) out.set("sort", sort);
  for (const f of readFilters(page)) if (isComplete(f)) out.append(`filter[${f.field}][${f.op}]`, f.value);
  for (const tag of page.getAll("tag")) out.append("tag", tag);
  if (extra.cursor) out.set("cursor", extra.cursor);
  if (extra.limit) out.set("limit", String(extra.limit));
  return out.toString();
}
