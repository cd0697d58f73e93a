// The ticket queues (mine, my team, unassigned, breaching soon, all) as the list API's query
// strings: open tickets only (states of the `open` category), most urgent first.

export const QUEUES = ["mine", "team", "unassigned", "breaching", "all"] as const;
export type Queue = (typeof QUEUES)[number];

export function isQueue(raw: string | null): raw is Queue {
  return raw !== null && (QUEUES as readonly string[]).includes(raw);
}

/** "Breaching soon": resolution due within this many hours (or already overdue). */
export const BREACHING_HOURS = 4;

export interface QueueContext {
  userId: string;
  teamIds: readonly string[];
  /** Keys of the open states (workflow category `open`). */
  openStates: readonly string[];
  now: Date;
}

/**
 * The query string of a queue's list, or null when the queue cannot have tickets (my team
 * for someone in no team).
 */
export function queueQuery(queue: Queue, ctx: QueueContext, extra: { cursor?: string; limit?: number } = {}): string | null {
  const q = new URLSearchParams();
  if (queue !== "all" && ctx.openStates.length > 0) q.set("filter[status][in]", ctx.openStates.join(","));
  switch (queue) {
    case "mine":
      q.set("filter[assignee_id][eq]", ctx.userId);
      q.set("sort", "resolution_due_at");
      break;
    case "team":
      if (ctx.teamIds.length === 0) return null;
      q.set("filter[team_id][in]", ctx.teamIds.join(","));
      q.set("sort", "resolution_due_at");
      break;
    case "unassigned":
      q.set("filter[assignee_id][is_null]", "true");
      q.set("sort", "resolution_due_at");
      break;
    case "breaching":
      q.set("filter[sla_paused_at][is_null]", "true");
      q.set("filter[resolution_due_at][lt]", new Date(ctx.now.getTime() + BREACHING_HOURS * 3_600_000).toISOString());
      q.set("sort", "resolution_due_at");
      break;
    case "all":
      q.set("sort", "-created_at");
      break;
  }
  if (extra.cursor) q.set("cursor", extra.cursor);
  if (extra.limit) q.set("limit", String(extra.limit));
  return q.toString();
}
