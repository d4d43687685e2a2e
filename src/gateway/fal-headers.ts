/**
 * fal's request headers: queue priority, the start deadline, and the lifecycle of stored objects
 * (`X-Fal-Object-Lifecycle(-Preference)`), for a request's outputs and for uploads.
 * @module
 */
import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { PlatformError } from "../core/errors.js";
import type { Priority } from "../core/types.js";

const LifecycleHeader = z.object({ expiration_duration_seconds: z.number().int().positive().optional() }).passthrough();

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** `x-fal-queue-priority` */
export function parsePriority(request: FastifyRequest): Priority {
  const value = (header(request, "x-fal-queue-priority") ?? "normal").trim().toLowerCase();
  if (value !== "normal" && value !== "low") {
    throw new PlatformError("ERR_BAD_REQUEST", { message: `x-fal-queue-priority must be 'normal' or 'low', got '${value}'` });
  }
  return value;
}

/** `x-fal-request-timeout`: float seconds until the request must have started (JS sends "30", Python "30.0"). */
export function parseStartDeadline(request: FastifyRequest, now: number): number | null {
  const raw = header(request, "x-fal-request-timeout");
  if (raw === undefined || raw.trim() === "") return null;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new PlatformError("ERR_BAD_REQUEST", { message: `x-fal-request-timeout must be a positive number of seconds, got '${raw}'` });
  }
  return now + Math.round(seconds * 1000);
}

/** Seconds until expiry from fal's `X-Fal-Object-Lifecycle(-Preference)` header, if sent. */
export function lifecycleSeconds(headerValue: string | string[] | undefined): number | undefined {
  const raw = Array.isArray(headerValue) ? headerValue[0] : headerValue;
  if (!raw) return undefined;
  try {
    return LifecycleHeader.parse(JSON.parse(raw)).expiration_duration_seconds;
  } catch {
    throw new PlatformError("ERR_BAD_REQUEST", { message: "X-Fal-Object-Lifecycle must be JSON like {\"expiration_duration_seconds\": 3600}" });
  }
}

/** `x-fal-object-lifecycle-preference`: how long this request's output files are kept. */
export function outputTtlOf(request: FastifyRequest): number | null {
  return lifecycleSeconds(request.headers["x-fal-object-lifecycle-preference"]) ?? null;
}

/** How long an uploaded file is kept: `x-fal-object-lifecycle`, or else the `-preference` form. */
export function uploadTtlOf(request: FastifyRequest): number | undefined {
  return lifecycleSeconds(request.headers["x-fal-object-lifecycle"] ?? request.headers["x-fal-object-lifecycle-preference"]);
}
