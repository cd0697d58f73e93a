// One SLA clock as a tag: colour and an icon for its state, and always the time left (or
// overdue) in words — colour is never the only signal.
import { Tag, Tooltip } from "antd";
import {
  CheckCircleOutlined,
  ClockCircleOutlined,
  ExclamationCircleOutlined,
  PauseCircleOutlined,
  WarningOutlined,
} from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { formatDuration, TONE_COLOR, type SlaClock } from "./sla";
import { useDurationWords } from "./useTickets";

const ICONS = {
  ok: <ClockCircleOutlined />,
  warning: <WarningOutlined />,
  breached: <ExclamationCircleOutlined />,
  paused: <PauseCircleOutlined />,
  met: <CheckCircleOutlined />,
  missed: <ExclamationCircleOutlined />,
  none: null,
};

export function SlaTag({ clock, label, testId }: { clock: SlaClock; label?: string; testId?: string }) {
  const { t } = useTranslation();
  const words = useDurationWords();
  const time = clock.leftMs === null ? "" : formatDuration(clock.leftMs, words);
  const text = {
    ok: t("sla.left", { time }),
    warning: t("sla.left", { time }),
    breached: t("sla.overdue", { time }),
    paused: clock.leftMs === null ? t("sla.paused") : t("sla.pausedLeft", { time }),
    met: t("sla.met"),
    missed: t("sla.missed"),
    none: t("sla.none"),
  }[clock.tone];
  const tag = (
    <Tag color={TONE_COLOR[clock.tone]} icon={ICONS[clock.tone]} data-testid={testId} data-tone={clock.tone}>
      {label ? `${label} · ${text}` : text}
    </Tag>
  );
  return clock.tone === "warning" ? <Tooltip title={t("sla.warningHint")}>{tag}</Tooltip> : tag;
}
