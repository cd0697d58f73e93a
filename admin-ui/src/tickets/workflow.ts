// The ticket status machine (GET /ticket-workflow): which states exist, which a ticket may move
// to from its current one, and how a state reads and is coloured. The API documents this
// document as free JSON, so it is read through `parseWorkflow` rather than a generated type.

export type StateCategory = "open" | "resolved" | "closed";

export interface TicketState {
  key: string;
  name: string;
  labels: Record<string, string>;
  sla: "counting" | "paused";
  category: StateCategory;
}

export interface TicketWorkflow {
  initial: string;
  states: TicketState[];
  transitions: Record<string, string[]>;
  types: string[];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : []);

function parseState(raw: unknown): TicketState | null {
  if (!isObject(raw) || typeof raw.key !== "string") return null;
  const labels = isObject(raw.labels)
    ? Object.fromEntries(Object.entries(raw.labels).filter((e): e is [string, string] => typeof e[1] === "string"))
    : {};
  const category = raw.category === "resolved" || raw.category === "closed" ? raw.category : "open";
  return {
    key: raw.key,
    name: typeof raw.name === "string" ? raw.name : raw.key,
    labels,
    sla: raw.sla === "paused" ? "paused" : "counting",
    category,
  };
}

/** The workflow from the API's answer; unknown parts are left out rather than trusted. */
export function parseWorkflow(raw: unknown): TicketWorkflow {
  const doc = isObject(raw) ? raw : {};
  const states = (Array.isArray(doc.states) ? doc.states : []).map(parseState).filter((s): s is TicketState => !!s);
  const transitions: Record<string, string[]> = {};
  if (isObject(doc.transitions)) for (const [from, to] of Object.entries(doc.transitions)) transitions[from] = strings(to);
  return {
    initial: typeof doc.initial === "string" ? doc.initial : (states[0]?.key ?? ""),
    states,
    transitions,
    types: strings(doc.types),
  };
}

/** The states a ticket in `from` may move to, in the workflow's order of states. */
export function allowedNext(workflow: TicketWorkflow, from: string): TicketState[] {
  const allowed = new Set(workflow.transitions[from] ?? []);
  return workflow.states.filter((s) => s.key !== from && allowed.has(s.key));
}

/** States a ticket is still being worked in (the queues show these). */
export function openStates(workflow: TicketWorkflow): string[] {
  return workflow.states.filter((s) => s.category === "open").map((s) => s.key);
}

/** A state's name in the user's language (`labels`), else its own name, else its key. */
export function stateLabel(workflow: TicketWorkflow | undefined, key: string, locale: string): string {
  const state = workflow?.states.find((s) => s.key === key);
  if (!state) return key;
  return state.labels[locale] ?? (locale.startsWith("zh") ? state.name : (state.labels.en ?? state.name));
}

/** UI.md's status colours: open blue, waiting (SLA paused) orange, resolved green, closed grey. */
export function stateColor(workflow: TicketWorkflow | undefined, key: string): string {
  const state = workflow?.states.find((s) => s.key === key);
  if (!state) return "default";
  if (state.category === "resolved") return "green";
  if (state.category === "closed") return "default";
  return state.sla === "paused" ? "orange" : "blue";
}
