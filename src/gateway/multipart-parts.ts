/**
 * The body that completes a multipart upload, the same for fal's JS and Python clients.
 * @module
 */
import { z } from "zod";

export const MultipartCompleteBody = z.object({
  parts: z.array(z.object({ partNumber: z.number().int().min(1).max(10_000), etag: z.string().min(1).max(200) })).min(1).max(10_000),
});
