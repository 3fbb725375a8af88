"""Names of the retained-disk contract that the scheduler side reads.

``filters`` is loaded by nova-scheduler without the service, so the keys it
reads are defined here; ``lifecycle.names`` re-exports them, and the service
and the Nova plugin use them from there. Each value is a **contract**
(DESIGN.md): users, Nova's stock code and outside checks rely on it.
"""

#: Aggregate metadata key whose value names the aggregate's storage group.
AGGREGATE_STORAGE_GROUP = 'storage_group'

#: Scheduler hint naming the storage group an instance must stay in.
HINT_STORAGE_GROUP = 'storage_group'
#: Scheduler hint naming the host that holds the shelved instance.
HINT_SHELVED_HOST = 'shelved_host'

#: Instance system metadata: the storage group holding the retained disk.
SHELVED_STORAGE_GROUP = 'shelved_storage_group'
#: Instance system metadata: the host the instance was shelved on.
SHELVED_HOST = 'shelved_host'
#: Instance system metadata: the retained disk's location inside its group.
SHELVED_DISK = 'shelved_disk'
