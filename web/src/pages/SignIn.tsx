/**
 * Sign-in with an API key. The key stays in this tab's sessionStorage (see session.tsx).
 * @module
 */
import { useState, type FormEvent, type ReactNode } from "react";
import { useTitle } from "../hooks.js";
import { useSession } from "../session.js";

export function SignIn(): ReactNode {
  useTitle("Sign in");
  const { signIn } = useSession();
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(key);
      setKey("");
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      setError(/401|invalid/i.test(message) ? "The server refused this key: check it, or create a new one." : message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="sign-in">
      <h1 tabIndex={-1}>Sign in</h1>
      <p>The playground calls the server's API with one of its keys.</p>
      <form className="panel" onSubmit={(e) => void submit(e)}>
        <div className="field">
          <label htmlFor="api-key" className="label">
            API key
          </label>
          <input
            id="api-key"
            name="api-key"
            type="password"
            autoComplete="off"
            spellCheck={false}
            value={key}
            onChange={(e) => setKey(e.target.value)}
            placeholder="dk_…:…"
            aria-describedby="api-key-hint"
            aria-invalid={error ? true : undefined}
            required
          />
          <p className="hint" id="api-key-hint">
            <code>id:secret</code>, as in <code>DARKROOM_KEY</code> or <code>FAL_KEY</code>. On the server's machine the
            admin key is in <code>.darkroom/admin-key</code>; make an everyday one with <code>darkroom keys create</code>.
            The key is kept only in this tab (sessionStorage), never shown, and forgotten when the tab closes.
          </p>
        </div>
        {error ? (
          <p className="field-error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" className="button primary" disabled={busy || key.trim() === ""}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
