"""A FastAPI resource server built the way FastAPI's security tutorial builds
one, verifying Portcullis access tokens with PyJWT's PyJWKClient at PyJWT's
defaults (no leeway). Run by interop/python_test.go:

    resource_server.py ISSUER AUDIENCE PORT

GET /me with a Bearer token answers 200 with the token's subject, or 401
naming PyJWT's error; GET /health answers 200 once the server is up.
"""

import json
import sys
import urllib.request

import jwt
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import OAuth2PasswordBearer

issuer, audience, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

# RFC 8414 discovery: the resource server knows only the issuer.
with urllib.request.urlopen(issuer + "/.well-known/oauth-authorization-server", timeout=10) as resp:
    metadata = json.load(resp)

jwks_client = jwt.PyJWKClient(metadata["jwks_uri"])
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=metadata["token_endpoint"])
app = FastAPI()


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/me")
def me(token: str = Depends(oauth2_scheme)):
    try:
        signing_key = jwks_client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=["ES256", "RS256", "EdDSA"],
            audience=audience,
            issuer=issuer,
        )
    except jwt.PyJWTError as err:
        raise HTTPException(
            status_code=401,
            detail=f"{type(err).__name__}: {err}",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return {
        "sub": claims["sub"],
        "client_id": claims.get("client_id"),
        "username": claims.get("preferred_username"),
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
