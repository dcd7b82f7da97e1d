"""The verification snippets of docs/receiving.md, run against the test vector and our signer."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sftphook.webhooks import signing
from tests.conftest import require_binary

DOC = Path(__file__).resolve().parents[2] / "docs" / "receiving.md"
VECTOR_SECRET = "Very Secret Secret"
VECTOR_BODY = b"Hello! This is a test payload."
VECTOR_SIGNATURE = "sha256=8ba4c47558de1872150c3ec82211c34bf0cbd6d60fc4f9875b97853af06de917"


def snippet(name: str) -> str:
    """The code block that follows `<!-- checked: name -->` in the document."""
    match = re.search(
        rf"<!-- checked: {re.escape(name)} -->\n```\w+\n(.*?)\n```", DOC.read_text(), re.DOTALL
    )
    assert match, f"docs/receiving.md has no checked snippet {name!r}"
    return match.group(1)


def run_python(name: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"doc_{name.replace('-', '_')}"}
    exec(compile(snippet(name), f"docs/receiving.md:{name}", "exec"), namespace)
    return namespace


def test_the_document_states_the_test_vector():
    text = DOC.read_text()
    assert VECTOR_SECRET in text and VECTOR_BODY.decode() in text
    assert signing.hub_signature(VECTOR_SECRET, VECTOR_BODY) == VECTOR_SIGNATURE
    assert VECTOR_SIGNATURE in text


def test_the_standard_library_snippet_verifies_both_signatures():
    doc = run_python("python-stdlib")
    hub_ok, standard_ok = doc["hub_signature_ok"], doc["standard_signature_ok"]
    assert hub_ok(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIGNATURE)
    assert not hub_ok(VECTOR_SECRET, VECTOR_BODY + b"!", VECTOR_SIGNATURE)
    assert not hub_ok("another secret", VECTOR_BODY, VECTOR_SIGNATURE)

    old, new = signing.generate_secret(), signing.generate_secret()
    body = json.dumps({"Id": "e", "Data": {"Path": "ü ✓.csv"}}, ensure_ascii=False).encode()
    now = int(time.time())
    headers = signing.signature_headers([new, old], "d-1", now, body)
    assert hub_ok(new, body, headers["X-Hub-Signature-256"])
    args = ("d-1", str(now), headers["webhook-signature"])
    assert standard_ok(new, body, *args)
    assert standard_ok(old, body, *args)
    assert not standard_ok(signing.generate_secret(), body, *args)
    assert not standard_ok(new, body + b" ", *args)
    stale = signing.signature_headers([new], "d-1", now - 600, body)
    assert not standard_ok(new, body, "d-1", str(now - 600), stale["webhook-signature"])


def test_the_node_snippet_verifies_both_signatures(tmp_path):
    node = require_binary("node")
    (tmp_path / "receiving.mjs").write_text(snippet("node"))
    (tmp_path / "check.mjs").write_text(
        """
import { hubSignatureOk, standardSignatureOk } from "./receiving.mjs";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((c) => {
  const body = Buffer.from(c.body, "base64");
  return c.kind === "hub"
    ? hubSignatureOk(c.secret, body, c.header)
    : standardSignatureOk(c.secret, body, c.id, c.timestamp, c.header);
});
console.log(JSON.stringify(results));
"""
    )

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    old, new = signing.generate_secret(), signing.generate_secret()
    body = json.dumps({"Id": "e", "Data": {"Path": "日本語 🚀.csv"}}, ensure_ascii=False).encode()
    now = int(time.time())
    headers = signing.signature_headers([new, old], "d-1", now, body)
    standard = {"kind": "standard", "id": "d-1", "timestamp": str(now)}
    cases = [
        (
            {"kind": "hub", "secret": VECTOR_SECRET, "body": b64(VECTOR_BODY)},
            VECTOR_SIGNATURE,
            True,
        ),
        ({"kind": "hub", "secret": VECTOR_SECRET, "body": b64(b"x")}, VECTOR_SIGNATURE, False),
        ({"kind": "hub", "secret": new, "body": b64(body)}, headers["X-Hub-Signature-256"], True),
        ({"kind": "hub", "secret": old, "body": b64(body)}, headers["X-Hub-Signature-256"], False),
        ({**standard, "secret": new, "body": b64(body)}, headers["webhook-signature"], True),
        ({**standard, "secret": old, "body": b64(body)}, headers["webhook-signature"], True),
        (
            {**standard, "secret": new, "body": b64(body + b" ")},
            headers["webhook-signature"],
            False,
        ),
        ({**standard, "secret": signing.generate_secret(), "body": b64(body)}, "v1,AAAA", False),
    ]
    payload = [{**case, "header": header} for case, header, _ in cases]
    done = subprocess.run(
        [node, str(tmp_path / "check.mjs")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [bool(expected) for _, _, expected in cases]


@pytest.fixture
def fastapi_example(monkeypatch) -> tuple[Any, str]:
    secret = signing.generate_secret()
    monkeypatch.setenv("SFTPHOOK_WEBHOOK_SECRET", secret)
    return run_python("python-fastapi")["app"], secret


async def test_the_fastapi_snippet_accepts_signed_requests_and_refuses_others(fastapi_example):
    app, secret = fastapi_example
    body = json.dumps({"Id": "event-1", "Topic": "file.created"}).encode()
    headers = signing.signature_headers([secret], "d-1", int(time.time()), body)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        good = await client.post("/hooks/sftp", content=body, headers=headers)
        assert good.status_code == 200 and good.json() == {"received": "event-1"}
        bad = await client.post("/hooks/sftp", content=body + b" ", headers=headers)
        assert bad.status_code == 401
        assert "does not match" in bad.json()["detail"]
        assert secret not in bad.text
