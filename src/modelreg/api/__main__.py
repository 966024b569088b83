"""``python -m modelreg.api``: print the HTTP API's OpenAPI document (the committed
``src/modelreg/api/openapi.json`` is this output)."""

from __future__ import annotations

import sys

from .app import openapi_text

sys.stdout.write(openapi_text())
