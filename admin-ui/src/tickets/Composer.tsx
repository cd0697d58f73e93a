// The reply box under the conversation: a public reply (the customer sees it and is mailed)
// or an internal note (staff only), switched above the text.
import { useState } from "react";
import { Alert, App, Button, Card, Flex, Input, Segmented } from "antd";
import { LockOutlined, SendOutlined } from "@ant-design/icons";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";

export function Composer({ ticketId }: { ticketId: string }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const queries = useQueryClient();
  const [kind, setKind] = useState<"reply" | "note">("reply");
  const [body, setBody] = useState("");
  const send = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/tickets/{id}/comments", {
          params: { path: { id: ticketId } },
          body: { body, public: kind === "reply" },
        }),
      ),
    onSuccess: () => {
      setBody("");
      message.success(t(kind === "reply" ? "ticket.replySent" : "ticket.noteAdded"));
      // A first reply stops the first-response clock: the ticket changes too.
      void queries.invalidateQueries({ queryKey: ["ticket", ticketId] });
    },
  });
  const note = kind === "note";
  return (
    <Card size="small" className={note ? "crm-note" : undefined} data-testid="composer">
      <Flex vertical gap={8}>
        <Segmented
          value={kind}
          onChange={(v) => setKind(v as "reply" | "note")}
          options={[
            { value: "reply", label: t("ticket.publicReply") },
            { value: "note", label: t("ticket.internalNote"), icon: <LockOutlined /> },
          ]}
          data-testid="composer-kind"
        />
        <Input.TextArea
          value={body}
          onChange={(e) => setBody(e.target.value)}
          autoSize={{ minRows: 3, maxRows: 12 }}
          aria-label={t(note ? "ticket.notePlaceholder" : "ticket.replyPlaceholder")}
          placeholder={t(note ? "ticket.notePlaceholder" : "ticket.replyPlaceholder")}
          data-testid="composer-body"
        />
        {send.isError && <Alert type="error" showIcon message={(send.error as Error).message} />}
        <Flex justify="flex-end">
          <Button
            type="primary"
            icon={<SendOutlined />}
            disabled={body.trim() === ""}
            loading={send.isPending}
            onClick={() => send.mutate()}
            data-testid="composer-send"
          >
            {t(note ? "ticket.addNote" : "ticket.sendReply")}
          </Button>
        </Flex>
      </Flex>
    </Card>
  );
}
