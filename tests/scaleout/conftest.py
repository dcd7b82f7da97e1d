"""Several nodes: the webhook tests' receiver and fast-retry settings."""

from tests.webhooks.conftest import receiver, settings  # noqa: F401
