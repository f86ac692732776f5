"""The seminar-ops pytest plugin (entry point ``seminarops``): the real broker and
database once per session, a fresh namespace per test."""

from .fixtures import kafka, namespace
from .server_fixtures import infrastructure

__all__ = ["infrastructure", "kafka", "namespace"]
