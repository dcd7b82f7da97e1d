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
