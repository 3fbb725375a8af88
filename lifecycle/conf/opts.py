"""Entry point for oslo-config-generator (``oslo.config.opts`` namespace)."""

from lifecycle.conf import _MODULES


def list_opts():
    groups: dict[str, list] = {}
    for module in _MODULES:
        for group, opts in module.list_opts().items():
            groups.setdefault(group, []).extend(opts)
    return sorted(groups.items(), key=lambda item: item[0])
