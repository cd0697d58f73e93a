// Home: approvals waiting for my decision.
import { List, Typography } from "antd";
import { Link } from "react-router-dom";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import { api, unwrap } from "../api/client";
import { HomeCard } from "./HomeCard";
import { recordPath } from "../approvals/approvals";

export function MyApprovals() {
  const { t } = useTranslation();
  const approvals = useQuery({
    queryKey: ["approvals", "mine"],
    queryFn: async () => unwrap(await api.GET("/approvals", { params: { query: { mine: true, limit: 100 } } })).items,
  });
  const rows = (approvals.data ?? []).slice(0, 5);
  return (
    <HomeCard
      title={t("home.approvals", { count: approvals.data?.length ?? 0 })}
      more="/approvals"
      testId="home-approvals"
      loading={approvals.isLoading}
      error={approvals.error}
      retry={() => void approvals.refetch()}
      empty={rows.length === 0 ? t("home.noApprovals") : null}
    >
      <List
        size="small"
        dataSource={rows}
        renderItem={(a) => (
          <List.Item extra={<Typography.Text type="secondary">{dayjs(a.created_at).format(t("format.dateTime"))}</Typography.Text>}>
            <Link to={recordPath(a.object, a.record_id)}>{a.title}</Link>
          </List.Item>
        )}
      />
    </HomeCard>
  );
}
