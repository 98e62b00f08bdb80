// The local dev login for scripts/dev: a local OIDC issuer (tests/e2e/oidc.mjs) on 127.0.0.1
// whose sign-in page offers one test user per role on the demo tenant. Prints the ADMIN_ISSUERS
// value for the Worker, then serves until stopped. Never for anything but local development.
//   node scripts/dev-issuer.mjs PORT TENANT
import { startIssuer } from '../tests/e2e/oidc.mjs';

const port = Number(process.argv[2] || 9200);
const tenant = process.argv[3] || 'demo';
const users = [
  { sub: 'platform@example.com', groups: ['platform'] },
  { sub: 'admin@example.com', groups: [`${tenant}-admins`] },
  { sub: 'dev@example.com', groups: [`${tenant}-devs`] },
  { sub: 'finance@example.com', groups: [`${tenant}-finance`] },
  { sub: 'auditor@example.com', groups: [`${tenant}-auditors`] },
];
const issuer = await startIssuer({ port, users });
const config = [issuer.config([
  { group: 'platform', role: 'platform-admin' },
  { group: `${tenant}-admins`, role: 'tenant-admin', tenant },
  { group: `${tenant}-devs`, role: 'developer', tenant },
  { group: `${tenant}-finance`, role: 'finance', tenant },
  { group: `${tenant}-auditors`, role: 'auditor', tenant },
], { dashboardClientId: 'asc-dashboard' })];
console.log(`ADMIN_ISSUERS=${JSON.stringify(config)}`);
process.on('SIGTERM', () => issuer.close().then(() => process.exit(0)));
process.on('SIGINT', () => issuer.close().then(() => process.exit(0)));
