/**
 * The admin-only key routes under `/v1/keys`: create (with a tenant and limits), list, change, revoke.
 * @module
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { LimitsBody, limitsFromBody, limitsView, TenantNameBody } from "../../auth/limits-body.js";
import type { KeySettingsPatch } from "../../auth/keys.js";
import { PlatformError } from "../../core/errors.js";
import { tenantOf } from "../../core/tenants.js";
import type { ApiKeyRecord } from "../../store/store.js";
import { requireAdmin, type GatewayContext } from "../context.js";
import { validatedBody } from "../validated-body.js";

function keyView(k: ApiKeyRecord): Record<string, unknown> {
  return {
    id: k.id,
    name: k.name,
    scope: k.scope,
    // The tenant the key's calls count as: the key itself when it names none.
    tenant: tenantOf(k),
    limits: limitsView(k.limits),
    created_at: new Date(k.createdAt).toISOString(),
    revoked_at: k.revokedAt ? new Date(k.revokedAt).toISOString() : null,
    last_used_at: k.lastUsedAt ? new Date(k.lastUsedAt).toISOString() : null,
  };
}

const KeyName = z.string().min(1).max(100);

const CreateKey = z
  .object({
    name: KeyName.default("api key"),
    scope: z.enum(["admin", "api"]).default("api"),
    tenant: TenantNameBody.nullish(),
    limits: LimitsBody.optional(),
  })
  .strict();

const PatchKey = z
  .object({
    name: KeyName.optional(),
    // null: the key is a tenant of its own again.
    tenant: TenantNameBody.nullable().optional(),
    // Replaces the key's limits whole; {} removes them.
    limits: LimitsBody.optional(),
  })
  .strict();

export function registerKeyRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.get("/v1/keys", async (request) => {
    requireAdmin(request);
    return { keys: (await ctx.keys.list()).map(keyView) };
  });

  app.post("/v1/keys", async (request, reply) => {
    requireAdmin(request);
    const body = validatedBody(CreateKey, request.body);
    const created = await ctx.keys.create({
      name: body.name,
      scope: body.scope,
      tenant: body.tenant ?? null,
      limits: body.limits ? limitsFromBody(body.limits) : {},
    });
    // The secret is shown here once; only its hash is stored.
    return reply.code(201).send({ ...keyView(created.record), secret: created.secret, key: `${created.id}:${created.secret}` });
  });

  app.patch("/v1/keys/:id", async (request) => {
    requireAdmin(request);
    const { id } = request.params as { id: string };
    const body = validatedBody(PatchKey, request.body);
    const patch: KeySettingsPatch = {
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.tenant !== undefined ? { tenant: body.tenant } : {}),
      ...(body.limits !== undefined ? { limits: limitsFromBody(body.limits) } : {}),
    };
    if (!(await ctx.keys.update(id, patch))) throw new PlatformError("ERR_KEY_NOT_FOUND");
    const updated = await ctx.keys.get(id);
    if (!updated) throw new PlatformError("ERR_KEY_NOT_FOUND");
    return keyView(updated);
  });

  app.delete("/v1/keys/:id", async (request) => {
    const principal = requireAdmin(request);
    const { id } = request.params as { id: string };
    if (id === principal.keyId) throw new PlatformError("ERR_BAD_REQUEST", { message: "A key cannot revoke itself" });
    if (!(await ctx.keys.revoke(id))) throw new PlatformError("ERR_KEY_NOT_FOUND");
    return { id, revoked: true };
  });
}
