// The OpenID Provider of the identity tests: panva's oidc-provider (OpenID Certified),
// configured from a JSON file and listening on 127.0.0.1 only.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {"port": 0, "clients": [...client metadata...],
//          "accounts": {"login": {claims...}},
//          "machine_claims": {"client_id": {claims added to its access tokens}},
//          "resource": "https://sor.example/api", "resource_scope": "sor:lookup sor:apply sor:staff",
//          "access_token_ttl": 300}
// It prints one line, "listening <issuer>", once it serves; the test fixture waits for it.
//
// What is not oidc-provider's default, and why:
// - the signing key is made here at start (RS256, 2048 bits): a new issuer per run;
// - findAccount answers from CONFIG.accounts (any password logs in, as devInteractions do);
// - the professional claims of NemLog-in (CVR, organisation, the person's UUID) belong to
//   the "profile" scope here, so the service asks for nothing unusual;
// - client credentials on, and the resource indicator CONFIG.resource issues JWT access
//   tokens (RFC 9068, typ at+jwt) with aud = that resource: the API's SOR_API_AUDIENCE;
// - RP-initiated logout is on (its default), and devInteractions (the provider's own login
//   and consent pages) are what the browser test logs in through.
import { readFileSync } from 'node:fs';
import * as crypto from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: `k-${crypto.randomUUID().slice(0, 8)}` };

const PROFESSIONAL = [
  'https://data.gov.dk/model/core/eid/professional/cvr',
  'https://data.gov.dk/model/core/eid/professional/orgName',
  'https://data.gov.dk/model/core/eid/professional/uuid/persistent',
];

function resourceServer(resource) {
  if (resource !== config.resource) throw new errors.InvalidTarget();
  return {
    scope: config.resource_scope,
    audience: config.resource,
    accessTokenFormat: 'jwt',
    accessTokenTTL: config.access_token_ttl ?? 300,
    jwt: { sign: { alg: 'RS256' } },
  };
}

const server = await new Promise((resolve) => {
  // Listen first, so that the issuer carries the port the system chose.
  import('node:http').then(({ createServer }) => {
    const http = createServer();
    http.listen(config.port ?? 0, '127.0.0.1', () => resolve(http));
  });
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [jwk] },
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', ...PROFESSIONAL, 'sor_roles', 'kommunekode'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'profile', 'email', 'offline_access', 'sor:lookup', 'sor:apply', 'sor:staff'],
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (ctx, resource) => resourceServer(resource),
    },
  },
  async extraTokenClaims(ctx, token) {
    if (token.kind === 'ClientCredentials') return config.machine_claims?.[token.clientId];
    return undefined;
  },
  pkce: { required: () => true },
  ttl: {
    AccessToken: 300, AuthorizationCode: 60, IdToken: 300, Interaction: 600,
    Session: 3600, Grant: 3600, ClientCredentials: config.access_token_ttl ?? 300,
  },
});
provider.on('server_error', (ctx, error) => console.error('server_error', error));

server.on('request', provider.callback());
console.log(`listening ${issuer}`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
