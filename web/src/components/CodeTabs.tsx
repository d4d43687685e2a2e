/**
 * Code for the current input as ARIA tabs (arrow keys move between them): curl, fal's clients, and
 * where the app has an equivalent, OpenAI's and Replicate's SDKs.
 * @module
 */
import { useId, useRef, useState, type KeyboardEvent, type ReactNode } from "react";
import { openAiKindOf, snippet, type SnippetInput, type SnippetLanguage } from "../lib/snippets.js";
import { CopyButton } from "./common.js";

const TABS: { id: SnippetLanguage; label: string }[] = [
  { id: "curl", label: "curl" },
  { id: "javascript", label: "JavaScript (@fal-ai/client)" },
  { id: "python", label: "Python (fal_client)" },
];

/** A realtime endpoint has no curl form: a WebSocket in JavaScript, and Python's `fal_client.realtime`. */
const REALTIME_TABS: { id: SnippetLanguage; label: string }[] = [
  { id: "javascript", label: "JavaScript (WebSocket)" },
  { id: "python", label: "Python (fal_client.realtime)" },
];

export function CodeTabs({ input, realtime = false }: { input: SnippetInput; realtime?: boolean }): ReactNode {
  const tabs = realtime
    ? REALTIME_TABS
    : [
        ...TABS,
        ...(openAiKindOf(input.category, input.endpointId) ? [{ id: "openai" as const, label: "JavaScript (openai)" }] : []),
        ...(input.endpointId.split("/").length === 2 ? [{ id: "replicate" as const, label: "JavaScript (replicate)" }] : []),
      ];
  const [chosen, setActive] = useState<SnippetLanguage>("curl");
  const active = tabs.some((t) => t.id === chosen) ? chosen : (tabs[0]?.id ?? "javascript");
  const base = useId();
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  const code = snippet(active, input, realtime);

  const onKeyDown = (e: KeyboardEvent<HTMLButtonElement>, index: number): void => {
    const last = tabs.length - 1;
    const next = e.key === "ArrowRight" ? (index === last ? 0 : index + 1) : e.key === "ArrowLeft" ? (index === 0 ? last : index - 1) : e.key === "Home" ? 0 : e.key === "End" ? last : null;
    if (next === null) return;
    e.preventDefault();
    const tab = tabs[next];
    if (tab) setActive(tab.id);
    refs.current[next]?.focus();
  };

  return (
    <div className="code-tabs">
      <div role="tablist" aria-label="Code for this input" className="tabs">
        {tabs.map((t, i) => (
          <button
            key={t.id}
            ref={(el) => {
              refs.current[i] = el;
            }}
            type="button"
            role="tab"
            id={`${base}-tab-${t.id}`}
            aria-selected={active === t.id}
            aria-controls={`${base}-panel`}
            tabIndex={active === t.id ? 0 : -1}
            className={active === t.id ? "tab active" : "tab"}
            onClick={() => setActive(t.id)}
            onKeyDown={(e) => onKeyDown(e, i)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`${base}-panel`} aria-labelledby={`${base}-tab-${active}`} className="tab-panel">
        <div className="code-actions">
          <CopyButton text={code} label={`Copy ${active}`} />
        </div>
        <pre className="code" tabIndex={0} data-language={active}>
          <code>{code}</code>
        </pre>
      </div>
    </div>
  );
}
