/**
 * Operations endpoints: liveness, readiness, Prometheus metrics, and the JWKS that verifies webhooks.
 * @module
 */
import type { FastifyInstance } from "fastify";
import type { GatewayContext } from "../context.js";

export function registerOpsRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.get("/health", async () => ({ status: "ok", uptime_s: Math.round((Date.now() - ctx.startedAt) / 1000) }));

  // Ready when the store answers: that is what every request needs first.
  app.get("/ready", async (_request, reply) => {
    try {
      await ctx.store.queueDepths();
      return { status: "ready", apps: ctx.scheduler.apps.length };
    } catch (err) {
      return reply.code(503).send({ status: "not_ready", detail: err instanceof Error ? err.message : String(err) });
    }
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
