/**
 * Renders the fields of `lib/schema-form.ts` as labelled, keyboard-usable controls. Every control
 * edits a draft; the page turns drafts into the input when it runs.
 * @module
 */
import { createContext, useContext, type ReactNode } from "react";
import {
  blankNumberLabel,
  initialDraft,
  jsonError,
  jsonShapeError,
  randomSeed,
  sliderRange,
  type ArrayField,
  type Draft,
  type DraftObject,
  type Field,
  type FieldError,
  type JsonField,
  type NumberField,
  type PresetDraft,
  type PresetField,
} from "../lib/schema-form.js";
import { FileInput } from "./FileInput.js";

interface FormContextValue {
  idPrefix: string;
  errors: readonly FieldError[];
  disabled: boolean;
}

const FormContext = createContext<FormContextValue>({ idPrefix: "f", errors: [], disabled: false });

const idFor = (prefix: string, path: string): string => `${prefix}-${path.replace(/[^A-Za-z0-9_-]/g, "-")}`;

function Hint({ field, id, errors }: { field: Field; id: string; errors: readonly string[] }): ReactNode {
  return (
    <>
      {field.description ? (
        <p className="hint" id={`${id}-hint`}>
          {field.description}
        </p>
      ) : null}
      {errors.length > 0 ? (
        <p className="field-error" id={`${id}-error`}>
          {errors.join("; ")}
        </p>
      ) : null}
    </>
  );
}

function describedBy(field: Field, id: string, errors: readonly string[]): string | undefined {
  const ids = [field.description ? `${id}-hint` : null, errors.length > 0 ? `${id}-error` : null].filter(Boolean);
  return ids.length > 0 ? ids.join(" ") : undefined;
}

function LabelText({ field }: { field: Field }): ReactNode {
  return (
    <>
      {field.label}
      {field.required ? (
        <span className="required" aria-hidden="true">
          {" "}
          *
        </span>
      ) : null}
      {/* The wire name, for people writing code; screen readers get the label alone. */}
      <code className="key" aria-hidden="true">
        {field.key}
      </code>
    </>
  );
}

function NumberEditor({ field, id, draft, onChange, aria }: { field: NumberField; id: string; draft: Draft; onChange: (d: Draft) => void; aria: Record<string, unknown> }): ReactNode {
  const { disabled } = useContext(FormContext);
  const text = typeof draft === "string" ? draft : "";
  const range = field.slider ? sliderRange(field) : null;
  // Blank without a default: the slider's thumb has to sit somewhere, so it is shown switched off
  // and says "auto" instead of the minimum it happens to rest on.
  const unset = text.trim() === "" ? blankNumberLabel(field) : null;
  const sliderValue = text !== "" && Number.isFinite(Number(text)) ? Number(text) : typeof field.default === "number" ? field.default : (range?.min ?? 0);
  const canClear = range !== null && !field.required && blankNumberLabel(field) !== null;
  return (
    <div className="number-row">
      {range ? (
        <input
          type="range"
          className={`slider${unset ? " unset" : ""}`}
          min={range.min}
          max={range.max}
          step={field.step}
          value={sliderValue}
          aria-label={`${field.label} slider`}
          aria-valuetext={unset ?? undefined}
          data-unset={unset ? "true" : undefined}
          disabled={disabled}
          onChange={(e) => onChange(e.target.value)}
          // A click on the thumb where it rests changes nothing, so no change event: still a choice.
          onClick={(e) => unset && onChange(e.currentTarget.value)}
        />
      ) : null}
      <input
        id={id}
        type="number"
        inputMode={field.integer ? "numeric" : "decimal"}
        className="number"
        step={field.step}
        {...(field.min !== undefined ? { min: field.min } : {})}
        {...(field.max !== undefined ? { max: field.max } : {})}
        value={text}
        placeholder={field.default !== undefined && field.default !== null ? JSON.stringify(field.default) : unset === "auto" ? "auto" : ""}
        disabled={disabled}
        onChange={(e) => onChange(e.target.value)}
        {...aria}
      />
      {canClear && unset ? (
        <span className="unset-note" data-testid="unset-note" aria-hidden="true">
          auto
        </span>
      ) : null}
      {/* A slider can only be moved, never emptied: this gives the app its choice back. */}
      {canClear && !unset ? (
        <button type="button" className="button small" aria-label={`Use auto for ${field.label}`} title="Leave it blank: the app chooses" disabled={disabled} onClick={() => onChange("")}>
          Auto
        </button>
      ) : null}
      {field.seed ? (
        <button type="button" className="button icon" aria-label={`Random ${field.label.toLowerCase()}`} title="Random seed" disabled={disabled} onClick={() => onChange(String(randomSeed(field)))}>
          <span aria-hidden="true">🎲</span>
        </button>
      ) : null}
    </div>
  );
}

const JSON_PLACEHOLDER: Record<NonNullable<JsonField["expects"]> | "any", string> = { object: '{"key": "value"}', array: "[…]", any: "JSON, or plain text" };

/** What is wrong with the text as the user types it, so that a parse error shows before Run. */
function jsonStatus(field: JsonField, text: string): { error: string | null; note: string | null } {
  if (text.trim() === "") return { error: null, note: null };
  const parseError = jsonError(text);
  if (parseError) return field.strict ? { error: `Not valid JSON: ${parseError}`, note: null } : { error: null, note: "Not JSON: sent as this text (a string)" };
  const value = JSON.parse(text) as unknown;
  return { error: jsonShapeError(field, value), note: field.strict ? null : `Sent as JSON (${Array.isArray(value) ? "array" : value === null ? "null" : typeof value})` };
}

function JsonEditor({ field, id, draft, onChange, aria }: { field: JsonField; id: string; draft: Draft; onChange: (d: Draft) => void; aria: Record<string, unknown> }): ReactNode {
  const { disabled } = useContext(FormContext);
  const text = typeof draft === "string" ? draft : "";
  const { error, note } = jsonStatus(field, text);
  const lines = Math.min(12, Math.max(3, text.split("\n").length));
  return (
    <div className="json-editor">
      <textarea
        id={id}
        className={`mono${error ? " invalid" : ""}`}
        rows={lines}
        value={text}
        placeholder={JSON_PLACEHOLDER[field.expects ?? (field.strict ? "object" : "any")]}
        spellCheck={false}
        autoCapitalize="off"
        autoCorrect="off"
        disabled={disabled}
        onChange={(e) => onChange(e.target.value)}
        {...aria}
        aria-invalid={error ? true : (aria["aria-invalid"] as boolean | undefined)}
      />
      <div className="json-editor-bar">
        {/* When the form already marks this field, its hint below says why; not twice. */}
        {error && !aria["aria-invalid"] ? (
          <span className="field-error" data-testid="json-error">
            {error}
          </span>
        ) : (
          <span className="muted small">{error ? "" : (note ?? (field.strict ? `JSON ${field.expects ?? "value"}` : "JSON, or plain text"))}</span>
        )}
        <button type="button" className="button small" disabled={disabled || jsonError(text) !== null || text.trim() === ""} onClick={() => onChange(JSON.stringify(JSON.parse(text), null, 2))}>
          Format
        </button>
      </div>
    </div>
  );
}

function PresetEditor({ field, id, path, draft, onChange, aria }: { field: PresetField; id: string; path: string; draft: PresetDraft; onChange: (d: Draft) => void; aria: Record<string, unknown> }): ReactNode {
  const { disabled } = useContext(FormContext);
  const value = draft.preset === null ? "__unset" : draft.preset === "" ? "__custom" : draft.preset;
  return (
    <>
      <select
        id={id}
        value={value}
        disabled={disabled}
        onChange={(e) => {
          const v = e.target.value;
          onChange({ ...draft, preset: v === "__unset" ? null : v === "__custom" ? "" : v });
        }}
        {...aria}
      >
        {draft.preset === null || !field.required ? <option value="__unset">{field.default === undefined ? "—" : "Default"}</option> : null}
        {field.options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
        <option value="__custom">Custom…</option>
      </select>
      {draft.preset === "" ? (
        <div className="nested inline">
          <Fields fields={field.custom} drafts={draft.custom} path={path} onChange={(custom) => onChange({ ...draft, custom })} />
        </div>
      ) : null}
    </>
  );
}

function ArrayEditor({ field, path, draft, onChange }: { field: ArrayField; path: string; draft: Draft; onChange: (d: Draft) => void }): ReactNode {
  const { disabled } = useContext(FormContext);
  const items = Array.isArray(draft) ? draft : [];
  const full = field.maxItems !== undefined && items.length >= field.maxItems;
  return (
    <div className="array">
      {items.length === 0 ? <p className="muted small">No items.</p> : null}
      <ol className="array-items">
        {items.map((item, i) => (
          <li key={i} className="array-item">
            <FieldEditor field={{ ...field.item, label: `${field.label} ${i + 1}`, required: true }} path={`${path}[${i}]`} draft={item} onChange={(d) => onChange(items.map((x, j) => (j === i ? d : x)))} />
            <button type="button" className="button small" disabled={disabled} onClick={() => onChange(items.filter((_, j) => j !== i))} aria-label={`Remove ${field.label} ${i + 1}`}>
              Remove
            </button>
          </li>
        ))}
      </ol>
      <button type="button" className="button small" disabled={disabled || full} onClick={() => onChange([...items, initialDraft({ ...field.item, default: undefined })])}>
        Add {field.label.toLowerCase()} item
      </button>
    </div>
  );
}

function FieldEditor({ field, path, draft, onChange }: { field: Field; path: string; draft: Draft; onChange: (d: Draft) => void }): ReactNode {
  const { idPrefix, errors: allErrors, disabled } = useContext(FormContext);
  const id = idFor(idPrefix, path);
  const errors = allErrors.filter((e) => e.path === path).map((e) => e.message);
  const aria = { "aria-describedby": describedBy(field, id, errors), "aria-invalid": errors.length > 0 ? true : undefined, "aria-required": field.required || undefined };

  // Groups (objects, arrays) get a fieldset and legend; single controls a label.
  if (field.kind === "object" || field.kind === "array") {
    return (
      <fieldset className={`field group kind-${field.kind}`} aria-describedby={describedBy(field, id, errors)}>
        <legend>
          <LabelText field={field} />
        </legend>
        <Hint field={field} id={id} errors={errors} />
        {field.kind === "object" ? (
          <Fields fields={field.fields} drafts={(draft as DraftObject | null) ?? {}} path={path} onChange={onChange} />
        ) : (
          <ArrayEditor field={field} path={path} draft={draft} onChange={onChange} />
        )}
      </fieldset>
    );
  }

  if (field.kind === "boolean") {
    return (
      <div className="field kind-boolean">
        <label className="checkbox" htmlFor={id}>
          <input id={id} type="checkbox" checked={draft === true} disabled={disabled} onChange={(e) => onChange(e.target.checked)} {...aria} />
          <span>
            <LabelText field={field} />
          </span>
        </label>
        <Hint field={field} id={id} errors={errors} />
      </div>
    );
  }

  let control: ReactNode;
  switch (field.kind) {
    case "text": {
      const common = {
        id,
        value: typeof draft === "string" ? draft : "",
        disabled,
        ...(field.maxLength !== undefined ? { maxLength: field.maxLength } : {}),
        placeholder: typeof field.default === "string" ? field.default : "",
        ...aria,
      };
      control = field.multiline ? <textarea rows={4} {...common} onChange={(e) => onChange(e.target.value)} /> : <input type="text" {...common} onChange={(e) => onChange(e.target.value)} />;
      break;
    }
    case "number":
      control = <NumberEditor field={field} id={id} draft={draft} onChange={onChange} aria={aria} />;
      break;
    case "enum":
      control = (
        <select id={id} value={typeof draft === "string" ? draft : ""} disabled={disabled} onChange={(e) => onChange(e.target.value)} {...aria}>
          {!field.required || draft === "" ? <option value="">—</option> : null}
          {field.options.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
              {JSON.stringify(field.default) === o.value ? " (default)" : ""}
            </option>
          ))}
        </select>
      );
      break;
    case "file":
      control = <FileInput field={field} id={id} value={typeof draft === "string" ? draft : ""} onChange={onChange} disabled={disabled} aria={aria} />;
      break;
    case "preset":
      control = <PresetEditor field={field} id={id} path={path} draft={draft as PresetDraft} onChange={onChange} aria={aria} />;
      break;
    case "json":
      control = <JsonEditor field={field} id={id} draft={draft} onChange={onChange} aria={aria} />;
      break;
  }
  return (
    <div className={`field kind-${field.kind}`}>
      <label htmlFor={id} className="label">
        <LabelText field={field} />
      </label>
      {control}
      <Hint field={field} id={id} errors={errors} />
    </div>
  );
}

function Fields({ fields, drafts, path, onChange }: { fields: readonly Field[]; drafts: DraftObject; path: string; onChange: (d: DraftObject) => void }): ReactNode {
  return (
    <>
      {fields.map((f) => {
        const p = path ? `${path}.${f.key}` : f.key;
        return <FieldEditor key={f.key} field={f} path={p} draft={drafts[f.key] ?? initialDraft(f)} onChange={(d) => onChange({ ...drafts, [f.key]: d })} />;
      })}
    </>
  );
}

export interface SchemaFormProps {
  fields: readonly Field[];
  drafts: DraftObject;
  onChange: (drafts: DraftObject) => void;
  errors: readonly FieldError[];
  idPrefix: string;
  disabled?: boolean;
}

export function SchemaForm({ fields, drafts, onChange, errors, idPrefix, disabled = false }: SchemaFormProps): ReactNode {
  if (fields.length === 0) return <p className="muted">This endpoint takes no input.</p>;
  return (
    <FormContext.Provider value={{ idPrefix, errors, disabled }}>
      <Fields fields={fields} drafts={drafts} path="" onChange={onChange} />
    </FormContext.Provider>
  );
}
