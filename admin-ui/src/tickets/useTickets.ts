// Shared ticket hooks: the status machine (asked once), a clock that ticks for countdowns, and
// the units a countdown reads in.
import { useEffect, useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";
import { parseWorkflow } from "./workflow";
import type { DurationWords } from "./sla";

export function useWorkflow() {
  return useQuery({
    queryKey: ["ticket-workflow"],
    queryFn: async () => parseWorkflow(unwrap(await api.GET("/ticket-workflow"))),
    staleTime: 5 * 60_000,
  });
}

/** The current time, updated every `everyMs` (countdowns move without a reload). */
export function useNow(everyMs = 30_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), everyMs);
    return () => window.clearInterval(timer);
  }, [everyMs]);
  return now;
}

/** A duration in the user's language ("1天2小时", "1d 2h"). */
export function useDurationWords(): DurationWords {
  const { t } = useTranslation();
  return (shape, parts) => t(`sla.duration.${shape}`, parts);
}
