"""``lifecycle-manage disks audit | cleanup``: the commands (what they
find and how: :mod:`lifecycle.manage.disks`; what cleanup does to each
finding: :mod:`lifecycle.manage.cleaner`)."""

import datetime
import sys

from oslo_log import log as logging

from lifecycle import exception
from lifecycle.manage import FAILED
from lifecycle.manage import PROBLEMS_FOUND
from lifecycle.manage import SUCCESS
from lifecycle.manage import UsageError
from lifecycle.manage import cleaner as cleaner_mod
from lifecycle.manage import cli
from lifecycle.manage import locate
from lifecycle.manage import output
from lifecycle.manage.disks import DEFAULT_BASE_MIN_AGE
from lifecycle.manage.disks import DiskAudit
from lifecycle.manage.findings import AUDIT_ONLY
from lifecycle.manage.findings import CATEGORIES
from lifecycle.manage.findings import PLANNED
from lifecycle.manage.findings import Finding

LOG = logging.getLogger(__name__)

COLUMNS = (('category', 'Category'), ('resource', 'Resource'),
           ('where', 'Where'), ('bytes_human', 'Size'),
           ('detail', 'Detail'))
RESULT_COLUMNS = (('category', 'Category'), ('resource', 'Resource'),
                  ('action', 'Action'), ('bytes_human', 'Reclaimed'),
                  ('detail', 'Detail'))


def _summary(findings: list[Finding]) -> dict:
    summary: dict[str, dict] = {}
    for finding in findings:
        entry = summary.setdefault(finding.category,
                                   {'count': 0, 'bytes': 0})
        entry['count'] += 1
        entry['bytes'] += finding.bytes
    return summary


class DisksCommands:
    """Instance storage and domains: ``disks audit``, ``disks cleanup``."""

    def __init__(self, conf) -> None:
        self.conf = conf
        self.deployment = locate.Deployment(conf)

    def close(self) -> None:
        self.deployment.close()

    @staticmethod
    def _categories(chosen: list[str] | None,
                    allowed: tuple[str, ...]) -> tuple[str, ...]:
        if not chosen:
            return allowed
        unknown = sorted(set(chosen) - set(allowed))
        if unknown:
            raise UsageError('unknown categor%s %s (known: %s)' % (
                'y' if len(unknown) == 1 else 'ies', ', '.join(unknown),
                ', '.join(allowed)))
        return tuple(c for c in allowed if c in chosen)

    def _audit(self, categories, base_min_age, label,
               allow_foreign_storage) -> DiskAudit:
        audit = DiskAudit(self.deployment, categories,
                          base_min_age or DEFAULT_BASE_MIN_AGE,
                          allow_foreign=allow_foreign_storage)
        audit.run(label)
        return audit

    @staticmethod
    def _report_errors(audit: DiskAudit) -> None:
        # On stderr too: a cron job mailing stderr, or one reading only the
        # exit code 3, still learns that a check did not run.
        for error in audit.errors:
            print('lifecycle-manage: ERROR: %s' % error, file=sys.stderr)

    def audit(self, fmt: str = 'table', categories: list[str] | None = None,
              base_min_age: datetime.timedelta | None = None,
              allow_foreign_storage: bool = False) -> int:
        audit = self._audit(
            self._categories(categories, CATEGORIES + AUDIT_ONLY),
            base_min_age, 'disks audit', allow_foreign_storage)
        findings = audit.findings
        summary = _summary(findings)
        footer = ['%s: %d found, %s' % (cat, s['count'],
                                        output.human_bytes(s['bytes']))
                  for cat, s in summary.items()]
        if not findings:
            footer.append('Nothing found in %s%s.' % (
                self.deployment.describe(),
                ' by the checks that ran' if audit.errors else ''))
        footer += audit.notes
        footer += ['ERROR: %s' % e for e in audit.errors]
        output.emit(fmt, {'scope': self.deployment.describe(),
                          'findings': [f.to_dict() for f in findings],
                          'summary': summary, 'errors': audit.errors,
                          'complete': not audit.errors,
                          'foreign_storage': [
                              r.to_dict() for r in audit.foreign.values()]},
                    [f.row() for f in findings], COLUMNS, footer)
        self._report_errors(audit)
        # Findings win over a failed check: 3 (with the ERROR lines), so
        # that what was found is never hidden behind exit code 1.
        if findings:
            return PROBLEMS_FOUND
        return FAILED if audit.errors else SUCCESS

    def cleanup(self, fmt: str = 'table', categories: list[str] | None = None,
                base_min_age: datetime.timedelta | None = None,
                dry_run: bool = False, yes: bool = False,
                allow_foreign_storage: bool = False) -> int:
        audit = self._audit(self._categories(categories, CATEGORIES),
                            base_min_age, 'disks cleanup: audit',
                            allow_foreign_storage)
        findings = sorted(
            (f for f in audit.findings if f.category in CATEGORIES),
            key=lambda f: CATEGORIES.index(f.category))
        skipped = [f for f in audit.findings if f.category in AUDIT_ONLY]
        act = yes and not dry_run
        results = []
        cleaner = cleaner_mod.Cleaner(audit)
        with output.Progress('disks cleanup', len(findings)) as progress:
            for finding in findings:
                result = dict(finding.to_dict(),
                              action=PLANNED[finding.category], reclaimed=0)
                if act:
                    try:
                        action, freed, detail = cleaner.apply(finding)
                        result.update(action=action, reclaimed=freed,
                                      detail=detail)
                    except Exception as e:  # report, go on
                        LOG.warning('Cleanup of %s %s failed: %s',
                                    finding.category, finding.resource, e)
                        result.update(action='failed',
                                      detail=exception.message_of(e))
                else:
                    result['reclaimed'] = finding.bytes
                results.append(result)
                progress.step('%s %s' % (finding.category,
                                         finding.resource))
        summary: dict[str, dict] = {}
        for r in results:
            entry = summary.setdefault(r['category'], {
                'count': 0, 'done': 0, 'failed': 0, 'bytes_reclaimed': 0})
            entry['count'] += 1
            if r['action'] == 'failed':
                entry['failed'] += 1
            elif act and r['action'] != 'skipped':
                entry['done'] += 1
            entry['bytes_reclaimed'] += r['reclaimed']
        total = sum(s['bytes_reclaimed'] for s in summary.values())
        verb = 'reclaimed' if act else 'would be reclaimed'
        footer = ['%s: %d found, %d done, %d failed, %s %s' % (
            cat, s['count'], s['done'], s['failed'],
            output.human_bytes(s['bytes_reclaimed']), verb)
            for cat, s in summary.items()]
        footer.append('Total: %s %s (%d bytes).' % (
            output.human_bytes(total), verb, total))
        footer += ['NOT CLEANED (%s): %s: %s' % (f.category, f.resource,
                                                  f.detail) for f in skipped]
        footer += audit.notes
        footer += ['ERROR: %s' % e for e in audit.errors]
        if not act:
            footer.append('Dry run: nothing was changed.' if dry_run else
                          'Nothing was changed: add --yes to clean up (or '
                          '--dry-run to only list).')
        rows = [dict(r, bytes_human=output.human_bytes(r['reclaimed']))
                for r in results]
        output.emit(fmt, {'scope': self.deployment.describe(),
                          'dry_run': not act, 'results': results,
                          'summary': summary, 'bytes_reclaimed': total,
                          'not_cleaned': [f.to_dict() for f in skipped],
                          'errors': audit.errors,
                          'foreign_storage': [
                              r.to_dict() for r in audit.foreign.values()]},
                    rows, RESULT_COLUMNS, footer)
        self._report_errors(audit)
        if not act and not dry_run and findings:
            raise UsageError('refusing to delete without --yes')
        if audit.errors or any(r['action'] == 'failed' for r in results):
            return FAILED
        return SUCCESS


def register(subparsers) -> dict[str, type]:
    actions = cli.add_category(
        subparsers, 'disks', 'leftovers on instance storage, in libvirt and '
        'the image service (audit, cleanup)',
        'Find (audit) and reclaim (cleanup) what no instance needs: '
        'orphan instance directories, retained disks gone missing, unused '
        'base images, stale shelved_* metadata, orphan libvirt domains, '
        'leftover images of full offloads (and, for Ceph groups, orphan '
        'clones, unused RBD bases, idle protected snapshots). Refuses (exit '
        '4) storage that holds data this project does not own, such as '
        'Nova\'s instances in a shared instances_path.')
    for name, summary in (
            ('audit', 'list leftovers; changes nothing (exit 3 when it '
                      'finds some)'),
            ('cleanup', 'remove what audit finds, re-checking each first')):
        action = cli.add_action(actions, name, summary)
        allowed = CATEGORIES + (AUDIT_ONLY if name == 'audit' else ())
        action.add_argument('--category', action='append',
                            dest='categories', choices=allowed,
                            metavar='CATEGORY',
                            help='only this category (repeatable): %s'
                                 % ', '.join(allowed))
        action.add_argument(
            '--base-min-age', type=output.duration, metavar='AGE',
            help='unused bases placed or used more recently than AGE are '
                 'not counted (default %dh); AGE is %s' % (
                     DEFAULT_BASE_MIN_AGE.total_seconds() // 3600,
                     cli.DURATION_HELP))
        action.add_argument(
            '--allow-foreign-storage', action='store_true',
            help='run even when a storage root holds data this project '
                 'does not own (exit 4 otherwise); what is not ours is still '
                 'never reported nor removed, and unused bases are not '
                 'looked for in such a root')
        if name == 'cleanup':
            cli.add_change(action, 'removed')
        cli.add_format(action)
    return {'disks': DisksCommands}
