"""Domain errors: raised inside the library, turned into messages at the edge (CLI, API, app)."""


class RagError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class SettingsError(RagError):
    """A setting has a bad value."""


class CorpusError(RagError):
    """The corpus folder is missing, empty or unreadable."""


class IndexMissingError(RagError):
    """No index at the configured path."""


class IndexStaleError(RagError):
    """The index was built from another corpus or other settings."""


class IndexCorruptError(RagError):
    """The index files are unreadable or inconsistent with each other."""


class EmbedderError(RagError):
    """The embedding model could not be loaded or used."""


class InputError(RagError):
    """A question or request is unusable (empty, wrong type)."""


class LLMError(RagError):
    """An LLM endpoint or local model failed; callers fall back to the extractive engine."""
