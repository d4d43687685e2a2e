/**
 * Which IP addresses an outbound fetch may connect to by default. Only globally routable unicast
 * addresses pass: anything that could reach the host itself, the local network, or a cloud metadata
 * service (169.254.169.254) is refused unless the operator allow-lists it (see allow-list.ts).
 *
 * The ranges come from ipaddr.js; this module decides which of its range names are acceptable and
 * looks inside IPv6 forms that embed an IPv4 address, because those reach the embedded address.
 * @module
 */
import ipaddr from "ipaddr.js";

/** Human names for ipaddr.js range names, used in refusal reasons that end up in logs and errors. */
const RANGE_LABELS: Record<string, string> = {
  unspecified: "unspecified",
  broadcast: "broadcast",
  multicast: "multicast",
  linkLocal: "link-local",
  loopback: "loopback",
  carrierGradeNat: "carrier-grade NAT",
  private: "private",
  reserved: "reserved",
  as112: "AS112",
  amt: "AMT",
  benchmarking: "benchmarking",
  uniqueLocal: "unique-local",
  ipv4Mapped: "IPv4-mapped",
  rfc6145: "IPv4-translated",
  rfc6052: "NAT64",
  "6to4": "6to4",
  teredo: "Teredo",
  as112v6: "AS112",
  deprecatedSiteLocal: "site-local",
  discard: "discard-only",
  deprecatedOrchid: "ORCHID",
  orchid2: "ORCHIDv2",
  droneRemoteIdProtocolEntityTags: "DRIP",
  segmentRouting: "segment-routing",
};

/** The well-known cloud metadata endpoint; named in the reason because it is the classic SSRF target. */
const METADATA_V4 = "169.254.169.254";

/** 64:ff9b::/96 is the NAT64 well-known prefix whose last 32 bits are the IPv4 destination. */
const NAT64_WELL_KNOWN = ipaddr.IPv6.parseCIDR("64:ff9b::/96");

/**
 * Why `ip` must not be fetched by default, or null when it is a public unicast address.
 * Anything that does not parse as an IP address is refused too.
 */
export function addressRefusalReason(ip: string): string | null {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(ip);
  } catch {
    return `not an IP address: ${ip}`;
  }
  return addr.kind() === "ipv4" ? ipv4Reason(addr as ipaddr.IPv4, ip) : ipv6Reason(addr as ipaddr.IPv6, ip);
}

/** True for a globally routable unicast address that an outbound fetch may reach without allow-listing. */
export function isPublicAddress(ip: string): boolean {
  return addressRefusalReason(ip) === null;
}

function ipv4Reason(addr: ipaddr.IPv4, shown: string): string | null {
  const range = addr.range();
  if (range === "unicast") return null;
  const reason = `${RANGE_LABELS[range] ?? range} address ${shown}`;
  return addr.toString() === METADATA_V4 ? `${reason} (cloud metadata endpoint)` : reason;
}

function ipv6Reason(addr: ipaddr.IPv6, shown: string): string | null {
  const range = addr.range();
  // Forms that carry an IPv4 destination are judged by that destination, so that
  // ::ffff:127.0.0.1 or 64:ff9b::a00:1 cannot smuggle a private IPv4 address past the check.
  const embedded = embeddedIPv4(addr, range);
  if (embedded) {
    const inner = ipv4Reason(embedded, embedded.toString());
    return inner === null ? null : `${inner} (as ${RANGE_LABELS[range] ?? range} ${shown})`;
  }
  if (range === "unicast") {
    // ::a.b.c.d ("IPv4-compatible", deprecated by RFC 4291) is not a range ipaddr.js names, but some
    // stacks still route it to the embedded IPv4 address; nothing public lives there.
    if (addr.parts.slice(0, 6).every((p) => p === 0)) return `IPv4-compatible address ${shown}`;
    return null;
  }
  return `${RANGE_LABELS[range] ?? range} address ${shown}`;
}

/** The IPv4 address an IPv6 address forwards to, for the translation forms that have one. */
function embeddedIPv4(addr: ipaddr.IPv6, range: string): ipaddr.IPv4 | null {
  const p = addr.parts;
  const fromWords = (hi: number, lo: number): ipaddr.IPv4 => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  if (range === "ipv4Mapped") return addr.toIPv4Address();
  if (range === "rfc6052" && addr.match(NAT64_WELL_KNOWN)) return fromWords(p[6] ?? 0, p[7] ?? 0);
  if (range === "6to4") return fromWords(p[1] ?? 0, p[2] ?? 0);
  return null;
}
