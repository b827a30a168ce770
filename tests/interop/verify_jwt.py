"""Verifies a Tollgate access token (or identity assertion) with PyJWT, an independent
JOSE library, from the published JWKS alone. Prints the verified claims as JSON.

Environment: JWKS (the document), TOKEN, ALG (the one algorithm accepted), ISSUER,
AUDIENCE, TYP (the header type the token must carry).
"""
import json
import os

import jwt

jwks = jwt.PyJWKSet.from_dict(json.loads(os.environ["JWKS"]))
token = os.environ["TOKEN"]
header = jwt.get_unverified_header(token)
assert header["alg"] == os.environ["ALG"], header
assert header["typ"] == os.environ["TYP"], header
key = jwks[header["kid"]]
assert key.algorithm_name == os.environ["ALG"], key.algorithm_name
claims = jwt.decode(
    token,
    key=key.key,
    algorithms=[os.environ["ALG"]],
    audience=os.environ["AUDIENCE"],
    issuer=os.environ["ISSUER"],
    options={"require": ["exp", "iat", "iss", "aud", "sub"]},
)
# A token whose signature was tampered with must fail.
head, body, sig = token.split(".")
forged = f"{head}.{body}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
try:
    jwt.decode(forged, key=key.key, algorithms=[os.environ["ALG"]],
               audience=os.environ["AUDIENCE"], issuer=os.environ["ISSUER"])
    raise SystemExit("a forged signature verified")
except jwt.InvalidSignatureError:
    pass
print(json.dumps({"ok": True, "library": "PyJWT " + jwt.__version__, "claims": claims}))
