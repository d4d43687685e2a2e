/**
 * Operations endpoints: liveness, readiness, Prometheus metrics, and the JWKS that verifies webhooks.
 * @module
 */
import { statfs } from "node:fs/promises";
import type { FastifyInstance } from "fastify";
import type { GatewayContext } from "../context.js";

/** Below this much free space under the data folder the gateway reports itself not ready. */
export const MIN_FREE_BYTES = 64 * 1024 * 1024;

/** Free bytes (for unprivileged writers) on the data folder's filesystem; null where it cannot be told. */
async function freeBytes(dir: string): Promise<number | null> {
  try {
    const stats = await statfs(dir);
    return stats.bavail * stats.bsize;
  } catch {
    return null;
  }
}

export function registerOpsRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.get("/health", async () => ({ status: "ok", uptime_s: Math.round((Date.now() - ctx.startedAt) / 1000) }));

  // Ready when the store answers (every request needs it first) and the data folder has room.
  app.get("/ready", async (_request, reply) => {
    try {
      await ctx.store.queueDepths();
    } catch (err) {
      return reply.code(503).send({ status: "not_ready", detail: err instanceof Error ? err.message : String(err) });
    }
    // A full data folder fails every write: take the gateway out of rotation before it does.
    const free = await freeBytes(ctx.config.dataDir);
    if (free !== null && free < MIN_FREE_BYTES) {
      return reply.code(503).send({ status: "not_ready", detail: `The data folder's disk has ${free} bytes free (needs ${MIN_FREE_BYTES})` });
    }
    return { status: "ready", apps: ctx.scheduler.apps.length };
  });

  app.get("/metrics", async (_request, reply) => {
    const depths = await ctx.store.queueDepths();
    const running = new Map<string, number>();
    for (const r of await ctx.store.running()) running.set(r.appId, (running.get(r.appId) ?? 0) + 1);
    for (const a of ctx.scheduler.apps) {
      ctx.metrics.queueDepth.set({ app: a.id }, depths.get(a.id) ?? 0);
      ctx.metrics.outstanding.set({ app: a.id }, (depths.get(a.id) ?? 0) + (running.get(a.id) ?? 0));
    }
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  app.get("/.well-known/jwks.json", async (_request, reply) => reply.header("cache-control", "public, max-age=3600").send(ctx.signingKeys.jwks()));
}
