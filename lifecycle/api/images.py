"""``/images``: Nova's read-only image proxy over the image service.

Nova answers 404 here from microversion 2.36 (proxy APIs deprecated); this
service keeps the proxy at every microversion because it is the only way to
find an image to boot without a Glance endpoint. Set ``MAX_VERSION`` to
``'2.35'`` for Nova's exact behaviour.
"""

from lifecycle import exception
from lifecycle.api import schemas
from lifecycle.api import servers
from lifecycle.api import views
from lifecycle.api import wsgi

MAX_VERSION = None


class ImagesController:
    def __init__(self, image_service) -> None:
        self.images = image_service

    @staticmethod
    def _check_version(req) -> None:
        if MAX_VERSION is not None and req.api_version > MAX_VERSION:
            raise wsgi.Fault(404, wsgi.NOT_FOUND)

    def _list(self, req) -> list[dict]:
        self._check_version(req)
        limit, marker = servers.paging(req, [('2.1', None,
                                              schemas.paging_query)])
        images = self.images.list()
        if 'name' in req.GET:
            images = [i for i in images if i.get('name') == req.GET['name']]
        if 'status' in req.GET:
            images = [i for i in images
                      if (i.get('status') or '').upper() ==
                      req.GET['status'].upper()]
        for key, attr in (('minRam', 'min_ram'), ('minDisk', 'min_disk')):
            if key in req.GET:
                try:
                    least = int(req.GET[key])
                except ValueError:
                    raise wsgi.Fault(400, 'Invalid %s filter [%s]' % (
                        key, req.GET[key])) from None
                images = [i for i in images if int(i.get(attr) or 0) >= least]
        return servers.page(images, limit, marker, lambda i: i['id'])

    def _doc(self, req, images, view, collection):
        doc = {'images': [view(req, i) for i in images]}
        next_links = views.collection_links(req, [i['id'] for i in images],
                                            collection)
        if next_links:
            doc['images_links'] = next_links
        return doc

    def index(self, req):
        return self._doc(req, self._list(req), views.image_basic, 'images')

    def detail(self, req):
        return self._doc(req, self._list(req), views.image_detail,
                         'images/detail')

    def show(self, req, id):  # Nova's route argument name
        self._check_version(req)
        try:
            image = self.images.get(id)
        except exception.ImageNotFound:
            raise wsgi.Fault(404, 'Image not found.') from None
        return {'image': views.image_detail(req, image)}


def connect(router: wsgi.Router, controller: ImagesController) -> None:
    router.connect('/images', 'GET', controller.index)
    router.connect('/images/detail', 'GET', controller.detail)
    router.connect('/images/{id}', 'GET', controller.show)
