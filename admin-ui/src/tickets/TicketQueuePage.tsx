// Tickets (/tickets?queue=mine): the queues as tabs, each a list of open tickets with the SLA
// countdown of its most urgent clock; cards at phone width; cursor paging with "load more".
import { Link, useSearchParams } from "react-router-dom";
import { useInfiniteQuery } from "@tanstack/react-query";
import { Alert, Button, Card, Empty, Flex, Grid, List, Skeleton, Table, Tabs, Tag, Typography } from "antd";
import type { ColumnsType } from "antd/es/table";
import { PlusOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";
import { PageHeader } from "../layout/PageHeader";
import { useSession } from "../session/session";
import { useUserNames } from "../records/useUsers";
import { useObject } from "../records/useObject";
import { isQueue, QUEUES, queueQuery, type Queue } from "./queues";
import { nextClock } from "./sla";
import { SlaTag } from "./SlaTag";
import { useNow, useWorkflow } from "./useTickets";
import { openStates, stateColor, stateLabel } from "./workflow";
import type { Ticket } from "./ticket";

const PAGE = 50;

export default function TicketQueuePage() {
  const { t, i18n } = useTranslation();
  const [params, setParams] = useSearchParams();
  const queue: Queue = isQueue(params.get("queue")) ? (params.get("queue") as Queue) : "mine";
  const { me } = useSession();
  const workflow = useWorkflow();
  const now = useNow();
  const phone = !Grid.useBreakpoint().md;
  const users = useUserNames();
  const { meta, option } = useObject("tickets");
  const priority = meta?.fields.find((f) => f.key === "priority");
  const ctx = {
    userId: me?.user?.id ?? "",
    teamIds: me?.user?.team_ids ?? [],
    openStates: workflow.data ? openStates(workflow.data) : [],
    // Whole minutes: the query key stays the same while the page is open.
    now: new Date(Math.floor(now / 600_000) * 600_000),
  };
  const first = queueQuery(queue, ctx);
  const pages = useInfiniteQuery({
    queryKey: ["records", "tickets", "queue", queue, first],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) =>
      unwrap(
        await api.GET("/records/{object}", {
          params: { path: { object: "tickets" } },
          querySerializer: () => queueQuery(queue, ctx, { cursor: pageParam, limit: PAGE }) ?? "",
        }),
      ),
    getNextPageParam: (last) => last.next_cursor,
    enabled: !!workflow.data && first !== null,
  });
  const rows = (pages.data?.pages ?? []).flatMap((p) => p.items as Ticket[]);
  const statusTag = (s: string) => <Tag color={stateColor(workflow.data, s)}>{stateLabel(workflow.data, s, i18n.language)}</Tag>;
  const priorityText = (p: string | null | undefined) => (p && priority ? option(priority, p) : (p ?? "—"));
  const columns: ColumnsType<Ticket> = [
    { key: "number", title: t("tickets.number"), width: 110, render: (_, r) => <Link to={`/tickets/${r.id}`}>{r.number}</Link> },
    { key: "subject", title: t("fields.subject"), render: (_, r) => <Link to={`/tickets/${r.id}`}>{r.subject}</Link> },
    { key: "status", title: t("fields.status"), width: 110, render: (_, r) => statusTag(r.status) },
    { key: "priority", title: t("fields.priority"), width: 90, render: (_, r) => priorityText(r.priority) },
    { key: "assignee", title: t("fields.assignee_id"), width: 120, render: (_, r) => (r.assignee_id ? (users.get(r.assignee_id) ?? "—") : <Typography.Text type="secondary">{t("tickets.unassigned")}</Typography.Text>) },
    { key: "sla", title: t("tickets.sla"), width: 190, render: (_, r) => <SlaTag clock={nextClock(r, now)} testId="queue-sla" /> },
  ];

  const body = () => {
    if (first === null) return <Empty description={t("tickets.noTeam")} />;
    if (pages.isError) return <Alert type="error" showIcon message={(pages.error as Error).message} action={<Button onClick={() => void pages.refetch()}>{t("error.retry")}</Button>} />;
    if (pages.isLoading || workflow.isLoading) return <Skeleton active />;
    if (rows.length === 0) return <Empty description={t(`tickets.empty.${queue}`)} />;
    if (phone) {
      return (
        <List
          data-testid="ticket-cards"
          dataSource={rows}
          renderItem={(r) => (
            <Card size="small" style={{ marginBottom: 8 }}>
              <Link to={`/tickets/${r.id}`} className="crm-card-link">
                <Typography.Text strong>{r.number} · {r.subject}</Typography.Text>
              </Link>
              <Flex wrap="wrap" gap={4} className="crm-card-row">
                {statusTag(r.status)}
                <Tag>{priorityText(r.priority)}</Tag>
                <SlaTag clock={nextClock(r, now)} />
              </Flex>
            </Card>
          )}
        />
      );
    }
    return <Table<Ticket> rowKey="id" size="middle" columns={columns} dataSource={rows} pagination={false} data-testid="ticket-table" sticky />;
  };

  return (
    <>
      <PageHeader
        title={t("nav.tickets")}
        crumbs={[{ title: t("nav.tickets") }]}
        extra={
          <Link to="/records/tickets/new">
            <Button type="primary" icon={<PlusOutlined />} data-testid="ticket-new">
              {t("tickets.new")}
            </Button>
          </Link>
        }
      />
      <Tabs
        activeKey={queue}
        onChange={(k) => setParams({ queue: k }, { replace: false })}
        items={QUEUES.map((q) => ({ key: q, label: t(`tickets.queue.${q}`) }))}
      />
      {body()}
      {pages.hasNextPage && (
        <Flex justify="center" style={{ marginTop: 12 }}>
          <Button onClick={() => void pages.fetchNextPage()} loading={pages.isFetchingNextPage}>
            {t("records.loadMore")}
          </Button>
        </Flex>
      )}
    </>
  );
}
