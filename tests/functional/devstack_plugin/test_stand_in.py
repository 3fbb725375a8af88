"""The stand-in of devstack itself: its ini functions behave as devstack's."""

import os
import textwrap

from tests.functional.devstack_plugin.stand_in import read_section


def test_shim_ini_functions_handle_multiline_options(devstack):
    """The shim's ini functions behave as devstack's (the plugin's tests
    are only as good as them)."""
    ds = devstack
    path = os.path.join(ds.root, 'x.conf')
    ds.run(textwrap.dedent('''
        iniset {p} a one 1
        iniset {p} a one 2
        iniadd {p} b multi x
        iniadd {p} b multi y z
        iniset {p} c url 'rabbit://u:p@h:5672/&x'
        test "$(iniget {p} a one)" = 2
        test "$(iniget_multiline {p} b multi)" = "x y z"
        test -z "$(iniget {p} a missing)"
        ini_has_option {p} a one
        ! ini_has_option {p} b one
    ''').format(p=path))
    assert read_section(path, 'a') == {'one': ['2']}
    assert read_section(path, 'b') == {'multi': ['x', 'y', 'z']}
    assert read_section(path, 'c') == {'url': ['rabbit://u:p@h:5672/&x']}
