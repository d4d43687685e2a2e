/**
 * Editing usage limits on the Keys page: a key's tenant and limits (`PATCH /v1/keys/{id}`) and a
 * tenant's weight and limits (`PUT /v1/tenants/{name}`). Values are checked before anything is sent
 * (lib/limits.ts); what the server still refuses (its 422) is shown next to the field it names.
 * @module
 */
import { useEffect, useRef, useState, type FormEvent, type ReactNode, type RefObject } from "react";
import { ApiError, type KeyView, type TenantView } from "../api.js";
import { draftOfLimits, errorsByField, LIMIT_FIELDS, limitsOfDraft, NO_LIMITS, tenantNameError, weightOfDraft, type LimitsDraft } from "../lib/limits.js";
import type { FieldError } from "../lib/schema-form.js";
import { useApi } from "../session.js";
import { ErrorNotice } from "./common.js";

/** A labelled text control with its hint and, when there is one, its error (which the control is described by). */
function TextField(props: {
  id: string;
  label: string;
  hint?: string;
  error: string | undefined;
  value: string;
  onChange: (value: string) => void;
  multiline?: boolean;
  inputMode?: "numeric" | "decimal" | "text";
  placeholder?: string;
}): ReactNode {
  const { id, error } = props;
  const describedBy = [props.hint ? `${id}-hint` : null, error ? `${id}-error` : null].filter(Boolean).join(" ") || undefined;
  const common = {
    id,
    name: id,
    value: props.value,
    "aria-invalid": error ? true : undefined,
    "aria-describedby": describedBy,
    placeholder: props.placeholder,
  };
  return (
    <div className="field" data-field={id}>
      <label htmlFor={id} className="label">
        {props.label}
      </label>
      {props.multiline ? (
        <textarea {...common} className="mono" rows={3} spellCheck={false} onChange={(e) => props.onChange(e.target.value)} />
      ) : (
        <input {...common} type="text" inputMode={props.inputMode ?? "text"} autoComplete="off" onChange={(e) => props.onChange(e.target.value)} />
      )}
      {props.hint ? (
        <p className="hint" id={`${id}-hint`}>
          {props.hint}
        </p>
      ) : null}
      {error ? (
        <p className="field-error" id={`${id}-error`}>
          {error}
        </p>
      ) : null}
    </div>
  );
}

/** The five limits of a key or a tenant; blank is no limit. */
function LimitsFields({ idPrefix, draft, onChange, errors }: { idPrefix: string; draft: LimitsDraft; onChange: (d: LimitsDraft) => void; errors: ReadonlyMap<string, string> }): ReactNode {
  return (
    <fieldset className="group limits-fields">
      <legend>Limits</legend>
      <div className="limits-grid">
        {LIMIT_FIELDS.map((f) => (
          <TextField
            key={f.name}
            id={`${idPrefix}-${f.name}`}
            label={f.label}
            hint={f.hint}
            error={errors.get(f.name)}
            value={draft[f.name]}
            multiline={f.name === "apps"}
            inputMode={f.name === "monthly_budget" ? "decimal" : f.name === "apps" ? "text" : "numeric"}
            placeholder={f.name === "apps" ? "darkroom/*" : "no limit"}
            onChange={(value) => onChange({ ...draft, [f.name]: value })}
          />
        ))}
      </div>
    </fieldset>
  );
}

/** Moves the focus to the first field marked invalid in `form`. */
function focusFirstInvalid(form: HTMLFormElement | null): void {
  window.setTimeout(() => form?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus(), 0);
}

/** Shared state of both editors: the limits draft, the errors by field, and the send. */
function useEditor(): {
  errors: Map<string, string>;
  failure: Error | null;
  busy: boolean;
  send: (check: FieldError[], call: () => Promise<void>) => Promise<void>;
  formRef: RefObject<HTMLFormElement | null>;
} {
  const [errors, setErrors] = useState<Map<string, string>>(new Map());
  const [failure, setFailure] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);
  const send = async (check: FieldError[], call: () => Promise<void>): Promise<void> => {
    setFailure(null);
    setErrors(errorsByField(check));
    if (check.length > 0) {
      focusFirstInvalid(formRef.current);
      return;
    }
    setBusy(true);
    try {
      await call();
    } catch (err) {
      if (err instanceof ApiError && err.fieldErrors.length > 0) {
        const byField = errorsByField(err.fieldErrors);
        setErrors(byField);
        // Errors the form has no field for go in the notice above the buttons.
        const rest = byField.get("");
        if (rest) setFailure(new Error(rest));
        focusFirstInvalid(formRef.current);
      } else {
        setFailure(err instanceof Error ? err : new Error(String(err)));
      }
    } finally {
      setBusy(false);
    }
  };
  return { errors, failure, busy, send, formRef };
}

function EditorHeading({ id, children }: { id: string; children: ReactNode }): ReactNode {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    ref.current?.focus();
    ref.current?.scrollIntoView({ block: "nearest" });
  }, []);
  return (
    <h3 id={id} tabIndex={-1} ref={ref}>
      {children}
    </h3>
  );
}

function EditorButtons({ busy, onCancel, failure }: { busy: boolean; onCancel: () => void; failure: Error | null }): ReactNode {
  return (
    <>
      {failure ? <ErrorNotice error={failure} /> : null}
      <div className="actions">
        <button type="submit" className="button primary" disabled={busy}>
          {busy ? "Saving…" : "Save"}
        </button>
        <button type="button" className="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </>
  );
}

/** A key's tenant and limits; `PATCH /v1/keys/{id}` replaces its limits whole. */
export function KeyLimitsEditor({ k, onSaved, onCancel }: { k: KeyView; onSaved: (k: KeyView) => void; onCancel: () => void }): ReactNode {
  const api = useApi();
  // A key without a tenant of its own is listed as its own id; the form shows that as blank.
  const [tenant, setTenant] = useState(k.tenant === k.id ? "" : k.tenant);
  const [draft, setDraft] = useState<LimitsDraft>(() => draftOfLimits(k.limits ?? NO_LIMITS));
  const { errors, failure, busy, send, formRef } = useEditor();
  const prefix = `key-${k.id.replace(/[^A-Za-z0-9_-]/g, "-")}`;

  const submit = (e: FormEvent): void => {
    e.preventDefault();
    const name = tenant.trim();
    const { limits, errors: problems } = limitsOfDraft(draft);
    const tenantError = tenantNameError(name, true);
    const check = tenantError ? [{ path: "tenant", message: tenantError }, ...problems] : problems;
    void send(check, async () => {
      const updated = await api.json<KeyView>("PATCH", `/v1/keys/${encodeURIComponent(k.id)}`, { tenant: name === "" ? null : name, limits });
      onSaved(updated);
    });
  };

  return (
    <form className="panel limits-editor" onSubmit={submit} ref={formRef} noValidate aria-labelledby={`${prefix}-heading`}>
      <EditorHeading id={`${prefix}-heading`}>
        Tenant and limits of {k.name} <code>{k.id}</code>
      </EditorHeading>
      <TextField
        id={`${prefix}-tenant`}
        label="Tenant"
        hint="Keys of one tenant share its weight and limits. Blank: the key is a tenant of its own."
        error={errors.get("tenant")}
        value={tenant}
        onChange={setTenant}
        placeholder={k.id}
      />
      <LimitsFields idPrefix={prefix} draft={draft} onChange={setDraft} errors={errors} />
      <p className="hint">Where the key and its tenant both set a limit, the stricter holds.</p>
      <EditorButtons busy={busy} onCancel={onCancel} failure={failure} />
    </form>
  );
}

/** A tenant's weight and limits (`tenant` null: a new one, named here). `PUT` replaces both. */
export function TenantEditor({ tenant, onSaved, onCancel }: { tenant: TenantView | null; onSaved: (t: TenantView) => void; onCancel: () => void }): ReactNode {
  const api = useApi();
  const [name, setName] = useState(tenant?.name ?? "");
  const [weight, setWeight] = useState(tenant ? String(tenant.weight) : "1");
  const [draft, setDraft] = useState<LimitsDraft>(() => draftOfLimits(tenant?.limits ?? NO_LIMITS));
  const { errors, failure, busy, send, formRef } = useEditor();
  const prefix = tenant ? `tenant-${tenant.name.replace(/[^A-Za-z0-9_-]/g, "-")}` : "tenant-new";

  const submit = (e: FormEvent): void => {
    e.preventDefault();
    const target = name.trim();
    const { limits, errors: problems } = limitsOfDraft(draft);
    const parsedWeight = weightOfDraft(weight);
    const nameError = tenant ? null : tenantNameError(target, false);
    const check = [...(nameError ? [{ path: "path.name", message: nameError }] : []), ...(parsedWeight.error ? [{ path: "weight", message: parsedWeight.error }] : []), ...problems];
    void send(check, async () => {
      const saved = await api.json<TenantView>("PUT", `/v1/tenants/${encodeURIComponent(target)}`, { ...(parsedWeight.weight !== null ? { weight: parsedWeight.weight } : {}), limits });
      onSaved(saved);
    });
  };

  return (
    <form className="panel limits-editor" onSubmit={submit} ref={formRef} noValidate aria-labelledby={`${prefix}-heading`}>
      <EditorHeading id={`${prefix}-heading`}>{tenant ? <>Tenant {tenant.name}</> : "New tenant"}</EditorHeading>
      {tenant ? null : (
        <TextField id={`${prefix}-name`} label="Name" hint="Keys join it by naming it as their tenant." error={errors.get("name")} value={name} onChange={setName} />
      )}
      <TextField
        id={`${prefix}-weight`}
        label="Weight"
        hint="Its share of runner slots against other tenants with requests waiting: 2 gets twice the share of 1."
        error={errors.get("weight")}
        value={weight}
        onChange={setWeight}
        inputMode="decimal"
      />
      <LimitsFields idPrefix={prefix} draft={draft} onChange={setDraft} errors={errors} />
      <EditorButtons busy={busy} onCancel={onCancel} failure={failure} />
    </form>
  );
}
