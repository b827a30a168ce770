// Verifies a Tollgate access token (or identity assertion) with jose (panva), an
// independent JOSE library, from the published JWKS alone; prints the claims as JSON.
// Environment: as verify_jwt.py (JWKS, TOKEN, ALG, ISSUER, AUDIENCE, TYP).
import { createLocalJWKSet, jwtVerify, errors } from "jose";

const env = process.env;
const jwks = createLocalJWKSet(JSON.parse(env.JWKS));
const options = {
  algorithms: [env.ALG],
  issuer: env.ISSUER,
  audience: env.AUDIENCE,
  typ: env.TYP,
  requiredClaims: ["exp", "iat", "sub"],
};
const { payload, protectedHeader } = await jwtVerify(env.TOKEN, jwks, options);
if (protectedHeader.alg !== env.ALG) throw new Error(`alg ${protectedHeader.alg}`);
const [h, b, sig] = env.TOKEN.split(".");
const forged = `${h}.${b}.${sig[0] === "A" ? "B" : "A"}${sig.slice(1)}`;
try {
  await jwtVerify(forged, jwks, options);
  throw new Error("a forged signature verified");
} catch (e) {
  if (!(e instanceof errors.JWSSignatureVerificationFailed)) throw e;
}
console.log(JSON.stringify({ ok: true, library: "jose", claims: payload }));
