/**
 * A few lines of client-side routing over the History API. Routes are one path segment deep
 * (`/app?id=owner/alias`): deeper paths belong to the server's realtime route
 * (`/{owner}/{alias}/realtime`), and the server serves the page only for these.
 * @module
 */
import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent, type ReactNode } from "react";

const listeners = new Set<() => void>();

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener("popstate", listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("popstate", listener);
  };
}

const snapshot = (): string => window.location.pathname + window.location.search;

export function navigate(href: string, options: { replace?: boolean } = {}): void {
  if (options.replace) window.history.replaceState(null, "", href);
  else window.history.pushState(null, "", href);
  for (const l of listeners) l();
}

export interface Location {
  path: string;
  query: URLSearchParams;
}

export function useLocation(): Location {
  const href = useSyncExternalStore(subscribe, snapshot);
  const url = new URL(href, "http://x");
  return { path: url.pathname.replace(/\/+$/, "") || "/", query: url.searchParams };
}

export function Link({ href, children, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string; children: ReactNode }): ReactNode {
  const onClick = (e: MouseEvent<HTMLAnchorElement>): void => {
    // Let the browser open new tabs and windows as usual.
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
    window.scrollTo(0, 0);
  };
  return (
    <a href={href} onClick={onClick} {...rest}>
      {children}
    </a>
  );
}
