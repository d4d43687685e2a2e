/**
 * Who is signed in. The key is kept in sessionStorage only: it survives a reload of this tab and is
 * gone when the tab closes, and other tabs and later visits never see it. It is never shown whole.
 *
 * Why not a short-lived token (`POST /rest/tokens`): tokens cannot reach the admin routes
 * (`/v1/keys`, `/v1/ops`), and minting a new one needs the key anyway, so the key would have to
 * be kept regardless.
 * @module
 */
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import { Api, ApiError } from "./api.js";
import { maskKey } from "./lib/format.js";

const STORAGE_KEY = "darkroom.key";
const SCOPE_KEY = "darkroom.scope";

export type Scope = "admin" | "api";

export interface Session {
  api: Api;
  keyId: string;
  maskedKey: string;
  scope: Scope;
}

interface SessionContextValue {
  session: Session | null;
  signIn: (key: string) => Promise<void>;
  signOut: () => void;
}

const SessionContext = createContext<SessionContextValue | null>(null);

function read(name: string): string | null {
  try {
    return window.sessionStorage.getItem(name);
  } catch {
    return null;
  }
}

function makeSession(key: string, scope: Scope): Session {
  const id = key.slice(0, key.indexOf(":"));
  return { api: new Api(key), keyId: id, maskedKey: maskKey(key), scope };
}

/** Checks a key against the server: 401 means wrong, 403 on the admin list means an api key. */
async function verify(key: string): Promise<Scope> {
  const api = new Api(key);
  const res = await api.raw("GET", "/v1/keys");
  if (res.ok) return "admin";
  if (res.status === 403) return "api";
  throw new ApiError(res.status, res.body);
}

export function SessionProvider({ children }: { children: ReactNode }): ReactNode {
  const [session, setSession] = useState<Session | null>(() => {
    const key = read(STORAGE_KEY);
    const scope = read(SCOPE_KEY);
    return key && key.includes(":") ? makeSession(key, scope === "admin" ? "admin" : "api") : null;
  });

  const signIn = useCallback(async (raw: string) => {
    const key = raw.trim();
    if (!/^[^:\s]+:\S+$/.test(key)) throw new Error("A key looks like id:secret");
    const scope = await verify(key);
    try {
      window.sessionStorage.setItem(STORAGE_KEY, key);
      window.sessionStorage.setItem(SCOPE_KEY, scope);
    } catch {
      // Storage may be off (private modes): the session then lasts until the page is reloaded.
    }
    setSession(makeSession(key, scope));
  }, []);

  const signOut = useCallback(() => {
    try {
      window.sessionStorage.removeItem(STORAGE_KEY);
      window.sessionStorage.removeItem(SCOPE_KEY);
    } catch {
      // nothing stored
    }
    setSession(null);
  }, []);

  const value = useMemo(() => ({ session, signIn, signOut }), [session, signIn, signOut]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionContextValue {
  const value = useContext(SessionContext);
  if (!value) throw new Error("useSession outside SessionProvider");
  return value;
}

/** The signed-in API client; pages that call it are only rendered for a session. */
export function useApi(): Api {
  const { session } = useSession();
  if (!session) throw new Error("Not signed in");
  return session.api;
}
