/**
 * The workflow's document as JSON text: editable with an admin key, read-only otherwise (the
 * registry takes documents from admin keys only). A syntax error is named with its line and column,
 * and the caret can be sent there; Save registers the document with PUT, and what the registry
 * refuses comes back as problems, shown on the graph's nodes and listed by the panel.
 * @module
 */
import { useRef, type ReactNode } from "react";
import type { JsonSyntaxError } from "../lib/json-syntax.js";

export function WorkflowEditor({
  text,
  onChange,
  editable,
  syntaxError,
  saving,
  dirty,
  onSave,
  onRevert,
}: {
  text: string;
  onChange: (text: string) => void;
  editable: boolean;
  syntaxError: JsonSyntaxError | null;
  saving: boolean;
  /** The text differs from the registered document. */
  dirty: boolean;
  onSave: () => void;
  onRevert: () => void;
}): ReactNode {
  const ref = useRef<HTMLTextAreaElement>(null);
  const goTo = (offset: number): void => {
    const el = ref.current;
    if (!el) return;
    el.focus();
    el.setSelectionRange(offset, Math.min(text.length, offset + 1));
  };
  const lines = text.split("\n").length;
  return (
    <div className="wf-editor">
      <label htmlFor="wf-document" className="label">
        Document (fal&apos;s workflow format){editable ? "" : " — read-only"}
      </label>
      <textarea
        id="wf-document"
        ref={ref}
        className="code wf-textarea"
        value={text}
        onChange={(e) => onChange(e.target.value)}
        readOnly={!editable}
        spellCheck={false}
        autoCapitalize="off"
        autoCorrect="off"
        rows={Math.min(20, Math.max(8, lines + 1))}
        aria-invalid={syntaxError !== null}
        aria-describedby={syntaxError ? "wf-syntax-error" : undefined}
        onKeyDown={(e) => {
          if (editable && e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            onSave();
          }
        }}
      />
      {syntaxError ? (
        <p className="field-error" id="wf-syntax-error" role="alert" data-testid="json-syntax-error">
          Not JSON at line {syntaxError.line}, column {syntaxError.column}: {syntaxError.message}.{" "}
          <button type="button" className="button small" onClick={() => goTo(syntaxError.offset)}>
            Go there
          </button>
        </p>
      ) : null}
      {editable ? (
        <div className="actions">
          <button type="button" className="button primary" onClick={onSave} disabled={saving || syntaxError !== null}>
            {saving ? "Saving…" : "Save"}
          </button>
          <button type="button" className="button" onClick={onRevert} disabled={saving || !dirty}>
            Revert
          </button>
          <span className="muted small">Save checks the document against the apps served here, and registers it if nothing is wrong. Ctrl+Enter saves.</span>
        </div>
      ) : (
        <p className="muted small">Only admin keys can change a workflow.</p>
      )}
    </div>
  );
}
