#!/usr/bin/env python3
"""check_deploy.py — the semantic checks behind check_deploy.sh, one subcommand each.

Each subcommand prints one line per problem, naming the file, the object and the field,
and exits 1 if there was any (77: skipped, with the reason). Only the standard library,
PyYAML (Debian python3-yaml) and libseccomp through ctypes are used, so it runs wherever
the project builds. Usage: check_deploy.py compose|dockerfiles|seccomp|k8s|kustomize|tenants
DEPLOY_DIR [EXTRA], or check_deploy.py policy ROLE DEPLOY_DIR BUILD_DIR.

Two rules run through several checks:
- one gateway "runners" entry per runner replica: the gateway makes one connection per entry
  and libzmq connects a name with several addresses to the first one only, so every tenants
  file shipped here must name each replica (compose service, StatefulSet pod) exactly once;
- every REALM_* variable a deployment file sets must be one the daemon it is given to reads
  (its option table), since an unknown variable is silently ignored;
- the gateway drains on SIGTERM (docs/gateway.md, "Shutdown and drain"): whoever stops it
  (compose's stop_grace_period, Kubernetes' terminationGracePeriodSeconds, which also covers
  the preStop hook) must wait at least its drain timeout plus DRAIN_MARGIN_S before SIGKILL,
  or the streams the drain waits for are cut without their error event.
"""
import ctypes
import ctypes.util
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

problems = []


def bad(msg):
    problems.append(msg)


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last one silently; Compose v2
    and kubectl refuse the file), including a repeated "<<" merge key."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = key_node.value
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=StrictLoader) if d is not None]


# ---- what each daemon reads --------------------------------------------------------------------

# Option tables: {"flag", "REALM_VAR", ...}. Every daemon also reads the two logging variables
# (common/src/log.c, or its own --log-* options bound to the same names).
DAEMON_SOURCES = {
    "worker": ["compute-worker/worker/options.c"],
    "runner": ["tenant-runner/runner/main.c"],
    "gateway": ["gateway/main.c"],
}
LOG_VARS = {"REALM_LOG_LEVEL", "REALM_LOG_FORMAT"}


def daemon_env_names(root):
    """{role: set of REALM_* names its option table binds}; roles whose source is missing are
    absent (their variables are then not checked)."""
    out = {}
    for role, files in DAEMON_SOURCES.items():
        names = set()
        for rel in files:
            path = os.path.join(root, rel)
            if not os.path.isfile(path):
                break
            with open(path, encoding="utf-8") as f:
                names |= set(re.findall(r'\{"[a-z0-9-]+",\s*"(REALM_[A-Z0-9_]+)"', f.read()))
        else:
            if len(names) < 3:
                bad(f"env: read only {len(names)} REALM_* names from {files}; table format changed?")
            out[role] = names | LOG_VARS
    return out


def check_env_names(where, role, names, known):
    """Each REALM_* name in names must be read by role (known: daemon_env_names())."""
    if role not in known:
        return
    for n in sorted(names):
        if n.startswith("REALM_") and n not in known[role]:
            bad(f"{where}: sets {n}, which realm-{role} does not read "
                f"(its option table in {DAEMON_SOURCES[role][0]} lists the names it reads)")


# ---- compose ------------------------------------------------------------------------------

RUNNER_PREFIX = "runner-"
RUNNER_SERVICE_RE = re.compile(r"^runner-(?P<tenant>[A-Za-z0-9._-]+)-(?P<replica>\d+)$")
RUNNER_PORT = 7100


def check_security_opts(name, svc, deploy, want_seccomp):
    opts = svc.get("security_opt") or []
    if "no-new-privileges:true" not in opts:
        bad(f"compose: service {name}: security_opt lacks no-new-privileges:true")
    seccomp = [o for o in opts if re.match(r"seccomp[=:]", o)]
    if want_seccomp and not seccomp:
        bad(f"compose: service {name}: no seccomp profile in security_opt")
    for o in seccomp:
        path = re.split(r"[=:]", o, maxsplit=1)[1]
        if path != "unconfined" and not os.path.isfile(os.path.join(deploy, path)):
            bad(f"compose: service {name}: seccomp profile '{path}' does not exist (relative to deploy/)")
        if path == "unconfined":
            bad(f"compose: service {name}: seccomp=unconfined")


def check_compose_service(name, svc, deploy, files_seen):
    build = svc.get("build")
    if build:
        ctx = os.path.normpath(os.path.join(deploy, build.get("context", ".")))
        if not os.path.isdir(ctx):
            bad(f"compose: service {name}: build.context '{build.get('context')}' is not a directory")
        dockerfile = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
        if not os.path.isfile(dockerfile):
            bad(f"compose: service {name}: build.dockerfile '{build.get('dockerfile')}' does not exist")
        elif build.get("target"):
            stages = dockerfile_stages(dockerfile)
            if build["target"] not in stages:
                bad(f"compose: service {name}: build.target '{build['target']}' is not a stage of "
                    f"{os.path.relpath(dockerfile, ctx)} (stages: {', '.join(stages)})")
        files_seen.add(os.path.normpath(dockerfile))
    for v in svc.get("volumes") or []:
        src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
        if src.startswith((".", "/")) and not os.path.exists(os.path.join(deploy, src)):
            bad(f"compose: service {name}: bind-mount source '{src}' does not exist")
    if svc.get("read_only") is not True:
        bad(f"compose: service {name}: read_only is not true")
    if svc.get("cap_drop") != ["ALL"]:
        bad(f"compose: service {name}: cap_drop is not [ALL]")
    if not svc.get("restart"):
        bad(f"compose: service {name}: no restart policy")
    if svc.get("privileged"):
        bad(f"compose: service {name}: privileged")


def check_compose(deploy):
    base_path = os.path.join(deploy, "docker-compose.yml")
    gpu_path = os.path.join(deploy, "docker-compose.gpu.yml")
    try:
        base = load_yaml_docs(base_path)[0]
        gpu = load_yaml_docs(gpu_path)[0]
    except yaml.YAMLError as e:
        bad(f"compose: {e}")
        return
    services = base.get("services") or {}
    files_seen = set()
    for name, svc in services.items():
        check_compose_service(name, svc, deploy, files_seen)
        check_security_opts(name, svc, deploy, want_seccomp=name != "model-init")

    runners = [n for n in services if n.startswith(RUNNER_PREFIX)]
    known = daemon_env_names(os.path.dirname(deploy))
    for name in runners:
        svc = services[name]
        env = svc.get("environment") or {}
        # One service per replica (runner-TENANT-N): the gateway needs a name per replica, and
        # a service scaled with --scale has one name for all of its containers.
        m = RUNNER_SERVICE_RE.match(name)
        if not m:
            bad(f"compose: service {name}: a runner service must be named runner-TENANT-N "
                f"(one service per replica, listed as tcp://{name}:{RUNNER_PORT} in the tenants file)")
            continue
        if env.get("REALM_TENANT") != m.group("tenant"):
            bad(f"compose: service {name}: REALM_TENANT is '{env.get('REALM_TENANT')}', not '{m.group('tenant')}'")
        if str(env.get("REALM_REPLICA")) != m.group("replica"):
            bad(f"compose: service {name}: REALM_REPLICA is '{env.get('REALM_REPLICA')}', not '{m.group('replica')}'")
        if env.get("REALM_RUNNER_LISTEN") != f"tcp://0.0.0.0:{RUNNER_PORT}":
            bad(f"compose: service {name}: REALM_RUNNER_LISTEN is '{env.get('REALM_RUNNER_LISTEN')}', "
                f"not tcp://0.0.0.0:{RUNNER_PORT} (what the tenants file names)")
        if "container_name" in svc or svc.get("scale") or (svc.get("deploy") or {}).get("replicas"):
            bad(f"compose: service {name}: container_name/scale/deploy.replicas: a runner service "
                f"is exactly one replica")
        if svc.get("ports"):
            bad(f"compose: service {name}: publishes ports; runners are reached on the backend network only")
        if not any(str(t).startswith("/tmp") for t in svc.get("tmpfs") or []):
            bad(f"compose: service {name}: no tmpfs for /tmp")
        if not any(str(v).startswith("ipc:") and str(v).endswith(":/run/realm") or v == "ipc:/run/realm"
                   for v in svc.get("volumes") or []):
            bad(f"compose: service {name}: the ipc volume is not mounted at /run/realm")
        if "seccomp=./seccomp/runner.json" not in (svc.get("security_opt") or []):
            bad(f"compose: service {name}: not confined by seccomp/runner.json")
        if svc.get("restart") not in ("always", "unless-stopped", "on-failure"):
            bad(f"compose: service {name}: restart is {svc.get('restart')!r}; a runner exits 75 "
                f"when it loses the worker and must be restarted")
        check_env_names(f"compose: service {name}", "runner", env, known)
    check_compose_tenants(deploy, services)
    worker = services.get("worker") or {}
    if "ipc:/run/realm" not in (worker.get("volumes") or []):
        bad("compose: service worker: the ipc volume is not mounted at /run/realm")
    wenv = worker.get("environment") or {}
    check_env_names("compose: service worker", "worker", wenv, known)
    if wenv.get("REALM_WORKER_BACKEND") != "cpu":
        bad(f"compose: service worker: REALM_WORKER_BACKEND is {wenv.get('REALM_WORKER_BACKEND')!r}, "
            f"not cpu (the CPU image has no CUDA backend)")
    for var in ("REALM_WORKER_MODEL", "REALM_WORKER_LISTEN"):
        if not wenv.get(var):
            bad(f"compose: service worker: {var} is not set")
    if worker.get("restart") not in ("always", "unless-stopped", "on-failure"):
        bad("compose: service worker: no restart on failure (it exits 69 when the backend fails)")
    gw = services.get("gateway") or {}
    hc = " ".join(map(str, (gw.get("healthcheck") or {}).get("test") or []))
    if "/health" not in hc:
        bad("compose: service gateway: healthcheck does not GET /health")
    if not any(str(p).endswith(":8080") for p in gw.get("ports") or []):
        bad("compose: service gateway: port 8080 is not published")
    check_env_names("compose: service gateway", "gateway", gw.get("environment") or {}, known)
    check_compose_drain("gateway", gw, os.path.dirname(deploy), "gateway")
    for name, svc in services.items():
        if name.startswith("runner-"):
            check_compose_drain(name, svc, os.path.dirname(deploy), "runner")
    check_compose_drain("worker", worker, os.path.dirname(deploy), "worker")
    tenants_env = (gw.get("environment") or {}).get("REALM_TENANTS", "")
    m = re.match(r"/etc/realm/config/\$\{REALM_TENANTS_FILE:-(.+)\}$", tenants_env)
    if not m or not os.path.isfile(os.path.join(deploy, "config", m.group(1))):
        bad(f"compose: service gateway: REALM_TENANTS '{tenants_env}' does not name a file in deploy/config")
    for vol in ("ipc", "models"):
        if vol not in (base.get("volumes") or {}):
            bad(f"compose: named volume '{vol}' is not declared")

    gw_worker = (gpu.get("services") or {}).get("worker") or {}
    devices = (((gw_worker.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices")
    if devices != [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]:
        bad(f"compose gpu override: worker GPU reservation is {devices!r}")
    if not str(gw_worker.get("image", "")).endswith("-cuda"):
        bad("compose gpu override: worker image is not the -cuda one")
    genv = gw_worker.get("environment") or {}
    check_env_names("compose gpu override: worker", "worker", genv, known)
    if genv.get("REALM_WORKER_BACKEND") != "cuda":
        bad(f"compose gpu override: worker REALM_WORKER_BACKEND is {genv.get('REALM_WORKER_BACKEND')!r}, not cuda")
    if gw_worker.get("build"):
        check_compose_service("worker (gpu)", dict(gw_worker, read_only=True, cap_drop=["ALL"],
                                                   restart="x"), deploy, files_seen)
    if set(gpu.get("services") or {}) - set(services):
        bad("compose gpu override: defines services the base file does not have")


def check_compose_tenants(deploy, services):
    """The compose tenants file must list, per tenant, exactly one tcp://SERVICE:7100 per runner
    service of that tenant, in replica order, and nothing else."""
    path = os.path.join(deploy, "config", "tenants.example.json")
    try:
        with open(path, encoding="utf-8") as f:
            tenants = json.load(f)
    except (OSError, ValueError) as e:
        bad(f"compose: config/tenants.example.json: {e}")
        return
    by_tenant = {}
    for name, svc in services.items():
        m = RUNNER_SERVICE_RE.match(name)
        if m:
            by_tenant.setdefault(m.group("tenant"), []).append((int(m.group("replica")), name))
    listed = set()
    for t in tenants if isinstance(tenants, list) else []:
        tid = t.get("id") if isinstance(t, dict) else None
        if not tid:
            continue
        listed.add(tid)
        reps = sorted(by_tenant.get(tid, []))
        want = [f"tcp://{n}:{RUNNER_PORT}" for _, n in reps]
        got = t.get("runners") or []
        if [r for r, _ in reps] != list(range(len(reps))):
            bad(f"compose: tenant {tid}: runner services {[n for _, n in reps]} are not numbered 0..N-1")
        if got != want:
            bad(f"compose: config/tenants.example.json: tenant {tid}: runners {got} but the compose "
                f"file runs {want or 'no runner service'}: list one entry per runner service "
                f"(the gateway connects one replica per entry)")
    for tid in sorted(set(by_tenant) - listed):
        bad(f"compose: runner services of tenant {tid} are not in config/tenants.example.json")


# ---- Dockerfiles ----------------------------------------------------------------------------

def dockerfile_stages(path):
    with open(path, encoding="utf-8") as f:
        return re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", f.read(), flags=re.M | re.I)


def check_dockerfiles(deploy):
    root = os.path.dirname(deploy)
    ddir = os.path.join(deploy, "docker")
    finals = {"Dockerfile": ["worker", "runner", "gateway", "tools"], "Dockerfile.cuda": ["worker"]}
    known = daemon_env_names(root)
    for fname, wanted in finals.items():
        path = os.path.join(ddir, fname)
        if not os.path.isfile(path):
            bad(f"{fname}: missing")
            continue
        if not os.path.isfile(path + ".dockerignore"):
            bad(f"{fname}: no {fname}.dockerignore beside it (the context is the whole repository)")
        text = open(path, encoding="utf-8").read()
        # Split into stages; check each final stage for USER and ENTRYPOINT.
        parts = re.split(r"^(?=FROM\s)", text, flags=re.M)
        stages = {}
        for p in parts:
            m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", p, flags=re.I)
            if m:
                stages[m.group(1)] = p
        for st in wanted:
            body = stages.get(st)
            if body is None:
                bad(f"{fname}: no stage '{st}'")
                continue
            users = re.findall(r"^USER\s+(\S+)", body, flags=re.M)
            if not users or users[-1].split(":")[0] in ("0", "root"):
                bad(f"{fname}: stage '{st}' does not end as a non-root USER")
            eps = re.findall(r"^ENTRYPOINT\s+(.*)$", body, flags=re.M)
            if not eps:
                bad(f"{fname}: stage '{st}' has no ENTRYPOINT")
            else:
                try:
                    ep = json.loads(eps[-1])
                    if not (isinstance(ep, list) and ep and ep[0].startswith("/")):
                        raise ValueError
                except ValueError:
                    bad(f"{fname}: stage '{st}': ENTRYPOINT is not exec form with an absolute path")
        # REALM_* set by ENV in a daemon's stage (or runtime-base, which every stage inherits)
        # must be variables that daemon reads.
        for st in wanted:
            role = {"worker": "worker", "runner": "runner", "gateway": "gateway"}.get(st)
            if role and st in stages:
                env_text = stages[st] + stages.get("runtime-base", "")
                joined = re.sub(r"\\\n", " ", env_text)
                names = set()
                for line in re.findall(r"^ENV\s+(.*)$", joined, flags=re.M):
                    names |= set(re.findall(r"\b(REALM_[A-Z0-9_]+)=", line))
                check_env_names(f"{fname}: stage '{st}' ENV", role, names, known)
        for m in re.finditer(r"^FROM\s+(\S+)", text, flags=re.M):
            img = m.group(1)
            if img.startswith("${") or img in stages:
                continue
            if ":" not in img or img.endswith(":latest"):
                bad(f"{fname}: base image '{img}' has no fixed tag")
        for m in re.finditer(r"^ARG\s+\w*IMAGE=(\S+)", text, flags=re.M):
            if ":" not in m.group(1) or m.group(1).endswith(":latest"):
                bad(f"{fname}: default base image '{m.group(1)}' has no fixed tag")
        # Files from the context that the build runs must exist in the repository.
        for used in sorted(set(re.findall(r"\b((?:scripts|deploy)/[\w./-]+\.sh)\b", text))):
            if not os.path.isfile(os.path.join(root, used)):
                bad(f"{fname}: uses '{used}', which does not exist")
    with open(os.path.join(ddir, "Dockerfile"), encoding="utf-8") as f:
        text = f.read()
    if "scripts/install-deps.sh" not in text:
        bad("Dockerfile: the builder does not install dependencies with scripts/install-deps.sh")
    if not re.search(r"^FROM\s+\$\{DEBIAN_IMAGE\}\s+AS\s+builder", text, flags=re.M) or \
            not re.search(r"^ARG\s+DEBIAN_IMAGE=debian:12$", text, flags=re.M):
        bad("Dockerfile: the builder is not FROM debian:12")
    runner_stage = text.split("AS runner", 1)[1].split("\nFROM ", 1)[0]
    if re.search(r"\b(gcc|clang|wabt|build-essential)\b", runner_stage):
        bad("Dockerfile: the runner stage installs a compiler (modules are precompiled in the builder)")
    with open(os.path.join(ddir, "Dockerfile.cuda"), encoding="utf-8") as f:
        cuda = f.read()
    if "-Dcuda=enabled" not in cuda:
        bad("Dockerfile.cuda: does not configure with -Dcuda=enabled")
    if not re.search(r"^\s*REALM_WORKER_BACKEND=cuda\b", cuda, flags=re.M):
        bad("Dockerfile.cuda: the worker stage does not set REALM_WORKER_BACKEND=cuda")
    if not re.search(r"^\s*REALM_WORKER_BACKEND=cpu\b", text, flags=re.M):
        bad("Dockerfile: the worker stage does not set REALM_WORKER_BACKEND=cpu")
    if not re.search(r"^FROM nvidia/cuda:\$\{CUDA_VERSION\}-runtime-", cuda, flags=re.M):
        bad("Dockerfile.cuda: the worker stage is not based on an nvidia/cuda runtime image")


# ---- seccomp ----------------------------------------------------------------------------------

ARCH_TOKENS = {"SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_AARCH64": 0xC00000B7}
ACTIONS = {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
           "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE", "SCMP_ACT_LOG"}
OPS = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
       "SCMP_CMP_MASKED_EQ"}
# Calls a role makes only before its jail, so its in-process filter (the policy check) does not
# list them: {role: {syscall: (source file, what its source calls, why)}}, required when the
# source still makes the call.
STARTUP_CALLS = {
    "gateway": {
        "signalfd4": ("gateway/main.c", "signalfd(",
                      "the drain sees a second SIGTERM through it; refused, it falls back to "
                      "100 ms sigtimedwait slices and logs 'no signalfd'"),
    },
}
# What any of the three daemons cannot start or jail itself without.
REQUIRED = ["execve", "openat", "mmap", "mprotect", "socket", "bind", "connect", "futex",
            "clone", "seccomp", "prctl", "exit_group", "rt_sigreturn", "close", "read", "write"]


def syscall_resolver():
    name = ctypes.util.find_library("seccomp")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    fn = lib.seccomp_syscall_resolve_name_arch
    fn.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    fn.restype = ctypes.c_int

    def known(syscall):
        return any(fn(tok, syscall.encode()) >= 0 for tok in ARCH_TOKENS.values())
    return known


def inner_filter_syscalls(seccomp_c):
    """Syscalls the in-process sets allow (common/src/seccomp.c): {"name", KIND, "why"}."""
    with open(seccomp_c, encoding="utf-8") as f:
        text = f.read()
    return sorted(set(re.findall(r'\{"([a-z0-9_]+)",\s*(?:A|NOEXEC|THREAD|SELF)\s*,', text)))


def check_seccomp(deploy, seccomp_c):
    known = syscall_resolver()
    if known is None:
        bad("seccomp: libseccomp not found through ctypes; cannot check syscall names")
    inner = inner_filter_syscalls(seccomp_c) if os.path.isfile(seccomp_c) else []
    if os.path.isfile(seccomp_c) and len(inner) < 20:
        bad(f"seccomp: read only {len(inner)} syscalls from {seccomp_c}; its table format changed?")
    for role in ("runner", "worker", "gateway"):
        path = os.path.join(deploy, "seccomp", role + ".json")
        try:
            with open(path, encoding="utf-8") as f:
                prof = json.load(f)
        except (OSError, ValueError) as e:
            bad(f"seccomp/{role}.json: {e}")
            continue
        where = f"seccomp/{role}.json"
        if prof.get("defaultAction") != "SCMP_ACT_ERRNO":
            bad(f"{where}: defaultAction is {prof.get('defaultAction')!r}, not SCMP_ACT_ERRNO")
        for a in prof.get("archMap") or []:
            if a.get("architecture") not in ARCH_TOKENS:
                bad(f"{where}: archMap architecture {a.get('architecture')!r} is not x86-64/aarch64")
        unconditional = {}
        allowed = set()
        for i, rule in enumerate(prof.get("syscalls") or []):
            names = rule.get("names") or []
            action = rule.get("action")
            if not names:
                bad(f"{where}: syscalls[{i}] has no names")
            if action not in ACTIONS:
                bad(f"{where}: syscalls[{i}] action {action!r} is not a Docker seccomp action")
            if not rule.get("comment"):
                bad(f"{where}: syscalls[{i}] ({', '.join(names[:3])}...) has no comment saying why")
            for arg in rule.get("args") or []:
                if arg.get("op") not in OPS or not isinstance(arg.get("index"), int) or \
                        not 0 <= arg["index"] <= 5 or not isinstance(arg.get("value"), int):
                    bad(f"{where}: syscalls[{i}] has a malformed args entry {arg!r}")
            for n in names:
                if known and not known(n):
                    bad(f"{where}: syscalls[{i}]: '{n}' is not a syscall on x86-64 or aarch64")
                if action == "SCMP_ACT_ALLOW":
                    allowed.add(n)
                    if not rule.get("args"):
                        if n in unconditional:
                            bad(f"{where}: '{n}' allowed twice (syscalls[{unconditional[n]}] and [{i}])")
                        unconditional[n] = i
        for n in REQUIRED:
            if n not in allowed:
                bad(f"{where}: '{n}' is not allowed; the daemon cannot start or jail itself")
        root = os.path.dirname(deploy)
        for n, (rel, needle, why) in STARTUP_CALLS.get(role, {}).items():
            try:
                with open(os.path.join(root, rel), encoding="utf-8") as f:
                    used = needle in f.read()
            except OSError:
                continue
            if used and n not in allowed:
                bad(f"{where}: '{n}' is not allowed, but {rel} calls {needle.rstrip('(')} before its jail "
                    f"({why})")
        # The outer (container) layer must not refuse what the inner (process) layer allows.
        for n in inner:
            if n not in allowed and (not known or known(n)):
                bad(f"{where}: '{n}' is allowed by common/src/seccomp.c sets but refused here")


# ---- container profile vs the daemon's own filter -------------------------------------------------

# How each role prints its in-process filter (libseccomp pseudo filter code), relative to the
# build directory: every daemon has --print-policy.
POLICY_PRINTERS = {
    "gateway": ["gateway/realm-gateway", "--print-policy"],
    "worker": ["compute-worker/worker/realm-worker", "--print-policy"],
    "runner": ["tenant-runner/runner/realm-runner", "--print-policy"],
}
# Conditional rules where the container profile is deliberately narrower than the daemon's
# filter on arguments no real call uses: checked with the value the real call passes instead
# of by implication. clone: the daemon requires CLONE_THREAD; the profile refuses namespace
# flags, which pthread_create never passes (glibc's flags, x86-64 and aarch64).
WITNESSES = {
    "clone": {0: [0x3D0F00]},  # CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
}
MASK64 = (1 << 64) - 1


def parse_pfc(text):
    """{syscall: [path, ...]} of the ALLOW actions in libseccomp's pseudo filter code (native
    architecture only). A path is {arg index: (mask, value)} over 64-bit arguments; an empty
    path is an unconditional allow."""
    allowed = {}
    cur = None
    stack = []  # (indent, arg, half, mask, value)
    for line in text.splitlines():
        m = re.match(r'\s*# filter for syscall "(\w+)"', line)
        if m:
            cur, stack = m.group(1), []
            continue
        if re.match(r"\s*# default action", line) or re.match(r"# filter for arch", line.strip()):
            cur, stack = None, []
            continue
        indent = len(line) - len(line.lstrip())
        m = re.match(r"\s*if \(\$a(\d)\.(hi32|lo32)(?: & (0x[0-9a-fA-F]+))? == (\d+)\)", line)
        if m and cur:
            stack = [e for e in stack if e[0] < indent]
            mask = int(m.group(3), 16) if m.group(3) else 0xFFFFFFFF
            stack.append((indent, int(m.group(1)), m.group(2), mask, int(m.group(4))))
            continue
        m = re.match(r"\s*action (\w+)", line)
        if m and cur:
            stack = [e for e in stack if e[0] < indent]
            if m.group(1) == "ALLOW":
                path = {}
                for _, arg, half, mask, value in stack:
                    shift = 32 if half == "hi32" else 0
                    pm, pv = path.get(arg, (0, 0))
                    path[arg] = (pm | (mask << shift), pv | ((value & mask) << shift))
                allowed.setdefault(cur, []).append(path)
    return allowed


def docker_rule_conds(rule):
    """A Docker rule's args as {index: (mask, value)} (all must hold)."""
    conds = {}
    for a in rule.get("args") or []:
        if a.get("op") == "SCMP_CMP_EQ":
            conds[a["index"]] = (MASK64, a["value"] & MASK64)
        elif a.get("op") == "SCMP_CMP_MASKED_EQ":
            conds[a["index"]] = (a["value"] & MASK64, a.get("valueTwo", 0) & MASK64)
        else:
            return None  # other comparisons: never implied here
    return conds


def path_implies(path, conds):
    """True when every argument the path admits satisfies conds."""
    for idx, (om, ov) in conds.items():
        pm, pv = path.get(idx, (0, 0))
        if om & ~pm & MASK64 or (pv & om) != ov:
            return False
    return True


def satisfies(values, conds):
    return all((values.get(i, 0) & m) == v for i, (m, v) in conds.items())


def check_policy(role, deploy, build):
    printer = POLICY_PRINTERS[role]
    exe = os.path.join(build, printer[0]) if build else ""
    if not exe or not os.access(exe, os.X_OK):
        print(f"{printer[0]} is not part of this build ({build or 'REALM_BUILD_ROOT unset'}); "
              f"seccomp/{role}.json not compared with the {role}'s in-process filter")
        sys.exit(77)
    r = subprocess.run([exe] + printer[1:], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        bad(f"{' '.join([printer[0]] + printer[1:])} failed ({r.returncode}): {r.stderr.strip()[:300]}")
        return
    inner = parse_pfc(r.stdout)
    if len(inner) < 20:
        bad(f"{printer[0]}: parsed only {len(inner)} allowed syscalls from its filter; format changed?")
        return
    where = f"seccomp/{role}.json"
    with open(os.path.join(deploy, "seccomp", role + ".json"), encoding="utf-8") as f:
        prof = json.load(f)
    outer = {}
    for rule in prof.get("syscalls") or []:
        if rule.get("action") != "SCMP_ACT_ALLOW":
            continue
        for n in rule.get("names") or []:
            outer.setdefault(n, []).append(docker_rule_conds(rule))
    for name, paths in sorted(inner.items()):
        rules = [c for c in outer.get(name, []) if c is not None]
        if not rules:
            bad(f"{where}: '{name}' is allowed by the {role}'s in-process filter but refused here")
            continue
        for path in paths:
            if any(path_implies(path, c) for c in rules):
                continue
            witness = WITNESSES.get(name)
            if witness:
                vals = {i: v[0] for i, v in witness.items()}
                if satisfies(vals, {i: mv for i, mv in path.items()}) and \
                        any(satisfies(vals, c) for c in rules):
                    continue
            desc = ", ".join(f"arg{i} & {m:#x} == {v:#x}" for i, (m, v) in sorted(path.items()))
            bad(f"{where}: '{name}' with {desc or 'any arguments'} is allowed by the {role}'s "
                f"in-process filter but not by this profile's rules for it")
    print(f"{len(inner)} syscalls of the {role}'s in-process filter checked against {where}")


# ---- gateway and runner drain vs. the orchestrator's kill grace ---------------------------------

# Both daemons drain on SIGTERM: no new requests, those in flight finish for up to the drain
# timeout. Per role: the environment variable and the source file whose option table holds
# the default.
DRAIN_ROLES = {
    "gateway": ("REALM_GATEWAY_DRAIN_TIMEOUT_MS", os.path.join("gateway", "main.c")),
    "runner": ("REALM_RUNNER_DRAIN_TIMEOUT_MS", os.path.join("tenant-runner", "runner", "main.c")),
    "worker": ("REALM_WORKER_DRAIN_TIMEOUT_MS", os.path.join("compute-worker", "worker", "options.c")),
}
# After its drain timeout a daemon ends what is left with an error event (the gateway takes up
# to 2 s to flush, GW_DRAIN_FLUSH_MS; the runner lingers 250 ms) and exits; 5 s leaves room
# for that on a loaded node.
DRAIN_MARGIN_S = 5
K8S_DEFAULT_GRACE_S = 30
COMPOSE_DEFAULT_GRACE_S = 10


def parse_realm_duration_ms(text):
    """realm_config_parse_duration_ms: an integer with no suffix (ms), ms, s, m or h."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(text).strip())
    if not m:
        return None
    return int(m.group(1)) * {None: 1, "ms": 1, "s": 1000, "m": 60000, "h": 3600000}[m.group(2)]


def parse_compose_duration_s(text):
    """Compose durations (Go's format): 30s, 1m30s, 1500ms, 2.5s; a bare number is seconds."""
    t = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", t)
    if not parts or "".join(n + u for n, u in parts) != t:
        return None
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * unit[u] for n, u in parts)


def compose_default(value):
    """The value compose substitutes for ${VAR:-default} / ${VAR-default} when VAR is unset;
    a plain value unchanged; None for ${VAR} with no default (unknown here)."""
    v = str(value)
    m = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", v)
    if m:
        return m.group(1)
    return v


def default_drain_ms(root, role):
    """The default of --drain-timeout in the role's option table (25s when written)."""
    var, rel = DRAIN_ROLES[role]
    try:
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return 25000
    m = re.search(r'\{"drain-timeout",\s*"' + var + r'",\s*REALM_OPT_DURATION_MS,\s*"([^"]+)"', text)
    ms = parse_realm_duration_ms(m.group(1)) if m else None
    if ms is None:
        bad(f"drain: cannot read the default of --drain-timeout from {rel}; table format changed?")
        return 25000
    return ms


def drain_ms_of(where, role, args, env_value, default_ms):
    """The drain timeout the daemon will use: the last --drain-timeout in args, else the
    environment variable, else the default (flag > environment > default, realm/config.h).
    Returns (ms, where it came from); ms is None (reported) when it cannot be read."""
    args = [str(a) for a in args or []]
    flag = None
    for i, a in enumerate(args):
        if a == "--drain-timeout" and i + 1 < len(args):
            flag = args[i + 1]
        elif a.startswith("--drain-timeout="):
            flag = a.split("=", 1)[1]
    if flag is not None:
        text, src = flag, f"--drain-timeout {flag}"
    elif env_value is not None:
        text, src = env_value, f"{DRAIN_ROLES[role][0]}={env_value}"
    else:
        return default_ms, f"the {role}'s default {default_ms} ms"
    ms = parse_realm_duration_ms(text) if text is not None else None
    if ms is None:
        bad(f"{where}: {role} drain timeout {src!r} is not a duration the {role} accepts "
            f"(integer ms, or with ms/s/m/h)")
    return ms, src


def check_drain_grace(where, role, grace_s, grace_src, prestop_s, drain_ms, drain_src):
    need = prestop_s + drain_ms / 1000 + DRAIN_MARGIN_S
    if grace_s < need:
        pre = f" + preStop {prestop_s:g} s" if prestop_s else ""
        bad(f"{where}: {grace_src} is {grace_s:g} s, but the {role} drains for up to "
            f"{drain_ms / 1000:g} s ({drain_src}){pre}: it would be SIGKILLed mid-drain, cutting "
            f"streams without their error event; make it at least {need:g} s "
            f"(drain{' + preStop' if prestop_s else ''} + {DRAIN_MARGIN_S} s) or shorten the drain")


def check_compose_drain(name, gw, root, role):
    where = f"compose: service {name}"
    var = DRAIN_ROLES[role][0]
    grace_text = gw.get("stop_grace_period")
    if grace_text is None:
        grace_s, src = COMPOSE_DEFAULT_GRACE_S, "stop_grace_period (unset: compose's default)"
    else:
        grace_s = parse_compose_duration_s(grace_text)
        src = f"stop_grace_period {grace_text}"
        if grace_s is None:
            bad(f"{where}: stop_grace_period {grace_text!r} is not a compose duration")
            return
    sig = str(gw.get("stop_signal", "SIGTERM")).upper()
    if sig not in ("SIGTERM", "TERM", "SIGINT", "INT"):
        bad(f"{where}: stop_signal {sig}: the {role} drains on SIGTERM/SIGINT only")
    env = gw.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    env_value = compose_default(env[var]) if env.get(var) is not None else None
    if env.get(var) is not None and env_value is None:
        bad(f"{where}: {var} is {env[var]!r} with no default; give it one "
            f"(${{VAR:-25s}}) so the grace can be checked")
        return
    cmd = gw.get("command") or []
    if isinstance(cmd, str):
        cmd = cmd.split()
    drain_ms, dsrc = drain_ms_of(where, role, cmd, env_value, default_drain_ms(root, role))
    if drain_ms is not None:
        check_drain_grace(where, role, grace_s, src, 0, drain_ms, dsrc)


def prestop_sleep_s(where, c):
    """Seconds the container's preStop hook holds the SIGTERM back: lifecycle.preStop.sleep
    (Kubernetes >= 1.30), or exec of sleep N; 0 without a hook. Other hooks are reported."""
    pre = ((c.get("lifecycle") or {}).get("preStop")) or {}
    if not pre:
        return 0
    if "sleep" in pre:
        return int((pre.get("sleep") or {}).get("seconds", 0))
    cmd = [str(x) for x in ((pre.get("exec") or {}).get("command") or [])]
    if len(cmd) == 2 and cmd[0] in ("/bin/sleep", "/usr/bin/sleep") and re.fullmatch(r"\d+", cmd[1]):
        return int(cmd[1])
    bad(f"{where}: preStop {pre!r}: expected sleep.seconds or exec [/bin/sleep, N] (the gateway "
        f"needs no other hook; its drain starts on SIGTERM)")
    return 0


def check_k8s_drain(where, pod, c, configmaps, root, role):
    var = DRAIN_ROLES[role][0]
    grace = pod.get("terminationGracePeriodSeconds")
    grace_s = K8S_DEFAULT_GRACE_S if grace is None else grace
    src = ("terminationGracePeriodSeconds (unset: Kubernetes' default)" if grace is None
           else f"terminationGracePeriodSeconds {grace}")
    env_value = None
    for ef in c.get("envFrom") or []:  # later sources and env win, as in the kubelet
        cm = configmaps.get((ef.get("configMapRef") or {}).get("name")) or {}
        if var in cm:
            env_value = str(cm[var])
    for e in c.get("env") or []:
        if e.get("name") == var:
            if "value" not in e:
                bad(f"{where}: {var} comes from valueFrom; set a literal so the grace can be checked")
                return
            env_value = str(e["value"])
    args = list(c.get("command") or []) + list(c.get("args") or [])
    drain_ms, dsrc = drain_ms_of(where, role, args, env_value, default_drain_ms(root, role))
    if drain_ms is not None:
        check_drain_grace(where, role, grace_s, src, prestop_sleep_s(where, c), drain_ms, dsrc)


# ---- Kubernetes ---------------------------------------------------------------------------------

WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet", "Job"}


def check_container(where, c, is_init):
    sc = c.get("securityContext") or {}
    if sc.get("readOnlyRootFilesystem") is not True:
        bad(f"{where}: container {c.get('name')}: readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        bad(f"{where}: container {c.get('name')}: allowPrivilegeEscalation is not false")
    if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
        bad(f"{where}: container {c.get('name')}: capabilities.drop is not [ALL]")
    res = c.get("resources") or {}
    if not res.get("requests") or not (res.get("limits") or {}).get("memory"):
        bad(f"{where}: container {c.get('name')}: needs resource requests and a memory limit")
    if sc.get("privileged"):
        bad(f"{where}: container {c.get('name')}: privileged")
    if sc.get("runAsUser") == 0 and not is_init:
        bad(f"{where}: container {c.get('name')}: runs as root")


def check_workload(where, doc, deploy):
    spec = doc.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        bad(f"{where}: pod securityContext.runAsNonRoot is not true")
    prof = psc.get("seccompProfile") or {}
    if prof.get("type") not in ("RuntimeDefault", "Localhost"):
        bad(f"{where}: pod seccompProfile is {prof!r}")
    if prof.get("type") == "Localhost":
        base = os.path.basename(prof.get("localhostProfile", ""))
        if not os.path.isfile(os.path.join(deploy, "seccomp", base)):
            bad(f"{where}: localhostProfile '{prof.get('localhostProfile')}' has no deploy/seccomp/{base}")
    if pod.get("automountServiceAccountToken") is not False:
        bad(f"{where}: automountServiceAccountToken is not false")
    for c in pod.get("initContainers") or []:
        check_container(where, c, True)
    containers = pod.get("containers") or []
    for c in containers:
        check_container(where, c, False)
    return pod, containers


def check_k8s(deploy):
    k8s = os.path.join(deploy, "k8s")
    objects = {}
    kustomizations = []
    for dirpath, _, files in os.walk(k8s):
        for fn in sorted(files):
            if not fn.endswith((".yaml", ".yml")):
                continue
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, deploy)
            try:
                docs = load_yaml_docs(path)
            except yaml.YAMLError as e:
                bad(f"{rel}: not YAML: {e}")
                continue
            for i, d in enumerate(docs):
                where = f"{rel}[{i}]"
                if not isinstance(d, dict):
                    bad(f"{where}: not a mapping")
                    continue
                if d.get("kind") == "Kustomization":
                    kustomizations.append((path, d))
                    continue
                for field in ("apiVersion", "kind"):
                    if not d.get(field):
                        bad(f"{where}: no {field}")
                name = (d.get("metadata") or {}).get("name")
                if not name:
                    bad(f"{where}: no metadata.name")
                if "overlays" in rel.split(os.sep):
                    continue  # patches are partial by design; kustomize checks them
                objects[(d.get("kind"), name)] = (where, d)
    for path, k in kustomizations:
        rel = os.path.relpath(path, deploy)
        base = os.path.dirname(path)
        for r in k.get("resources") or []:
            if not os.path.exists(os.path.join(base, r)):
                bad(f"{rel}: resource '{r}' does not exist")
        for p in k.get("patches") or []:
            if "path" in p and not os.path.isfile(os.path.join(base, p["path"])):
                bad(f"{rel}: patch '{p['path']}' does not exist")
        listed = {os.path.normpath(os.path.join(base, r)) for r in k.get("resources") or []}
        for fn in os.listdir(base):
            full = os.path.join(base, fn)
            if fn.endswith(".yaml") and fn != "kustomization.yaml" and full not in listed and \
                    not any(full == os.path.normpath(os.path.join(base, p.get("path", "")))
                            for p in k.get("patches") or []):
                bad(f"{rel}: {fn} is in the directory but not listed")
    if not kustomizations:
        bad("k8s: no kustomization.yaml")

    for (kind, name), (where, d) in objects.items():
        if kind != "Namespace" and (d.get("metadata") or {}).get("namespace") != "realm":
            bad(f"{where}: {kind} {name} is not in namespace realm")
        if kind in WORKLOADS:
            check_workload(where, d, deploy)

    def need(kind, name):
        o = objects.get((kind, name))
        if not o:
            bad(f"k8s: no {kind} {name}")
        return o[1] if o else {}

    need("Namespace", "realm")
    need("ConfigMap", "realm-config")
    worker = need("DaemonSet", "realm-worker")
    wpod = ((worker.get("spec") or {}).get("template") or {}).get("spec") or {}
    wc = (wpod.get("containers") or [{}])[0]
    if str(((wc.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu")) != "1":
        bad("k8s: realm-worker does not limit nvidia.com/gpu to 1")
    if not wpod.get("nodeSelector") or not wpod.get("tolerations"):
        bad("k8s: realm-worker has no GPU nodeSelector/tolerations")
    need("Service", "realm-worker")
    runner = need("StatefulSet", "realm-runner-acme")
    rpod = ((runner.get("spec") or {}).get("template") or {}).get("spec") or {}
    if ((rpod.get("securityContext") or {}).get("seccompProfile") or {}).get("type") != "Localhost":
        bad("k8s: realm-runner-acme does not use a Localhost seccomp profile")
    need("Service", "realm-runner-acme")
    gw = need("Deployment", "realm-gateway")
    gpod = ((gw.get("spec") or {}).get("template") or {}).get("spec") or {}
    gc = (gpod.get("containers") or [{}])[0]
    if ((gc.get("livenessProbe") or {}).get("httpGet") or {}).get("path") != "/health":
        bad("k8s: realm-gateway liveness probe is not GET /health")
    if ((gc.get("readinessProbe") or {}).get("httpGet") or {}).get("path") != "/ready":
        bad("k8s: realm-gateway readiness probe is not GET /ready")
    need("Service", "realm-gateway")
    secret = need("Secret", "realm-tenants")
    if secret:
        check_tenants_text("k8s Secret realm-tenants", (secret.get("stringData") or {}).get("tenants.json", ""))
    check_k8s_topology("k8s/base", [d for _, d in objects.values()], daemon_env_names(os.path.dirname(deploy)),
                       os.path.dirname(deploy))


def pod_spec(doc):
    return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}


def container_role(c):
    m = re.match(r"(?:.*/)?realm-(worker|runner|gateway)(?::|$)", str(c.get("image", "")))
    return m.group(1) if m else None


def check_k8s_topology(where, docs, known, root):
    """Cross-object rules over one set of Kubernetes objects (the base, or what kustomize
    renders for an overlay): runner replicas are StatefulSet pods behind a headless Service,
    and the tenants Secret lists exactly one tcp:// entry per pod; no autoscaler resizes a
    runner set behind the tenants file's back; every REALM_* variable reaches a daemon that
    reads it; the GPU worker asks for the CUDA backend; a gateway pod's grace period covers
    its preStop sleep, its drain timeout (args, env, ConfigMap or the default) and
    DRAIN_MARGIN_S."""
    by_kind = {}
    for d in docs:
        if isinstance(d, dict):
            by_kind.setdefault(d.get("kind"), []).append(d)
    configmaps = {(c.get("metadata") or {}).get("name"): c.get("data") or {}
                  for c in by_kind.get("ConfigMap", [])}
    services = {(sv.get("metadata") or {}).get("name"): sv for sv in by_kind.get("Service", [])}
    cm_readers = {}
    runner_sets = {}
    for kind in WORKLOADS:
        for d in by_kind.get(kind, []):
            name = (d.get("metadata") or {}).get("name")
            pod = pod_spec(d)
            labels = (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
            for c in pod.get("containers") or []:
                role = container_role(c)
                env = {e.get("name"): e for e in c.get("env") or []}
                check_env_names(f"{where}: {kind} {name} container {c.get('name')}", role, set(env), known)
                for ef in c.get("envFrom") or []:
                    cm = (ef.get("configMapRef") or {}).get("name")
                    if cm:
                        cm_readers.setdefault(cm, set()).add(role)
                if role in DRAIN_ROLES:
                    check_k8s_drain(f"{where}: {kind} {name} container {c.get('name')}",
                                    pod, c, configmaps, root, role)
                if role == "worker" and kind == "DaemonSet":
                    backend = (env.get("REALM_WORKER_BACKEND") or {}).get("value")
                    if backend != "cuda":
                        bad(f"{where}: {kind} {name}: REALM_WORKER_BACKEND is {backend!r}, not cuda "
                            f"(the GPU worker; without it the worker runs on the CPU)")
                if role == "runner":
                    tenant = (env.get("REALM_TENANT") or {}).get("value")
                    if kind != "StatefulSet":
                        bad(f"{where}: {kind} {name} runs runners: use a StatefulSet, whose pods have "
                            f"the stable DNS names the tenants file must list one by one")
                        continue
                    if tenant != labels.get("realm.dev/tenant"):
                        bad(f"{where}: {kind} {name}: REALM_TENANT {tenant!r} is not its realm.dev/tenant label")
                    listen = (env.get("REALM_RUNNER_LISTEN") or {}).get("value")
                    if listen != f"tcp://0.0.0.0:{RUNNER_PORT}":
                        bad(f"{where}: {kind} {name}: REALM_RUNNER_LISTEN is {listen!r}, not tcp://0.0.0.0:{RUNNER_PORT}")
                    rep = ((env.get("REALM_REPLICA") or {}).get("valueFrom") or {}).get("fieldRef") or {}
                    if rep.get("fieldPath") != "metadata.name":
                        bad(f"{where}: {kind} {name}: REALM_REPLICA is not the pod name (fieldRef metadata.name)")
                    runner_sets.setdefault(tenant, []).append(d)
    for cm, data in configmaps.items():
        readers = cm_readers.get(cm, set())
        for key in sorted(data):
            if readers and not any(key in known.get(r, {key}) for r in readers):
                bad(f"{where}: ConfigMap {cm}: {key} is read by none of the daemons that load it "
                    f"({', '.join(sorted(r or '?' for r in readers))})")
    # Autoscalers: none may target a runner set (its replica count is the tenants file's).
    for h in by_kind.get("HorizontalPodAutoscaler", []):
        ref = (h.get("spec") or {}).get("scaleTargetRef") or {}
        for sets in runner_sets.values():
            if any((st.get("metadata") or {}).get("name") == ref.get("name") for st in sets):
                bad(f"{where}: HorizontalPodAutoscaler {(h.get('metadata') or {}).get('name')} scales "
                    f"runner set {ref.get('name')}: the gateway only routes to the pods the tenants "
                    f"file lists, so an autoscaler alone does not spread load")
    # The tenants Secret: one entry per pod, in ordinal order.
    secret_tenants = {}
    for sec in by_kind.get("Secret", []):
        text = (sec.get("stringData") or {}).get("tenants.json")
        if text is None:
            continue
        try:
            for t in json.loads(text):
                secret_tenants[t.get("id")] = t.get("runners") or []
        except (ValueError, TypeError, AttributeError):
            continue  # reported by check_tenants_text
    for tenant, sets in sorted(runner_sets.items(), key=lambda kv: str(kv[0])):
        want = []
        for st in sets:
            meta = st.get("metadata") or {}
            spec = st.get("spec") or {}
            svc_name = spec.get("serviceName")
            svc = services.get(svc_name)
            ns = meta.get("namespace", "realm")
            if not svc:
                bad(f"{where}: StatefulSet {meta.get('name')}: serviceName {svc_name!r} is not a Service here")
                continue
            sspec = svc.get("spec") or {}
            if sspec.get("clusterIP") != "None":
                bad(f"{where}: Service {svc_name}: not headless (clusterIP: None); pods get no own DNS names")
            pod_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if any(pod_labels.get(k) != v for k, v in (sspec.get("selector") or {}).items()):
                bad(f"{where}: Service {svc_name}: selector does not match the pods of {meta.get('name')}")
            if not any(pt.get("port") == RUNNER_PORT for pt in sspec.get("ports") or []):
                bad(f"{where}: Service {svc_name}: no port {RUNNER_PORT}")
            replicas = spec.get("replicas", 1)
            want += [f"tcp://{meta.get('name')}-{i}.{svc_name}.{ns}.svc.cluster.local:{RUNNER_PORT}"
                     for i in range(replicas)]
        got = secret_tenants.get(tenant)
        if got is None:
            bad(f"{where}: runners of tenant {tenant} run, but the tenants Secret has no tenant {tenant}")
        elif got != want:
            bad(f"{where}: tenants Secret: tenant {tenant}: runners {got}, but its StatefulSet pods are "
                f"{want}: list one entry per pod (replicas == number of entries)")
    for tenant in sorted(set(secret_tenants) - set(runner_sets), key=str):
        bad(f"{where}: tenants Secret: tenant {tenant} has no runner StatefulSet")


def check_kustomize(deploy):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print("kubectl is not installed (optional)")
        sys.exit(77)
    for d in ("base", os.path.join("overlays", "worker-tcp")):
        r = subprocess.run([kubectl, "kustomize", os.path.join(deploy, "k8s", d)],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            bad(f"kubectl kustomize k8s/{d}: {r.stderr.strip()[:500]}")
            continue
        rendered = [d_ for d_ in yaml.safe_load_all(r.stdout) if d_]
        kinds = [d_.get("kind") for d_ in rendered]
        if "DaemonSet" not in kinds or "StatefulSet" not in kinds:
            bad(f"kubectl kustomize k8s/{d}: rendered only {kinds}")
        check_k8s_topology(f"kubectl kustomize k8s/{d}", rendered, daemon_env_names(os.path.dirname(deploy)),
                           os.path.dirname(deploy))
        if d != "base" and "hostPath" in r.stdout:
            bad(f"kubectl kustomize k8s/{d}: the tcp overlay still mounts a hostPath")


# ---- tenants files --------------------------------------------------------------------------

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
PLAINTEXT_FIELDS = {"key", "keys", "api_key", "api_keys", "secret", "token"}


def check_tenants_text(where, text):
    try:
        tenants = json.loads(text)
    except ValueError as e:
        bad(f"{where}: not JSON: {e}")
        return None
    if not isinstance(tenants, list) or not tenants:
        bad(f"{where}: not a non-empty JSON array")
        return None
    for i, t in enumerate(tenants):
        for h in t.get("key_hashes") or []:
            if not HASH_RE.match(str(h)):
                bad(f"{where}: tenant[{i}] key_hashes entry '{h}' is not 64 lowercase hex (SHA-256)")
        for f in PLAINTEXT_FIELDS & set(t):
            bad(f"{where}: tenant[{i}] has a '{f}' field: only key hashes may be stored")
        if not t.get("key_hashes"):
            bad(f"{where}: tenant[{i}] has no key_hashes")
    return tenants


def gateway_accepts(gateway, path, where):
    """Starts realm-gateway on an ephemeral loopback port with the tenants file, waits for its
    'listening' line (bounded), then GET /health must be 200; stops it with SIGTERM."""
    proc = subprocess.Popen([gateway, "--tenants", path, "--listen", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    try:
        deadline = time.monotonic() + 10
        log = []
        while time.monotonic() < deadline and port is None:
            ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = proc.stderr.readline()
            if not line:
                break
            log.append(line.strip())
            # Either the structured start-up line (msg="listening" ... port=N) or the older
            # plain "listening on ADDR port N".
            m = (re.search(r'msg="listening".*\bport=(\d+)', line)
                 or re.search(r"listening on \S+ port (\d+)", line))
            if m:
                port = int(m.group(1))
        if port is None:
            bad(f"{where}: realm-gateway did not start with it: {' | '.join(log)[:400]}")
            return
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            if r.status != 200:
                bad(f"{where}: GET /health answered {r.status}")
    except OSError as e:
        bad(f"{where}: GET /health failed: {e}")
    finally:
        # Nothing is in flight, so the drain ends at once and the gateway exits 0
        # (docs/gateway.md, "Shutdown and drain").
        proc.send_signal(signal.SIGTERM)
        try:
            rest = proc.communicate(timeout=10)[1] or ""
            if port is not None and proc.returncode != 0:
                bad(f"{where}: realm-gateway exited {proc.returncode} after SIGTERM, not 0: "
                    f"{rest.strip()[-300:]}")
            elif port is not None and "drain finished" not in rest:
                bad(f"{where}: realm-gateway stopped on SIGTERM without its 'drain finished' line")
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            bad(f"{where}: realm-gateway did not exit within 10 s of SIGTERM with nothing in flight")


def check_tenants(deploy, build):
    files = []
    example = os.path.join(deploy, "config", "tenants.example.json")
    with open(example, encoding="utf-8") as f:
        files.append(("config/tenants.example.json", f.read()))
    for d in load_yaml_docs(os.path.join(deploy, "k8s", "base", "secret-tenants.yaml")):
        files.append(("k8s/base/secret-tenants.yaml", (d.get("stringData") or {}).get("tenants.json", "")))
    for where, text in files:
        check_tenants_text(where, text)
    gateway = os.path.join(build, "gateway", "realm-gateway") if build else ""
    if not gateway or not os.access(gateway, os.X_OK):
        if problems:
            return
        print(f"realm-gateway not built ({gateway or 'REALM_BUILD_ROOT unset'}); parser check skipped")
        sys.exit(77)
    with tempfile.TemporaryDirectory() as tmp:
        for where, text in files:
            # The shipped files name runner hosts (tcp://runner-acme:7100) that only exist
            # inside compose/k8s; resolving them here would send DNS queries off this
            # machine. Point every runner at a closed loopback port instead: the check is
            # that the gateway accepts the file and serves /health, not that runners answer.
            try:
                doc = json.loads(text)
                for t in doc:
                    if isinstance(t, dict) and isinstance(t.get("runners"), list):
                        t["runners"] = [f"tcp://127.0.0.1:{1 + i}" for i in range(len(t["runners"]))]
                text = json.dumps(doc)
            except (ValueError, TypeError):
                pass  # already reported by check_tenants_text
            path = os.path.join(tmp, "tenants.json")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            gateway_accepts(gateway, path, where)


# ---- self-test of the drain and start-up call rules ---------------------------------------------

def selftest_drain(deploy):
    """Each mutation of a copy of deploy/ that breaks the drain/grace or start-up call rule
    must be reported by its check, and the shipped files must pass: proves the rules can fail."""
    root = os.path.dirname(deploy)

    def run(mutate, check):
        del problems[:]
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, "deploy")
            shutil.copytree(deploy, d)
            os.makedirs(os.path.join(tmp, "gateway"))
            shutil.copy(os.path.join(root, "gateway", "main.c"), os.path.join(tmp, "gateway"))
            if mutate:
                mutate(d)
            check(d)
        out = list(problems)
        del problems[:]
        return out

    def edit(rel, old, new):
        def mutate(d):
            path = os.path.join(d, rel)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if old not in text:
                raise SystemExit(f"selftest: {old!r} not in {rel}; update the self-test")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new, 1))
        return mutate

    def seccomp(d):
        check_seccomp(d, os.path.join(root, "common", "src", "seccomp.c"))

    cases = [  # (what, mutation or None for the shipped files, check, expected problem)
        ("shipped compose", None, check_compose, None),
        ("shipped k8s", None, check_k8s, None),
        ("shipped seccomp", None, seccomp, None),
        ("compose runner grace removed", edit("docker-compose.yml", "stop_grace_period: 30s", "init: false"),
         check_compose, "service runner-acme-0: stop_grace_period (unset"),
        ("compose gateway grace removed", edit("docker-compose.yml",
                                               "serve the drain to its end.\n    stop_grace_period: 30s\n",
                                               "serve the drain to its end.\n    init: false\n"),
         check_compose, "service gateway: stop_grace_period (unset"),
        ("k8s runner grace 25", edit("k8s/base/runner-acme.yaml", "terminationGracePeriodSeconds: 30",
                                     "terminationGracePeriodSeconds: 25"), check_k8s,
         "the runner drains for up to 25 s"),
        ("compose worker grace removed", edit("docker-compose.yml", "    stop_grace_period: 30s\n    # realm-worker",
                                              "    # realm-worker"),
         check_compose, "service worker: stop_grace_period (unset"),
        ("k8s worker grace 20", edit("k8s/base/worker-daemonset.yaml", "terminationGracePeriodSeconds: 60",
                                     "terminationGracePeriodSeconds: 20"), check_k8s,
         "the worker drains for up to 25 s"),
        ("compose drain raised", edit("docker-compose.yml", 'REALM_PORT: "8080"',
                                      'REALM_PORT: "8080"\n      REALM_GATEWAY_DRAIN_TIMEOUT_MS: ${X:-26s}'),
         check_compose, "REALM_GATEWAY_DRAIN_TIMEOUT_MS=26s"),
        ("k8s grace 30", edit("k8s/base/gateway.yaml", "terminationGracePeriodSeconds: 35",
                              "terminationGracePeriodSeconds: 30"), check_k8s, "make it at least 35 s"),
        ("k8s drain in ConfigMap", edit("k8s/base/configmap.yaml", "REALM_LOG_LEVEL: info",
                                        'REALM_LOG_LEVEL: info\n  REALM_GATEWAY_DRAIN_TIMEOUT_MS: "40000"'),
         check_k8s, "REALM_GATEWAY_DRAIN_TIMEOUT_MS=40000"),
        ("k8s drain flag", edit("k8s/base/gateway.yaml", '"--port", "8080"]',
                                '"--port", "8080", "--drain-timeout=1m"]'), check_k8s, "--drain-timeout 1m"),
        ("signalfd4 dropped", edit("seccomp/gateway.json", '"signalfd4",', ""), seccomp,
         "'signalfd4' is not allowed"),
    ]
    failures = []
    for what, mutate, check, want in cases:
        got = run(mutate, check)
        if want is None and got:
            failures.append(f"selftest: {what}: the shipped files fail: {got}")
        elif want is not None and not any(want in g for g in got):
            failures.append(f"selftest: {what}: no problem containing {want!r} (got {got})")
        else:
            print(f"selftest: {what}: {'passes' if want is None else 'caught: ' + want}")
    problems.extend(failures)


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "policy" and sys.argv[2] in POLICY_PRINTERS:
        check_policy(sys.argv[2], os.path.abspath(sys.argv[3]), sys.argv[4])
        for p in problems:
            print(p)
        return 1 if problems else 0
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    cmd, deploy = sys.argv[1], os.path.abspath(sys.argv[2])
    extra = sys.argv[3] if len(sys.argv) > 3 else ""
    checks = {
        "compose": lambda: check_compose(deploy),
        "dockerfiles": lambda: check_dockerfiles(deploy),
        "seccomp": lambda: check_seccomp(deploy, extra),
        "k8s": lambda: check_k8s(deploy),
        "kustomize": lambda: check_kustomize(deploy),
        "tenants": lambda: check_tenants(deploy, extra),
        "selftest-drain": lambda: selftest_drain(deploy),
    }
    if cmd not in checks:
        print(f"unknown check '{cmd}'")
        return 2
    checks[cmd]()
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
