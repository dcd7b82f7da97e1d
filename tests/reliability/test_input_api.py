"""The REST API under generated input: schemathesis makes requests from /api/v1/openapi.json,
valid and invalid, sent with a token to a running server; no answer is a 5xx, and every error
is `application/problem+json`."""

from __future__ import annotations

import contextlib
import importlib
import logging
import pkgutil
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from sftphook.app import App
from sftphook.config import Settings
from tests.reliability.conftest import SOAK, Ledger
from tests.reliability.input_server import ThreadedServer
from tests.unit.webhooks.fake_dns import HostsLookup


def _import_every_module_of(package: str) -> None:
    """Import now, at collection, what the test would import as it goes.

    pytest rewrites the modules of plugin packages (schemathesis and hypothesis are) as they
    are first imported, parsing their source; here that would happen while the server's thread
    runs, and CPython 3.11's AST construction then fails now and then with "SystemError: AST
    constructor recursion depth mismatch" (python/cpython#106905, threaded programs)."""
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        with contextlib.suppress(Exception):
            importlib.import_module(info.name)


_import_every_module_of("schemathesis")
_import_every_module_of("hypothesis.strategies")

EXAMPLES = 150 if SOAK else 8
PROBLEM_JSON = "application/problem+json"


@pytest.mark.timeout(3600 if SOAK else 300)
def test_generated_requests_get_no_5xx_and_every_error_is_problem_json(
    settings: Settings, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    with ThreadedServer(settings, frozenset({"http"})) as srv:
        # Generated webhook URLs name hosts that must not reach the network's resolver.
        srv.app.webhooks.lookup = HostsLookup({"hooks.example": ["8.8.8.8"]})
        org = srv.call(srv.app.accounts.resolve_organization(None))
        _, token = srv.call(srv.app.accounts.create_token(org.id, "schemathesis"))
        base = f"http://127.0.0.1:{srv.app.http_port}"
        schema = schemathesis.openapi.from_url(base + "/api/v1/openapi.json")
        auth = {"Authorization": f"Bearer {token}"}
        statuses: Counter[int] = Counter()
        server_errors: list[str] = []
        not_problems: list[str] = []
        operations = 0

        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @hsettings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode, headers=auth))
                def call(case: schemathesis.Case) -> None:
                    response = case.call(base_url=base, headers=auth, timeout=30)
                    statuses[response.status_code] += 1
                    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
                    if response.status_code >= 500:
                        server_errors.append(f"{where}: {case.as_curl_command()}")
                    elif response.status_code >= 400:
                        kind = ",".join(response.headers.get("content-type", []))
                        if not kind.startswith(PROBLEM_JSON):
                            not_problems.append(f"{where} ({kind})")

                try:
                    call()
                except Unsatisfiable:
                    # No invalid request exists for an operation that takes no input.
                    assert mode is GenerationMode.NEGATIVE
        # And without a valid token: refused the same way.
        for header in ({}, {"Authorization": "Bearer shk_not-a-token"}, {"Authorization": "x"}):
            response = httpx.get(base + "/api/v1/users", headers=header)
            statuses[response.status_code] += 1
            if response.status_code != 401 or not response.headers.get(
                "content-type", ""
            ).startswith(PROBLEM_JSON):
                not_problems.append(f"GET /api/v1/users with {header} -> {response.status_code}")
    tried = sum(statuses.values())
    ledger.record(
        "api",
        f"schemathesis on /api/v1/openapi.json: {operations} operations, valid and invalid input",
        tried=tried,
        crashed=len(server_errors),
        escaped=len(not_problems),
        note="statuses " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())),
    )
    traces = [r.getMessage() + "\n" + (r.exc_text or "") for r in caplog.records]
    assert not server_errors, (server_errors[:5], traces[:3])
    assert not not_problems, not_problems[:5]


ODD_NUMBERS = ["99999999999999999999", "%C2%B2", "-5", "253402300800000"]


async def test_times_and_cursors_out_of_range_are_invalid_input(http_app: App) -> None:
    """What schemathesis found: numbers a 64-bit integer cannot hold, and digits int() refuses,
    in `since`, `until` and `cursor`, were 500s."""
    org = await http_app.accounts.resolve_organization(None)
    _, token = await http_app.accounts.create_token(org.id, "odd numbers")
    hook, _ = await http_app.webhooks.create(
        org.id, nickname="n", url="http://127.0.0.1:9/h", topics=["file.created"]
    )
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{http_app.http_port}",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        for number in ODD_NUMBERS:
            for query in (f"since={number}", f"until={number}", f"cursor={number}_x"):
                response = await client.get(f"/api/v1/webhooks/{hook.id}/deliveries?{query}")
                assert response.status_code == 422, (query, response.text)
                assert response.headers["content-type"].startswith(PROBLEM_JSON)
                response = await client.get(f"/api/v1/events?{query}")
                assert response.status_code < 500, (query, response.text)
            response = await client.post(
                f"/api/v1/webhooks/{hook.id}/deliveries/redeliver",
                json={"since": number.replace("%C2%B2", "²")},
            )
            assert response.status_code == 422, (number, response.text)
