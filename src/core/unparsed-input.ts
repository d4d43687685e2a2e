/**
 * An app input that arrived as a JSON body too large to parse on the gateway's event loop: its
 * bytes, exactly as sent. The gateway checks it (JSON limits, the endpoint's schema) on a worker
 * thread and the scheduler writes these bytes to storage as the spilled input; the parsed value
 * only ever exists in the worker and in the runner. A 30 MB inline file thus costs the gateway's
 * main heap nothing and its memory about one copy of the body, instead of the body, its string,
 * the parsed value and the JSON written back out (src/gateway/json-body.ts).
 * @module
 */
export class UnparsedInput {
  constructor(
    /** The body's UTF-8 JSON. Replaced while a worker checks it (the bytes travel there and back without a copy). */
    public bytes: Buffer,
  ) {}
}
