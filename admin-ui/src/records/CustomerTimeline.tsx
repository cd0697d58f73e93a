// A customer's merged timeline (GET /customers/{id}/timeline): activities, tasks, tickets,
// opportunity stage moves and the customer's own changes, newest first, a page at a time.
import { Button, Card, Empty, Flex, Skeleton, Timeline, Typography } from "antd";
import { Link } from "react-router-dom";
import { useInfiniteQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import dayjs from "dayjs";
import { api, unwrap, type Schemas } from "../api/client";

type Entry = Schemas["TimelineEntryOut"];
type Json = Record<string, unknown>;

const COLOURS: Record<string, string> = { activity: "blue", task: "orange", ticket: "red", stage_change: "green", history: "gray" };
const OBJECTS: Record<string, string> = { activity: "activities", task: "tasks", ticket: "tickets" };
const KINDS = ["activity", "task", "ticket", "stage_change", "history"];

/** The line an entry reads as: its subject, title, ticket number or stage move. */
export function timelineText(e: Pick<Entry, "kind" | "data">): string {
  const d = (e.data ?? {}) as Json;
  const str = (k: string) => (typeof d[k] === "string" ? (d[k] as string) : "");
  switch (e.kind) {
    case "ticket":
      return [str("number"), str("subject")].filter(Boolean).join(" ");
    case "task":
      return str("title");
    case "stage_change":
      return `${str("name")}: ${str("from") || "—"} → ${str("to")}`;
    case "history":
      return str("action");
    default:
      return str("subject") || str("kind");
  }
}

export function CustomerTimeline({ id }: { id: string }) {
  const { t } = useTranslation();
  const pages = useInfiniteQuery({
    queryKey: ["records", "customers", id, "timeline"],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) =>
      unwrap(await api.GET("/customers/{id}/timeline", { params: { path: { id }, query: { cursor: pageParam, limit: 20 } } })),
    getNextPageParam: (last) => last.next_cursor,
  });
  const entries = pages.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Card size="small" title={t("detail.timeline")} data-testid="timeline">
      {pages.isLoading && <Skeleton active />}
      {pages.error && <Typography.Text type="danger">{pages.error.message}</Typography.Text>}
      {!pages.isLoading && entries.length === 0 && <Empty description={t("detail.timelineEmpty")} />}
      <Timeline
        items={entries.map((e) => {
          const object = OBJECTS[e.kind];
          const text = e.kind === "history" ? t(`history.action.${timelineText(e)}`, { defaultValue: timelineText(e) }) : timelineText(e);
          return {
            key: `${e.kind}-${e.id}`,
            color: COLOURS[e.kind] ?? "gray",
            children: (
              <>
                <Typography.Text type="secondary">
                  {KINDS.includes(e.kind) ? t(`timeline.${e.kind}`) : e.kind} · {dayjs(e.at).format(t("format.dateTime"))}
                </Typography.Text>
                <div>{object ? <Link to={`/records/${object}/${e.id}`}>{text}</Link> : text}</div>
              </>
            ),
          };
        })}
      />
      {pages.hasNextPage && (
        <Flex justify="center">
          <Button size="small" onClick={() => void pages.fetchNextPage()} loading={pages.isFetchingNextPage}>
            {t("records.loadMore")}
          </Button>
        </Flex>
      )}
    </Card>
  );
}
