"""Nova-compatible instance states, task states and power states."""

# vm_state
ACTIVE = 'active'
BUILDING = 'building'
STOPPED = 'stopped'
SHELVED = 'shelved'
SHELVED_OFFLOADED = 'shelved_offloaded'
ERROR = 'error'
DELETED = 'deleted'

# task_state
SPAWNING = 'spawning'
SCHEDULING = 'scheduling'
POWERING_OFF = 'powering-off'
POWERING_ON = 'powering-on'
SHELVING = 'shelving'
SHELVING_OFFLOADING = 'shelving_offloading'
SHELVING_IMAGE_UPLOADING = 'shelving_image_uploading'
UNSHELVING = 'unshelving'
DELETING = 'deleting'

# power_state, Nova's numbering
NOSTATE = 0
RUNNING = 1
PAUSED = 3
SHUTDOWN = 4
CRASHED = 6
SUSPENDED = 7

# The REST API's ``status`` of a vm_state (Nova's
# ``nova.api.openstack.common`` also maps task states such as REBOOT, which
# this project has none of).
STATUS = {
    BUILDING: 'BUILD',
    ACTIVE: 'ACTIVE',
    STOPPED: 'SHUTOFF',
    SHELVED: 'SHELVED',
    SHELVED_OFFLOADED: 'SHELVED_OFFLOADED',
    ERROR: 'ERROR',
    DELETED: 'DELETED',
}


def status_of(vm_state: str) -> str:
    return STATUS.get(vm_state, 'UNKNOWN')


# Which vm_states an action may start from; every action also needs task_state
# None. Unlike Nova, stop is refused in ERROR: an instance whose build never
# found a host has nowhere to send it.
ALLOWED_VM_STATES = {
    'shelve': (ACTIVE, STOPPED),
    'shelveOffload': (SHELVED,),
    'unshelve': (SHELVED, SHELVED_OFFLOADED),
    'start': (STOPPED,),
    'stop': (ACTIVE,),
    'delete': (ACTIVE, BUILDING, STOPPED, SHELVED, SHELVED_OFFLOADED, ERROR),
}
