// The generic create/edit form (/records/:object/new, /records/:object/:id/edit), generated
// from the object's field metadata. An edit sends only the changed fields with If-Match (the
// ETag it loaded); the API's 422 messages go under the fields they name, a 409 duplicate
// links to the record that already exists, a 412 says someone else changed the record.
import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { Alert, Button, Card, Flex, Form, Skeleton, Space } from "antd";
import { useTranslation } from "react-i18next";
import { api, ApiProblem, etagOf, unwrap } from "../api/client";
import { PageHeader } from "../layout/PageHeader";
import { controlOf, duplicateOf, fieldMessages, fieldPath, formFields, initialValues, recordTitle, requestBody, type Control } from "../records/form";
import { useObject } from "../records/useObject";
import { FieldInput } from "../records/FieldInput";

type Json = Record<string, unknown>;

interface Notice {
  summary: string;
  duplicate: string | null;
  stale: boolean;
}

export default function RecordFormPage() {
  const { t } = useTranslation();
  const { object = "", id } = useParams();
  const navigate = useNavigate();
  const queries = useQueryClient();
  const view = useObject(object);
  const { meta, title, label, option } = view;
  const [form] = Form.useForm<Json>();
  const [notice, setNotice] = useState<Notice | null>(null);
  const [saving, setSaving] = useState(false);
  const editing = id !== undefined;
  const loaded = useQuery({
    queryKey: ["records", object, id, "edit"],
    queryFn: async () => {
      const result = await api.GET("/records/{object}/{id}", { params: { path: { object, id: id ?? "" } } });
      return { record: unwrap(result) as Json, etag: etagOf(result) };
    },
    enabled: editing && !!meta,
    // The form keeps what it loaded: a refetch would reset what the user typed.
    staleTime: Infinity,
    gcTime: 0,
  });

  if (view.loading || loaded.isLoading) return <Skeleton active />;
  const failure = view.error ?? loaded.error;
  if (!meta || (editing && !loaded.data)) {
    return <Alert type="error" showIcon message={failure instanceof Error ? failure.message : t("records.noSuchObject", { object })} />;
  }
  const before = loaded.data?.record ?? null;
  const name = before ? recordTitle(before) : "";

  const save = async (allowDuplicate = false) => {
    let values: Json;
    try {
      values = await form.validateFields();
    } catch {
      return;
    }
    setSaving(true);
    setNotice(null);
    const body = requestBody(meta, values, before);
    try {
      const saved = editing
        ? unwrap(
            await api.PATCH("/records/{object}/{id}", {
              params: { path: { object, id }, header: { "If-Match": loaded.data?.etag } },
              body,
            }),
          )
        : unwrap(
            await api.POST("/records/{object}", {
              params: { path: { object }, query: { allow_duplicate: allowDuplicate || undefined } },
              body,
            }),
          );
      await queries.invalidateQueries({ queryKey: ["records", object] });
      navigate(`/records/${object}/${String((saved as Json).id)}`);
    } catch (e) {
      const messages = fieldMessages(e, meta);
      form.setFields(messages.fields.map((f) => ({ name: f.name, errors: f.errors })));
      setNotice({
        summary: messages.summary,
        duplicate: duplicateOf(e),
        stale: e instanceof ApiProblem && e.problem.status === 412,
      });
    } finally {
      setSaving(false);
    }
  };

  const pageTitle = editing ? t("form.editTitle", { name }) : t("form.newTitle", { object: title });
  const crumbs = [{ title: t("nav.home"), to: "/" }, { title, to: `/records/${object}` }];
  if (editing) crumbs.push({ title: name, to: `/records/${object}/${id}` });
  return (
    <>
      <PageHeader title={pageTitle} crumbs={[...crumbs, { title: editing ? t("detail.edit") : t("records.new") }]} />
      {notice && (
        <Alert
          type={notice.duplicate ? "warning" : "error"}
          showIcon
          style={{ marginBottom: 16 }}
          data-testid="form-problem"
          message={notice.duplicate ? t("form.duplicate") : notice.stale ? t("form.stale") : notice.summary}
          description={notice.duplicate || notice.stale ? notice.summary : undefined}
          action={
            notice.duplicate ? (
              <Space direction="vertical">
                <Link to={`/records/${object}/${notice.duplicate}`} data-testid="duplicate-link">
                  {t("form.openExisting")}
                </Link>
                <Button size="small" onClick={() => void save(true)}>
                  {t("form.createAnyway")}
                </Button>
              </Space>
            ) : notice.stale ? (
              <Button size="small" onClick={() => window.location.reload()}>
                {t("form.reload")}
              </Button>
            ) : undefined
          }
        />
      )}
      <Card>
        <Form
          key={`${object}-${id ?? "new"}`}
          form={form}
          layout="vertical"
          initialValues={initialValues(meta, before)}
          onFinish={() => void save()}
          noValidate
          className="crm-record-form"
          data-testid="record-form"
        >
          {formFields(meta).map((f) => {
            const control = controlOf(f) as Control;
            return (
              <Form.Item
                key={f.key}
                name={fieldPath(f, meta)}
                label={label(f)}
                required={f.required}
                rules={f.required ? [{ required: true, message: t("form.required", { field: label(f) }) }] : []}
                className={control === "textarea" || control === "address" ? "crm-wide" : undefined}
              >
                <FieldInput field={f} control={control} option={option} />
              </Form.Item>
            );
          })}
          <Flex gap={8} className="crm-wide">
            <Button type="primary" htmlType="submit" loading={saving} data-testid="record-save">
              {t("common.save")}
            </Button>
            <Button onClick={() => navigate(-1)}>{t("common.cancel")}</Button>
          </Flex>
        </Form>
      </Card>
    </>
  );
}
