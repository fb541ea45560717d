/**
 * The suites `npm test` leaves to `npm run test:reach` (CI runs both, `.ci/run`): the NAT topologies in network
 * namespaces, whose tries wait on relays, reservations, hole punches and routers by the clock. About a minute
 * each of wall time on this two-core machine, and about five minutes of a worker together, which put `npm test` over
 * its ten minutes. `npm test` keeps their smoke: the reach benchmark at smoke size (members behind a cone NAT go
 * direct, behind a symmetric one relayed, and route tasks both ways), the namespaces and NATs themselves, and the
 * address and mDNS suites.
 */
export const REACH_SUITES: readonly string[] = [
  "test/reach/relay.test.ts",
  "test/reach/redial.test.ts",
  "test/reach/upnp.test.ts",
  "test/reach/hole-punch.test.ts",
  "test/reach/reachability.test.ts",
];
