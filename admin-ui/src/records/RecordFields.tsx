// A record's fields laid out from its object's metadata: the built-in ones first, the
// company's own (custom) fields in their own group, each in the user's language.
import { Card, Descriptions } from "antd";
import { useTranslation } from "react-i18next";
import { FieldValue } from "./FieldValue";
import { fieldPath, formFields, valueOf } from "./form";
import type { FieldMeta, ObjectMeta } from "./list";

type Json = Record<string, unknown>;

interface Props {
  object: ObjectMeta;
  record: Json;
  label: (f: FieldMeta) => string;
  option: (f: FieldMeta, v: string) => string;
}

/** Fields shown on the detail page: the form's, plus read-only ones (roll-ups). */
function shownFields(object: ObjectMeta): FieldMeta[] {
  const editable = new Set(formFields(object).map((f) => f.key));
  return [...object.fields]
    .filter((f) => editable.has(f.key) || f.type === "rollup")
    .sort((a, b) => a.position - b.position);
}

export function RecordFields({ object, record, label, option }: Props) {
  const { t } = useTranslation();
  const fields = shownFields(object);
  const expanded = (record.expanded ?? {}) as Json;
  const item = (f: FieldMeta) => ({
    key: f.key,
    label: label(f),
    span: f.type === "long_text" || f.type === "address" ? ("filled" as const) : 1,
    children: (
      <span data-testid={`field-${f.key}`}>
        <FieldValue field={f} value={valueOf(record, f, object)} expanded={expanded[fieldPath(f, object).join(".")] ?? expanded[f.key]} optionLabel={option} />
      </span>
    ),
  });
  // A custom object's fields are all the company's own: one group.
  const builtin = object.builtin ? fields.filter((f) => f.builtin) : fields;
  const custom = object.builtin ? fields.filter((f) => !f.builtin) : [];
  return (
    <>
      <Descriptions column={{ xs: 1, md: 2 }} size="small" bordered items={builtin.map(item)} />
      {custom.length > 0 && (
        <Card size="small" title={t("detail.customFields")} style={{ marginTop: 16 }} data-testid="custom-fields">
          <Descriptions column={{ xs: 1, md: 2 }} size="small" items={custom.map(item)} />
        </Card>
      )}
    </>
  );
}
