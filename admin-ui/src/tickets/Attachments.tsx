// A ticket's files: the list with downloads (served as files, never rendered inline) and an
// upload with a progress bar; the server checks size, type and content and its refusal is shown.
import { useState } from "react";
import { Alert, App, Button, Card, List, Progress, Typography, Upload } from "antd";
import { PaperClipOutlined, UploadOutlined } from "@ant-design/icons";
import { useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import type { Schemas } from "../api/client";
import { uploadWithProgress } from "./upload";

type Attachment = Schemas["AttachmentOut"];

/** 1536 → "1.5 KB". */
export function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function Attachments({ ticketId, attachments }: { ticketId: string; attachments: Attachment[] }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const queries = useQueryClient();
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);

  const upload = async (file: File) => {
    const form = new FormData();
    form.append("file", file, file.name);
    setError(null);
    setProgress(0);
    try {
      await uploadWithProgress<Attachment>(`/api/v1/tickets/${ticketId}/attachments`, form, setProgress);
      message.success(t("ticket.uploaded", { name: file.name }));
      await queries.invalidateQueries({ queryKey: ["ticket", ticketId, "attachments"] });
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setProgress(null);
    }
  };

  return (
    <Card size="small" title={t("ticket.attachments")} data-testid="attachments">
      <List
        size="small"
        dataSource={attachments}
        locale={{ emptyText: t("ticket.noAttachments") }}
        renderItem={(a) => (
          <List.Item>
            <Typography.Text ellipsis style={{ maxWidth: "70%" }}>
              <PaperClipOutlined aria-hidden />{" "}
              <a href={a.download_url} download={a.file_name} data-testid="attachment-link">
                {a.file_name}
              </a>
            </Typography.Text>
            <Typography.Text type="secondary">{sizeText(a.size_bytes)}</Typography.Text>
          </List.Item>
        )}
      />
      {progress !== null && <Progress percent={progress} size="small" data-testid="upload-progress" />}
      {error && <Alert type="error" showIcon message={error} style={{ marginTop: 8 }} />}
      <Upload
        showUploadList={false}
        customRequest={({ file }) => void upload(file as File)}
        disabled={progress !== null}
      >
        <Button icon={<UploadOutlined />} style={{ marginTop: 8 }} data-testid="attachment-upload" loading={progress !== null}>
          {t("ticket.upload")}
        </Button>
      </Upload>
    </Card>
  );
}
