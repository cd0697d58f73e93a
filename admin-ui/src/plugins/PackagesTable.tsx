// Uploaded packages (GET /plugins/packages): name, version, WIT version, size, the permissions
// it asks for and its endpoints, each with an Install button; the upload of a new .wasm.
import { useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { Alert, App, Button, Flex, Progress, Skeleton, Space, Table, Tag, Upload } from "antd";
import type { TableProps } from "antd";
import { UploadOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";
import { sizeText } from "../tickets/Attachments";
import { uploadWithProgress } from "../tickets/upload";
import { InstallDialog } from "./InstallDialog";
import type { Package } from "./plugins";

export function PackagesTable({ onInstalled }: { onInstalled: () => void }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const queries = useQueryClient();
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [installing, setInstalling] = useState<Package | null>(null);
  const packages = useQuery({
    queryKey: ["plugins", "packages"],
    queryFn: async () => unwrap(await api.GET("/plugins/packages")),
  });

  const upload = async (file: File) => {
    const form = new FormData();
    form.append("file", file, file.name);
    setError(null);
    setProgress(0);
    try {
      const p = await uploadWithProgress<Package>("/api/v1/plugins/packages", form, setProgress);
      message.success(t("plugins.packages.uploaded", { name: p.name, version: p.version }));
      await queries.invalidateQueries({ queryKey: ["plugins", "packages"] });
    } catch (e) {
      // 422 plugin.invalid, 409 plugin.exists, 413 plugin.too_large: the problem says why.
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setProgress(null);
    }
  };

  const columns: TableProps<Package>["columns"] = [
    { key: "name", title: t("plugins.name"), render: (_, p) => <span className="crm-strong">{p.name}</span> },
    { key: "version", title: t("plugins.version"), dataIndex: "version" },
    { key: "wit", title: t("plugins.witVersion"), dataIndex: "wit_version" },
    { key: "size", title: t("plugins.packages.size"), align: "right", render: (_, p) => sizeText(p.size) },
    {
      key: "permissions",
      title: t("plugins.packages.permissions"),
      render: (_, p) => (
        <Space size={[0, 4]} wrap>
          {p.manifest.permissions.map((perm) => (
            <Tag key={perm}>{perm}</Tag>
          ))}
        </Space>
      ),
    },
    { key: "endpoints", title: t("plugins.packages.endpoints"), align: "right", render: (_, p) => p.manifest.endpoints.length },
    {
      key: "actions",
      title: t("plugins.actions"),
      render: (_, p) => (
        <Button size="small" type="primary" onClick={() => setInstalling(p)} data-testid="package-install">
          {t("plugins.install.action")}
        </Button>
      ),
    },
  ];

  return (
    <>
      <Flex justify="flex-end" style={{ marginBottom: 12 }}>
        <Upload accept=".wasm" showUploadList={false} customRequest={({ file }) => void upload(file as File)} disabled={progress !== null}>
          <Button icon={<UploadOutlined />} loading={progress !== null} data-testid="package-upload">
            {t("plugins.packages.upload")}
          </Button>
        </Upload>
      </Flex>
      {progress !== null && <Progress percent={progress} size="small" />}
      {error && <Alert type="error" showIcon message={error} closable onClose={() => setError(null)} style={{ marginBottom: 12 }} role="alert" />}
      {packages.isError ? (
        <Alert type="error" showIcon message={(packages.error as Error).message} action={<Button onClick={() => void packages.refetch()}>{t("error.retry")}</Button>} />
      ) : packages.isLoading ? (
        <Skeleton active />
      ) : (
        <Table<Package>
          rowKey="id"
          columns={columns}
          dataSource={packages.data}
          pagination={false}
          scroll={{ x: "max-content" }}
          locale={{ emptyText: t("plugins.packages.empty") }}
          data-testid="plugin-packages"
        />
      )}
      <InstallDialog
        pkg={installing}
        onClose={() => setInstalling(null)}
        onInstalled={() => {
          message.success(t("plugins.install.done", { name: installing?.name ?? "" }));
          setInstalling(null);
          onInstalled();
        }}
      />
    </>
  );
}
