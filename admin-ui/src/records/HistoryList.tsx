// A record's change history, newest first, a page at a time: who did what, and each changed
// field as "before → after" in the field's own words.
import { Button, Empty, Flex, Skeleton, Timeline, Typography } from "antd";
import { useInfiniteQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import { api, unwrap } from "../api/client";
import { cellText, type FieldMeta, type ObjectMeta } from "./list";
import { useCellFormat } from "./FieldValue";
import { useUserNames } from "./useUsers";

interface Props {
  object: ObjectMeta;
  id: string;
  label: (f: FieldMeta) => string;
}

type Change = { before?: unknown; after?: unknown };

/** The changes of one entry as [field key, change] pairs. */
export function changesOf(raw: unknown): [string, Change][] {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return [];
  return Object.entries(raw as Record<string, unknown>).map(([k, v]) => [
    k,
    v && typeof v === "object" ? (v as Change) : { after: v },
  ]);
}

export function HistoryList({ object, id, label }: Props) {
  const { t } = useTranslation();
  const fmt = useCellFormat();
  const users = useUserNames();
  const pages = useInfiniteQuery({
    queryKey: ["records", object.key, id, "history"],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) =>
      unwrap(
        await api.GET("/records/{object}/{id}/history", {
          params: { path: { object: object.key, id }, query: { cursor: pageParam, limit: 20 } },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor,
  });
  if (pages.isLoading) return <Skeleton active />;
  if (pages.error) return <Typography.Text type="danger">{pages.error.message}</Typography.Text>;
  const entries = pages.data?.pages.flatMap((p) => p.items) ?? [];
  if (entries.length === 0) return <Empty description={t("history.empty")} />;
  const fieldOf = (key: string) => object.fields.find((f) => f.key === key.replace(/^custom\./, "").replace(/^cf_/, ""));
  const text = (key: string, v: unknown) => {
    const f = fieldOf(key);
    return (f ? cellText(v, f, fmt) : v === null || v === undefined ? "" : JSON.stringify(v)) || "—";
  };
  const actions = ["created", "updated", "deleted", "restored", "merged", "purged"];
  return (
    <>
      <Timeline
        data-testid="history"
        items={entries.map((e) => ({
          key: e.id,
          children: (
            <>
              <Typography.Text strong>
                {actions.includes(e.action) ? t(`history.action.${e.action}`) : e.action}
              </Typography.Text>{" "}
              <Typography.Text type="secondary">
                {dayjs(e.at).format(t("format.dateTime"))} · {e.actor_id ? (users.get(e.actor_id) ?? e.actor_kind) : e.actor_kind}
              </Typography.Text>
              {e.action === "updated" &&
                changesOf(e.changes).map(([key, c]) => (
                  <div key={key} className="crm-change">
                    {fieldOf(key) ? label(fieldOf(key) as FieldMeta) : key}: {text(key, c.before)} → {text(key, c.after)}
                  </div>
                ))}
            </>
          ),
        }))}
      />
      {pages.hasNextPage && (
        <Flex justify="center">
          <Button onClick={() => void pages.fetchNextPage()} loading={pages.isFetchingNextPage}>
            {t("records.loadMore")}
          </Button>
        </Flex>
      )}
    </>
  );
}
