"""The environment that gives a child process (a worker, the replay CLI) the same settings
as this one: every setting written as its ``DISPATCH_*`` variable, so the child reads what
this process was given (by its environment, options or a caller), not its own guess."""

from __future__ import annotations

import os

from pydantic import SecretStr, TypeAdapter

from dispatch.settings import MarketConfig, ProductConfig, Settings

_MARKETS = TypeAdapter(list[MarketConfig])
_PRODUCTS = TypeAdapter(dict[str, ProductConfig])


def settings_environment(settings: Settings) -> dict[str, str]:
    """This process's environment with every setting of ``settings`` on top (a setting
    left unset here is unset there too, whatever this process's environment says)."""
    env = dict(os.environ)
    for name in Settings.model_fields:
        key, value = f"DISPATCH_{name.upper()}", getattr(settings, name)
        if value is None:
            env.pop(key, None)
        elif name == "markets":
            env[key] = _MARKETS.dump_json(value).decode()
        elif name == "products":
            env[key] = _PRODUCTS.dump_json(value).decode()
        elif name == "fares":  # as JSON (the amounts as text), whether from a file or not
            env[key] = value.model_dump_json()
        elif name == "fares_file":  # read already: its rules go as DISPATCH_FARES
            env.pop(key, None)
        elif isinstance(value, SecretStr):  # str() of it is asterisks
            env[key] = value.get_secret_value()
        else:
            env[key] = str(value)
    return env
