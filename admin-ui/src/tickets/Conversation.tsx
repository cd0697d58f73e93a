// The conversation of a ticket, oldest first: public replies on white, internal notes on pale
// yellow with a lock and the words "internal note" (colour is not the only signal).
import { Card, Empty, Flex, Space, Tag, Typography } from "antd";
import { LockOutlined, MessageOutlined, PaperClipOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import type { Schemas } from "../api/client";

type Comment = Schemas["CommentOut"];
type Attachment = Schemas["AttachmentOut"];

interface Props {
  comments: Comment[];
  /** Attachments that belong to a comment are shown under it. */
  attachments: Attachment[];
}

export function Conversation({ comments, attachments }: Props) {
  const { t } = useTranslation();
  if (comments.length === 0) return <Empty description={t("ticket.noComments")} data-testid="conversation" />;
  return (
    <Flex vertical gap={12} data-testid="conversation">
      {comments.map((c) => {
        const files = attachments.filter((a) => a.comment_id === c.id);
        const author = c.author_name ?? t(`ticket.author.${c.author_kind === "contact" ? "contact" : c.author_kind === "system" ? "system" : "user"}`);
        return (
          <Card
            key={c.id}
            size="small"
            className={c.public ? "crm-reply" : "crm-note"}
            data-testid={c.public ? "reply" : "note"}
            title={
              <Space size={8} wrap>
                {c.public ? <MessageOutlined aria-hidden /> : <LockOutlined aria-hidden />}
                <Typography.Text strong>{author}</Typography.Text>
                {c.public ? <Tag color="blue">{t("ticket.publicReply")}</Tag> : <Tag color="gold">{t("ticket.internalNote")}</Tag>}
              </Space>
            }
            extra={<Typography.Text type="secondary">{dayjs(c.created_at).format(t("format.dateTime"))}</Typography.Text>}
          >
            <Typography.Paragraph style={{ whiteSpace: "pre-wrap", marginBottom: files.length ? 8 : 0 }}>{c.body}</Typography.Paragraph>
            {files.map((a) => (
              <div key={a.id}>
                <PaperClipOutlined aria-hidden />{" "}
                <a href={a.download_url} download={a.file_name}>
                  {a.file_name}
                </a>
              </div>
            ))}
          </Card>
        );
      })}
    </Flex>
  );
}
