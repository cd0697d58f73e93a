// The approvals inbox (/approvals): pending for me (approve / reject with a comment) and
// requested by me (recall while pending).
import { useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Alert, App, Button, Card, Empty, Flex, List, Skeleton, Space, Tabs, Tag, Typography } from "antd";
import { CheckOutlined, CloseOutlined, RollbackOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import { api, unwrap } from "../api/client";
import { PageHeader } from "../layout/PageHeader";
import { useSession } from "../session/session";
import { useUserNames } from "../records/useUsers";
import { APPROVAL_COLOR, APPROVAL_TABS, recordPath, requestedBy, type Approval, type ApprovalTab } from "./approvals";
import { DecisionDialog, type Decision } from "./DecisionDialog";

export default function ApprovalsPage() {
  const { t } = useTranslation();
  const { me } = useSession();
  const { message, modal } = App.useApp();
  const queries = useQueryClient();
  const users = useUserNames();
  const [params, setParams] = useSearchParams();
  const tab: ApprovalTab = params.get("tab") === "requested" ? "requested" : "mine";
  const [deciding, setDeciding] = useState<{ approval: Approval; decision: Decision } | null>(null);

  const list = useQuery({
    queryKey: ["approvals", tab],
    queryFn: async () => {
      const page = unwrap(await api.GET("/approvals", { params: { query: { mine: tab === "mine" ? true : undefined, limit: 100 } } }));
      return tab === "mine" ? page.items : requestedBy(page.items, me?.user?.id);
    },
  });
  const refresh = () => void queries.invalidateQueries({ queryKey: ["approvals"] });
  const decide = useMutation<unknown, Error, { decision: Decision; comment: string }>({
    mutationFn: async ({ decision, comment }) => {
      const id = deciding?.approval.id ?? "";
      const body = { comment: comment.trim() || undefined };
      return decision === "approve"
        ? unwrap(await api.POST("/approvals/{id}/approve", { params: { path: { id } }, body }))
        : unwrap(await api.POST("/approvals/{id}/reject", { params: { path: { id } }, body }));
    },
    onSuccess: (_, v) => {
      message.success(t(v.decision === "approve" ? "approvals.approved" : "approvals.rejected"));
      refresh();
    },
  });
  const recall = (a: Approval) =>
    modal.confirm({
      title: t("approvals.recallTitle", { title: a.title }),
      okText: t("approvals.recall"),
      cancelText: t("common.cancel"),
      onOk: async () => {
        try {
          unwrap(await api.POST("/approvals/{id}/recall", { params: { path: { id: a.id } } }));
          message.success(t("approvals.recalled"));
          refresh();
        } catch (e) {
          message.error(e instanceof Error ? e.message : String(e));
        }
      },
    });

  const item = (a: Approval) => (
    <Card size="small" style={{ marginBottom: 8 }} data-testid="approval">
      <Flex justify="space-between" wrap="wrap" gap={8}>
        <Space direction="vertical" size={2}>
          <Link to={recordPath(a.object, a.record_id)} className="crm-strong">
            {a.title}
          </Link>
          <Space size={4} wrap>
            <Tag color={APPROVAL_COLOR[a.status] ?? "default"} data-testid="approval-status">
              {t(`approvals.status.${a.status === "approved" || a.status === "rejected" || a.status === "recalled" ? a.status : "pending"}`)}
            </Tag>
            <Typography.Text type="secondary">
              {t("approvals.requestedBy", { name: users.get(a.requested_by ?? "") ?? "—", at: dayjs(a.created_at).format(t("format.dateTime")) })}
            </Typography.Text>
          </Space>
          {a.decisions.filter((d) => d.comment).map((d) => (
            <Typography.Text key={`${d.step}-${d.user_id}`} type="secondary">
              {users.get(d.user_id) ?? "—"}: {d.comment}
            </Typography.Text>
          ))}
        </Space>
        {a.status === "pending" && (
          <Space wrap>
            {tab === "mine" ? (
              <>
                <Button type="primary" icon={<CheckOutlined />} onClick={() => setDeciding({ approval: a, decision: "approve" })} data-testid="approve">
                  {t("approvals.approve")}
                </Button>
                <Button danger icon={<CloseOutlined />} onClick={() => setDeciding({ approval: a, decision: "reject" })} data-testid="reject">
                  {t("approvals.reject")}
                </Button>
              </>
            ) : (
              <Button icon={<RollbackOutlined />} onClick={() => recall(a)} data-testid="recall">
                {t("approvals.recall")}
              </Button>
            )}
          </Space>
        )}
      </Flex>
    </Card>
  );

  return (
    <>
      <PageHeader title={t("nav.approvals")} crumbs={[{ title: t("nav.approvals") }]} />
      <Tabs activeKey={tab} onChange={(k) => setParams({ tab: k })} items={APPROVAL_TABS.map((k) => ({ key: k, label: t(`approvals.tab.${k}`) }))} />
      {list.isError ? (
        <Alert type="error" showIcon message={(list.error as Error).message} action={<Button onClick={() => void list.refetch()}>{t("error.retry")}</Button>} />
      ) : list.isLoading ? (
        <Skeleton active />
      ) : (list.data ?? []).length === 0 ? (
        <Empty description={t(`approvals.empty.${tab}`)} />
      ) : (
        <List dataSource={list.data} renderItem={item} />
      )}
      <DecisionDialog decision={deciding?.decision ?? null} title={deciding?.approval.title ?? ""} onClose={() => setDeciding(null)} decide={decide} />
    </>
  );
}
