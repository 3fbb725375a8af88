"""The plot of the benchmark results (latency.png)."""

from tools.bench import common
from tools.bench import targets
from tools.bench.report import KINDS


def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    lat = results['sections'].get('latency')
    sched = results['sections'].get('scheduler')
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    styles = {'floor': ('k', 's'), 'floor_virsh': ('0.5', 'x'),
              'partial_same_host': ('tab:blue', 'o'),
              'partial_other_host': ('tab:cyan', 'v'),
              'full': ('tab:red', 'D')}
    for ax, op in zip(axes[:2], ('unshelve', 'shelve'), strict=True):
        if lat and lat.get('sizes'):
            for kind, label in KINDS:
                xs, ys, lo, hi = [], [], [], []
                for s in lat['sizes']:
                    summ = s['summary'][kind][op]
                    if not summ['n']:
                        continue
                    xs.append(s['size_bytes'] / common.GiB)
                    ys.append(summ['median'])
                    lo.append(summ['median'] - summ['min'])
                    hi.append(summ['max'] - summ['median'])
                if xs:
                    color, marker = styles[kind]
                    ax.errorbar(xs, ys, yerr=[lo, hi], label=label,
                                color=color, marker=marker, capsize=3)
            ax.set_xscale('log', base=2)
            ax.set_yscale('log')
            ax.set_xlabel('random data written in the root disk (GiB)')
            ax.set_ylabel('seconds (median, min–max)')
            ax.set_title('%s latency vs. disk size' % op)
            ax.grid(True, which='both', alpha=0.3)
            ax.legend(fontsize=7)
        else:
            ax.set_axis_off()
    ax = axes[2]
    if sched and sched.get('results'):
        series = {}
        for r in sched['results']:
            series.setdefault((r['database'], r['request']), []).append(
                (r['hosts'], r['decision_ms']['median'],
                 r['decision_ms']['p99']))
        for (db, req), points in sorted(series.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points],
                    marker='o', label='%s %s p50' % (db, req))
        for db, limits in targets.SCHEDULER_P50_MS.items():
            ax.scatter(list(limits), list(limits.values()),
                       marker='_' if db == 'sqlite' else '1', s=400,
                       color='red', label='target p50, %s' % db)
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('compute hosts')
        ax.set_ylabel('ms per decision')
        ax.set_title('scheduler: filter + weigh + claim')
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize=7)
    else:
        ax.set_axis_off()
    fig.suptitle('shelve-lifecycle benchmarks (%s mode, %s, %s)' % (
        results['mode'], results['machine'].get('cpu_model'),
        results['machine'].get('acceleration')), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
