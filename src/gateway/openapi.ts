/**
 * OpenAPI 3.1 document of one app: its endpoints on the queue host, with input and output JSON
 * Schemas (2020-12, which OpenAPI 3.1 uses as is).
 * @module
 */
import type { AppManifest, JsonSchema } from "../core/types.js";

function withoutDialect(schema: JsonSchema): JsonSchema {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

function schemaName(appId: string, path: string, io: "Input" | "Output"): string {
  const base = `${appId}/${path}`
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((p) => p[0]?.toUpperCase() + p.slice(1))
    .join("");
  return `${base}${io}`;
}

export function openApiDocument(app: AppManifest, baseUrl: string): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  const schemas: Record<string, JsonSchema> = {};
  const errorRef = { $ref: "#/components/schemas/HTTPError" };
  for (const e of app.endpoints) {
    const inName = schemaName(app.id, e.path, "Input");
    const outName = schemaName(app.id, e.path, "Output");
    schemas[inName] = withoutDialect(e.input);
    schemas[outName] = withoutDialect(e.output);
    const suffix = e.path ? `/${e.path}` : "";
    if (e.kind === "realtime") {
      paths[`/${app.id}${suffix}`] = {
        get: {
          summary: e.description ?? "Realtime WebSocket (msgpack frames)",
          "x-fal-protocol": "websocket",
          operationId: `${inName}Realtime`,
          responses: { "101": { description: "Switching protocols" } },
        },
      };
      continue;
    }
    paths[`/${app.id}${suffix}`] = {
      post: {
        summary: e.description ?? `Submit to ${app.id}${suffix}`,
        operationId: `${inName}Submit`,
        requestBody: { required: true, content: { "application/json": { schema: { $ref: `#/components/schemas/${inName}` } } } },
        responses: {
          "200": { description: "Queued", content: { "application/json": { schema: { $ref: "#/components/schemas/QueueStatus" } } } },
          "422": { description: "Validation error", content: { "application/json": { schema: { $ref: "#/components/schemas/ValidationError" } } } },
          default: { description: "Error", content: { "application/json": { schema: errorRef } } },
        },
      },
    };
  }
  const requestPath = `/${app.id}/requests/{request_id}`;
  const idParam = [{ name: "request_id", in: "path", required: true, schema: { type: "string" } }];
  const firstOutput = app.endpoints.find((e) => e.kind !== "realtime");
  paths[`${requestPath}/status`] = {
    get: {
      operationId: "getStatus",
      parameters: [...idParam, { name: "logs", in: "query", schema: { type: "string", enum: ["0", "1", "true", "false"] } }],
      responses: { "200": { description: "Completed", content: { "application/json": { schema: { $ref: "#/components/schemas/QueueStatus" } } } }, "202": { description: "Pending" } },
    },
  };
  paths[requestPath] = {
    get: {
      operationId: "getResult",
      parameters: idParam,
      responses: {
        "200": {
          description: "The output",
          content: { "application/json": { schema: firstOutput ? { $ref: `#/components/schemas/${schemaName(app.id, firstOutput.path, "Output")}` } : {} } },
        },
        "400": { description: "Still in progress", content: { "application/json": { schema: errorRef } } },
      },
    },
  };
  paths[`${requestPath}/cancel`] = { put: { operationId: "cancel", parameters: idParam, responses: { "202": { description: "Cancellation requested" }, "400": { description: "Already completed" } } } };
  schemas["QueueStatus"] = {
    type: "object",
    required: ["status", "request_id"],
    properties: {
      status: { enum: ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"] },
      request_id: { type: "string" },
      response_url: { type: "string" },
      status_url: { type: "string" },
      cancel_url: { type: "string" },
      queue_position: { type: "integer" },
      logs: { type: ["array", "null"] },
      error: { type: "string" },
      error_type: { type: "string" },
    },
  };
  schemas["HTTPError"] = { type: "object", properties: { detail: { type: "string" }, error_type: { type: "string" } } };
  schemas["ValidationError"] = {
    type: "object",
    properties: {
      detail: {
        type: "array",
        items: { type: "object", required: ["loc", "msg", "type"], properties: { loc: { type: "array" }, msg: { type: "string" }, type: { type: "string" } } },
      },
    },
  };
  return {
    openapi: "3.1.0",
    info: {
      title: app.metadata.display_name,
      version: app.version,
      description: app.metadata.description,
      "x-fal-metadata": { endpointId: app.id, category: app.metadata.category },
      ...(app.metadata.license ? { license: { name: app.metadata.license } } : {}),
    },
    servers: [{ url: `${baseUrl}/queue` }],
    paths,
    components: {
      schemas,
      securitySchemes: { apiKeyAuth: { type: "apiKey", in: "header", name: "Authorization", description: "Key <id>:<secret>" } },
    },
    security: [{ apiKeyAuth: [] }],
  };
}
