"""What the tests and the tools (tools/bench) share to drive real services:
the REST client, the virtualenvs of the OpenStack services, the Glance
server, the counting guest, the multi-process deployment.

No pytest fixtures here: the tiers' conftest.py files wrap these in
fixtures, and tools import them without pytest's machinery."""
