"""Authenticated encryption of personal fields with pyca/cryptography (AES-GCM): the
``dispatch.privacy.FieldCipher`` port's adapter, and the only module that imports it."""
