"""The JWT adapter: tokens signed and verified with PyJWT (``dispatch.tokens.TokenCodec``)."""
