// Installs (GET /plugins/installs): name, version, the enabled switch (PATCH), grants, events,
// consecutive failures and why it was turned off, and each one's runs in a drawer.
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Alert, App, Button, Empty, Skeleton, Space, Switch, Table, Tag, Typography } from "antd";
import type { TableProps } from "antd";
import { HistoryOutlined, WarningOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";
import { RunsDrawer } from "./RunsDrawer";
import type { Install } from "./plugins";

export function InstallsTable({ onAdd }: { onAdd: () => void }) {
  const { t } = useTranslation();
  const { message } = App.useApp();
  const queries = useQueryClient();
  const [runsOf, setRunsOf] = useState<Install | null>(null);
  const installs = useQuery({
    queryKey: ["plugins", "installs"],
    queryFn: async () => unwrap(await api.GET("/plugins/installs")),
  });
  const toggle = useMutation<Install, Error, { id: string; enabled: boolean }>({
    mutationFn: async ({ id, enabled }) => unwrap(await api.PATCH("/plugins/installs/{id}", { params: { path: { id } }, body: { enabled } })),
    onSuccess: (i) => {
      message.success(t(i.enabled ? "plugins.enabledOn" : "plugins.enabledOff", { name: i.name }));
      void queries.invalidateQueries({ queryKey: ["plugins", "installs"] });
    },
    onError: (e) => message.error(e.message),
  });

  const columns: TableProps<Install>["columns"] = [
    { key: "name", title: t("plugins.name"), render: (_, i) => <span className="crm-strong">{i.name}</span> },
    { key: "version", title: t("plugins.version"), render: (_, i) => `${i.version} · WIT ${i.wit_version}` },
    {
      key: "enabled",
      title: t("plugins.enabled"),
      render: (_, i) => (
        <Switch
          checked={i.enabled}
          loading={toggle.isPending && toggle.variables?.id === i.id}
          onChange={(enabled) => toggle.mutate({ id: i.id, enabled })}
          aria-label={t("plugins.enabledOf", { name: i.name })}
          data-testid="install-enabled"
        />
      ),
    },
    {
      key: "grants",
      title: t("plugins.grants"),
      render: (_, i) =>
        i.grants.length === 0 ? (
          <Typography.Text type="secondary">{t("plugins.noGrants")}</Typography.Text>
        ) : (
          <Space size={[0, 4]} wrap>
            {i.grants.map((g) => (
              <Tag key={g} color="blue">
                {g}
              </Tag>
            ))}
          </Space>
        ),
    },
    { key: "events", title: t("plugins.events"), render: (_, i) => <Typography.Text code>{i.events.join(", ") || "—"}</Typography.Text> },
    {
      key: "failures",
      title: t("plugins.failures"),
      align: "right",
      render: (_, i) => <Typography.Text type={i.consecutive_failures > 0 ? "danger" : undefined}>{i.consecutive_failures}</Typography.Text>,
    },
    {
      key: "disabled",
      title: t("plugins.disabledReason"),
      render: (_, i) =>
        i.disabled_reason ? (
          <Typography.Text type="warning">
            <WarningOutlined aria-hidden /> {i.disabled_reason}
          </Typography.Text>
        ) : (
          "—"
        ),
    },
    {
      key: "actions",
      title: t("plugins.actions"),
      render: (_, i) => (
        <Button size="small" icon={<HistoryOutlined />} onClick={() => setRunsOf(i)} data-testid="install-runs">
          {t("plugins.runs.open")}
        </Button>
      ),
    },
  ];

  if (installs.isError) {
    return <Alert type="error" showIcon message={(installs.error as Error).message} action={<Button onClick={() => void installs.refetch()}>{t("error.retry")}</Button>} />;
  }
  if (installs.isLoading) return <Skeleton active />;
  return (
    <>
      {(installs.data ?? []).length === 0 ? (
        <Empty description={t("plugins.installsEmpty")}>
          <Button type="primary" onClick={onAdd}>
            {t("plugins.packages.tab")}
          </Button>
        </Empty>
      ) : (
        <Table<Install> rowKey="id" columns={columns} dataSource={installs.data} pagination={false} scroll={{ x: "max-content" }} data-testid="plugin-installs" />
      )}
      <RunsDrawer install={runsOf} onClose={() => setRunsOf(null)} />
    </>
  );
}
