"""The command categories of ``lifecycle-manage`` (one module each) and
what they share.

Exit codes (**contract**, documented in ``doc/source/cli.rst``):

==  ====================================================================
0   success (for ``disks audit``: nothing found)
1   the command failed (a removal failed, an instance was not found, the
    database or hypervisor could not be used)
2   bad usage or configuration (unknown option or value, a deletion
    asked for without ``--yes`` or ``--dry-run``, no database)
3   ``disks audit`` found problems (listed on stdout)
==  ====================================================================
"""

SUCCESS = 0
FAILED = 1
USAGE = 2
PROBLEMS_FOUND = 3


class UsageError(Exception):
    """Bad input from the command line or configuration: exit code 2."""


class CommandFailed(Exception):
    """The command could not do its work: exit code 1."""
