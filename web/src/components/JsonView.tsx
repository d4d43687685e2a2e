/**
 * Raw JSON, pretty-printed, with long data: URIs shortened on screen (the copy keeps them whole).
 * @module
 */
import type { ReactNode } from "react";
import { formatBytes } from "../lib/format.js";
import { CopyButton } from "./common.js";

const LONG = 300;

/** JSON for reading: `data:` URIs and very long strings are cut, with their size noted. */
export function displayJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => (typeof v === "string" && v.length > LONG ? `${v.slice(0, v.startsWith("data:") ? 60 : 200)}… (${formatBytes(v.length)})` : v),
    2,
  ) ?? "null";
}

export function JsonView({ value, label }: { value: unknown; label: string }): ReactNode {
  return (
    <details className="json-view" open>
      <summary>{label}</summary>
      <div className="code-actions">
        <CopyButton text={JSON.stringify(value, null, 2) ?? "null"} label="Copy JSON" />
      </div>
      <pre className="code json" tabIndex={0} aria-label={label}>
        {displayJson(value)}
      </pre>
    </details>
  );
}
