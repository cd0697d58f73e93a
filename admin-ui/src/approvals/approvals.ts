// Approvals as the inbox reads them: where a record lives in the app and the status colours.
import type { Schemas } from "../api/client";

export type Approval = Schemas["ApprovalOut"];

export const APPROVAL_TABS = ["mine", "requested"] as const;
export type ApprovalTab = (typeof APPROVAL_TABS)[number];

/** The app's page of the record an approval is about (tickets have their workspace). */
export function recordPath(object: string, id: string): string {
  return object === "tickets" ? `/tickets/${id}` : `/records/${object}/${id}`;
}

export const APPROVAL_COLOR: Record<string, string> = {
  pending: "orange",
  approved: "green",
  rejected: "red",
  recalled: "default",
};

/** The approvals a user asked for, from a list that may hold others' too. */
export function requestedBy(approvals: readonly Approval[], userId: string | undefined): Approval[] {
  return userId ? approvals.filter((a) => a.requested_by === userId) : [];
}
