// A ticket record as the workspace reads it. Records come from the generic record API (whose
// OpenAPI schema is free JSON, one shape per object and tenant), so the fields the ticket
// screens rely on are named here, all optional but the server-kept ones.
import type { SlaFields } from "./sla";

export interface Ticket extends SlaFields {
  id: string;
  number: string;
  subject: string;
  status: string;
  priority?: string | null;
  type?: string | null;
  description?: string | null;
  assignee_id?: string | null;
  team_id?: string | null;
  customer_id?: string | null;
  contact_id?: string | null;
  version?: number;
  [field: string]: unknown;
}
