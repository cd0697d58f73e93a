// The bell in the top bar: the unread count (polled), the newest unread ones in a popover,
// "mark all read" and a link to the whole list.
import { useState } from "react";
import { Link } from "react-router-dom";
import { Badge, Button, Flex, Popover } from "antd";
import { BellOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { NoticeList } from "./NoticeList";
import { useMarkRead, useUnread } from "./useNotifications";

export function NotificationBell() {
  const { t } = useTranslation();
  const [open, setOpen] = useState(false);
  const unread = useUnread();
  const { all } = useMarkRead();
  const count = unread.data?.unread ?? 0;
  const content = (
    <div style={{ width: 320, maxWidth: "80vw" }}>
      <NoticeList items={unread.data?.items ?? []} compact onOpen={() => setOpen(false)} />
      <Flex justify="space-between" style={{ marginTop: 8 }}>
        <Button size="small" disabled={count === 0} loading={all.isPending} onClick={() => all.mutate()}>
          {t("notifications.markAllRead")}
        </Button>
        <Link to="/notifications" onClick={() => setOpen(false)}>
          {t("notifications.viewAll")}
        </Link>
      </Flex>
    </div>
  );
  return (
    <Popover content={content} title={t("notifications.title")} trigger="click" open={open} onOpenChange={setOpen} placement="bottomRight">
      <Button type="text" aria-label={t("notifications.bell", { count })} data-testid="bell">
        <Badge count={count} size="small" data-testid="bell-count">
          <BellOutlined style={{ fontSize: 18 }} />
        </Badge>
      </Button>
    </Popover>
  );
}
