// Object metadata for the generic record screens: `GET /objects` once (it lists every object
// with its fields and labels), and labels in the user's language.
import { useCallback } from "react";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";
import { useSession } from "../session/session";
import { fieldLabel, objectLabel, optionLabel, type FieldMeta, type ObjectMeta } from "./list";

export function useObjects() {
  return useQuery({
    queryKey: ["objects"],
    queryFn: async () => unwrap(await api.GET("/objects")),
    staleTime: 60_000,
  });
}

export interface ObjectView {
  meta: ObjectMeta | undefined;
  loading: boolean;
  error: unknown;
  /** The object's plural label in the user's language. */
  title: string;
  label: (field: FieldMeta) => string;
  option: (field: FieldMeta, value: string) => string;
  /** Whether the user sees sensitive values unmasked. */
  unmasked: boolean;
}

export function useObject(key: string): ObjectView {
  const { t, i18n } = useTranslation();
  const { me } = useSession();
  const objects = useObjects();
  const meta = objects.data?.find((o) => o.key === key);
  const lang = i18n.language;
  const label = useCallback(
    (f: FieldMeta) => fieldLabel(f, lang, (k) => (i18n.exists(`fields.${k}`) ? t(`fields.${k}`) : undefined)),
    [lang, i18n, t],
  );
  const option = useCallback((f: FieldMeta, v: string) => optionLabel(f, v, lang), [lang]);
  return {
    meta,
    loading: objects.isLoading,
    error: objects.error,
    title: meta ? objectLabel(meta, lang) : key,
    label,
    option,
    unmasked: me?.permissions.includes("sensitive:read") ?? false,
  };
}
