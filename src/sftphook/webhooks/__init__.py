"""Webhooks: payloads, signatures, URL safety and the delivery engine. Knows nothing of SFTP."""
