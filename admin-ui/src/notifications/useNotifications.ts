// The signed-in user's notifications: the unread count (polled, for the bell), pages of the
// list, and marking read.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, done, unwrap, type Schemas } from "../api/client";

export type Notice = Schemas["NotificationOut"];

/** How often the bell asks for the unread count. */
export const POLL_MS = 30_000;

export function useUnread(limit = 5) {
  return useQuery({
    queryKey: ["notifications", "unread", limit],
    queryFn: async () => unwrap(await api.GET("/notifications", { params: { query: { unread: true, limit } } })),
    refetchInterval: POLL_MS,
    refetchIntervalInBackground: false,
  });
}

export function useNotifications(unreadOnly: boolean) {
  return useQuery({
    queryKey: ["notifications", "list", unreadOnly],
    queryFn: async () =>
      unwrap(await api.GET("/notifications", { params: { query: { unread: unreadOnly || undefined, limit: 100 } } })),
  });
}

export function useMarkRead() {
  const queries = useQueryClient();
  const refresh = () => void queries.invalidateQueries({ queryKey: ["notifications"] });
  const one = useMutation({
    mutationFn: async (id: number) => done(await api.POST("/notifications/{id}/read", { params: { path: { id } } })),
    onSuccess: refresh,
  });
  const all = useMutation({
    mutationFn: async () => done(await api.POST("/notifications/read-all")),
    onSuccess: refresh,
  });
  return { one, all };
}

/** Where a notification leads in the app, if it is about a record. */
export function noticePath(n: Pick<Notice, "object" | "record_id">): string | null {
  if (!n.object || !n.record_id) return null;
  return n.object === "tickets" ? `/tickets/${n.record_id}` : `/records/${n.object}/${n.record_id}`;
}
