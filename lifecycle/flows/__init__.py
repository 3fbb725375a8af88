"""Lifecycle operations as resumable flows.

Each operation (spawn, shelve, shelve offload, full offload, unshelve,
delete on a compute host; build and unshelve placement in the conductor) is
a linear flow of small, idempotent tasks, run by ``engine.FlowRunner``. The
flow's progress is persisted in TaskFlow's format (its models and
SQLAlchemy backend) in the project's own database (tables
``logbooks``, ``flowdetails``, ``atomdetails``, created by the project's
migrations), one logbook per operation, owned by the service that runs it.
A service killed at any task boundary finds its unfinished logbooks when it
starts again and resumes them: finished tasks are not run again, the
interrupted one is (hence idempotent tasks), and a task that fails is
reverted, then the finished ones in reverse order.
"""
