"""The names of keys shared between modules, processes and users.

Every string that names a system-metadata key, an aggregate-metadata key, a
scheduler hint, an image property or a project-specific API attribute is
defined once, here (those the scheduler filters read come from
``filters.names``, which must not import the service). The values marked
contract in DESIGN.md never change.
"""

from filters.names import AGGREGATE_STORAGE_GROUP
from filters.names import HINT_SHELVED_HOST
from filters.names import HINT_STORAGE_GROUP
from filters.names import SHELVED_DISK
from filters.names import SHELVED_HOST
from filters.names import SHELVED_STORAGE_GROUP

__all__ = [
    'AGGREGATE_STORAGE_CAPACITY_GB', 'AGGREGATE_STORAGE_GROUP',
    'API_RETAINED_DISK', 'API_STORAGE_GROUP', 'HINT_SHELVED_HOST',
    'HINT_STORAGE_GROUP', 'IMAGE_SHELVED_INSTANCE', 'RETAINED_DISK_KEYS',
    'SHELVED_AT', 'SHELVED_DISK', 'SHELVED_HOST', 'SHELVED_IMAGE_ID',
    'SHELVED_KEYS', 'SHELVED_STORAGE_GROUP',
    'API_KEEP_MEMORY', 'API_MEMORY_STATE', 'IMAGE_KEEP_MEMORY',
    'SHELVED_MEMORY_STATE', 'SYSMETA_IMAGE_KERNEL_ID',
    'SYSMETA_IMAGE_RAMDISK_ID', 'SYSMETA_IMAGE_OS_COMMAND_LINE',
    'SYSMETA_IMAGE_KEEP_MEMORY', 'SYSMETA_IMAGE_PROPERTIES',
]

# --- instance system metadata (contract) ------------------------------------

#: When the instance was shelved (ISO 8601, UTC).
SHELVED_AT = 'shelved_at'
#: The Glance image holding the disk after a full offload (Nova's key).
SHELVED_IMAGE_ID = 'shelved_image_id'

#: A hibernate-shelve's saved memory state: its location inside the storage
#: group's storage (relative to ``instances_path``, like ``shelved_disk``).
SHELVED_MEMORY_STATE = 'shelved_memory_state'

#: Every key shelve sets; unshelve removes them all.
SHELVED_KEYS = (SHELVED_AT, SHELVED_HOST, SHELVED_STORAGE_GROUP, SHELVED_DISK,
                SHELVED_IMAGE_ID, SHELVED_MEMORY_STATE)
#: The keys that locate a retained disk (partial offload only); the memory
#: state lives beside the disk and goes with it.
RETAINED_DISK_KEYS = (SHELVED_STORAGE_GROUP, SHELVED_DISK,
                      SHELVED_MEMORY_STATE)

#: Image properties copied into system metadata at create, as Nova keeps
#: ``image_<property>``: the compute host needs them at every spawn and
#: unshelve, also after the image is gone.
SYSMETA_IMAGE_KERNEL_ID = 'image_kernel_id'
SYSMETA_IMAGE_RAMDISK_ID = 'image_ramdisk_id'
SYSMETA_IMAGE_OS_COMMAND_LINE = 'image_os_command_line'
SYSMETA_IMAGE_KEEP_MEMORY = 'image_lifecycle_keep_memory'

# --- aggregate metadata -----------------------------------------------------

#: The group's storage capacity in GiB, when the operator states it.
AGGREGATE_STORAGE_CAPACITY_GB = 'storage_capacity_gb'

# --- image properties --------------------------------------------------------

#: Set (to the instance's UUID) on every image a full offload of this project
#: uploads, and only there. ``lifecycle-manage disks`` treats an image as the
#: project's shelved image only when it carries this property: Nova's own
#: shelve snapshots (name ``<server>-shelved``, property ``instance_uuid``)
#: look exactly like ours otherwise, and a Glance shared with Nova holds them.
IMAGE_SHELVED_INSTANCE = 'lifecycle_shelved_instance'

#: ``true``: a shelve of a server built from this image keeps its memory
#: (hibernate-shelve) unless the request says otherwise.
IMAGE_KEEP_MEMORY = 'lifecycle_keep_memory'
#: image property -> system metadata key (see SYSMETA_IMAGE_KERNEL_ID)
SYSMETA_IMAGE_PROPERTIES = {
    'kernel_id': SYSMETA_IMAGE_KERNEL_ID,
    'ramdisk_id': SYSMETA_IMAGE_RAMDISK_ID,
    'os_command_line': SYSMETA_IMAGE_OS_COMMAND_LINE,
    IMAGE_KEEP_MEMORY: SYSMETA_IMAGE_KEEP_MEMORY,
}

# --- REST API attributes of the project's own ------------------------------

#: Server document: summary of the retained disk (admin details).
API_RETAINED_DISK = 'lifecycle:retained_disk'
#: Aggregate document: the storage group's usage.
API_STORAGE_GROUP = 'lifecycle:storage_group'
#: ``shelve`` action body: ``{"shelve": {"lifecycle:keep_memory": true}}``
#: asks for a hibernate-shelve (Nova ignores the action's value).
API_KEEP_MEMORY = 'lifecycle:keep_memory'
#: Server document: the saved memory state of a hibernate-shelved server.
API_MEMORY_STATE = 'lifecycle:memory_state'
