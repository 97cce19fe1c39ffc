"""Exception hierarchy: every error a user can fix carries a message that says what and how."""

from __future__ import annotations

__all__ = ["SpecmusicError", "InputError", "AudioError", "ConfigError", "ModelError"]


class SpecmusicError(Exception):
    """Base class of every error specmusic raises on purpose.

    The message is one line: what went wrong, then (after an em dash) how to fix it.
    The CLI prints it as ``Error: <message>`` and exits with code 1.
    """


class InputError(SpecmusicError):
    """A path, manifest or array given by the user cannot be used."""


class AudioError(InputError):
    """An audio file cannot be decoded, is empty, or is too short."""


class ConfigError(SpecmusicError):
    """Options or configs that contradict each other or a stored artifact."""


class ModelError(SpecmusicError):
    """A model file is missing, malformed, or lacks the metadata specmusic needs."""
