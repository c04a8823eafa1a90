"""``dispatch keys generate|status|rewrap``: the key-encryption keys the subject keys are
wrapped under (docs/PRIVACY.md, "Wrapped keys")."""

from __future__ import annotations

import base64
import json
import secrets
from collections import Counter
from typing import Annotated

import typer

from dispatch.cli.common import DataDir, Kafka, settings_from
from dispatch.cli.errors import fail, reported
from dispatch.settings import KEK_BYTES, KEK_ID, Settings

app = typer.Typer(
    help="The key-encryption keys the subject keys are wrapped under.", no_args_is_help=True
)


@app.command("generate")
def generate(
    kek_id: Annotated[
        str, typer.Option("--id", help="The new key's id (1 to 32 letters, digits, . _ -).")
    ] = "kek-1",
) -> None:
    """Print a new random key-encryption key as the JSON DISPATCH_KEY_ENCRYPTION_KEYS
    takes ({"<id>": "<32 random bytes in base64>"}). Keep it outside the data dir and the
    log (a secret store, the environment): whoever holds a copy of both can read every
    subject key; lose it and every sealed field reads as lost."""
    if not KEK_ID.fullmatch(kek_id):
        raise typer.BadParameter("1 to 32 letters, digits, '.', '_' or '-'", param_hint="--id")
    key = base64.urlsafe_b64encode(secrets.token_bytes(KEK_BYTES)).decode()
    print(json.dumps({kek_id: key}))


@app.command("status")
def status(
    data_dir: DataDir = None,
    kafka: Kafka = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """Where the subject keys are, how many are wrapped under each key-encryption key and
    how many are kept as they are (not wrapped), how many subjects are erased, and the
    keys configured here. Exit 2 when the store holds keys under a key-encryption key not
    configured here (they could not be read)."""
    settings = settings_from(data_dir, kafka)
    configured = settings.key_encryption()
    with reported("read the subject keys"):
        where, wrapping, erased = _read(settings)
    configured_ids = sorted(configured[0]) if configured else []
    current = configured[1] if configured else None
    wrapped = {k: n for k, n in sorted(wrapping.items(), key=str) if k is not None}
    not_wrapped = wrapping.get(None, 0)
    if as_json:
        doc = {"where": where, "configured": configured_ids, "current": current,
               "wrapped": wrapped, "not_wrapped": not_wrapped, "erased": erased}  # fmt: skip
        print(json.dumps(doc, indent=2))
        return
    print(f"subject keys: {where}")
    shown = f"{', '.join(configured_ids)} (current {current})" if configured else "none"
    print(f"key-encryption keys configured: {shown}")
    for kek_id, count in wrapped.items():
        print(f"  wrapped under {kek_id}: {count:,}")
    print(f"  not wrapped: {not_wrapped:,}")
    print(f"  erased subjects: {erased:,}")
    if not_wrapped and configured:
        what = (
            "`dispatch keys rewrap` wraps them"
            if settings.embedded
            else ("on Kafka they stay as they are (rewrapping the topic is not built)")
        )
        print(f"keys not wrapped are readable by whoever holds the store: {what}")
    elif not configured:
        print("keys are kept as they are: set DISPATCH_KEY_ENCRYPTION_KEYS to wrap new ones")


@app.command("rewrap")
def rewrap(data_dir: DataDir = None) -> None:
    """Wrap every subject key not under the current key-encryption key (kept as it is, or
    under an older one) under it, 500 keys a synced transaction; then an older key no longer
    wraps anything and may be removed from DISPATCH_KEY_ENCRYPTION_KEYS. Embedded only
    (the data dir's subject-keys.sqlite); run it with the serving process stopped or
    running (the store takes its own lock)."""
    settings = settings_from(data_dir, None)
    if not settings.embedded:
        fail(
            "dispatch keys rewrap works on an embedded data dir only: on Kafka, rewriting "
            "the keys topic could bring back the key of a subject erased meanwhile, so it "
            "is not built (keep the older key-encryption keys configured)"
        )
    configured = settings.key_encryption()
    if configured is None:
        fail(
            "no key-encryption key is configured to wrap the keys under: set "
            "DISPATCH_KEY_ENCRYPTION_KEYS (`dispatch keys generate` makes one)"
        )
    from dispatch.adapters.sqlite.keystore import SqliteKeyStore, key_store_path
    from dispatch.bootstrap import build_key_wrap

    path = key_store_path(settings.data_dir)
    if not path.exists():
        fail(f"no subject keys at {path} (nothing was sealed in this data dir yet)")
    with reported(f"rewrap the keys of {path}"):
        store = SqliteKeyStore(path, build_key_wrap(settings))
        try:
            done = store.rewrap()
            left = store.wrapping()
        finally:
            store.close()
    print(f"{done:,} key(s) wrapped under {configured[1]} now; {sum(left.values()):,} live in all")


def _read(settings: Settings) -> tuple[str, Counter[str | None], int]:
    from dispatch.bootstrap import build_key_wrap

    wrap = build_key_wrap(settings)
    if settings.embedded:
        from dispatch.adapters.sqlite.keystore import SqliteKeyStore, key_store_path

        path = key_store_path(settings.data_dir)
        if not path.exists():
            return f"{path} (none yet)", Counter(), 0
        store = SqliteKeyStore(path, wrap)
        try:
            return str(path), store.wrapping(), store.erased_count()
        finally:
            store.close()
    from dispatch.adapters.kafka.config import connection_of
    from dispatch.adapters.kafka.keystore import KafkaKeyStore
    from dispatch.adapters.kafka.topics import Topics

    topic = Topics(settings.topic_prefix).subject_keys
    kafka_store = KafkaKeyStore(connection_of(settings), topic, settings.shards, wrap=wrap)
    try:
        return f"topic {topic}", kafka_store.wrapping(), kafka_store.erased_count()
    finally:
        kafka_store.close()
