"""The driver/rider HTTP API: a thin layer over ``dispatch.runtime.Runtime``."""

from dispatch.api.app import create_app
from dispatch.api.auth import AuthSettings, mint_operator_token

__all__ = ["AuthSettings", "create_app", "mint_operator_token"]
