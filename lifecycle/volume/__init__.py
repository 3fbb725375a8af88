"""The Block Storage (Cinder) client of volume-backed instances.

:class:`~lifecycle.volume.cinder.CinderAPI` wraps python-cinderclient's v3
API (attachments, microversion 3.44) on a keystoneauth1 session built from
``[cinder]``; :func:`get_volume_api` makes one.
"""

from lifecycle import exception


class VolumeNotFound(exception.NotFound):
    msg_fmt = 'Volume %(volume_id)s could not be found.'


class VolumeAttachmentNotFound(exception.NotFound):
    msg_fmt = 'Volume attachment %(attachment_id)s could not be found.'


class InvalidVolume(exception.Invalid):
    msg_fmt = 'Invalid volume: %(reason)s'


class VolumeServiceNotConfigured(exception.Invalid):
    msg_fmt = ('Block Device Mapping is Invalid: this service has no volume '
               'service ([cinder] auth_type is not set).')


class VolumeServiceError(exception.LifecycleException):
    msg_fmt = 'Volume service request %(what)s failed: %(reason)s'


def get_volume_api(conf=None):
    """A CinderAPI on ``conf`` (default ``CONF``).

    Building it reads no option yet: the client is made on first use, so a
    deployment without ``[cinder]`` starts and only volume requests fail.
    """
    from lifecycle.volume import cinder

    return cinder.CinderAPI(conf)
