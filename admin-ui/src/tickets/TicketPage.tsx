// The ticket workspace (/tickets/:id), Zammad's shape: the conversation in the centre with the
// reply box under it, the ticket's attributes and SLA on the right (stacked at phone width).
import { useParams } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Alert, App, Button, Col, Flex, Result, Row, Skeleton, Space, Tag, Typography } from "antd";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import { api, ApiProblem, unwrap } from "../api/client";
import { PageHeader } from "../layout/PageHeader";
import { useObject } from "../records/useObject";
import { Conversation } from "./Conversation";
import { Composer } from "./Composer";
import { Attachments } from "./Attachments";
import { TicketSidebar } from "./TicketSidebar";
import { useNow, useWorkflow } from "./useTickets";
import { SlaTag } from "./SlaTag";
import { nextClock } from "./sla";
import { stateColor, stateLabel } from "./workflow";
import type { Ticket } from "./ticket";

type Json = Record<string, unknown>;

export default function TicketPage() {
  const { t, i18n } = useTranslation();
  const { id = "" } = useParams();
  const { message } = App.useApp();
  const queries = useQueryClient();
  const view = useObject("tickets");
  const workflow = useWorkflow();
  const now = useNow();
  const ticket = useQuery({
    queryKey: ["ticket", id],
    queryFn: async () =>
      unwrap(
        await api.GET("/records/{object}/{id}", {
          params: { path: { object: "tickets", id }, query: { expand: "customer_id,contact_id" } },
        }),
      ) as Ticket,
  });
  const comments = useQuery({
    queryKey: ["ticket", id, "comments"],
    queryFn: async () =>
      unwrap(await api.GET("/tickets/{id}/comments", { params: { path: { id }, query: { limit: 200 } } })).items,
  });
  const attachments = useQuery({
    queryKey: ["ticket", id, "attachments"],
    queryFn: async () =>
      unwrap(await api.GET("/tickets/{id}/attachments", { params: { path: { id }, query: { limit: 200 } } })).items,
  });
  const patch = useMutation<unknown, Error, Json>({
    mutationFn: async (body) =>
      unwrap(await api.PATCH("/records/{object}/{id}", { params: { path: { object: "tickets", id } }, body })),
    onSuccess: () => {
      message.success(t("ticket.saved"));
      void queries.invalidateQueries({ queryKey: ["ticket", id] });
      void queries.invalidateQueries({ queryKey: ["records", "tickets"] });
    },
    onError: (e) => {
      // A refused status change is shown beside the buttons; anything else here.
      if (!(e instanceof ApiProblem && e.problem.status === 409)) message.error(e.message);
    },
  });

  if (ticket.isLoading || view.loading) return <Skeleton active />;
  if (ticket.isError || !ticket.data || !view.meta) {
    return (
      <Result
        status="warning"
        title={t("ticket.loadFailed")}
        subTitle={ticket.error instanceof Error ? ticket.error.message : undefined}
        extra={<Button onClick={() => void ticket.refetch()}>{t("error.retry")}</Button>}
      />
    );
  }
  const tk = ticket.data;
  const tags = Array.isArray(tk.tags) ? tk.tags.filter((x): x is string => typeof x === "string") : [];
  return (
    <>
      <PageHeader
        title={`${tk.number} · ${tk.subject}`}
        crumbs={[{ title: t("nav.tickets"), to: "/tickets" }, { title: tk.number }]}
        extra={
          <Space wrap size={4}>
            <Tag color={stateColor(workflow.data, tk.status)}>{stateLabel(workflow.data, tk.status, i18n.language)}</Tag>
            <SlaTag clock={nextClock(tk, now)} testId="header-sla" />
          </Space>
        }
      />
      <Row gutter={[16, 16]}>
        <Col xs={24} lg={16}>
          <Flex vertical gap={12}>
            {tk.description && (
              <Alert
                type="info"
                message={
                  <Flex justify="space-between" wrap="wrap" gap={8}>
                    <Typography.Text strong>{t("fields.description")}</Typography.Text>
                    <Typography.Text type="secondary">{dayjs(tk.created_at ?? undefined).format(t("format.dateTime"))}</Typography.Text>
                  </Flex>
                }
                description={<span style={{ whiteSpace: "pre-wrap" }}>{tk.description}</span>}
              />
            )}
            {comments.isError ? (
              <Alert type="error" showIcon message={(comments.error as Error).message} />
            ) : comments.isLoading ? (
              <Skeleton active />
            ) : (
              <Conversation comments={comments.data ?? []} attachments={attachments.data ?? []} />
            )}
            <Composer ticketId={id} />
            <Attachments ticketId={id} attachments={(attachments.data ?? []).filter((a) => !a.comment_id)} />
            {tags.length > 0 && (
              <div>
                {tags.map((tag) => (
                  <Tag key={tag}>{tag}</Tag>
                ))}
              </div>
            )}
          </Flex>
        </Col>
        <Col xs={24} lg={8}>
          <TicketSidebar
            ticket={tk}
            meta={view.meta}
            workflow={workflow.data}
            now={now}
            label={view.label}
            option={view.option}
            patch={patch}
          />
        </Col>
      </Row>
    </>
  );
}
