"""Errors the worker reports to a person, at start or per input (the codec's decode and encode errors too)."""


class ConfigError(Exception):
    """A settings, pack, override or reference file is invalid; the message names file, key and problem."""


class DeliveryError(RuntimeError):
    """The broker did not acknowledge a decision or dead letter: offsets must not be committed."""


class DecodeError(ValueError):
    """A payload is not a valid record of the expected schema (random, truncated, other schema...)."""


class EncodeError(ValueError):
    """A record does not fit its schema; the message names the field, never its value."""
