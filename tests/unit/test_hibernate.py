"""Hibernate-shelve's request schema, its choice of defaults, and the owner
metadata element a restore sets."""

import types
import xml.etree.ElementTree as ET

import pytest

from lifecycle import exception
from lifecycle.api import schemas
from lifecycle.compute import hibernate
from lifecycle.conf import CONF
from lifecycle.virt import domain_xml

SHELVE = schemas.ACTIONS['shelve'][0][2]


@pytest.mark.parametrize('body', [
    {'shelve': None}, {'shelve': {}}, {'shelve': {'other': 1}},
    {'shelve': {'lifecycle:keep_memory': True}},
    {'shelve': {'lifecycle:keep_memory': False}}])
def test_shelve_bodies_nova_clients_send_and_ours_pass(body):
    schemas.validate(SHELVE, body)


@pytest.mark.parametrize('value', ['yes', 1, None, []])
def test_keep_memory_must_be_a_boolean(value):
    with pytest.raises(exception.Invalid):
        schemas.validate(SHELVE, {'shelve': {'lifecycle:keep_memory': value}})


def _instance(sysmeta=None):
    return types.SimpleNamespace(system_metadata=dict(sysmeta or {}))


def test_request_then_image_then_option():
    CONF.set_override('keep_memory', True, group='shelve')
    try:
        assert hibernate.wanted(_instance(), None) is True
        assert hibernate.wanted(_instance(), False) is False
        image_no = _instance({'image_lifecycle_keep_memory': 'false'})
        assert hibernate.wanted(image_no, None) is False
        assert hibernate.wanted(image_no, True) is True
    finally:
        CONF.clear_override('keep_memory', group='shelve')
    assert hibernate.wanted(_instance(), None) is False
    assert hibernate.wanted(
        _instance({'image_lifecycle_keep_memory': 'true'}), None) is True


def test_owner_metadata_element_reads_back():
    spec = domain_xml.DomainSpec(
        uuid='0f2c7c2e-0d4e-4d2b-9d8e-3f6f4d1c2a11', display_name='<a&b>',
        vcpus=1, memory_mb=256, disk_path='/x/disk', disk_format='qcow2',
        host='host-a2', user_id='u', project_id='p', flavor_name='f')
    xml = domain_xml.owner_metadata_xml(spec)
    assert ET.fromstring(xml).tag == 'instance'
    meta = domain_xml.parse_owner_metadata(xml)
    assert (meta['uuid'], meta['host'], meta['display_name']) == (
        spec.uuid, 'host-a2', '<a&b>')
