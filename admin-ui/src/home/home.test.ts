import { describe, expect, it } from "vitest";
import dayjs from "dayjs";
import { dueTasksQuery, myTicketsQuery, overdueFollowUpsQuery, splitByDue } from "./home";

const now = new Date("2026-12-07T06:30:00Z");
const parsed = (s: string) => Object.fromEntries(new URLSearchParams(s));

describe("home queries", () => {
  it("ask for my open tasks due by the end of today", () => {
    const q = parsed(dueTasksQuery("u1", now));
    expect(q["filter[assignee_id][eq]"]).toBe("u1");
    expect(q["filter[done_at][is_null]"]).toBe("true");
    expect(q["filter[due_at][lt]"]).toBe(dayjs(now).add(1, "day").startOf("day").toISOString());
    expect(q.sort).toBe("due_at");
  });
  it("ask for my customers whose follow-up is overdue", () => {
    expect(parsed(overdueFollowUpsQuery("u1", now))).toEqual({
      "filter[owner_id][eq]": "u1",
      "filter[next_task_due][lt]": "2026-12-07T06:30:00.000Z",
      sort: "next_task_due",
      limit: "10",
    });
  });
  it("ask for my open tickets", () => {
    expect(parsed(myTicketsQuery("u1", ["new", "open"]))["filter[status][in]"]).toBe("new,open");
    expect(parsed(myTicketsQuery("u1", []))["filter[status][in]"]).toBeUndefined();
  });
});

describe("splitByDue", () => {
  it("separates overdue tasks from those due later today", () => {
    const tasks = [
      { id: "a", due_at: "2026-12-07T05:00:00Z" },
      { id: "b", due_at: "2026-12-07T09:00:00Z" },
      { id: "c", due_at: null },
    ];
    const { overdue, today } = splitByDue(tasks, now);
    expect(overdue.map((t) => t.id)).toEqual(["a"]);
    expect(today.map((t) => t.id)).toEqual(["b"]);
  });
});
