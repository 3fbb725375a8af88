"""No module of lifecycle/ or filters/ imports itself through others
(deferred imports inside functions count too: they only hide a circle).
The layers between packages are .importlinter's (tools/run-tests.sh)."""

import grimp


def _cycles(graph, modules: set[str]) -> list[list[str]]:
    """The strongly connected components of more than one module
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(
            graph.find_modules_directly_imported_by(root) & modules)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(
                        graph.find_modules_directly_imported_by(child) &
                        modules))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles():
    graph = grimp.build_graph('lifecycle', 'filters', cache_dir=None)
    modules = {m for m in graph.modules
               if m.split('.')[0] in ('lifecycle', 'filters')}
    assert _cycles(graph, modules) == []


def test_the_check_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ('p', 'p.a', 'p.b', 'p.c'):
        graph.add_module(module)
    graph.add_import(importer='p.a', imported='p.b')
    graph.add_import(importer='p.b', imported='p.a')
    graph.add_import(importer='p.c', imported='p.a')
    assert _cycles(graph, {'p.a', 'p.b', 'p.c'}) == [['p.a', 'p.b']]
