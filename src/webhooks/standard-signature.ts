/**
 * Webhooks signed as Replicate signs them, by the Standard Webhooks scheme: headers `webhook-id`,
 * `webhook-timestamp` (seconds) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
 * `{id}.{timestamp}.{body}` under the secret's bytes). A secret is `whsec_` and base64, one per
 * tenant, derived from the server's webhook secret: a tenant that reads its own secret
 * (`GET /replicate/v1/webhooks/default/secret`) cannot sign another tenant's webhooks.
 * @module
 */
import { createHmac } from "node:crypto";

export function standardWebhookSecret(serverSecret: Buffer, tenant: string): string {
  const bytes = createHmac("sha256", serverSecret).update(`darkroom-standard-webhooks\0${tenant}`).digest();
  return `whsec_${bytes.toString("base64")}`;
}

export function signStandardWebhook(message: { id: string; timestampSec: number; body: string; secret: string }): Record<string, string> {
  const key = Buffer.from(message.secret.replace(/^whsec_/, ""), "base64");
  const signature = createHmac("sha256", key).update(`${message.id}.${message.timestampSec}.${message.body}`).digest("base64");
  return { "webhook-id": message.id, "webhook-timestamp": String(message.timestampSec), "webhook-signature": `v1,${signature}` };
}
