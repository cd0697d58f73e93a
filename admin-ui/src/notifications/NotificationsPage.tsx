// Notifications (/notifications): all or unread only, mark one or all read.
import { useState } from "react";
import { Alert, Button, Card, Segmented, Skeleton } from "antd";
import { useTranslation } from "react-i18next";
import { PageHeader } from "../layout/PageHeader";
import { NoticeList } from "./NoticeList";
import { useMarkRead, useNotifications } from "./useNotifications";

export default function NotificationsPage() {
  const { t } = useTranslation();
  const [unreadOnly, setUnreadOnly] = useState(true);
  const list = useNotifications(unreadOnly);
  const { all } = useMarkRead();
  return (
    <>
      <PageHeader
        title={t("notifications.title")}
        crumbs={[{ title: t("notifications.title") }]}
        extra={
          <Button disabled={(list.data?.unread ?? 0) === 0} loading={all.isPending} onClick={() => all.mutate()} data-testid="read-all">
            {t("notifications.markAllRead")}
          </Button>
        }
      />
      <Card>
        <Segmented
          value={unreadOnly ? "unread" : "all"}
          onChange={(v) => setUnreadOnly(v === "unread")}
          options={[
            { value: "unread", label: t("notifications.unreadOnly") },
            { value: "all", label: t("notifications.all") },
          ]}
          style={{ marginBottom: 12 }}
        />
        {list.isError ? (
          <Alert type="error" showIcon message={(list.error as Error).message} />
        ) : list.isLoading ? (
          <Skeleton active />
        ) : (
          <NoticeList items={list.data?.items ?? []} />
        )}
      </Card>
    </>
  );
}
