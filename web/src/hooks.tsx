/**
 * Data loading shared by the pages: one async call tied to a component's life, and the app list,
 * loaded once per session.
 * @module
 */
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import type { ModelEntry } from "./api.js";
import { useSession } from "./session.js";

export interface AsyncState<T> {
  data: T | null;
  error: Error | null;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `deps` change; a newer run supersedes an older one still in flight. */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): AsyncState<T> {
  const [state, setState] = useState<{ data: T | null; error: Error | null; loading: boolean }>({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    loadRef.current(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ data, error: null, loading: false });
      },
      (err: unknown) => {
        if (!controller.signal.aborted) setState((s) => ({ data: s.data, error: err instanceof Error ? err : new Error(String(err)), loading: false }));
      },
    );
    return () => controller.abort();
    // The caller lists what `load` depends on; `load` itself is read through a ref.
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

const ModelsContext = createContext<AsyncState<ModelEntry[]> | null>(null);

export function ModelsProvider({ children }: { children: ReactNode }): ReactNode {
  const { session } = useSession();
  const state = useAsync(async () => (session ? session.api.models() : []), [session]);
  return <ModelsContext.Provider value={state}>{children}</ModelsContext.Provider>;
}

export function useModels(): AsyncState<ModelEntry[]> {
  const value = useContext(ModelsContext);
  if (!value) throw new Error("useModels outside ModelsProvider");
  return value;
}

/** Calls `fn` every `ms` while `enabled`. */
export function useInterval(fn: () => void, ms: number, enabled = true): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (!enabled) return undefined;
    const id = window.setInterval(() => ref.current(), ms);
    return () => window.clearInterval(id);
  }, [ms, enabled]);
}

/** Sets the document title for a page. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Darkroom` : "Darkroom";
  }, [title]);
}
