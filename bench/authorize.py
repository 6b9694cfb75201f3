#!/usr/bin/env python3
"""Sets up a benchmark reader on a running tokenwarden: an app `bench` using a Snowflake token `sf`
authorized through the Snowflake emulator (as an admin would, by hand). Prints the app's API key.
   bench/authorize.py TOKENWARDEN_PORT EMULATOR_PORT ADMIN_TOKEN
Used by bench/run and bench/read_path.sh."""
import json, re, sys, urllib.parse, urllib.request, http.client
tw, emu, admin = sys.argv[1], sys.argv[2], sys.argv[3]
def call(method, url, body=None, headers=None, ctype="application/json"):
    h = {"Authorization": f"Bearer {admin}"}
    h.update(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h["Content-Type"] = ctype
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=h, method=method)) as r:
        return json.loads(r.read() or b"null")
base = f"http://127.0.0.1:{tw}"
app = call("POST", f"{base}/api/v1/apps", {"name": "bench", "tokens": ["sf"]})
tok = call("POST", f"{base}/api/v1/tokens", {"name": "sf", "provider": "snowflake", "settings": {"account": f"http://127.0.0.1:{emu}", "role": "ANALYST"}})
sql = call("GET", f"{base}/api/v1/tokens/{tok['id']}/setup")["snowflake"]["sql"]
run = lambda stmt: json.loads(urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{emu}/api/v2/statements", data=json.dumps({"statement": stmt}).encode(), headers={"Content-Type": "application/json", "Authorization": "Basic QURNSU46YWRtaW4tcGFzcw=="})).read())
for stmt in [s.strip() for s in sql.split(";") if s.strip()]:
    out = run(stmt)
cell = out["data"][0][0]
call("POST", f"{base}/api/v1/tokens/{tok['id']}/client-secrets", cell.encode(), ctype="text/plain")
url = call("POST", f"{base}/api/v1/tokens/{tok['id']}/authorize")["authorization_url"]
p = urllib.parse.urlsplit(url)
c = http.client.HTTPConnection(p.hostname, p.port)
c.request("POST", p.path + "?" + p.query, urllib.parse.urlencode({"username": "ALICE", "password": "alice-pass"}), {"Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse(); page = r.read().decode()
consent = r.getheader("x-emulator-consent-id") or re.search(r'name="consent_id" value="([^"]+)"', page).group(1)
c.request("POST", "/oauth/authorize/consent", urllib.parse.urlencode({"consent_id": consent, "decision": "allow"}), {"Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse(); r.read()
urllib.request.urlopen(r.getheader("Location")).read()
print(app["api_key"])
