"""The release of shelve-lifecycle, for ``--version``."""

import pbr.version

_INFO = pbr.version.VersionInfo('shelve-lifecycle')


def version_string() -> str:
    """The installed package's version (pbr), ``unknown`` when the package
    metadata is not there (a source tree that was never installed)."""
    try:
        return _INFO.version_string()
    except Exception:  # pbr raises several kinds
        return 'unknown'
