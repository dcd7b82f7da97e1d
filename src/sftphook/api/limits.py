"""A bound on the size of request bodies (API and dashboard), enforced while they arrive."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sftphook.api.problems import problem_response

# Larger than any valid request: a user with 100 public keys of 16,384 characters is 1.6 MB.
MAX_BODY = 2 * 1024 * 1024


class BoundedBody:
    """Refuse with 413 a request to `prefix` whose body passes `limit` bytes, as soon as it does
    and before the route (and its token check) runs. FastAPI reads a body whole before a
    route's dependencies: without this, anyone could make the server hold any amount of it."""

    def __init__(self, app: ASGIApp, *, prefix: str = "/", limit: int = MAX_BODY) -> None:
        self.app = app
        self.prefix = prefix
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        # Read the body here, at most `limit` bytes of it, then hand it on as one message.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = (
            f"the request body is larger than {self.limit:,} bytes, more than any valid request"
        )
        problem = {
            "type": "https://sftphook.dev/problems/body-too-large",
            "title": "Request body too large",
            "status": 413,
            "detail": detail,
            "instance": scope["path"],
        }
        # The rest of the body is not read: the connection closes after the answer.
        response = problem_response(413, problem, headers={"Connection": "close"})
        await response(scope, receive, send)
