"""Fake ``openstack`` client: aggregates per cloud, in a JSON file."""
import json
import os
import sys

argv = sys.argv[1:]
with open(os.environ['SHIM_CALLS'], 'a') as log:
    log.write('\t'.join(['openstack', 'env:OS_CLOUD=%s'
                         % os.environ.get('OS_CLOUD', '<unset>'),
                         'env:OS_TOKEN=%s'
                         % os.environ.get('OS_TOKEN', '<unset>')] + argv))
    log.write('\n')

cloud = 'cloud:' + os.environ.get('OS_CLOUD', '<unset>')
while argv and argv[0].startswith('--os-'):
    opt, _, value = argv.pop(0).partition('=')
    if not _:
        value = argv.pop(0)
    if opt == '--os-cloud':
        cloud = 'cloud:' + value
    elif opt == '--os-endpoint':
        cloud = 'endpoint:' + value

state_file = os.path.join(os.environ['SHIM_DIR'], 'openstack.json')
try:
    with open(state_file) as f:
        state = json.load(f)
except FileNotFoundError:
    state = {}
aggregates = state.setdefault(cloud, {})

if argv[:2] == ['token', 'issue']:
    assert cloud == 'cloud:devstack-admin', cloud
    print(os.environ['SHIM_ADMIN_TOKEN'])
    sys.exit(0)
if argv[:1] != ['aggregate']:
    sys.exit('fake openstack: unsupported command %s' % argv)
action, args = argv[1], argv[2:]
if action == 'add':
    assert args[0] == 'host', args
    args = args[1:]
props, column, positional = {}, None, []
while args:
    arg = args.pop(0)
    if arg == '--property':
        key, _, value = args.pop(0).partition('=')
        props[key] = value
    elif arg == '-c':
        column = args.pop(0)
    elif arg == '-f':
        assert args.pop(0) == 'value'
    else:
        positional.append(arg)
name = positional[0]
if action != 'create' and name not in aggregates:
    sys.exit("No aggregate with a name or ID of '%s' exists." % name)
if action == 'create':
    if name in aggregates:
        sys.exit('ConflictException: 409: Aggregate %s already exists.'
                 % name)
    aggregates[name] = {'properties': props, 'hosts': []}
elif action == 'set':
    aggregates[name]['properties'].update(props)
elif action == 'add':
    if positional[1] in aggregates[name]['hosts']:
        sys.exit('ConflictException: 409: Aggregate %s already has host %s.'
                 % (name, positional[1]))
    aggregates[name]['hosts'].append(positional[1])
elif action == 'show':
    if column == 'hosts':
        print(', '.join(aggregates[name]['hosts']))
    else:
        print(json.dumps(aggregates[name]))
else:
    sys.exit('fake openstack: unsupported aggregate action %s' % action)
with open(state_file, 'w') as f:
    json.dump(state, f)
