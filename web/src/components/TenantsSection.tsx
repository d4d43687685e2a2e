/**
 * The Keys page's tenants (`GET /v1/tenants`): every tenant that is configured or named by a key,
 * with its weight, key count and limits, each editable, and a new one set up by name. A key that
 * names no tenant is a tenant of its own; while nobody configured it, its row would only repeat the
 * key's, so such tenants are counted rather than listed.
 * @module
 */
import { useState, type ReactNode } from "react";
import type { TenantView } from "../api.js";
import { describeLimits } from "../lib/limits.js";
import { useAsync } from "../hooks.js";
import { useApi } from "../session.js";
import { ErrorNotice, Loading, StackTable } from "./common.js";
import { TenantEditor } from "./LimitsEditor.js";

/**
 * `version` changes when keys change (a key naming a new tenant adds one to the list); `keyIds`
 * are the keys' ids, the names of the tenants keys are on their own.
 */
export function TenantsSection({ version, keyIds }: { version: number; keyIds: ReadonlySet<string> }): ReactNode {
  const api = useApi();
  const tenants = useAsync((signal) => api.json<{ tenants: TenantView[] }>("GET", "/v1/tenants", undefined, signal), [api, version]);
  // The tenant being edited: its name, "" for a new one, null for none.
  const [editing, setEditing] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const current = editing ? (tenants.data?.tenants.find((t) => t.name === editing) ?? null) : null;
  const all = tenants.data?.tenants ?? [];
  const listed = all.filter((t) => t.configured || !keyIds.has(t.name));
  const ownDefaults = all.length - listed.length;

  return (
    <section className="tenants" aria-labelledby="tenants-heading">
      <h2 id="tenants-heading">Tenants</h2>
      <p className="hint">
        A tenant groups keys: they share the queue by its weight (fair share) and are held to its limits. A key that names no tenant is a tenant of its own, named by its id.
      </p>
      {saved ? (
        <p className="notice success" role="status">
          Saved tenant {saved}.
        </p>
      ) : null}
      {tenants.error ? <ErrorNotice error={tenants.error} onRetry={tenants.reload} /> : null}
      {!tenants.data && !tenants.error ? <Loading what="tenants" /> : null}
      {tenants.data && listed.length === 0 ? <p className="muted">No shared or configured tenants yet.</p> : null}
      {tenants.data && listed.length > 0 ? (
        <StackTable label="Tenants" columns={["Tenant", "Weight", "Keys", "Limits", <span className="visually-hidden">Actions</span>]}>
          {listed.map((t) => (
            <tr key={t.name} data-tenant={t.name}>
              <td data-label="Tenant">
                <code>{t.name}</code> {t.configured ? null : <span className="muted small">(defaults)</span>}
              </td>
              <td data-label="Weight" data-stat="weight">
                {t.weight}
              </td>
              <td data-label="Keys">{t.keys}</td>
              <td data-label="Limits" data-stat="limits">
                {describeLimits(t.limits)}
              </td>
              <td>
                <button type="button" className="button small" onClick={() => {
                    setSaved(null);
                    setEditing(t.name);
                  }} aria-label={`Edit tenant ${t.name}`}>
                  Edit
                </button>
              </td>
            </tr>
          ))}
        </StackTable>
      ) : null}
      {ownDefaults > 0 ? (
        <p className="hint" data-testid="own-tenants">
          Not listed: {ownDefaults} {ownDefaults === 1 ? "key that is a tenant" : "keys that are tenants"} of {ownDefaults === 1 ? "its" : "their"} own with the defaults (weight 1, no
          limits). To give one a weight or limits, set up a tenant named by the key&apos;s id.
        </p>
      ) : null}
      {editing === null ? (
        <button type="button" className="button" onClick={() => {
            setSaved(null);
            setEditing("");
          }}>
          Set up a tenant
        </button>
      ) : (
        <TenantEditor
          key={editing}
          tenant={current}
          onCancel={() => setEditing(null)}
          onSaved={(t) => {
            setEditing(null);
            setSaved(t.name);
            tenants.reload();
          }}
        />
      )}
    </section>
  );
}
