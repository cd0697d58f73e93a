// The right column of the ticket workspace: status with the allowed next states, the SLA
// clocks, priority, assignee and team, the customer and contact, custom fields and the
// satisfaction rating.
import { Card, Descriptions, Flex, Select, Space } from "antd";
import { useQuery, type UseMutationResult } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";
import { UserPicker } from "../records/pickers";
import { FieldValue } from "../records/FieldValue";
import type { FieldMeta, ObjectMeta } from "../records/list";
import { useSession } from "../session/session";
import { StatusButtons } from "./StatusButtons";
import { SlaTag } from "./SlaTag";
import { ticketClocks } from "./sla";
import { TicketCustomFields } from "./TicketCustomFields";
import { Satisfaction } from "./Satisfaction";
import type { TicketWorkflow } from "./workflow";
import type { Ticket } from "./ticket";

type Json = Record<string, unknown>;

interface Props {
  ticket: Ticket;
  meta: ObjectMeta;
  workflow: TicketWorkflow | undefined;
  now: number;
  label: (f: FieldMeta) => string;
  option: (f: FieldMeta, v: string) => string;
  patch: UseMutationResult<unknown, Error, Json>;
}

function useTeams() {
  const { me } = useSession();
  return useQuery({
    queryKey: ["teams"],
    queryFn: async () => unwrap(await api.GET("/teams")),
    enabled: !!me,
    staleTime: 60_000,
    retry: false,
  });
}

export function TicketSidebar({ ticket, meta, workflow, now, label, option, patch }: Props) {
  const { t } = useTranslation();
  const teams = useTeams();
  const field = (key: string) => meta.fields.find((f) => f.key === key);
  const priority = field("priority");
  const clocks = ticketClocks(ticket, now);
  const expanded = (ticket.expanded ?? {}) as Json;
  const related = (key: string) => {
    const f = field(key);
    return f ? <FieldValue field={f} value={ticket[key]} expanded={expanded[key]} optionLabel={option} /> : null;
  };
  const teamOptions = (teams.data ?? []).map((tm) => ({ value: tm.id, label: tm.name }));
  if (ticket.team_id && !teamOptions.some((o) => o.value === ticket.team_id)) {
    teamOptions.push({ value: ticket.team_id, label: ticket.team_id.slice(0, 8) });
  }

  return (
    <Flex vertical gap={12}>
      <Card size="small" title={t("fields.status")}>
        <StatusButtons workflow={workflow} status={ticket.status} move={patch} />
      </Card>
      <Card size="small" title={t("tickets.sla")} data-testid="sla">
        <Space direction="vertical" size={4}>
          <SlaTag clock={clocks.firstResponse} label={t("sla.firstResponse")} testId="sla-first-response" />
          <SlaTag clock={clocks.resolution} label={t("sla.resolution")} testId="sla-resolution" />
        </Space>
      </Card>
      <Card size="small">
        <Descriptions size="small" column={1} layout="vertical">
          <Descriptions.Item label={priority ? label(priority) : t("fields.priority")}>
            <Select
              style={{ width: "100%" }}
              value={ticket.priority ?? undefined}
              aria-label={t("fields.priority")}
              data-testid="ticket-priority"
              disabled={patch.isPending}
              onChange={(v: string) => patch.mutate({ priority: v })}
              options={(priority?.options ?? []).map((o) => ({ value: o, label: priority ? option(priority, o) : o }))}
            />
          </Descriptions.Item>
          <Descriptions.Item label={t("fields.assignee_id")}>
            <div style={{ width: "100%" }} data-testid="ticket-assignee">
              <UserPicker
                style={{ width: "100%" }}
                aria-label={t("fields.assignee_id")}
                value={ticket.assignee_id ?? null}
                onChange={(v) => patch.mutate({ assignee_id: v })}
              />
            </div>
          </Descriptions.Item>
          <Descriptions.Item label={t("fields.team_id")}>
            <Select
              style={{ width: "100%" }}
              allowClear
              aria-label={t("fields.team_id")}
              value={ticket.team_id ?? undefined}
              loading={teams.isLoading}
              notFoundContent={teams.isError ? t("ticket.noTeams") : undefined}
              onChange={(v: string | undefined) => patch.mutate({ team_id: v ?? null })}
              options={teamOptions}
            />
          </Descriptions.Item>
          <Descriptions.Item label={t("fields.customer_id")}>{related("customer_id")}</Descriptions.Item>
          <Descriptions.Item label={t("fields.contact_id")}>{related("contact_id")}</Descriptions.Item>
        </Descriptions>
      </Card>
      <TicketCustomFields meta={meta} ticket={ticket} label={label} option={option} save={patch} />
      <Satisfaction ticketId={ticket.id} />
    </Flex>
  );
}
