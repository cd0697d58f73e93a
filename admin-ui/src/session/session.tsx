// Who is signed in: `GET /me` through TanStack Query. A 401 anywhere sends the user to the
// login page, which brings them back to where they were.
import { createContext, useContext, useEffect, type ReactNode } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useLocation, useNavigate } from "react-router-dom";
import { api, setToken, setUnauthorizedHandler, unwrap, type Me } from "../api/client";
import { loginPath } from "./next";

interface Session {
  me: Me | undefined;
  loading: boolean;
  error: unknown;
  retry: () => void;
  /** Starts a session from a login or sign-up answer. */
  signedIn: (token: string) => Promise<void>;
  signOut: () => Promise<void>;
}

const SessionContext = createContext<Session | null>(null);

const PUBLIC = ["/login", "/signup"];

export function SessionProvider({ children }: { children: ReactNode }) {
  const navigate = useNavigate();
  const location = useLocation();
  const queries = useQueryClient();
  const isPublic = PUBLIC.includes(location.pathname);

  useEffect(() => {
    setUnauthorizedHandler(() => {
      const here = window.location.pathname + window.location.search + window.location.hash;
      queries.setQueryData(["me"], null);
      if (!PUBLIC.includes(window.location.pathname)) navigate(loginPath(here), { replace: true });
    });
    return () => setUnauthorizedHandler(null);
  }, [navigate, queries]);

  const me = useQuery({
    queryKey: ["me"],
    queryFn: async () => unwrap(await api.GET("/me")),
    enabled: !isPublic,
    retry: false,
  });

  const value: Session = {
    me: me.data ?? undefined,
    loading: me.isLoading,
    error: me.error,
    retry: () => void me.refetch(),
    signedIn: async (token) => {
      setToken(token);
      await queries.fetchQuery({
        queryKey: ["me"],
        queryFn: async () => unwrap(await api.GET("/me")),
      });
    },
    signOut: async () => {
      await api.POST("/auth/logout");
      setToken(null);
      queries.clear();
      navigate("/login", { replace: true });
    },
  };
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}
