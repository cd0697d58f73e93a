// A ticket's SLA clocks as the workspace shows them: time left to the first response and to
// resolution, coloured green → orange (under 25% of the target left) → red (breached), paused
// while the ticket waits on the customer, and "met" once the target was reached. The due
// times come from the server, already counted in business time; this only compares them with
// the wall clock.

export type SlaTone = "ok" | "warning" | "breached" | "paused" | "met" | "missed" | "none";

export interface SlaClock {
  tone: SlaTone;
  /** Milliseconds left (negative: overdue); null when there is no running target. */
  leftMs: number | null;
}

/** Under this share of the whole target left, a clock turns orange. */
export const WARNING_SHARE = 0.25;

const time = (iso: string | null | undefined): number | null => {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
};

export interface ClockInput {
  /** When the target is due. */
  due: string | null | undefined;
  /** When the clock started (the ticket's creation). */
  start: string | null | undefined;
  /** When the target was reached (first reply, resolution). */
  doneAt: string | null | undefined;
  /** Set while the SLA is paused. */
  pausedAt: string | null | undefined;
  now: number;
}

export function slaClock({ due, start, doneAt, pausedAt, now }: ClockInput): SlaClock {
  const dueT = time(due);
  if (dueT === null) return { tone: "none", leftMs: null };
  const doneT = time(doneAt);
  if (doneT !== null) return { tone: doneT <= dueT ? "met" : "missed", leftMs: null };
  const pausedT = time(pausedAt);
  if (pausedT !== null) return { tone: "paused", leftMs: dueT - pausedT };
  const left = dueT - now;
  if (left <= 0) return { tone: "breached", leftMs: left };
  const startT = time(start);
  const total = startT === null ? null : dueT - startT;
  if (total !== null && total > 0 && left / total < WARNING_SHARE) return { tone: "warning", leftMs: left };
  return { tone: "ok", leftMs: left };
}

/** The ticket fields the clocks read (a ticket record has them all). */
export interface SlaFields {
  created_at?: string | null;
  first_response_due_at?: string | null;
  first_responded_at?: string | null;
  resolution_due_at?: string | null;
  resolved_at?: string | null;
  sla_paused_at?: string | null;
}

export function ticketClocks(ticket: SlaFields, now: number): { firstResponse: SlaClock; resolution: SlaClock } {
  const common = { start: ticket.created_at, pausedAt: ticket.sla_paused_at, now };
  return {
    firstResponse: slaClock({ ...common, due: ticket.first_response_due_at, doneAt: ticket.first_responded_at }),
    resolution: slaClock({ ...common, due: ticket.resolution_due_at, doneAt: ticket.resolved_at }),
  };
}

/** The clock that matters most now: a breached one, else the running one with the least time left. */
export function nextClock(ticket: SlaFields, now: number): SlaClock {
  const { firstResponse, resolution } = ticketClocks(ticket, now);
  const running = [firstResponse, resolution].filter((c) => c.leftMs !== null && c.tone !== "paused");
  if (running.length > 0) return running.reduce((a, b) => ((a.leftMs ?? 0) <= (b.leftMs ?? 0) ? a : b));
  if (firstResponse.tone === "paused" || resolution.tone === "paused") return { tone: "paused", leftMs: null };
  return resolution.tone !== "none" ? resolution : firstResponse;
}

/** Sorts tickets by the time left on their most urgent clock (no running clock: last). */
export function bySlaDue<T extends SlaFields>(tickets: readonly T[], now: number): T[] {
  const key = (t: T) => nextClock(t, now).leftMs ?? Number.POSITIVE_INFINITY;
  return [...tickets].sort((a, b) => key(a) - key(b));
}

/** Which parts a duration reads in: days and hours, hours and minutes, or minutes. */
export type DurationShape = "dh" | "hm" | "m";

/** Puts a duration's parts into words (the locale files' `sla.duration.*`). */
export type DurationWords = (shape: DurationShape, parts: { d: number; h: number; m: number }) => string;

/** 93 minutes → "1h 33m" (the two largest parts; under a minute reads as 0m; sign dropped). */
export function formatDuration(ms: number, words: DurationWords): string {
  const minutes = Math.floor(Math.abs(ms) / 60_000);
  const parts = { d: Math.floor(minutes / 1440), h: Math.floor((minutes % 1440) / 60), m: minutes % 60 };
  return words(parts.d > 0 ? "dh" : parts.h > 0 ? "hm" : "m", parts);
}

/** Ant Design tag colours per tone (UI.md: green, orange, red; paused grey). */
export const TONE_COLOR: Record<SlaTone, string> = {
  ok: "green",
  warning: "orange",
  breached: "red",
  paused: "default",
  met: "green",
  missed: "red",
  none: "default",
};
