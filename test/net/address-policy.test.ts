import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { addressRefusalReason, isPublicAddress } from "../../src/net/address-policy.js";

/** [address, expected reason (null: public)]; the reason is what operators see in logs. */
const TABLE: [string, string | null][] = [
  ["8.8.8.8", null],
  ["1.1.1.1", null],
  ["93.184.216.34", null],
  ["2001:4860:4860::8888", null],
  ["2606:4700:4700::1111", null],
  ["::ffff:8.8.8.8", null],
  ["64:ff9b::808:808", null],
  ["127.0.0.1", "loopback address 127.0.0.1"],
  ["127.255.255.254", "loopback address 127.255.255.254"],
  ["::1", "loopback address ::1"],
  ["::ffff:127.0.0.1", "loopback address 127.0.0.1 (as IPv4-mapped ::ffff:127.0.0.1)"],
  ["::ffff:7f00:1", "loopback address 127.0.0.1 (as IPv4-mapped ::ffff:7f00:1)"],
  ["10.1.2.3", "private address 10.1.2.3"],
  ["172.16.0.1", "private address 172.16.0.1"],
  ["172.31.255.255", "private address 172.31.255.255"],
  ["192.168.1.1", "private address 192.168.1.1"],
  ["::ffff:192.168.1.1", "private address 192.168.1.1 (as IPv4-mapped ::ffff:192.168.1.1)"],
  ["100.64.0.1", "carrier-grade NAT address 100.64.0.1"],
  ["169.254.169.254", "link-local address 169.254.169.254 (cloud metadata endpoint)"],
  ["169.254.1.1", "link-local address 169.254.1.1"],
  ["fe80::1", "link-local address fe80::1"],
  ["fe80::1%eth0", "link-local address fe80::1%eth0"],
  ["fc00::1", "unique-local address fc00::1"],
  ["fd00:ec2::254", "unique-local address fd00:ec2::254"],
  ["0.0.0.0", "unspecified address 0.0.0.0"],
  ["0.1.2.3", "unspecified address 0.1.2.3"],
  ["::", "unspecified address ::"],
  ["224.0.0.1", "multicast address 224.0.0.1"],
  ["ff02::1", "multicast address ff02::1"],
  ["255.255.255.255", "broadcast address 255.255.255.255"],
  ["192.0.2.1", "reserved address 192.0.2.1"],
  ["198.18.0.1", "reserved address 198.18.0.1"],
  ["240.0.0.1", "reserved address 240.0.0.1"],
  ["2001:db8::1", "reserved address 2001:db8::1"],
  ["64:ff9b::a00:1", "private address 10.0.0.1 (as NAT64 64:ff9b::a00:1)"],
  ["64:ff9b:1::1", "NAT64 address 64:ff9b:1::1"],
  ["2002:7f00:1::", "loopback address 127.0.0.1 (as 6to4 2002:7f00:1::)"],
  ["2002:808:808::1", null],
  ["::7f00:1", "IPv4-compatible address ::7f00:1"],
  ["::ffff:0:7f00:1", "IPv4-translated address ::ffff:0:7f00:1"],
  ["2001::1", "Teredo address 2001::1"],
  ["fec0::1", "site-local address fec0::1"],
  ["localhost", "not an IP address: localhost"],
  ["", "not an IP address: "],
];

describe("isPublicAddress", () => {
  for (const [ip, reason] of TABLE) {
    it(`${ip || "(empty)"} is ${reason === null ? "public" : "refused"}`, () => {
      assert.equal(addressRefusalReason(ip), reason);
      assert.equal(isPublicAddress(ip), reason === null);
    });
  }
});
