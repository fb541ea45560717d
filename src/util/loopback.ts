/**
 * Whether `name` (a host name or an IP address, IPv6 in brackets or not) is
 * this machine's loopback: `localhost` and its subdomains, 127.0.0.0/8 (also
 * mapped into IPv6) and `::1`, however written (a fully qualified name may end
 * in a dot; an IPv6 address may be written long).
 */
export function isLoopbackHost(name: string): boolean {
  let bare = name.toLowerCase().replace(/\.$/, "");
  if (bare.includes(":")) {
    try {
      bare = new URL(`http://${bare.startsWith("[") ? bare : `[${bare}]`}/`).hostname.slice(1, -1);
    } catch {
      return false;
    }
  }
  return bare === "localhost" || bare.endsWith(".localhost") || bare === "::1" || /^(?:::ffff:)?127(?:\.\d{1,3}){3}$/.test(bare) || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(bare);
}
