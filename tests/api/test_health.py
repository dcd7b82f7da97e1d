import aiohttp


async def test_health_and_readiness_answer_on_the_running_server(http_app):
    base = f"http://127.0.0.1:{http_app.http_port}"
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{base}/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "ok"
        async with client.get(f"{base}/readyz") as resp:
            assert resp.status == 200 and (await resp.json())["database"] == "ok"
        async with client.get(f"{base}/api/v1/openapi.json") as resp:
            assert resp.status == 200 and (await resp.json())["info"]["title"] == "sftphook"
        async with client.get(f"{base}/nope") as resp:
            assert resp.status == 404
            assert resp.headers["Content-Type"].startswith("application/problem+json")
