async def test_openapi_documents_bearer_auth_and_problem_responses(anonymous):
    resp = await anonymous.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    spec = resp.json()
    schemes = spec["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    scheme_name = next(iter(schemes))
    assert "Problem" in spec["components"]["schemas"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path in ("/api/v1/users", "/api/v1/events", "/api/v1/tokens"):
        for operation in spec["paths"][path].values():
            assert operation["security"] == [{scheme_name: []}]
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    assert list(response["content"]) == ["application/problem+json"]
            assert "401" in operation["responses"]
    assert "422" in spec["paths"]["/api/v1/users"]["post"]["responses"]
    assert "409" in spec["paths"]["/api/v1/users"]["post"]["responses"]
    assert "404" in spec["paths"]["/api/v1/users/{username}"]["get"]["responses"]


async def test_every_api_operation_documents_the_problems_it_can_answer(anonymous):
    """A generated client learns of 401 for a bad token, 413 for a body too large and 422 for
    an unknown query parameter on every route, and of 404 wherever an id is in the path
    (webhooks and deliveries documented neither 401 nor 404; routes without parameters no
    422)."""
    spec = (await anonymous.get("/api/v1/openapi.json")).json()
    missing = []
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            wanted = {"401", "413", "422"} | ({"404"} if "{" in path else set())
            for status in sorted(wanted - set(operation["responses"])):
                missing.append(f"{method.upper()} {path}: {status}")
            for status in wanted & set(operation["responses"]):
                content = operation["responses"][status]["content"]
                assert list(content) == ["application/problem+json"], (path, status)
    assert not missing, missing
