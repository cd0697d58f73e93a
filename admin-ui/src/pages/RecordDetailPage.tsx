// The generic record detail (/records/:object/:id): header with the name, key badges, tags and
// the actions (edit, delete, restore after a delete); tabs with the fields laid out from
// metadata, the records of other objects pointing here, and the history; for a customer its
// merged timeline on the right.
import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { Alert, App, Button, Col, Result, Row, Skeleton, Space, Tabs } from "antd";
import { DeleteOutlined, EditOutlined, UndoOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { api, done, unwrap } from "../api/client";
import { PageHeader } from "../layout/PageHeader";
import { expandable, recordTitle, valueOf } from "../records/form";
import { objectLabel } from "../records/list";
import { useObject, useObjects } from "../records/useObject";
import { RecordFields } from "../records/RecordFields";
import { FieldValue } from "../records/FieldValue";
import { TagEditor } from "../records/TagEditor";
import { HistoryList } from "../records/HistoryList";
import { pointingTo, RelatedList } from "../records/RelatedList";
import { CustomerTimeline } from "../records/CustomerTimeline";

type Json = Record<string, unknown>;
/** Fields shown as badges beside the name when the object has them. */
const BADGES = ["level", "stage", "status", "priority", "owner_id"];

export default function RecordDetailPage() {
  const { t, i18n } = useTranslation();
  const { object = "", id = "" } = useParams();
  const navigate = useNavigate();
  const queries = useQueryClient();
  const { message, modal } = App.useApp();
  const view = useObject(object);
  const objects = useObjects();
  const { meta, title, label, option } = view;
  const [deleted, setDeleted] = useState(false);
  const expand = meta ? expandable(meta.fields, meta) : [];
  const record = useQuery({
    queryKey: ["records", object, id, expand.join(",")],
    queryFn: async () =>
      unwrap(
        await api.GET("/records/{object}/{id}", {
          params: { path: { object, id }, query: { expand: expand.length > 0 ? expand.join(",") : undefined } },
        }),
      ) as Json,
    enabled: !!meta && !deleted,
  });
  const refresh = () => void queries.invalidateQueries({ queryKey: ["records", object] });

  if (view.loading || record.isLoading) return <Skeleton active />;
  const listCrumb = { title, to: `/records/${object}` };
  if (deleted) {
    return (
      <Result
        status="success"
        title={t("detail.deleted")}
        subTitle={t("detail.deletedHint")}
        extra={[
          <Button
            key="restore"
            icon={<UndoOutlined />}
            data-testid="record-restore"
            onClick={async () => {
              try {
                unwrap(await api.POST("/records/{object}/{id}/restore", { params: { path: { object, id } } }));
                setDeleted(false);
                refresh();
              } catch (e) {
                message.error(e instanceof Error ? e.message : String(e));
              }
            }}
          >
            {t("detail.restore")}
          </Button>,
          <Link key="list" to={`/records/${object}`}>
            <Button type="primary">{t("detail.backToList", { object: title })}</Button>
          </Link>,
        ]}
      />
    );
  }
  const failure = view.error ?? record.error;
  if (!meta || !record.data) {
    return <Alert type="error" showIcon message={failure instanceof Error ? failure.message : t("records.noSuchObject", { object })} />;
  }
  const data = record.data;
  const name = recordTitle(data);
  const tags = Array.isArray(data.tags) ? (data.tags as string[]) : null;
  const badges = meta.fields.filter((f) => f.builtin && BADGES.includes(f.key) && valueOf(data, f, meta) != null);
  const related = pointingTo(objects.data ?? [], object);
  const remove = () =>
    modal.confirm({
      title: t("detail.deleteTitle", { name }),
      content: t("bulk.deleteBody"),
      okText: t("bulk.delete"),
      okButtonProps: { danger: true },
      cancelText: t("common.cancel"),
      onOk: async () => {
        done(await api.DELETE("/records/{object}/{id}", { params: { path: { object, id } } }));
        setDeleted(true);
        refresh();
      },
    });

  const tabs = [
    { key: "overview", label: t("detail.overview"), children: <RecordFields object={meta} record={data} label={label} option={option} /> },
    ...related.map(({ child, via }) => {
      const several = related.filter((r) => r.child.key === child.key).length > 1;
      return {
        key: `related-${child.key}-${via.key}`,
        label: several ? `${objectLabel(child, i18n.language)} · ${label(via)}` : objectLabel(child, i18n.language),
        children: <RelatedList parent={meta} id={id} child={child} via={several ? via.key : undefined} label={label} option={option} />,
      };
    }),
    { key: "history", label: t("detail.history"), children: <HistoryList object={meta} id={id} label={label} /> },
  ];
  const main = <Tabs items={tabs} data-testid="detail-tabs" />;

  return (
    <>
      <PageHeader
        title={name}
        crumbs={[{ title: t("nav.home"), to: "/" }, listCrumb, { title: name }]}
        extra={
          <Space wrap>
            <Button type="primary" icon={<EditOutlined />} onClick={() => navigate(`/records/${object}/${id}/edit`)} data-testid="record-edit">
              {t("detail.edit")}
            </Button>
            <Button danger icon={<DeleteOutlined />} onClick={remove} data-testid="record-delete">
              {t("bulk.delete")}
            </Button>
          </Space>
        }
      />
      <Space wrap size={[8, 8]} style={{ marginBottom: 16 }} data-testid="badges">
        {badges.map((f) => (
          <Space key={f.key} size={4}>
            <span className="crm-badge-label">{label(f)}</span>
            <FieldValue field={f} value={valueOf(data, f, meta)} optionLabel={option} />
          </Space>
        ))}
        {tags && <TagEditor object={object} id={id} tags={tags} onChange={refresh} />}
      </Space>
      {object === "customers" ? (
        <Row gutter={[16, 16]}>
          <Col xs={24} lg={16}>
            {main}
          </Col>
          <Col xs={24} lg={8}>
            <CustomerTimeline id={id} />
          </Col>
        </Row>
      ) : (
        main
      )}
    </>
  );
}
