// One field's value as a list cell or a detail item shows it: select options as tags,
// relations as links to the record (named from `expanded`), users by name, masked values
// with a lock (never revealed on hover), and "—" for nothing.
import { Space, Tag, Tooltip, Typography } from "antd";
import { LockOutlined } from "@ant-design/icons";
import { Link } from "react-router-dom";
import { useTranslation } from "react-i18next";
import { cellText, type CellFormat, type FieldMeta } from "./list";
import { recordTitle } from "./form";
import { useUserNames } from "./useUsers";

type Json = Record<string, unknown>;

/** Formats in the user's language, from the locale files. */
export function useCellFormat(): CellFormat {
  const { t, i18n } = useTranslation();
  return {
    yesNo: [t("records.yes"), t("records.no")],
    dateTime: t("format.dateTime"),
    date: t("format.date"),
    locale: i18n.language,
  };
}

export function isMasked(value: unknown, field: FieldMeta): boolean {
  return (field.sensitive || field.encrypted) && typeof value === "string" && value.includes("*");
}

interface Props {
  field: FieldMeta;
  value: unknown;
  /** The record's `expanded` entry for this field (relations). */
  expanded?: unknown;
  optionLabel: (field: FieldMeta, value: string) => string;
  /** Inside a link (a phone card): relations and web addresses as plain text. */
  plain?: boolean;
}

export function FieldValue({ field, value, expanded, optionLabel, plain = false }: Props) {
  const { t } = useTranslation();
  const fmt = useCellFormat();
  const users = useUserNames();
  const empty = <Typography.Text type="secondary">—</Typography.Text>;
  if (value === null || value === undefined || value === "" || (Array.isArray(value) && value.length === 0)) {
    return empty;
  }
  if (isMasked(value, field)) {
    return (
      <Tooltip title={t("records.masked")}>
        <Space size={4} aria-label={t("records.masked")}>
          <LockOutlined />
          <span>{String(value)}</span>
        </Space>
      </Tooltip>
    );
  }
  if (field.type === "select" || field.type === "multi_select" || field.type === "tags") {
    const values = Array.isArray(value) ? value : [value];
    return (
      <Space size={[4, 4]} wrap>
        {values.map((v) => (
          <Tag key={String(v)} color={field.type === "select" ? "blue" : undefined}>
            {field.type === "tags" ? String(v) : optionLabel(field, String(v))}
          </Tag>
        ))}
      </Space>
    );
  }
  if (field.type === "relation" && field.target && typeof value === "string") {
    const shown = expanded && typeof expanded === "object" ? (expanded as Json) : null;
    const name = shown?.hidden ? t("records.hidden") : shown ? recordTitle(shown) : value.slice(0, 8);
    return plain ? <span>{name}</span> : <Link to={`/records/${field.target}/${value}`}>{name}</Link>;
  }
  if (field.type === "user" && typeof value === "string") {
    return <span>{users.get(value) ?? value.slice(0, 8)}</span>;
  }
  if (field.type === "url" && typeof value === "string" && !plain) {
    return (
      <a href={value} target="_blank" rel="noreferrer noopener">
        {value}
      </a>
    );
  }
  const text = cellText(value, field, fmt);
  return text === "" ? empty : <span>{text}</span>;
}
