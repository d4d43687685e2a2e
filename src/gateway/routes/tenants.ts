/**
 * The admin-only tenant routes under `/v1/tenants`: every tenant that is configured or has keys, one
 * tenant, and `PUT` to create or replace a tenant's weight and limits.
 *
 * A tenant needs no creating: any name a key gives is one, with weight 1 and no limits until
 * configured here. A key without a tenant is a tenant of its own, named after the key's id.
 * @module
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { LimitsBody, limitsFromBody, limitsView, TENANT_NAME } from "../../auth/limits-body.js";
import { PlatformError } from "../../core/errors.js";
import { DEFAULT_TENANT_WEIGHT, tenantOf, type TenantRecord } from "../../core/tenants.js";
import type { ApiKeyRecord } from "../../store/store.js";
import { requireAdmin, type GatewayContext } from "../context.js";
import { validatedBody } from "../validated-body.js";

/** Most a weight may be: a tenant gets at most this many times the share of a weight-1 tenant. */
const MAX_WEIGHT = 1000;

const PutTenant = z
  .object({
    weight: z.number().positive().max(MAX_WEIGHT).optional(),
    limits: LimitsBody.optional(),
  })
  .strict();

/** Active keys per tenant (revoked keys belong to nobody's traffic). */
function activeKeysByTenant(keys: readonly ApiKeyRecord[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const key of keys) {
    if (key.revokedAt !== null) continue;
    const tenant = tenantOf(key);
    counts.set(tenant, (counts.get(tenant) ?? 0) + 1);
  }
  return counts;
}

/** A tenant as the API shows it; `record` null for one that has keys but was never configured. */
function tenantView(name: string, record: TenantRecord | null, keys: number): Record<string, unknown> {
  return {
    name,
    weight: record?.weight ?? DEFAULT_TENANT_WEIGHT,
    limits: limitsView(record?.limits ?? {}),
    keys,
    configured: record !== null,
    created_at: record ? new Date(record.createdAt).toISOString() : null,
    updated_at: record ? new Date(record.updatedAt).toISOString() : null,
  };
}

export function registerTenantRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.get("/v1/tenants", async (request) => {
    requireAdmin(request);
    const [configured, keys] = await Promise.all([ctx.store.listTenants(), ctx.keys.list()]);
    const records = new Map(configured.map((t) => [t.name, t]));
    const counts = activeKeysByTenant(keys);
    const names = [...new Set([...records.keys(), ...counts.keys()])].sort();
    return { tenants: names.map((name) => tenantView(name, records.get(name) ?? null, counts.get(name) ?? 0)) };
  });

  app.get("/v1/tenants/:name", async (request) => {
    requireAdmin(request);
    const { name } = request.params as { name: string };
    const [record, keys] = await Promise.all([TENANT_NAME.test(name) ? ctx.store.getTenant(name) : null, ctx.keys.list()]);
    const count = activeKeysByTenant(keys).get(name) ?? 0;
    if (!record && count === 0) throw new PlatformError("ERR_TENANT_NOT_FOUND", { message: `Tenant '${name}' is neither configured nor named by an active key` });
    return tenantView(name, record, count);
  });

  app.put("/v1/tenants/:name", async (request) => {
    requireAdmin(request);
    const { name } = request.params as { name: string };
    if (!TENANT_NAME.test(name)) {
      throw new PlatformError("ERR_VALIDATION", {
        fieldErrors: [{ loc: ["path", "name"], msg: "1 to 64 letters, digits, '.', '_' or '-'", type: "invalid_format" }],
      });
    }
    const settings = validatedBody(PutTenant, request.body);
    // PUT replaces: what the body leaves out goes back to the default (weight 1, no limits).
    const record = await ctx.keys.tenants.put({
      name,
      weight: settings.weight ?? DEFAULT_TENANT_WEIGHT,
      limits: settings.limits ? limitsFromBody(settings.limits) : {},
    });
    const count = activeKeysByTenant(await ctx.keys.list()).get(name) ?? 0;
    return tenantView(name, record, count);
  });
}
