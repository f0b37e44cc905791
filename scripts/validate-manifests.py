#!/usr/bin/env python3
"""Offline validation of Afterglow's deployment manifests. Run through scripts/validate-manifests.sh,
which provides the tools (kubernetes-validate, check-jsonschema) in a virtualenv.

1. Every YAML document under deploy/k8s/ is schema-checked, strictly (unknown fields are errors, as
   with `kubectl apply --validate=strict`): built-in kinds against the Kubernetes JSON schemas that
   the kubernetes-validate package bundles, for each Kubernetes version in K8S_VERSIONS; custom
   resources against the openAPIV3Schema of the CustomResourceDefinitions in deploy/k8s/schemas/.
   A document whose kind has no schema at all is an error, never a warning.
2. Every kustomization is built (`kubectl kustomize`, when kubectl is on PATH) and its output is
   schema-checked the same way; a manifest in a kustomization folder that it does not list is an error.
3. Cross-checks that schemas cannot express: probes, resources, PDBs and Services per role; HPA
   targets and the consumer groups of the lag metrics against the ConfigMap; KafkaTopics against
   TOPICS in core/src/contracts.ts; partitions against the lag HPAs' maxReplicas.
4. deploy/docker-compose.yml: wiring rules (depends_on targets and health conditions, loopback-only
   ports, every role present, env pointing at services that exist). Its schema check (compose-spec)
   is run by the shell wrapper with check-jsonschema.
5. Dockerfile: parsed with BuildKit's parser (the `dockerfile` package); stage references, npm ci
   with ONNXRUNTIME_NODE_INSTALL=skip, a non-root final USER, the entrypoint; .dockerignore basics.

Exit status 1 with one line per problem; 0 when everything holds.
"""
from __future__ import annotations

import copy
import glob
import os
import re
import shutil
import subprocess
import sys
from typing import Any

import jsonschema
import yaml
import kubernetes_validate.utils as kv

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
K8S = os.path.join(ROOT, 'deploy', 'k8s')
SCHEMAS = os.path.join(K8S, 'schemas')
COMPOSE = os.path.join(ROOT, 'deploy', 'docker-compose.yml')
# The oldest Kubernetes minor we support, and the newest the package knows.
K8S_VERSIONS = [os.environ.get('K8S_MIN_VERSION', '1.30.0'), kv.latest_version()]
ROLES = {'ingest', 'stream', 'live', 'inference', 'dashboard'}
APP_ENV = ('KAFKA_BROKERS', 'CLICKHOUSE_URL', 'REDIS_URL', 'NATS_URL')

errors: list[str] = []


def fail(where: str, message: str) -> None:
    errors.append(f'{os.path.relpath(where, ROOT) if os.path.isabs(where) else where}: {message}')


def load_docs(path: str) -> list[dict[str, Any]]:
    try:
        with open(path) as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        fail(path, f'not YAML: {e}')
        return []


# ---- schemas for custom resources -----------------------------------------------------------

def strict(schema: Any) -> Any:
    """openAPIV3Schema -> JSON Schema with Kubernetes' strict field validation: an object schema
    with properties rejects other keys unless it preserves unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if out.get('x-kubernetes-int-or-string'):
        out.pop('type', None)
        out['anyOf'] = [{'type': 'integer'}, {'type': 'string'}]
    if 'properties' in out and 'additionalProperties' not in out and not out.get('x-kubernetes-preserve-unknown-fields'):
        out['additionalProperties'] = False
    if out.get('nullable'):
        t = out.get('type')
        if isinstance(t, str):
            out['type'] = [t, 'null']
    return out


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(glob.glob(os.path.join(SCHEMAS, '*.yaml'))):
        for doc in load_docs(path):
            if doc.get('kind') != 'CustomResourceDefinition':
                continue
            spec = doc['spec']
            for version in spec.get('versions', []):
                schema = (version.get('schema') or {}).get('openAPIV3Schema')
                if schema:
                    found[(f"{spec['group']}/{version['name']}", spec['names']['kind'])] = strict(copy.deepcopy(schema))
    return found


CRDS = crd_schemas()


def validate_doc(doc: dict[str, Any], where: str) -> None:
    for field in ('apiVersion', 'kind'):
        if not isinstance(doc.get(field), str):
            fail(where, f'document without {field}')
            return
    name = (doc.get('metadata') or {}).get('name')
    label = f"{doc['kind']}/{name}"
    if not name:
        fail(where, f'{doc["kind"]} without metadata.name')
    crd = CRDS.get((doc['apiVersion'], doc['kind']))
    if crd is not None:
        for e in sorted(jsonschema.Draft7Validator(crd).iter_errors(doc), key=lambda e: list(e.path)):
            fail(where, f'{label}: {".".join(map(str, e.path)) or "(root)"}: {e.message}')
        return
    for version in K8S_VERSIONS:
        try:
            kv.validate(doc, version, strict=True)
        except kv.SchemaNotFoundError:
            fail(where, f'{label}: no schema for {doc["apiVersion"]} {doc["kind"]} (built-in in Kubernetes {version}, or a CRD in deploy/k8s/schemas/)')
            return
        except kv.ValidationError as e:
            fail(where, f'{label} (Kubernetes {e.version}): {".".join(map(str, e.path)) or "(root)"}: {e.message}')
            return


# ---- 1 + 2: files and kustomizations ------------------------------------------------------------

manifest_files = sorted(
    p for p in glob.glob(os.path.join(K8S, '**', '*.yaml'), recursive=True) if os.path.basename(p) != 'kustomization.yaml'
)
all_docs: list[tuple[str, dict[str, Any]]] = []
for path in manifest_files:
    for doc in load_docs(path):
        if not isinstance(doc, dict):
            fail(path, 'a document that is not a mapping')
            continue
        validate_doc(doc, path)
        if not path.startswith(SCHEMAS + os.sep):
            all_docs.append((path, doc))

kubectl = shutil.which('kubectl')
kustomizations = sorted(glob.glob(os.path.join(K8S, '**', 'kustomization.yaml'), recursive=True))
if not kustomizations:
    fail(K8S, 'no kustomization.yaml')
for kfile in kustomizations:
    kdir = os.path.dirname(kfile)
    docs = load_docs(kfile)
    listed = set((docs[0] if docs else {}).get('resources') or [])
    for path in glob.glob(os.path.join(kdir, '*.yaml')):
        base = os.path.basename(path)
        if base != 'kustomization.yaml' and base not in listed:
            fail(path, f'not listed in {os.path.relpath(kfile, ROOT)} (it would never be applied)')
    for res in listed:
        if not os.path.exists(os.path.join(kdir, res)):
            fail(kfile, f'lists {res}, which does not exist')
    if kubectl:
        r = subprocess.run([kubectl, 'kustomize', kdir], capture_output=True, text=True)
        if r.returncode != 0:
            fail(kfile, f'kustomize build failed: {r.stderr.strip()}')
            continue
        for doc in yaml.safe_load_all(r.stdout):
            if doc:
                validate_doc(doc, f'{os.path.relpath(kfile, ROOT)} (built)')
if not kubectl:
    print('note: kubectl not on PATH; kustomizations checked for listed files only, not built', file=sys.stderr)

# ---- 3: cross-checks --------------------------------------------------------------------------

def by_kind(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(p, d) for p, d in all_docs if d.get('kind') == kind]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


config = {}
for path, doc in by_kind('ConfigMap'):
    if doc['metadata']['name'] == 'afterglow-config':
        config = doc.get('data') or {}
if not config:
    fail(K8S, 'no ConfigMap afterglow-config')
for key in APP_ENV + ('HOST', 'PORT', 'SINK_GROUP_ID', 'LIVE_GROUP_ID'):
    if key not in config:
        fail(K8S, f'afterglow-config lacks {key}')
if config.get('HOST') not in (None, '0.0.0.0', '::'):
    fail(K8S, 'afterglow-config HOST must listen on all interfaces (0.0.0.0) in a pod')

deployments = {d['metadata']['name']: (p, d) for p, d in by_kind('Deployment')}
roles_seen = set()
for name, (path, d) in deployments.items():
    pod = d['spec']['template']
    labels = pod['metadata'].get('labels') or {}
    if not selects(d['spec']['selector'].get('matchLabels') or {}, labels):
        fail(path, f'{name}: selector does not match its pod labels')
    for c in pod['spec']['containers']:
        if c.get('image') != 'afterglow':
            continue
        role = (c.get('args') or [None])[0]
        if role not in ROLES:
            fail(path, f'{name}: args[0] {role!r} is not a role ({", ".join(sorted(ROLES))})')
        roles_seen.add(role)
        probes = {k: (c.get(k) or {}).get('httpGet', {}).get('path') for k in ('readinessProbe', 'livenessProbe')}
        if probes != {'readinessProbe': '/readyz', 'livenessProbe': '/healthz'}:
            fail(path, f'{name}: readiness must GET /readyz and liveness /healthz, got {probes}')
        res = c.get('resources') or {}
        for part in ('requests', 'limits'):
            for r in ('cpu', 'memory'):
                if r not in (res.get(part) or {}):
                    fail(path, f'{name}: resources.{part}.{r} missing')
        refs = {e.get('configMapRef', {}).get('name') for e in c.get('envFrom') or []} | {e.get('secretRef', {}).get('name') for e in c.get('envFrom') or []}
        if not {'afterglow-config', 'afterglow-clickhouse'} <= refs:
            fail(path, f'{name}: envFrom must include ConfigMap afterglow-config and Secret afterglow-clickhouse')
    if not any(selects((p.get('spec', {}).get('selector') or {}).get('matchLabels') or {}, labels) for _, p in by_kind('PodDisruptionBudget')):
        fail(path, f'{name}: no PodDisruptionBudget selects it')
    if not any(selects(s['spec'].get('selector') or {}, labels) for _, s in by_kind('Service')):
        fail(path, f'{name}: no Service selects it')
for role in sorted(ROLES - roles_seen):
    fail(K8S, f'no Deployment runs the {role} role')

groups = {config.get('SINK_GROUP_ID'), config.get('LIVE_GROUP_ID')}
partitions = None
topics = {}
for path, t in by_kind('KafkaTopic'):
    topic = t['spec'].get('topicName', t['metadata']['name'])
    topics[topic] = t['spec']
partitions = (topics.get('engagement.events') or {}).get('partitions')
for path, h in by_kind('HorizontalPodAutoscaler'):
    target = h['spec']['scaleTargetRef']
    if target.get('kind') != 'Deployment' or target.get('name') not in deployments:
        fail(path, f'HPA {h["metadata"]["name"]}: scaleTargetRef {target.get("name")} is not a Deployment here')
    for m in h['spec'].get('metrics') or []:
        if m.get('type') != 'External':
            continue
        sel = (m['external']['metric'].get('selector') or {}).get('matchLabels') or {}
        if m['external']['metric']['name'] == 'kafka_consumergroup_lag':
            if sel.get('consumergroup') not in groups:
                fail(path, f'HPA {h["metadata"]["name"]}: consumergroup {sel.get("consumergroup")!r} is neither SINK_GROUP_ID nor LIVE_GROUP_ID of afterglow-config')
            if partitions and h['spec']['maxReplicas'] > partitions:
                fail(path, f'HPA {h["metadata"]["name"]}: maxReplicas {h["spec"]["maxReplicas"]} > {partitions} partitions of engagement.events (extra consumers would idle)')

contracts = open(os.path.join(ROOT, 'core', 'src', 'contracts.ts')).read()
block = re.search(r'export const TOPICS = \{(.*?)\} as const', contracts, re.S)
if not block:
    fail('core/src/contracts.ts', 'TOPICS not found')
else:
    for topic in re.findall(r":\s*'([^']+)'", block.group(1)):
        if topic not in topics:
            fail(os.path.join(K8S, 'backing', 'kafka.yaml'), f'no KafkaTopic for {topic} (TOPICS in core/src/contracts.ts)')

# ---- 4: docker compose wiring ------------------------------------------------------------------

compose = (load_docs(COMPOSE) or [{}])[0]
services = compose.get('services') or {}
compose_roles: dict[str, int] = {}
for name, svc in services.items():
    for port in svc.get('ports') or []:
        text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published', '')}:{port.get('target')}"
        if not str(text).startswith('127.0.0.1:'):
            fail(COMPOSE, f'{name}: port {text} is not bound to 127.0.0.1')
    deps = svc.get('depends_on') or {}
    for dep, cond in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
        if dep not in services:
            fail(COMPOSE, f'{name}: depends_on {dep}, which is not a service')
        elif (cond or {}).get('condition') == 'service_healthy' and not services[dep].get('healthcheck'):
            fail(COMPOSE, f'{name}: waits for {dep} to be healthy, but {dep} has no healthcheck')
    if svc.get('image') != 'afterglow:local':
        continue
    role = (svc.get('command') or [None])[0]
    if role not in ROLES:
        fail(COMPOSE, f'{name}: command {role!r} is not a role')
    compose_roles[role] = compose_roles.get(role, 0) + int((svc.get('deploy') or {}).get('replicas', 1))
    env = svc.get('environment') or {}
    if str(env.get('HOST')) != '0.0.0.0':
        fail(COMPOSE, f'{name}: HOST must be 0.0.0.0 inside a container')
    for key in APP_ENV:
        host = re.sub(r'^\w+://', '', str(env.get(key, ''))).split(':')[0].split('/')[0]
        if host not in services:
            fail(COMPOSE, f'{name}: {key}={env.get(key)!r} does not point at a compose service')
    if '/readyz' not in ' '.join(map(str, (svc.get('healthcheck') or {}).get('test') or [])):
        fail(COMPOSE, f'{name}: healthcheck must ask /readyz')
    for dep in ('kafka', 'clickhouse', 'redis', 'nats'):
        if (deps.get(dep) or {}).get('condition') != 'service_healthy':
            fail(COMPOSE, f'{name}: must depend on {dep} being healthy')
for role in sorted(ROLES):
    if compose_roles.get(role, 0) < (2 if role == 'ingest' else 1):
        fail(COMPOSE, f'{role}: {compose_roles.get(role, 0)} service(s) run it')

# ---- 5: Dockerfile (parsed by BuildKit's own parser, from the `dockerfile` package) -----------------

DOCKERFILE = os.path.join(ROOT, 'Dockerfile')
try:
    import dockerfile  # type: ignore

    instructions = dockerfile.parse_file(DOCKERFILE)
except Exception as e:  # a syntax error, or the package missing
    fail(DOCKERFILE, f'cannot parse: {e}')
    instructions = []
stages: list[dict[str, Any]] = []
for ins in instructions:
    if ins.cmd == 'FROM':
        v = [x for x in ins.value]
        name = v[2] if len(v) >= 3 and v[1].upper() == 'AS' else None
        if v[0] in [st['name'] for st in stages if st['name']] or ':' in v[0] or '$' in v[0]:
            pass
        else:
            fail(DOCKERFILE, f'FROM {v[0]}: neither an earlier stage nor a tagged image')
        stages.append({'name': name, 'base': v[0], 'ins': []})
    elif not stages:
        if ins.cmd != 'ARG':
            fail(DOCKERFILE, f'{ins.cmd} before the first FROM')
    else:
        stages[-1]['ins'].append(ins)
names = [st['name'] for st in stages]
for i, st in enumerate(stages):
    for ins in st['ins']:
        for flag in ins.flags:
            if flag.startswith('--from=') and flag[7:] not in names[:i]:
                fail(DOCKERFILE, f'{ins.cmd} {flag}: no earlier stage of that name')
def stage_env(i: int) -> str:
    st = stages[i]
    inherited = stage_env(names.index(st['base'])) if st['base'] in names[:i] else ''
    return inherited + ' '.join(' '.join(ins.value) for ins in st['ins'] if ins.cmd == 'ENV')
for i, st in enumerate(stages):
    for ins in st['ins']:
        if ins.cmd == 'RUN' and re.search(r'\bnpm ci\b', ' '.join(ins.value)) and 'ONNXRUNTIME_NODE_INSTALL skip' not in stage_env(i):
            fail(DOCKERFILE, f'stage {st["name"]}: npm ci without ONNXRUNTIME_NODE_INSTALL=skip')
if stages:
    final = stages[-1]['ins']
    users = [ins.value[0] for ins in final if ins.cmd == 'USER']
    if not users or users[-1] in ('root', '0', '0:0'):
        fail(DOCKERFILE, 'the final stage must switch to a non-root USER')
    entry = [list(ins.value) for ins in final if ins.cmd == 'ENTRYPOINT']
    if not entry or entry[-1] != ['node', 'cli/dist/main.js']:
        fail(DOCKERFILE, f'ENTRYPOINT must be ["node", "cli/dist/main.js"] (the role comes as the command), got {entry}')
ignore = open(os.path.join(ROOT, '.dockerignore')).read().split() if os.path.exists(os.path.join(ROOT, '.dockerignore')) else []
for must in ('**/node_modules', '**/dist'):
    if must not in ignore:
        fail('.dockerignore', f'must exclude {must} (host builds must not leak into the image)')

if errors:
    print('\n'.join(f'FAIL {e}' for e in errors))
    print(f'{len(errors)} problem(s) in the deployment manifests')
    sys.exit(1)
print(
    f'ok: {len(manifest_files)} manifest files ({len(all_docs)} objects) valid against Kubernetes '
    f'{" and ".join(v.rsplit(".", 1)[0] for v in K8S_VERSIONS)} schemas and {len(CRDS)} CRD schemas; '
    f'{len(kustomizations)} kustomizations {"built" if kubectl else "listed"}; compose wiring of {len(services)} services; '
    f'Dockerfile ({len(stages)} stages) parsed'
)
