"""Errors the worker reports to a person, at start or per input."""


class ConfigError(Exception):
    """A settings, pack, override or reference file is invalid; the message names file, key and problem."""


class DeliveryError(RuntimeError):
    """The broker did not acknowledge a decision or dead letter: offsets must not be committed."""
