// Pickers for fields that point somewhere: a user (owner, assignee) and a record of another
// object (a relation), both searched on the server as the user types.
import { useState } from "react";
import { Select } from "antd";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";
import { apiQuery } from "./filters";
import { recordTitle } from "./form";
import { useUsers } from "./useUsers";

interface PickerProps {
  value?: string | null;
  onChange?: (value: string | null) => void;
  id?: string;
  "aria-label"?: string;
  style?: React.CSSProperties;
}

export function UserPicker({ value, onChange, ...rest }: PickerProps) {
  const { t } = useTranslation();
  const [q, setQ] = useState("");
  const users = useUsers(q);
  return (
    <Select
      {...rest}
      showSearch
      allowClear
      filterOption={false}
      onSearch={setQ}
      value={value ?? undefined}
      onChange={(v: string | undefined) => onChange?.(v ?? null)}
      loading={users.isFetching}
      placeholder={t("pickers.user")}
      notFoundContent={users.isError ? t("pickers.noUsers") : undefined}
      options={(users.data ?? []).map((u) => ({ value: u.id, label: `${u.name} · ${u.email}` }))}
    />
  );
}

type Json = Record<string, unknown>;

/** A record of `target`, found by the object's `q` search. */
export function RecordPicker({ target, value, onChange, ...rest }: PickerProps & { target: string }) {
  const { t } = useTranslation();
  const [q, setQ] = useState("");
  const found = useQuery({
    queryKey: ["records", target, "pick", q],
    queryFn: async () =>
      unwrap(
        await api.GET("/records/{object}", {
          params: { path: { object: target } },
          querySerializer: () => apiQuery(new URLSearchParams(q ? { q } : {}), { limit: 20 }),
        }),
      ).items as Json[],
    staleTime: 10_000,
  });
  // The chosen record's name, when it is not among the search results.
  const current = useQuery({
    queryKey: ["records", target, value],
    queryFn: async () =>
      unwrap(await api.GET("/records/{object}/{id}", { params: { path: { object: target, id: value ?? "" } } })) as Json,
    enabled: !!value && !(found.data ?? []).some((r) => r.id === value),
    staleTime: 60_000,
  });
  const options = (found.data ?? []).map((r) => ({ value: String(r.id), label: recordTitle(r) }));
  if (value && current.data && !options.some((o) => o.value === value)) {
    options.unshift({ value, label: recordTitle(current.data) });
  }
  return (
    <Select
      {...rest}
      showSearch
      allowClear
      filterOption={false}
      onSearch={setQ}
      value={value ?? undefined}
      onChange={(v: string | undefined) => onChange?.(v ?? null)}
      loading={found.isFetching}
      placeholder={t("pickers.record")}
      options={options}
    />
  );
}
