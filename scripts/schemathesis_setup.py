"""Data for the schemathesis run (scripts/schemathesis.sh): an app with an API key, and a
Snowflake token authorized through the emulator (so reads answer 200), plus a global OAuth 2.0
token and a webhook channel. Prints the app's API key on stdout.

Also writes CONFIG (schemathesis.toml): the ids of what it made, offered to schemathesis as
path parameters half of the time, so operations on `/{id}` get past 404 too.

Usage: schemathesis_setup.py TOKENWARDEN_BASE PUBLIC_URL EMULATOR_BASE ADMIN_TOKEN CONFIG
"""

import html
import json
import re
import sys

import requests


def main() -> None:
    base, public_url, emu, admin, config = sys.argv[1:6]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {admin}"

    def call(method: str, path: str, **kw) -> dict:
        r = api.request(method, base + path, timeout=60, **kw)
        if r.status_code >= 300:
            sys.exit(f"setup: {method} {path} answered {r.status_code}: {r.text}")
        return r.json()

    app = call("POST", "/api/v1/apps", json={"name": "sales-invoice", "tokens": ["snowflake-sales"]})
    token = call(
        "POST",
        "/api/v1/tokens",
        json={
            "name": "snowflake-sales",
            "provider": "snowflake",
            "settings": {"account": emu, "role": "ANALYST"},
        },
    )
    generic = call(
        "POST",
        "/api/v1/tokens",
        json={
            "name": "generic",
            "provider": "oauth2",
            "settings": {
                "authorization_url": "https://auth.example.com/authorize",
                "token_url": "https://auth.example.com/token",
            },
            "client_id": "c",
            "client_secret": "s",
        },
    )
    channel = call(
        "POST",
        "/api/v1/notification-channels",
        json={"name": "ops-hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"},
    )
    tid = token["id"]
    sql = call("GET", f"/api/v1/tokens/{tid}/setup")["snowflake"]["sql"]

    # The setup SQL, run as ADMIN in the emulator's worksheet; its last cell is the secrets.
    console = requests.Session()
    r = console.post(f"{emu}/console/login", data={"username": "ADMIN", "password": "admin-pass"}, timeout=30)
    r.raise_for_status()
    r = console.post(f"{emu}/console/run", data={"sql": sql}, timeout=30)
    r.raise_for_status()
    cells = [html.unescape(c) for c in re.findall(r'<pre title="Click to select">(.*?)</pre>', r.text, re.S)]
    secrets = next((c for c in cells if "OAUTH_CLIENT_SECRET" in c), None)
    if secrets is None:
        sys.exit(f"setup: no client secrets in the worksheet: {r.text[:2000]}")
    r = api.post(
        f"{base}/api/v1/tokens/{tid}/client-secrets",
        data=secrets.encode(),
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    if r.status_code != 200:
        sys.exit(f"setup: pasting the client secrets answered {r.status_code}: {r.text}")

    # Sign in as ALICE and allow, as a browser would; the callback goes to the public URL,
    # which is this instance.
    url = call("POST", f"/api/v1/tokens/{tid}/authorize")["authorization_url"]
    browser = requests.Session()
    r = browser.get(url, allow_redirects=False, timeout=30)
    r.raise_for_status()
    r = browser.post(url, data={"username": "ALICE", "password": "alice-pass"}, allow_redirects=False, timeout=30)
    r.raise_for_status()
    consent = r.headers.get("x-emulator-consent-id")
    if consent is None:
        m = re.search(r'name="consent_id" value="([^"]+)"', r.text)
        consent = m and m.group(1)
    if not consent:
        sys.exit(f"setup: no consent form: {r.text[:2000]}")
    r = browser.post(
        f"{emu}/oauth/authorize/consent",
        data={"consent_id": consent, "decision": "allow"},
        allow_redirects=False,
        timeout=30,
    )
    callback = r.headers.get("location", "")
    prefix = f"{public_url}/oauth/callback?"
    if not callback.startswith(prefix):
        sys.exit(f"setup: the provider did not redirect to the callback: {r.status_code} {callback}")
    r = requests.get(f"{base}/oauth/callback?{callback[len(prefix):]}", allow_redirects=False, timeout=30)
    if r.status_code != 200 or "Token obtained" not in r.text:
        sys.exit(f"setup: the callback answered {r.status_code}: {r.text[:2000]}")
    status = call("GET", f"/api/v1/tokens/{tid}")["status"]
    if status != "healthy":
        sys.exit(f"setup: the token is {status} after signing in")
    ids = {
        "token-ids": [tid, generic["id"]],
        "app-ids": [app["id"], app["name"]],
        "channel-ids": [channel["id"]],
    }
    with open(config, "w") as f:
        for name, values in ids.items():
            f.write(f"[dictionaries.{name}]\nvalues = {json.dumps(values)}\n\n")
        for prefix, name in [
            ("/api/v1/tokens/", "token-ids"),
            ("/api/v1/apps/", "app-ids"),
            ("/api/v1/notification-channels/", "channel-ids"),
        ]:
            f.write(
                f'[[operations]]\ninclude-path-regex = "^{prefix}\\\\{{id\\\\}}"\n'
                f'parameters = {{ "path.id" = {{ dictionary = "{name}", probability = 0.5 }} }}\n\n'
            )
    print(app["api_key"])


if __name__ == "__main__":
    main()
