// Notifications as a list: unread ones marked, each opening what it is about and marking
// itself read.
import { Badge, Button, List, Typography } from "antd";
import { CheckOutlined } from "@ant-design/icons";
import { useNavigate } from "react-router-dom";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import { noticePath, useMarkRead, type Notice } from "./useNotifications";

export function NoticeList({ items, compact = false, onOpen }: { items: Notice[]; compact?: boolean; onOpen?: () => void }) {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const { one } = useMarkRead();
  const open = (n: Notice) => {
    if (!n.read_at) one.mutate(n.id);
    const path = noticePath(n);
    if (path) {
      onOpen?.();
      navigate(path);
    }
  };
  return (
    <List
      size="small"
      dataSource={items}
      locale={{ emptyText: t("notifications.empty") }}
      data-testid="notice-list"
      renderItem={(n) => (
        <List.Item
          actions={
            n.read_at || compact
              ? []
              : [
                  <Button key="read" size="small" type="text" icon={<CheckOutlined />} onClick={() => one.mutate(n.id)} data-testid="notice-read">
                    {t("notifications.markRead")}
                  </Button>,
                ]
          }
        >
          <List.Item.Meta
            avatar={<Badge status={n.read_at ? "default" : "processing"} />}
            title={
              <Typography.Link onClick={() => open(n)} strong={!n.read_at}>
                {n.title}
              </Typography.Link>
            }
            description={
              <>
                {!compact && n.body && <div>{n.body}</div>}
                <Typography.Text type="secondary">{dayjs(n.created_at).format(t("format.dateTime"))}</Typography.Text>
              </>
            }
          />
        </List.Item>
      )}
    />
  );
}
