"""Exceptions of shelve-lifecycle.

Each exception carries a ``msg_fmt`` filled from keyword arguments and a
``code`` the REST API maps to its HTTP status (Nova's convention).
"""

from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class LifecycleException(Exception):
    msg_fmt = 'An unknown exception occurred.'
    code = 500

    def __init__(self, message: str | None = None, **kwargs):
        self.kwargs = kwargs
        if not message:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError):
                LOG.exception('Exception %s formatting with %s',
                              type(self).__name__, kwargs)
                message = self.msg_fmt
        self.message = message
        super().__init__(message)

    def format_message(self) -> str:
        return self.message


def message_of(error: BaseException) -> str:
    """What a fault, a notification or a command shows of ``error``: its
    user-facing message (``format_message``) for the project's own
    exceptions, else its text, else its class name."""
    if isinstance(error, LifecycleException):
        return error.format_message()
    return str(error) or type(error).__name__


def describe(error: BaseException) -> str:
    """``error`` with its class, as a log line or a fault's details (or the
    reason of a wrapping error) name it: ``<class>: <message>``."""
    text = (error.format_message() if isinstance(error, LifecycleException)
            else str(error))
    return '%s: %s' % (type(error).__name__, text)


# 403
class Forbidden(LifecycleException):
    msg_fmt = 'Forbidden'
    code = 403


class PolicyNotAuthorized(Forbidden):
    """Nova's message, so clients see the rule that refused them."""
    msg_fmt = "Policy doesn't allow %(action)s to be performed."


# 400
class Invalid(LifecycleException):
    msg_fmt = 'Bad request: %(reason)s'
    code = 400


class InvalidInput(Invalid):
    msg_fmt = 'Invalid input received: %(reason)s'


class InvalidConfiguration(Invalid):
    msg_fmt = 'Invalid configuration: %(reason)s'


class UnsafePath(Invalid):
    msg_fmt = 'Path %(path)s is outside the managed directory %(root)s.'


# 404
class NotFound(LifecycleException):
    msg_fmt = 'Resource could not be found.'
    code = 404


class InstanceNotFound(NotFound):
    msg_fmt = 'Instance %(instance_id)s could not be found.'


class FlavorNotFound(NotFound):
    msg_fmt = 'Flavor %(flavor_id)s could not be found.'


class ImageNotFound(NotFound):
    msg_fmt = 'Image %(image_id)s could not be found.'


class ComputeHostNotFound(NotFound):
    msg_fmt = 'Compute host %(host)s could not be found.'


class AggregateNotFound(NotFound):
    msg_fmt = 'Aggregate %(aggregate_id)s could not be found.'


class DomainNotFound(NotFound):
    msg_fmt = 'No libvirt domain for instance %(instance_uuid)s.'


class RetainedDiskNotFound(NotFound):
    msg_fmt = 'Root disk of instance %(instance_uuid)s is missing at %(path)s.'


# 409
class Conflict(LifecycleException):
    msg_fmt = 'Conflict: %(reason)s'
    code = 409


class InstanceInvalidState(Conflict):
    msg_fmt = ("Cannot '%(action)s' instance %(instance_uuid)s while it is "
               "in %(attr)s %(state)s")


class FlavorExists(Conflict):
    msg_fmt = 'Flavor with %(key)s %(value)s already exists.'


# scheduling and host-side failures (recorded as instance faults)
class NoValidHost(LifecycleException):
    msg_fmt = 'No valid host was found. %(reason)s'
    code = 500


class ClaimFailed(LifecycleException):
    msg_fmt = ('Claim of %(vcpus)d vCPU and %(memory_mb)d MiB on host '
               '%(host)s failed: not enough free capacity.')
    code = 409


class HypervisorUnavailable(LifecycleException):
    msg_fmt = 'Connection to the hypervisor at %(uri)s failed: %(reason)s'


class VirtDriverError(LifecycleException):
    msg_fmt = ('Libvirt operation %(operation)s failed for '
               '%(instance_uuid)s: %(reason)s')


class SavedStateUnusable(VirtDriverError):
    """The saved memory state cannot be restored (damaged, written by
    another QEMU, CPU incompatible); nothing was left running."""
    msg_fmt = ('Saved memory state %(path)s of instance %(instance_uuid)s '
               'cannot be restored: %(reason)s')


class StorageError(LifecycleException):
    msg_fmt = 'Storage operation failed: %(reason)s'


class RbdCommandError(StorageError):
    """An ``rbd``/``ceph`` command failed; ``errno`` is its exit status."""

    def __init__(self, reason: str, errno: int | None = None) -> None:
        super().__init__(reason=reason)
        self.errno = errno


class BaseInUse(StorageError):
    msg_fmt = 'Base image %(name)s still has clones: %(children)s'


class ImageFetchError(LifecycleException):
    msg_fmt = 'Image %(image_id)s could not be fetched: %(reason)s'


# host aggregates and storage groups (Nova's aggregate exceptions, same
# messages; the storage-group ones are this project's)
class AggregateNameExists(Conflict):
    msg_fmt = 'Aggregate %(aggregate_name)s already exists.'


class AggregateHostExists(Conflict):
    msg_fmt = 'Aggregate %(aggregate_id)s already has host %(host)s.'


class AggregateHostNotFound(NotFound):
    msg_fmt = 'Aggregate %(aggregate_id)s has no host %(host)s.'


class InvalidAggregateAction(Invalid):
    msg_fmt = 'Unacceptable parameters.'


class InvalidAggregateActionAdd(InvalidAggregateAction):
    msg_fmt = ('Cannot add host to aggregate %(aggregate_id)s. '
               'Reason: %(reason)s.')


class InvalidAggregateActionDelete(InvalidAggregateAction):
    msg_fmt = ('Cannot remove host from aggregate %(aggregate_id)s. '
               'Reason: %(reason)s.')


class InvalidAggregateActionUpdate(InvalidAggregateAction):
    msg_fmt = ('Cannot update aggregate %(aggregate_id)s. '
               'Reason: %(reason)s.')


class InvalidAggregateActionUpdateMeta(InvalidAggregateAction):
    msg_fmt = ('Cannot update metadata of aggregate %(aggregate_id)s. '
               'Reason: %(reason)s.')


class InvalidStorageGroup(Invalid):
    msg_fmt = ('Invalid storage_group %(name)r: %(reason)s.')


class StorageGroupNotFound(NotFound):
    msg_fmt = 'Storage group %(name)s could not be found.'


class HostInOtherStorageGroup(Conflict):
    msg_fmt = ('Host %(host)s is already in storage group %(group)s '
               '(aggregate %(aggregate_id)s); a host may be in one storage '
               'group only.')


class StorageGroupInUse(Conflict):
    msg_fmt = ('Storage group %(group)s holds %(count)d retained disk(s) of '
               'shelved offloaded instances: %(reason)s. Unshelve, offload '
               'to an image or delete those instances first.')


class ImageUploadFailed(LifecycleException):
    """An upload to the image service did not end with an active image of
    the data sent. ``image_id`` is the image record that was created (None
    when none was); it was deleted unless the message says otherwise."""
    msg_fmt = ('Upload of %(path)s as image %(name)r (%(image_id)s) failed: '
               '%(reason)s')


class ImageServiceError(LifecycleException):
    """The image service did not answer a request (other than "not found")
    usably, after the configured retries."""
    msg_fmt = 'Image service request %(what)s failed: %(reason)s'
    code = 503


# volumes (Cinder)
class VolumeNotFound(NotFound):
    msg_fmt = 'Volume %(volume_id)s could not be found.'


class VolumeAttachmentNotFound(NotFound):
    msg_fmt = 'Volume attachment %(attachment_id)s could not be found.'


class InvalidVolume(Invalid):
    msg_fmt = 'Invalid volume: %(reason)s'


class VolumeConnectionFailed(LifecycleException):
    msg_fmt = ('Volume %(volume_id)s could not be connected on host '
               '%(host)s: %(reason)s')


class VolumeServiceNotConfigured(Invalid):
    msg_fmt = ('Block Device Mapping is Invalid: this service has no volume '
               'service ([cinder] auth_type is not set).')


class VolumeServiceError(LifecycleException):
    msg_fmt = 'Volume service request %(what)s failed: %(reason)s'


# starting a service
class StartupError(LifecycleException):
    """A service cannot start (configuration, database, message bus)."""
    msg_fmt = '%(reason)s'
