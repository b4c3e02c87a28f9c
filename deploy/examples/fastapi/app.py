"""A FastAPI resource server that verifies Portcullis access tokens.

It is FastAPI's "OAuth2 with Password (and hashing), Bearer with JWT tokens"
tutorial with the token issuing taken out: Portcullis issues the tokens
(RFC 9068 JWTs), and this API only verifies them, locally, with the keys
Portcullis publishes (PyJWT's PyJWKClient). See README.md next to it.

Run it with its own command line:

    python3 app.py --issuer http://localhost:8080 --port 8000

or with uvicorn, configured through the environment:

    PORTCULLIS_ISSUER_URL=http://localhost:8080 python3 -m uvicorn app:app --port 8000

Routes:

    GET /users/me        the caller: {"id","username","roles","scope","client_id","expires_at"}
    GET /users/me/items  the caller's items; needs scope "items"
    GET /staff           a greeting; needs role "staff"
    GET /health          {"status":"ok"}, without a token
"""

import argparse
import json
import os
import threading
import urllib.request
from datetime import datetime, timezone
from typing import List, Optional

import jwt
from fastapi import Depends, FastAPI, HTTPException, Security, status
from fastapi.security import OAuth2PasswordBearer, SecurityScopes
from pydantic import BaseModel

# Configuration, from the environment (app.py's options set these too).
#
# PORTCULLIS_ISSUER_URL: the issuer, exactly as Portcullis writes it in "iss"
#   (its PORTCULLIS_ISSUER). Default: http://localhost:8080.
# API_AUDIENCE: the "aud" this API accepts, the audience registered on the
#   clients whose tokens are meant for it. Default: the API's own base URL,
#   http://localhost:PORT (PORT from API_PORT, default 8000, uvicorn's).
# SWAGGER_CLIENT_ID: a public client's ID, filled in Swagger UI's Authorize
#   dialog. Default: none (type it in the dialog).
ISSUER = os.environ.get("PORTCULLIS_ISSUER_URL", "http://localhost:8080").rstrip("/")
AUDIENCE = os.environ.get("API_AUDIENCE") or "http://localhost:" + os.environ.get("API_PORT", "8000")
SWAGGER_CLIENT_ID = os.environ.get("SWAGGER_CLIENT_ID", "")

# Algorithms Portcullis signs access tokens with that this API accepts: ES256
# (the default) and RS256 (per client or audience). Never "none" or HS256.
ALGORITHMS = ["ES256", "RS256"]

# Scopes this API knows, shown as checkboxes in Swagger UI's Authorize dialog.
SCOPES = {"items": "Read your items."}

# The tutorial's OAuth2PasswordBearer, with tokenUrl pointing at Portcullis's
# token endpoint (absolute: another origin). Swagger UI's Authorize button
# runs the password grant there; FastAPI itself never handles passwords.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=ISSUER + "/oauth2/token", scopes=SCOPES)

app = FastAPI(
    title="Portcullis FastAPI example",
    swagger_ui_init_oauth={"clientId": SWAGGER_CLIENT_ID} if SWAGGER_CLIENT_ID else None,
)


class Discovery:
    """The issuer's JWKS client, found through its RFC 8414 metadata.

    Discovery runs at the first request that needs it (so the API starts
    while Portcullis is down) and again after a failure. PyJWKClient caches
    the key set and fetches it again when a token names a key it has not
    seen (key rotation).
    """

    def __init__(self, issuer: str):
        self.issuer = issuer
        self._lock = threading.Lock()
        self._jwks_client: Optional[jwt.PyJWKClient] = None

    def jwks_client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._jwks_client is None:
                url = self.issuer + "/.well-known/oauth-authorization-server"
                with urllib.request.urlopen(url, timeout=10) as resp:
                    metadata = json.load(resp)
                # RFC 8414 §3.3: the metadata must name the issuer we asked.
                if metadata.get("issuer") != self.issuer:
                    raise ValueError("metadata issuer differs from the configured issuer")
                self._jwks_client = jwt.PyJWKClient(metadata["jwks_uri"])
            return self._jwks_client


discovery = Discovery(ISSUER)


class User(BaseModel):
    """The caller, as the verified access token describes them."""

    id: str
    username: str
    roles: List[str]
    scope: str
    client_id: str
    expires_at: str


def unauthorized(description: str) -> HTTPException:
    """401 with an RFC 6750 §3 invalid_token challenge."""
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=description,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'},
    )


def forbidden(description: str, scopes: SecurityScopes) -> HTTPException:
    """403 with an RFC 6750 §3.1 insufficient_scope challenge."""
    challenge = f'Bearer error="insufficient_scope", error_description="{description}"'
    if scopes.scopes:
        challenge += f', scope="{scopes.scope_str}"'
    return HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=description, headers={"WWW-Authenticate": challenge})


def verify_token(token: str) -> dict:
    """Verify a Portcullis access token; return its claims or raise 401.

    Checks, per RFC 9068: the typ header at+jwt (so an ID token or another
    JWT signed by the same keys is not taken for an access token), the
    signature with a key from the issuer's JWKS, alg ES256 or RS256, iss, aud,
    and exp/nbf/iat at PyJWT's defaults (no leeway). Error texts are fixed.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise unauthorized("malformed token")
    if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
        raise unauthorized("not an access token")
    try:
        jwks_client = discovery.jwks_client()
    except Exception:
        raise HTTPException(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, detail="issuer metadata unavailable")
    try:
        signing_key = jwks_client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=ALGORITHMS,
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "client_id"]},
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("token expired")
    except jwt.InvalidAudienceError:
        raise unauthorized("token is not for this API")
    except jwt.PyJWTError:
        raise unauthorized("invalid token")
    # A DPoP-bound token (RFC 9449, cnf.jkt) is only valid with a proof of its
    # key, which this example does not check: refuse it rather than take it
    # as a bearer token.
    if "cnf" in claims:
        raise unauthorized("sender-constrained tokens are not accepted")
    return claims


def get_current_user(security_scopes: SecurityScopes, token: str = Depends(oauth2_scheme)) -> User:
    """The tutorial's get_current_user: the caller of a valid user token
    holding every scope the route (and the dependencies on the way to it)
    asks for with Security(..., scopes=[...])."""
    claims = verify_token(token)
    # A client_credentials token is the client's own: it has no
    # preferred_username (and its sub is the client ID), so it is no user.
    username = claims.get("preferred_username")
    if not username:
        raise forbidden("token does not identify a user", security_scopes)
    granted = str(claims.get("scope", "")).split()
    for scope in security_scopes.scopes:
        if scope not in granted:
            raise forbidden("missing scope", security_scopes)
    return User(
        id=claims["sub"],
        username=username,
        roles=list(claims.get("roles") or []),
        scope=" ".join(granted),
        client_id=claims["client_id"],
        expires_at=datetime.fromtimestamp(claims["exp"], tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def require_role(role: str):
    """A dependency that lets only users holding role through (403 otherwise)."""

    def check(security_scopes: SecurityScopes, user: User = Security(get_current_user)) -> User:
        if role not in user.roles:
            raise forbidden("missing role", security_scopes)
        return user

    return check


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/users/me", response_model=User)
def read_users_me(current_user: User = Security(get_current_user)):
    return current_user


@app.get("/users/me/items")
def read_own_items(current_user: User = Security(get_current_user, scopes=["items"])):
    return [{"item_id": "portcullis", "owner": current_user.username}]


@app.get("/staff")
def staff_only(current_user: User = Depends(require_role("staff"))):
    return {"message": f"Hello, {current_user.username}: you hold role staff."}


def main() -> None:
    parser = argparse.ArgumentParser(description="FastAPI resource server for Portcullis access tokens.")
    parser.add_argument("--issuer", default=ISSUER, help="Portcullis issuer URL (default %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default %(default)s)")
    parser.add_argument("--audience", help="accepted aud (default http://localhost:PORT)")
    parser.add_argument("--swagger-client-id", default="", help="client ID filled in Swagger UI's Authorize dialog")
    args = parser.parse_args()
    os.environ["PORTCULLIS_ISSUER_URL"] = args.issuer
    os.environ["API_PORT"] = str(args.port)
    if args.audience:
        os.environ["API_AUDIENCE"] = args.audience
    if args.swagger_client_id:
        os.environ["SWAGGER_CLIENT_ID"] = args.swagger_client_id
    import uvicorn

    # Import the app again, as uvicorn does, so the settings above apply.
    uvicorn.run("app:app", app_dir=os.path.dirname(os.path.abspath(__file__)), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
