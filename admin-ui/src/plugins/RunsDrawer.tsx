// An install's last runs (GET /plugins/installs/{id}/runs): outcome, trigger, duration, fuel,
// and the logs it wrote, expandable in monospace.
import { useQuery } from "@tanstack/react-query";
import { Alert, Drawer, Skeleton, Table, Tag, Typography } from "antd";
import type { TableProps } from "antd";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import { api, unwrap } from "../api/client";
import { runError, runTrigger, type Install, type Run } from "./plugins";

export function RunsDrawer({ install, onClose }: { install: Install | null; onClose: () => void }) {
  const { t } = useTranslation();
  const id = install?.id ?? "";
  const runs = useQuery({
    queryKey: ["plugins", "runs", id],
    queryFn: async () => unwrap(await api.GET("/plugins/installs/{id}/runs", { params: { path: { id }, query: { limit: 50 } } })).items,
    enabled: install !== null,
  });

  const columns: TableProps<Run>["columns"] = [
    {
      key: "outcome",
      title: t("plugins.runs.outcome"),
      render: (_, r) => {
        const error = runError(r.error);
        return r.outcome === "succeeded" ? (
          <Tag color="green">{t("plugins.runs.succeeded")}</Tag>
        ) : (
          <Tag color="red" title={error?.message}>
            {t("plugins.runs.failed")}
            {error?.code ? ` · ${error.code}` : ""}
          </Tag>
        );
      },
    },
    {
      key: "trigger",
      title: t("plugins.runs.trigger"),
      render: (_, r) => {
        const { kind, what } = runTrigger(r.trigger);
        return (
          <>
            <Tag>{kind === "event" || kind === "rule" || kind === "request" ? t(`plugins.trigger.${kind}`) : kind || "—"}</Tag>
            <Typography.Text code>{what}</Typography.Text>
          </>
        );
      },
    },
    { key: "started", title: t("plugins.runs.startedAt"), render: (_, r) => dayjs(r.started_at).format(t("format.dateTime")) },
    { key: "duration", title: t("plugins.runs.duration"), align: "right", render: (_, r) => t("plugins.runs.ms", { ms: r.duration_ms.toFixed(1) }) },
    { key: "fuel", title: t("plugins.runs.fuel"), align: "right", render: (_, r) => r.fuel_used.toLocaleString() },
  ];

  return (
    <Drawer
      open={install !== null}
      onClose={onClose}
      width={860}
      title={t("plugins.runs.title", { name: install?.name ?? "" })}
      destroyOnHidden
    >
      {runs.isError ? (
        <Alert type="error" showIcon message={(runs.error as Error).message} />
      ) : runs.isLoading ? (
        <Skeleton active />
      ) : (
        <Table<Run>
          rowKey="id"
          size="small"
          columns={columns}
          dataSource={runs.data}
          pagination={false}
          scroll={{ x: "max-content" }}
          locale={{ emptyText: t("plugins.runs.empty") }}
          data-testid="plugin-runs"
          expandable={{
            rowExpandable: (r) => r.logs !== "" || runError(r.error) !== null,
            expandedRowRender: (r) => (
              <>
                {runError(r.error)?.message && <Alert type="error" showIcon message={runError(r.error)?.message} style={{ marginBottom: 8 }} />}
                <pre className="crm-logs">{r.logs || t("plugins.runs.noLogs")}</pre>
              </>
            ),
          }}
        />
      )}
    </Drawer>
  );
}
