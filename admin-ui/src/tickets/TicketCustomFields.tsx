// A ticket's custom fields (the company's own): shown with the generic record pieces, edited
// in a dialog built from the same field metadata as every record form.
import { useState } from "react";
import { Alert, Button, Card, Descriptions, Form, Modal } from "antd";
import { EditOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import type { UseMutationResult } from "@tanstack/react-query";
import { FieldInput } from "../records/FieldInput";
import { FieldValue } from "../records/FieldValue";
import { controlOf, fieldMessages, fieldPath, formFields, initialValues, requestBody, valueOf, type Control } from "../records/form";
import type { FieldMeta, ObjectMeta } from "../records/list";

type Json = Record<string, unknown>;

interface Props {
  meta: ObjectMeta;
  ticket: Json;
  label: (f: FieldMeta) => string;
  option: (f: FieldMeta, v: string) => string;
  save: UseMutationResult<unknown, Error, Json>;
}

export function TicketCustomFields({ meta, ticket, label, option, save }: Props) {
  const { t } = useTranslation();
  const [open, setOpen] = useState(false);
  const [form] = Form.useForm();
  // Only the company's own fields: the built-in ones have their own controls beside.
  const own: ObjectMeta = { ...meta, fields: meta.fields.filter((f) => !f.builtin) };
  const fields = formFields(own);
  if (fields.length === 0) return null;
  const problem = save.isError ? fieldMessages(save.error, own) : null;

  const submit = async (values: Json) => {
    const body = requestBody(own, values, ticket);
    if (Object.keys(body).length === 0) return setOpen(false);
    try {
      await save.mutateAsync(body);
      setOpen(false);
    } catch (e) {
      form.setFields(fieldMessages(e, own).fields);
    }
  };

  return (
    <>
      <Card
        size="small"
        title={t("detail.customFields")}
        data-testid="ticket-custom-fields"
        extra={<Button size="small" icon={<EditOutlined />} onClick={() => setOpen(true)} aria-label={t("ticket.editFields")} data-testid="custom-edit" />}
      >
      <Descriptions
        size="small"
        column={1}
        items={fields.map((f) => ({
          key: f.key,
          label: label(f),
          children: (
            <span data-testid={`field-${f.key}`}>
              <FieldValue field={f} value={valueOf(ticket, f, meta)} optionLabel={option} />
            </span>
          ),
        }))}
      />
      </Card>
      <Modal
        open={open}
        title={t("ticket.editFields")}
        onCancel={() => setOpen(false)}
        onOk={() => form.submit()}
        okText={t("common.save")}
        cancelText={t("common.cancel")}
        confirmLoading={save.isPending}
        destroyOnHidden
      >
        {problem && <Alert type="error" showIcon message={problem.summary} style={{ marginBottom: 12 }} />}
        <Form form={form} layout="vertical" initialValues={initialValues(own, ticket)} onFinish={(v: Json) => void submit(v)} preserve={false}>
          {fields.map((f) => (
            <Form.Item key={f.key} name={fieldPath(f, meta)} label={label(f)} required={f.required}>
              <FieldInput field={f} control={controlOf(f) as Control} option={option} />
            </Form.Item>
          ))}
        </Form>
      </Modal>
    </>
  );
}
