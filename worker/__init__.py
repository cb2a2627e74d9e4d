"""J7507 claim-integrity worker: rules, offline evaluation and the Kafka stream worker."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("j7507-worker")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
