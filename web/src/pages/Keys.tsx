/**
 * API keys (`/v1/keys`, admin keys): list, create (the secret is shown once, here), revoke, and
 * each key's tenant and usage limits; below them, the tenants.
 * @module
 */
import { useMemo, useState, type FormEvent, type ReactNode } from "react";
import type { KeyView } from "../api.js";
import { CopyButton, ErrorNotice, Loading, StackTable } from "../components/common.js";
import { KeyLimitsEditor } from "../components/LimitsEditor.js";
import { TenantsSection } from "../components/TenantsSection.js";
import { formatTime } from "../lib/format.js";
import { describeLimits } from "../lib/limits.js";
import { useAsync, useTitle } from "../hooks.js";
import { useApi, useSession } from "../session.js";

type Created = KeyView & { key: string };

function CreatedKey({ created, onDismiss }: { created: Created; onDismiss: () => void }): ReactNode {
  return (
    <div className="notice success created-key" role="status">
      <p>
        <strong>Key {created.name} created.</strong> Copy it now: the secret is shown only this once and cannot be
        recovered.
      </p>
      <div className="secret-row">
        <label htmlFor="new-key" className="visually-hidden">
          New key
        </label>
        <input id="new-key" className="mono" readOnly value={created.key} onFocus={(e) => e.currentTarget.select()} />
        <CopyButton text={created.key} label="Copy key" />
        <button type="button" className="button small" onClick={onDismiss}>
          Done
        </button>
      </div>
    </div>
  );
}

function RevokeButton({ k, onRevoke, busy }: { k: KeyView; onRevoke: (id: string) => void; busy: boolean }): ReactNode {
  const [confirming, setConfirming] = useState(false);
  if (!confirming) {
    return (
      <button type="button" className="button small" onClick={() => setConfirming(true)} aria-label={`Revoke ${k.name} (${k.id})`}>
        Revoke
      </button>
    );
  }
  return (
    <span className="confirm">
      <button type="button" className="button small danger" disabled={busy} onClick={() => onRevoke(k.id)} autoFocus aria-label={`Confirm revoking ${k.name} (${k.id})`}>
        Confirm revoke
      </button>
      <button type="button" className="button small" onClick={() => setConfirming(false)}>
        Keep
      </button>
    </span>
  );
}

export function Keys(): ReactNode {
  useTitle("API keys");
  const { session } = useSession();
  const api = useApi();
  const keys = useAsync((signal) => api.json<{ keys: KeyView[] }>("GET", "/v1/keys", undefined, signal), [api]);
  const [name, setName] = useState("");
  const [scope, setScope] = useState<"api" | "admin">("api");
  const [created, setCreated] = useState<Created | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  // The key whose limits are being edited, and the last one saved.
  const [editing, setEditing] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const editedKey = editing ? (keys.data?.keys.find((k) => k.id === editing) ?? null) : null;
  const keyIds = useMemo(() => new Set((keys.data?.keys ?? []).map((k) => k.id)), [keys.data]);

  const create = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    if (!session) return;
    setBusy(true);
    setError(null);
    try {
      const key = await session.api.json<Created>("POST", "/v1/keys", { name: name.trim() || "api key", scope });
      setCreated(key);
      setName("");
      keys.reload();
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      setBusy(false);
    }
  };

  const revoke = async (id: string): Promise<void> => {
    if (!session) return;
    setBusy(true);
    setError(null);
    try {
      await session.api.json("DELETE", `/v1/keys/${encodeURIComponent(id)}`);
      keys.reload();
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div>
      <h1 tabIndex={-1}>API keys</h1>
      {session?.scope !== "admin" ? <p className="notice warning">Managing keys needs an admin key.</p> : null}
      <form className="panel key-form" onSubmit={(e) => void create(e)} aria-labelledby="create-key-heading">
        <h2 id="create-key-heading">Create a key</h2>
        <div className="filters">
          <div className="field">
            <label htmlFor="key-name" className="label">
              Name
            </label>
            <input id="key-name" type="text" maxLength={100} value={name} onChange={(e) => setName(e.target.value)} placeholder="ci, laptop, …" />
          </div>
          <div className="field">
            <label htmlFor="key-scope" className="label">
              Scope
            </label>
            <select id="key-scope" value={scope} onChange={(e) => setScope(e.target.value === "admin" ? "admin" : "api")} aria-describedby="key-scope-hint">
              <option value="api">api (apps, uploads, own requests)</option>
              <option value="admin">admin (everything)</option>
            </select>
          </div>
          <button type="submit" className="button primary" disabled={busy}>
            Create key
          </button>
        </div>
        <p id="key-scope-hint" className="hint">
          Prefer api keys for scripts and for this playground; admin keys can create and revoke keys.
        </p>
      </form>
      {created ? <CreatedKey created={created} onDismiss={() => setCreated(null)} /> : null}
      {error ? <ErrorNotice error={error} /> : null}
      {keys.error ? <ErrorNotice error={keys.error} onRetry={keys.reload} /> : null}
      {!keys.data && !keys.error ? <Loading what="keys" /> : null}
      {keys.data ? (
        <StackTable label="Keys" columns={["Name", "Id", "Scope", "Tenant", "Limits", "Created", "Last used", <span className="visually-hidden">Actions</span>]}>
          {keys.data.keys.map((k) => (
            <tr key={k.id} className={k.revoked_at ? "revoked" : ""} data-key-id={k.id}>
              <td data-label="Name">{k.name}</td>
              <td data-label="Id">
                <code>{k.id}</code>
              </td>
              <td data-label="Scope">{k.scope}</td>
              <td data-label="Tenant" data-stat="tenant">
                {k.tenant === k.id ? <span className="muted small">own</span> : <code>{k.tenant}</code>}
              </td>
              <td data-label="Limits" data-stat="limits">
                {describeLimits(k.limits)}
              </td>
              <td data-label="Created">{formatTime(k.created_at)}</td>
              <td data-label="Last used">{formatTime(k.last_used_at)}</td>
              <td className="row-actions">
                {k.revoked_at ? null : (
                  <button
                    type="button"
                    className="button small"
                    onClick={() => {
                      setSaved(null);
                      setEditing(k.id);
                    }}
                    aria-label={`Edit limits of ${k.name} (${k.id})`}
                  >
                    Limits
                  </button>
                )}
                {k.revoked_at ? (
                  <span className="badge bad">Revoked {formatTime(k.revoked_at)}</span>
                ) : k.id === session?.keyId ? (
                  <span className="muted small">This session</span>
                ) : (
                  <RevokeButton k={k} busy={busy} onRevoke={(id) => void revoke(id)} />
                )}
              </td>
            </tr>
          ))}
        </StackTable>
      ) : null}
      {saved ? (
        <p className="notice success" role="status">
          Saved the tenant and limits of key {saved}.
        </p>
      ) : null}
      {editedKey ? (
        <KeyLimitsEditor
          key={editedKey.id}
          k={editedKey}
          onCancel={() => setEditing(null)}
          onSaved={(k) => {
            setEditing(null);
            setSaved(k.name);
            keys.reload();
            setVersion((v) => v + 1);
          }}
        />
      ) : null}
      {session?.scope === "admin" ? <TenantsSection version={version} keyIds={keyIds} /> : null}
    </div>
  );
}
