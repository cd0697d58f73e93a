import { describe, expect, it } from "vitest";
import { bySlaDue, formatDuration, nextClock, slaClock, ticketClocks, type DurationWords } from "./sla";
import { isQueue, queueQuery, type QueueContext } from "./queues";
import { allowedNext, openStates, parseWorkflow, stateColor, stateLabel } from "./workflow";

const H = 3_600_000;
const at = (ms: number) => new Date(ms).toISOString();
const T0 = Date.parse("2026-12-07T02:00:00Z");

describe("slaClock", () => {
  const base = { start: at(T0), doneAt: null, pausedAt: null };
  it("is green with most of the target left", () => {
    expect(slaClock({ ...base, due: at(T0 + 8 * H), now: T0 + 2 * H })).toEqual({ tone: "ok", leftMs: 6 * H });
  });
  it("turns orange under a quarter left and red once due", () => {
    expect(slaClock({ ...base, due: at(T0 + 8 * H), now: T0 + 7 * H }).tone).toBe("warning");
    expect(slaClock({ ...base, due: at(T0 + 8 * H), now: T0 + 6 * H }).tone).toBe("ok");
    expect(slaClock({ ...base, due: at(T0 + 8 * H), now: T0 + 8 * H })).toEqual({ tone: "breached", leftMs: 0 });
    expect(slaClock({ ...base, due: at(T0 + 8 * H), now: T0 + 9 * H }).leftMs).toBe(-H);
  });
  it("stops while paused, keeping the time that was left", () => {
    const c = slaClock({ ...base, due: at(T0 + 8 * H), pausedAt: at(T0 + 3 * H), now: T0 + 20 * H });
    expect(c).toEqual({ tone: "paused", leftMs: 5 * H });
  });
  it("reads met or missed once reached", () => {
    expect(slaClock({ ...base, due: at(T0 + H), doneAt: at(T0 + 0.5 * H), now: T0 + 5 * H }).tone).toBe("met");
    expect(slaClock({ ...base, due: at(T0 + H), doneAt: at(T0 + 2 * H), now: T0 + 5 * H }).tone).toBe("missed");
  });
  it("has nothing to show without a target", () => {
    expect(slaClock({ ...base, due: null, now: T0 })).toEqual({ tone: "none", leftMs: null });
  });
});

describe("ticket clocks", () => {
  const ticket = {
    created_at: at(T0),
    first_response_due_at: at(T0 + H),
    resolution_due_at: at(T0 + 8 * H),
    first_responded_at: null,
    resolved_at: null,
    sla_paused_at: null,
  };
  it("pick the most urgent running clock", () => {
    expect(nextClock(ticket, T0).leftMs).toBe(H);
    const replied = { ...ticket, first_responded_at: at(T0 + 0.5 * H) };
    expect(ticketClocks(replied, T0 + H).firstResponse.tone).toBe("met");
    expect(nextClock(replied, T0 + H).leftMs).toBe(7 * H);
    expect(nextClock({ ...ticket, sla_paused_at: at(T0) }, T0).tone).toBe("paused");
  });
  it("sort tickets by the time left, those without a clock last", () => {
    const later = { ...ticket, first_response_due_at: at(T0 + 5 * H) };
    const none = { created_at: at(T0) };
    const sorted = bySlaDue([none, later, ticket], T0);
    expect(sorted).toEqual([ticket, later, none]);
  });
});

describe("formatDuration", () => {
  const zh: DurationWords = (shape, p) => ({ dh: `${p.d}天${p.h}小时`, hm: `${p.h}小时${p.m}分钟`, m: `${p.m}分钟` })[shape];
  const en: DurationWords = (shape, p) => ({ dh: `${p.d}d ${p.h}h`, hm: `${p.h}h ${p.m}m`, m: `${p.m}m` })[shape];
  it("shows the two largest parts", () => {
    expect(formatDuration(93 * 60_000, en)).toBe("1h 33m");
    expect(formatDuration((26 * 60 + 5) * 60_000, zh)).toBe("1天2小时");
    expect(formatDuration(30_000, en)).toBe("0m");
    expect(formatDuration(-45 * 60_000, en)).toBe("45m");
  });
});

describe("queueQuery", () => {
  const ctx: QueueContext = { userId: "u1", teamIds: ["t1", "t2"], openStates: ["new", "open", "pending"], now: new Date(T0) };
  const parsed = (s: string | null) => Object.fromEntries(new URLSearchParams(s ?? ""));
  it("mine: open tickets assigned to me, by resolution due", () => {
    expect(parsed(queueQuery("mine", ctx, { limit: 50 }))).toEqual({
      "filter[status][in]": "new,open,pending",
      "filter[assignee_id][eq]": "u1",
      sort: "resolution_due_at",
      limit: "50",
    });
  });
  it("my team: the teams I am in, or nothing when I am in none", () => {
    expect(parsed(queueQuery("team", ctx))["filter[team_id][in]"]).toBe("t1,t2");
    expect(queueQuery("team", { ...ctx, teamIds: [] })).toBeNull();
  });
  it("unassigned and breaching soon", () => {
    expect(parsed(queueQuery("unassigned", ctx))["filter[assignee_id][is_null]"]).toBe("true");
    const breaching = parsed(queueQuery("breaching", ctx, { cursor: "c" }));
    expect(breaching["filter[resolution_due_at][lt]"]).toBe("2026-12-07T06:00:00.000Z");
    expect(breaching["filter[sla_paused_at][is_null]"]).toBe("true");
    expect(breaching.cursor).toBe("c");
  });
  it("all: every ticket, newest first", () => {
    expect(parsed(queueQuery("all", ctx))).toEqual({ sort: "-created_at" });
  });
  it("knows its queues", () => {
    expect(isQueue("mine")).toBe(true);
    expect(isQueue("other")).toBe(false);
    expect(isQueue(null)).toBe(false);
  });
});

describe("workflow", () => {
  const wf = parseWorkflow({
    initial: "new",
    states: [
      { key: "new", name: "新建", labels: { en: "New" }, sla: "counting", category: "open" },
      { key: "pending", name: "待回复", labels: { en: "Pending" }, sla: "paused", category: "open" },
      { key: "resolved", name: "已解决", labels: { en: "Resolved" }, sla: "paused", category: "resolved" },
      { key: "closed", name: "已关闭", sla: "paused", category: "closed" },
      { name: "no key" },
    ],
    transitions: { new: ["pending", "resolved", 3], resolved: ["closed"], closed: [] },
    types: ["complaint"],
  });
  it("keeps the states it can read", () => {
    expect(wf.states.map((s) => s.key)).toEqual(["new", "pending", "resolved", "closed"]);
    expect(openStates(wf)).toEqual(["new", "pending"]);
  });
  it("offers only the allowed transitions", () => {
    expect(allowedNext(wf, "new").map((s) => s.key)).toEqual(["pending", "resolved"]);
    expect(allowedNext(wf, "closed")).toEqual([]);
    expect(allowedNext(wf, "unknown")).toEqual([]);
  });
  it("names and colours states", () => {
    expect(stateLabel(wf, "pending", "en")).toBe("Pending");
    expect(stateLabel(wf, "pending", "zh-CN")).toBe("待回复");
    expect(stateLabel(wf, "closed", "en")).toBe("已关闭");
    expect(stateLabel(wf, "gone", "en")).toBe("gone");
    expect(["new", "pending", "resolved", "closed"].map((k) => stateColor(wf, k))).toEqual(["blue", "orange", "green", "default"]);
  });
  it("survives a malformed document", () => {
    expect(parseWorkflow(null)).toEqual({ initial: "", states: [], transitions: {}, types: [] });
  });
});
