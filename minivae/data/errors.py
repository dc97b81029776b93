"""Errors raised by minivae.data.

A file that cannot be obtained, verified or read raises a DatasetError (one except catches
them all); a data set name or split that does not exist is the caller's mistake and raises
UnknownDatasetError, an InputError (and so a ValueError), like every other bad argument.
"""

from minivae.errors import InputError


class DatasetError(RuntimeError):
    """Base class: a dataset file could not be obtained, verified or read."""


class DownloadError(DatasetError):
    """A file is not on this machine and could not be downloaded (offline, HTTP error, ...).

    ``bad_files``: what was wrong with each file a server did send (truncated, wrong SHA-256,
    an HTML page), one sentence each; empty when no server answered at all.
    """

    def __init__(self, message, bad_files=()):
        super().__init__(message)
        self.bad_files = list(bad_files)


class ChecksumError(DatasetError):
    """A file's size or SHA-256 is not the one recorded in the registry."""


class CacheDirError(DatasetError):
    """The data folder cannot be created or written to."""


class FormatError(DatasetError, ValueError):
    """A file does not have the layout its format promises (IDX header, .amat lines, gzip)."""


class UnknownDatasetError(InputError):
    """A data set name or split minivae does not know; the message lists the known ones."""
