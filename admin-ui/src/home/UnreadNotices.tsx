// Home: my unread notifications (the same polled query as the bell).
import { useTranslation } from "react-i18next";
import { HomeCard } from "./HomeCard";
import { NoticeList } from "../notifications/NoticeList";
import { useUnread } from "../notifications/useNotifications";

export function UnreadNotices() {
  const { t } = useTranslation();
  const unread = useUnread();
  const items = unread.data?.items ?? [];
  return (
    <HomeCard
      title={t("home.notifications", { count: unread.data?.unread ?? 0 })}
      more="/notifications"
      testId="home-notifications"
      loading={unread.isLoading}
      error={unread.error}
      retry={() => void unread.refetch()}
      empty={items.length === 0 ? t("home.noNotifications") : null}
    >
      <NoticeList items={items} compact />
    </HomeCard>
  );
}
