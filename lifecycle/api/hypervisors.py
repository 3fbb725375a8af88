"""``/os-hypervisors``: the compute hosts and their claimed capacity."""

from lifecycle.api import schemas
from lifecycle.api import servers
from lifecycle.api import views
from lifecycle.api import wsgi
from lifecycle.policies import admin as policies


class HypervisorsController:
    def __init__(self, db) -> None:
        self.db = db

    def _list(self, req, detail: bool, collection: str) -> dict:
        nodes = self.db.compute_node_get_all()
        limit, marker = None, None
        if req.is_supported('2.33'):
            limit, marker = servers.paging(req, [('2.1', None,
                                                  schemas.paging_query)])
        pattern = req.GET.get('hypervisor_hostname_pattern')
        if pattern is not None and req.is_supported('2.53'):
            nodes = [n for n in nodes if pattern in n.hypervisor_hostname]
            if not nodes:
                raise wsgi.Fault(404, "No hypervisor matching '%s' could be "
                                      "found." % pattern)
        docs = [views.hypervisor(req, n, detail) for n in nodes]
        if limit is not None:
            docs = servers.page(docs, limit, marker, lambda d: str(d['id']))
        result = {'hypervisors': docs}
        if limit is not None:
            next_links = views.collection_links(
                req, [str(d['id']) for d in docs], collection)
            if next_links:
                result['hypervisors_links'] = next_links
        return result

    def index(self, req):
        return self._list(req, False, 'os-hypervisors')

    def detail(self, req):
        return self._list(req, True, 'os-hypervisors/detail')


def connect(router: wsgi.Router, controller: HypervisorsController) -> None:
    router.connect('/os-hypervisors', 'GET', wsgi.authorize(
        policies.HYPERVISORS % 'list')(controller.index))
    router.connect('/os-hypervisors/detail', 'GET', wsgi.authorize(
        policies.HYPERVISORS % 'list-detail')(controller.detail))
