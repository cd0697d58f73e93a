// Home: customers I own whose next follow-up task is overdue.
import { List, Tag } from "antd";
import { Link } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import { listRecords } from "./listRecords";
import { HomeCard } from "./HomeCard";
import { overdueFollowUpsQuery } from "./home";

interface Customer {
  id: string;
  name: string;
  next_task_due?: string | null;
}

export function FollowUps({ userId, now }: { userId: string; now: number }) {
  const { t } = useTranslation();
  // To the minute: the query does not change on every tick.
  const minute = Math.floor(now / 60_000) * 60_000;
  const customers = useQuery({
    queryKey: ["records", "customers", "home", userId, minute],
    queryFn: () => listRecords<Customer>("customers", overdueFollowUpsQuery(userId, new Date(minute))),
    placeholderData: (previous) => previous,
  });
  const rows = customers.data ?? [];
  return (
    <HomeCard
      title={t("home.followUps")}
      more="/records/customers"
      testId="home-followups"
      loading={customers.isLoading}
      error={customers.error}
      retry={() => void customers.refetch()}
      empty={rows.length === 0 ? t("home.noFollowUps") : null}
    >
      <List
        size="small"
        dataSource={rows}
        renderItem={(c) => (
          <List.Item extra={<Tag color="red">{t("home.followUpDue", { time: dayjs(c.next_task_due).format(t("format.dateTime")) })}</Tag>}>
            <Link to={`/records/customers/${c.id}`}>{c.name}</Link>
          </List.Item>
        )}
      />
    </HomeCard>
  );
}
