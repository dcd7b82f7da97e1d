"""The REST API under /api/v1 (FastAPI), plus health and metrics endpoints."""
