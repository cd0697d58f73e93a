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

/** How values read in the user's language. */
export interface CellFormat {
  yesNo: [string, string];
  dateTime: string;
  date: string;
  locale: string;
}

/** Money as the locale writes it, with ¥ and two decimals (¥1,234.50). */
export function moneyText(value: number, locale: string): string {
  return `¥${value.toLocaleString(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** How a record's value reads in a list cell or a detail field ("" when there is none). */
export function cellText(value: unknown, field: FieldMeta, fmt: CellFormat): string {
  if (value === null || value === undefined || value === "") return "";
  if (Array.isArray(value)) {
    return value.map((v) => cellText(v, field, fmt)).filter(Boolean).join(", ");
  }
  if (typeof value === "string" && (field.type === "select" || field.type === "multi_select")) {
    return optionLabel(field, value, fmt.locale);
  }
  if (typeof value === "boolean") return value ? fmt.yesNo[0] : fmt.yesNo[1];
  if (typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (field.type === "address") {
      return ["province", "city", "district", "street"].map((k) => o[k]).filter((v) => typeof v === "string").join(" ");
    }
    const shown = o.name ?? o.title ?? o.subject ?? o.number ?? o.id;
    return typeof shown === "string" || typeof shown === "number" ? String(shown) : JSON.stringify(value);
  }
  if (field.type === "currency" && typeof value === "number") return moneyText(value, fmt.locale);
  if ((field.type === "decimal" || field.type === "integer") && typeof value === "number") {
    return value.toLocaleString(fmt.locale);
  }
  if (field.type === "datetime" && typeof value === "string") return dayjs(value).format(fmt.dateTime);
  if (field.type === "date" && typeof value === "string") return dayjs(value).format(fmt.date);
  return String(value);
}

/** Where a list's chosen columns are remembered, per object. */
export function columnsStorageKey(object: string): string {
  return `crm.columns.${object}`;
}

/** The columns to show: the user's choice (in its order, known fields only), else the default. */
export function chosenColumns(object: ObjectMeta, stored: readonly string[] | null, max = 6): FieldMeta[] {
  if (!stored || stored.length === 0) return listColumns(object, max);
  const byKey = new Map(object.fields.map((f) => [f.key, f]));
  const chosen = stored.map((k) => byKey.get(k)).filter((f): f is FieldMeta => !!f && !NOT_IN_LISTS.has(f.type));
  return chosen.length > 0 ? chosen : listColumns(object, max);
}

/** Every field a list can show, by position (for the column chooser). */
export function showableFields(object: ObjectMeta): FieldMeta[] {
  return listColumns(object, Number.MAX_SAFE_INTEGER);
}

/** A stored column choice, or null when there is none or it is unreadable. */
export function parseStoredColumns(raw: string | null): string[] | null {
  if (!raw) return null;
  try {
    const v: unknown = JSON.parse(raw);
    return Array.isArray(v) && v.every((k) => typeof k === "string") ? (v as string[]) : null;
  } catch {
    return null;
  }
}
