/**
 * The `s3` storage driver: objects in an S3-compatible bucket, below an optional key prefix.
 *
 * Layout inside the bucket, with `<p>` the prefix (empty, or ending in `/`):
 * - `<p><key>`: the object itself. Content type in `Content-Type`; file name, creation time and
 *   expiry in user metadata (`x-amz-meta-darkroom-*`).
 * - `<p>~expires/<expiresAt, 16 digits>/<key>`: an empty marker per put with an expiry. S3's own
 *   lifecycle rules count whole days per bucket, so expiry is ours: head/get treat an object past its
 *   metadata's `expiresAt` as missing, and sweepExpired lists the markers that are due (they sort by
 *   time) instead of reading the metadata of every object in the bucket.
 * - `<p>~multipart/<uploadId>/`: the staging area of multipart uploads (see below).
 *
 * `~` cannot occur in a key (keys.ts), so none of these names collides with an object, and two
 * drivers with different prefixes share a bucket without seeing each other's objects.
 *
 * Puts stream through s3-upload.ts, holding at most one part (`partSize`, 8 MiB by default) in memory.
 *
 * The interface's multipart uploads (built on multipart.ts) cannot map one-to-one onto S3's: S3
 * wants every part but the last to be at least 5 MiB, the caller picks the upload id, part bodies
 * have no announced length, and etags are sha256 (S3's are MD5). So each part is staged as an object
 * of its own, `~multipart/<uploadId>/<n>`, beside `<n>.json` ({ key, sha256, size }) and the
 * upload's `upload.json` ({ key }), which binds the upload to its key. A completion checks the etags
 * and sizes from the records first, so that a wrong one costs no transfer, then streams the parts in
 * order into one new object (an S3 multipart upload when it is large), hashing every part again on
 * the way, and deletes the staging area.
 * @module
 */
import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { PlatformError } from "../core/errors.js";
import { assertValidKey, assertValidUploadId } from "./keys.js";
import { createMultipartEngine, isPartName, MULTIPART_AGE_MS, type Binding, type PartStaging } from "./multipart.js";
import { checkPutOptions, expiresAtOf, isExpired } from "./put-options.js";
import { tooLarge } from "./receive-to-file.js";
import { createS3Upload, type UploadLimits } from "./s3-upload.js";
import { normalizePrefix } from "./s3-prefix.js";
import {
  MAX_PRESIGN_SECONDS,
  type ByteRange,
  type MultipartUploads,
  type ObjectMeta,
  type PresignedUrls,
  type PresignOptions,
  type PutOptions,
  type StorageDriver,
} from "./storage.js";

export { normalizePrefix };

export const DRIVER_NAME = "s3";

/** S3's smallest part (except the last) and a practical default above it. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
/** S3 refuses keys longer than this many bytes (UTF-8). */
const MAX_S3_KEY_BYTES = 1024;

const META_FILE_NAME = "darkroom-file-name";
const META_CREATED_AT = "darkroom-created-at";
const META_EXPIRES_AT = "darkroom-expires-at";

export interface S3StorageOptions {
  bucket: string;
  /** Key prefix inside the bucket, e.g. `darkroom/prod`; slashes at either end are optional. @default "" */
  prefix?: string;
  /** A custom endpoint (MinIO, R2, s3rver…); AWS's own when unset. */
  endpoint?: string;
  /** @default "us-east-1" */
  region?: string;
  /** `http://endpoint/bucket/key` instead of `http://bucket.endpoint/key`; most self-hosted servers need it. */
  forcePathStyle?: boolean;
  /** Static credentials or a provider; unset means the SDK's default chain (AWS_* variables, profiles, instance roles). */
  credentials?: S3ClientConfig["credentials"];
  /** A ready client (tests, custom middleware); endpoint, region, forcePathStyle and credentials are then unused. */
  client?: S3Client;
  /** Bytes per part of a streamed upload, at least {@link MIN_PART_SIZE}. @default DEFAULT_PART_SIZE */
  partSize?: number;
  /** Clock in unix ms for expiry; tests inject one. */
  now?: () => number;
}

export interface S3StorageDriver extends StorageDriver, MultipartUploads, PresignedUrls {
  readonly bucket: string;
  /** The normalised prefix: empty or ending in `/`. */
  readonly prefix: string;
  readonly client: S3Client;
  /** Closes the client's sockets, unless the client was handed in. */
  close(): void;
}

interface PartRecord {
  key: string;
  sha256: string;
  size: number;
}

function badRequest(message: string): PlatformError {
  return new PlatformError("ERR_BAD_REQUEST", { message });
}

function errorName(err: unknown): string | undefined {
  return (err as { name?: unknown } | null)?.name as string | undefined;
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

/** A missing key. NoSuchBucket is also a 404 but a configuration error, never "no object". */
function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  if (name === "NoSuchBucket") return false;
  return name === "NoSuchKey" || name === "NotFound" || httpStatus(err) === 404;
}

function isNotImplemented(err: unknown): boolean {
  return errorName(err) === "NotImplemented" || errorName(err) === "MethodNotAllowed" || httpStatus(err) === 501 || httpStatus(err) === 405;
}

/** The `length` bytes of `source` after the first `skip`; the source is destroyed once they are through. */
function sliceStream(source: Readable, skip: number, length: number): Readable {
  let toSkip = skip;
  let left = length;
  const out = new Readable({
    read() {
      source.resume();
    },
    destroy(err, callback) {
      source.destroy();
      callback(err);
    },
  });
  source.on("data", (chunk: Buffer) => {
    if (left <= 0) return;
    let piece = chunk;
    if (toSkip > 0) {
      const dropped = Math.min(toSkip, piece.length);
      toSkip -= dropped;
      piece = piece.subarray(dropped);
    }
    if (piece.length === 0) return;
    if (piece.length > left) piece = piece.subarray(0, left);
    left -= piece.length;
    const more = out.push(piece);
    if (left === 0) {
      out.push(null);
      source.destroy();
    } else if (!more) {
      source.pause();
    }
  });
  source.on("end", () => {
    if (left > 0) out.destroy(new Error("S3 response ended before the requested range"));
  });
  source.on("error", (err) => out.destroy(err));
  source.pause();
  return out;
}

async function readSmall(body: unknown): Promise<Buffer> {
  if (!(body instanceof Readable)) throw new Error("S3 response body is not a Node stream");
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function createS3Storage(options: S3StorageOptions): S3StorageDriver {
  if (typeof options.bucket !== "string" || options.bucket === "") throw badRequest("S3 storage needs a bucket");
  const bucket = options.bucket;
  const root = normalizePrefix(options.prefix);
  const expiresRoot = `${root}~expires/`;
  const multipartRoot = `${root}~multipart/`;
  const now = options.now ?? Date.now;
  const partSize = options.partSize ?? DEFAULT_PART_SIZE;
  if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE) throw badRequest(`partSize must be an integer of at least ${MIN_PART_SIZE} bytes`);

  const ownsClient = options.client === undefined;
  const client =
    options.client ??
    new S3Client({
      region: options.region ?? "us-east-1",
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.forcePathStyle !== undefined ? { forcePathStyle: options.forcePathStyle } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
    });

  const upload = createS3Upload(client, bucket, partSize);

  /** The bucket key of an object, after the same validation as every other driver. */
  function objectKey(key: string): string {
    assertValidKey(key);
    const full = `${root}${key}`;
    if (Buffer.byteLength(full) > MAX_S3_KEY_BYTES) throw badRequest(`storage key too long for S3 with prefix ${JSON.stringify(root)}`);
    return full;
  }

  function markerKey(key: string, expiresAt: number): string {
    return `${expiresRoot}${String(expiresAt).padStart(16, "0")}/${key}`;
  }

  function uploadRoot(uploadId: string): string {
    assertValidUploadId(uploadId);
    return `${multipartRoot}${uploadId}/`;
  }

  /** Our metadata from an S3 response; objects written by others (or presigned PUTs) get defaults. */
  function metaFrom(
    key: string,
    out: { ContentType?: string | undefined; Metadata?: Record<string, string> | undefined; LastModified?: Date | undefined },
    size: number,
  ): ObjectMeta {
    const m = out.Metadata ?? {};
    const createdAt = Number(m[META_CREATED_AT]);
    const expiresAt = m[META_EXPIRES_AT] === undefined || m[META_EXPIRES_AT] === "" ? null : Number(m[META_EXPIRES_AT]);
    let fileName = key.slice(key.lastIndexOf("/") + 1);
    if (m[META_FILE_NAME] !== undefined) {
      try {
        fileName = decodeURIComponent(m[META_FILE_NAME]);
      } catch {
        // Someone else's malformed value: the key's last segment is the better name.
      }
    }
    return {
      key,
      size,
      contentType: out.ContentType ?? "application/octet-stream",
      fileName,
      createdAt: Number.isFinite(createdAt) ? createdAt : (out.LastModified?.getTime() ?? 0),
      expiresAt: expiresAt !== null && Number.isFinite(expiresAt) ? expiresAt : null,
    };
  }

  /** What a put stores: metadata values are HTTP headers, hence the URI-encoded file name. */
  function describePut(key: string, o: PutOptions) {
    const createdAt = now();
    const expiresAt = expiresAtOf(createdAt, o);
    if (expiresAt !== null && !Number.isSafeInteger(expiresAt)) throw badRequest("expiresInSeconds is too large");
    if (expiresAt !== null && Buffer.byteLength(markerKey(key, expiresAt)) > MAX_S3_KEY_BYTES) {
      throw badRequest(`storage key too long for an expiring object on S3 with prefix ${JSON.stringify(root)}`);
    }
    const metadata: Record<string, string> = {
      [META_FILE_NAME]: encodeURIComponent(o.fileName),
      [META_CREATED_AT]: String(createdAt),
      ...(expiresAt !== null ? { [META_EXPIRES_AT]: String(expiresAt) } : {}),
    };
    return { createdAt, expiresAt, metadata, contentType: o.contentType, key };
  }
  type Description = ReturnType<typeof describePut>;

  /** Runs just before an object becomes visible: an expiring object must never exist without its marker. */
  async function beforeCommit(d: Description): Promise<void> {
    if (d.expiresAt === null) return;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: markerKey(d.key, d.expiresAt), Body: Buffer.alloc(0), ContentLength: 0 }));
  }

  async function headRaw(fullKey: string) {
    try {
      return await client.send(new HeadObjectCommand({ Bucket: bucket, Key: fullKey }));
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async function putObject(key: string, body: Readable | Buffer | Uint8Array, o: PutOptions): Promise<ObjectMeta> {
    const target = objectKey(key);
    checkPutOptions(o);
    const d = describePut(key, o);
    const size = await upload(target, body, d, { maxBytes: o.maxBytes }, () => beforeCommit(d));
    return { key, size, contentType: o.contentType, fileName: o.fileName, createdAt: d.createdAt, expiresAt: d.expiresAt };
  }

  /** Bytes of the parts staged under `dir`, less part `except` (the one being replaced). */
  async function stagedBytes(dir: string, except: number | null): Promise<number> {
    let total = 0;
    for await (const item of listKeys(dir)) {
      const name = item.key.slice(dir.length);
      if (isPartName(name) && name !== String(except)) total += item.size;
    }
    return total;
  }

  async function head(key: string): Promise<ObjectMeta | null> {
    const out = await headRaw(objectKey(key));
    if (!out) return null;
    const meta = metaFrom(key, out, out.ContentLength ?? 0);
    return isExpired(meta, now()) ? null : meta;
  }

  async function getJson<T>(fullKey: string): Promise<T | null> {
    try {
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: fullKey }));
      return JSON.parse((await readSmall(out.Body)).toString("utf8")) as T;
    } catch (err) {
      if (isNotFound(err) || err instanceof SyntaxError) return null;
      throw err;
    }
  }

  async function putJson(fullKey: string, value: unknown): Promise<void> {
    const body = Buffer.from(JSON.stringify(value));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: fullKey, Body: body, ContentLength: body.length, ContentType: "application/json" }));
  }

  async function* listKeys(prefix: string): AsyncGenerator<{ key: string; lastModified: number; size: number }> {
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
      for (const item of page.Contents ?? []) {
        if (item.Key !== undefined) yield { key: item.Key, lastModified: item.LastModified?.getTime() ?? 0, size: item.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async function deleteQuietly(fullKey: string): Promise<void> {
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: fullKey }));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Deletes `fullKey` only if it is still the version with `etag`: a put landing between the sweep's
   * head and its delete must survive. Servers without conditional deletes get a plain delete.
   */
  async function deleteIfUnchanged(fullKey: string, etag: string | undefined): Promise<boolean> {
    if (etag !== undefined) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: fullKey, IfMatch: etag }));
        return true;
      } catch (err) {
        if (httpStatus(err) === 412 || errorName(err) === "PreconditionFailed") return false;
        if (isNotFound(err)) return false;
        // A server that does not know the header may refuse it as a bad request rather than 501.
        if (!isNotImplemented(err) && httpStatus(err) !== 400) throw err;
      }
    }
    await deleteQuietly(fullKey);
    return true;
  }

  async function sweepMarkers(at: number): Promise<number> {
    let removed = 0;
    for await (const { key: marker } of listKeys(expiresRoot)) {
      const rest = marker.slice(expiresRoot.length);
      const slash = rest.indexOf("/");
      const due = Number(rest.slice(0, slash));
      // Markers sort by time, so the first one not yet due ends the sweep.
      if (slash < 0 || !Number.isFinite(due)) {
        await deleteQuietly(marker);
        continue;
      }
      if (due > at) break;
      const key = rest.slice(slash + 1);
      const full = `${root}${key}`;
      const head = await headRaw(full);
      if (head) {
        const meta = metaFrom(key, head, head.ContentLength ?? 0);
        if (isExpired(meta, at) && (await deleteIfUnchanged(full, head.ETag))) removed++;
        // Otherwise a later put replaced the object; if that one expires, it has its own marker.
      }
      await deleteQuietly(marker);
    }
    return removed;
  }

  /** S3 multipart uploads of puts that crashed midway are invisible but billed until aborted. */
  async function abortStaleUploads(at: number): Promise<void> {
    try {
      let keyMarker: string | undefined;
      let idMarker: string | undefined;
      for (;;) {
        const page = await client.send(
          new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: root, ...(keyMarker ? { KeyMarker: keyMarker, UploadIdMarker: idMarker } : {}) }),
        );
        for (const u of page.Uploads ?? []) {
          if (u.Key && u.UploadId && u.Initiated && at - u.Initiated.getTime() > MULTIPART_AGE_MS) {
            await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId })).catch(() => undefined);
          }
        }
        if (!page.IsTruncated) break;
        keyMarker = page.NextKeyMarker;
        idMarker = page.NextUploadIdMarker;
      }
    } catch (err) {
      // Some S3-compatible servers (s3rver among them) do not list multipart uploads.
      if (!isNotImplemented(err)) throw err;
    }
  }

  const staging: PartStaging = {
    async bind(uploadId, key) {
      const record = await getJson<Binding>(`${uploadRoot(uploadId)}upload.json`);
      if (record !== null) return record;
      // Two first parts racing for different keys could both write here; completion re-checks every
      // part's own record, so such an upload can never be assembled into the wrong key.
      await putJson(`${uploadRoot(uploadId)}upload.json`, { key });
      return { key };
    },
    binding: (uploadId) => getJson<Binding>(`${uploadRoot(uploadId)}upload.json`),
    stagedBytes: (uploadId, except) => stagedBytes(uploadRoot(uploadId), except),
    async receivePart(key, uploadId, partNumber, body, { hash, maxBytes, prepare }) {
      const staged = `${uploadRoot(uploadId)}${partNumber}`;
      // The part's own limit is known once `ready` has bound the upload and listed its other parts.
      const limits: UploadLimits = { maxBytes, hash };
      limits.ready = prepare().then((limit) => void Object.assign(limits, limit));
      // Re-uploading a part number replaces it, as in S3; its record is written after the bytes, so
      // a record never describes bytes that are not there yet.
      const size = await upload(staged, body, { contentType: "application/octet-stream" }, limits, async () => undefined);
      return {
        size,
        commit: (sha256) => putJson(`${staged}.json`, { key, sha256, size } satisfies PartRecord),
        async discard() {
          await deleteQuietly(staged);
          await deleteQuietly(`${staged}.json`);
        },
      };
    },
    async precheck(key, uploadId, parts, maxBytes) {
      let total = 0;
      for (const part of parts) {
        const record = await getJson<PartRecord>(`${uploadRoot(uploadId)}${part.partNumber}.json`);
        if (record === null) throw badRequest(`part ${part.partNumber} was not uploaded`);
        if (record.key !== key) throw badRequest("multipart upload belongs to a different key");
        if (record.sha256 !== part.etag) throw badRequest(`etag mismatch for part ${part.partNumber}`);
        total += record.size;
        if (maxBytes !== undefined && total > maxBytes) throw tooLarge(maxBytes);
      }
    },
    async openPart(uploadId, partNumber) {
      let out;
      try {
        out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `${uploadRoot(uploadId)}${partNumber}` }));
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
      if (!(out.Body instanceof Readable)) throw new Error("S3 response body is not a Node stream");
      return out.Body;
    },
    async listUploads() {
      const uploads = new Map<string, number>();
      for await (const item of listKeys(multipartRoot)) {
        const id = item.key.slice(multipartRoot.length).split("/")[0] ?? "";
        uploads.set(id, Math.max(uploads.get(id) ?? 0, item.lastModified));
      }
      return [...uploads].map(([uploadId, lastActivity]) => ({ uploadId, lastActivity }));
    },
    async drop(uploadId) {
      for await (const item of listKeys(`${multipartRoot}${uploadId}/`)) await deleteQuietly(item.key);
    },
  };
  const multipart = createMultipartEngine(staging, putObject);

  return {
    name: DRIVER_NAME,
    bucket,
    prefix: root,
    client,

    put: putObject,

    head,

    async get(key: string, range?: ByteRange): Promise<{ meta: ObjectMeta; body: Readable } | null> {
      const full = objectKey(key);
      const unsatisfiable = (size?: number) =>
        new PlatformError("ERR_RANGE_NOT_SATISFIABLE", {
          message: `range ${range?.start}-${range?.end} is not satisfiable${size === undefined ? "" : ` for ${size} bytes`}`,
        });
      if (range) {
        const valid = Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.end >= range.start;
        // S3 ignores a malformed Range header and sends everything, so it is refused here; as in the
        // local driver, a missing object is still just missing.
        if (!valid) {
          if ((await head(key)) === null) return null;
          throw unsatisfiable();
        }
      }
      let out;
      try {
        out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: full, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }));
      } catch (err) {
        if (isNotFound(err)) return null;
        if (httpStatus(err) === 416 || errorName(err) === "InvalidRange") {
          const meta = await head(key);
          if (meta === null) return null;
          throw unsatisfiable(meta.size);
        }
        throw err;
      }
      const raw = out.Body;
      if (!(raw instanceof Readable)) throw new Error("S3 response body is not a Node stream");
      // A ranged response's Content-Length is the slice; the whole size is after the slash.
      const served = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(out.ContentRange ?? "");
      const meta = metaFrom(key, out, served ? Number(served[3]) : (out.ContentLength ?? 0));
      if (isExpired(meta, now())) {
        raw.destroy();
        return null;
      }
      if (!range) return { meta, body: raw };
      if (range.start >= meta.size) {
        raw.destroy();
        throw unsatisfiable(meta.size);
      }
      // HTTP lets a server answer a Range with more than was asked (the whole object, or s3rver's
      // `bytes=0-0` read as "from 0"): cut what came back to the range the caller asked for.
      const servedStart = served ? Number(served[1]) : 0;
      const end = Math.min(range.end, meta.size - 1);
      const wanted = end - range.start + 1;
      const servedLength = served ? Number(served[2]) - servedStart + 1 : meta.size;
      if (servedStart === range.start && servedLength === wanted) return { meta, body: raw };
      if (servedStart > range.start || servedStart + servedLength < range.start + wanted) {
        raw.destroy();
        throw new Error(`S3 served bytes ${servedStart}+${servedLength} for a request of ${range.start}-${end}`);
      }
      return { meta, body: sliceStream(raw, range.start - servedStart, wanted) };
    },

    async delete(key: string): Promise<void> {
      await deleteQuietly(objectKey(key));
    },

    async sweepExpired(at: number = now()): Promise<number> {
      const removed = await sweepMarkers(at);
      await multipart.sweepUploads(at);
      await abortStaleUploads(at);
      return removed;
    },

    putPart: multipart.putPart,
    completeMultipart: multipart.completeMultipart,

    async presign(key: string, p: PresignOptions): Promise<string> {
      const full = objectKey(key);
      if (!p || (p.method !== "GET" && p.method !== "PUT")) throw badRequest('presign method must be "GET" or "PUT"');
      if (!(Number.isFinite(p.expiresInSeconds) && p.expiresInSeconds >= 1)) throw badRequest("expiresInSeconds must be at least 1");
      let expiresIn = Math.min(Math.floor(p.expiresInSeconds), MAX_PRESIGN_SECONDS);
      if (p.method === "PUT") {
        const command = new PutObjectCommand({ Bucket: bucket, Key: full, ...(p.contentType ? { ContentType: p.contentType } : {}) });
        return getSignedUrl(client, command, { expiresIn });
      }
      const meta = await head(key);
      if (meta === null) throw new PlatformError("ERR_FILE_NOT_FOUND");
      // The URL bypasses our expiry check, so it must not outlive the object.
      if (meta.expiresAt !== null) expiresIn = Math.max(1, Math.min(expiresIn, Math.ceil((meta.expiresAt - now()) / 1000)));
      return getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: full }), { expiresIn });
    },

    close(): void {
      if (ownsClient) client.destroy();
    },
  };
}
