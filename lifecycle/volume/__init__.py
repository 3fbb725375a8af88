"""The Block Storage (Cinder) client of volume-backed instances.

:class:`~lifecycle.volume.cinder.CinderAPI` wraps python-cinderclient's v3
API (attachments, microversion 3.44) on a keystoneauth1 session built from
``[cinder]``; :func:`get_volume_api` makes one.
"""

# The volume exceptions live in lifecycle/exception.py; these names stay for
# the callers that still use them.
from lifecycle.exception import InvalidVolume  # noqa: F401
from lifecycle.exception import VolumeAttachmentNotFound  # noqa: F401
from lifecycle.exception import VolumeConnectionFailed  # noqa: F401
from lifecycle.exception import VolumeNotFound  # noqa: F401
from lifecycle.exception import VolumeServiceError  # noqa: F401
from lifecycle.exception import VolumeServiceNotConfigured  # noqa: F401


def get_volume_api(conf=None):
    """A CinderAPI on ``conf`` (default ``CONF``).

    Building it reads no option yet: the client is made on first use, so a
    deployment without ``[cinder]`` starts and only volume requests fail.
    """
    from lifecycle.volume import cinder

    return cinder.CinderAPI(conf)
