// The generic record list of any object (/records/:object): filters, search and sort kept in
// the address (so back returns to the same list), chosen columns, a total count, cursor
// paging with "load more" (one page per request), bulk actions, and cards at phone width.
import { useMemo, useState } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router-dom";
import { useInfiniteQuery, useQuery, useQueryClient } from "@tanstack/react-query";
import { Alert, Button, Empty, Flex, Grid, Input, Skeleton, Table, Typography } from "antd";
import type { ColumnsType } from "antd/es/table";
import { PlusOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";
import { PageHeader } from "../layout/PageHeader";
import { apiQuery, isSortable, queryName, readFilters, readSort, sortParam, writeFilters } from "../records/filters";
import { expandable, valueOf } from "../records/form";
import { useObject } from "../records/useObject";
import { FilterBar } from "../records/FilterBar";
import { ColumnChooser, useColumns } from "../records/ColumnChooser";
import { BulkActions } from "../records/BulkActions";
import { FieldValue } from "../records/FieldValue";
import { RecordCards } from "../records/RecordCards";

const PAGE = 50;
type Row = Record<string, unknown>;

export default function RecordListPage() {
  const { t, i18n } = useTranslation();
  const { object = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const navigate = useNavigate();
  const queries = useQueryClient();
  const phone = !Grid.useBreakpoint().md;
  const view = useObject(object);
  const { meta, title, label, option } = view;
  const { columns: shown, set: setColumns } = useColumns(meta);
  const [selected, setSelected] = useState<string[]>([]);
  const filters = readFilters(params);
  const sort = readSort(params.get("sort"));
  const q = params.get("q") ?? "";
  const relations = meta ? expandable(shown, meta) : [];
  const search = apiQuery(params);

  const count = useQuery({
    queryKey: ["records", object, "count", search],
    queryFn: async () =>
      unwrap(await api.GET("/records/{object}/count", { params: { path: { object } }, querySerializer: () => search })),
    enabled: !!meta,
  });
  const pages = useInfiniteQuery({
    queryKey: ["records", object, "list", search, relations.join(",")],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) => {
      const extra = relations.length > 0 ? `&expand=${encodeURIComponent(relations.join(","))}` : "";
      return unwrap(
        await api.GET("/records/{object}", {
          params: { path: { object } },
          querySerializer: () => apiQuery(params, { cursor: pageParam, limit: PAGE }) + extra,
        }),
      );
    },
    getNextPageParam: (last) => last.next_cursor,
    enabled: !!meta,
  });

  const update = (next: URLSearchParams) => {
    setSelected([]);
    setParams(next, { replace: true });
  };
  const columns: ColumnsType<Row> = useMemo(() => {
    if (!meta) return [];
    return shown.map((f, i) => {
      const name = queryName(f, meta.builtin);
      // The first column links to the record, so the keyboard reaches it too.
      const linked = i === 0 && f.type !== "relation" && f.type !== "url";
      return {
        key: f.key,
        title: label(f),
        ellipsis: true,
        sorter: isSortable(f),
        sortOrder: sort?.field === name ? (sort.desc ? "descend" : "ascend") : null,
        onHeaderCell: () => ({ "data-testid": `col-${f.key}` }) as React.HTMLAttributes<HTMLElement>,
        render: (_: unknown, row: Row) => {
          const value = (
            <FieldValue field={f} value={valueOf(row, f, meta)} expanded={(row.expanded as Row | undefined)?.[name]} optionLabel={option} />
          );
          return linked ? <Link to={`/records/${meta.key}/${String(row.id)}`}>{value}</Link> : value;
        },
      };
    });
  }, [meta, shown, sort, label, option]);

  if (view.loading) return <Skeleton active />;
  const failure = view.error ?? count.error ?? pages.error;
  if (!meta) {
    return failure ? (
      <Alert type="error" showIcon message={failure instanceof Error ? failure.message : String(failure)} />
    ) : (
      <Empty description={t("records.noSuchObject", { object })} />
    );
  }
  const rows = pages.data?.pages.flatMap((p) => p.items as Row[]) ?? [];
  const filtered = q !== "" || filters.length > 0;
  const newButton = (
    <Link to={`/records/${object}/new`}>
      <Button type="primary" icon={<PlusOutlined />} data-testid="record-new">
        {t("records.new")}
      </Button>
    </Link>
  );
  const empty = (
    <Empty description={filtered ? t("records.noMatch") : t("records.empty", { object: title })}>
      {!filtered && newButton}
    </Empty>
  );

  return (
    <>
      <PageHeader title={title} crumbs={[{ title: t("nav.home"), to: "/" }, { title }]} extra={newButton} />
      <Flex justify="space-between" align="center" wrap="wrap" gap={8} style={{ marginBottom: 12 }}>
        <Input.Search
          key={q}
          allowClear
          defaultValue={q}
          placeholder={t("records.search")}
          aria-label={t("records.search")}
          style={{ maxWidth: 320 }}
          onSearch={(value) => {
            const next = new URLSearchParams(params);
            if (value.trim()) next.set("q", value.trim());
            else next.delete("q");
            update(next);
          }}
        />
        <Flex align="center" gap={12}>
          <Typography.Text type="secondary" data-testid="record-count">
            {count.data ? t("records.total", { formatted: count.data.count.toLocaleString(i18n.language) }) : ""}
          </Typography.Text>
          {!phone && <ColumnChooser object={meta} columns={shown} label={label} onChange={setColumns} />}
        </Flex>
      </Flex>
      <div style={{ marginBottom: 12 }}>
        <FilterBar
          object={meta}
          filters={filters}
          unmasked={view.unmasked}
          label={label}
          option={option}
          onChange={(next) => update(writeFilters(params, next))}
        />
      </div>
      {failure !== null && (
        <Alert type="error" showIcon style={{ marginBottom: 12 }} message={failure instanceof Error ? failure.message : String(failure)} />
      )}
      {selected.length > 0 && (
        <BulkActions
          object={meta}
          title={title}
          ids={selected}
          onDone={() => {
            setSelected([]);
            void queries.invalidateQueries({ queryKey: ["records", object] });
          }}
        />
      )}
      {phone ? (
        <RecordCards object={meta} rows={rows} loading={pages.isLoading} empty={empty} label={label} option={option} />
      ) : (
        <Table<Row>
          rowKey={(r) => String(r.id)}
          columns={columns}
          dataSource={rows}
          loading={pages.isLoading}
          pagination={false}
          sticky
          scroll={{ x: "max-content" }}
          rowSelection={{ selectedRowKeys: selected, onChange: (keys) => setSelected(keys.map(String)) }}
          onRow={(r) => ({
            onClick: (e) => {
              // The checkbox column selects; the rest of the row opens the record.
              if ((e.target as HTMLElement).closest(".ant-table-selection-column, a")) return;
              navigate(`/records/${object}/${String(r.id)}`);
            },
            style: { cursor: "pointer" },
          })}
          onChange={(_p, _f, sorter) => {
            const s = Array.isArray(sorter) ? sorter[0] : sorter;
            const field = meta.fields.find((f) => f.key === s?.columnKey);
            if (!field) return;
            const next = new URLSearchParams(params);
            const order = s?.order ? { field: queryName(field, meta.builtin), desc: s.order === "descend" } : null;
            const value = sortParam(order);
            if (value) next.set("sort", value);
            else next.delete("sort");
            update(next);
          }}
          showSorterTooltip={false}
          locale={{ emptyText: empty }}
        />
      )}
      {pages.hasNextPage && (
        <Flex justify="center" style={{ marginTop: 12 }}>
          <Button onClick={() => void pages.fetchNextPage()} loading={pages.isFetchingNextPage} data-testid="load-more">
            {t("records.loadMore")}
          </Button>
        </Flex>
      )}
    </>
  );
}
