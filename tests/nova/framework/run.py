"""Run unittest modules in the Nova venv and print one JSON line of results.

``python -m tests.nova.framework.run MODULE_OR_CASE...`` -> stdout's last
line: ``{"<test id>": {"status": "passed|failed|error|skipped",
"detail": "..."}}``.
"""

import json
import sys
import unittest


class _Result(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.outcomes = {}

    def addSuccess(self, test):
        self.outcomes[test.id()] = {'status': 'passed', 'detail': ''}

    def addFailure(self, test, err):
        self.outcomes[test.id()] = {'status': 'failed',
                                    'detail': self._exc_info_to_string(
                                        err, test)}

    def addError(self, test, err):
        self.outcomes[test.id()] = {'status': 'error',
                                    'detail': self._exc_info_to_string(
                                        err, test)}

    def addSkip(self, test, reason):
        self.outcomes[test.id()] = {'status': 'skipped', 'detail': reason}

    def addExpectedFailure(self, test, err):
        self.outcomes[test.id()] = {'status': 'passed', 'detail': 'xfail'}

    def addUnexpectedSuccess(self, test):
        self.outcomes[test.id()] = {'status': 'failed',
                                    'detail': 'unexpected success'}


def main(argv):
    suite = unittest.defaultTestLoader.loadTestsFromNames(argv)
    result = _Result()
    suite.run(result)
    sys.stdout.flush()
    print('\n' + json.dumps(result.outcomes))


if __name__ == '__main__':
    main(sys.argv[1:])
