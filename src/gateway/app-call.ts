/**
 * One call of an app on behalf of a caller, for the APIs beside fal's (OpenAI's, Replicate's): the
 * same checks as fal's hosts make (the key's apps, its limits, budget, queue room, rate), then a
 * durable request in the queue like any other, so that it is one request in `/v1/requests` and in
 * usage whichever API it came through.
 * @module
 */
import { PlatformError } from "../core/errors.js";
import type { AppManifest, EndpointManifest, RequestMode, RequestRecord } from "../core/types.js";
import type { CacheMode } from "../reuse/cache-mode.js";
import type { Reused } from "../reuse/result-reuse.js";
import { appAllowed, type GatewayContext, type Principal } from "./context.js";
import { admitCall, assertAppWithinLimitsOf, assertAvailable, validateAppInput } from "./fal-call.js";

export interface AppCall {
  app: AppManifest;
  endpoint: EndpointManifest;
  input: unknown;
  principal: Principal;
  baseUrl: string;
  mode: RequestMode;
  /** Attempts before it fails: 1 for a caller that waits (fal does not retry sync calls), 3 for queued work. */
  maxAttempts: number;
  webhookUrl?: string | null;
  cacheMode?: CacheMode | null;
  /** The request's id when the caller needs it before the submit (to record something under it first). */
  id?: string;
}

/** The checks a call passes before it is queued; the rate is counted last, only for a call otherwise accepted. */
export async function checkAppCall(ctx: GatewayContext, call: Pick<AppCall, "app" | "endpoint" | "input" | "principal">): Promise<void> {
  if (!appAllowed(call.principal, call.app.id)) throw new PlatformError("ERR_FORBIDDEN", { message: `This token is not valid for ${call.app.id}` });
  assertAppWithinLimitsOf(call.principal, call.app);
  assertAvailable(call.app);
  await validateAppInput(ctx, call.endpoint, call.input);
  // Last of the checks: only a call that is otherwise accepted counts against the rate.
  const admitting = admitCall(ctx, call.principal);
  if (admitting) await admitting;
}

/** Checks and queues the call; resolves once the request is durable. */
export async function submitAppCall(ctx: GatewayContext, call: AppCall): Promise<Reused> {
  await checkAppCall(ctx, call);
  return ctx.scheduler.submitReusing(
    {
      id: call.id ?? crypto.randomUUID(),
      appId: call.app.id,
      endpoint: call.endpoint.path,
      input: call.input,
      priority: "normal",
      mode: call.mode,
      startDeadline: null,
      maxAttempts: call.maxAttempts,
      webhookUrl: call.webhookUrl ?? null,
      keyId: call.principal.keyId,
      tenant: call.principal.tenant,
      weight: call.principal.weight,
      baseUrl: call.baseUrl,
    },
    call.cacheMode ?? null,
  );
}

/** Runs the call and waits for its end; a caller that goes away (`signal`) cancels it. */
export async function runAppCall(ctx: GatewayContext, call: Omit<AppCall, "mode" | "maxAttempts">, signal: AbortSignal): Promise<RequestRecord> {
  const { record } = await submitAppCall(ctx, { ...call, mode: "sync", maxAttempts: 1 });
  const onAbort = (): void => void ctx.scheduler.cancel(record.id).catch(() => undefined);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await ctx.scheduler.waitForTerminal(record.id, signal);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** An abort signal for a caller that hangs up before its answer is sent. */
export function hangUpSignal(reply: { raw: { writableFinished: boolean; on: (event: "close", listener: () => void) => unknown } }): AbortSignal {
  const controller = new AbortController();
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) controller.abort(new PlatformError("ERR_CLIENT_DISCONNECTED"));
  });
  return controller.signal;
}
