// A real OpenID Provider for qflowui's single sign-on tests: panva's certified
// oidc-provider on 127.0.0.1, started by the `oidc_provider` pytest fixture
// (tests/oidc_support.py).
//
// Environment:
//   OIDC_TEST_USERS_FILE      JSON file {login: {password, preferred_username, email, name, groups}};
//                             read at every sign-in, so a test changes a user's groups between sign-ins
//   OIDC_TEST_REDIRECT_URIS   comma-separated callback URIs of the relying party
//   OIDC_TEST_LOGOUT_URIS     comma-separated post-logout redirect URIs
//   OIDC_TEST_CLIENT_SECRET   secret of both clients:
//                               qflowui       (token_endpoint_auth_method client_secret_basic)
//                               qflowui-post  (client_secret_post)
//   OIDC_TEST_PORT            port to listen on (0, the default: any free port)
//
// Prints one line `READY <issuer>` on stdout once it listens. Sign-in uses the provider's
// own development login and consent pages (devInteractions); the password typed there is
// checked against the users file before the provider sees the form.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

const usersFile = process.env.OIDC_TEST_USERS_FILE;
const list = (name) => (process.env[name] || '').split(',').map((s) => s.trim()).filter(Boolean);
const secret = process.env.OIDC_TEST_CLIENT_SECRET || 'qflowui-test-secret';

function users() {
  return JSON.parse(fs.readFileSync(usersFile, 'utf8'));
}

// A fresh RS256 signing key for this run: the relying party must fetch it from jwks_uri.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

let handler = (req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));

server.listen(Number(process.env.OIDC_TEST_PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const client = (clientId, method) => ({
    client_id: clientId,
    client_secret: secret,
    token_endpoint_auth_method: method,
    redirect_uris: list('OIDC_TEST_REDIRECT_URIS'),
    post_logout_redirect_uris: list('OIDC_TEST_LOGOUT_URIS'),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'RS256',
  });

  const provider = new Provider(issuer, {
    clients: [client('qflowui', 'client_secret_basic'), client('qflowui-post', 'client_secret_post')],
    jwks: { keys: [signingKey] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    // The groups also in the id_token (some providers do this), not only from userinfo.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    pkce: { required: () => false },
    async findAccount(ctx, sub) {
      const user = users()[sub];
      if (!user) return undefined;
      return {
        accountId: sub,
        async claims() {
          const current = users()[sub] || user;
          return {
            sub,
            email: current.email,
            email_verified: true,
            name: current.name,
            preferred_username: current.preferred_username ?? sub,
            groups: current.groups || [],
          };
        },
      };
    },
  });
  provider.proxy = false;

  // The development login page takes any name; check the password first.
  provider.use(async (ctx, next) => {
    if (ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path)) {
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      const body = querystring.parse(Buffer.concat(chunks).toString());
      ctx.req.body = body;
      if (body.prompt === 'login') {
        const user = users()[body.login];
        if (!user || user.password !== body.password) {
          ctx.status = 401;
          ctx.type = 'html';
          ctx.body = '<!doctype html><title>Sign-in failed</title><h1>Wrong user name or password</h1>';
          return;
        }
      }
    }
    await next();
  });

  // Test helpers (no OpenID role): the users file path, for a quick check the process is ours.
  const callback = provider.callback();
  handler = (req, res) => {
    if (req.url === '/__test__/health') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true, usersFile }));
      return;
    }
    callback(req, res);
  };
  process.stdout.write(`READY ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
