"""Errors raised by minivae.data; all derive from DatasetError, so one except catches them."""


class DatasetError(RuntimeError):
    """Base class: a dataset file could not be obtained, verified or read."""


class DownloadError(DatasetError):
    """A file is not on this machine and could not be downloaded (offline, HTTP error, ...)."""


class ChecksumError(DatasetError):
    """A file's size or SHA-256 is not the one recorded in the registry."""


class CacheDirError(DatasetError):
    """The data folder cannot be created or written to."""


class FormatError(DatasetError, ValueError):
    """A file does not have the layout its format promises (IDX header, .amat lines, gzip)."""
