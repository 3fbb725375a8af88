"""Options of other libraries (keystoneauth1, oslo.privsep, os-brick) as the
project lists them: the project's rule (tests/unit/test_config_sample.py)
wants a "Possible values" text on every option of the sample, which those
libraries do not write. Only the listed copies get it: the registered
options stay the libraries' own objects."""

import copy

from oslo_config import cfg


def documented(opts: list[cfg.Opt], values: dict[str, str],
               default: str | None = None) -> list[cfg.Opt]:
    """Copies of ``opts`` with "Possible values: ``values[dest]``" (or
    ``default``) added; boolean options and options with choices are left
    as they are (the generator renders their values itself)."""
    out = []
    for opt in opts:
        opt = copy.deepcopy(opt)
        text = values.get(opt.dest, default)
        if (text and not isinstance(opt, cfg.BoolOpt) and
                not getattr(opt.type, 'choices', None) and
                'Possible values' not in (opt.help or '')):
            opt.help = '%s\n\nPossible values: %s' % (
                (opt.help or '').rstrip(), text)
        out.append(opt)
    return out
