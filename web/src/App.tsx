/**
 * The shell: skip link, header with navigation and the session, and the page for the current URL.
 * Focus moves to the new page's heading on navigation, as a screen reader user would expect.
 * @module
 */
import { lazy, Suspense, useEffect, useRef, type ReactNode } from "react";
import { Loading } from "./components/common.js";
import { ModelsProvider } from "./hooks.js";
import { AppPage } from "./pages/AppPage.js";
import { Gallery } from "./pages/Gallery.js";
import { History } from "./pages/History.js";
import { Keys } from "./pages/Keys.js";
import { Ops } from "./pages/Ops.js";
import { SignIn } from "./pages/SignIn.js";
import { Link, useLocation } from "./router.js";
import { SessionProvider, useSession } from "./session.js";

// The usage page and its chart library load on first visit: most sessions never open it.
const Usage = lazy(() => import("./pages/Usage.js").then((m) => ({ default: m.Usage })));

const NAV: readonly { href: string; label: string; adminOnly: boolean }[] = [
  { href: "/", label: "Apps", adminOnly: false },
  { href: "/history", label: "History", adminOnly: false },
  { href: "/ops", label: "Ops", adminOnly: true },
  { href: "/usage", label: "Usage", adminOnly: true },
  { href: "/keys", label: "Keys", adminOnly: true },
];

function Page(): ReactNode {
  const { path, query } = useLocation();
  const { session } = useSession();
  if (!session) return <SignIn />;
  switch (path) {
    case "/":
      return <Gallery />;
    case "/app": {
      const id = query.get("id");
      return id ? <AppPage appId={id} reopenId={query.get("request")} /> : <Gallery />;
    }
    case "/history":
      return <History />;
    case "/ops":
      return <Ops />;
    case "/keys":
      return <Keys />;
    case "/usage":
      return (
        <Suspense
          fallback={
            <div>
              <h1 tabIndex={-1}>Usage</h1>
              <Loading what="the usage page" />
            </div>
          }
        >
          <Usage />
        </Suspense>
      );
    default:
      return (
        <div>
          <h1 tabIndex={-1}>Page not found</h1>
          <p>
            <Link href="/">Back to the apps</Link>
          </p>
        </div>
      );
  }
}

function Shell(): ReactNode {
  const { session, signOut } = useSession();
  const { path, query } = useLocation();
  const mainRef = useRef<HTMLElement>(null);
  const first = useRef(true);
  const pageKey = `${path}?${path === "/app" ? (query.get("id") ?? "") : ""}|${session ? "in" : "out"}`;

  useEffect(() => {
    // The first render keeps the browser's own focus; later page changes announce the new heading.
    if (first.current) {
      first.current = false;
      return;
    }
    const timer = window.setTimeout(() => mainRef.current?.querySelector<HTMLElement>("h1")?.focus(), 0);
    return () => window.clearTimeout(timer);
  }, [pageKey]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="site-header">
        <Link href="/" className="brand">
          <span aria-hidden="true">◧</span> Darkroom
        </Link>
        {session ? (
          <nav aria-label="Main">
            <ul>
              {NAV.filter((n) => !n.adminOnly || session.scope === "admin").map((n) => (
                <li key={n.href}>
                  <Link href={n.href} aria-current={path === n.href || (n.href === "/" && path === "/app") ? "page" : undefined}>
                    {n.label}
                  </Link>
                </li>
              ))}
            </ul>
          </nav>
        ) : null}
        {session ? (
          <div className="account">
            <span className="muted small" title="The secret is never shown">
              <code aria-label={`Signed in with key ${session.keyId}`}>{session.maskedKey}</code> <span className="badge">{session.scope}</span>
            </span>
            <button type="button" className="button small" onClick={signOut}>
              Sign out
            </button>
          </div>
        ) : null}
      </header>
      <main id="main" ref={mainRef} tabIndex={-1}>
        <Page />
      </main>
    </>
  );
}

export function App(): ReactNode {
  return (
    <SessionProvider>
      <ModelsProvider>
        <Shell />
      </ModelsProvider>
    </SessionProvider>
  );
}
