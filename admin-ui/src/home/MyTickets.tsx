// Home: my open tickets, the most urgent SLA first, each with its countdown.
import { List, Typography } from "antd";
import { Link } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { listRecords } from "./listRecords";
import { HomeCard } from "./HomeCard";
import { myTicketsQuery } from "./home";
import { bySlaDue, nextClock } from "../tickets/sla";
import { SlaTag } from "../tickets/SlaTag";
import { useWorkflow } from "../tickets/useTickets";
import { openStates } from "../tickets/workflow";
import type { Ticket } from "../tickets/ticket";

export function MyTickets({ userId, now }: { userId: string; now: number }) {
  const { t } = useTranslation();
  const workflow = useWorkflow();
  const states = workflow.data ? openStates(workflow.data) : [];
  const tickets = useQuery({
    queryKey: ["records", "tickets", "home", userId, states.join(",")],
    queryFn: () => listRecords<Ticket>("tickets", myTicketsQuery(userId, states)),
    enabled: !!workflow.data,
  });
  const sorted = bySlaDue(tickets.data ?? [], now);
  return (
    <HomeCard
      title={t("home.myTickets")}
      more="/tickets?queue=mine"
      testId="home-tickets"
      loading={tickets.isLoading || workflow.isLoading}
      error={tickets.error ?? workflow.error}
      retry={() => void tickets.refetch()}
      empty={sorted.length === 0 ? t("home.noTickets") : null}
    >
      <List
        size="small"
        dataSource={sorted}
        renderItem={(tk) => (
          <List.Item extra={<SlaTag clock={nextClock(tk, now)} testId="home-ticket-sla" />}>
            <Typography.Text ellipsis style={{ maxWidth: "100%" }}>
              <Link to={`/tickets/${tk.id}`}>
                {tk.number} · {tk.subject}
              </Link>
            </Typography.Text>
          </List.Item>
        )}
      />
    </HomeCard>
  );
}
