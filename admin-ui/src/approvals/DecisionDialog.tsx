// Approve or reject with an optional comment (a rejection asks for the reason).
import { useState } from "react";
import { Alert, Input, Modal } from "antd";
import { useTranslation } from "react-i18next";
import type { UseMutationResult } from "@tanstack/react-query";

export type Decision = "approve" | "reject";

interface Props {
  decision: Decision | null;
  title: string;
  onClose: () => void;
  decide: UseMutationResult<unknown, Error, { decision: Decision; comment: string }>;
}

export function DecisionDialog({ decision, title, onClose, decide }: Props) {
  const { t } = useTranslation();
  const [comment, setComment] = useState("");
  return (
    <Modal
      open={decision !== null}
      title={t(decision === "reject" ? "approvals.rejectTitle" : "approvals.approveTitle", { title })}
      okText={t(decision === "reject" ? "approvals.reject" : "approvals.approve")}
      okButtonProps={{ danger: decision === "reject", "data-testid": "decision-confirm" } as never}
      cancelText={t("common.cancel")}
      confirmLoading={decide.isPending}
      onCancel={onClose}
      onOk={async () => {
        if (!decision) return;
        try {
          await decide.mutateAsync({ decision, comment });
          setComment("");
          onClose();
        } catch {
          // Shown below.
        }
      }}
      destroyOnHidden
    >
      <Input.TextArea
        value={comment}
        onChange={(e) => setComment(e.target.value)}
        autoSize={{ minRows: 3 }}
        aria-label={t("approvals.comment")}
        placeholder={t(decision === "reject" ? "approvals.reasonHint" : "approvals.commentHint")}
        data-testid="decision-comment"
      />
      {decide.isError && <Alert type="error" showIcon message={decide.error.message} style={{ marginTop: 8 }} />}
    </Modal>
  );
}
