"""What a notebook does with jupyterhealth-client, written afresh from its
contract (docs/jhe-compat.md): requests with only a bearer header, DRF pages
followed through `next`, Observation Bundles through `link` `next`, each
OMH point base64-decoded, flattened, and its *date_time keys parsed with
pandas. It checks the DataFrame against the readings the Go test wrote.

Environment: JHE_URL, JHE_TOKEN, EXPECTED (a JSON file: the patient's id,
the code, and the canonical OMH points in the grant window, newest first;
optionally food_code and food_points, the same for a schema the vault
stores without a typed model).
"""
import base64
import json
import os
import sys

import pandas as pd
import requests

URL = os.environ["JHE_URL"].rstrip("/")
session = requests.Session()
# The client replaces every default header with the bearer token.
session.headers = {"Authorization": "Bearer " + os.environ["JHE_TOKEN"]}


def get(url, params=None):
    r = session.get(url, params=params, timeout=30)
    if r.status_code >= 400:
        sys.exit(f"GET {r.url}: {r.status_code} {r.json().get('detail')}")
    return r.json()


def api_list(path, params=None):
    page = get(URL + "/api/v1/" + path, params)
    out = list(page["results"])
    while page["next"]:
        assert page["next"].startswith(URL + "/"), page["next"]
        page = get(page["next"])
        out.extend(page["results"])
    return out


def observations(patient, code):
    params = {"patient": patient, "code": "https://w3id.org/openmhealth|" + code, "_count": 1000}
    bundle = get(URL + "/FHIR/R5/Observation", params)
    seen, out = set(), []
    while True:
        added = False
        for entry in bundle["entry"]:
            res = entry["resource"]
            if res["id"] not in seen:
                seen.add(res["id"])
                out.append(res)
                added = True
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt or not added:
            return out
        assert nxt[0].startswith(URL + "/"), nxt[0]
        bundle = get(nxt[0])


def flatten(d, prefix=""):
    out = {}
    items = enumerate(d) if isinstance(d, list) else d.items()
    for k, v in items:
        key = f"{prefix}_{k}" if prefix else str(k)
        if isinstance(v, (dict, list)):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def tidy(res):
    att = res["valueAttachment"]
    assert "json" in att["contentType"], att["contentType"]
    point = json.loads(base64.b64decode(att["data"]))
    row = {"resource_type": res["resourceType"], "code": res["code"]["coding"][0]["code"]}
    row.update(flatten({k: v for k, v in res.items() if k != "valueAttachment"}))
    row.update(flatten(point["header"]))
    row.update(flatten(point["body"]))
    for key in list(row):
        if key.endswith("date_time"):
            value = row[key]
            row[key] = pd.to_datetime(value, utc=True)
            row[key + "_local"] = pd.to_datetime(value).tz_localize(None)
    return row


expected = json.load(open(os.environ["EXPECTED"]))
patients = api_list("patients")
assert [p["id"] for p in patients] == [expected["patient"]], patients
assert all("identifiers" in p for p in patients)
df = pd.DataFrame.from_records([tidy(o) for o in observations(expected["patient"], expected["code"])])
want = expected["points"]
assert len(df) == len(want), (len(df), len(want))
assert list(df["uuid"]) == [p["header"]["uuid"] for p in want]
assert list(df["blood_glucose_value"]) == [p["body"]["blood_glucose"]["value"] for p in want]
assert list(df["effective_time_frame_date_time"]) == [
    pd.to_datetime(p["body"]["effective_time_frame"]["date_time"], utc=True) for p in want
]
assert str(df["effective_time_frame_date_time"].dtype) == "datetime64[ns, UTC]", df.dtypes
assert str(df["effective_time_frame_date_time_local"].dtype) == "datetime64[ns]", df.dtypes
assert (df["code"] == expected["code"]).all()
# A schema without a typed model (the client's Code.FOOD_ENTRY) is read
# the same way: its body's members become columns.
if "food_points" in expected:
    food = pd.DataFrame.from_records([tidy(o) for o in observations(expected["patient"], expected["food_code"])])
    want = expected["food_points"]
    assert len(food) == len(want), (len(food), len(want))
    assert list(food["uuid"]) == [p["header"]["uuid"] for p in want]
    assert list(food["food_name"]) == [p["body"]["food_name"] for p in want]
    assert list(food["food_amount_value"]) == [p["body"]["food_amount"]["value"] for p in want]
    assert str(food["effective_time_frame_date_time"].dtype) == "datetime64[ns, UTC]", food.dtypes
    assert (food["code"] == expected["food_code"]).all()
    print(f"ok {len(food)} food rows")
print(f"ok {len(df)} rows")
