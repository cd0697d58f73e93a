// The control of one field in the generic form, by its type: text, numbers, money with ¥ and
// thousands separators, dates, selects with the options' labels, yes/no, e-mail, phone (+86
// assumed when no country code is typed), web address, a user, or a record of another object.
import { Checkbox, DatePicker, Flex, Input, InputNumber, Select } from "antd";
import { useTranslation } from "react-i18next";
import type { Control } from "./form";
import { ADDRESS_PARTS } from "./form";
import type { FieldMeta } from "./list";
import { RecordPicker, UserPicker } from "./pickers";

interface Props {
  field: FieldMeta;
  control: Control;
  option: (f: FieldMeta, v: string) => string;
  /** Given by Form.Item. */
  value?: unknown;
  onChange?: (value: unknown) => void;
  id?: string;
}

/** 1234567.5 → "1,234,567.5" while typing; the reverse when reading. */
const withSeparators = (v: string | number | undefined) => `${v ?? ""}`.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
const withoutSeparators = (v: string | undefined) => (v ?? "").replace(/,/g, "");

export function FieldInput({ field, control, option, value, onChange, id }: Props) {
  const { t } = useTranslation();
  const common = { id, value: value as never, onChange: onChange as never, style: { width: "100%" } };
  switch (control) {
    case "textarea":
      return <Input.TextArea {...common} autoSize={{ minRows: 2, maxRows: 8 }} onChange={(e) => onChange?.(e.target.value)} />;
    case "integer":
      return <InputNumber {...common} precision={0} formatter={withSeparators} parser={withoutSeparators} />;
    case "decimal":
      return <InputNumber {...common} formatter={withSeparators} parser={withoutSeparators} />;
    case "money":
      return <InputNumber {...common} prefix="¥" precision={2} min={0} formatter={withSeparators} parser={withoutSeparators} />;
    case "date":
      return <DatePicker {...common} format={t("format.date")} />;
    case "datetime":
      return <DatePicker {...common} showTime={{ format: "HH:mm" }} format={t("format.dateTime")} />;
    case "select":
    case "multi_select":
      return (
        <Select
          {...common}
          allowClear
          mode={control === "multi_select" ? "multiple" : undefined}
          options={field.options.map((o) => ({ value: o, label: option(field, o) }))}
        />
      );
    case "boolean":
      return <Checkbox id={id} checked={value === true} onChange={(e) => onChange?.(e.target.checked)} />;
    case "email":
      return <Input {...common} type="email" inputMode="email" onChange={(e) => onChange?.(e.target.value)} />;
    case "phone":
      return <Input {...common} type="tel" inputMode="tel" placeholder={t("form.phoneHint")} onChange={(e) => onChange?.(e.target.value)} />;
    case "url":
      return <Input {...common} type="url" inputMode="url" placeholder={t("form.urlHint")} onChange={(e) => onChange?.(e.target.value)} />;
    case "user":
      return <UserPicker id={id} value={value as string | null} onChange={onChange} style={{ width: "100%" }} />;
    case "relation":
      return field.target ? (
        <RecordPicker id={id} target={field.target} value={value as string | null} onChange={onChange} style={{ width: "100%" }} />
      ) : null;
    case "address":
      return <AddressInput id={id} value={value as Record<string, string> | undefined} onChange={onChange} />;
    default:
      return <Input {...common} onChange={(e) => onChange?.(e.target.value)} />;
  }
}

function AddressInput({ id, value, onChange }: { id?: string; value?: Record<string, string>; onChange?: (v: unknown) => void }) {
  const { t } = useTranslation();
  return (
    <Flex wrap="wrap" gap={8} id={id}>
      {ADDRESS_PARTS.map((part) => (
        <Input
          key={part}
          placeholder={t(`form.address.${part}`)}
          aria-label={t(`form.address.${part}`)}
          value={value?.[part] ?? ""}
          style={{ flex: part === "street" ? "2 1 240px" : "1 1 120px" }}
          onChange={(e) => onChange?.({ ...value, [part]: e.target.value })}
        />
      ))}
    </Flex>
  );
}
