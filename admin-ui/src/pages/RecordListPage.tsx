// The generic record list of any object (/records/:object): columns from the object's
// fields, `q` search kept in the address, a total count, and cursor paging with "load more"
// (the API cannot jump to a page number).
import { useMemo } from "react";
import { useParams, useSearchParams } from "react-router-dom";
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { Alert, Button, Empty, Flex, Input, Skeleton, Table, Typography } from "antd";
import type { ColumnsType } from "antd/es/table";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";
import { PageHeader } from "../layout/PageHeader";
import { cellText, fieldLabel, listColumns, listQueryString, objectLabel } from "../records/list";

const PAGE = 50;
type Row = Record<string, unknown>;

export default function RecordListPage() {
  const { t, i18n } = useTranslation();
  const { object = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";

  const objects = useQuery({
    queryKey: ["objects"],
    queryFn: async () => unwrap(await api.GET("/objects")),
    staleTime: 60_000,
  });
  const meta = objects.data?.find((o) => o.key === object);

  const count = useQuery({
    queryKey: ["records", object, "count", q],
    queryFn: async () =>
      unwrap(
        await api.GET("/records/{object}/count", {
          params: { path: { object } },
          querySerializer: () => listQueryString({ q }),
        }),
      ),
    enabled: !!meta,
  });
  const pages = useInfiniteQuery({
    queryKey: ["records", object, "list", q],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) =>
      unwrap(
        await api.GET("/records/{object}", {
          params: { path: { object } },
          querySerializer: () => listQueryString({ q, cursor: pageParam, limit: PAGE }),
        }),
      ),
    getNextPageParam: (last) => last.next_cursor,
    enabled: !!meta,
  });

  const columns: ColumnsType<Row> = useMemo(() => {
    if (!meta) return [];
    const yesNo: [string, string] = [t("records.yes"), t("records.no")];
    return listColumns(meta).map((f) => ({
      key: f.key,
      title: fieldLabel(f, i18n.language, (k) => (i18n.exists(`fields.${k}`) ? t(`fields.${k}`) : undefined)),
      dataIndex: f.key,
      ellipsis: true,
      render: (v: unknown) => cellText(v, f, yesNo, t("format.dateTime"), i18n.language) || "—",
    }));
  }, [meta, t, i18n.language]);

  if (objects.isLoading) return <Skeleton active />;
  const failure = objects.error ?? count.error ?? pages.error;
  if (!meta) {
    return failure ? (
      <Alert type="error" showIcon message={String(failure instanceof Error ? failure.message : failure)} />
    ) : (
      <Empty description={t("records.noSuchObject", { object })} />
    );
  }
  const title = objectLabel(meta, i18n.language);
  const rows = pages.data?.pages.flatMap((p) => p.items as Row[]) ?? [];

  return (
    <>
      <PageHeader title={title} crumbs={[{ title: t("nav.home"), to: "/" }, { title }]} />
      <Flex justify="space-between" align="center" wrap="wrap" gap={8} style={{ marginBottom: 12 }}>
        <Input.Search
          allowClear
          defaultValue={q}
          placeholder={t("records.search")}
          aria-label={t("records.search")}
          style={{ maxWidth: 320 }}
          onSearch={(value) => setParams(value ? { q: value } : {}, { replace: true })}
        />
        <Typography.Text type="secondary" data-testid="record-count">
          {count.data ? t("records.total", { formatted: count.data.count.toLocaleString(i18n.language) }) : ""}
        </Typography.Text>
      </Flex>
      {failure !== null && (
        <Alert type="error" showIcon style={{ marginBottom: 12 }} message={failure instanceof Error ? failure.message : String(failure)} />
      )}
      <Table<Row>
        rowKey={(r) => String(r.id)}
        columns={columns}
        dataSource={rows}
        loading={pages.isLoading}
        pagination={false}
        sticky
        scroll={{ x: "max-content" }}
        locale={{ emptyText: <Empty description={q ? t("records.noMatch") : t("records.empty", { object: title })} /> }}
      />
      {pages.hasNextPage && (
        <Flex justify="center" style={{ marginTop: 12 }}>
          <Button onClick={() => void pages.fetchNextPage()} loading={pages.isFetchingNextPage}>
            {t("records.loadMore")}
          </Button>
        </Flex>
      )}
    </>
  );
}
