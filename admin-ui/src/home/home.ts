// What Home asks the API for: my open tasks due by the end of today, customers I own whose
// follow-up task is overdue, my open tickets; and how tasks split into overdue and today.
import dayjs from "dayjs";

export function dueTasksQuery(userId: string, now: Date, limit = 20): string {
  const q = new URLSearchParams();
  q.set("filter[assignee_id][eq]", userId);
  q.set("filter[done_at][is_null]", "true");
  q.set("filter[due_at][lt]", dayjs(now).endOf("day").add(1, "millisecond").toISOString());
  q.set("sort", "due_at");
  q.set("limit", String(limit));
  return q.toString();
}

export function overdueFollowUpsQuery(userId: string, now: Date, limit = 10): string {
  const q = new URLSearchParams();
  q.set("filter[owner_id][eq]", userId);
  q.set("filter[next_task_due][lt]", now.toISOString());
  q.set("sort", "next_task_due");
  q.set("limit", String(limit));
  return q.toString();
}

export function myTicketsQuery(userId: string, openStates: readonly string[], limit = 20): string {
  const q = new URLSearchParams();
  q.set("filter[assignee_id][eq]", userId);
  if (openStates.length > 0) q.set("filter[status][in]", openStates.join(","));
  q.set("sort", "resolution_due_at");
  q.set("limit", String(limit));
  return q.toString();
}

export interface DueTask {
  id: string;
  due_at?: string | null;
}

/** Tasks split into overdue (due before now) and due later today, each in due order. */
export function splitByDue<T extends DueTask>(tasks: readonly T[], now: Date): { overdue: T[]; today: T[] } {
  const overdue: T[] = [];
  const today: T[] = [];
  for (const task of tasks) {
    if (!task.due_at) continue;
    (Date.parse(task.due_at) < now.getTime() ? overdue : today).push(task);
  }
  return { overdue, today };
}
