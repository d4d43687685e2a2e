/**
 * Why a run could not start, on the app page: a banner naming the usage limit that refused it
 * (lib/limit-refusal.ts), the server's detail and, after a 429 with `Retry-After`, when to try
 * again; any other error gets the usual notice.
 * @module
 */
import { useState, type ReactNode } from "react";
import { ApiError } from "../api.js";
import { formatWait, limitRefusalOf, SERVER_LIMITS, type LimitRefusal } from "../lib/limit-refusal.js";
import { useInterval } from "../hooks.js";
import { Link } from "../router.js";
import { useSession } from "../session.js";
import { ErrorNotice } from "./common.js";

function RetryAfter({ seconds }: { seconds: number }): ReactNode {
  const [shownAt] = useState(() => Date.now());
  const [now, setNow] = useState(shownAt);
  const left = Math.max(0, seconds - Math.floor((now - shownAt) / 1000));
  useInterval(() => setNow(Date.now()), 1000, left > 0);
  const at = new Date(shownAt + seconds * 1000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  return (
    <p className="retry-after" data-testid="retry-after" data-seconds={seconds}>
      {left > 0 ? (
        <>
          <strong>Try again at {at}</strong> <span aria-hidden="true">({formatWait(left)})</span>. The server asked to wait {seconds} s (Retry-After).
        </>
      ) : (
        <strong>You can try again now.</strong>
      )}
    </p>
  );
}

export function LimitBanner({ refusal }: { refusal: LimitRefusal }): ReactNode {
  const { session } = useSession();
  // The app's queue length and the throttle on wrong keys are the server's, not a key's or a tenant's.
  const ownLimit = !SERVER_LIMITS.has(refusal.limit);
  return (
    <div className="notice error limit-banner" role="alert" data-testid="limit-banner" data-limit={refusal.limit}>
      <p>
        <strong>
          Refused by a limit: {refusal.title}
          {ownLimit ? (
            <>
              {" "}
              (<code>{refusal.limit}</code>)
            </>
          ) : null}
        </strong>
      </p>
      <p data-testid="limit-detail">{refusal.detail}</p>
      {refusal.retryAfterSeconds !== null ? <RetryAfter seconds={refusal.retryAfterSeconds} /> : null}
      {ownLimit ? (
        <p className="muted small">
          {session?.scope === "admin" ? (
            <>
              Limits of keys and tenants are set on the <Link href="/keys">Keys page</Link>.
            </>
          ) : (
            "An admin can change the limits of this key or of its tenant."
          )}
        </p>
      ) : null}
    </div>
  );
}

/** The banner when a limit refused the call, else the usual error notice. */
export function RunErrorNotice({ error }: { error: Error }): ReactNode {
  const refusal = error instanceof ApiError ? limitRefusalOf(error.status, error.body, error.retryAfterSeconds) : null;
  return refusal ? <LimitBanner refusal={refusal} /> : <ErrorNotice error={error} />;
}
