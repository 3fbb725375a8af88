"""The picture of a shelve's and an unshelve's path through the modules
(doc/source/architecture.rst) matches the code: every module it names
exists, every class method it names is there, every flow it names is one
of the services' and every task of those flows is in it, and nothing else
is."""

import os
import re

from lifecycle.compute import api as compute_api
from lifecycle.compute import flows as compute_flows
from lifecycle.compute import manager as compute_manager
from lifecycle.compute import parts
from lifecycle.conductor import flows as conductor_flows
from lifecycle.conductor import manager as conductor_manager
from lifecycle.conductor import placement
from lifecycle.conf import opts as lifecycle_opts
from lifecycle.flows import engine
from lifecycle import resend

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CLASSES = {
    'API': compute_api.API,
    'ComputeManager': compute_manager.ComputeManager,
    'ConductorManager': conductor_manager.ConductorManager,
    'FlowRunner': engine.FlowRunner,
    'HostParts': parts.HostParts,
    'Placement': placement.Placement,
    'Resender': resend.Resender,
}


def _picture() -> str:
    with open(os.path.join(REPO, 'doc', 'source', 'architecture.rst')) as f:
        text = f.read()
    start = text.index('The path of a shelve and an unshelve')
    section = text[start:text.index('Storage groups and the disk layout')]
    return section[section.index('::\n'):]  # the picture, not its legend


def test_named_modules_exist():
    picture = _picture()
    found = set(re.findall(r'\b((?:[a-z_]+/)*[a-z_]+\.py)\b', picture))
    found |= set(re.findall(r'\b([a-z_]+/)(?:\s|$|\))', picture))
    assert 'compute/flows.py' in found and 'resend.py' in found
    for path in sorted(found):
        assert (os.path.exists(os.path.join(REPO, 'lifecycle', path)) or
                os.path.exists(os.path.join(REPO, path))), path


def test_named_methods_exist():
    named = re.findall(r'\b([A-Z]\w+)\.(\w+)', _picture())
    assert named
    for cls, attr in named:
        assert hasattr(CLASSES[cls], attr), (cls, attr)


def test_every_task_of_the_named_flows_is_in_the_picture():
    picture = _picture()
    kinds = set(re.findall(r"flow '(\w+)'", picture))
    tasks = set()
    for kind in kinds:
        factories = [f for f in (compute_flows.FACTORIES.get(kind),
                                 conductor_flows.FACTORIES.get(kind)) if f]
        assert factories, kind
        for factory in factories:
            tasks |= {task.name for task in factory(None)}
    assert {'shelve', 'hibernate_shelve', 'shelve_offload', 'full_offload',
            'unshelve', 'unshelve_shelved'} <= kinds
    # A word in brackets is a task, or an option group ([shelve] ...).
    groups = {group for group, _opts in lifecycle_opts.list_opts()}
    assert set(re.findall(r'\[([a-z_]+)\]', picture)) - groups == tasks
