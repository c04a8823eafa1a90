"""The JWT adapter: tokens signed and verified with PyJWT (``dispatch.tokens.TokenCodec``),
and the tokens of the format before JWTs verified until they expire (``legacy``)."""
