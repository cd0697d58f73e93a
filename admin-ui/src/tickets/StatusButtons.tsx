// The status of a ticket and a button for each state the workflow allows next (and only
// those); the server has the last word, and its 409 is shown as it says it.
import { Alert, Button, Flex, Tag } from "antd";
import { useTranslation } from "react-i18next";
import type { UseMutationResult } from "@tanstack/react-query";
import { allowedNext, stateColor, stateLabel, type TicketWorkflow } from "./workflow";

interface Props {
  workflow: TicketWorkflow | undefined;
  status: string;
  move: UseMutationResult<unknown, Error, Record<string, unknown>>;
}

export function StatusButtons({ workflow, status, move }: Props) {
  const { t, i18n } = useTranslation();
  const next = workflow ? allowedNext(workflow, status) : [];
  const pending = move.isPending ? (move.variables?.status as string | undefined) : undefined;
  return (
    <Flex vertical gap={8}>
      <div>
        <Tag color={stateColor(workflow, status)} data-testid="ticket-status">
          {stateLabel(workflow, status, i18n.language)}
        </Tag>
      </div>
      {next.length > 0 ? (
        <Flex wrap="wrap" gap={6} role="group" aria-label={t("ticket.moveTo")} data-testid="status-buttons">
          {next.map((s) => (
            <Button
              key={s.key}
              size="small"
              loading={pending === s.key}
              disabled={move.isPending}
              onClick={() => move.mutate({ status: s.key })}
              data-testid={`status-${s.key}`}
            >
              {stateLabel(workflow, s.key, i18n.language)}
            </Button>
          ))}
        </Flex>
      ) : (
        <span className="crm-muted">{t("ticket.finalState")}</span>
      )}
      {move.isError && move.variables && "status" in move.variables && (
        <Alert type="error" showIcon message={move.error.message} data-testid="status-error" />
      )}
    </Flex>
  );
}
