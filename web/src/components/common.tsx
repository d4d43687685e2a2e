/**
 * Small shared pieces: error notices, copy buttons, status badges, an unavailable app's remedy.
 * @module
 */
import { useState, type ReactNode } from "react";
import { ApiError } from "../api.js";
import { useSession } from "../session.js";

/** Copies text; falls back to a selected textarea where the async clipboard is not allowed (plain http). */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }): ReactNode {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  const onClick = (): void => {
    void copyText(text).then((ok) => {
      setState(ok ? "copied" : "failed");
      window.setTimeout(() => setState("idle"), 2000);
    });
  };
  return (
    <button type="button" className="button small" onClick={onClick}>
      {state === "copied" ? "Copied" : state === "failed" ? "Select and copy" : label}
      <span className="visually-hidden" aria-live="polite">
        {state === "copied" ? "Copied to the clipboard" : ""}
      </span>
    </button>
  );
}

export function ErrorNotice({ error, onRetry }: { error: Error; onRetry?: () => void }): ReactNode {
  const { signOut } = useSession();
  const unauthorized = error instanceof ApiError && error.status === 401;
  const forbidden = error instanceof ApiError && error.status === 403;
  return (
    <div className="notice error" role="alert">
      <p>
        {unauthorized ? "The server refused this key (revoked or wrong). " : forbidden ? "This needs an admin key. " : ""}
        {error.message}
      </p>
      {unauthorized ? (
        <button type="button" className="button" onClick={signOut}>
          Sign in again
        </button>
      ) : onRetry ? (
        <button type="button" className="button" onClick={onRetry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}

const STATE_LABELS: Record<string, string> = {
  QUEUED: "Queued",
  RUNNING: "Running",
  SUCCEEDED: "Succeeded",
  FAILED: "Failed",
  CANCELLED: "Cancelled",
};

export function StateBadge({ state }: { state: string }): ReactNode {
  return <span className={`badge state-${state.toLowerCase()}`}>{STATE_LABELS[state] ?? state}</span>;
}

export function Loading({ what }: { what: string }): ReactNode {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

/**
 * The command that makes an unavailable app runnable. Remedies name paths (text-to-image's
 * `--data-dir`) that no space breaks, so it wraps anywhere rather than run out of its card; it
 * also sits above a gallery card's link overlay, so that it can be selected and copied.
 */
export function Remedy({ remedy }: { remedy: string }): ReactNode {
  return (
    <code className="remedy" data-testid="remedy">
      {remedy}
    </code>
  );
}
