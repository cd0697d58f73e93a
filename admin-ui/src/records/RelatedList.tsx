// The records of another object that point to this one (a customer's contacts, a policy's
// claims): a compact table, a page at a time, each row opening its record.
import { Button, Flex, Table } from "antd";
import { Link } from "react-router-dom";
import { useInfiniteQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";
import { FieldValue } from "./FieldValue";
import { recordTitle, valueOf } from "./form";
import { listColumns, type FieldMeta, type ObjectMeta } from "./list";

type Row = Record<string, unknown>;

interface Props {
  parent: ObjectMeta;
  id: string;
  child: ObjectMeta;
  /** The child's relation field pointing here, when it has several. */
  via?: string;
  label: (f: FieldMeta) => string;
  option: (f: FieldMeta, v: string) => string;
}

/** Objects with a relation field pointing to `parent`, each with that field. */
export function pointingTo(objects: readonly ObjectMeta[], parent: string): { child: ObjectMeta; via: FieldMeta }[] {
  return objects.flatMap((o) =>
    o.fields.filter((f) => f.type === "relation" && f.target === parent).map((via) => ({ child: o, via })),
  );
}

export function RelatedList({ parent, id, child, via, label, option }: Props) {
  const { t } = useTranslation();
  const pages = useInfiniteQuery({
    queryKey: ["records", parent.key, id, "related", child.key, via],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) => {
      const query = new URLSearchParams({ limit: "20" });
      if (via) query.set("via", via);
      if (pageParam) query.set("cursor", pageParam);
      return unwrap(
        await api.GET("/records/{object}/{id}/related/{related}", {
          params: { path: { object: parent.key, id, related: child.key } },
          querySerializer: () => query.toString(),
        }),
      );
    },
    getNextPageParam: (last) => last.next_cursor,
  });
  const fields = listColumns(child, 4).filter((f) => !(f.type === "relation" && f.target === parent.key));
  const rows = pages.data?.pages.flatMap((p) => p.items as Row[]) ?? [];
  return (
    <>
      {pages.error && <div role="alert">{pages.error.message}</div>}
      <Table<Row>
        size="small"
        rowKey={(r) => String(r.id)}
        dataSource={rows}
        loading={pages.isLoading}
        pagination={false}
        scroll={{ x: "max-content" }}
        columns={fields.map((f, i) => ({
          key: f.key,
          title: label(f),
          render: (_: unknown, r: Row) =>
            i === 0 ? (
              <Link to={`/records/${child.key}/${String(r.id)}`}>{recordTitle(r)}</Link>
            ) : (
              <FieldValue field={f} value={valueOf(r, f, child)} optionLabel={option} />
            ),
        }))}
        locale={{ emptyText: t("detail.noRelated") }}
      />
      {pages.hasNextPage && (
        <Flex justify="center" style={{ marginTop: 8 }}>
          <Button size="small" onClick={() => void pages.fetchNextPage()} loading={pages.isFetchingNextPage}>
            {t("records.loadMore")}
          </Button>
        </Flex>
      )}
    </>
  );
}
