"""The command categories of ``lifecycle-manage`` (one module each) and
what they share.

Exit codes (**contract**, documented in ``doc/source/cli.rst`` and in
``lifecycle-manage --help``):

==  ====================================================================
0   success (for ``disks audit``: nothing found)
1   the command failed (a removal failed, an instance was not found, the
    database or hypervisor could not be used; for ``disks audit``: a
    check could not run and nothing was found by the others)
2   bad usage or configuration (unknown option or value, a changing
    command run without ``--yes`` or ``--dry-run``, a confirmation that
    could not be asked or was not given, no database)
3   ``disks audit`` found problems (listed on stdout); when some check
    also failed, an ``ERROR:`` line on stderr says which
4   ``disks audit``/``cleanup`` refused: a storage root holds data this
    project does not own (e.g. Nova's instances), nothing was changed
==  ====================================================================
"""

SUCCESS = 0
FAILED = 1
USAGE = 2
PROBLEMS_FOUND = 3
FOREIGN_STORAGE = 4

#: (code, meaning) for the help texts.
EXIT_CODES = (
    (SUCCESS, 'success (disks audit: nothing found)'),
    (FAILED, 'the command failed'),
    (USAGE, 'bad usage or configuration, or a change refused without '
            '--yes'),
    (PROBLEMS_FOUND, 'disks audit found problems (also when a check '
                     'failed: see the ERROR lines)'),
    (FOREIGN_STORAGE, 'disks audit/cleanup refused: a storage root holds '
                      'data this project does not own'),
)


class UsageError(Exception):
    """Bad input from the command line or configuration: exit code 2."""


class CommandFailed(Exception):
    """The command could not do its work: exit code 1."""


class ForeignStorage(Exception):
    """A storage root holds data the project does not own: exit code 4."""
