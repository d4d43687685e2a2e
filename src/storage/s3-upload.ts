/**
 * Streamed uploads of one S3 object, for the `s3` driver (s3-storage.ts). Never more than one part
 * (`partSize`) is held in memory: a body that ends within the first part becomes one PutObject, a
 * longer one a real S3 multipart upload whose parts are sent as they fill. Nothing is visible before
 * the final PutObject/CompleteMultipartUpload, so a refused or failed upload leaves the previous
 * version in place.
 * @module
 */
import type { Hash } from "node:crypto";
import type { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { PlatformError } from "../core/errors.js";
import { pumpStream, tooLarge, type Limit } from "./receive-to-file.js";

/** What an uploaded object carries besides its bytes. */
export interface UploadDescription {
  contentType: string;
  metadata?: Record<string, string>;
}

/** A byte limit that may tighten once `ready` is done, and a hash fed every byte. */
export type UploadLimits = Limit & { hash?: Hash | undefined; ready?: Promise<void> };

export type S3Upload = (
  target: string,
  body: Readable | Buffer | Uint8Array,
  d: UploadDescription,
  limits: UploadLimits,
  commit: (size: number) => Promise<void>,
) => Promise<number>;

/** The `upload` function of a driver on `client` and `bucket`. */
export function createS3Upload(client: S3Client, bucket: string, partSize: number): S3Upload {
  /**
   * Collects written bytes into parts and ships each one as it fills. A body that ends within the
   * first part is one PutObject; otherwise the parts go to an S3 multipart upload, created lazily.
   */
  function createUpload(target: string, contentType: string, metadata: Record<string, string> | undefined) {
    let chunks: Buffer[] = [];
    let buffered = 0;
    let multipartId: string | undefined;
    // The SDK puts a CRC32 on every part by default, and AWS refuses part checksums on an upload
    // created without an algorithm ("Checksum Type mismatch … expected null"). So the upload names
    // CRC32 and the completion repeats each part's checksum, as AWS documents.
    const parts: CompletedPart[] = [];

    const take = (): Buffer => {
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, buffered);
      chunks = [];
      buffered = 0;
      return body;
    };

    const sendPart = async (): Promise<void> => {
      const body = take();
      if (multipartId === undefined) {
        const created = await client.send(
          new CreateMultipartUploadCommand({
            Bucket: bucket,
            Key: target,
            ContentType: contentType,
            ChecksumAlgorithm: "CRC32",
            ...(metadata ? { Metadata: metadata } : {}),
          }),
        );
        if (!created.UploadId) throw new Error("S3 returned no multipart upload id");
        multipartId = created.UploadId;
      }
      const PartNumber = parts.length + 1;
      const sent = await client.send(
        new UploadPartCommand({ Bucket: bucket, Key: target, UploadId: multipartId, PartNumber, Body: body, ContentLength: body.length, ChecksumAlgorithm: "CRC32" }),
      );
      parts.push({ PartNumber, ETag: sent.ETag, ...(sent.ChecksumCRC32 ? { ChecksumCRC32: sent.ChecksumCRC32 } : {}) });
    };

    return {
      write(chunk: Buffer): Promise<void> | undefined {
        chunks.push(chunk);
        buffered += chunk.length;
        return buffered >= partSize ? sendPart() : undefined;
      },
      async finish(commit: () => Promise<void>): Promise<void> {
        if (multipartId === undefined) {
          const body = take();
          await commit();
          await client.send(
            new PutObjectCommand({ Bucket: bucket, Key: target, Body: body, ContentLength: body.length, ContentType: contentType, ...(metadata ? { Metadata: metadata } : {}) }),
          );
          return;
        }
        if (buffered > 0) await sendPart();
        await commit();
        await client.send(
          new CompleteMultipartUploadCommand({ Bucket: bucket, Key: target, UploadId: multipartId, MultipartUpload: { Parts: parts } }),
        );
        multipartId = undefined;
      },
      /** Best effort: a leftover upload is invisible, and sweepExpired aborts it after a day. */
      async abort(): Promise<void> {
        chunks = [];
        buffered = 0;
        if (multipartId === undefined) return;
        const UploadId = multipartId;
        multipartId = undefined;
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: target, UploadId })).catch(() => undefined);
      },
    };
  }

  /**
   * Streams `body` to `target`. `commit` runs right before the object becomes visible, with the
   * size. Must be called before the caller awaits anything, so that the stream's errors are listened
   * to from the start. `limits` is read as the bytes arrive: `ready` may tighten it once it knows
   * more (the bytes a multipart upload's other parts hold), and the total is checked against it again
   * once `ready` is done.
   */
  async function upload(
    target: string,
    body: Readable | Buffer | Uint8Array,
    d: UploadDescription,
    limits: UploadLimits,
    commit: (size: number) => Promise<void>,
  ): Promise<number> {
    // Awaited further down; until then a failure must not count as unhandled.
    limits.ready?.catch(() => undefined);
    const overLimit = (size: number): boolean => limits.maxBytes !== undefined && size > limits.maxBytes;
    const refusal = (): PlatformError => (limits.refuse ?? tooLarge)(limits.maxBytes ?? 0);
    if (body instanceof Uint8Array) {
      const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
      if (overLimit(buf.length)) throw refusal();
      limits.hash?.update(buf);
      await limits.ready;
      if (overLimit(buf.length)) throw refusal();
      await commit(buf.length);
      await client.send(
        new PutObjectCommand({ Bucket: bucket, Key: target, Body: buf, ContentLength: buf.length, ContentType: d.contentType, ...(d.metadata ? { Metadata: d.metadata } : {}) }),
      );
      return buf.length;
    }
    const pending = createUpload(target, d.contentType, d.metadata);
    const ready = limits.ready;
    let first = true;
    try {
      // `limits` itself, not a copy: what `ready` tightens applies to the chunks still to come.
      const size = await pumpStream(body, limits, (chunk) => {
        if (first && ready) {
          first = false;
          return ready.then(() => pending.write(chunk));
        }
        return pending.write(chunk);
      });
      await ready;
      if (overLimit(size)) throw refusal();
      await pending.finish(() => commit(size));
      return size;
    } catch (err) {
      await pending.abort();
      throw err;
    }
  }

  return upload;
}
