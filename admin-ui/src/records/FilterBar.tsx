// The list's filters: the active ones as removable chips ("名称 包含 张三"), and a row to add
// one — a field (custom ones too), an operator the API has for its type, and a value control
// that fits the type. Changes go to the page's address, which the list reads.
import { useState } from "react";
import { Button, DatePicker, Flex, Input, Select, Tag } from "antd";
import { FilterOutlined, PlusOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import type { Dayjs } from "dayjs";
import { filterableFields, isComplete, operatorsFor, queryName, type FilterClause, type Operator } from "./filters";
import type { FieldMeta, ObjectMeta } from "./list";

interface Props {
  object: ObjectMeta;
  filters: FilterClause[];
  unmasked: boolean;
  label: (f: FieldMeta) => string;
  option: (f: FieldMeta, v: string) => string;
  onChange: (filters: FilterClause[]) => void;
}

export function FilterBar({ object, filters, unmasked, label, option, onChange }: Props) {
  const { t } = useTranslation();
  const fields = filterableFields(object.fields, unmasked);
  const byName = new Map(fields.map((f) => [queryName(f, object.builtin), f]));
  const [draft, setDraft] = useState<FilterClause>({ field: "", op: "eq", value: "" });
  const field = byName.get(draft.field);

  const valueText = (f: FilterClause) => {
    const meta = byName.get(f.field);
    if (f.op === "is_null") return f.value === "false" ? t("filters.notEmpty") : t("filters.empty");
    if (meta && (meta.type === "select" || meta.type === "multi_select")) {
      return f.value.split(",").map((v) => option(meta, v)).join(", ");
    }
    if (meta?.type === "boolean") return f.value === "true" ? t("records.yes") : t("records.no");
    return f.value;
  };
  const add = () => {
    if (!isComplete(draft)) return;
    onChange([...filters, draft]);
    setDraft({ field: "", op: "eq", value: "" });
  };

  return (
    <div className="crm-filters" data-testid="filter-bar">
      {filters.length > 0 && (
        <Flex wrap="wrap" gap={6} style={{ marginBottom: 8 }}>
          {filters.map((f, i) => (
            <Tag
              key={`${f.field}-${f.op}-${i}`}
              closable
              color="processing"
              onClose={() => onChange(filters.filter((_, j) => j !== i))}
              closeIcon={<span aria-label={t("filters.remove")}>×</span>}
            >
              {byName.get(f.field) ? label(byName.get(f.field) as FieldMeta) : f.field}{" "}
              {f.op === "is_null" ? "" : `${t(`filters.op.${f.op}`)} `}
              {valueText(f)}
            </Tag>
          ))}
          <Button size="small" type="link" onClick={() => onChange([])}>
            {t("filters.clear")}
          </Button>
        </Flex>
      )}
      <Flex wrap="wrap" gap={8} align="center">
        <FilterOutlined aria-hidden />
        <Select
          showSearch
          optionFilterProp="label"
          style={{ minWidth: 160 }}
          placeholder={t("filters.field")}
          aria-label={t("filters.field")}
          data-testid="filter-field"
          value={draft.field || undefined}
          options={fields.map((f) => ({ value: queryName(f, object.builtin), label: label(f) }))}
          onChange={(name: string) => {
            const meta = byName.get(name);
            setDraft({ field: name, op: meta ? (operatorsFor(meta)[0] ?? "eq") : "eq", value: "" });
          }}
        />
        <Select
          style={{ minWidth: 110 }}
          aria-label={t("filters.operator")}
          data-testid="filter-op"
          value={field ? draft.op : undefined}
          placeholder={t("filters.operator")}
          disabled={!field}
          options={(field ? operatorsFor(field) : []).map((op) => ({ value: op, label: t(`filters.op.${op}`) }))}
          onChange={(op: Operator) => setDraft({ ...draft, op, value: op === "is_null" ? "true" : "" })}
        />
        <FilterValue field={field} draft={draft} option={option} onChange={(value) => setDraft({ ...draft, value })} onEnter={add} />
        <Button icon={<PlusOutlined />} onClick={add} disabled={!isComplete(draft)} data-testid="filter-add">
          {t("filters.add")}
        </Button>
      </Flex>
    </div>
  );
}

interface ValueProps {
  field: FieldMeta | undefined;
  draft: FilterClause;
  option: (f: FieldMeta, v: string) => string;
  onChange: (value: string) => void;
  onEnter: () => void;
}

/** The value control of a filter: yes/no, the field's options, a date, or text. */
function FilterValue({ field, draft, option, onChange, onEnter }: ValueProps) {
  const { t } = useTranslation();
  const common = { style: { width: 200 }, "aria-label": t("filters.value"), "data-testid": "filter-value" };
  if (draft.op === "is_null") {
    return (
      <Select
        {...common}
        value={draft.value}
        onChange={onChange}
        options={[
          { value: "true", label: t("filters.empty") },
          { value: "false", label: t("filters.notEmpty") },
        ]}
      />
    );
  }
  if (field?.type === "boolean") {
    return (
      <Select
        {...common}
        value={draft.value || undefined}
        onChange={onChange}
        options={[
          { value: "true", label: t("records.yes") },
          { value: "false", label: t("records.no") },
        ]}
      />
    );
  }
  if (field && (field.type === "select" || field.type === "multi_select")) {
    const multiple = draft.op === "in";
    return (
      <Select
        {...common}
        mode={multiple ? "multiple" : undefined}
        value={multiple ? (draft.value ? draft.value.split(",") : []) : draft.value || undefined}
        onChange={(v: string | string[]) => onChange(Array.isArray(v) ? v.join(",") : v)}
        options={field.options.map((o) => ({ value: o, label: option(field, o) }))}
      />
    );
  }
  if (field && (field.type === "date" || field.type === "datetime")) {
    return (
      <DatePicker
        {...common}
        onChange={(d: Dayjs | null) => onChange(d ? (field.type === "date" ? d.format("YYYY-MM-DD") : d.toISOString()) : "")}
      />
    );
  }
  return (
    <Input
      {...common}
      value={draft.value}
      disabled={!field}
      placeholder={draft.op === "in" ? t("filters.commaSeparated") : t("filters.value")}
      onChange={(e) => onChange(e.target.value)}
      onPressEnter={onEnter}
    />
  );
}
