/**
 * The Ed25519 keys that sign outgoing webhooks, kept in `<dataDir>/webhook-keys.json` (mode 0600).
 *
 * The file holds a list rather than one key so that keys can rotate without breaking receivers: the
 * newest key signs, and every key in the list stays published in the JWKS until it is retired. A
 * receiver caches the JWKS for up to 24 h (docs/api.md, Webhooks), so an operator should rotate, wait a day,
 * and only then retire the old key.
 *
 * Key ids are RFC 7638 JWK thumbprints, so the same key always gets the same `kid` and nothing but the
 * key material has to be trusted from the file.
 * @module
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import path from "node:path";
import { createPrivateFileOnce, readPrivateFile, writePrivateFile } from "../auth/private-file.js";
import type { Ed25519Jwk, Jwks } from "./signature.js";

export const SIGNING_KEYS_FILE = "webhook-keys.json";

export interface SigningKey {
  readonly kid: string;
  /** unix ms */
  readonly createdAt: number;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicJwk: Ed25519Jwk;
}

/** On-disk form. The private key is a JWK (`d` = base64url raw seed), which Node imports directly. */
interface StoredKey {
  kid: string;
  createdAt: number;
  privateJwk: { kty: "OKP"; crv: "Ed25519"; x: string; d: string };
}

interface StoredFile {
  version: 1;
  keys: StoredKey[];
}

/** RFC 7638 thumbprint: sha256 over the required members in lexicographic order, no whitespace. */
function thumbprint(x: string): string {
  return createHash("sha256").update(`{"crv":"Ed25519","kty":"OKP","x":${JSON.stringify(x)}}`).digest("base64url");
}

function generateStoredKey(now: number): StoredKey {
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  if (typeof jwk.x !== "string" || typeof jwk.d !== "string") throw new Error("Ed25519 JWK export lacks x or d");
  return { kid: thumbprint(jwk.x), createdAt: now, privateJwk: { kty: "OKP", crv: "Ed25519", x: jwk.x, d: jwk.d } };
}

function materialize(stored: StoredKey): SigningKey {
  const privateKey = createPrivateKey({ key: stored.privateJwk, format: "jwk" });
  const publicKey = createPublicKey(privateKey);
  // Derive `x` from the private key instead of trusting the stored copy: a hand-edited file with a
  // mismatched `x` would otherwise publish a key that verifies nothing we sign.
  const x = publicKey.export({ format: "jwk" }).x;
  if (typeof x !== "string") throw new Error("Ed25519 public key export lacks x");
  const kid = thumbprint(x);
  return {
    kid,
    createdAt: stored.createdAt,
    privateKey,
    publicKey,
    publicJwk: { kty: "OKP", crv: "Ed25519", x, kid, use: "sig", alg: "EdDSA" },
  };
}

function parseFile(text: string, file: string): StoredFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // Never regenerate over a damaged file: receivers trust the old keys, and the operator should
    // decide whether to restore it or start over.
    throw new Error(`${file} is not valid JSON; restore it or delete it to generate new webhook keys`, { cause: err });
  }
  const keys = (parsed as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new Error(`${file} holds no keys; delete it to generate new webhook keys`);
  for (const k of keys) {
    const jwk = (k as Partial<StoredKey>).privateJwk;
    if (typeof (k as Partial<StoredKey>).createdAt !== "number" || typeof jwk?.d !== "string" || typeof jwk.x !== "string") {
      throw new Error(`${file} has a malformed key entry`);
    }
  }
  return { version: 1, keys: keys as StoredKey[] };
}

function serialize(keys: readonly SigningKey[]): string {
  const stored: StoredFile = {
    version: 1,
    keys: keys.map((k) => {
      const jwk = k.privateKey.export({ format: "jwk" });
      return { kid: k.kid, createdAt: k.createdAt, privateJwk: { kty: "OKP", crv: "Ed25519", x: jwk.x ?? "", d: jwk.d ?? "" } };
    }),
  };
  return `${JSON.stringify(stored, null, 2)}\n`;
}

export interface SigningKeysOptions {
  /** Clock for `createdAt`, unix ms. */
  now?: () => number;
}

export class SigningKeys {
  private keys: SigningKey[];

  private constructor(
    readonly file: string,
    keys: SigningKey[],
    private readonly now: () => number,
  ) {
    this.keys = keys;
  }

  /** Loads the key list from `<dataDir>/webhook-keys.json`, creating it with one fresh key on first start. */
  static async open(dataDir: string, options: SigningKeysOptions = {}): Promise<SigningKeys> {
    const now = options.now ?? Date.now;
    const file = path.join(dataDir, SIGNING_KEYS_FILE);
    let text = await readPrivateFile(file);
    if (text === null) {
      const initial = `${JSON.stringify({ version: 1, keys: [generateStoredKey(now())] } satisfies StoredFile, null, 2)}\n`;
      // If another process created the file first, its key wins and ours is dropped unused.
      const created = await createPrivateFileOnce(file, initial);
      text = created ? initial : await readPrivateFile(file);
      if (text === null) throw new Error(`${file} vanished while it was being created`);
    }
    return new SigningKeys(file, parseFile(text, file).keys.map(materialize), now);
  }

  /** The key that signs: the newest (the last one added on a tie). */
  current(): SigningKey {
    let newest = this.keys[0];
    for (const k of this.keys) if (!newest || k.createdAt >= newest.createdAt) newest = k;
    if (!newest) throw new Error("no webhook signing key");
    return newest;
  }

  list(): readonly SigningKey[] {
    return this.keys;
  }

  /** Every key, newest first, as served at `/.well-known/jwks.json`. */
  jwks(): Jwks {
    const sorted = [...this.keys].sort((a, b) => b.createdAt - a.createdAt);
    return { keys: sorted.map((k) => ({ ...k.publicJwk })) };
  }

  /** Adds a fresh key, which signs from now on; the older ones stay published. */
  async rotate(): Promise<SigningKey> {
    const fresh = materialize(generateStoredKey(Math.max(this.now(), this.current().createdAt + 1)));
    const next = [...this.keys, fresh];
    await writePrivateFile(this.file, serialize(next));
    this.keys = next;
    return fresh;
  }

  /**
   * Stops publishing (and, if it was the newest, signing with) the key `kid`. Returns false when there
   * is no such key; refuses to remove the last key.
   */
  async retire(kid: string): Promise<boolean> {
    if (!this.keys.some((k) => k.kid === kid)) return false;
    const next = this.keys.filter((k) => k.kid !== kid);
    if (next.length === 0) throw new Error("cannot retire the only webhook signing key; rotate first");
    await writePrivateFile(this.file, serialize(next));
    this.keys = next;
    return true;
  }
}
