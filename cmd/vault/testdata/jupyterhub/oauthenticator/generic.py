"""A test-only stand-in for oauthenticator's GenericOAuthenticator.

docs/jupyterhub.md configures JupyterHub with GenericOAuthenticator from the
`oauthenticator` package, which is not packaged in Debian, and this build
cannot reach PyPI. The vault's JupyterHub test (cmd/vault/hub_test.go) puts
this directory on the hub's PYTHONPATH, so `from oauthenticator.generic
import GenericOAuthenticator` in the doc's configuration finds this small
class instead, built on Debian's python3-authlib (PKCE helpers) and
python3-requests. It is written for the test, not taken from oauthenticator;
it takes the same configuration names and sends the same requests (the Go
contract test TestHubRequestShapes pins them):

- authorize: response_type=code, client_id, redirect_uri, space-joined scope,
  state (base64 JSON), code_challenge, code_challenge_method=S256, and
  extra_authorize_params;
- token: a form POST with Accept: application/json, User-Agent: JupyterHub,
  code, grant_type, redirect_uri, code_verifier, client_id and client_secret
  in the body (or HTTP Basic with basic_auth), and the literal field
  data=None that GenericOAuthenticator sends;
- userdata: GET with the bearer access token;
- refresh_user: userdata with the stored access token; on a 4xx, a
  refresh_token grant with the client's credentials; the old refresh token
  kept if none comes back; the auth state rebuilt.

It is not a product: the vault's docs tell hub admins to use
GenericOAuthenticator.
"""

import asyncio
import base64
import json
import secrets
from urllib.parse import urlencode

import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Bool, Dict, List, Unicode

STATE_COOKIE = "vault-oauth-state"


class _Login(BaseHandler):
    async def get(self):
        a = self.authenticator
        verifier = generate_token(64)
        state = base64.urlsafe_b64encode(
            json.dumps({"state_id": secrets.token_hex(16), "next_url": self.get_argument("next", "")}).encode()
        ).decode()
        self.set_secure_cookie(STATE_COOKIE, json.dumps({"state": state, "verifier": verifier}), expires_days=1)
        params = {
            "response_type": "code",
            "client_id": a.client_id,
            "redirect_uri": a.oauth_callback_url,
            "scope": " ".join(a.scope),
            "state": state,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        params.update(a.extra_authorize_params)
        self.redirect(a.authorize_url + "?" + urlencode(params))


class _Callback(BaseHandler):
    async def get(self):
        user = await self.login_user()
        if user is None:
            raise web.HTTPError(403, "sign-in through the vault failed")
        cookie = json.loads(self.get_secure_cookie(STATE_COOKIE) or b"{}")
        next_url = ""
        try:
            next_url = json.loads(base64.urlsafe_b64decode(cookie.get("state", ""))).get("next_url", "")
        except ValueError:
            pass
        self.clear_cookie(STATE_COOKIE)
        self.redirect(next_url if next_url.startswith("/") and not next_url.startswith("//") else self.get_next_url(user))


class GenericOAuthenticator(Authenticator):
    login_service = Unicode("JupyterHealth Vault", config=True)
    client_id = Unicode(config=True)
    client_secret = Unicode(config=True)
    oauth_callback_url = Unicode(config=True)
    authorize_url = Unicode(config=True)
    token_url = Unicode(config=True)
    userdata_url = Unicode(config=True)
    scope = List(Unicode(), config=True)
    extra_authorize_params = Dict(config=True)
    username_claim = Unicode("preferred_username", config=True)
    basic_auth = Bool(False, config=True)
    allow_all = Bool(True, config=True)

    def login_url(self, base_url):
        return url_path_join(base_url, "oauth_login")

    def get_handlers(self, app):
        return [(r"/oauth_login", _Login), (r"/oauth_callback", _Callback)]

    def check_allowed(self, username, authentication=None):
        return self.allow_all or super().check_allowed(username, authentication)

    def _post_token(self, form):
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "User-Agent": "JupyterHub",
        }
        auth = None
        form = dict(form, data="None")
        if self.basic_auth:
            auth = (self.client_id, self.client_secret)
        else:
            form.update(client_id=self.client_id, client_secret=self.client_secret)
        r = requests.post(self.token_url, data=form, headers=headers, auth=auth, timeout=30)
        return r.status_code, r.json() if r.content else {}

    def _userdata(self, access_token):
        r = requests.get(
            self.userdata_url,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json", "User-Agent": "JupyterHub"},
            timeout=30,
        )
        return r.status_code, r.json() if r.status_code == 200 else {}

    def _auth_state(self, token, userdata, old_refresh=None):
        scope = token.get("scope", "")
        return {
            "access_token": token["access_token"],
            "refresh_token": token.get("refresh_token") or old_refresh,
            "id_token": token.get("id_token"),
            "scope": scope.split() if isinstance(scope, str) else scope,
            "token_response": token,
            "oauth_user": userdata,
        }

    async def authenticate(self, handler, data=None):
        if handler.get_argument("error", None):
            raise web.HTTPError(403, "the vault refused: " + handler.get_argument("error"))
        cookie = json.loads(handler.get_secure_cookie(STATE_COOKIE) or b"{}")
        if not cookie or handler.get_argument("state", "") != cookie.get("state"):
            raise web.HTTPError(400, "OAuth state mismatch")
        status, token = await asyncio.to_thread(
            self._post_token,
            {
                "code": handler.get_argument("code"),
                "grant_type": "authorization_code",
                "redirect_uri": self.oauth_callback_url,
                "code_verifier": cookie["verifier"],
            },
        )
        if status != 200:
            raise web.HTTPError(403, f"the vault's token endpoint answered {status}: {token.get('error')}")
        status, userdata = await asyncio.to_thread(self._userdata, token["access_token"])
        if status != 200:
            raise web.HTTPError(403, f"the vault's userinfo answered {status}")
        return {"name": userdata[self.username_claim], "auth_state": self._auth_state(token, userdata)}

    async def refresh_user(self, user, handler=None):
        state = await user.get_auth_state()
        if not state:
            return False
        status, userdata = await asyncio.to_thread(self._userdata, state["access_token"])
        if status == 200:
            return True
        if not (400 <= status < 500) or not state.get("refresh_token"):
            return False
        status, token = await asyncio.to_thread(
            self._post_token, {"grant_type": "refresh_token", "refresh_token": state["refresh_token"]}
        )
        if status != 200:
            self.log.warning("refreshing %s's vault token failed: %s %s", user.name, status, token.get("error"))
            return False
        status, userdata = await asyncio.to_thread(self._userdata, token["access_token"])
        if status != 200:
            return False
        return {"name": user.name, "auth_state": self._auth_state(token, userdata, state["refresh_token"])}
