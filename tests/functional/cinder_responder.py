"""The minimal local Keystone + Nova responder that Cinder's attachment
delete needs when Cinder runs without Keystone (see cinder_fixture.py).

Cinder (bug #2004555) refuses to delete an attachment that has a connection
unless the request carries a service token or Nova says the instance no
longer uses it: it gets a token and a catalog from ``[nova]
token_auth_url``, then calls Nova's ``GET /servers/{id}/
os-volume_attachments/{volume}`` at microversion 2.89. Noauth has no
Keystone to find Nova with, and the lifecycle service is not Nova, so this
responder answers exactly those calls and nothing else.
"""

import http.server
import json
import threading
import time
import uuid


class NovaResponder:
    """Keystone's token answer and Nova's ``GET /servers/{id}/
    os-volume_attachments/{volume}``, on 127.0.0.1, nothing else.

    ``lookup(server_id, volume_id)`` gives the attachment id the compute
    service records for that volume of that server, or None (answered
    404, "Instance or volume not found"). ``calls`` lists the
    (server_id, volume_id, answered attachment id) Cinder asked about.
    """

    def __init__(self) -> None:
        self.lookup = lambda server_id, volume_id: None
        self.calls: list[tuple[str, str, str | None]] = []
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict,
                      headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # http.server's name
                responder.handle_get(self)

            def do_POST(self):
                length = int(self.headers.get('Content-Length') or 0)
                self.rfile.read(length)
                responder.handle_post(self)

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)

    @property
    def identity_url(self) -> str:
        return self.url + '/identity/v3'

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _identity_version(self) -> dict:
        return {'id': 'v3.14', 'status': 'stable',
                'updated': '2020-04-07T00:00:00Z',
                'links': [{'rel': 'self', 'href': self.identity_url + '/'}],
                'media-types': [{
                    'base': 'application/json',
                    'type': 'application/vnd.openstack.identity-v3+json'}]}

    def handle_get(self, req) -> None:
        path = req.path.split('?')[0].rstrip('/')
        if path == '/identity':
            req._send(300, {'versions': {'values': [
                self._identity_version()]}})
        elif path == '/identity/v3':
            req._send(200, {'version': self._identity_version()})
        elif path in ('/compute', '/compute/v2.1'):
            req._send(200, {'version': {
                'id': 'v2.1', 'status': 'CURRENT', 'version': '2.91',
                'min_version': '2.1', 'updated': '2013-07-23T11:33:21Z',
                'links': [{'rel': 'self',
                           'href': self.url + '/compute/v2.1/'}]}})
        else:
            parts = path.split('/')
            # /compute/v2.1/servers/<id>/os-volume_attachments/<volume>
            if (len(parts) == 7 and parts[1:4] == ['compute', 'v2.1',
                                                    'servers']
                    and parts[5] == 'os-volume_attachments'):
                self._volume_attachment(req, parts[4], parts[6])
            else:
                req._send(404, {'itemNotFound': {
                    'code': 404, 'message': 'no such resource here'}})

    def _volume_attachment(self, req, server_id: str, volume_id: str) -> None:
        attachment_id = self.lookup(server_id, volume_id)
        self.calls.append((server_id, volume_id, attachment_id))
        if attachment_id is None:
            req._send(404, {'itemNotFound': {
                'code': 404, 'message': 'volume %s is not attached to '
                'server %s' % (volume_id, server_id)}})
            return
        req._send(200, {'volumeAttachment': {
            'id': volume_id, 'volumeId': volume_id, 'serverId': server_id,
            'device': '/dev/vda', 'tag': None,
            'delete_on_termination': False, 'attachment_id': attachment_id,
            'bdm_uuid': str(uuid.uuid5(uuid.NAMESPACE_URL,
                                       server_id + volume_id))}})

    def handle_post(self, req) -> None:
        if req.path.rstrip('/') != '/identity/v3/auth/tokens':
            req._send(404, {'error': {'code': 404, 'message': 'not here'}})
            return
        now = time.time()
        token = {
            'methods': ['token'],
            'issued_at': time.strftime('%Y-%m-%dT%H:%M:%S.000000Z',
                                       time.gmtime(now)),
            'expires_at': time.strftime('%Y-%m-%dT%H:%M:%S.000000Z',
                                        time.gmtime(now + 3600)),
            'user': {'id': 'cinder', 'name': 'cinder',
                     'domain': {'id': 'default', 'name': 'Default'}},
            'project': {'id': 'notused', 'name': 'notused',
                        'domain': {'id': 'default', 'name': 'Default'}},
            'roles': [{'id': 'admin', 'name': 'admin'}],
            'catalog': [{'type': 'compute', 'name': 'nova', 'id': 'nova',
                         'endpoints': [{
                             'id': 'nova-public', 'interface': 'public',
                             'region': 'RegionOne', 'region_id': 'RegionOne',
                             'url': self.url + '/compute/v2.1'}]}]}
        req._send(201, {'token': token},
                  {'X-Subject-Token': uuid.uuid4().hex})
