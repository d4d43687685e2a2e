/**
 * Small shared pieces: error notices, copy buttons, status badges, an unavailable app's remedy, the
 * filter bar's fields and the pages' tables.
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

/** A labelled control in a page's filter bar: `id` is the control's, which the label points at. */
export function FilterField({ id, label, children }: { id: string; label: string; children: ReactNode }): ReactNode {
  return (
    <div className="field">
      <label htmlFor={id} className="label">
        {label}
      </label>
      {children}
    </div>
  );
}

/** A filter bar's select: `any` is the first option, the empty value that filters nothing. */
export function SelectFilter(props: {
  id: string;
  label: string;
  value: string;
  onChange: (value: string) => void;
  any: string;
  options: readonly { value: string; label: string }[];
}): ReactNode {
  return (
    <FilterField id={props.id} label={props.label}>
      <select id={props.id} value={props.value} onChange={(e) => props.onChange(e.target.value)}>
        <option value="">{props.any}</option>
        {props.options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </FilterField>
  );
}

/**
 * A table in its own focusable region that scrolls sideways (`label` names it) and stacks into cards
 * on narrow screens; `columns` are the header cells, `children` the body rows.
 */
export function StackTable({ label, columns, children }: { label: string; columns: readonly ReactNode[]; children: ReactNode }): ReactNode {
  return (
    <div className="table-wrap" tabIndex={0} role="region" aria-label={label}>
      <table className="table stack">
        <thead>
          <tr>
            {columns.map((column, i) => (
              <th key={i} scope="col">
                {column}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}
