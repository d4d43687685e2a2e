/**
 * The operator's exceptions to the outbound address policy, from `DARKROOM_ALLOW_HOSTS`: a comma
 * list whose entries are
 *
 * - `host` or `host:port`: a name (or IP literal) exactly as it appears in a URL; without a port any
 *   port matches. A request to an allowed host skips the address check for whatever it resolves to.
 * - `[v6]` / `[v6]:port`: the same for an IPv6 literal.
 * - `a.b.c.d`, `v6`, or a CIDR (`10.0.0.0/8`, `::1/128`): addresses (after DNS) that may be reached
 *   even though they are private; a bare address means just that one address.
 *
 * Matching is exact (no wildcards), case-insensitive, and ignores a trailing dot on names.
 * @module
 */
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { PlatformError } from "../core/errors.js";

interface HostRule {
  host: string;
  /** null: any port. */
  port: number | null;
}

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

const HOSTNAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

export class AllowList {
  private constructor(
    private readonly hosts: readonly HostRule[],
    private readonly ranges: readonly Range[],
  ) {}

  /** An allow list that allows nothing beyond public addresses. */
  static empty(): AllowList {
    return new AllowList([], []);
  }

  /** Parses `DARKROOM_ALLOW_HOSTS`; a malformed entry is an ERR_BAD_REQUEST naming it, so a typo is not silently ignored. */
  static parse(spec: string): AllowList {
    const hosts: HostRule[] = [];
    const ranges: Range[] = [];
    for (const raw of spec.split(",")) {
      const entry = raw.trim();
      if (!entry) continue;
      const bad = (why: string): PlatformError =>
        new PlatformError("ERR_BAD_REQUEST", { message: `invalid allow-hosts entry "${entry}": ${why}` });

      if (entry.includes("/")) {
        try {
          ranges.push(ipaddr.parseCIDR(entry));
        } catch {
          throw bad("not a CIDR range");
        }
        continue;
      }
      // A bare IPv6 address has colons of its own, so it must be recognised before host:port splitting.
      if (isIP(entry) !== 0) {
        const addr = normalizeAddress(entry);
        ranges.push([addr, addr.kind() === "ipv4" ? 32 : 128]);
        continue;
      }

      let host: string;
      let portText: string | undefined;
      const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(entry);
      if (bracketed) {
        host = bracketed[1] ?? "";
        portText = bracketed[2];
        if (isIP(host) !== 6) throw bad("not an IPv6 address in brackets");
      } else {
        const colon = entry.lastIndexOf(":");
        host = colon === -1 ? entry : entry.slice(0, colon);
        portText = colon === -1 ? undefined : entry.slice(colon + 1);
      }
      let port: number | null = null;
      if (portText !== undefined) {
        port = Number(portText);
        if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) throw bad("port must be 1-65535");
      }
      const normalized = normalizeHost(host);
      if (isIP(normalized) === 0 && !HOSTNAME.test(normalized)) throw bad("not a host name");
      hosts.push({ host: normalized, port });
    }
    return new AllowList(hosts, ranges);
  }

  /** Whether nothing is allow-listed. */
  get isEmpty(): boolean {
    return this.hosts.length === 0 && this.ranges.length === 0;
  }

  /** Whether a URL's host (as `URL.hostname` gives it, brackets allowed) and port are allow-listed by name. */
  allowsHost(hostname: string, port: number): boolean {
    const host = normalizeHost(hostname);
    return this.hosts.some((rule) => rule.host === host && (rule.port === null || rule.port === port));
  }

  /** Whether a resolved IP address falls in an allow-listed address or CIDR range. */
  allowsAddress(ip: string): boolean {
    if (isIP(ip) === 0) return false;
    const addr = normalizeAddress(ip);
    // ipaddr.js throws when matching across families, so only same-family ranges are compared.
    return this.ranges.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
  }

  toString(): string {
    const hosts = this.hosts.map((h) => {
      const host = h.host.includes(":") ? `[${h.host}]` : h.host;
      return h.port === null ? host : `${host}:${h.port}`;
    });
    const ranges = this.ranges.map(([net, bits]) => `${net.toString()}/${bits}`);
    return [...hosts, ...ranges].join(",");
  }
}

/**
 * IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are the IPv4 address for every purpose here, so a
 * `10.0.0.0/8` entry covers them as well.
 */
function normalizeAddress(ip: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const addr = ipaddr.parse(ip);
  if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress()) return (addr as ipaddr.IPv6).toIPv4Address();
  return addr;
}

/** Lower-case, no brackets, no trailing dot; IP literals in their canonical text so `[0::1]` equals `[::1]`. */
function normalizeHost(hostname: string): string {
  let host = hostname.trim().toLowerCase();
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host.endsWith(".")) host = host.slice(0, -1);
  // net.isIP rather than ipaddr.isValid: the latter also takes shorthand like "127.1", which URL
  // parsing has already expanded, and a name made only of digits must stay a name here.
  return isIP(host) !== 0 ? normalizeAddress(host).toString() : host;
}
