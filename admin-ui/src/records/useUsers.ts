// The company's users by id, for showing owners and picking one (`GET /users`, which needs
// `users:read`; without it ids are shown shortened and the signed-in user is still named).
import { useMemo } from "react";
import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { useSession } from "../session/session";

/** Users matching `q` (first page), for pickers and name lookups. */
export function useUsers(q = "") {
  const { me } = useSession();
  const allowed = me?.permissions.includes("users:read") || me?.permissions.includes("users:manage") || false;
  return useQuery({
    queryKey: ["users", q],
    queryFn: async () =>
      unwrap(await api.GET("/users", { params: { query: { q: q || undefined, limit: 200, status: "active" } } })).items,
    enabled: allowed,
    staleTime: 60_000,
  });
}

export function useUserNames(): Map<string, string> {
  const { me } = useSession();
  const users = useUsers();
  return useMemo(() => {
    const names = new Map((users.data ?? []).map((u) => [u.id, u.name]));
    if (me?.user) names.set(me.user.id, me.user.name);
    return names;
  }, [users.data, me]);
}
