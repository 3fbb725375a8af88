"""Image sources: where base images come from (local directory, Glance).

Both services offer the same interface (``list``, ``get``,
``find_by_name``, ``download``, ``create``, ``delete``); the Glance one
adds ``upload`` for full offload. :func:`get_image_service` picks one by
``[image] source``.
"""

from lifecycle import exception


def get_image_service(conf, local_dir: str | None = None):
    """The image service ``[image] source`` names.

    ``local``: a :class:`~lifecycle.image.local.LocalImageService` on
    ``local_dir`` (required). ``glance``: a
    :class:`~lifecycle.image.glance.GlanceImageService` built from the
    ``[glance]`` options of ``conf`` (``local_dir`` is ignored).
    """
    # Imported here: the local source needs neither glanceclient nor
    # keystoneauth1.
    source = conf.image.source
    if source == 'glance':
        from lifecycle.image import glance
        return glance.GlanceImageService(conf)
    if source == 'local':
        if not local_dir:
            raise exception.InvalidConfiguration(
                reason='[image] source = local needs an image directory '
                       '([image] local_dir)')
        from lifecycle.image import local
        return local.LocalImageService(local_dir)
    raise exception.InvalidConfiguration(
        reason='unknown [image] source %r' % source)
