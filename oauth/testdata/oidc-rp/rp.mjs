// rp.mjs: a strict third-party relying party (openid-client, panva's
// OpenID-certified RP) run against the vault's provider by
// oauth/openidclient_test.go. It is a test fixture, not an example app.
//
//   node rp.mjs ISSUER REDIRECT_URI AUTH   (AUTH: client_secret_basic, RS384 or ES384)
//
// There is no browser: the script and the Go test talk in JSON lines.
//   1. stdout {"jwks": {...} | null}    the public keys it made (RS384/ES384, by jose)
//      stdin  {"client_id", "client_secret"?}   the client the test registered
//   2. stdout {"authorize": URL}        the authorization URL (PKCE S256, nonce, state, aud)
//      stdin  {"callback": URL}         where the provider sent the browser after the
//                                       test approved the request (Provider.Approve)
//   3. stdout {"result": {...}}         what it saw; any failed check throws, and the
//                                       script exits 1 with {"error": ...} on stdout.
import * as client from "openid-client";
import * as jose from "jose";
import * as readline from "node:readline";

const [issuer, redirectURI, auth] = process.argv.slice(2);
if (!issuer || !redirectURI || !["client_secret_basic", "RS384", "ES384"].includes(auth)) {
  console.error("usage: node rp.mjs ISSUER REDIRECT_URI client_secret_basic|RS384|ES384");
  process.exit(2);
}

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask(msg) {
  process.stdout.write(JSON.stringify(msg) + "\n");
  const { value, done } = await lines.next();
  if (done) throw new Error("the test closed stdin");
  return JSON.parse(value);
}
function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
}

async function main() {
  // 1. Keys (private_key_jwt) and registration.
  let key = null;
  let jwks = null;
  if (auth !== "client_secret_basic") {
    const pair = await jose.generateKeyPair(auth, { extractable: true });
    const pub = await jose.exportJWK(pair.publicKey);
    const kid = await jose.calculateJwkThumbprint(pub);
    Object.assign(pub, { kid, alg: auth, use: "sig" });
    jwks = { keys: [pub] };
    key = { key: pair.privateKey, kid };
  }
  const reg = await ask({ jwks });
  const clientAuth = key ? client.PrivateKeyJwt(key) : client.ClientSecretBasic(reg.client_secret);

  // Discovery: openid-client checks the issuer equals the one asked.
  const config = await client.discovery(new URL(issuer), reg.client_id, { redirect_uris: [redirectURI] }, clientAuth, {
    execute: [client.allowInsecureRequests], // the test server is plain http on loopback
  });
  const meta = config.serverMetadata();
  check(meta.issuer === issuer, "discovery issuer");
  check(meta.code_challenge_methods_supported?.join() === "S256", "S256 only");

  // 2. The code flow with PKCE, a nonce and a state.
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const scope = "openid fhirUser profile offline_access user/Observation.rs";
  const authURL = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectURI,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    nonce,
    state,
    aud: issuer,
  });
  const { callback } = await ask({ authorize: authURL.href });
  // The ID token is checked here: signature by the JWKS key its kid names
  // (RS256, the default id_token_signed_response_alg), iss, aud, exp, iat,
  // nonce, and the authorization response's state.
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const header = jose.decodeProtectedHeader(tokens.id_token);
  check(header.alg === "RS256" && typeof header.kid === "string", "ID token header RS256 with a kid");
  check(claims.nonce === nonce, "nonce");
  const aud = [claims.aud].flat();
  check(claims.iss === issuer && aud.length === 1 && aud[0] === reg.client_id, "iss, and aud the client id alone");
  check(typeof claims.exp === "number" && typeof claims.iat === "number" && claims.exp > claims.iat, "exp and iat");
  check(tokens.token_type.toLowerCase() === "bearer" && typeof tokens.expires_in === "number", "token_type and expires_in");

  // Refresh without scope (the same scopes), then with a narrower scope.
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, "refresh rotates the refresh token");
  check(refreshed.scope === tokens.scope, "a refresh without scope keeps the scopes");
  const narrowed = await client.refreshTokenGrant(config, refreshed.refresh_token, { scope: "openid user/Observation.rs" });
  check(narrowed.scope === "openid user/Observation.rs", "a refresh with scope narrows");

  // Introspection, revocation, then inactive.
  const live = await client.tokenIntrospection(config, narrowed.access_token);
  check(live.active === true, "a live token introspects active");
  await client.tokenRevocation(config, narrowed.access_token);
  const dead = await client.tokenIntrospection(config, narrowed.access_token);
  check(dead.active === false && Object.keys(dead).length === 1, "a revoked token introspects exactly {active:false}");
  await client.tokenRevocation(config, narrowed.refresh_token, { token_type_hint: "refresh_token" });
  const deadRefresh = await client.tokenIntrospection(config, narrowed.refresh_token);
  check(deadRefresh.active === false, "a revoked refresh token introspects inactive");

  process.stdout.write(
    JSON.stringify({
      result: {
        kid: header.kid,
        alg: header.alg,
        sub: claims.sub,
        fhirUser: claims.fhirUser,
        scope: tokens.scope,
        refreshedScope: refreshed.scope,
        narrowedScope: narrowed.scope,
        introspection: live,
        revoked: dead,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        narrowed_access_token: narrowed.access_token,
      },
    }) + "\n",
  );
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stdout.write(JSON.stringify({ error: String(err?.stack ?? err), cause: err?.cause ? String(JSON.stringify(err.cause)) : undefined }) + "\n");
    process.exit(1);
  },
);
