"""The image source a run of ``lifecycle-manage`` uses: the one the
deployment's services use (``[image] source``), with the all-in-one's
local directory under ``[aio] state_dir`` when ``[image] local_dir`` is not
set."""

import os

from lifecycle import image as image_sources
from lifecycle.storage import paths


def local_dir(conf) -> str | None:
    """The local image directory of the deployment's configuration."""
    if conf.image.local_dir:
        return conf.image.local_dir
    if conf.aio.state_dir:
        return os.path.join(conf.aio.state_dir, 'images')
    return None


def image_service(conf, create: bool = False):
    """The image source the deployment's services use, or None when it is a
    local directory that does not exist (and ``create`` is False): a
    read-only command never creates it."""
    directory = local_dir(conf)
    if conf.image.source == 'local' and directory:
        if create:
            # As the services make it: QEMU must traverse it.
            paths.make_service_dir(directory)
        elif not os.path.isdir(directory):
            return None
    return image_sources.get_image_service(conf, directory)
